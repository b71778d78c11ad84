//! Synnefo's own commands, run by argv with their output streamed to the
//! journal: `snf-manage migrate` (retried while the database is unreachable),
//! the wait for another node's migrations, `fix_ip_history`, and the
//! non-interactive Cyclades re-registration (what `snf-component-register
//! cyclades` does after its prompts).

use crate::base::state::PhaseKind;
use anyhow::{bail, Context, Result};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::base::changelog;
use crate::base::error::Fatal;
use crate::base::exec;
use crate::base::fsx::Root;
use crate::inputs::config::Config;

/// `fix_ip_history`, shipped by snf-cyclades-app 0.19.
pub const FIX_IP_HISTORY: &str = "/usr/lib/synnefo/tools/fix_ip_history";

/// Output that means the database could not be reached (yet): worth a retry.
/// A database server that reboots inside the outage (a node of its own)
/// answers nothing for a while: no route, no answer within the connect
/// timeout, a connection cut as it shuts down.
pub const UNREACHABLE: &[&str] = &[
    "could not connect to server",
    "Connection refused",
    "the database system is starting up",
    "the database system is shutting down",
    "Can't connect to",
    "Name or service not known",
    "No route to host",
    "Network is unreachable",
    "timeout expired",
    "server closed the connection unexpectedly",
];

/// Whether `said` (an error, a command's output) means the database could
/// not be reached (yet): [`UNREACHABLE`].
pub fn unreachable(said: &str) -> bool {
    UNREACHABLE.iter().any(|u| said.contains(u))
}

/// The node's `snf-manage`.
pub fn snf_manage(root: &Root) -> Result<String> {
    Ok(exec::find(root, "snf-manage")?
        .to_string_lossy()
        .into_owned())
}

/// Pause between two attempts (shortened by the test knob below).
pub fn pause() -> Duration {
    let ms = std::env::var("SYNNEFO_UPGRADE_RETRY_PAUSE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    Duration::from_millis(ms)
}

/// The wait for a database server that cannot be reached, shared by the
/// steps that need one (the backups' dump, the guard's first look, `migrate`):
/// a server that reboots inside the outage (a database node of its own,
/// upgraded in the same wave) is waited for as long as it takes, unless
/// `[migrations] retry_seconds` sets a bound. Only [`UNREACHABLE`] failures
/// wait; any other one is the caller's to report at once.
pub struct ServerWait {
    started: Instant,
    limit: Option<Duration>,
    said: Option<Instant>,
    /// Attempts so far (1 before the first wait).
    pub attempt: u32,
}

/// How often a wait says it still waits (a warning in the journal).
const SAY_EVERY: Duration = Duration::from_secs(60);

impl ServerWait {
    /// A wait that starts now, bounded as `config` says.
    pub fn new(config: &Config) -> ServerWait {
        ServerWait {
            started: Instant::now(),
            limit: ServerWait::limit(config.migrations.retry_seconds),
            said: None,
            attempt: 1,
        }
    }

    /// How long a wait lasts, for messages.
    pub fn bound(limit: Option<Duration>) -> String {
        match limit {
            Some(limit) => format!("waiting up to {}s, [migrations] retry_seconds", limit.as_secs()),
            None => "waiting as long as it takes: a database server that reboots inside the outage comes back"
                .into(),
        }
    }

    /// The bound `[migrations] retry_seconds` sets (0: none).
    pub fn limit(retry_seconds: u64) -> Option<Duration> {
        (retry_seconds > 0).then(|| Duration::from_secs(retry_seconds))
    }

    /// After an attempt at `what` that could not reach the database (`why`):
    /// pauses and returns Ok to try again, or, past the bound, Err saying so.
    pub fn again(&mut self, what: &str, why: &str) -> Result<()> {
        let waited = self.started.elapsed().as_secs();
        if self
            .limit
            .is_some_and(|limit| self.started.elapsed() >= limit)
        {
            bail!(
                "{what}: the database stayed unreachable for {waited}s ([migrations] retry_seconds): {why}"
            );
        }
        if self.said.is_none_or(|t| t.elapsed() >= SAY_EVERY) {
            log::warn!(
                "{what}: the database server cannot be reached (attempt {}, {waited}s so far; {}): {why}",
                self.attempt,
                ServerWait::bound(self.limit)
            );
            self.said = Some(Instant::now());
        }
        std::thread::sleep(pause());
        self.attempt += 1;
        Ok(())
    }
}

/// Runs `snf-manage migrate --noinput`, again while the database is
/// unreachable ([`ServerWait`]); any other failure stops at once.
pub fn migrate(root: &Root, config: &Config, phase: PhaseKind, step: &str) -> Result<String> {
    let program = snf_manage(root)?;
    let mut wait = ServerWait::new(config);
    loop {
        let run = exec::run_logged(phase, step, &[&program, "migrate", "--noinput"], &[])?;
        if run.status.success() {
            return Ok(format!(
                "database migrations applied (attempt {})",
                wait.attempt
            ));
        }
        let unreachable = UNREACHABLE.iter().any(|u| run.said(u));
        let gave_up = if unreachable {
            match wait.again("'snf-manage migrate'", "could not connect to the database") {
                Ok(()) => continue,
                Err(_) => true,
            }
        } else {
            false
        };
        bail!(
            "'snf-manage migrate' failed ({}{}); its output is in 'journalctl SYNNEFO_UPGRADE_STEP={step}'; \
             fix the cause, then run 'synnefo-upgrade finish' (or restart synnefo-upgrade-finish.service)",
            run.status,
            if gave_up {
                format!(
                    ", the database stayed unreachable for {}s, [migrations] retry_seconds",
                    config.migrations.retry_seconds
                )
            } else {
                String::new()
            }
        );
    }
}

/// Unapplied migrations in `snf-manage migrate --list` output (Django 1.7: `[ ] name`).
pub fn unapplied(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l.trim_start().starts_with("[ ]"))
        .map(|l| l.trim().to_string())
        .collect()
}

