//! The upgrade plan: the ordered steps of each phase, as a table.
//!
//! Each step is a small type behind [`Step`]; it must be idempotent, because a
//! rerun after a crash repeats the step that was running. The work itself is
//! done by the module of its concern; the step only decides what to ask for.

use anyhow::{bail, Context, Result};
use std::path::Path;

use crate::apt;
use crate::backup;
use crate::config::Config;
use crate::convert;
use crate::dpkg;
use crate::error::Fatal;
use crate::exec;
use crate::fsx::{self, Root};
use crate::node::{self, InitSystem, Role};
use crate::paths;
use crate::policy_rcd;
use crate::preflight;
use crate::services::{self, Services};
use crate::state::{Phase, PhaseKind, ServiceRecord, State};
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
    /// `prepare --download`: fetch the new release's packages before stopping services.
    pub download: bool,
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
            &SnapshotDpkg,
            &RewriteAptSources,
            &AptConfig,
            &Download,
            &InstallPolicyRcd,
            &StopServices,
            &MaskServices,
            &DisableBootStart,
            &EnableFinishUnit,
            &Arm,
        ],
        PhaseKind::Finish => &[
            &Preconditions,
            &Backups,
            &Migrate,
            &FixIpHistory,
            &Convert,
            &RegisterCyclades,
            // Disabled while still masked: a crash after the unmask must not
            // let the next boot start a service that did not start at boot before.
            &RestoreBootStart,
            &RestoreBootState,
            &UnmaskServices,
            &StartServices,
            &VerifyServices,
            &HealthChecks,
            &RemoveAptConfig,
            &RemovePolicyRcd,
            &ReportDpkgDist,
            &DisableFinishUnit,
        ],
        PhaseKind::Abort => &[
            &AbortGate,
            &RemoveAptConfig,
            &RestoreBootStart,
            &RestoreBackups,
            &RemovePolicyRcd,
            &UnmaskServices,
            &DisableFinishUnit,
            &RemoveCreatedDirs,
            &StartServices,
            &VerifyServices,
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
            let default_flag = node::default_flag(&ctx.root, &name);
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

/// Where `prepare` keeps dpkg's status as it was, so that `abort` can tell
/// whether the dist-upgrade has started.
pub const DPKG_SNAPSHOT: &str = "/var/lib/synnefo-upgrade/dpkg-status.at-prepare";

struct SnapshotDpkg;
impl Step for SnapshotDpkg {
    fn id(&self) -> &'static str {
        "snapshot-dpkg"
    }
    fn title(&self) -> &'static str {
        "remember the installed package versions (abort is refused once they change)"
    }
    fn run(&self, ctx: &mut Ctx) -> Result<String> {
        let status = std::fs::read(ctx.root.path(dpkg::STATUS_FILE))
            .with_context(|| format!("reading '{}'", dpkg::STATUS_FILE))?;
        fsx::write_state_file(&ctx.root, DPKG_SNAPSHOT, &status)?;
        Ok(format!("{} saved", dpkg::STATUS_FILE))
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
        ctx.state.services_stopping(crate::state::now());
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

struct DisableBootStart;
impl Step for DisableBootStart {
    fn id(&self) -> &'static str {
        "disable-boot-start"
    }
    fn title(&self) -> &'static str {
        "disable the sysvinit boot-time start of the managed services (as update-rc.d disable)"
    }
    fn run(&self, ctx: &mut Ctx) -> Result<String> {
        crate::bootstart::disable_step(ctx)
    }
}

