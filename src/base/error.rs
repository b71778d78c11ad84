//! Typed errors for the cases a caller branches on, and their exit codes.
//!
//! Everything else is an `anyhow::Error` with context; it maps to exit code 1
//! ("a step failed"). Only this module decides exit codes.

use std::process::ExitCode;

/// Errors that change the exit code (docs/design.md §3.1).
#[derive(Debug, thiserror::Error)]
pub enum Fatal {
    /// Bad input or usage: a config, changelog or file we cannot parse. Nothing changed.
    #[error("{0}")]
    BadInput(String),
    /// Refused in the node's present state (the preflight found inhibitors,
    /// abort after the dist-upgrade started, convert before it, ...); the
    /// message says why. Nothing changed.
    #[error("{0}")]
    Inhibited(String),
    /// Another run holds the lock. Nothing changed; run again once it ended.
    #[error("{0}")]
    Busy(String),
}

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: a step failed; the report says which and what to do.
pub const EXIT_STEP_FAILED: u8 = 1;
/// Exit code: bad input or usage; nothing changed.
pub const EXIT_BAD_INPUT: u8 = 2;
/// Exit code: refused in the node's present state (preflight inhibited, ...); nothing changed.
pub const EXIT_INHIBITED: u8 = 3;
/// Exit code: another run holds the lock; nothing changed (sysexits'
/// `EX_TEMPFAIL`: not a fault to fix, run again once the other run ended).
pub const EXIT_BUSY: u8 = 75;

/// The exit code for an error: the first [`Fatal`] in its chain decides, else 1.
pub fn exit_code(err: &anyhow::Error) -> ExitCode {
    let code = err
        .chain()
        .find_map(|cause| cause.downcast_ref::<Fatal>())
        .map_or(EXIT_STEP_FAILED, |fatal| match fatal {
            Fatal::BadInput(_) => EXIT_BAD_INPUT,
            Fatal::Inhibited(_) => EXIT_INHIBITED,
            Fatal::Busy(_) => EXIT_BUSY,
        });
    ExitCode::from(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn fatal_kind_decides_the_exit_code_through_context() {
        let bad: anyhow::Result<()> = Err(Fatal::BadInput("x".into()).into());
        let bad = bad.context("loading config").unwrap_err();
        assert_eq!(exit_code(&bad), ExitCode::from(EXIT_BAD_INPUT));
        let inhibited = anyhow::Error::from(Fatal::Inhibited("y".into()));
        assert_eq!(exit_code(&inhibited), ExitCode::from(EXIT_INHIBITED));
        let other = anyhow::anyhow!("step failed");
        assert_eq!(exit_code(&other), ExitCode::from(EXIT_STEP_FAILED));
    }
}
