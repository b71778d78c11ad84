//! The upgrade plan: the ordered steps of each phase, as a table.
//!
//! Each step is a small type behind [`Step`]; it must be idempotent, because a
//! rerun after a crash repeats the step that was running. The work itself is
//! done by the module of its concern; the step only decides what to ask for.

use anyhow::{bail, Result};
use std::path::Path;

use crate::apt;
use crate::config::Config;
use crate::fsx::{self, Root};
use crate::node::{self, InitSystem};
use crate::paths;
use crate::policy_rcd;
use crate::preflight;
use crate::services::{self, Services};
use crate::state::{PhaseKind, ServiceRecord, State};
use crate::synnefo;

/// What a step works with.
pub struct Ctx {
    /// The node's root.
    pub root: Root,
    /// Effective configuration.
    pub config: Config,
    /// The init system's services.
    pub services: Box<dyn Services>,
    /// The state, saved by the runner after each step.
    pub state: State,
}

/// One step of a phase.
pub trait Step: Sync {
    /// Stable id (journal field `SYNNEFO_UPGRADE_STEP`, state file, failpoints).
    fn id(&self) -> &'static str;
    /// What it does, for the operator.
    fn title(&self) -> &'static str;
    /// Whether it applies to this node; a step that does not is recorded as skipped.
    fn applies(&self, _ctx: &Ctx) -> bool {
        true
    }
    /// Does the work (idempotently) and says what it did.
    fn run(&self, ctx: &mut Ctx) -> Result<String>;
}

/// The steps of `phase`, in order.
pub fn steps(phase: PhaseKind) -> &'static [&'static dyn Step] {
    match phase {
        PhaseKind::Prepare => &[
            &Preflight,
            &RecordServices,
            &InstallPolicyRcd,
            &StopServices,
            &MaskServices,
            &RewriteAptSources,
            &EnableFinishUnit,
            &Arm,
        ],
        PhaseKind::Finish => &[
            &Preconditions,
            &Migrate,
            &UnmaskServices,
            &StartServices,
            &VerifyServices,
            &RemovePolicyRcd,
            &DisableFinishUnit,
        ],
    }
}

fn names<'a>(records: impl Iterator<Item = &'a ServiceRecord>) -> Vec<String> {
    records.map(|s| s.name.clone()).collect()
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

// ----- prepare -----

struct Preflight;
impl Step for Preflight {
    fn id(&self) -> &'static str {
        "preflight"
    }
    fn title(&self) -> &'static str {
        "check that this node can be armed"
    }
    fn run(&self, ctx: &mut Ctx) -> Result<String> {
        preflight::ensure_no_inhibitor(&ctx.root, &ctx.config)?;
        Ok("no inhibitor".into())
    }
}

struct RecordServices;
impl Step for RecordServices {
    fn id(&self) -> &'static str {
        "record-services"
    }
    fn title(&self) -> &'static str {
        "record the pre-upgrade state of the managed services"
    }
    fn run(&self, ctx: &mut Ctx) -> Result<String> {
        if !ctx.state.services.is_empty() {
            return Ok("already recorded".into());
        }
        for name in preflight::managed_services(&ctx.root, &ctx.config) {
            let status = ctx.services.status(&name)?;
            let was_masked = services::is_masked(&ctx.root, &name);
            ctx.state.services.push(ServiceRecord {
                name,
                was_active: status.active && !was_masked,
                was_enabled: status.enabled,
                was_masked,
            });
        }
        let summary: Vec<String> = ctx
            .state
            .services
            .iter()
            .map(|s| {
                format!(
                    "{} ({})",
                    s.name,
                    if s.was_active {
                        "running"
                    } else {
                        "not running"
                    }
                )
            })
            .collect();
        Ok(format!("managed: {}", list(&summary)))
    }
}

struct InstallPolicyRcd;
impl Step for InstallPolicyRcd {
    fn id(&self) -> &'static str {
        "install-policy-rc.d"
    }
    fn title(&self) -> &'static str {
        "deny starts of the managed services during package runs"
    }
    fn run(&self, ctx: &mut Ctx) -> Result<String> {
        policy_rcd::install(&ctx.root)?;
        Ok(format!("{} installed", paths::POLICY_RCD))
    }
}

struct StopServices;
impl Step for StopServices {
    fn id(&self) -> &'static str {
        "stop-services"
    }
    fn title(&self) -> &'static str {
        "stop the managed services and verify they are down"
    }
    fn run(&self, ctx: &mut Ctx) -> Result<String> {
        let stop = names(ctx.state.services.iter());
        ctx.services.stop(&stop)?;
        Ok(format!("stopped: {}", list(&stop)))
    }
}

struct MaskServices;
impl Step for MaskServices {
    fn id(&self) -> &'static str {
        "mask-services"
    }
    fn title(&self) -> &'static str {
        "mask the managed services for the next boot"
    }
    fn run(&self, ctx: &mut Ctx) -> Result<String> {
        let mask = names(ctx.state.services.iter().filter(|s| !s.was_masked));
        ctx.services.mask(&mask)?;
        Ok(format!("masked: {}", list(&mask)))
    }
}

struct RewriteAptSources;
impl Step for RewriteAptSources {
    fn id(&self) -> &'static str {
        "apt-sources"
    }
    fn title(&self) -> &'static str {
        "switch the APT sources to the new release"
    }
    fn run(&self, ctx: &mut Ctx) -> Result<String> {
        let release = &ctx.config.release;
        let changed = apt::rewrite_sources(&ctx.root, &release.suite_from, &release.suite_to)?;
        let changed: Vec<String> = changed.iter().map(|p| p.display().to_string()).collect();
        Ok(format!(
            "{} -> {} in: {}",
            release.suite_from,
            release.suite_to,
            list(&changed)
        ))
    }
}