/// In `finish` and `abort`; in `abort` before restore-backups, which would
/// otherwise put the `S` links back beside our `K` links.
struct RestoreBootStart;
impl Step for RestoreBootStart {
    fn id(&self) -> &'static str {
        "restore-boot-start"
    }
    fn title(&self) -> &'static str {
        "put back the sysvinit boot-time start links prepare disabled"
    }
    fn run(&self, ctx: &mut Ctx) -> Result<String> {
        crate::bootstart::restore_step(ctx)
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

/// Whether this node has `role`.
fn has_role(root: &Root, role: Role) -> bool {
    let packages = dpkg::present_packages(root).unwrap_or_default();
    node::roles(root, &packages).contains(&role)
}

/// Whether this node serves Astakos, Cyclades or Pithos (gunicorn apps).
fn is_service_node(root: &Root) -> bool {
    let packages = dpkg::present_packages(root).unwrap_or_default();
    node::roles(root, &packages)
        .iter()
        .any(|r| matches!(r, Role::Astakos | Role::Cyclades | Role::Pithos))
}

struct AptConfig;
impl Step for AptConfig {
    fn id(&self) -> &'static str {
        "apt-config"
    }
    fn title(&self) -> &'static str {
        "unattended conffile handling, the guard hook, gevent/greenlet from backports"
    }
    fn run(&self, ctx: &mut Ctx) -> Result<String> {
        let mut done = Vec::new();
        fsx::write_file(
            &ctx.root,
            Path::new(apt::CONF_SNIPPET),
            apt::CONF_SNIPPET_TEXT.as_bytes(),
            0o644,
        )?;
        done.push(apt::CONF_SNIPPET.to_string());
        if is_service_node(&ctx.root) {
            let release = &ctx.config.release;
            match apt::backports_source(&ctx.root, &release.suite_from, &release.suite_to)? {
                Some(line) => {
                    fsx::write_file(&ctx.root, Path::new(apt::BACKPORTS_LIST), line.as_bytes(), 0o644)?;
                    done.push(apt::BACKPORTS_LIST.to_string());
                }
                None if ctx.root.path(apt::BACKPORTS_LIST).exists() => done.push(apt::BACKPORTS_LIST.to_string()),
                None => log::warn!(
                    "no {}-backports source added: one exists, or no Debian mirror line was found to derive it from",
                    release.suite_to
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
}

struct Download;
impl Step for Download {
    fn id(&self) -> &'static str {
        "download"
    }
    fn title(&self) -> &'static str {
        "download the new release's packages while the services still run"
    }
    fn applies(&self, ctx: &Ctx) -> bool {
        ctx.download
    }
    fn run(&self, ctx: &mut Ctx) -> Result<String> {
        let apt_get = exec::find(&ctx.root, "apt-get")?;
        let apt_get = apt_get.to_string_lossy();
        let env = [("DEBIAN_FRONTEND", "noninteractive")];
        for args in [&["update"][..], &["-y", "--download-only", "dist-upgrade"]] {
            let mut argv = vec![apt_get.as_ref()];
            argv.extend_from_slice(args);
            let run = exec::run_logged(PhaseKind::Prepare.name(), self.id(), &argv, &env)?;
            if !run.status.success() {
                bail!(
                    "'{}' failed ({}); its output is above and in the journal",
                    argv.join(" "),
                    run.status
                );
            }
        }
        Ok("packages downloaded to /var/cache/apt/archives".into())
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
        "check the node runs the new release under systemd, with Synnefo 0.19"
    }
    fn run(&self, ctx: &mut Ctx) -> Result<String> {
        dpkg::ensure_fully_installed(&ctx.root)?;
        let codename = node::os_codename(&ctx.root)?;
        let want = &ctx.config.release.os_to;
        if &codename != want {
            bail!("the OS is '{codename}', not '{want}': run 'apt-get dist-upgrade' to {want} and reboot first");
        }
        if ctx.services.init() == InitSystem::Sysv {
            bail!("systemd is not PID 1: reboot into {want}'s systemd first");
        }
        let packages = dpkg::present_packages(&ctx.root)?;
        let old: Vec<String> = packages
            .iter()
            .filter(|p| node::is_synnefo_package(p) && !p.is_upstream(TO_VERSION))
            .map(|p| format!("{} {}", p.name, p.version))
            .collect();
        if !old.is_empty() {
            bail!(
                "Synnefo packages are not {TO_VERSION}: {}; finish the dist-upgrade ('apt-get dist-upgrade'), then run \
                 'synnefo-upgrade finish'",
                old.join(", ")
            );
        }
        if is_service_node(&ctx.root) {
            apt::ensure_gevent(&packages, &ctx.config.release.suite_to)?;
        }
        Ok(format!(
            "OS is {codename}, init is {}, Synnefo is {TO_VERSION}",
            ctx.services.init().name()
        ))
    }
}

/// The Synnefo version `finish` expects.
pub const TO_VERSION: &str = "0.19";

struct Backups;
impl Step for Backups {
    fn id(&self) -> &'static str {
        "backups"
    }
    fn title(&self) -> &'static str {
        "dump the database and archive the configuration (before migrations)"
    }
    fn applies(&self, ctx: &Ctx) -> bool {
        ctx.config.backups.enabled && ctx.config.migrations.run
    }
    fn run(&self, ctx: &mut Ctx) -> Result<String> {
        backup::take(&ctx.root, &ctx.config)
    }
}

