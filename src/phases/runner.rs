//! Runs a phase: takes the lock, loads or creates the state, resumes after the
//! last completed step, records "started" before each step and its outcome
//! after, logs both to the journal, and offers a failpoint after each step.
//!
//! One run at a time, and each decides on the node as the lock finds it: a
//! phase reads the state without the lock first (a node with nothing of ours,
//! or an inhibited fresh node, is left exactly as it was: not even the lock
//! file), then takes the lock and reads the state again, and the re-read state
//! decides ([`lock_and_reread`]). When another run held the lock or changed
//! the state meanwhile, what the context gathered from the node before (facts,
//! preflight findings) is gathered again ([`Ctx::refresh`]).
//!
//! `--dry-run` takes no lock and writes nothing: it lists what would run.

use anyhow::{anyhow, bail, Context, Result};
use nix::fcntl::{Flock, FlockArg};
use std::time::{Duration, Instant};

use crate::base::error::Fatal;
use crate::base::finding;
use crate::base::logging;
use crate::base::state::{Phase, PhaseKind, State, StepRecord, StepStatus};
use crate::phases::interrupt;
use crate::phases::plan::{self, Ctx};

/// Holds the run lock until dropped.
pub struct Lock {
    _held: Flock<std::fs::File>,
    waited: bool,
}

impl Lock {
    /// Whether another run held the lock when this one asked for it (so this
    /// run waited, and the node may have changed under the other run).
    pub fn waited(&self) -> bool {
        self.waited
    }
}

/// The failpoint just before a run takes the lock, after it looked at the node
/// without it (`FAILPOINTS=before-lock=sleep(MS)` widens that window in tests).
pub const BEFORE_LOCK: &str = "before-lock";

pub use crate::base::fsx::{lock_wait, LOCK_WAIT_DEFAULT, LOCK_WAIT_ENV};

/// Who holds the lock, from what the holder wrote into the lock file
/// (`PID COMMAND`), and whether that process is alive.
fn holder(root: &crate::base::fsx::Root) -> String {
    let text = crate::base::fsx::read_text_opt(root, crate::base::paths::LOCK_FILE)
        .ok()
        .flatten()
        .unwrap_or_default();
    let (pid, command) = crate::base::fsx::parse_lock_holder(&text);
    match pid.and_then(|p| i32::try_from(p).ok()) {
        Some(pid) if pid > 0 => {
            let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
            format!(
                "PID {pid} ('{command}'{})",
                if alive {
                    ""
                } else {
                    ", which is no longer running: the lock is held by a process it started"
                }
            )
        }
        _ => "an unknown process (the lock file names none)".into(),
    }
}

/// Takes the run lock, waiting for it a bounded time ([`LOCK_WAIT_DEFAULT`],
/// or [`LOCK_WAIT_ENV`] seconds); then records this process as the holder.
/// A lock still held after the wait is [`Fatal::Busy`], naming the holder:
/// nothing was changed.
pub fn lock(root: &crate::base::fsx::Root) -> Result<Lock> {
    let wait = lock_wait()?;
    fail::fail_point!(BEFORE_LOCK);
    let deadline = Instant::now() + wait;
    let mut file = crate::base::fsx::open_lock(root)?;
    let mut waited = false;
    let mut flock = loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(flock) => break flock,
            Err((back, errno)) if errno == nix::errno::Errno::EWOULDBLOCK => {
                if Instant::now() >= deadline {
                    bail!(Fatal::Busy(format!(
                        "another synnefo-upgrade run holds the lock '{}': {}; waited {} s, nothing was changed; run this again when it has ended",
                        crate::base::paths::LOCK_FILE,
                        holder(root),
                        wait.as_secs()
                    )));
                }
                if !waited {
                    log::info!(
                        "waiting up to {} s for the lock '{}', held by {}",
                        wait.as_secs(),
                        crate::base::paths::LOCK_FILE,
                        holder(root)
                    );
                    waited = true;
                }
                file = back;
                std::thread::sleep(Duration::from_millis(200));
            }
            Err((_, errno)) => {
                return Err(anyhow!(
                    "locking '{}': {errno}",
                    crate::base::paths::LOCK_FILE
                ))
            }
        }
    };
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    crate::base::fsx::write_lock_holder(&mut flock, &format!("{} {command}", std::process::id()))?;
    Ok(Lock {
        _held: flock,
        waited,
    })
}

