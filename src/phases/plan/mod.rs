//! The upgrade plan: the ordered steps of each phase, as a table.
//!
//! Each phase is one static list of [`StepDef`]s below; the step bodies are
//! plain functions in [`prepare`], [`finish`] and [`abort`]. A step must be
//! idempotent, because a rerun after a crash repeats the step that was
//! running. The work itself is done by the module of its concern; the step
//! only decides what to ask for.

use anyhow::Result;

use crate::actions::services::Services;
use crate::base::finding::Finding;
use crate::base::fsx::Root;
use crate::base::state::{PhaseKind, ServiceRecord, State};
use crate::findings::preflight;
use crate::inputs::config::Config;
use crate::inputs::node::Facts;

pub mod abort;
pub mod finish;
pub mod prepare;

use abort as a;
use finish as f;
use prepare as p;

/// `prepare`: arm the node, on the old system.
#[rustfmt::skip]
pub static PREPARE: &[StepDef] = &[
    step("preflight",            always,                     p::preflight,             "check that this node can be armed"),
    step("record-services",      always,                     p::record_services,       "record the pre-upgrade state of the managed services"),
    step("snapshot-dpkg",        always,                     p::snapshot_dpkg,         "remember the installed package versions (abort is refused once they change)"),
    step("apt-sources",          always,                     p::apt_sources,           "switch the APT sources to the new release"),
    step("apt-config",           always,                     p::apt_config,            "unattended conffile handling, the guard hook, gevent/greenlet from backports"),
    step("download",             p::download_wanted,         p::download,              "download the new release's packages while the services still run"),
    step("install-policy-rc.d",  always,                     p::install_policy_rcd,    "deny starts of the managed services during package runs"),
    step("stop-services",        always,                     p::stop_services,         "stop the managed services and verify they are down"),
    step("mask-services",        always,                     p::mask_services,         "mask the managed services for the next boot"),
    step("disable-boot-start",   always,                     p::disable_boot_start,   "disable the sysvinit boot-time start of the managed services (as update-rc.d disable)"),
    step("enable-finish-unit",   always,                     p::enable_finish_unit,    "enable synnefo-upgrade-finish.service for the next boot"),
    step("arm",                  always,                     p::arm,                   "arm the finish unit"),
];

/// `finish`: complete the upgrade, at the first boot under systemd. The entries
/// in capitals are steps `abort` runs too (defined once, after the tables).
#[rustfmt::skip]
pub static FINISH: &[StepDef] = &[
    step("preconditions",        always,                     f::preconditions,         "check the node runs the new release under systemd, with Synnefo 0.19"),
    step("backups",              f::backups_wanted,          f::backups,               "dump the database and archive the configuration (before migrations)"),
    step("migrate",              f::migrate_wanted,          f::migrate,               "run the database migrations (snf-manage migrate), or wait for the node that runs them"),
    step("fix-ip-history",       f::fix_ip_history_wanted,   f::fix_ip_history,        "repair the IP history from the VM owner changelog (fix_ip_history)"),
    step("convert",              always,                     f::convert,               "convert the Synnefo, gunicorn and web server configuration to 0.19"),
    // Boot state set while still masked: a crash after the unmask must not
    // let the next boot start a service that did not start at boot before,
    // nor leave down at a later boot one that did. Enabling writes the
    // [Install] links directly (D-Bus refuses to enable a masked unit); a
    // crash before the unmask leaves the masks, so the next boot starts
    // nothing, and the rerun repeats both idempotent steps.
    RESTORE_BOOT_START,
    step("restore-boot-state",   always,                     f::restore_boot_state,    "make boot-time starts as before: enable native units that started at boot, disable those that did not (0.19 units ignore /etc/default flags)"),
    UNMASK_SERVICES,
    START_SERVICES,
    VERIFY_SERVICES,
    // A write to the database, once for the cluster (on the Astakos node that
    // migrates): after the services are back, off the downtime.
    step("register-cyclades",    f::registers_cyclades,      f::register_cyclades,     "re-register the Cyclades component (its endpoints changed in 0.19), on the Astakos node that runs the migrations"),
    // After the conversion (sites and conf.d in Apache 2.4's places) and the
    // managed services (Apache proxies to gunicorn); before the health checks,
    // which usually go through Apache.
    step("restart-apache",       f::apache_wanted,           f::restart_apache,        "check the Apache configuration (apache2ctl configtest) and restart Apache, where it ran before"),
    step("health-checks",        f::health_wanted,           f::health_checks,         "run the configured [[health]] checks"),
    REMOVE_APT_CONFIG,
    REMOVE_POLICY_RCD,
    step("report-dpkg-dist",     always,                     f::report_dpkg_dist,      "list the new conffile versions dpkg and ucf left beside kept ones (*.dpkg-dist, *.dpkg-new, *.ucf-dist)"),
    step("report-notices",       always,                     f::report_notices,        "report what is the operator's to change (PostgreSQL clusters to upgrade, a remote AMQP guest, gunicorn behind a remote proxy)"),
    // Last before done: every step since verify-services counts toward the
    // settle period, so little or none of it is left to wait.
    SERVICES_SETTLED,
    DISABLE_FINISH_UNIT,
];

