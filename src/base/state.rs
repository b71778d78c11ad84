//! The state file `/var/lib/synnefo-upgrade/state.json`: versioned,
//! `deny_unknown_fields`, written atomically through [`crate::base::fsx`].
//!
//! It records the phase, each managed service's pre-upgrade state and which
//! masks we made, and every step's outcome — the "about to run X" record is
//! written before X runs, so a crash leaves a trace and a rerun resumes.
//!
//! A state file of an older schema (left by an older version of the package,
//! which may be upgraded while a node is armed or between a failed `finish`
//! and its resume) is migrated on load, one schema at a time ([`migrate`]);
//! one of a newer schema is refused (a downgrade of the package).

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::base::error::Fatal;
use crate::base::fsx::{self, Root};
use crate::base::paths;

/// Version of the state file format.
///
/// - 1: `tool_version` was the version that created the file.
/// - 2: `tool_version` is the version that last wrote it; `prepared_by` the
///   one that ran `prepare` (migrated from 1's `tool_version`).
pub const SCHEMA: u32 = 2;

/// Where the node is in the upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// `prepare` started but has not finished.
    Preparing,
    /// `prepare` finished: waiting for dist-upgrade and reboot.
    Armed,
    /// `finish` started but has not finished (or failed and waits for a rerun).
    Finishing,
    /// The upgrade is complete.
    Done,
    /// `abort` started but has not finished.
    Aborting,
    /// `abort` put the node back as it was before `prepare`.
    Aborted,
}

impl Phase {
    /// Every phase.
    pub const ALL: [Phase; 6] = [
        Phase::Preparing,
        Phase::Armed,
        Phase::Finishing,
        Phase::Done,
        Phase::Aborting,
        Phase::Aborted,
    ];

    /// The name used in the state file, reports and messages.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Preparing => "preparing",
            Phase::Armed => "armed",
            Phase::Finishing => "finishing",
            Phase::Done => "done",
            Phase::Aborting => "aborting",
            Phase::Aborted => "aborted",
        }
    }
}

display_as_name!(Phase);

/// The phases that run steps (the commands `prepare`, `finish`, `abort`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PhaseKind {
    /// Arming, on the old system.
    Prepare,
    /// First boot under systemd.
    Finish,
    /// Taking back what prepare did, before the dist-upgrade.
    Abort,
}

impl PhaseKind {
    /// Every phase that runs steps.
    pub const ALL: [PhaseKind; 3] = [PhaseKind::Prepare, PhaseKind::Finish, PhaseKind::Abort];

    /// The name used in logs, failpoints and the state file.
    pub fn name(self) -> &'static str {
        match self {
            PhaseKind::Prepare => "prepare",
            PhaseKind::Finish => "finish",
            PhaseKind::Abort => "abort",
        }
    }
}

display_as_name!(PhaseKind);

/// A step's last known outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepStatus {
    /// Recorded before running; still so after a crash.
    Started,
    /// Completed.
    Done,
    /// Did not apply to this node.
    Skipped,
    /// Failed; a rerun retries it.
    Failed,
}

impl StepStatus {
    /// Every status.
    pub const ALL: [StepStatus; 4] = [
        StepStatus::Started,
        StepStatus::Done,
        StepStatus::Skipped,
        StepStatus::Failed,
    ];

    /// The name used in the state file, the journal (`SYNNEFO_UPGRADE_OUTCOME`) and reports.
    pub fn name(self) -> &'static str {
        match self {
            StepStatus::Started => "started",
            StepStatus::Done => "done",
            StepStatus::Skipped => "skipped",
            StepStatus::Failed => "failed",
        }
    }
}

display_as_name!(StepStatus);

/// One step's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepRecord {
    /// The phase.
    pub phase: PhaseKind,
    /// Step id, stable across releases.
    pub id: String,
    /// Outcome.
    pub status: StepStatus,
    /// Unix time when it (last) started.
    pub started: u64,
    /// Duration of the last run, when it ended.
    pub duration_ms: Option<u64>,
    /// What happened, for the operator.
    pub message: Option<String>,
}

