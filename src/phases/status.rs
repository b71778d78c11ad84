//! `status`: the state of every step, the managed services and masks, and where
//! the logs are — as text for the operator or JSON for fleet tooling.

use anyhow::Result;
use serde::Serialize;

use crate::actions::policy_rcd;
use crate::actions::services;
use crate::base::clock::rfc3339;
use crate::base::fsx::Root;
use crate::base::state::{ServiceRecord, State, StepRecord};

/// Version of the `status --json` document.
pub const SCHEMA: u32 = 1;

/// The `status --json` document (see `docs/json.md`).
#[derive(Debug, Serialize)]
pub struct Report {
    /// [`SCHEMA`].
    pub schema: u32,
    /// `not-armed`, `preparing`, `armed`, `finishing`, `done`, `aborting` or `aborted`.
    pub phase: String,
    /// The step that failed last and has not been redone, with its message.
    pub failed_step: Option<StepRecord>,
    /// The node's service downtime, `null` until prepare stops a running service.
    pub downtime: Option<DowntimeReport>,
    /// Managed services as recorded before the upgrade.
    pub services: Vec<ServiceRecord>,
    /// Services masked now.
    pub masked: Vec<String>,
    /// Whether our policy-rc.d is installed.
    pub policy_rcd_installed: bool,
    /// Every step's record.
    pub steps: Vec<StepRecord>,
    /// Actions policy-rc.d denied (and services the guard stopped), one line each:
    /// `time id actions runlevel`.
    pub denied_actions: Vec<String>,
    /// Backups: originals of every file we changed, and the pre-migration dumps.
    pub backups: Vec<String>,
    /// New conffile versions dpkg left beside kept ones, to review.
    pub dpkg_leftovers: Vec<String>,
    /// gevent and greenlet as installed, against what Synnefo 0.19 needs.
    pub gevent: Vec<Installed>,
    /// What is reported, not changed (same shape as `check`'s findings):
    /// PostgreSQL clusters to upgrade, a remote AMQP `guest`, a gunicorn
    /// proxy on another host.
    pub notices: Vec<crate::base::finding::Finding>,
    /// Where to read the logs.
    pub logs: Vec<String>,
    /// The last `synnefo-upgrade check` of this node, as it kept it (the
    /// `check --json` document, with `checked_at` and `tool_version`);
    /// `null` when none was kept (or it cannot be read: logged).
    pub last_check: Option<serde_json::Value>,
    /// The last `synnefo-upgrade dist-upgrade`: its process, start, end,
    /// outcome and message, and whether it runs now; `null` when none ran.
    pub dist_upgrade: Option<crate::phases::distupgrade::Report>,
    /// The run in progress now (it holds the run lock), `null` when none:
    /// a finish that migrates for hours is followed, not timed out.
    pub running: Option<InProgress>,
}

/// A run of ours in progress.
#[derive(Debug, Serialize, PartialEq)]
pub struct InProgress {
    /// Its process id, as it wrote it into the lock file.
    pub pid: Option<u32>,
    /// Its command line, as it wrote it.
    pub command: String,
    /// The step it is in, from the state: the last one recorded `started`.
    pub step: Option<String>,
}

/// A package with a minimum version, as installed now.
#[derive(Debug, Serialize)]
pub struct Installed {
    /// The binary package (`python-gevent`, `python-greenlet`).
    pub package: String,
    /// Its version in dpkg's status; `None` when not installed.
    pub version: Option<String>,
    /// The lowest version that will do.
    pub required: String,
    /// Whether the installed version meets it, in dpkg's ordering.
    pub satisfied: bool,
}

/// gevent and greenlet as installed on the node under `root` (none when
/// dpkg's status cannot be read).
pub fn gevent(root: &Root) -> Vec<Installed> {
    let packages = crate::base::dpkg::present_packages(root).unwrap_or_default();
    crate::base::apt::GEVENT_REQUIREMENTS
        .iter()
        .map(|r| {
            let version = r.installed(&packages);
            Installed {
                package: r.package.to_string(),
                version: version.map(String::from),
                required: r.min.to_string(),
                satisfied: version.is_some_and(|v| r.is_met_by(v)),
            }
        })
        .collect()
}

/// The node's service downtime in `status --json`: RFC 3339 UTC times.
#[derive(Debug, Serialize)]
pub struct DowntimeReport {
    /// When prepare began stopping the running managed services.
    pub stopped_at: String,
    /// When finish (or abort) verified them all active again; `null` while down.
    pub restored_at: Option<String>,
    /// `restored_at - stopped_at`; `null` while down.
    pub seconds: Option<u64>,
}

