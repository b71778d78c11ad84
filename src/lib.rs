//! `synnefo-upgrade`: the Synnefo 0.18.1 → 0.19 (wheezy → jessie) node upgrade.
//!
//! The binary in `main.rs` only parses the command line and dispatches; everything
//! else lives here, one module per concern (see `docs/design.md`, whose
//! numbered sections the comments cite, as in "design §3.1"):
//!
//! - [`changelog`]: validation of the VM owner changelog for fix_ip_history.
//! - [`clock`]: the wall clock of the state and reports, the clock of bounded waits.
//! - [`cli`]: the command line (a contract, design §3.1) and exit codes.
//! - [`commands`]: what each command does, between the CLI and the modules.
//! - [`config`]: `/etc/synnefo-upgrade/upgrade.toml` and its drop-ins.
//! - [`dpkg`]: the dpkg status database and Debian version ordering.
//! - [`error`]: the errors that choose the exit code.
//! - [`node`]: facts about this node (OS codename, init system, roles), and
//!   [`node::Facts`], what a run knows of the node, gathered once.
//! - [`plan`]: the ordered steps of each phase, as a table; the step bodies in
//!   `plan/prepare.rs`, `plan/finish.rs`, `plan/abort.rs`.
//! - [`runner`]: runs a phase: lock, resume, record, log, failpoints.
//! - [`state`]: the versioned state file.
//! - [`status`]: the `status` report.
//! - [`paths`]: the node paths the tool reads and writes.
//! - [`services`]: stopping, starting and masking services (systemd over D-Bus,
//!   sysvinit init scripts, or offline under `--root`).
//! - [`finding`]: the finding type every source of findings and the logging use.
//! - [`preflight`]: the findings that decide whether a node may be armed,
//!   computed from the run's facts.
//! - [`policy_rcd`]: the policy-rc.d decision and its installation.
//! - [`boot`]: boot readiness under systemd (fstab, DKMS headers).
//! - [`notices`]: what is reported, not changed (PostgreSQL clusters, AMQP
//!   guest, gunicorn behind a remote proxy).
//! - [`backup`]: database dump and configuration tarball before migrations.
//! - [`dbguard`]: no other client of the Synnefo databases before migrating.
//! - [`migwait`]: a node that does not migrate waits for the one that does
//!   (`django_migrations` watched every second on one open `psql` session).
//! - [`apt`]: the APT sources rewrite, the backports source, pin and snippet;
//!   reading the sources as APT does ([`apt::sources`]) and recognising the
//!   Debian archive among them ([`apt::archive`]).
//! - [`aptsim`]: the dist-upgrade simulated in a scratch APT state, holds and pins.
//! - [`forecast`]: `check`'s downtime forecast (packages to unpack, databases to dump).
//! - [`convert`]: config conversion (settings, gunicorn, web server), planned
//!   whole before anything is written.
//! - [`exec`]: external commands by argv, output streamed to the log.
//! - [`synnefo`]: Synnefo's own commands (`snf-manage migrate`, component
//!   re-registration, fix_ip_history).
//! - [`fsx`]: the only module that writes files.
//! - [`logging`]: journald with structured fields, or stderr and a log file.
#![deny(missing_docs)]

/// Implements `Display` as the enum's `name()`, which is also its serialized
/// name (each enum's tests check that for every variant, with
/// [`testing::assert_display_is_serde_name`]): a state is printed one way.
macro_rules! display_as_name {
    ($t:ty) => {
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

pub mod apt;
pub mod aptsim;
pub mod backup;
pub mod boot;
pub mod bootstart;
pub mod changelog;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod convert;
pub mod dbguard;
pub mod dpkg;
pub mod error;
pub mod exec;
pub mod finding;
pub mod forecast;
pub mod fsx;
pub mod logging;
pub mod migwait;
pub mod node;
pub mod notices;
pub mod paths;
pub mod plan;
pub mod policy_rcd;
pub mod preflight;
pub mod rearm;
pub mod runner;
pub mod services;
pub mod state;
pub mod status;
pub mod synnefo;

#[cfg(test)]
mod testing;