/// A managed service as found before the upgrade.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceRecord {
    /// Init script name (`gunicorn`); the unit is `NAME.service`.
    pub name: String,
    /// Running before the upgrade (so it is started again at the end).
    pub was_active: bool,
    /// Enabled at boot before the upgrade.
    pub was_enabled: bool,
    /// Already masked before the upgrade (an admin's mask: we neither make
    /// nor remove it, and never start the service).
    pub was_masked: bool,
    /// The `/etc/default` enable flag of snf-dispatcher (`SNF_DSPTCH_ENABLE`)
    /// or snf-ganeti-eventd (`SNF_EVENTD_ENABLE`), as it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_flag: Option<String>,
}

impl ServiceRecord {
    /// Whether the service started at boot before the upgrade: enabled, and
    /// not switched off by its `/etc/default` flag (0.19's units ignore the flag).
    pub fn ran_at_boot(&self) -> bool {
        self.was_enabled
            && !self.was_masked
            && self.default_flag.as_deref().is_none_or(|v| v == "true")
    }
}

/// The node's service downtime, in Unix seconds: when `prepare` stopped the
/// managed services (the first stopped) and when `finish` (or `abort`) verified
/// the last one active again.  Added within schema 1: optional, so a state
/// file written before it loads (as `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Downtime {
    /// Unix time when the stop of the running managed services began.
    pub stopped_at: u64,
    /// Unix time when they were all verified active again.
    pub restored_at: Option<u64>,
}

/// The whole state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// [`SCHEMA`].
    pub schema: u32,
    /// Version of the tool that last wrote it.
    pub tool_version: String,
    /// Version of the tool that ran `prepare` (schema 2).
    pub prepared_by: String,
    /// Current phase.
    pub phase: Phase,
    /// Managed services, recorded by `prepare`.
    pub services: Vec<ServiceRecord>,
    /// Step records, in the order they first ran.
    pub steps: Vec<StepRecord>,
    /// The node's service downtime; `None` until a running service is stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downtime: Option<Downtime>,
    /// Whether apache2 ran before the upgrade, where it is installed
    /// (recorded by `record-services`; not a managed service: prepare neither
    /// stops nor masks it). `None` without apache2, or in a state file written
    /// before this was recorded (optional, so such files load unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apache2_was_active: Option<bool>,
}

impl State {
    /// A fresh state at the start of `prepare`.
    pub fn new() -> Self {
        State {
            schema: SCHEMA,
            tool_version: env!("CARGO_PKG_VERSION").into(),
            prepared_by: env!("CARGO_PKG_VERSION").into(),
            phase: Phase::Preparing,
            services: Vec::new(),
            steps: Vec::new(),
            downtime: None,
            apache2_was_active: None,
        }
    }

