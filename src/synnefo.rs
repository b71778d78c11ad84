//! Synnefo's own commands, run by argv with their output streamed to the
//! journal: `snf-manage migrate` (retried while the database is unreachable),
//! the wait for another node's migrations, `fix_ip_history`, and the
//! non-interactive Cyclades re-registration (what `snf-component-register
//! cyclades` does after its prompts).

use anyhow::{bail, Context, Result};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::changelog;
use crate::config::Config;
use crate::error::Fatal;
use crate::exec;
use crate::fsx::Root;

/// `fix_ip_history`, shipped by snf-cyclades-app 0.19.
pub const FIX_IP_HISTORY: &str = "/usr/lib/synnefo/tools/fix_ip_history";

/// Output that means the database could not be reached (yet): worth a retry.
pub const UNREACHABLE: &[&str] = &[
    "could not connect to server",
    "Connection refused",
    "the database system is starting up",
    "the database system is shutting down",
    "Can't connect to",
    "Name or service not known",
];

fn snf_manage(root: &Root) -> Result<String> {
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

/// Runs `snf-manage migrate --noinput`, retried for up to `retry_seconds`
/// while the database is unreachable; any other failure stops at once.
pub fn migrate(root: &Root, config: &Config, phase: &str, step: &str) -> Result<String> {
    let program = snf_manage(root)?;
    let deadline = Instant::now() + Duration::from_secs(config.migrations.retry_seconds);
    let mut attempt = 1;
    loop {
        let run = exec::run_logged(phase, step, &[&program, "migrate", "--noinput"], &[])?;
        if run.status.success() {
            return Ok(format!("database migrations applied (attempt {attempt})"));
        }
        let unreachable = UNREACHABLE.iter().any(|u| run.said(u));
        if !unreachable || Instant::now() >= deadline {
            bail!(
                "'snf-manage migrate' failed ({}{}); its output is in 'journalctl SYNNEFO_UPGRADE_STEP={step}'; \
                 fix the cause, then run 'synnefo-upgrade finish' (or restart synnefo-upgrade-finish.service)",
                run.status,
                if unreachable { ", the database stayed unreachable" } else { "" }
            );
        }
        log::warn!(
            "the database is not reachable yet; retrying 'snf-manage migrate' (attempt {attempt})"
        );
        std::thread::sleep(pause());
        attempt += 1;
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

/// On a node that does not migrate: waits until another node has applied
/// every migration, for up to `wait_seconds`.
pub fn wait_for_migrations(
    root: &Root,
    config: &Config,
    phase: &str,
    step: &str,
) -> Result<String> {
    let program = snf_manage(root)?;
    let deadline = Instant::now() + Duration::from_secs(config.migrations.wait_seconds);
    loop {
        let run = exec::run_logged(phase, step, &[&program, "migrate", "--list"], &[])?;
        let missing = unapplied(&run.lines);
        if run.status.success() && missing.is_empty() {
            return Ok("every migration is applied (by the node that runs them)".into());
        }
        if Instant::now() >= deadline {
            bail!(
                "after {}s, migrations are still unapplied ({}): the node with [migrations] run = true must finish \
                 first; then run 'synnefo-upgrade finish' here",
                config.migrations.wait_seconds,
                if run.status.success() { missing.join(", ") } else { format!("'snf-manage migrate --list' failed: {}", run.status) }
            );
        }
        std::thread::sleep(pause());
    }
}

/// Validates the changelog, runs `fix_ip_history` in dry-run mode (a
/// successful dry run exits 1 with "Aborting due to dry run mode"), then with
/// `--fix` when configured.
pub fn fix_ip_history(root: &Root, config: &Config, phase: &str, step: &str) -> Result<String> {
    let Some(changelog_path) = &config.fix_ip_history.changelog else {
        return Ok("no changelog configured".into());
    };
    let text = std::fs::read_to_string(root.path(changelog_path))
        .with_context(|| format!("reading '{}'", changelog_path.display()))?;
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
fn registered_urls(program: &str, phase: &str, step: &str) -> Result<Option<(String, String)>> {
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
/// URLs (configured, or the ones registered now), then
/// `snf-service-export cyclades URL | snf-manage service-import --json -`,
/// the pipe made here (no shell).
pub fn register_cyclades(root: &Root, config: &Config, phase: &str, step: &str) -> Result<String> {
    let program = snf_manage(root)?;
    let current = registered_urls(&program, phase, step)?;
    let base = config
        .cyclades
        .base_url
        .clone()
        .or_else(|| current.as_ref().map(|c| c.0.clone()));
    let ui = config
        .cyclades
        .ui_url
        .clone()
        .or_else(|| current.as_ref().map(|c| c.1.clone()));
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
        crate::logging::command_output(phase, step, "snf-manage", line);
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
}
