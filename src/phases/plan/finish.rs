//! The bodies of `finish`'s steps (the table is in [`super::FINISH`]); the
//! last ones also serve `abort` ([`super::ABORT`]).

use anyhow::{bail, Result};
use std::path::Path;

use super::{list, managed, names, Ctx};
use crate::actions::backup;
use crate::actions::bootstart;
use crate::actions::policy_rcd;
use crate::actions::services;
use crate::actions::synnefo;
use crate::base::apt;
use crate::base::dpkg;
use crate::base::exec;
use crate::base::fsx;
use crate::base::paths;
use crate::base::state::{Phase, PhaseKind};
use crate::convert;
use crate::inputs::node::{self, InitSystem, Role};

/// The Synnefo version `finish` expects.
pub const TO_VERSION: &str = "0.19";

pub(super) fn preconditions(ctx: &mut Ctx) -> Result<String> {
    // A dist-upgrade cut short (power loss, a failed maintainer script) must be
    // completed before anything is backed up or migrated.
    dpkg::ensure_fully_installed(&ctx.root)?;
    // Gathered at the start of this process, which runs after the dist-upgrade and reboot.
    let codename = ctx.facts.os_codename()?.to_string();
    let want = &ctx.config.release.os_to;
    if &codename != want {
        bail!("the OS is '{codename}', not '{want}': run 'apt-get dist-upgrade' to {want} and reboot first");
    }
    if ctx.services.init() == InitSystem::Sysv {
        bail!("systemd is not PID 1: reboot into {want}'s systemd first");
    }
    let packages = ctx.facts.present_packages()?;
    let old = ctx.facts.synnefo_not_at(TO_VERSION)?;
    if !old.is_empty() {
        bail!(
            "Synnefo packages are not {TO_VERSION}: {}; finish the dist-upgrade ('apt-get dist-upgrade'), then run \
             'synnefo-upgrade finish'",
            old.join(", ")
        );
    }
    if ctx.facts.is_service_node() {
        apt::ensure_gevent(packages, &ctx.config.release.suite_to)?;
    }
    Ok(format!(
        "OS is {codename}, init is {}, Synnefo is {TO_VERSION}",
        ctx.services.init()
    ))
}

pub(super) fn backups_wanted(ctx: &Ctx) -> bool {
    ctx.config.backups.enabled && ctx.config.migrations.run && ctx.facts.has_django_project()
}

/// Migrations run (or are waited for) where Synnefo's Django project is:
/// not on a Ganeti node, whatever `[migrations] run` says there.
pub(super) fn migrate_wanted(ctx: &Ctx) -> bool {
    ctx.facts.has_django_project()
}

pub(super) fn backups(ctx: &mut Ctx) -> Result<String> {
    backup::take(&ctx.root, &ctx.config)
}

/// The migrations (or the wait for them), and meanwhile, in threads, the
/// init system's reload that unmask-services would otherwise need after
/// them ([`crate::actions::services::Services::load_unmasked_ahead`]) and
/// report-notices' reading of the PostgreSQL clusters: off the critical path
/// of the downtime (the migrations begin with the guard's quiet window, or
/// are waited for), the masks staying on disk.
pub(super) fn migrate(ctx: &mut Ctx) -> Result<String> {
    let phase = PhaseKind::Finish;
    let ctx = &*ctx;
    let unmask = names(ctx.state.services.iter().filter(|s| !s.was_masked));
    let (migrated, ahead) = std::thread::scope(|scope| {
        scope.spawn(|| {
            let _ = ctx
                .pg_clusters
                .set(crate::findings::notices::postgresql_clusters(&ctx.root));
        });
        let ahead = scope.spawn(|| ctx.services.load_unmasked_ahead(&ctx.root, &unmask));
        let migrated = migrate_in_order(ctx, phase);
        let ahead = ahead
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("loading the units ahead panicked")));
        (migrated, ahead)
    });
    // The masks could not be put back: that is the node's safe state at stake.
    let ahead = ahead?;
    let migrated = migrated?;
    Ok(match ahead {
        Some(ahead) => format!("{migrated}; {ahead}"),
        None => migrated,
    })
}