    /// Reads the state of the node, `None` when there is none.
    pub fn load(root: &Root) -> Result<Option<State>> {
        // Never read through a symbolic link (O_NOFOLLOW): the state is ours
        // alone; nor a FIFO (policy-rc.d reads it on every service action).
        let text = match crate::base::fsx::read_own_text(root, paths::STATE_FILE) {
            Ok(Some(t)) => t,
            Ok(None) => return Ok(None),
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "reading '{}' (it must be a regular file, not a symbolic link)",
                        paths::STATE_FILE
                    )
                })
            }
        };
        let bad = |e: serde_json::Error| {
            Fatal::BadInput(format!(
                "{}:{}:{}: {e}; it was not written by this version of synnefo-upgrade",
                paths::STATE_FILE,
                e.line(),
                e.column()
            ))
        };
        let value: serde_json::Value = serde_json::from_str(&text).map_err(bad)?;
        let schema = value.get("schema").and_then(serde_json::Value::as_u64);
        let value = match schema {
            Some(n) if n > u64::from(SCHEMA) => bail!(Fatal::BadInput(format!(
                "{}: schema {n} is newer than {SCHEMA}: it was written by a newer version of synnefo-upgrade; \
                 install that version (or a newer one) again",
                paths::STATE_FILE
            ))),
            Some(n) if n < u64::from(SCHEMA) => {
                log::info!(
                    "{}: migrating the state from schema {n} to {SCHEMA}",
                    paths::STATE_FILE
                );
                migrate(value, n as u32)?
            }
            Some(_) => value,
            None => bail!(Fatal::BadInput(format!(
                "{}: no numeric \"schema\": it was not written by synnefo-upgrade",
                paths::STATE_FILE
            ))),
        };
        let state: State = serde_json::from_value(value).map_err(|e| {
            Fatal::BadInput(format!(
                "{}: {e}; it was not written by this version of synnefo-upgrade",
                paths::STATE_FILE
            ))
        })?;
        Ok(Some(state))
    }

    /// Writes the state atomically, as written by this version.
    pub fn save(&self, root: &Root) -> Result<()> {
        let mut state = self.clone();
        state.tool_version = env!("CARGO_PKG_VERSION").into();
        let mut text = serde_json::to_string_pretty(&state).context("serializing the state")?;
        text.push('\n');
        fsx::write_state_file(root, paths::STATE_FILE, text.as_bytes())
    }

    /// The record of step `id` of `phase`.
    pub fn step(&self, phase: PhaseKind, id: &str) -> Option<&StepRecord> {
        self.steps.iter().find(|s| s.phase == phase && s.id == id)
    }

    /// Sets the record of step `id` of `phase`, replacing an earlier one.
    pub fn set_step(&mut self, record: StepRecord) {
        match self
            .steps
            .iter_mut()
            .find(|s| s.phase == record.phase && s.id == record.id)
        {
            Some(existing) => *existing = record,
            None => self.steps.push(record),
        }
    }

    /// Records that the managed services stop at `at`, when one of them ran
    /// and no stop was recorded yet (a rerun of the stop keeps the first time).
    pub fn services_stopping(&mut self, at: u64) {
        if self.downtime.is_none() && self.services.iter().any(|s| s.was_active) {
            self.downtime = Some(Downtime {
                stopped_at: at,
                restored_at: None,
            });
        }
    }

    /// Records that the services were verified active again at `at`, once.
    pub fn services_restored(&mut self, at: u64) {
        if let Some(d) = self.downtime.as_mut().filter(|d| d.restored_at.is_none()) {
            d.restored_at = Some(at);
        }
    }

    /// Names of the managed services.
    pub fn managed(&self) -> impl Iterator<Item = &str> {
        self.services.iter().map(|s| s.name.as_str())
    }
}

/// Brings a state document of schema `from` to [`SCHEMA`], one schema at a time.
pub fn migrate(mut value: serde_json::Value, from: u32) -> Result<serde_json::Value> {
    let object = value
        .as_object_mut()
        .ok_or_else(|| Fatal::BadInput(format!("{}: not a JSON object", paths::STATE_FILE)))?;
    let mut schema = from;
    while schema < SCHEMA {
        match schema {
            1 => {
                // Schema 1's tool_version was the version that created the file: prepare's.
                let created_by = object
                    .get("tool_version")
                    .cloned()
                    .unwrap_or_else(|| serde_json::Value::String("unknown".into()));
                object.insert("prepared_by".into(), created_by);
            }
            n => bail!(Fatal::BadInput(format!(
                "{}: schema {n} is not one this version can migrate (it reads {SCHEMA}, migrates from 1)",
                paths::STATE_FILE
            ))),
        }
        schema += 1;
        object.insert("schema".into(), schema.into());
    }
    Ok(value)
}

impl Default for State {
    fn default() -> Self {
        State::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::assert_display_is_serde_name;

    #[test]
    fn phases_and_statuses_print_as_their_serialized_names() {
        assert_display_is_serde_name(&Phase::ALL);
        assert_display_is_serde_name(&PhaseKind::ALL);
        assert_display_is_serde_name(&StepStatus::ALL);
    }

    #[test]
    fn roundtrip_and_unknown_fields_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        assert!(State::load(&root).unwrap().is_none());
        let mut state = State::new();
        state.phase = Phase::Armed;
        state.set_step(StepRecord {
            phase: PhaseKind::Prepare,
            id: "stop-services".into(),
            status: StepStatus::Started,
            started: 1,
            duration_ms: None,
            message: None,
        });
        state.set_step(StepRecord {
            phase: PhaseKind::Prepare,
            id: "stop-services".into(),
            status: StepStatus::Done,
            started: 1,
            duration_ms: Some(5),
            message: None,
        });
        state.save(&root).unwrap();
        let loaded = State::load(&root).unwrap().unwrap();
        assert_eq!(loaded, state);
        assert_eq!(loaded.steps.len(), 1);

        let host = root.path(paths::STATE_FILE);
        let text = std::fs::read_to_string(&host).unwrap().replacen(
            "\"phase\"",
            "\"surprise\": 1, \"phase\"",
            1,
        );
        std::fs::write(&host, text).unwrap();
        let err = State::load(&root).unwrap_err();
        assert!(format!("{err:#}").contains("unknown field"), "{err:#}");
    }