struct EnableFinishUnit;
impl Step for EnableFinishUnit {
    fn id(&self) -> &'static str {
        "enable-finish-unit"
    }
    fn title(&self) -> &'static str {
        "enable synnefo-upgrade-finish.service for the next boot"
    }
    fn run(&self, ctx: &mut Ctx) -> Result<String> {
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
}

struct Arm;
impl Step for Arm {
    fn id(&self) -> &'static str {
        "arm"
    }
    fn title(&self) -> &'static str {
        "arm the finish unit"
    }
    fn run(&self, ctx: &mut Ctx) -> Result<String> {
        fsx::write_state_file(
            &ctx.root,
            paths::ARMED_MARKER,
            b"armed by synnefo-upgrade prepare\n",
        )?;
        Ok("armed: run 'apt-get update && apt-get dist-upgrade', then reboot".into())
    }
}

// ----- finish -----

struct Preconditions;
impl Step for Preconditions {
    fn id(&self) -> &'static str {
        "preconditions"
    }
    fn title(&self) -> &'static str {
        "check that the node runs the new release under systemd"
    }
    fn run(&self, ctx: &mut Ctx) -> Result<String> {
        let codename = node::os_codename(&ctx.root)?;
        let want = &ctx.config.release.os_to;
        if &codename != want {
            bail!("the OS is '{codename}', not '{want}': run 'apt-get dist-upgrade' to {want} and reboot first");
        }
        if ctx.services.init() == InitSystem::Sysv {
            bail!("systemd is not PID 1: reboot into {want}'s systemd first");
        }
        Ok(format!(
            "OS is {codename}, init is {}",
            ctx.services.init().name()
        ))
    }
}

struct Migrate;
impl Step for Migrate {
    fn id(&self) -> &'static str {
        "migrate"
    }
    fn title(&self) -> &'static str {
        "run the database migrations (snf-manage migrate)"
    }
    fn applies(&self, ctx: &Ctx) -> bool {
        ctx.config.migrations.run
    }
    fn run(&self, ctx: &mut Ctx) -> Result<String> {
        synnefo::migrate(&ctx.root, PhaseKind::Finish.name(), self.id())
    }
}

struct UnmaskServices;
impl Step for UnmaskServices {
    fn id(&self) -> &'static str {
        "unmask-services"
    }
    fn title(&self) -> &'static str {
        "remove the masks prepare made"
    }
    fn run(&self, ctx: &mut Ctx) -> Result<String> {
        let unmask = names(ctx.state.services.iter().filter(|s| !s.was_masked));
        ctx.services.unmask(&unmask)?;
        Ok(format!("unmasked: {}", list(&unmask)))
    }
}

struct StartServices;
impl Step for StartServices {
    fn id(&self) -> &'static str {
        "start-services"
    }
    fn title(&self) -> &'static str {
        "start the services that ran before the upgrade"
    }
    fn run(&self, ctx: &mut Ctx) -> Result<String> {
        let start = names(ctx.state.services.iter().filter(|s| s.was_active));
        ctx.services.start(&start)?;
        Ok(format!("started: {}", list(&start)))
    }
}

struct VerifyServices;
impl Step for VerifyServices {
    fn id(&self) -> &'static str {
        "verify-services"
    }
    fn title(&self) -> &'static str {
        "check that the started services are active"
    }
    fn run(&self, ctx: &mut Ctx) -> Result<String> {
        let started = names(ctx.state.services.iter().filter(|s| s.was_active));
        let mut down = Vec::new();
        for name in &started {
            if !ctx.services.is_active(name)? {
                down.push(node::unit_name(name));
            }
        }
        if !down.is_empty() {
            bail!(
                "not active after start: {}; see 'systemctl status {}'",
                down.join(", "),
                down.join(" ")
            );
        }
        Ok(format!("active: {}", list(&started)))
    }
}

struct RemovePolicyRcd;
impl Step for RemovePolicyRcd {
    fn id(&self) -> &'static str {
        "remove-policy-rc.d"
    }
    fn title(&self) -> &'static str {
        "remove our policy-rc.d (restore a previous one)"
    }
    fn run(&self, ctx: &mut Ctx) -> Result<String> {
        policy_rcd::remove(&ctx.root)?;
        Ok(format!("{} removed", paths::POLICY_RCD))
    }
}

struct DisableFinishUnit;
impl Step for DisableFinishUnit {
    fn id(&self) -> &'static str {
        "disable-finish-unit"
    }
    fn title(&self) -> &'static str {
        "disable synnefo-upgrade-finish.service and disarm"
    }
    fn run(&self, ctx: &mut Ctx) -> Result<String> {
        fsx::remove(&ctx.root, Path::new(paths::FINISH_UNIT_WANTS))?;
        fsx::remove(&ctx.root, Path::new(paths::ARMED_MARKER))?;
        Ok("finish unit disabled, node disarmed".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn step_ids_are_unique_per_phase() {
        for phase in [PhaseKind::Prepare, PhaseKind::Finish] {
            let ids: Vec<&str> = steps(phase).iter().map(|s| s.id()).collect();
            let unique: HashSet<&str> = ids.iter().copied().collect();
            assert_eq!(ids.len(), unique.len(), "{ids:?}");
        }
    }
}
