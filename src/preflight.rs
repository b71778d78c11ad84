//! Preflight: the findings that decide whether this node may be armed.
//!
//! Shared by `check` (which reports them) and `prepare` (which refuses to run,
//! exit 3, when one of them inhibits). Read-only.

use serde::Serialize;

use crate::config::Config;
use crate::error::Fatal;
use crate::fsx::Root;
use crate::node;
use crate::state::{Phase, State};

/// One finding of the preflight.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Finding {
    /// Stable id.
    pub id: &'static str,
    /// `info`, `low`, `medium` or `high`.
    pub severity: &'static str,
    /// Blocks the upgrade.
    pub inhibitor: bool,
    /// One line.
    pub title: String,
    /// What to do about it.
    pub hint: String,
}

fn inhibitor(id: &'static str, title: String, hint: impl Into<String>) -> Finding {
    Finding {
        id,
        severity: "high",
        inhibitor: true,
        title,
        hint: hint.into(),
    }
}

/// The findings for the node under `root`.
pub fn findings(root: &Root, config: &Config) -> Vec<Finding> {
    let mut found = Vec::new();
    if root.is_live() && !nix::unistd::geteuid().is_root() {
        found.push(inhibitor(
            "not-root",
            "synnefo-upgrade must run as root".into(),
            "run it as root (sudo)",
        ));
    }
    match node::os_codename(root) {
        Ok(codename) if codename == config.release.os_from => {}
        Ok(codename) => found.push(inhibitor(
            "os-release",
            format!("the OS is '{codename}', not '{}'", config.release.os_from),
            format!(
                "upgrade only from {}; see [release] os_from in the configuration",
                config.release.os_from
            ),
        )),
        Err(e) => found.push(inhibitor(
            "os-release",
            format!("the OS release is unknown: {e:#}"),
            "check /etc/os-release",
        )),
    }
    match State::load(root) {
        Ok(None) => {}
        Ok(Some(state)) if state.phase == Phase::Preparing => {}
        Ok(Some(state)) => found.push(inhibitor(
            "already-armed",
            format!("this node is already in phase '{:?}'", state.phase).to_lowercase(),
            "see 'synnefo-upgrade status'",
        )),
        Err(e) => found.push(inhibitor(
            "state-file",
            format!("{e:#}"),
            "inspect or move away /var/lib/synnefo-upgrade/state.json",
        )),
    }
    let services = managed_services(root, config);
    if services.is_empty() {
        found.push(Finding {
            id: "no-services",
            severity: "low",
            inhibitor: false,
            title: "no Synnefo service found on this node".into(),
            hint: "nothing will be stopped; set [services] managed to override".into(),
        });
    }
    found
}

/// Fails with [`Fatal::Inhibited`] (exit 3) naming every inhibitor and its remedy.
pub fn ensure_no_inhibitor(root: &Root, config: &Config) -> anyhow::Result<()> {
    let blocking: Vec<String> = findings(root, config)
        .into_iter()
        .filter(|f| f.inhibitor)
        .map(|f| format!("{} (what to do: {})", f.title, f.hint))
        .collect();
    if blocking.is_empty() {
        Ok(())
    } else {
        Err(Fatal::Inhibited(blocking.join("; ")).into())
    }
}

/// The services this node's upgrade manages: the configuration's list, or the
/// Synnefo services installed here.
pub fn managed_services(root: &Root, config: &Config) -> Vec<String> {
    config
        .services
        .managed
        .clone()
        .unwrap_or_else(|| node::installed_services(root))
}

/// The `check --json` document (see `docs/json.md`).
#[derive(Debug, Serialize)]
pub struct Report {
    /// Version of this document.
    pub schema: u32,
    /// Facts about the node.
    pub node: NodeFacts,
    /// Findings, inhibitors first.
    pub findings: Vec<Finding>,
    /// Step ids of each phase, in order.
    pub plan: Plan,
}

/// Facts about the node in the report.
#[derive(Debug, Serialize)]
pub struct NodeFacts {
    /// OS codename, or why it is unknown.
    pub os: String,
    /// `systemd`, `sysvinit` or `offline`.
    pub init: &'static str,
    /// Services the upgrade manages.
    pub services: Vec<String>,
}

/// The plan in the report.
#[derive(Debug, Serialize)]
pub struct Plan {
    /// Steps of `prepare`.
    pub prepare: Vec<&'static str>,
    /// Steps of `finish`.
    pub finish: Vec<&'static str>,
}

/// The preflight report of the node under `root`.
pub fn report(root: &Root, config: &Config) -> Report {
    use crate::plan::steps;
    use crate::state::PhaseKind;
    let mut findings = findings(root, config);
    findings.sort_by_key(|f| !f.inhibitor);
    Report {
        schema: 1,
        node: NodeFacts {
            os: node::os_codename(root).unwrap_or_else(|e| format!("unknown ({e:#})")),
            init: node::InitSystem::detect(root).name(),
            services: managed_services(root, config),
        },
        findings,
        plan: Plan {
            prepare: steps(PhaseKind::Prepare).iter().map(|s| s.id()).collect(),
            finish: steps(PhaseKind::Finish).iter().map(|s| s.id()).collect(),
        },
    }
}

/// Renders the report as text, inhibitors first.
pub fn render(report: &Report) -> String {
    let mut out = format!(
        "node: OS {}, init {}, services: {}\n",
        report.node.os,
        report.node.init,
        if report.node.services.is_empty() {
            "none".into()
        } else {
            report.node.services.join(", ")
        }
    );
    for f in &report.findings {
        let kind = if f.inhibitor { "INHIBITOR" } else { f.severity };
        out.push_str(&format!(
            "{kind}: {} [{}]\n    what to do: {}\n",
            f.title, f.id, f.hint
        ));
    }
    if !report.findings.iter().any(|f| f.inhibitor) {
        out.push_str("no inhibitor: this node can be armed ('synnefo-upgrade prepare')\n");
    }
    out.push_str(&format!(
        "plan: prepare: {}\n      finish: {}\n",
        report.plan.prepare.join(" → "),
        report.plan.finish.join(" → ")
    ));
    out
}