    #[test]
    fn a_state_file_without_downtime_loads_and_downtime_is_recorded_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        // Written before the downtime record existed (schema 1).
        let old = r#"{"schema": 1, "tool_version": "0.19.0", "phase": "armed",
            "services": [{"name": "gunicorn", "was_active": true, "was_enabled": true, "was_masked": false}],
            "steps": []}"#;
        let host = root.path(paths::STATE_FILE);
        std::fs::create_dir_all(host.parent().unwrap()).unwrap();
        std::fs::write(&host, old).unwrap();
        let mut state = State::load(&root).unwrap().unwrap();
        assert_eq!(state.downtime, None);
        state.services_restored(5);
        assert_eq!(state.downtime, None, "no stop recorded: nothing restored");
        state.services_stopping(10);
        state.services_stopping(20);
        state.services_restored(30);
        state.services_restored(40);
        let want = Some(Downtime {
            stopped_at: 10,
            restored_at: Some(30),
        });
        assert_eq!(state.downtime, want);
        state.save(&root).unwrap();
        assert_eq!(State::load(&root).unwrap().unwrap().downtime, want);

        let mut idle = State::new();
        idle.services.push(ServiceRecord {
            name: "gunicorn".into(),
            was_active: false,
            was_enabled: true,
            was_masked: false,
            default_flag: None,
        });
        idle.services_stopping(10);
        assert_eq!(idle.downtime, None, "nothing ran: no downtime");
    }

    #[test]
    fn an_armed_state_of_schema_1_is_migrated_and_one_of_a_newer_schema_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        // Exactly as version 0.1.0 (schema 1) wrote it on an armed node.
        let old = r#"{
  "schema": 1,
  "tool_version": "0.1.0",
  "phase": "armed",
  "services": [
    {
      "name": "gunicorn",
      "was_active": true,
      "was_enabled": true,
      "was_masked": false
    },
    {
      "name": "snf-dispatcher",
      "was_active": true,
      "was_enabled": true,
      "was_masked": false,
      "default_flag": "true"
    }
  ],
  "steps": [
    {
      "phase": "prepare",
      "id": "mask-services",
      "status": "done",
      "started": 1700000000,
      "duration_ms": 3,
      "message": "masked: gunicorn, snf-dispatcher"
    }
  ],
  "downtime": {
    "stopped_at": 1700000000,
    "restored_at": null
  }
}
"#;
        let host = root.path(paths::STATE_FILE);
        std::fs::create_dir_all(host.parent().unwrap()).unwrap();
        std::fs::write(&host, old).unwrap();
        let state = State::load(&root).unwrap().unwrap();
        assert_eq!(state.schema, SCHEMA);
        assert_eq!(state.phase, Phase::Armed);
        assert_eq!(state.prepared_by, "0.1.0");
        assert_eq!(state.services.len(), 2);
        assert_eq!(state.services[1].default_flag.as_deref(), Some("true"));
        assert_eq!(
            state
                .step(PhaseKind::Prepare, "mask-services")
                .unwrap()
                .status,
            StepStatus::Done
        );
        assert_eq!(state.downtime.unwrap().stopped_at, 1700000000);
        // Saved by this version: the current schema, who prepared it kept.
        state.save(&root).unwrap();
        let saved: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&host).unwrap()).unwrap();
        assert_eq!(saved["schema"], SCHEMA);
        assert_eq!(saved["prepared_by"], "0.1.0");
        assert_eq!(saved["tool_version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(State::load(&root).unwrap().unwrap(), state);

        std::fs::write(&host, old.replace("\"schema\": 1", "\"schema\": 9")).unwrap();
        let err = format!("{:#}", State::load(&root).unwrap_err());
        assert!(err.contains("schema 9 is newer"), "{err}");
    }
}