/// This node's migrations in their turn on the database (or the wait for
/// them), then the wait for the other nodes' ([`crate::actions::migorder`]).
fn migrate_in_order(ctx: &Ctx, phase: PhaseKind) -> Result<String> {
    use crate::actions::{dbguard, migorder, migwait};
    let wait = std::time::Duration::from_secs(ctx.config.migrations.wait_seconds);
    let order = migorder::Order::for_node(
        &ctx.root,
        &ctx.facts.roles,
        wait,
        ctx.config.migrations.retry_seconds,
    )?;
    let mut said = Vec::new();
    if ctx.config.migrations.run {
        let turn = order.as_ref().map(migorder::Order::wait_turn).transpose()?;
        let nothing_left = match (&order, &turn) {
            (Some(order), Some((turn, _))) => {
                order.nothing_left(turn, &ctx.root, phase, ctx.step)?
            }
            _ => false,
        };
        if nothing_left {
            said.push(
                "nothing left to migrate: the nodes before this one applied every migration it lists".into(),
            );
        } else {
            // The guide's order: every other client of the databases gone first.
            said.push(dbguard::ensure_quiet(&ctx.root, &ctx.config)?);
            said.push(synnefo::migrate(&ctx.root, &ctx.config, phase, ctx.step)?);
        }
        // The lock goes with the session: the next node's turn.
        if let Some((turn, waited)) = turn {
            drop(turn);
            said.push(waited);
        }
    } else {
        said.push(migwait::wait_for_migrations(
            &ctx.root,
            &ctx.config,
            phase,
            ctx.step,
        )?);
    }
    if let Some(order) = &order {
        said.extend(order.wait_rest()?);
    }
    Ok(said.join("; "))
}

pub(super) fn fix_ip_history_wanted(ctx: &Ctx) -> bool {
    ctx.config.fix_ip_history.changelog.is_some() && ctx.facts.has_role(Role::Cyclades)
}

pub(super) fn fix_ip_history(ctx: &mut Ctx) -> Result<String> {
    synnefo::fix_ip_history(&ctx.root, &ctx.config, PhaseKind::Finish, ctx.step)
}

pub(super) fn convert(ctx: &mut Ctx) -> Result<String> {
    let conversion = convert::plan(&ctx.root, &ctx.config)?;
    conversion.apply(&ctx.root)?;
    Ok(conversion.summary())
}

/// The Astakos node that runs the migrations: the re-registration is a write
/// to the database, once for the cluster (the other Astakos nodes skip it).
pub(super) fn registers_cyclades(ctx: &Ctx) -> bool {
    ctx.facts.has_role(Role::Astakos) && ctx.config.migrations.run
}

pub(super) fn register_cyclades(ctx: &mut Ctx) -> Result<String> {
    synnefo::register_cyclades(&ctx.root, &ctx.config, PhaseKind::Finish, ctx.step)
}

pub(super) fn restore_boot_state(ctx: &mut Ctx) -> Result<String> {
    // Enabled: what started at boot before, where 0.19 brings a native unit
    // (its maintainer script's `deb-systemd-helper enable` ran while our mask
    // stood: a VM run saw such a service down at the second boot). The links are written directly, as `systemctl enable`
    // makes them: the units are still masked, and D-Bus EnableUnitFiles
    // refuses masked units. Without a native unit the rc S links decide
    // (restore-boot-start put them back).
    let mut enabled = Vec::new();
    let mut by_rc_links = Vec::new();
    for record in ctx.state.services.iter().filter(|s| s.ran_at_boot()) {
        match services::install::enable(&ctx.root, &record.name)? {
            Some(_) => enabled.push(node::unit_name(&record.name)),
            None => by_rc_links.push(record.name.clone()),
        }
    }
    let disable = names(
        ctx.state
            .services
            .iter()
            .filter(|s| !s.was_masked && !s.ran_at_boot()),
    );
    // The links alone, as for enabling: the units are still masked, and
    // unmask-services' one reload (if any is needed) picks this up.
    services::disable_offline(&ctx.root, &disable)?;
    Ok(format!(
        "enabled: {}; by rc links: {}; kept disabled: {}",
        list(&enabled),
        list(&by_rc_links),
        list(&disable)
    ))
}

pub(super) fn unmask_services(ctx: &mut Ctx) -> Result<String> {
    let unmask = names(ctx.state.services.iter().filter(|s| !s.was_masked));
    ctx.services.unmask(&ctx.root, &unmask)?;
    Ok(format!("unmasked: {}", list(&unmask)))
}

pub(super) fn start_services(ctx: &mut Ctx) -> Result<String> {
    let start = names(ctx.state.services.iter().filter(|s| s.was_active));
    ctx.services.start(&start)?;
    Ok(format!("started: {}", list(&start)))
}

