//! A run stopped by a signal (`systemctl stop synnefo-upgrade-finish`, a
//! shutdown, Ctrl-C, `kill`) says so on its step: the step running then is
//! recorded `failed` with "interrupted by SIGTERM", so that `status --json`
//! shows it as the failed step, the journal has its end, and the next run
//! resumes there (a step records its outcome only when it ended).
//!
//! The signals are blocked before the run starts any thread (every thread
//! inherits the mask; the commands we start get an empty one from std's
//! spawn) and taken by one thread of ours with `sigwait`. That thread passes
//! the signal on to the commands the step waits for ([`children`]), records
//! the step under the lock the runner records with (so the two never write
//! the state at once), and ends the process with 128 + the signal's number.

use anyhow::{Context, Result};
use nix::sys::signal::{SigSet, Signal};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use crate::base::children;
use crate::base::fsx::Root;
use crate::base::logging;
use crate::base::state::{PhaseKind, State, StepRecord, StepStatus};

/// The signals that stop a run and are recorded.
const STOPPING: [Signal; 3] = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP];

/// The step that runs now.
pub struct Running {
    /// The node's root.
    pub root: Root,
    /// Its phase.
    pub phase: PhaseKind,
    /// Its id in the plan.
    pub id: &'static str,
    /// The step's `started` (epoch seconds), as recorded.
    pub started: u64,
    /// When it started, for its duration.
    pub clock: Instant,
}

static RUNNING: Mutex<Option<Running>> = Mutex::new(None);

/// The slot of the running step, locked: the runner holds it while it
/// records a step's start or end, so a signal's record comes before or after
/// those, never between.
pub fn slot() -> MutexGuard<'static, Option<Running>> {
    RUNNING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Blocks the stopping signals in this thread (call before any other thread
/// starts) and starts the thread that takes them.
pub fn install() -> Result<()> {
    let mut set = SigSet::empty();
    for signal in STOPPING {
        set.add(signal);
    }
    set.thread_block()
        .context("blocking SIGTERM, SIGINT and SIGHUP")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || loop {
            if let Ok(signal) = set.wait() {
                interrupted(signal);
            }
        })
        .context("starting the thread that records a stop signal")?;
    Ok(())
}

/// The message of a step stopped by `signal`.
fn message(signal: Signal, phase: PhaseKind) -> String {
    format!(
        "interrupted by {} (systemctl stop, a shutdown, or Ctrl-C): the step did not complete; \
         run 'synnefo-upgrade {phase}'{} to resume at this step",
        signal.as_str(),
        if phase == PhaseKind::Finish {
            " (or 'systemctl restart synnefo-upgrade-finish')"
        } else {
            ""
        }
    )
}

/// Records the running step as failed by `signal` and ends the process.
fn interrupted(signal: Signal) -> ! {
    // The slot first: the step's commands die of the signal, and the runner,
    // seeing them fail, must not record that before this says why.
    let slot = slot();
    let reached = children::signal_all(signal);
    match slot.as_ref() {
        Some(running) => {
            let text = message(signal, running.phase);
            if let Err(e) = record(running, &text) {
                log::error!("recording the interrupted step '{}': {e:#}", running.id);
            }
            logging::step_ended(
                running.phase,
                running.id,
                StepStatus::Failed,
                running.clock.elapsed(),
                &text,
            );
            if !reached.is_empty() {
                log::warn!(
                    "{}: passed {} on to the command(s) it ran (pid {})",
                    running.id,
                    signal.as_str(),
                    reached
                        .iter()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            if running.phase == PhaseKind::Finish && running.id == "migrate" {
                masks_again(&running.root);
            }
        }
        None => log::warn!(
            "interrupted by {} between steps: every step so far is recorded; the next run goes on from there",
            signal.as_str()
        ),
    }
    std::process::exit(128 + signal as i32)
}

fn record(running: &Running, text: &str) -> Result<()> {
    let mut state = State::load(&running.root)?.context("the state file is gone")?;
    state.set_step(StepRecord {
        phase: running.phase,
        id: running.id.to_string(),
        status: StepStatus::Failed,
        started: running.started,
        duration_ms: Some(running.clock.elapsed().as_millis() as u64),
        message: Some(text.to_string()),
    });
    state.save(&running.root)
}

/// `migrate` may have had the init system load the services unmasked ahead
/// of `unmask-services` (the masks are back on disk at once): the runner's
/// own remedy after a failed step, [`Services::load_masks_again`], through a
/// handle of this thread's (the run's is the main thread's).
///
/// [`Services::load_masks_again`]: crate::actions::services::Services::load_masks_again
fn masks_again(root: &Root) {
    if let Err(e) = crate::actions::services::for_node(root).and_then(|s| s.load_masks_again()) {
        log::warn!(
            "reloading the init system so that it sees the masks again failed ({e:#}): run 'systemctl daemon-reload'"
        );
    }
}
