//! The node's primitives and the vocabulary every layer uses: errors, node paths,
//! time, files (the only writer), the state file, the finding type, the journal,
//! external commands, dpkg and APT. Nothing here imports from another folder.
//!
//! - [`error`]: the errors that choose the exit code.
//! - [`paths`]: the node paths the tool reads and writes.
//! - [`clock`]: the wall clock of the state and reports, the clock of bounded waits.
//! - [`fsx`]: the only module that writes files.
//! - [`state`]: the versioned state file.
//! - [`finding`]: the finding type every source of findings and the logging use.
//! - [`logging`]: journald with structured fields, or stderr and a log file.
//! - [`exec`]: external commands by argv, output streamed to the log.
//! - [`children`]: the commands a run waits for now, for a signal to reach them.
//! - [`dpkg`]: the dpkg status database and Debian version ordering.
//! - [`apt`]: the APT sources rewrite, the backports source, pin and snippet;
//!   reading the sources as APT does ([`apt::sources`]) and recognising the
//!   Debian archive among them ([`apt::archive`]).
//! - [`changelog`]: validation of the VM owner changelog for fix_ip_history.
//! - [`forecast`]: `check`'s downtime forecast (packages to unpack, databases to dump).

pub mod apt;
pub mod changelog;
pub mod children;
pub mod clock;
pub mod dpkg;
pub mod error;
pub mod exec;
pub mod finding;
pub mod forecast;
pub mod fsx;
pub mod logging;
pub mod paths;
pub mod state;
