//! `synnefo-upgrade`: parse the command line, set up logging, dispatch, exit.

use clap::Parser;
use std::path::Path;
use std::process::ExitCode;

use synnefo_upgrade::cli::Cli;
use synnefo_upgrade::error::exit_code;
use synnefo_upgrade::fsx::Root;
use synnefo_upgrade::{commands, logging, policy_rcd};

fn main() -> ExitCode {
    // Installed as /usr/sbin/policy-rc.d (a link to us): decide and exit, fast.
    let argv0 = std::env::args_os().next().unwrap_or_default();
    if Path::new(&argv0)
        .file_name()
        .is_some_and(|n| n == "policy-rc.d")
    {
        // Lossy: a non-UTF-8 argument is a syntax error for parse, not a panic.
        let args: Vec<String> = std::env::args_os()
            .skip(1)
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        return ExitCode::from(policy_rcd::run(&Root::new("/"), &args) as u8);
    }
    let cli = Cli::parse();
    let root = Root::new(&cli.root);
    logging::init(cli.verbose, root.is_live());
    // FAILPOINTS=name=action crashes the run at a named point (tests, docs/design.md §3.2a).
    let _failpoints = fail::FailScenario::setup();
    match commands::run(cli, root) {
        Ok(code) => code,
        Err(err) => {
            log::error!("{err:#}");
            exit_code(&err)
        }
    }
}