/// One migration in South's `migrate --list` output (Synnefo 0.18.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SouthMigration {
    /// The app label it belongs to (`db`, `im`, ...).
    pub app: String,
    /// Its name (`0002_auto__add_field`).
    pub name: String,
    /// Marked `(*)`.
    pub applied: bool,
}

/// Parses South's `migrate --list`: an app label on a line of its own (South
/// prints `" " + label`), then one line per migration, `  (*) NAME` when
/// applied (with ` (applied DATE)` at higher verbosity) and `  ( ) NAME` when
/// not. Anything else (warnings, blank lines) is skipped; a migration line
/// before any app label is attributed to `?`. Never panics.
pub fn parse_south_list(text: &str) -> Vec<SouthMigration> {
    let mut app: Option<String> = None;
    let mut found = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        let (applied, rest) = if let Some(rest) = t.strip_prefix("(*)") {
            (true, rest)
        } else if let Some(rest) = t.strip_prefix("( )") {
            (false, rest)
        } else {
            let is_label = !t.is_empty()
                && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !t.starts_with(|c: char| c.is_ascii_digit());
            if is_label {
                app = Some(t.to_string());
            }
            continue;
        };
        let Some(name) = rest.split_whitespace().next() else {
            continue;
        };
        found.push(SouthMigration {
            app: app.clone().unwrap_or_else(|| "?".into()),
            name: name.to_string(),
            applied,
        });
    }
    found
}

/// South's `migrate --list` on this node, quietly: its output, or why there is none.
pub fn south_listing(root: &Root) -> std::result::Result<String, String> {
    let program = snf_manage(root).map_err(|e| format!("{e:#}"))?;
    let (status, text) =
        exec::run_captured(&[&program, "migrate", "--list"]).map_err(|e| format!("{e:#}"))?;
    if status.success() {
        Ok(text)
    } else {
        let tail: Vec<&str> = text.lines().rev().take(3).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        Err(format!(
            "'snf-manage migrate --list' failed ({status}): {}",
            tail.join(" / ")
        ))
    }
}

