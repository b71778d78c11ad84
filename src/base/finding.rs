//! A finding: what a source of findings (the APT simulation, the boot
//! readiness, the notices, the Synnefo, web server and gunicorn checks, the
//! files skipped) says about the node, how much it matters, whether it
//! inhibits, and what to do. The bottom of the pipeline facts -> findings ->
//! plan -> runner: every source and the logging use these types; the
//! preflight only gathers findings.

use serde::Serialize;

use crate::base::error::Fatal;

/// How much a finding matters (an inhibitor is always high).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Blocks or endangers the upgrade.
    High,
    /// Needs a decision before arming.
    Medium,
    /// Worth a look.
    Low,
    /// For the record.
    Info,
}

impl Severity {
    /// Every severity, from the most severe.
    pub const ALL: [Severity; 4] = [
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Info,
    ];

    /// The name in reports and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
            Severity::Info => "info",
        }
    }
}

display_as_name!(Severity);

/// What to do about a finding.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Remediation {
    /// In words.
    pub hint: String,
    /// Commands that do it (to run by hand, where they apply).
    pub commands: Vec<String>,
}

/// One finding of the preflight.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Finding {
    /// Stable id (kept across releases; see docs/json.md).
    pub id: &'static str,
    /// How much it matters.
    pub severity: Severity,
    /// Blocks the upgrade.
    pub inhibitor: bool,
    /// One line.
    pub title: String,
    /// The details.
    pub summary: String,
    /// What to do.
    pub remediation: Remediation,
}

impl Finding {
    pub(crate) fn new(
        id: &'static str,
        severity: Severity,
        title: impl Into<String>,
        summary: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Finding {
            id,
            severity,
            inhibitor: false,
            title: title.into(),
            summary: summary.into(),
            remediation: Remediation {
                hint: hint.into(),
                commands: Vec::new(),
            },
        }
    }

    pub(crate) fn inhibitor(
        id: &'static str,
        title: impl Into<String>,
        summary: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Finding {
            inhibitor: true,
            ..Finding::new(id, Severity::High, title, summary, hint)
        }
    }

    pub(crate) fn commands(mut self, commands: impl IntoIterator<Item = String>) -> Self {
        self.remediation.commands = commands.into_iter().collect();
        self
    }
}

/// `not-a-regular-file`: each node file this run skipped because it is not
/// a regular file (a FIFO, a socket, a device, a directory: see
/// [`crate::base::fsx::skipped`]); each was also logged as a warning when met.
pub fn skipped_files() -> Vec<Finding> {
    crate::base::fsx::skipped()
        .into_iter()
        .map(|skipped| {
            Finding::new(
                "not-a-regular-file",
                Severity::Medium,
                format!("'{}' is {}, not a regular file", skipped.path.display(), skipped.kind),
                "synnefo-upgrade skipped it: it reads no node file that is not a regular file (a FIFO would block it forever); a program that reads every file of that directory (APT, gunicorn, Apache) may hang or fail on it",
                "move it out of the way, or replace it by a regular file, then run this again",
            )
        })
        .collect()
}

/// Fails with [`Fatal::Inhibited`] (exit 3) naming every inhibitor of `findings` and its remedy.
pub fn ensure_no_inhibitor(findings: &[Finding]) -> anyhow::Result<()> {
    let blocking: Vec<String> = findings
        .iter()
        .filter(|f| f.inhibitor)
        .map(|f| {
            format!(
                "{}: {} (what to do: {})",
                f.title, f.summary, f.remediation.hint
            )
        })
        .collect();
    if blocking.is_empty() {
        Ok(())
    } else {
        Err(Fatal::Inhibited(format!(
            "preflight inhibited the upgrade: {}",
            blocking.join("; ")
        ))
        .into())
    }
}