struct Migrate;
impl Step for Migrate {
    fn id(&self) -> &'static str {
        "migrate"
    }
    fn title(&self) -> &'static str {
        "run the database migrations (snf-manage migrate), or wait for the node that runs them"
    }
    fn run(&self, ctx: &mut Ctx) -> Result<String> {
        if ctx.config.migrations.run {
            synnefo::migrate(&ctx.root, &ctx.config, PhaseKind::Finish.name(), self.id())
        } else {
            synnefo::wait_for_migrations(
                &ctx.root,
                &ctx.config,
                PhaseKind::Finish.name(),
                self.id(),
            )
        }
    }
}

struct FixIpHistory;
impl Step for FixIpHistory {
    fn id(&self) -> &'static str {
        "fix-ip-history"
    }
    fn title(&self) -> &'static str {
        "repair the IP history from the VM owner changelog (fix_ip_history)"
    }
    fn applies(&self, ctx: &Ctx) -> bool {
        ctx.config.fix_ip_history.changelog.is_some() && has_role(&ctx.root, Role::Cyclades)
    }
    fn run(&self, ctx: &mut Ctx) -> Result<String> {
        synnefo::fix_ip_history(&ctx.root, &ctx.config, PhaseKind::Finish.name(), self.id())
    }
}

struct Convert;
impl Step for Convert {
    fn id(&self) -> &'static str {
        "convert"
    }
    fn title(&self) -> &'static str {
        "convert the Synnefo, gunicorn and web server configuration to 0.19"
    }
    fn run(&self, ctx: &mut Ctx) -> Result<String> {
        let conversion = convert::plan(&ctx.root, &ctx.config)?;
        conversion.apply(&ctx.root)?;
        Ok(conversion.summary())
    }
}

struct RegisterCyclades;
impl Step for RegisterCyclades {
    fn id(&self) -> &'static str {
        "register-cyclades"
    }
    fn title(&self) -> &'static str {
        "re-register the Cyclades component (its endpoints changed in 0.19)"
    }
    fn applies(&self, ctx: &Ctx) -> bool {
        has_role(&ctx.root, Role::Astakos)
    }
    fn run(&self, ctx: &mut Ctx) -> Result<String> {
        synnefo::register_cyclades(&ctx.root, &ctx.config, PhaseKind::Finish.name(), self.id())
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
        "check that the started services are active, and stay active"
    }
    fn run(&self, ctx: &mut Ctx) -> Result<String> {
        let started = names(ctx.state.services.iter().filter(|s| s.was_active));
        let down = |ctx: &Ctx| -> Result<Vec<String>> {
            let mut down = Vec::new();
            for name in &started {
                if !ctx.services.is_active(name)? {
                    down.push(node::unit_name(name));
                }
            }
            Ok(down)
        };
        let mut inactive = down(ctx)?;
        // A service that dies right after starting must not pass: look again after the settle period.
        let settle = ctx.config.services.settle_seconds;
        if inactive.is_empty()
            && !started.is_empty()
            && settle > 0
            && ctx.services.init() != InitSystem::Offline
        {
            std::thread::sleep(std::time::Duration::from_secs(settle));
            inactive = down(ctx)?;
        }
        if !inactive.is_empty() {
            bail!(
                "not active after start{}: {}; see 'systemctl status {}' and 'journalctl -u {}'",
                if settle > 0 {
                    format!(" (or within {settle}s of it)")
                } else {
                    String::new()
                },
                inactive.join(", "),
                inactive.join(" "),
                inactive[0]
            );
        }
        ctx.state.services_restored(crate::state::now());
        Ok(format!("active: {}", list(&started)))
    }
}

struct HealthChecks;
impl Step for HealthChecks {
    fn id(&self) -> &'static str {
        "health-checks"
    }
    fn title(&self) -> &'static str {
        "run the configured [[health]] checks"
    }
    fn applies(&self, ctx: &Ctx) -> bool {
        !ctx.config.health.is_empty()
    }
    fn run(&self, ctx: &mut Ctx) -> Result<String> {
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
            let run = exec::run_logged(PhaseKind::Finish.name(), self.id(), &full, &[])?;
            if !run.status.success() {
                failed.push(format!("{name} ({})", run.status));
            }
        }
        if !failed.is_empty() {
            bail!("health checks failed: {}; their output is in 'journalctl SYNNEFO_UPGRADE_STEP=health-checks'", failed.join(", "));
        }
        Ok(format!("{} check(s) passed", ctx.config.health.len()))
    }
}

