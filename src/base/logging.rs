//! Logging: journald with structured fields when its socket exists, the same
//! records on stderr for the operator, and `/var/log/synnefo-upgrade.log` when
//! there is no journald (wheezy).
//!
//! Every step start and end is one record with the fields of docs/design.md §3.3 and a
//! fixed `MESSAGE_ID` per event kind, explained in the shipped catalog.

use log::{kv, Level, LevelFilter, Log, Metadata, Record};
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;
use systemd_journal_logger::JournalLog;

use crate::base::paths;
use crate::base::state::{PhaseKind, StepStatus};

/// `MESSAGE_ID`s, one per event kind (see `debian/synnefo-upgrade.catalog`).
pub mod message_id {
    /// A step started.
    pub const STEP_STARTED: &str = "334a790f83b14dabb55628c57a68bef0";
    /// A step completed.
    pub const STEP_DONE: &str = "a6502350f7b34c4cbb1b5b2d96d12c35";
    /// A step did not apply to this node.
    pub const STEP_SKIPPED: &str = "27de067ec0eb46f58f7f47659d04f8ba";
    /// A step failed; the phase stopped.
    pub const STEP_FAILED: &str = "3f3d36b1587241fca98792f016b3c9f4";
    /// A whole phase completed.
    pub const PHASE_DONE: &str = "e275fdda39dd4ad29c8f2efe42865e91";
    /// A line of an external command's output.
    pub const COMMAND_OUTPUT: &str = "5e8e09afbb52489895f8c72baa714865";
    /// policy-rc.d denied an action.
    pub const ACTION_DENIED: &str = "c647b75156494f82880cb6da19997add";
    /// Something reported, not changed (a notice), with its finding id.
    pub const NOTICE: &str = "0895a5d3c2f34daa84b459d0a6a61ddf";
}

/// Syslog identifier of our journal entries.
pub const IDENTIFIER: &str = "synnefo-upgrade";

/// While set, records go to the journal (or the node's log file) only, not to
/// stderr: `dist-upgrade`'s worker replays into the journal the lines its
/// commands already wrote to its stderr, the log file.
static STDERR_PAUSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

struct Logger {
    journal: Option<JournalLog>,
    stderr: bool,
    file: Option<Mutex<File>>,
}

/// Collects a record's key-values as `KEY=value` pairs.
struct Fields(Vec<String>);

impl<'kvs> kv::VisitSource<'kvs> for Fields {
    fn visit_pair(&mut self, key: kv::Key<'kvs>, value: kv::Value<'kvs>) -> Result<(), kv::Error> {
        self.0
            .push(format!("{}={}", key.as_str().to_ascii_uppercase(), value));
        Ok(())
    }
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        if let Some(journal) = &self.journal {
            journal.log(record);
        }
        if self.stderr && !STDERR_PAUSED.load(std::sync::atomic::Ordering::Relaxed) {
            let prefix = match record.level() {
                Level::Error => "error: ",
                Level::Warn => "warning: ",
                _ => "",
            };
            // Never a panic: stderr may be a log file on a full disk.
            let _ = writeln!(
                std::io::stderr(),
                "synnefo-upgrade: {prefix}{}",
                record.args()
            );
        }
        if let Some(file) = &self.file {
            let mut fields = Fields(Vec::new());
            let _ = record.key_values().visit(&mut fields);
            if let Ok(mut f) = file.lock() {
                let _ = writeln!(
                    f,
                    "{} {} {} {}",
                    crate::base::clock::now(),
                    record.level(),
                    record.args(),
                    fields.0.join(" ")
                );
            }
        }
    }

    fn flush(&self) {}
}

/// Installs the logger. `verbosity` counts `-v`. Under `--root` nothing goes to
/// the journal or the node's log file: only stderr.
pub fn init(verbosity: u8, live: bool) {
    let journal = (live && Path::new(paths::JOURNAL_SOCKET).exists())
        .then(|| JournalLog::new().ok())
        .flatten()
        .map(|j| j.with_syslog_identifier(IDENTIFIER.to_string()));
    let file = (live && journal.is_none())
        .then(|| {
            crate::base::fsx::open_append(&crate::base::fsx::Root::new("/"), paths::LOG_FILE).ok()
        })
        .flatten()
        .map(Mutex::new);
    // The finish unit sets this so that stderr does not duplicate the journal.
    let stderr = std::env::var_os("SYNNEFO_UPGRADE_NO_STDERR").is_none() || journal.is_none();
    let level = match verbosity {
        0 => LevelFilter::Info,
        1 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    };
    if log::set_boxed_logger(Box::new(Logger {
        journal,
        stderr,
        file,
    }))
    .is_ok()
    {
        log::set_max_level(level);
    }
}

/// A step of a phase started.
pub fn step_started(phase: PhaseKind, step: &str, title: &str) {
    let phase = phase.name();
    log::info!(
        message_id = message_id::STEP_STARTED,
        synnefo_upgrade_phase = phase,
        synnefo_upgrade_step = step;
        "{phase}: {step}: {title}"
    );
}

/// A step of a phase ended with `outcome` (done, skipped or failed).
pub fn step_ended(
    phase: PhaseKind,
    step: &str,
    outcome: StepStatus,
    duration: Duration,
    message: &str,
) {
    let (id, level) = match outcome {
        StepStatus::Done => (message_id::STEP_DONE, Level::Info),
        StepStatus::Skipped => (message_id::STEP_SKIPPED, Level::Info),
        StepStatus::Failed | StepStatus::Started => (message_id::STEP_FAILED, Level::Error),
    };
    let (phase, outcome) = (phase.name(), outcome.name());
    let ms = duration.as_millis() as u64;
    log::log!(
        level,
        message_id = id,
        synnefo_upgrade_phase = phase,
        synnefo_upgrade_step = step,
        synnefo_upgrade_outcome = outcome,
        synnefo_upgrade_duration_ms = ms;
        "{phase}: {step}: {outcome} ({ms} ms): {message}"
    );
}

