//! `status`: the state of every step, the managed services and masks, and where
//! the logs are — as text for the operator or JSON for fleet tooling.

use anyhow::Result;
use serde::Serialize;

use crate::fsx::Root;
use crate::policy_rcd;
use crate::services;
use crate::state::{ServiceRecord, State, StepRecord};

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
    /// What is reported, not changed (same shape as `check`'s findings):
    /// PostgreSQL clusters to upgrade, a remote AMQP `guest`, a gunicorn
    /// proxy on another host.
    pub notices: Vec<crate::preflight::Finding>,
    /// Where to read the logs.
    pub logs: Vec<String>,
}

/// Conffile versions dpkg left beside the kept ones under /etc
/// (`*.dpkg-dist`, `*.dpkg-new`), sorted.
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
                        && (name.ends_with(".dpkg-dist") || name.ends_with(".dpkg-new")) =>
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

/// Builds the report of the node under `root`.
pub fn report(root: &Root) -> Result<Report> {
    let state = State::load(root)?;
    let phase = state.as_ref().map_or_else(
        || "not-armed".to_string(),
        |s| {
            serde_json::to_value(s.phase)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default()
        },
    );
    let state = state.unwrap_or_default();
    let failed_step = state
        .steps
        .iter()
        .find(|s| s.status == crate::state::StepStatus::Failed)
        .cloned();
    let denied_actions = std::fs::read_to_string(root.path(crate::paths::DENIED_LEDGER))
        .map(|t| t.lines().map(String::from).collect())
        .unwrap_or_default();
    let mut backups = Vec::new();
    for dir in [crate::paths::BACKUP_DIR, "/var/backups/synnefo-upgrade"] {
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
    Ok(Report {
        schema: SCHEMA,
        phase,
        masked,
        policy_rcd_installed: policy_rcd::is_installed(root),
        failed_step,
        denied_actions,
        backups,
        dpkg_leftovers,
        notices: crate::notices::findings(
            root,
            &crate::dpkg::present_packages(root).unwrap_or_default(),
        ),
        services: state.services,
        steps: state.steps,
        logs: vec![
            "journalctl -u synnefo-upgrade-finish".into(),
            "journalctl SYSLOG_IDENTIFIER=synnefo-upgrade".into(),
            crate::paths::LOG_FILE.into(),
        ],
    })
}

/// Renders the report as text.
pub fn render(report: &Report) -> String {
    let mut out = format!("phase: {}\n", report.phase);
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
    out.push_str("steps:\n");
    for s in &report.steps {
        let status = serde_json::to_value(s.status)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        let ms = s
            .duration_ms
            .map(|ms| format!(" ({ms} ms)"))
            .unwrap_or_default();
        out.push_str(&format!(
            "  {:<8} {:<22} {status}{ms}",
            s.phase.name(),
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
            failed.phase.name(),
            failed.id,
            failed.message.as_deref().unwrap_or(""),
            failed.phase.name()
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
    out.push_str(&section("denied by policy-rc.d", &report.denied_actions));
    out.push_str(&section("backups", &report.backups));
    out.push_str(&section(
        "new conffile versions to review",
        &report.dpkg_leftovers,
    ));
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