pub(super) fn verify_services(ctx: &mut Ctx) -> Result<String> {
    let started = names(ctx.state.services.iter().filter(|s| s.was_active));
    let down = |ctx: &Ctx| -> Result<Vec<String>> {
        let mut down = Vec::new();
        for name in &started {
            if !ctx.services.is_running(name)? {
                down.push(node::unit_name(name));
            }
        }
        Ok(down)
    };
    let inactive = down(ctx)?;
    if !inactive.is_empty() {
        bail!("not running after start: {}", see_units(&inactive));
    }
    // The downtime ends here; whether they stay up is services-settled's,
    // the last step, once the steps that follow have used the period up.
    ctx.state.services_restored(crate::base::clock::now());
    Ok(format!("active: {}", list(&started)))
}

/// `UNITS; see 'systemctl status UNITS' and 'journalctl -u FIRST'`.
fn see_units(units: &[String]) -> String {
    format!(
        "{}; see 'systemctl status {}' and 'journalctl -u {}'",
        units.join(", "),
        units
            .iter()
            .map(exec::shell_word)
            .collect::<Vec<_>>()
            .join(" "),
        exec::shell_word(&units[0])
    )
}

/// A service that dies soon after its start must not pass: every started
/// service must have been active without a break for `[services]
/// settle_seconds`. The time since systemd saw it become active counts, so
/// that the steps after verify-services (Cyclades' registration, Apache, the
/// health checks, the reports) use up the period instead of a wait; what is left of it is
/// watched, and the watch ends at once when one goes down.
pub(super) fn services_settled(ctx: &mut Ctx) -> Result<String> {
    let started = names(ctx.state.services.iter().filter(|s| s.was_active));
    let settle = std::time::Duration::from_secs(ctx.config.services.settle_seconds);
    if started.is_empty() || settle.is_zero() || ctx.services.init() == InitSystem::Offline {
        return Ok(if started.is_empty() {
            "no service to watch".to_string()
        } else {
            format!(
                "not watched ([services] settle_seconds = {})",
                settle.as_secs()
            )
        });
    }
    let mut proven = settle;
    for name in &started {
        proven = proven.min(ctx.services.active_for(name)?.unwrap_or_default());
    }
    let left = settle - proven;
    let inactive = ctx.services.stays_active(&started, left)?;
    if !inactive.is_empty() {
        bail!(
            "did not stay running for {}s after start: {}; fix the cause, then 'systemctl restart' it (a unit shown 'active (exited)' has lost its daemon, and a start does nothing to it)",
            settle.as_secs(),
            see_units(&inactive)
        );
    }
    Ok(format!(
        "active for {}s or more: {} (watched for {:.1}s of it)",
        settle.as_secs(),
        list(&started),
        left.as_secs_f64()
    ))
}

pub(super) fn apache_wanted(ctx: &Ctx) -> bool {
    use super::prepare::{apache2_installed, APACHE2};
    apache2_installed(&ctx.facts)
        && match ctx.state.apache2_was_active {
            Some(was) => was,
            // A state file from before Apache was recorded: enabled at boot stands in.
            None => crate::actions::services::is_enabled_on_disk(&ctx.root, APACHE2),
        }
}

pub(super) fn restart_apache(ctx: &mut Ctx) -> Result<String> {
    use super::prepare::APACHE2;
    let program = exec::find(&ctx.root, "apache2ctl")?;
    let program = program.to_string_lossy();
    let run = exec::run_logged(PhaseKind::Finish, ctx.step, &[&program, "configtest"], &[])?;
    if !run.status.success() {
        bail!(
            "'apache2ctl configtest' failed ({}): {}; fix the Apache configuration (Apache 2.4 reads only \
             sites-enabled/*.conf and conf-enabled/*.conf; 'Require' replaces Order/Allow/Deny, or \
             'a2enmod access_compat'), then run 'synnefo-upgrade finish' again",
            run.status,
            run.lines.join(" | ")
        );
    }
    let names = [APACHE2.to_string()];
    ctx.services.restart(&names)?;
    if !ctx.services.is_active(APACHE2)? {
        bail!(
            "apache2 is not active after its restart; see 'systemctl status apache2' and 'journalctl -u apache2', \
             then run 'synnefo-upgrade finish' again"
        );
    }
    Ok("apache2ctl configtest passed; apache2 restarted and active".into())
}

pub(super) fn health_wanted(ctx: &Ctx) -> bool {
    !ctx.config.health.is_empty()
}