impl DowntimeReport {
    fn new(d: &crate::base::state::Downtime) -> Self {
        DowntimeReport {
            stopped_at: rfc3339(d.stopped_at),
            restored_at: d.restored_at.map(rfc3339),
            seconds: d.restored_at.map(|r| r.saturating_sub(d.stopped_at)),
        }
    }
}

/// Conffile versions dpkg left beside the kept ones under /etc
/// (`*.dpkg-dist`, `*.dpkg-new`), and those ucf left beside the files it
/// manages (`*.ucf-dist`: `sshd_config`, for one, is ucf's, not dpkg's, and
/// `UCF_FORCE_CONFFOLD` keeps the admin's), sorted.
pub fn dpkg_leftovers(root: &Root) -> Vec<std::path::PathBuf> {
    fn walk(root: &Root, dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        let Ok(entries) = std::fs::read_dir(root.path(dir)) else {
            return;
        };
        for entry in entries.filter_map(|e| e.ok()) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = dir.join(&name);
            match entry.file_type() {
                Ok(t) if t.is_dir() => walk(root, &path, out),
                Ok(t)
                    if t.is_file()
                        && [".dpkg-dist", ".dpkg-new", ".ucf-dist"]
                            .iter()
                            .any(|suffix| name.ends_with(suffix)) =>
                {
                    out.push(path)
                }
                _ => {}
            }
        }
    }
    let mut found = Vec::new();
    walk(root, std::path::Path::new("/etc"), &mut found);
    found.sort();
    found
}

/// Every file under node directory `dir`, as node paths.
fn collect_files(root: &Root, dir: &std::path::Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(root.path(dir)) else {
        return;
    };
    let mut entries: Vec<_> = entries.filter_map(|e| e.ok()).collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = dir.join(entry.file_name());
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            collect_files(root, &path, out);
        } else {
            out.push(path.display().to_string());
        }
    }
}

/// How [`wait`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waited {
    /// The phase is `done`.
    Done,
    /// A step failed (and has not been redone).
    Failed,
    /// Neither, within the time given.
    TimedOut,
}

/// Whether the node's state says done or failed (`None`: neither yet).
fn settled(root: &Root) -> Result<Option<Waited>> {
    let Some(state) = State::load(root)? else {
        return Ok(None);
    };
    if state.phase == crate::base::state::Phase::Done {
        return Ok(Some(Waited::Done));
    }
    let failed = state
        .steps
        .iter()
        .any(|s| s.status == crate::base::state::StepStatus::Failed);
    Ok(failed.then_some(Waited::Failed))
}

/// `status --wait`: returns as soon as the node's phase is `done` or a step
/// failed, or when `timeout` has passed. Event-driven: the state directory is
/// watched with inotify (the state file is replaced by a rename on every
/// step), and read again on each change and at least every second (a state
/// directory that does not exist yet is looked for every 250 ms).
pub fn wait(root: &Root, timeout: std::time::Duration) -> Result<Waited> {
    use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
    use std::os::fd::AsFd;
    use std::time::{Duration, Instant};
    let deadline = Instant::now() + timeout;
    let dir = root.path(crate::base::paths::STATE_DIR);
    let mut watch: Option<Inotify> = None;
    loop {
        // Watch first, then read: a change between the two is not missed.
        if watch.is_none() {
            if let Ok(inotify) = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC) {
                let mask = AddWatchFlags::IN_MOVED_TO
                    | AddWatchFlags::IN_CLOSE_WRITE
                    | AddWatchFlags::IN_CREATE
                    | AddWatchFlags::IN_DELETE_SELF;
                if inotify.add_watch(&dir, mask).is_ok() {
                    watch = Some(inotify);
                }
            }
        }
        if let Some(found) = settled(root)? {
            return Ok(found);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(Waited::TimedOut);
        }
        match &watch {
            Some(inotify) => {
                let slice = left.min(Duration::from_secs(1));
                let ms = u16::try_from(slice.as_millis()).unwrap_or(1000);
                let mut fds = [nix::poll::PollFd::new(
                    inotify.as_fd(),
                    nix::poll::PollFlags::POLLIN,
                )];
                // EINTR and the like: read the state again.
                let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms));
                // Drain; a removed directory drops the watch (set up again above).
                if let Ok(events) = inotify.read_events() {
                    if events
                        .iter()
                        .any(|e| e.mask.contains(AddWatchFlags::IN_DELETE_SELF))
                    {
                        watch = None;
                    }
                }
            }
            None => std::thread::sleep(left.min(Duration::from_millis(250))),
        }
    }
}