/// `abort`: take back what prepare did, before the dist-upgrade.
#[rustfmt::skip]
pub static ABORT: &[StepDef] = &[
    step("abort-gate",           always,                     a::abort_gate,            "check that the dist-upgrade has not started"),
    REMOVE_APT_CONFIG,
    // Before restore-backups, which would put the S links back beside our K links.
    RESTORE_BOOT_START,
    step("restore-backups",      always,                     a::restore_backups,       "take back every file change of prepare and convert: originals byte for byte with owner and mode, renames undone, created files and links removed; an edit made since is kept beside its file"),
    REMOVE_POLICY_RCD,
    UNMASK_SERVICES,
    DISABLE_FINISH_UNIT,
    step("remove-created-dirs",  always,                     a::remove_created_dirs,   "remove the directories prepare created, where empty again"),
    START_SERVICES,
    VERIFY_SERVICES,
    SERVICES_SETTLED,
    step("refresh-apt-lists",    a::refresh_apt_lists_wanted, a::refresh_apt_lists,    "after prepare --download: apt-get update against the restored sources, so that APT's lists no longer describe the new release"),
];

// Steps of both finish and abort (their bodies are in finish.rs).
#[rustfmt::skip]
const RESTORE_BOOT_START:  StepDef = step("restore-boot-start",  always, f::restore_boot_start,   "put back the sysvinit boot-time start links prepare disabled");
#[rustfmt::skip]
const REMOVE_APT_CONFIG:   StepDef = step("remove-apt-config",   always, f::remove_apt_config,    "remove the APT snippet and the guard hook (the gevent pin stays)");
#[rustfmt::skip]
const REMOVE_POLICY_RCD:   StepDef = step("remove-policy-rc.d",  always, f::remove_policy_rcd,    "remove our policy-rc.d (restore a previous one)");
#[rustfmt::skip]
const UNMASK_SERVICES:     StepDef = step("unmask-services",     always, f::unmask_services,      "remove the masks prepare made");
#[rustfmt::skip]
const START_SERVICES:      StepDef = step("start-services",      always, f::start_services,       "start the services that ran before the upgrade");
#[rustfmt::skip]
const VERIFY_SERVICES:     StepDef = step("verify-services",     always, f::verify_services,      "check that the started services are active (the downtime ends here)");
#[rustfmt::skip]
const SERVICES_SETTLED:    StepDef = step("services-settled",    always, f::services_settled,     "check that the started services stayed active for [services] settle_seconds (the time since their start counts)");
#[rustfmt::skip]
const DISABLE_FINISH_UNIT: StepDef = step("disable-finish-unit", always, f::disable_finish_unit,  "disable synnefo-upgrade-finish.service and disarm");

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
    /// Id of the step running now (the journal field of its commands' output); set by the runner.
    pub step: &'static str,
    /// What this run knows of the node, gathered once at its start.
    pub facts: Facts,
    /// The preflight's findings, once evaluated ([`Ctx::preflight`]).
    pub findings: Option<Vec<Finding>>,
    /// The PostgreSQL clusters (version, name), read by `migrate` while it
    /// waits for the database (`pg_lsclusters` is a Perl program: about a
    /// second on a slow node), for `report-notices`, which reads them itself
    /// where they were not read ahead.
    pub pg_clusters: std::sync::OnceLock<Vec<(String, String)>>,
}

