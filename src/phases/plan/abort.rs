//! The bodies of `abort`'s own steps (the table is in [`super::ABORT`]; the
//! steps it shares with `finish` are in [`super::finish`]).

use anyhow::{bail, Context, Result};

use super::prepare::DPKG_SNAPSHOT;
use super::{list, Ctx};
use crate::base::dpkg;
use crate::base::error::Fatal;
use crate::base::fsx::{self, Root};

/// Packages whose version changed since `prepare` (dpkg has unpacked new ones):
/// `now` against the snapshot under `root`.
pub fn changed_packages(root: &Root, now: &[dpkg::Package]) -> Result<Vec<String>> {
    let before = fsx::read_text(root, DPKG_SNAPSHOT)
        .with_context(|| format!("reading '{DPKG_SNAPSHOT}' (written by prepare)"))?;
    let before: std::collections::HashMap<String, String> = dpkg::parse_status(&before)
        .into_iter()
        .filter(dpkg::Package::is_present)
        .map(|p| (p.name, p.version))
        .collect();
    Ok(now
        .iter()
        .filter(|p| before.get(&p.name).is_some_and(|v| v != &p.version))
        .map(|p| format!("{} {} -> {}", p.name, before[&p.name], p.version))
        .collect())
}

pub(super) fn abort_gate(ctx: &mut Ctx) -> Result<String> {
    let changed = if ctx.root.path(DPKG_SNAPSHOT).exists() {
        let now = ctx.facts.present_packages()?;
        changed_packages(&ctx.root, now)?
    } else {
        Vec::new()
    };
    if !changed.is_empty() {
        bail!(Fatal::Inhibited(format!(
            "the dist-upgrade has started ({} package(s) changed: {}); abort would leave a half-upgraded node: \
             complete the upgrade (apt-get dist-upgrade, reboot) instead",
            changed.len(),
            changed.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
        )));
    }
    Ok("no package changed since prepare".into())
}

pub(super) fn restore_backups(ctx: &mut Ctx) -> Result<String> {
    let undone = fsx::undo_all(&ctx.root)?;
    let paths = |action: fsx::Action| -> Vec<String> {
        undone
            .iter()
            .filter(|u| u.action == action)
            .map(|u| u.path.display().to_string())
            .collect()
    };
    let mut report = format!(
        "restored: {}; removed (ours): {}",
        list(&paths(fsx::Action::Restored)),
        list(&paths(fsx::Action::Removed))
    );
    let owners = paths(fsx::Action::OwnerBack);
    if !owners.is_empty() {
        report.push_str(&format!("; owner put back: {}", owners.join(", ")));
    }
    let changed: Vec<String> = undone
        .iter()
        .filter(|u| u.kept.is_some())
        .map(|u| u.to_string())
        .collect();
    if !changed.is_empty() {
        report.push_str(&format!("; changed since: {}", changed.join("; ")));
    }
    Ok(report)
}

pub(super) fn remove_created_dirs(ctx: &mut Ctx) -> Result<String> {
    let removed = fsx::remove_created_dirs(&ctx.root)?;
    let removed: Vec<String> = removed.iter().map(|p| p.display().to_string()).collect();
    Ok(format!("removed: {}", list(&removed)))
}

/// After `prepare --download` (its `download` step ran `apt-get update`
/// against the new release's sources): APT's lists describe that release
/// until they are read again from the restored sources.
pub(super) fn refresh_apt_lists_wanted(ctx: &Ctx) -> bool {
    ctx.state
        .step(crate::base::state::PhaseKind::Prepare, "download")
        .is_some_and(|r| r.status != crate::base::state::StepStatus::Skipped)
}

/// `apt-get update` against the restored sources, off the downtime (the
/// services run again). A failure (no mirror reachable) does not undo the
/// abort: the outcome and the journal say to run it again.
pub(super) fn refresh_apt_lists(ctx: &mut Ctx) -> Result<String> {
    let run = super::apt_get(ctx, crate::base::state::PhaseKind::Abort, &["update"])?;
    if run.status.success() {
        Ok("APT's lists read again from the restored sources ('apt-get update'): they no longer describe the new release".into())
    } else {
        let said = format!(
            "'apt-get update' against the restored sources failed ({}): APT's lists still describe the new \
             release that 'prepare --download' read; run 'apt-get update' when the mirrors answer, before \
             installing anything",
            run.status
        );
        log::warn!("{said}");
        Ok(said)
    }
}
