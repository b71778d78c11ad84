//! `synnefo-upgrade`: the Synnefo 0.18.1 → 0.19 (wheezy → jessie) node upgrade.
//!
//! The binary in `main.rs` only parses the command line and dispatches; everything
//! else lives here, one module per concern (see `docs/design.md`):
//!
//! - [`changelog`]: validation of the VM owner changelog for fix_ip_history.
//! - [`cli`]: the command line (a contract, design §3.1) and exit codes.
//! - [`commands`]: what each command does, between the CLI and the modules.
//! - [`config`]: `/etc/synnefo-upgrade/upgrade.toml` and its drop-ins.
//! - [`dpkg`]: the dpkg status database and Debian version ordering.
//! - [`node`]: facts about this node (OS codename, init system).
//! - [`plan`]: the ordered steps of each phase, as a table.
//! - [`runner`]: runs a phase: lock, resume, record, log, failpoints.
//! - [`state`]: the versioned state file.
//! - [`services`]: stopping, starting and masking services (systemd over D-Bus,
//!   sysvinit init scripts, or offline under `--root`).
//! - [`preflight`]: the findings that decide whether a node may be armed.
//! - [`policy_rcd`]: the policy-rc.d decision and its installation.
//! - [`backup`]: database dump and configuration tarball before migrations.
//! - [`apt`]: the APT sources rewrite.
//! - [`convert`]: config conversion (settings, gunicorn, web server), planned
//!   whole before anything is written.
//! - [`exec`]: external commands by argv, output streamed to the log.
//! - [`synnefo`]: Synnefo's own commands (`snf-manage migrate`).
//! - [`fsx`]: the only module that writes files.
//! - [`logging`]: journald with structured fields, or stderr and a log file.
#![deny(missing_docs)]

pub mod apt;
pub mod backup;
pub mod bootstart;
pub mod changelog;
pub mod cli;
pub mod commands;
pub mod config;
pub mod convert;
pub mod dpkg;
pub mod error;
pub mod exec;
pub mod fsx;
pub mod logging;
pub mod node;
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
