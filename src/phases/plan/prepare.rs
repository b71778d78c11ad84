//! The bodies of `prepare`'s steps (the table is in [`super::PREPARE`]).

use anyhow::{bail, Result};
use std::path::Path;

use super::{list, managed, names, Ctx};
use crate::actions::bootstart;
use crate::actions::policy_rcd;
use crate::actions::services;
use crate::base::apt;
use crate::base::dpkg;
use crate::base::finding;
use crate::base::fsx;
use crate::base::paths;
use crate::base::state::{PhaseKind, ServiceRecord};

/// Where `prepare` keeps dpkg's status as it was, so that `abort` can tell
/// whether the dist-upgrade has started.
pub const DPKG_SNAPSHOT: &str = "/var/lib/synnefo-upgrade/dpkg-status.at-prepare";

pub(super) fn preflight(ctx: &mut Ctx) -> Result<String> {
    // On a fresh node the runner has evaluated it already: that result stands.
    finding::ensure_no_inhibitor(ctx.preflight())?;
    Ok("no inhibitor".into())
}

pub(super) fn record_services(ctx: &mut Ctx) -> Result<String> {
    // Apache is not managed (it stays up until the dist-upgrade restarts it);
    // finish checks its configuration and restarts it where it ran.
    if ctx.state.apache2_was_active.is_none() && apache2_installed(&ctx.facts) {
        ctx.state.apache2_was_active = Some(ctx.services.status(APACHE2)?.active);
    }
    if !ctx.state.services.is_empty() {
        return Ok("already recorded".into());
    }
    for name in ctx.facts.managed_services(&ctx.config) {
        let status = ctx.services.status(&name)?;
        let was_masked = services::is_masked(&ctx.root, &name);
        let default_flag = ctx.facts.default_flag(&name);
        ctx.state.services.push(ServiceRecord {
            was_active: status.active && !was_masked,
            was_enabled: status.enabled,
            was_masked,
            default_flag,
            name,
        });
    }
    let summary: Vec<String> = ctx
        .state
        .services
        .iter()
        .map(|s| {
            let running = if s.was_active {
                "running"
            } else {
                "not running"
            };
            format!("{} ({running})", s.name)
        })
        .collect();
    Ok(format!("managed: {}", list(&summary)))
}

/// Apache's init script and unit (`apache2.service`).
pub(super) const APACHE2: &str = "apache2";

/// Whether the apache2 package is installed (dpkg's status).
pub(super) fn apache2_installed(facts: &crate::inputs::node::Facts) -> bool {
    facts
        .packages()
        .iter()
        .any(|p| p.name == APACHE2 && p.is_present())
}

pub(super) fn snapshot_dpkg(ctx: &mut Ctx) -> Result<String> {
    // The file's bytes as they are, not the parsed facts: abort compares against them.
    let status = fsx::read_file(&ctx.root, dpkg::STATUS_FILE)?;
    fsx::write_state_file(&ctx.root, DPKG_SNAPSHOT, &status)?;
    Ok(format!("{} saved", dpkg::STATUS_FILE))
}

pub(super) fn apt_sources(ctx: &mut Ctx) -> Result<String> {
    let release = &ctx.config.release;
    let changed = apt::rewrite_sources(&ctx.root, &release.suite_from, &release.suite_to)?;
    let files: Vec<String> = changed
        .iter()
        .map(|(p, _)| p.display().to_string())
        .collect();
    let mut summary = format!(
        "{} -> {} in: {}",
        release.suite_from,
        release.suite_to,
        list(&files)
    );
    let discs: Vec<String> = changed
        .iter()
        .flat_map(|(p, lines)| lines.iter().map(move |l| format!("{}:{l}", p.display())))
        .collect();
    if !discs.is_empty() {
        summary.push_str(&format!(
            "; commented out (a {} disc cannot serve {}): {}",
            release.suite_from,
            release.suite_to,
            discs.join(", ")
        ));
    }
    Ok(summary)
}

