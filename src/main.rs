//! `synnefo-upgrade`: parse the command line, set up logging, dispatch, exit.
//!
//! The entry point is C's `main`, not Rust's: invoked as `/usr/sbin/policy-rc.d`
//! on every service action of a dist-upgrade, the binary must cost no more
//! than `/bin/true` (benches/policy-rc.d.sh), and Rust's runtime start-up
//! spends about a tenth of that on a stack-overflow handler for the main
//! thread (it reads and parses /proc/self/maps, maps an alternate signal
//! stack). That handler is all we go without: a stack overflow ends in a
//! plain SIGSEGV instead of a message and SIGABRT. The rest of the start-up
//! the tool relies on is done here, for both paths: standard descriptors
//! that are closed are opened on /dev/null (so a file we open cannot become
//! stdout), SIGPIPE is ignored (a closed pipe is an error, not a kill), a
//! panic exits 101, and leaving through `process::exit` flushes stdout.
#![no_main]

use clap::Parser;
use std::ffi::{c_char, c_int};
use std::os::fd::IntoRawFd;
use std::path::Path;
use std::process::ExitCode;

use nix::fcntl::{fcntl, FcntlArg};
use nix::sys::signal::{signal, SigHandler, Signal};
use synnefo_upgrade::actions::policy_rcd;
use synnefo_upgrade::base::error::exit_code;
use synnefo_upgrade::base::fsx::Root;
use synnefo_upgrade::base::logging;
use synnefo_upgrade::cli::Cli;
use synnefo_upgrade::commands;

/// The exit code of a panic, as under Rust's own `main`.
const PANICKED: i32 = 101;

#[no_mangle]
extern "C" fn main(_argc: c_int, _argv: *const *const c_char) -> c_int {
    start_up();
    // Installed as /usr/sbin/policy-rc.d (a link to us): decide and exit, fast.
    let argv0 = std::env::args_os().next().unwrap_or_default();
    if Path::new(&argv0)
        .file_name()
        .is_some_and(|n| n == "policy-rc.d")
    {
        let code = std::panic::catch_unwind(|| {
            // Lossy: a non-UTF-8 argument is a syntax error for parse, not a panic.
            let args: Vec<String> = std::env::args_os()
                .skip(1)
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            policy_rcd::run(&Root::new("/"), &args)
        });
        std::process::exit(code.unwrap_or(PANICKED));
    }
    let code = std::panic::catch_unwind(run).map_or(PANICKED, number);
    std::process::exit(code)
}

/// The number of an exit code (`ExitCode` has no stable accessor).
fn number(code: ExitCode) -> i32 {
    (0..=u8::MAX)
        .find(|&n| ExitCode::from(n) == code)
        .map_or(1, i32::from)
}

/// What of Rust's runtime start-up the tool relies on (see the module doc).
fn start_up() {
    for fd in 0..=2 {
        if fcntl(fd, FcntlArg::F_GETFD).is_err() {
            // Opened on the lowest free descriptor: this one.
            if let Ok(null) = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")
            {
                let _ = null.into_raw_fd();
            }
        }
    }
    // SAFETY: no other thread exists yet, and ignoring a signal installs no
    // handler code that could run at an unsafe point.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigIgn) };
}

fn run() -> ExitCode {
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