/// Takes the lock for a phase that read the state as `seen` without it, and
/// reads the state again: the phase decides on what this returns. When the
/// state changed meanwhile, or another run held the lock (and may have
/// changed the node without changing the state), what the context gathered
/// from the node before the lock is gathered again.
fn lock_and_reread(ctx: &mut Ctx, seen: &Option<State>) -> Result<(Lock, Option<State>)> {
    let lock = lock(&ctx.root)?;
    let state = State::load(&ctx.root)?;
    if state != *seen {
        let phase = |s: &Option<State>| s.as_ref().map_or("none".into(), |s| s.phase.to_string());
        log::info!(
            "another run changed the state before this one took the lock (phase '{}' then, '{}' now): deciding on the node as it is now",
            phase(seen),
            phase(&state)
        );
    }
    if state != *seen || lock.waited() {
        ctx.refresh();
    }
    Ok((lock, state))
}

/// `prepare`: arm the node. On an armed node, verify every protection and
/// restore the missing ones ([`crate::phases::rearm`]).
pub fn prepare(ctx: &mut Ctx, dry_run: bool) -> Result<()> {
    let seen = State::load(&ctx.root);
    if !matches!(&seen, Ok(Some(s)) if s.phase != Phase::Aborted) {
        // A fresh node (or a foreign state file): an inhibited node is left
        // exactly as it was, not even a state file or the lock written.
        // The `preflight` step reuses this evaluation (Ctx::preflight).
        finding::ensure_no_inhibitor(ctx.preflight())?;
    }
    let seen = seen?;
    if dry_run {
        return prepare_from(ctx, armable(seen), true);
    }
    let (_lock, state) = lock_and_reread(ctx, &seen)?;
    let state = armable(state);
    if state.is_none() {
        // Fresh under the lock: the evaluation above when nothing changed
        // meanwhile, else one of the node as it is now (another run aborted
        // it, say).
        finding::ensure_no_inhibitor(ctx.preflight())?;
    }
    prepare_from(ctx, state, false)
}

/// The state `prepare` goes on from: none (a fresh start) for an aborted node.
fn armable(state: Option<State>) -> Option<State> {
    state.filter(|s| s.phase != Phase::Aborted)
}

/// `prepare` on the node whose state is `state` (`None`: fresh).
fn prepare_from(ctx: &mut Ctx, state: Option<State>, dry_run: bool) -> Result<()> {
    match state {
        Some(state) if state.phase == Phase::Armed => {
            ctx.state = state;
            if dry_run {
                println!("prepare: already armed: would verify every protection and restore what is missing");
                return Ok(());
            }
            let restored = crate::phases::rearm::reverify(ctx)?;
            // Written by this version (a state of an older schema is migrated on disk).
            ctx.state.save(&ctx.root)?;
            if restored.is_empty() {
                log::info!("this node is already armed; every protection is in place (see 'synnefo-upgrade status')");
            } else {
                log::warn!(
                    "this node is armed, but protections were missing; restored: {}",
                    restored.join("; ")
                );
            }
            return Ok(());
        }
        Some(state) if state.phase == Phase::Done => {
            // E.g. a later version of this package installed on an upgraded node.
            log::info!(
                "the upgrade of this node is done; nothing to arm (see 'synnefo-upgrade status')"
            );
            return Ok(());
        }
        Some(state) if state.phase == Phase::Preparing => ctx.state = state,
        Some(state) => bail!(Fatal::Inhibited(format!(
            "this node is in phase '{}': prepare is for a node that has not been upgraded",
            state.phase
        ))),
        None => ctx.state = State::new(),
    }
    run_steps(ctx, PhaseKind::Prepare, dry_run)?;
    if !dry_run {
        ctx.state.phase = Phase::Armed;
        ctx.state.save(&ctx.root)?;
        logging::phase_done(
            PhaseKind::Prepare,
            "armed: run 'synnefo-upgrade dist-upgrade --reboot' (or 'apt-get update && apt-get dist-upgrade', then reboot)",
        );
    }
    Ok(())
}

/// The state of a phase that needs one, and the lock it holds: `None` (and
/// nothing written, not even the lock file) on a node that has no state; else
/// the state as the lock finds it ([`lock_and_reread`]). A dry run takes no
/// lock and decides on the state as read.
fn locked_state(ctx: &mut Ctx, dry_run: bool) -> Result<(Option<Lock>, Option<State>)> {
    let seen = State::load(&ctx.root)?;
    if seen.is_none() || dry_run {
        return Ok((None, seen));
    }
    let (lock, state) = lock_and_reread(ctx, &seen)?;
    Ok((Some(lock), state))
}