struct ReportDpkgDist;
impl Step for ReportDpkgDist {
    fn id(&self) -> &'static str {
        "report-dpkg-dist"
    }
    fn title(&self) -> &'static str {
        "list the new conffile versions dpkg left beside kept ones (*.dpkg-dist, *.dpkg-new)"
    }
    fn run(&self, ctx: &mut Ctx) -> Result<String> {
        let found = crate::status::dpkg_leftovers(&ctx.root);
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
}

struct RestoreBootState;
impl Step for RestoreBootState {
    fn id(&self) -> &'static str {
        "restore-boot-state"
    }
    fn title(&self) -> &'static str {
        "keep disabled the services that did not start at boot before (0.19 units ignore /etc/default flags)"
    }
    fn run(&self, ctx: &mut Ctx) -> Result<String> {
        let disable = names(
            ctx.state
                .services
                .iter()
                .filter(|s| !s.was_masked && !s.ran_at_boot()),
        );
        ctx.services.disable(&disable)?;
        Ok(format!("kept disabled: {}", list(&disable)))
    }
}

struct RemoveAptConfig;
impl Step for RemoveAptConfig {
    fn id(&self) -> &'static str {
        "remove-apt-config"
    }
    fn title(&self) -> &'static str {
        "remove the APT snippet and the guard hook (the gevent pin stays)"
    }
    fn run(&self, ctx: &mut Ctx) -> Result<String> {
        let mut undone = vec![format!(
            "{}: {}",
            apt::CONF_SNIPPET,
            fsx::undo(&ctx.root, Path::new(apt::CONF_SNIPPET))?
        )];
        // Abort also takes back the backports source and the pin; finish keeps them.
        if ctx.state.phase == Phase::Aborting {
            for file in [apt::BACKPORTS_LIST, apt::PIN_FILE] {
                undone.push(format!(
                    "{file}: {}",
                    fsx::undo(&ctx.root, Path::new(file))?
                ));
            }
        }
        Ok(undone.join(", "))
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

// ----- abort -----

/// Packages whose version changed since `prepare` (dpkg has unpacked new ones).
pub fn changed_packages(root: &Root) -> Result<Vec<String>> {
    let before = std::fs::read_to_string(root.path(DPKG_SNAPSHOT))
        .with_context(|| format!("reading '{DPKG_SNAPSHOT}' (written by prepare)"))?;
    let before: std::collections::HashMap<String, String> = dpkg::parse_status(&before)
        .into_iter()
        .filter(dpkg::Package::is_present)
        .map(|p| (p.name, p.version))
        .collect();
    let now = dpkg::present_packages(root)?;
    Ok(now
        .into_iter()
        .filter(|p| before.get(&p.name).is_some_and(|v| v != &p.version))
        .map(|p| format!("{} {} -> {}", p.name, before[&p.name], p.version))
        .collect())
}

struct AbortGate;
impl Step for AbortGate {
    fn id(&self) -> &'static str {
        "abort-gate"
    }
    fn title(&self) -> &'static str {
        "check that the dist-upgrade has not started"
    }
    fn run(&self, ctx: &mut Ctx) -> Result<String> {
        let changed = if ctx.root.path(DPKG_SNAPSHOT).exists() {
            changed_packages(&ctx.root)?
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
}

struct RestoreBackups;
impl Step for RestoreBackups {
    fn id(&self) -> &'static str {
        "restore-backups"
    }
    fn title(&self) -> &'static str {
        "put back every file prepare changed, byte for byte with owner and mode"
    }
    fn run(&self, ctx: &mut Ctx) -> Result<String> {
        let restored = fsx::restore_all(&ctx.root)?;
        let restored: Vec<String> = restored.iter().map(|p| p.display().to_string()).collect();
        Ok(format!("restored: {}", list(&restored)))
    }
}

struct RemoveCreatedDirs;
impl Step for RemoveCreatedDirs {
    fn id(&self) -> &'static str {
        "remove-created-dirs"
    }
    fn title(&self) -> &'static str {
        "remove the directories prepare created, where empty again"
    }
    fn run(&self, ctx: &mut Ctx) -> Result<String> {
        let removed = fsx::remove_created_dirs(&ctx.root)?;
        let removed: Vec<String> = removed.iter().map(|p| p.display().to_string()).collect();
        Ok(format!("removed: {}", list(&removed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn step_ids_are_unique_per_phase() {
        for phase in [PhaseKind::Prepare, PhaseKind::Finish, PhaseKind::Abort] {
            let ids: Vec<&str> = steps(phase).iter().map(|s| s.id()).collect();
            let unique: HashSet<&str> = ids.iter().copied().collect();
            assert_eq!(ids.len(), unique.len(), "{ids:?}");
        }
    }
}