/// A whole phase completed.
pub fn phase_done(phase: PhaseKind, message: &str) {
    let phase = phase.name();
    log::info!(
        message_id = message_id::PHASE_DONE,
        synnefo_upgrade_phase = phase;
        "{phase}: {message}"
    );
}

/// One line of an external command's output, attributed to its step.
pub fn command_output(phase: PhaseKind, step: &str, command: &str, line: &str) {
    let phase = phase.name();
    log::info!(
        message_id = message_id::COMMAND_OUTPUT,
        synnefo_upgrade_phase = phase,
        synnefo_upgrade_step = step,
        synnefo_upgrade_command = command;
        "{command}: {line}"
    );
}

/// The lines of a command of `dist-upgrade`'s transaction (apt-get, dpkg and
/// the maintainer scripts they run), which it wrote to the log file itself,
/// into the journal (or the node's log file), as [`command_output`] logs a
/// step's; not to stderr, which is that log file.
pub fn dist_upgrade_output(command: &str, lines: &[String]) {
    use std::sync::atomic::Ordering;
    STDERR_PAUSED.store(true, Ordering::Relaxed);
    for line in lines {
        log::info!(
            message_id = message_id::COMMAND_OUTPUT,
            synnefo_upgrade_phase = "dist-upgrade",
            synnefo_upgrade_command = command;
            "{command}: {line}"
        );
    }
    STDERR_PAUSED.store(false, Ordering::Relaxed);
}

/// A notice (reported, not changed) that a step found: one record each, with
/// its finding id in `SYNNEFO_UPGRADE_FINDING`, what to do and the commands.
pub fn notice(phase: PhaseKind, step: &str, finding: &crate::base::finding::Finding) {
    let phase = phase.name();
    let id = finding.id;
    let commands = if finding.remediation.commands.is_empty() {
        String::new()
    } else {
        format!("; commands: {}", finding.remediation.commands.join("; "))
    };
    log::warn!(
        message_id = message_id::NOTICE,
        synnefo_upgrade_phase = phase,
        synnefo_upgrade_step = step,
        synnefo_upgrade_finding = id;
        "{phase}: {step}: notice {id}: {}; what to do: {}{commands}",
        finding.title,
        finding.remediation.hint
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::finding::{Finding, Severity};

    /// Keeps every record as the journal would get it: the message and the
    /// `KEY=value` fields (uppercased, as systemd-journal-logger writes them).
    struct Capture(Mutex<Vec<(Level, String, Vec<String>)>>);

    impl Log for Capture {
        fn enabled(&self, _: &Metadata) -> bool {
            true
        }
        fn log(&self, record: &Record) {
            let mut fields = Fields(Vec::new());
            let _ = record.key_values().visit(&mut fields);
            if let Ok(mut records) = self.0.lock() {
                records.push((record.level(), record.args().to_string(), fields.0));
            }
        }
        fn flush(&self) {}
    }

    static CAPTURE: Capture = Capture(Mutex::new(Vec::new()));

    #[test]
    fn a_notice_is_one_record_with_its_finding_id_as_a_field() {
        let _ = log::set_logger(&CAPTURE);
        log::set_max_level(LevelFilter::Trace);
        let finding = Finding::new(
            "postgresql-clusters",
            Severity::Medium,
            "PostgreSQL clusters of two versions: 9.1/main, 9.4/main",
            "summary",
            "drop the empty one, upgrade the old one",
        )
        .commands(["pg_upgradecluster 9.1 main".to_string()]);
        notice(PhaseKind::Finish, "report-notices-under-test", &finding);
        let records = CAPTURE.0.lock().unwrap();
        let ours: Vec<_> = records
            .iter()
            .filter(|(_, _, f)| {
                f.contains(&"SYNNEFO_UPGRADE_STEP=report-notices-under-test".into())
            })
            .collect();
        assert_eq!(ours.len(), 1, "{records:?}");
        let (level, message, fields) = ours[0];
        assert_eq!(*level, Level::Warn);
        for field in [
            format!("MESSAGE_ID={}", message_id::NOTICE),
            "SYNNEFO_UPGRADE_PHASE=finish".into(),
            "SYNNEFO_UPGRADE_FINDING=postgresql-clusters".into(),
        ] {
            assert!(fields.contains(&field), "{field} in {fields:?}");
        }
        assert!(message.contains("notice postgresql-clusters"), "{message}");
        assert!(message.contains("pg_upgradecluster 9.1 main"), "{message}");
    }

    #[test]
    fn the_catalog_explains_every_message_id() {
        let catalog = include_str!("../../debian/synnefo-upgrade.catalog");
        for id in [
            message_id::STEP_STARTED,
            message_id::STEP_DONE,
            message_id::STEP_SKIPPED,
            message_id::STEP_FAILED,
            message_id::PHASE_DONE,
            message_id::COMMAND_OUTPUT,
            message_id::ACTION_DENIED,
            message_id::NOTICE,
        ] {
            assert!(
                catalog.contains(&format!("-- {id}\n")),
                "{id} is not in the catalog"
            );
        }
    }
}
