//! `prepare` on a node that is already armed: verify every protection that
//! `prepare` put in place and put back what is missing (an `apt-get remove`
//! of an older package, whose postrm took policy-rc.d away; an admin's
//! cleanup; a reinstall). Each protection is checked first, so the report says
//! exactly what was restored; restoring reruns the (idempotent) prepare step
//! that made it.

use anyhow::{Context, Result};
use std::path::Path;

use crate::actions::bootstart;
use crate::actions::policy_rcd;
use crate::actions::services;
use crate::base::apt;
use crate::base::fsx;
use crate::base::paths;
use crate::base::state::PhaseKind;
use crate::phases::plan::{self, Ctx};

/// Runs prepare's step `id` again.
fn rerun(ctx: &mut Ctx, id: &str) -> Result<String> {
    let step = plan::find(PhaseKind::Prepare, id)
        .with_context(|| format!("prepare has no step '{id}'"))?;
    ctx.step = step.id;
    (step.run)(ctx).with_context(|| format!("restoring what prepare's step '{id}' does"))
}

fn content_is(root: &fsx::Root, abs: &str, want: &str) -> bool {
    fsx::read_file_opt(root, abs).is_ok_and(|t| t.as_deref() == Some(want.as_bytes()))
}

/// Verifies the protections of an armed node and restores the missing ones;
/// returns what was restored (empty: all were in place).
pub fn reverify(ctx: &mut Ctx) -> Result<Vec<String>> {
    let mut restored = Vec::new();

    if !policy_rcd::is_installed(&ctx.root) {
        rerun(ctx, "install-policy-rc.d")?;
        restored.push(format!("{} (policy-rc.d)", paths::POLICY_RCD));
    }

    let unmasked: Vec<String> = ctx
        .state
        .services
        .iter()
        .filter(|s| !s.was_masked && !services::is_masked(&ctx.root, &s.name))
        .map(|s| s.name.clone())
        .collect();
    if !unmasked.is_empty() {
        rerun(ctx, "mask-services")?;
        restored.push(format!("masks of {}", unmasked.join(", ")));
    }

    let managed: Vec<String> = ctx.state.managed().map(String::from).collect();
    if !bootstart::is_disabled(&ctx.root, &managed) {
        let done = bootstart::disable(&ctx.root, &managed)?;
        restored.push(format!(
            "boot-time start disabled again: {}",
            done.join(", ")
        ));
    }

    let mut running = Vec::new();
    for service in ctx.state.services.iter().filter(|s| !s.was_masked) {
        if ctx.services.is_active(&service.name)? {
            running.push(service.name.clone());
        }
    }
    if !running.is_empty() {
        ctx.services.stop(&running)?;
        restored.push(format!("stopped again: {}", running.join(", ")));
    }

    let release = ctx.config.release.clone();
    let changed = apt::rewrite_sources(&ctx.root, &release.suite_from, &release.suite_to)?;
    if !changed.is_empty() {
        let changed: Vec<String> = changed
            .iter()
            .map(|(p, _)| p.display().to_string())
            .collect();
        restored.push(format!(
            "APT sources switched to {} again: {}",
            release.suite_to,
            changed.join(", ")
        ));
    }

    // The pin and the backports source only where apt-config wrote them.
    let apt_missing = !content_is(&ctx.root, apt::CONF_SNIPPET, apt::CONF_SNIPPET_TEXT)
        || written_by_apt_config(ctx, apt::PIN_FILE)
            && !content_is(&ctx.root, apt::PIN_FILE, apt::PIN_TEXT)
        || written_by_apt_config(ctx, apt::BACKPORTS_LIST)
            && !ctx.root.path(apt::BACKPORTS_LIST).exists();
    if apt_missing {
        rerun(ctx, "apt-config")?;
        restored.push(format!("APT configuration ({})", apt::CONF_SNIPPET));
    }

    if std::fs::read_link(ctx.root.path_nofollow(paths::FINISH_UNIT_WANTS))
        .ok()
        .as_deref()
        != Some(Path::new(paths::FINISH_UNIT_FILE))
    {
        rerun(ctx, "enable-finish-unit")?;
        restored.push(format!(
            "{} (the finish unit's enable link)",
            paths::FINISH_UNIT_WANTS
        ));
    }

    if !ctx.root.path(paths::ARMED_MARKER).exists() {
        rerun(ctx, "arm")?;
        restored.push(format!("{} (the armed marker)", paths::ARMED_MARKER));
    }
    Ok(restored)
}

/// Whether prepare's apt-config step wrote (or found) `file` here: its
/// recorded message names it.
fn written_by_apt_config(ctx: &Ctx, file: &str) -> bool {
    ctx.state
        .step(PhaseKind::Prepare, "apt-config")
        .and_then(|s| s.message.as_deref())
        .is_some_and(|m| m.contains(file))
}
