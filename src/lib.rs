//! `synnefo-upgrade`: the Synnefo 0.18.1 → 0.19 (wheezy → jessie) node upgrade.
//!
//! The binary in `main.rs` only parses the command line and dispatches; everything
//! else lives here, one folder per layer and one module per concern (see
//! `docs/design.md`, "Where things go", and its numbered sections, which the
//! comments cite as in "design §3.1"). Bottom first; a module imports only from
//! its own layer or a lower one (`tests/layers.rs`):
//!
//! - [`base`]: the node's primitives and the vocabulary (files, state, the
//!   finding type, the journal, commands, dpkg, APT, time, errors).
//! - [`inputs`]: the configuration and the facts of the node; with
//!   [`convert`]: config conversion (settings, gunicorn, web server), planned
//!   whole before anything is written, and the readers the facts use.
//! - [`actions`]: what is done to the node (services, boot links, policy-rc.d,
//!   backups, Synnefo's commands, the database guard, the wait for migrations).
//! - [`findings`]: the sources of findings and the preflight that gathers them.
//! - [`phases`]: the plan, the re-arm, the runner and the status report.
//! - [`cli`]: the command line (a contract, design §3.1) and exit codes;
//!   [`commands`]: what each command does, between the CLI and the layers.
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

pub mod actions;
pub mod base;
pub mod cli;
pub mod commands;
pub mod convert;
pub mod findings;
pub mod inputs;
pub mod phases;

#[cfg(test)]
mod testing;