impl Ctx {
    /// Gathers again what the run knew of the node (its facts, and so its
    /// preflight findings): another run changed the node since they were gathered.
    pub fn refresh(&mut self) {
        self.facts = Facts::gather(&self.root);
        self.findings = None;
    }

    /// The preflight's findings for this run, evaluated on first use only: the
    /// runner's check of a fresh node and the `preflight` step share one result.
    pub fn preflight(&mut self) -> &[Finding] {
        let Ctx {
            root,
            config,
            facts,
            findings,
            ..
        } = self;
        findings.get_or_insert_with(|| {
            let found = preflight::findings(root, config, facts);
            let ids: Vec<String> = found.iter().map(|f| f.id.to_string()).collect();
            log::debug!(
                "preflight evaluated: {} finding(s): {}",
                found.len(),
                list(&ids)
            );
            found
        })
    }
}

/// One step of a phase.
pub struct StepDef {
    /// Stable id (journal field `SYNNEFO_UPGRADE_STEP`, state file, failpoints, docs/json.md).
    pub id: &'static str,
    /// What it does, for the operator.
    pub title: &'static str,
    /// Whether it applies to this node; a step that does not is recorded as skipped.
    pub applies: fn(&Ctx) -> bool,
    /// Does the work (idempotently) and says what it did.
    pub run: fn(&mut Ctx) -> Result<String>,
}

fn always(_: &Ctx) -> bool {
    true
}

const fn step(
    id: &'static str,
    applies: fn(&Ctx) -> bool,
    run: fn(&mut Ctx) -> Result<String>,
    title: &'static str,
) -> StepDef {
    StepDef {
        id,
        title,
        applies,
        run,
    }
}

/// The steps of `phase`, in order.
pub fn steps(phase: PhaseKind) -> &'static [StepDef] {
    match phase {
        PhaseKind::Prepare => PREPARE,
        PhaseKind::Finish => FINISH,
        PhaseKind::Abort => ABORT,
    }
}

/// The step `id` of `phase`.
pub fn find(phase: PhaseKind, id: &str) -> Option<&'static StepDef> {
    steps(phase).iter().find(|s| s.id == id)
}

/// The step ids of `phase`, in order.
pub fn ids(phase: PhaseKind) -> Vec<&'static str> {
    steps(phase).iter().map(|s| s.id).collect()
}

fn names<'a>(records: impl Iterator<Item = &'a ServiceRecord>) -> Vec<String> {
    records.map(|s| s.name.clone()).collect()
}

/// All managed services, an admin's systemd mask included (a mask does not
/// stop sysvinit): whose boot-time start links prepare disables.
fn managed(ctx: &Ctx) -> Vec<String> {
    ctx.state.managed().map(String::from).collect()
}

/// `apt-get ARGS` on the node, unattended (`DEBIAN_FRONTEND=noninteractive`),
/// its output in the journal under `ctx`'s step of `phase`.
fn apt_get(
    ctx: &Ctx,
    phase: crate::base::state::PhaseKind,
    args: &[&str],
) -> Result<crate::base::exec::Logged> {
    let program = crate::base::exec::find(&ctx.root, "apt-get")?;
    let program = program.to_string_lossy();
    let mut argv = vec![program.as_ref()];
    argv.extend_from_slice(args);
    crate::base::exec::run_logged(
        phase,
        ctx.step,
        &argv,
        &[("DEBIAN_FRONTEND", "noninteractive")],
    )
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn step_ids_are_unique_per_phase() {
        for phase in [PhaseKind::Prepare, PhaseKind::Finish, PhaseKind::Abort] {
            let ids = ids(phase);
            let unique: HashSet<&str> = ids.iter().copied().collect();
            assert_eq!(ids.len(), unique.len(), "{ids:?}");
        }
    }
}
