//! The sources of findings (the simulated dist-upgrade, boot readiness, notices)
//! and the preflight that gathers them, with the checks of `crate::convert` and
//! `crate::actions::synnefo`. A new check goes here.
//!
//! - [`aptsim`]: the dist-upgrade simulated in a scratch APT state, holds and pins.
//! - [`boot`]: boot readiness under systemd (fstab, DKMS headers).
//! - [`notices`]: what is reported, not changed (PostgreSQL clusters, AMQP
//!   guest, gunicorn behind a remote proxy).
//! - [`preflight`]: the findings that decide whether a node may be armed,
//!   computed from the run's facts.

pub mod aptsim;
pub mod boot;
pub mod notices;
pub mod preflight;