/// Builds the report of the node under `root`.
pub fn report(root: &Root) -> Result<Report> {
    let state = State::load(root)?;
    let phase = state
        .as_ref()
        .map_or_else(|| "not-armed".to_string(), |s| s.phase.to_string());
    let moment = match state.as_ref().map(|s| s.phase) {
        Some(crate::base::state::Phase::Finishing | crate::base::state::Phase::Done) => {
            crate::findings::notices::Moment::AfterUpgrade
        }
        _ => crate::findings::notices::Moment::BeforeUpgrade,
    };
    let state = state.unwrap_or_default();
    let failed_step = state
        .steps
        .iter()
        .find(|s| s.status == crate::base::state::StepStatus::Failed)
        .cloned();
    let denied_actions = crate::base::fsx::read_text_opt(root, crate::base::paths::DENIED_LEDGER)
        .ok()
        .flatten()
        .map(|t| t.lines().map(String::from).collect())
        .unwrap_or_default();
    let mut backups = Vec::new();
    for dir in [
        crate::base::paths::BACKUP_DIR,
        "/var/backups/synnefo-upgrade",
    ] {
        collect_files(root, std::path::Path::new(dir), &mut backups);
    }
    let dpkg_leftovers = dpkg_leftovers(root)
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let masked = state
        .services
        .iter()
        .filter(|s| services::is_masked(root, &s.name))
        .map(|s| s.name.clone())
        .collect();
    let running = in_progress(root, &state);
    Ok(Report {
        schema: SCHEMA,
        phase,
        running,
        masked,
        policy_rcd_installed: policy_rcd::is_installed(root),
        failed_step,
        downtime: state.downtime.as_ref().map(DowntimeReport::new),
        denied_actions,
        backups,
        dpkg_leftovers,
        gevent: gevent(root),
        notices: {
            let mut notices = crate::findings::notices::findings(
                root,
                &crate::base::dpkg::present_packages(root).unwrap_or_default(),
                moment,
            );
            notices.extend(crate::base::finding::skipped_files());
            notices
        },
        services: state.services,
        steps: state.steps,
        dist_upgrade: crate::phases::distupgrade::report(root)
            .map_err(|e| log::warn!("status: {e:#}"))
            .ok()
            .flatten(),
        last_check: crate::findings::preflight::last(root)
            .map_err(|e| log::warn!("status: {e:#}"))
            .ok()
            .flatten(),
        logs: vec![
            "journalctl -u synnefo-upgrade-finish".into(),
            "journalctl SYSLOG_IDENTIFIER=synnefo-upgrade".into(),
            crate::base::paths::LOG_FILE.into(),
        ],
    })
}

/// The run that holds the lock now, if any (an error looking is logged: it
/// reads as none).
fn in_progress(root: &Root, state: &State) -> Option<InProgress> {
    let holder = crate::base::fsx::lock_holder(root)
        .map_err(|e| log::warn!("status: {e:#}"))
        .ok()??;
    let (pid, command) = crate::base::fsx::parse_lock_holder(&holder);
    Some(InProgress {
        pid,
        command: command.to_string(),
        step: state
            .steps
            .iter()
            .rfind(|s| s.status == crate::base::state::StepStatus::Started)
            .map(|s| format!("{} {}", s.phase, s.id)),
    })
}

/// The last dist-upgrade in one line: running, ended unrecorded, or how it ended.
fn dist_upgrade_line(d: &crate::phases::distupgrade::Report) -> String {
    use crate::phases::distupgrade::Outcome;
    let r = &d.record;
    match (r.outcome, d.running) {
        (Outcome::Running, true) => format!(
            "dist-upgrade: RUNNING since {} (pid {}); 'synnefo-upgrade dist-upgrade' follows it; output: {}\n",
            r.started_at, r.pid, r.log
        ),
        (Outcome::Running, false) => format!(
            "dist-upgrade: started {} (pid {}) and ended without recording how (killed?); see {}, run 'dpkg --audit', then 'synnefo-upgrade dist-upgrade' again\n",
            r.started_at, r.pid, r.log
        ),
        (outcome, _) => format!(
            "dist-upgrade: {} at {}: {}\n",
            if outcome == Outcome::Succeeded {
                "succeeded"
            } else {
                "FAILED"
            },
            r.ended_at.as_deref().unwrap_or("?"),
            r.message.as_deref().unwrap_or("")
        ),
    }
}