pub(super) fn health_checks(ctx: &mut Ctx) -> Result<String> {
    let mut failed = Vec::new();
    for (i, check) in ctx.config.health.iter().enumerate() {
        let name = check
            .name
            .clone()
            .unwrap_or_else(|| format!("check {}", i + 1));
        let argv: Vec<String> = match (&check.url, &check.command) {
            (Some(url), _) => [
                "curl",
                "--fail",
                "--silent",
                "--show-error",
                "--max-time",
                "30",
                "--output",
                "/dev/null",
                url,
            ]
            .map(String::from)
            .to_vec(),
            (None, Some(argv)) => argv.clone(),
            (None, None) => continue,
        };
        let program = exec::find(&ctx.root, &argv[0])?;
        let program = program.to_string_lossy();
        let mut full: Vec<&str> = vec![&program];
        full.extend(argv[1..].iter().map(String::as_str));
        let run = exec::run_logged(PhaseKind::Finish, ctx.step, &full, &[])?;
        if !run.status.success() {
            failed.push(format!("{name} ({})", run.status));
        }
    }
    if !failed.is_empty() {
        bail!("health checks failed: {}; their output is in 'journalctl SYNNEFO_UPGRADE_STEP=health-checks'", failed.join(", "));
    }
    Ok(format!("{} check(s) passed", ctx.config.health.len()))
}

pub(super) fn remove_apt_config(ctx: &mut Ctx) -> Result<String> {
    let mut undone = vec![fsx::undo(&ctx.root, Path::new(apt::CONF_SNIPPET))?.to_string()];
    // Abort also takes back the backports source and the pin; finish keeps them.
    if ctx.state.phase == Phase::Aborting {
        for file in [apt::BACKPORTS_LIST, apt::PIN_FILE] {
            undone.push(fsx::undo(&ctx.root, Path::new(file))?.to_string());
        }
    }
    Ok(undone.join(", "))
}

pub(super) fn remove_policy_rcd(ctx: &mut Ctx) -> Result<String> {
    Ok(match policy_rcd::remove(&ctx.root)? {
        Some(undone) => undone.to_string(),
        None => format!(
            "{} is not our link (taken back already, or never installed): left as it is",
            paths::POLICY_RCD
        ),
    })
}

pub(super) fn report_dpkg_dist(ctx: &mut Ctx) -> Result<String> {
    let found = crate::phases::status::dpkg_leftovers(&ctx.root);
    if found.is_empty() {
        return Ok("none".into());
    }
    let found: Vec<String> = found.iter().map(|p| p.display().to_string()).collect();
    log::warn!(
        "kept your configuration; the package's new versions are beside it, compare them: {}",
        found.join(", ")
    );
    Ok(format!("to review: {}", found.join(", ")))
}

pub(super) fn report_notices(ctx: &mut Ctx) -> Result<String> {
    // Evaluated here, after the dist-upgrade and the reboot, on what the node
    // is now: jessie's PostgreSQL cluster beside wheezy's exists only now
    // (migrate read the clusters ahead, after the reboot too). A notice is
    // reported, never a failure.
    use crate::findings::notices;
    let clusters = ctx
        .pg_clusters
        .get_or_init(|| notices::postgresql_clusters(&ctx.root));
    let mut found = notices::findings_with(
        &ctx.root,
        ctx.facts.packages(),
        notices::Moment::AfterUpgrade,
        clusters,
    );
    // Node files this run (any step) did not read: FIFOs and the like.
    found.extend(crate::base::finding::skipped_files());
    if found.is_empty() {
        return Ok("none".into());
    }
    let mut reported = Vec::new();
    for notice in &found {
        crate::base::logging::notice(PhaseKind::Finish, ctx.step, notice);
        let commands = &notice.remediation.commands;
        reported.push(if commands.is_empty() {
            format!("{}: {}", notice.id, notice.title)
        } else {
            format!("{}: {} ({})", notice.id, notice.title, commands.join("; "))
        });
    }
    Ok(format!(
        "reported, not changed: {} (see 'synnefo-upgrade status')",
        reported.join("; ")
    ))
}

pub(super) fn disable_finish_unit(ctx: &mut Ctx) -> Result<String> {
    fsx::remove(&ctx.root, Path::new(paths::FINISH_UNIT_WANTS))?;
    fsx::remove(&ctx.root, Path::new(paths::ARMED_MARKER))?;
    Ok("finish unit disabled, node disarmed".into())
}

/// Step `restore-boot-start` of finish and abort: the start links prepare
/// disabled put back ([`bootstart::restore`]).
pub(super) fn restore_boot_start(ctx: &mut Ctx) -> Result<String> {
    let done = bootstart::restore(&ctx.root, &managed(ctx))?;
    Ok(format!("boot-time start restored: {}", list(&done)))
}
