//! What each command does, between the parsed command line and the modules
//! that do the work. `main.rs` calls [`run`]; the exit code comes from here
//! on success and from [`crate::base::error::exit_code`] on error.

use anyhow::{bail, Result};
use serde::Serialize;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use crate::base::error::{Fatal, EXIT_BUSY, EXIT_INHIBITED, EXIT_STEP_FAILED};
use crate::base::fsx::Root;
use crate::base::state::{Phase, PhaseKind, State};
use crate::cli::{Cli, Command};
use crate::inputs::config::{self, Config};
use crate::inputs::node::Facts;
use crate::phases::plan::{self, Ctx};
use crate::{
    actions::policy_rcd, actions::services, base::changelog, convert, findings::aptsim,
    findings::preflight, phases::runner, phases::status,
};

fn print(json: bool, report: &impl Serialize, text: impl FnOnce() -> String) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{}", text());
    }
    Ok(())
}

/// Runs the command of `cli` on the node under `root`.
pub fn run(cli: Cli, root: Root) -> Result<ExitCode> {
    match cli.command {
        Command::PolicyRcd { args } => Ok(ExitCode::from(policy_rcd::run(&root, &args) as u8)),
        Command::Status { json, wait } => {
            let waited = match wait {
                Some(secs) => Some(status::wait(&root, Duration::from_secs(secs))?),
                None => None,
            };
            let report = status::report(&root)?;
            print(json, &report, || status::render(&report))?;
            Ok(ExitCode::from(match waited {
                None | Some(status::Waited::Done) => 0,
                Some(status::Waited::Failed) => EXIT_STEP_FAILED,
                Some(status::Waited::TimedOut) => {
                    log::warn!(
                        "status --wait: the upgrade neither ended nor failed within {} s",
                        wait.unwrap_or(0)
                    );
                    EXIT_BUSY
                }
            }))
        }
        Command::ValidateChangelog { file } => {
            print!("{}", changelog::check_file(&file)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { json, no_save } => {
            let config = config::load(&root, cli.config.as_deref())?;
            // The services' current state when the init system answers; "unknown" otherwise.
            let services = services::for_node(&root).ok();
            let facts = Facts::gather(&root);
            let steps = preflight::Plan {
                prepare: plan::ids(PhaseKind::Prepare),
                finish: plan::ids(PhaseKind::Finish),
            };
            let mut report = preflight::report(&root, &config, &facts, services.as_deref(), steps);
            // After the findings: their simulation recorded what it unpacks.
            let dumps =
                config.backups.enabled && config.migrations.run && facts.has_django_project();
            report.forecast = crate::base::forecast::forecast(
                crate::actions::dbguard::database_sizes(&root, dumps),
            );
            report.forecast.postgresql_clusters =
                crate::findings::notices::postgresql_cluster_sizes(&root);
            print(json, &report, || {
                preflight::render(&report) + &crate::base::forecast::render(&report.forecast)
            })?;
            // Kept for `status --json` and the fleet report; a check that
            // cannot keep it (not root, a link in place of the state
            // directory) has still checked: it says so and exits as it would.
            if no_save {
                log::debug!("check --no-save: the report is not kept");
            } else if let Err(e) = preflight::save(&root, &report) {
                log::warn!(
                    "check: the report above was not kept in {} ({e:#}); 'synnefo-upgrade status --json' shows the one before, if any",
                    crate::base::paths::CHECK_REPORT
                );
            }
            let inhibited = report.findings.iter().any(|f| f.inhibitor);
            Ok(ExitCode::from(if inhibited { EXIT_INHIBITED } else { 0 }))
        }
        Command::Convert { dry_run, force } => {
            let config = config::load(&root, cli.config.as_deref())?;
            let mut conversion = convert::plan(&root, &config)?;
            if !dry_run && !conversion.is_empty() {
                if !force {
                    ensure_upgraded(&root, &config, &conversion)?;
                }
                // Locked only once there is something to write: a refused or
                // empty conversion leaves the tree exactly as it was (the lock
                // file names its holder). Planned again under the lock: a run
                // that held it (finish's conversion) may have changed the files
                // since. `apply` re-checks every file against that plan.
                let _lock = runner::lock(&root)?;
                conversion = convert::plan(&root, &config)?;
                conversion.apply(&root)?;
            }
            print!("{}", conversion.report(dry_run));
            Ok(ExitCode::SUCCESS)
        }
        Command::Prepare {
            download_only: true,
            ..
        } => download_only(&root, cli.config.as_deref()),
        Command::Prepare {
            dry_run, download, ..
        } => phase(&root, cli.config, download, |ctx| {
            runner::prepare(ctx, dry_run)
        }),
        Command::Finish { dry_run } => {
            phase(&root, cli.config, false, |ctx| runner::finish(ctx, dry_run))
        }
        Command::DistUpgrade {
            reboot,
            worker: false,
            ..
        } => {
            // Bad configuration is said here (exit 2), not in the worker's log.
            config::load(&root, cli.config.as_deref())?;
            crate::phases::distupgrade::run(&root, cli.config.as_deref(), reboot)
        }
        Command::DistUpgrade {
            reboot,
            worker: true,
            run_id,
        } => {
            let config = config::load(&root, cli.config.as_deref())?;
            crate::phases::distupgrade::worker(&root, &config, reboot, &run_id)
        }
        Command::Abort => {
            // Not while apt and dpkg run (abort would restore the sources
            // under the transaction), and none starts while abort runs.
            let _no_dist_upgrade = crate::phases::distupgrade::exclude(&root)?;
            phase(&root, cli.config, false, runner::abort)
        }
        Command::Guard => phase(&root, cli.config, false, runner::guard),
    }
}

/// `convert` gives the configuration the 0.19 shape, which the release before
/// the dist-upgrade does not read: refused ([`Fatal::Inhibited`], exit 3: the
/// node's state, not the input, is in the way; nothing changed) unless the
/// node runs the release `finish` ends on (the OS `[release] os_to`, every
/// Synnefo package at 0.19), as `finish` checks before its own conversion.
fn ensure_upgraded(root: &Root, config: &Config, conversion: &convert::Conversion) -> Result<()> {
    let os_to = &config.release.os_to;
    let why = Facts::gather(root).not_upgraded(os_to, plan::finish::TO_VERSION);
    if why.is_empty() {
        return Ok(());
    }
    bail!(Fatal::Inhibited(format!(
        "convert refused: this node is not upgraded yet ({}); the conversion gives the configuration the shape Synnefo 0.19 on {os_to} reads, which breaks this node: {}. \
         'synnefo-upgrade finish' converts at the first boot under {os_to}; 'synnefo-upgrade convert --dry-run' shows the changes. \
         To convert now all the same, run 'synnefo-upgrade convert --force' (a later prepare and abort take it back); nothing was changed",
        why.join("; "),
        conversion.old_release_breaks().join("; ")
    )))
}

/// `prepare --download-only`: the new release's packages into the archive
/// cache ([`aptsim::download`]); nothing armed, no file of the tool written
/// (not even the lock: nothing here conflicts with a run that holds it).
fn download_only(root: &Root, config_file: Option<&Path>) -> Result<ExitCode> {
    let config = config::load(root, config_file)?;
    match State::load(root)?.map(|s| s.phase) {
        Some(Phase::Done) => {
            log::info!("the upgrade of this node is done; nothing to download (see 'synnefo-upgrade status')");
            return Ok(ExitCode::SUCCESS);
        }
        Some(phase @ (Phase::Finishing | Phase::Aborting)) => bail!(Fatal::Inhibited(format!(
            "this node is in phase '{phase}': --download-only is for a node before its dist-upgrade; nothing was downloaded"
        ))),
        _ => {}
    }
    let facts = Facts::gather(root);
    let got = aptsim::download(root, &config, facts.is_service_node())?;
    log::info!(
        "prepare --download-only: {} package(s) fetched ({} bytes, {:.1} MiB) into {}, {} already there; nothing armed",
        got.packages,
        got.bytes,
        got.bytes as f64 / (1024.0 * 1024.0),
        aptsim::ARCHIVES,
        got.cached
    );
    Ok(ExitCode::SUCCESS)
}

/// Builds the context of a phase (configuration, init system) and runs it.
fn phase(
    root: &Root,
    config_file: Option<std::path::PathBuf>,
    download: bool,
    run: impl FnOnce(&mut Ctx) -> Result<()>,
) -> Result<ExitCode> {
    // Before any thread starts (the D-Bus connection's among them).
    crate::phases::interrupt::install()?;
    let config: Config = config::load(root, config_file.as_deref())?;
    let services = services::for_node(root)?;
    let mut ctx = Ctx {
        root: root.clone(),
        config,
        services,
        state: State::new(),
        download,
        step: "",
        // Once per run: each command is its own process (finish's, after the dist-upgrade).
        facts: Facts::gather(root),
        findings: None,
        pg_clusters: Default::default(),
    };
    run(&mut ctx)?;
    Ok(ExitCode::SUCCESS)
}