/// The last check in one line: when, by which version, its inhibitors and
/// warnings by id (a warning: a finding that is no inhibitor, of severity
/// high or medium, as the fleet report counts them).
fn last_check_line(doc: Option<&serde_json::Value>) -> String {
    let Some(doc) = doc else {
        return "none kept (run 'synnefo-upgrade check')".into();
    };
    let findings = doc["findings"].as_array().map_or(&[][..], Vec::as_slice);
    let ids = |keep: &dyn Fn(&serde_json::Value) -> bool| -> String {
        let ids: Vec<&str> = findings
            .iter()
            .filter(|f| keep(f))
            .filter_map(|f| f["id"].as_str())
            .collect();
        if ids.is_empty() {
            "none".into()
        } else {
            ids.join(", ")
        }
    };
    format!(
        "{} (synnefo-upgrade {}): inhibitors: {}; warnings: {}",
        doc["checked_at"].as_str().unwrap_or("?"),
        doc["tool_version"].as_str().unwrap_or("?"),
        ids(&|f| f["inhibitor"] == true),
        ids(&|f| f["inhibitor"] != true && (f["severity"] == "high" || f["severity"] == "medium")),
    )
}

/// Renders the report as text.
pub fn render(report: &Report) -> String {
    let mut out = format!("phase: {}\n", report.phase);
    if let Some(run) = &report.running {
        out.push_str(&format!(
            "running: {} (pid {}){}\n",
            run.command,
            run.pid.map_or_else(|| "?".to_string(), |p| p.to_string()),
            run.step
                .as_ref()
                .map_or_else(String::new, |s| format!(", in {s}"))
        ));
    }
    out.push_str("services:\n");
    for s in &report.services {
        out.push_str(&format!(
            "  {:<20} before: {}{}{}\n",
            s.name,
            if s.was_active { "running" } else { "stopped" },
            if s.was_enabled { ", enabled" } else { "" },
            if s.was_masked {
                ", masked by the admin"
            } else {
                ""
            }
        ));
    }
    out.push_str(&format!(
        "masked now: {}\n",
        if report.masked.is_empty() {
            "none".into()
        } else {
            report.masked.join(", ")
        }
    ));
    out.push_str(&format!(
        "policy-rc.d: {}\n",
        if report.policy_rcd_installed {
            "installed"
        } else {
            "not installed"
        }
    ));
    if let Some(d) = &report.downtime {
        out.push_str(&format!(
            "service downtime: {} -> {}\n",
            d.stopped_at,
            match (&d.restored_at, d.seconds) {
                (Some(at), Some(s)) => format!("{at} ({s} s)"),
                _ => "still down".into(),
            }
        ));
    }
    out.push_str("steps:\n");
    for s in &report.steps {
        let status = s.status;
        let ms = s
            .duration_ms
            .map(|ms| format!(" ({ms} ms)"))
            .unwrap_or_default();
        out.push_str(&format!(
            "  {:<8} {:<22} {status}{ms}",
            s.phase.to_string(),
            s.id
        ));
        if let Some(message) = &s.message {
            out.push_str(&format!(": {message}"));
        }
        out.push('\n');
    }
    if let Some(failed) = &report.failed_step {
        out.push_str(&format!(
            "FAILED: {} {}: {}\n  fix the cause, then run 'synnefo-upgrade {}' (it resumes at this step)\n",
            failed.phase,
            failed.id,
            failed.message.as_deref().unwrap_or(""),
            failed.phase
        ));
    }
    let section = |title: &str, items: &[String]| {
        if items.is_empty() {
            format!("{title}: none\n")
        } else {
            format!(
                "{title}:\n{}",
                items.iter().map(|i| format!("  {i}\n")).collect::<String>()
            )
        }
    };
    if let Some(d) = &report.dist_upgrade {
        out.push_str(&dist_upgrade_line(d));
    }
    out.push_str(&format!(
        "last check: {}\n",
        last_check_line(report.last_check.as_ref())
    ));
    out.push_str(&section("denied by policy-rc.d", &report.denied_actions));
    out.push_str(&section("backups", &report.backups));
    out.push_str(&section(
        "new conffile versions to review",
        &report.dpkg_leftovers,
    ));
    let gevent: Vec<String> = report
        .gevent
        .iter()
        .map(|g| match &g.version {
            Some(v) => format!(
                "{} {v} ({} >= {})",
                g.package,
                if g.satisfied { "meets" } else { "NOT" },
                g.required
            ),
            None => format!("{} not installed", g.package),
        })
        .collect();
    out.push_str(&format!("gevent/greenlet: {}\n", gevent.join(", ")));
    if !report.notices.is_empty() {
        out.push_str("reported, not changed:\n");
        for n in &report.notices {
            out.push_str(&format!(
                "  [{}] {}\n      what to do: {}\n",
                n.id, n.title, n.remediation.hint
            ));
            for c in &n.remediation.commands {
                out.push_str(&format!("        # {c}\n"));
            }
        }
    }
    out.push_str(&format!("logs: {}\n", report.logs.join(" | ")));
    out
}