/// `finish`: complete the upgrade (resuming a failed or interrupted run).
pub fn finish(ctx: &mut Ctx, dry_run: bool) -> Result<()> {
    let (_lock, state) = locked_state(ctx, dry_run)?;
    let state = state.ok_or_else(|| {
        Fatal::BadInput("this node is not armed: run 'synnefo-upgrade prepare' first".into())
    })?;
    match state.phase {
        Phase::Done => {
            log::info!("the upgrade of this node is already done; nothing to do");
            return Ok(());
        }
        Phase::Preparing => bail!(Fatal::BadInput(
            "prepare did not complete on this node: run 'synnefo-upgrade prepare' first".into()
        )),
        Phase::Aborting | Phase::Aborted => bail!(Fatal::BadInput(
            "the upgrade of this node was aborted: there is nothing to finish".into()
        )),
        Phase::Armed | Phase::Finishing => {}
    }
    ctx.state = state;
    if !dry_run {
        ctx.state.phase = Phase::Finishing;
        ctx.state.save(&ctx.root)?;
    }
    if let Err(err) = run_steps(ctx, PhaseKind::Finish, dry_run) {
        reload_masks_after_failure(ctx);
        return Err(err);
    }
    if !dry_run {
        ctx.state.phase = Phase::Done;
        ctx.state.save(&ctx.root)?;
        logging::phase_done(PhaseKind::Finish, "the upgrade of this node is done");
    }
    Ok(())
}

/// After a failed `finish`: when `migrate` had the init system load the
/// units unmasked ahead ([`crate::actions::services::Services::load_unmasked_ahead`])
/// and `unmask-services` has not run, the masks are on disk but not in the
/// init system's memory, where `systemctl start` would still start a unit.
/// One reload puts the safe state back there too (only on this failure path:
/// the reload is what the happy path saves).
fn reload_masks_after_failure(ctx: &mut Ctx) {
    let ran = |id| {
        ctx.state
            .step(PhaseKind::Finish, id)
            .is_some_and(|r| r.status != StepStatus::Failed || id == "migrate")
    };
    if !ran("migrate") || ran("unmask-services") {
        return;
    }
    if let Err(e) = ctx.services.load_masks_again() {
        log::warn!(
            "reloading the init system so that it sees the masks again failed ({e:#}): run 'systemctl daemon-reload'"
        );
    }
}

/// `abort`: before the dist-upgrade, take back everything `prepare` did and
/// start the services that ran. Refused (exit 3, nothing changed) once dpkg
/// has changed a package since `prepare`.
pub fn abort(ctx: &mut Ctx) -> Result<()> {
    let (_lock, state) = locked_state(ctx, false)?;
    let state = state.ok_or_else(|| {
        Fatal::BadInput("this node is not armed: there is nothing to abort".into())
    })?;
    match state.phase {
        Phase::Preparing | Phase::Armed | Phase::Aborting => {}
        Phase::Aborted => {
            log::info!("the upgrade of this node is already aborted; nothing to do");
            return Ok(());
        }
        Phase::Finishing | Phase::Done => bail!(Fatal::Inhibited(format!(
            "this node is past the dist-upgrade (phase '{}'): abort is only possible before it",
            state.phase
        ))),
    }
    ctx.state = state;
    // The gate changes nothing: run it before the phase is recorded as aborting.
    if ctx.state.phase != Phase::Aborting {
        let gate = plan::find(PhaseKind::Abort, "abort-gate")
            .context("the abort plan has no 'abort-gate' step")?;
        ctx.step = gate.id;
        (gate.run)(ctx)?;
    }
    ctx.state.phase = Phase::Aborting;
    ctx.state.save(&ctx.root)?;
    run_steps(ctx, PhaseKind::Abort, false)?;
    // Every change is taken back: a later prepare starts a new record.
    crate::base::fsx::forget_changes(&ctx.root)?;
    ctx.state.phase = Phase::Aborted;
    ctx.state.save(&ctx.root)?;
    logging::phase_done(
        PhaseKind::Abort,
        "the node is back as it was before prepare",
    );
    Ok(())
}

