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
    /// `not-armed`, `preparing`, `armed`, `finishing` or `done`.
    pub phase: String,
    /// Managed services as recorded before the upgrade.
    pub services: Vec<ServiceRecord>,
    /// Services masked now.
    pub masked: Vec<String>,
    /// Whether our policy-rc.d is installed.
    pub policy_rcd_installed: bool,
    /// Every step's record.
    pub steps: Vec<StepRecord>,
    /// Where to read the logs.
    pub logs: Vec<String>,
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
    out.push_str(&format!("logs: {}\n", report.logs.join(" | ")));
    out
}
