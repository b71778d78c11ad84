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

use crate::paths;
use crate::state::{PhaseKind, StepStatus};

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
}

/// Syslog identifier of our journal entries.
pub const IDENTIFIER: &str = "synnefo-upgrade";

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
        if self.stderr {
            let prefix = match record.level() {
                Level::Error => "error: ",
                Level::Warn => "warning: ",
                _ => "",
            };
            eprintln!("synnefo-upgrade: {prefix}{}", record.args());
        }
        if let Some(file) = &self.file {
            let mut fields = Fields(Vec::new());
            let _ = record.key_values().visit(&mut fields);
            if let Ok(mut f) = file.lock() {
                let _ = writeln!(
                    f,
                    "{} {} {} {}",
                    crate::state::now(),
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
        .then(|| crate::fsx::open_append(&crate::fsx::Root::new("/"), paths::LOG_FILE).ok())
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