/// `guard` (the APT `DPkg::Post-Invoke` hook): while armed, stop any managed
/// service that something started behind policy-rc.d's back, and record it.
pub fn guard(ctx: &mut Ctx) -> Result<()> {
    let guarded = |s: &State| matches!(s.phase, Phase::Preparing | Phase::Armed);
    // Locked only where there is something to guard: a package run on any
    // other node writes nothing. Under the lock the phase is read again: an
    // abort or finish that ran meanwhile has started the services on purpose.
    let Some(seen) = State::load(&ctx.root)?.filter(guarded) else {
        return Ok(());
    };
    let (_lock, state) = lock_and_reread(ctx, &Some(seen))?;
    let Some(state) = state.filter(guarded) else {
        return Ok(());
    };
    let mut running = Vec::new();
    for service in state.services.iter().filter(|s| !s.was_masked) {
        if ctx.services.is_active(&service.name)? {
            running.push(service.name.clone());
        }
    }
    if running.is_empty() {
        return Ok(());
    }
    log::warn!(
        "guard: {} came up during a package run; stopping it until the upgrade finishes",
        running.join(", ")
    );
    ctx.services.stop(&running)?;
    for name in &running {
        let line = format!("{} {name} guard-stopped -", crate::base::clock::now());
        crate::base::fsx::append_line(&ctx.root, crate::base::paths::DENIED_LEDGER, &line)?;
    }
    Ok(())
}

fn record(
    ctx: &mut Ctx,
    phase: PhaseKind,
    id: &str,
    status: StepStatus,
    started: u64,
    elapsed: Option<u64>,
    message: Option<String>,
) -> Result<()> {
    ctx.state.set_step(StepRecord {
        phase,
        id: id.to_string(),
        status,
        started,
        duration_ms: elapsed,
        message,
    });
    ctx.state.save(&ctx.root)
}

fn run_steps(ctx: &mut Ctx, phase: PhaseKind, dry_run: bool) -> Result<()> {
    for step in plan::steps(phase) {
        let id = step.id;
        if let Some(done) = ctx
            .state
            .step(phase, id)
            .filter(|r| matches!(r.status, StepStatus::Done | StepStatus::Skipped))
        {
            log::debug!("{phase}: {id}: already {} in an earlier run", done.status);
            continue;
        }
        let applies = (step.applies)(ctx);
        if dry_run {
            println!(
                "{phase}: {id}: {} — {}",
                if applies { "would run" } else { "would skip" },
                step.title
            );
            continue;
        }
        let started = crate::base::clock::now();
        if !applies {
            record(
                ctx,
                phase,
                id,
                StepStatus::Skipped,
                started,
                Some(0),
                Some("does not apply to this node".into()),
            )?;
            logging::step_ended(
                phase,
                id,
                StepStatus::Skipped,
                std::time::Duration::ZERO,
                "does not apply to this node",
            );
            continue;
        }
        // The "about to run" record reaches the disk before the step changes
        // anything; from then on a stop signal is recorded on the step.
        let clock = Instant::now();
        {
            let mut running = interrupt::slot();
            record(ctx, phase, id, StepStatus::Started, started, None, None)?;
            *running = Some(interrupt::Running {
                root: ctx.root.clone(),
                phase,
                id,
                started,
                clock,
            });
        }
        logging::step_started(phase, id, step.title);
        ctx.step = id;
        let result = (step.run)(ctx);
        let elapsed = clock.elapsed();
        let ms = Some(elapsed.as_millis() as u64);
        // Held while the outcome is recorded: a signal now waits for it.
        let mut running = interrupt::slot();
        *running = None;
        match result {
            Ok(message) => {
                record(
                    ctx,
                    phase,
                    id,
                    StepStatus::Done,
                    started,
                    ms,
                    Some(message.clone()),
                )?;
                logging::step_ended(phase, id, StepStatus::Done, elapsed, &message);
            }
            Err(err) => {
                let message = format!("{err:#}");
                record(
                    ctx,
                    phase,
                    id,
                    StepStatus::Failed,
                    started,
                    ms,
                    Some(message.clone()),
                )
                .context("recording a failed step")?;
                logging::step_ended(phase, id, StepStatus::Failed, elapsed, &message);
                return Err(err.context(format!("{phase}: step '{id}' failed")));
            }
        }
        drop(running);
        // Crash point after every step that changed the system (FAILPOINTS=NAME=panic).
        let failpoint = format!("{phase}-after-{id}");
        fail::fail_point!(&failpoint);
    }
    Ok(())
}