/// The database-readiness findings of a node that will run the migrations:
/// every South migration of 0.18.1 applied, or an inhibitor naming each one
/// that is not (0.19's first Django migrations are faked over the schema, so
/// a schema behind 0.18.1's stays behind); a listing that cannot be had is a
/// warning, never silence.
pub fn south_findings(
    listing: &std::result::Result<String, String>,
) -> Vec<crate::base::finding::Finding> {
    use crate::base::finding::{Finding, Severity};
    let unknown = |why: String| {
        vec![Finding::new(
            "south-migrations-unknown",
            Severity::Medium,
            "whether 0.18.1's South migrations are all applied is unknown",
            why,
            "run 'snf-manage migrate --list' and apply what is marked '( )' before arming",
        )]
    };
    let text = match listing {
        Err(why) => return unknown(why.clone()),
        Ok(text) => text,
    };
    let migrations = parse_south_list(text);
    if migrations.is_empty() {
        return unknown("'snf-manage migrate --list' listed no South migration".into());
    }
    let pending: Vec<&SouthMigration> = migrations.iter().filter(|m| !m.applied).collect();
    if pending.is_empty() {
        return Vec::new();
    }
    let mut apps: Vec<&str> = pending.iter().map(|m| m.app.as_str()).collect();
    apps.dedup();
    vec![Finding::inhibitor(
        "south-migrations-pending",
        format!("{} South migration(s) of 0.18.1 are not applied", pending.len()),
        format!(
            "not applied: {}; 0.19 replaces South with Django migrations whose initial ones are faked over the existing schema, so it must be 0.18.1's whole",
            pending
                .iter()
                .map(|m| format!("{} {}", m.app, m.name))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        "apply them on 0.18.1 first (on this node, the one that runs the migrations), then check again",
    )
    .commands(apps.iter().map(|a| format!("snf-manage migrate {a}")))]
}

/// Validates the changelog, runs `fix_ip_history` in dry-run mode (a
/// successful dry run exits 1 with "Aborting due to dry run mode"), then with
/// `--fix` when configured.
pub fn fix_ip_history(
    root: &Root,
    config: &Config,
    phase: PhaseKind,
    step: &str,
) -> Result<String> {
    let Some(changelog_path) = &config.fix_ip_history.changelog else {
        return Ok("no changelog configured".into());
    };
    let text = crate::base::fsx::read_text(root, changelog_path)?;
    let changes = changelog::validate(&text).map_err(|bad| {
        let lines: Vec<String> = bad
            .iter()
            .map(|b| format!("{}:{}: {}", changelog_path.display(), b.line, b.problem))
            .collect();
        Fatal::BadInput(lines.join("; "))
    })?;
    let tool = exec::find(root, FIX_IP_HISTORY)?;
    let tool = tool.to_string_lossy();
    let file = root.path(changelog_path);
    let file = file.to_string_lossy();
    let dry = exec::run_logged(phase, step, &[&tool, &file], &[])?;
    if !dry.said("Aborting due to dry run mode") {
        bail!(
            "the dry run of fix_ip_history failed ({}) without its 'Aborting due to dry run mode' ending; see \
             'journalctl SYNNEFO_UPGRADE_STEP={step}'",
            dry.status
        );
    }
    if !config.fix_ip_history.fix {
        return Ok(format!(
            "dry run of {} change(s) succeeded; set [fix_ip_history] fix = true to apply",
            changes.len()
        ));
    }
    let fix = exec::run_logged(phase, step, &[&tool, "--fix", &file], &[])?;
    if !fix.status.success() {
        bail!(
            "'fix_ip_history --fix' failed ({}); see 'journalctl SYNNEFO_UPGRADE_STEP={step}'",
            fix.status
        );
    }
    Ok(format!(
        "IP history fixed for {} owner change(s)",
        changes.len()
    ))
}

/// The registered Cyclades URLs, from `snf-manage component-list`.
fn registered_urls(
    program: &str,
    phase: PhaseKind,
    step: &str,
) -> Result<Option<(String, String)>> {
    let list = exec::run_logged(
        phase,
        step,
        &[
            program,
            "component-list",
            "-o",
            "name,base_url,ui_url",
            "--output-format=csv",
            "--no-headers",
        ],
        &[],
    )?;
    if !list.status.success() {
        bail!("'snf-manage component-list' failed ({})", list.status);
    }
    Ok(list.lines.iter().find_map(|line| {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        (fields.len() == 3 && fields[0] == "cyclades")
            .then(|| (fields[1].to_string(), fields[2].to_string()))
    }))
}

/// Re-registers Cyclades on the Astakos node: `component-modify` with the
/// URLs (configured, or else the ones registered now), then
/// `snf-service-export cyclades URL | snf-manage service-import --json -`,
/// the pipe made here (no shell).
pub fn register_cyclades(
    root: &Root,
    config: &Config,
    phase: PhaseKind,
    step: &str,
) -> Result<String> {
    let program = snf_manage(root)?;
    // The registered URLs only where the configuration leaves one unset:
    // each snf-manage run starts Django (seconds on a real node).
    let (base, ui) = match (&config.cyclades.base_url, &config.cyclades.ui_url) {
        (Some(base), Some(ui)) => (Some(base.clone()), Some(ui.clone())),
        (base, ui) => {
            let current = registered_urls(&program, phase, step)?;
            (
                base.clone()
                    .or_else(|| current.as_ref().map(|c| c.0.clone())),
                ui.clone().or_else(|| current.as_ref().map(|c| c.1.clone())),
            )
        }
    };
    let (Some(base), Some(ui)) = (base, ui) else {
        bail!("Cyclades is not registered and [cyclades] base_url/ui_url are not set: set them and run 'synnefo-upgrade finish'");
    };
    let modify = exec::run_logged(
        phase,
        step,
        &[
            &program,
            "component-modify",
            "cyclades",
            "--base-url",
            &base,
            "--ui-url",
            &ui,
            "--purge-services",
        ],
        &[],
    )?;
    if !modify.status.success() {
        bail!(
            "'snf-manage component-modify cyclades' failed ({})",
            modify.status
        );
    }
    let export = exec::find(root, "snf-service-export")?;
    let mut exporter = Command::new(&export)
        .args(["cyclades", &base])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting '{} cyclades {base}'", export.display()))?;
    let pipe = exporter
        .stdout
        .take()
        .context("no pipe from snf-service-export")?;
    let import = Command::new(&program)
        .args(["service-import", "--json", "-"])
        .stdin(Stdio::from(pipe))
        .output()
        .context("running 'snf-manage service-import --json -'")?;
    let exported = exporter.wait().context("waiting for snf-service-export")?;
    for line in String::from_utf8_lossy(&import.stdout)
        .lines()
        .chain(String::from_utf8_lossy(&import.stderr).lines())
    {
        crate::base::logging::command_output(phase, step, "snf-manage", line);
    }
    if !exported.success() || !import.status.success() {
        bail!(
            "re-registering Cyclades failed (snf-service-export: {exported}, service-import: {}); run \
             'snf-component-register cyclades' by hand or fix the cause and run 'synnefo-upgrade finish'",
            import.status
        );
    }
    Ok(format!(
        "Cyclades re-registered with base URL {base} and UI URL {ui}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::arbitrary_texts;

    /// What psql (15, and 9.x's wording) says while the database server
    /// reboots, and what it says when the credentials are wrong.
    #[test]
    fn a_rebooting_server_is_worth_a_retry_and_a_wrong_password_is_not() {
        let retry = unreachable;
        for said in [
            "psql: error: connection to server at \"10.0.0.1\", port 5432 failed: No route to host",
            "psql: error: connection to server at \"10.0.0.1\", port 5432 failed: timeout expired",
            "psql: could not connect to server: Network is unreachable",
            "server closed the connection unexpectedly\n\tThis probably means the server terminated abnormally",
            "FATAL:  the database system is starting up",
        ] {
            assert!(retry(said), "{said}");
        }
        assert!(!retry(
            "psql: error: connection to server at \"10.0.0.1\", port 5432 failed: FATAL:  password authentication failed for user \"synnefo\""
        ));
    }

    #[test]
    fn unapplied_migrations_from_the_list() {
        let lines: Vec<String> = [
            "db",
            " [X] 0001_initial",
            " [ ] 0002_ipaddresshistory",
            "im",
            " [X] 0001_initial",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(unapplied(&lines), ["[ ] 0002_ipaddresshistory"]);
    }

    /// South's own layout (south/management/commands/migrate.py, its tutorial).
    const SOUTH_LIST: &str = " db\n  (*) 0001_initial\n  (*) 0002_auto__add_field_virtualmachine_task\n  ( ) 0003_auto__add_ipaddresshistory\n\n im\n  (*) 0001_initial  (applied 2016-03-01 10:00:00)\n  ( ) 0002_auto\n\n";

    #[test]
    fn south_list_parsed_by_app_with_applied_marks() {
        let parsed = parse_south_list(SOUTH_LIST);
        let got: Vec<(String, String, bool)> = parsed
            .iter()
            .map(|m| (m.app.clone(), m.name.clone(), m.applied))
            .collect();
        let want = [
            ("db", "0001_initial", true),
            ("db", "0002_auto__add_field_virtualmachine_task", true),
            ("db", "0003_auto__add_ipaddresshistory", false),
            ("im", "0001_initial", true),
            ("im", "0002_auto", false),
        ];
        assert_eq!(
            got,
            want.iter()
                .map(|(a, n, x)| (a.to_string(), n.to_string(), *x))
                .collect::<Vec<_>>()
        );
        // Warnings before the list are not app labels.
        let noisy = format!("/usr/lib/python2.7/dist-packages/x.py:1: DeprecationWarning: y\n  import z\n{SOUTH_LIST}");
        assert_eq!(parse_south_list(&noisy), parsed);
    }

    #[test]
    fn pending_south_migrations_inhibit_naming_app_and_migration() {
        let found = south_findings(&Ok(SOUTH_LIST.into()));
        assert_eq!(found.len(), 1);
        let f = &found[0];
        assert_eq!(f.id, "south-migrations-pending");
        assert!(f.inhibitor);
        assert!(
            f.summary.contains("db 0003_auto__add_ipaddresshistory"),
            "{}",
            f.summary
        );
        assert!(f.summary.contains("im 0002_auto"), "{}", f.summary);
        assert_eq!(
            f.remediation.commands,
            ["snf-manage migrate db", "snf-manage migrate im"]
        );

        let all_applied = SOUTH_LIST.replace("( )", "(*)");
        assert!(south_findings(&Ok(all_applied)).is_empty());
    }

    #[test]
    fn an_unreadable_south_list_is_a_warning_not_silence() {
        for listing in [
            Err("command 'snf-manage' not found".to_string()),
            Ok("Operations to perform: ...\n".to_string()),
        ] {
            let found = south_findings(&listing);
            assert_eq!(found.len(), 1, "{listing:?}");
            assert_eq!(found[0].id, "south-migrations-unknown");
            assert!(!found[0].inhibitor);
        }
    }

    #[test]
    fn south_parser_survives_arbitrary_input() {
        let alphabet = b" ()*\n\t_ab0123\xc3\xa9\r(";
        for text in arbitrary_texts(alphabet, 0x9e37_79b9_7f4a_7c15, 2000, 200) {
            for m in parse_south_list(&text) {
                assert!(!m.name.is_empty() && !m.name.contains(char::is_whitespace));
            }
            let _ = south_findings(&Ok(text));
        }
    }
}
