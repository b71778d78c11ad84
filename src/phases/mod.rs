//! The phase machinery: the plan's tables and step bodies, the re-arm of an
//! armed node, the runner (lock, resume, record) and the status report.
//!
//! - [`plan`]: the ordered steps of each phase, as a table; the step bodies in
//!   `plan/prepare.rs`, `plan/finish.rs`, `plan/abort.rs`.
//! - [`rearm`]: `prepare` on a node already armed: every protection checked,
//!   what is missing put back.
//! - [`runner`]: runs a phase: lock, resume, record, log, failpoints.
//! - [`interrupt`]: a signal that stops a run is recorded on its running step.
//! - [`status`]: the `status` report.
//! - [`distupgrade`]: the operator's dist-upgrade, detached and recorded.

pub mod distupgrade;
pub mod interrupt;
pub mod plan;
pub mod rearm;
pub mod runner;
pub mod status;