pub(super) fn apt_config(ctx: &mut Ctx) -> Result<String> {
    let mut done = Vec::new();
    fsx::write_file(
        &ctx.root,
        Path::new(apt::CONF_SNIPPET),
        apt::CONF_SNIPPET_TEXT.as_bytes(),
        0o644,
    )?;
    done.push(apt::CONF_SNIPPET.to_string());
    if ctx.facts.is_service_node() {
        let release = &ctx.config.release;
        match apt::backports_source(&ctx.root, &release.suite_from, &release.suite_to)? {
            apt::Backports::Add(line) => {
                fsx::write_file(
                    &ctx.root,
                    Path::new(apt::BACKPORTS_LIST),
                    line.as_bytes(),
                    0o644,
                )?;
                done.push(apt::BACKPORTS_LIST.to_string());
            }
            apt::Backports::Listed if ctx.root.path(apt::BACKPORTS_LIST).exists() => {
                done.push(apt::BACKPORTS_LIST.to_string())
            }
            apt::Backports::Listed => log::info!(
                "no {}-backports source added: the sources list one",
                release.suite_to
            ),
            // The preflight's apt-backports inhibitor stops prepare before this;
            // the sources changed since: gevent must come from somewhere.
            apt::Backports::NoMirror => bail!(
                "no Debian archive among the APT sources to derive {}-backports from: {}",
                release.suite_to,
                apt::add_backports_hint(&release.suite_to)
            ),
        }
        fsx::write_file(
            &ctx.root,
            Path::new(apt::PIN_FILE),
            apt::PIN_TEXT.as_bytes(),
            0o644,
        )?;
        done.push(apt::PIN_FILE.to_string());
    }
    Ok(format!("written: {}", done.join(", ")))
}

pub(super) fn download_wanted(ctx: &Ctx) -> bool {
    ctx.download
}

pub(super) fn download(ctx: &mut Ctx) -> Result<String> {
    for args in [&["update"][..], &["-y", "--download-only", "dist-upgrade"]] {
        let run = super::apt_get(ctx, PhaseKind::Prepare, args)?;
        if !run.status.success() {
            bail!(
                "'apt-get {}' failed ({}); its output is above and in the journal",
                args.join(" "),
                run.status
            );
        }
    }
    Ok("packages downloaded to /var/cache/apt/archives".into())
}

pub(super) fn install_policy_rcd(ctx: &mut Ctx) -> Result<String> {
    policy_rcd::install(&ctx.root)?;
    Ok(format!("{} installed", paths::POLICY_RCD))
}

pub(super) fn stop_services(ctx: &mut Ctx) -> Result<String> {
    let stop = names(ctx.state.services.iter());
    ctx.state.services_stopping(crate::base::clock::now());
    ctx.services.stop(&stop)?;
    Ok(format!("stopped: {}", list(&stop)))
}

pub(super) fn mask_services(ctx: &mut Ctx) -> Result<String> {
    let mask = names(ctx.state.services.iter().filter(|s| !s.was_masked));
    ctx.services.mask(&mask)?;
    Ok(format!("masked: {}", list(&mask)))
}

pub(super) fn enable_finish_unit(ctx: &mut Ctx) -> Result<String> {
    fsx::symlink(
        &ctx.root,
        Path::new(paths::FINISH_UNIT_WANTS),
        Path::new(paths::FINISH_UNIT_FILE),
    )?;
    Ok(format!(
        "{} -> {}",
        paths::FINISH_UNIT_WANTS,
        paths::FINISH_UNIT_FILE
    ))
}

pub(super) fn arm(ctx: &mut Ctx) -> Result<String> {
    // It names the managed services: policy-rc.d denies them by it when the
    // state cannot be read.
    let marker = policy_rcd::marker_text(ctx.state.managed());
    fsx::write_state_file(&ctx.root, paths::ARMED_MARKER, marker.as_bytes())?;
    Ok("armed: run 'synnefo-upgrade dist-upgrade --reboot' (or 'apt-get update && apt-get dist-upgrade', then reboot)".into())
}

/// Step `disable-boot-start`: the sysvinit start links of every managed
/// service off, as `update-rc.d NAME disable` does ([`bootstart::disable`]).
pub(super) fn disable_boot_start(ctx: &mut Ctx) -> Result<String> {
    let done = bootstart::disable(&ctx.root, &managed(ctx))?;
    Ok(format!("boot-time start disabled: {}", list(&done)))
}
