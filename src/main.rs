//! `synnefo-upgrade`: parse the command line, set up logging, dispatch, exit.

use clap::Parser;
use std::path::Path;
use std::process::ExitCode;

use synnefo_upgrade::cli::{Cli, Command};
use synnefo_upgrade::error::exit_code;
use synnefo_upgrade::fsx::Root;
use synnefo_upgrade::plan::Ctx;
use synnefo_upgrade::state::State;
use synnefo_upgrade::{
    changelog, config, convert, logging, policy_rcd, preflight, runner, services, status,
};

fn main() -> ExitCode {
    // Installed as /usr/sbin/policy-rc.d (a link to us): decide and exit, fast.
    let argv0 = std::env::args_os().next().unwrap_or_default();
    if Path::new(&argv0)
        .file_name()
        .is_some_and(|n| n == "policy-rc.d")
    {
        let args: Vec<String> = std::env::args().skip(1).collect();
        return ExitCode::from(policy_rcd::run(&Root::new("/"), &args) as u8);
    }
    let cli = Cli::parse();
    let root = Root::new(&cli.root);
    logging::init(cli.verbose, root.is_live());
    // FAILPOINTS=name=action crashes the run at a named point (tests, design §3.2a).
    let _failpoints = fail::FailScenario::setup();
    match run(cli, root) {
        Ok(code) => code,
        Err(err) => {
            log::error!("{err:#}");
            exit_code(&err)
        }
    }
}

fn run(cli: Cli, root: Root) -> anyhow::Result<ExitCode> {
    if let Command::PolicyRcd { args } = &cli.command {
        return Ok(ExitCode::from(policy_rcd::run(&root, args) as u8));
    }
    if let Command::Status { json } = cli.command {
        let report = status::report(&root)?;
        match json {
            true => println!("{}", serde_json::to_string_pretty(&report)?),
            false => print!("{}", status::render(&report)),
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::ValidateChangelog { file } = &cli.command {
        print!("{}", changelog::check_file(file)?);
        return Ok(ExitCode::SUCCESS);
    }
    let config = config::load(&root, cli.config.as_deref())?;
    if let Command::Check { json } = cli.command {
        // The services' current state when the init system answers; "unknown" otherwise.
        let services = services::for_node(&root).ok();
        let report = preflight::report(&root, &config, services.as_deref());
        match json {
            true => println!("{}", serde_json::to_string_pretty(&report)?),
            false => print!("{}", preflight::render(&report)),
        }
        let inhibited = report.findings.iter().any(|f| f.inhibitor);
        return Ok(ExitCode::from(if inhibited {
            synnefo_upgrade::error::EXIT_INHIBITED
        } else {
            0
        }));
    }
    if let Command::Convert { dry_run } = cli.command {
        let conversion = convert::plan(&root, &config)?;
        if !dry_run {
            conversion.apply(&root)?;
        }
        print!("{}", conversion.report(dry_run));
        return Ok(ExitCode::SUCCESS);
    }
    let services = services::for_node(&root)?;
    let mut ctx = Ctx {
        root,
        config,
        services,
        state: State::new(),
        download: matches!(cli.command, Command::Prepare { download: true, .. }),
    };
    match cli.command {
        Command::Prepare { dry_run, .. } => runner::prepare(&mut ctx, dry_run)?,
        Command::Finish { dry_run } => runner::finish(&mut ctx, dry_run)?,
        Command::Abort => runner::abort(&mut ctx)?,
        Command::Guard => runner::guard(&mut ctx)?,
        _ => unreachable!("handled above"),
    }
    Ok(ExitCode::SUCCESS)
}
