//! Preflight: what `check` reports and what decides whether this node may be
//! armed. Findings carry a severity, whether they inhibit, and what to do.
//!
//! Shared by `check` (which reports them) and `prepare` (which refuses to run,
//! exit 3, while any inhibits). Read-only: it never writes, anywhere.

use serde::Serialize;

use crate::apt;
use crate::changelog;
use crate::config::Config;
use crate::dpkg;
use crate::error::Fatal;
use crate::fsx::Root;
use crate::node::{self, Role};
use crate::plan::steps;
use crate::services::Services;
use crate::state::{Phase, PhaseKind, State};

/// Version of the `check --json` document.
pub const SCHEMA: u32 = 1;

/// The Synnefo version this tool upgrades from.
pub const FROM_VERSION: &str = "0.18.1";

/// What to do about a finding.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Remediation {
    /// In words.
    pub hint: String,
    /// Commands that do it (to run by hand, where they apply).
    pub commands: Vec<String>,
}

/// One finding of the preflight.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Finding {
    /// Stable id (kept across releases; see docs/json.md).
    pub id: &'static str,
    /// `info`, `low`, `medium` or `high`.
    pub severity: &'static str,
    /// Blocks the upgrade.
    pub inhibitor: bool,
    /// One line.
    pub title: String,
    /// The details.
    pub summary: String,
    /// What to do.
    pub remediation: Remediation,
}

impl Finding {
    pub(crate) fn new(
        id: &'static str,
        severity: &'static str,
        title: impl Into<String>,
        summary: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Finding {
            id,
            severity,
            inhibitor: false,
            title: title.into(),
            summary: summary.into(),
            remediation: Remediation {
                hint: hint.into(),
                commands: Vec::new(),
            },
        }
    }

    pub(crate) fn inhibitor(
        id: &'static str,
        title: impl Into<String>,
        summary: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Finding {
            inhibitor: true,
            ..Finding::new(id, "high", title, summary, hint)
        }
    }

    pub(crate) fn commands(mut self, commands: impl IntoIterator<Item = String>) -> Self {
        self.remediation.commands = commands.into_iter().collect();
        self
    }
}

/// Everything the preflight reads about the node, read once.
struct Facts {
    packages: Result<Vec<dpkg::Package>, String>,
    roles: Vec<Role>,
}

impl Facts {
    fn read(root: &Root) -> Facts {
        let packages = dpkg::present_packages(root).map_err(|e| format!("{e:#}"));
        let roles = node::roles(root, packages.as_deref().unwrap_or_default());
        Facts { packages, roles }
    }
}

/// Space the dist-upgrade needs, estimated from what is installed: the
/// downloads (about a third of the installed size) in the archive cache, and
/// about a quarter of it more in `/`, plus the configured margin in each.
fn space_findings(
    root: &Root,
    config: &Config,
    packages: &[dpkg::Package],
    found: &mut Vec<Finding>,
) {
    let installed_kib: u64 = packages.iter().map(|p| p.installed_size_kib).sum();
    let margin = config.preflight.space_margin_mib;
    let archives_need = installed_kib / 3 / 1024 + margin;
    let root_need = installed_kib / 4 / 1024 + margin;
    let archives = "/var/cache/apt/archives";
    let free = |abs: &str| -> Option<(u64, u64)> {
        let stat = nix::sys::statvfs::statvfs(&root.path(abs)).ok()?;
        Some((
            stat.blocks_available() * stat.fragment_size() / (1024 * 1024),
            stat.filesystem_id(),
        ))
    };
    let (Some((archives_free, archives_fs)), Some((root_free, root_fs))) =
        (free(archives).or_else(|| free("/var")), free("/"))
    else {
        return;
    };
    let same_fs = archives_fs == root_fs;
    let mut check = |id: &'static str, place: &str, need: u64, have: u64| {
        if have < need {
            found.push(
                Finding::inhibitor(
                    id,
                    format!("not enough free space in {place}: {have} MiB free, about {need} MiB needed"),
                    format!("estimated from the {} MiB installed, plus a margin of {margin} MiB ([preflight] space_margin_mib)", installed_kib / 1024),
                    format!("free space in {place}"),
                )
                .commands(["apt-get clean".to_string()]),
            );
        }
    };
    if same_fs {
        check(
            "disk-space",
            "/ (with /var/cache/apt/archives)",
            archives_need + root_need,
            root_free,
        );
    } else {
        check(
            "disk-space-archives",
            archives,
            archives_need,
            archives_free,
        );
        check("disk-space-root", "/", root_need, root_free);
    }
}

/// The findings for the node under `root`, inhibitors first.
pub fn findings(root: &Root, config: &Config) -> Vec<Finding> {
    findings_with(root, config, &Facts::read(root))
}

fn findings_with(root: &Root, config: &Config, facts: &Facts) -> Vec<Finding> {
    let mut found = Vec::new();
    let from = &config.release.os_from;
    if root.is_live() && !nix::unistd::geteuid().is_root() {
        found.push(Finding::inhibitor(
            "not-root",
            "synnefo-upgrade must run as root",
            "it stops services and edits /etc",
            "run it as root",
        ));
    }
    match node::os_codename(root) {
        Ok(codename) if &codename == from => {}
        Ok(codename) => found.push(Finding::inhibitor(
            "os-release",
            format!("the OS is '{codename}', not '{from}'"),
            format!(
                "this package upgrades {from} nodes to {}",
                config.release.os_to
            ),
            format!("arm only a {from} node ([release] os_from sets the release to upgrade from)"),
        )),
        Err(e) => found.push(Finding::inhibitor(
            "os-release",
            "the OS release is unknown",
            format!("{e:#}"),
            "check /etc/os-release and /etc/debian_version",
        )),
    }
    match &facts.packages {
        Err(e) => found.push(Finding::inhibitor(
            "dpkg-status",
            "the package database cannot be read",
            e.clone(),
            "check /var/lib/dpkg/status",
        )),
        Ok(packages) => {
            let synnefo: Vec<&dpkg::Package> = packages
                .iter()
                .filter(|p| node::is_synnefo_package(p))
                .collect();
            let wrong: Vec<String> = synnefo
                .iter()
                .filter(|p| p.upstream_version() != FROM_VERSION)
                .map(|p| format!("{} {}", p.name, p.version))
                .collect();
            if !wrong.is_empty() {
                found.push(Finding::inhibitor(
                    "synnefo-version",
                    format!("installed Synnefo packages are not {FROM_VERSION}"),
                    format!("the upgrade to 0.19 (Django migrations replace South) runs only from {FROM_VERSION}; found: {}", wrong.join(", ")),
                    format!("upgrade this node to Synnefo {FROM_VERSION} first"),
                ));
            }
            if synnefo.is_empty() {
                found.push(Finding::new(
                    "no-synnefo",
                    "low",
                    "no Synnefo package is installed",
                    "only the OS and the services found are upgraded",
                    "make sure this is the node you mean",
                ));
            }
            space_findings(root, config, packages, &mut found);
        }
    }
    let instances = node::running_instances(root);
    if !instances.is_empty() {
        let me = node::hostname(root).unwrap_or_else(|| "NODE".into());
        found.push(
            Finding::inhibitor(
                "ganeti-instances",
                format!(
                    "{} Ganeti instance(s) still run on this node",
                    instances.len()
                ),
                format!("running: {}", instances.join(", ")),
                "evacuate the node first (live-migrate its instances away), on the Ganeti master",
            )
            .commands([
                format!("gnt-node migrate -f {me}"),
                format!("gnt-node evacuate -s {me}"),
            ]),
        );
    }
    match apt::suites(root) {
        Ok(suites) => {
            for (file, line, suite) in suites {
                if let Some(why) = apt::unmappable(&suite, &config.release.suite_from) {
                    found.push(Finding::inhibitor(
                        "apt-source",
                        format!(
                            "{}:{line}: the APT suite has no {} equivalent",
                            file.display(),
                            config.release.suite_to
                        ),
                        why,
                        format!("edit {}:{line}", file.display()),
                    ));
                }
            }
        }
        Err(e) => found.push(Finding::inhibitor(
            "apt-source",
            "the APT sources cannot be read",
            format!("{e:#}"),
            "check /etc/apt/sources.list(.d)",
        )),
    }
    match State::load(root) {
        Ok(None) => {}
        Ok(Some(state)) if state.phase == Phase::Aborted => {}
        Ok(Some(state)) if state.phase == Phase::Preparing => found.push(Finding::new(
            "prepare-incomplete",
            "medium",
            "an earlier prepare did not complete",
            "running prepare again resumes it",
            "run 'synnefo-upgrade prepare'",
        )),
        Ok(Some(state)) => found.push(Finding::inhibitor(
            "already-armed",
            format!("this node is already {}", format!("{:?}", state.phase).to_lowercase()),
            "prepare runs once per node",
            "see 'synnefo-upgrade status'",
        )),
        Err(e) => found.push(Finding::inhibitor(
            "state-file",
            "the state file is not this version's",
            format!("{e:#}"),
            "inspect /var/lib/synnefo-upgrade/state.json; move it away only if no upgrade is in progress",
        )),
    }
    if let Some(path) = &config.fix_ip_history.changelog {
        let problem = match std::fs::read(root.path(path)) {
            Err(e) => Some(format!("cannot read it: {e}")),
            Ok(bytes) => match String::from_utf8(bytes) {
                Err(_) => Some("it is not UTF-8 text".into()),
                Ok(text) => changelog::validate(&text).err().map(|bad| {
                    bad.iter()
                        .map(|b| format!("line {}: {}", b.line, b.problem))
                        .collect::<Vec<_>>()
                        .join("; ")
                }),
            },
        };
        if let Some(problem) = problem {
            found.push(
                Finding::inhibitor(
                    "changelog-invalid",
                    format!(
                        "the configured VM owner changelog {} is not valid",
                        path.display()
                    ),
                    problem,
                    "fix the changelog ([fix_ip_history] changelog)",
                )
                .commands([format!(
                    "synnefo-upgrade validate-changelog {}",
                    path.display()
                )]),
            );
        }
    }
    notices(root, config, facts, &mut found);
    let packages = facts.packages.as_deref().unwrap_or_default();
    found.extend(crate::boot::findings(root, packages));
    found.extend(crate::notices::findings(root, packages));
    found.sort_by_key(|f| {
        (
            !f.inhibitor,
            ["high", "medium", "low", "info"]
                .iter()
                .position(|s| *s == f.severity),
        )
    });
    found
}

fn notices(root: &Root, config: &Config, facts: &Facts, found: &mut Vec<Finding>) {
    let service_node = facts
        .roles
        .iter()
        .any(|r| matches!(r, Role::Astakos | Role::Cyclades | Role::Pithos));
    found.push(Finding::new(
        "kamaki",
        "info",
        "users need Kamaki >= 0.15",
        "0.19 lists API endpoints the OpenStack way, a breaking change for older clients",
        "tell the cloud's users to upgrade Kamaki",
    ));
    if service_node && config.migrations.run {
        found.push(Finding::new(
            "migrations-here",
            "medium",
            "database migrations will run on this node",
            "run them on exactly one node per service (Astakos, Cyclades, Pithos): two nodes migrating one database at once is the hazard the guide warns about",
            "on the other nodes of the same service set [migrations] run = false",
        ));
        found.extend(crate::synnefo::south_findings(
            &crate::synnefo::south_listing(root),
        ));
    }
    for service in ["snf-ganeti-eventd", "snf-dispatcher"] {
        let Some((file, var)) = node::default_flag_of(service) else {
            continue;
        };
        if !node::installed_services(root).iter().any(|s| s == service) {
            continue;
        }
        let value = node::default_flag(root, service);
        let enabled = value.as_deref() == Some("true");
        found.push(Finding::new(
            if service == "snf-dispatcher" { "dispatcher-flag" } else { "eventd-flag" },
            "low",
            format!("{var}={} in {file}", value.as_deref().unwrap_or("(unset)")),
            if enabled {
                format!("{service} runs now and is started again after the upgrade")
            } else {
                format!("{service} does not run now; 0.19's systemd unit ignores {var}, so it is kept disabled after the upgrade")
            },
            format!("set {var}=true before arming if {service} should run on this node"),
        ));
    }
    // What finish's conversion will make of this node's files, read-only now:
    // a refusal here would stop finish later, with the services down.
    match crate::convert::plan(root, config) {
        Err(e) => found.push(Finding::inhibitor(
            "convert-refused",
            "the configuration cannot be converted to 0.19 automatically",
            format!("{e:#}"),
            "fix or convert the named file by hand ('synnefo-upgrade convert --dry-run' shows the rest)",
        )),
        Ok(conversion) => {
            for warning in &conversion.warnings {
                found.push(Finding::new(
                    "convert-warning",
                    "low",
                    "the conversion will leave something for you to check",
                    warning.clone(),
                    "see 'synnefo-upgrade convert --dry-run'",
                ));
            }
        }
    }
    if let Ok(Some(module)) = crate::convert::settings::Settings::load(root)
        .and_then(|s| s.literal("BACKEND_ALLOCATOR_MODULE"))
    {
        let module = module.as_str().unwrap_or_default().to_string();
        if module != crate::convert::settings::OLD_ALLOCATOR
            && module != crate::convert::settings::NEW_ALLOCATOR
        {
            found.push(Finding::new(
                "custom-allocator",
                "medium",
                format!("BACKEND_ALLOCATOR_MODULE is a custom '{module}'"),
                "it is kept as it is; 0.19's default is the FilterAllocator, with the new project-backend policy",
                format!("consider '{}'", crate::convert::settings::NEW_ALLOCATOR),
            ));
        }
    }
    if service_node && config.convert.allowed_hosts.is_none() {
        found.push(Finding::new(
            "allowed-hosts",
            "info",
            "ALLOWED_HOSTS will be ['*'] (0.19's default)",
            "Django 1.7 checks the Host header against ALLOWED_HOSTS",
            "set [convert] allowed_hosts to this service's host names",
        ));
    }
}

/// Fails with [`Fatal::Inhibited`] (exit 3) naming every inhibitor and its remedy.
pub fn ensure_no_inhibitor(root: &Root, config: &Config) -> anyhow::Result<()> {
    let blocking: Vec<String> = findings(root, config)
        .into_iter()
        .filter(|f| f.inhibitor)
        .map(|f| {
            format!(
                "{}: {} (what to do: {})",
                f.title, f.summary, f.remediation.hint
            )
        })
        .collect();
    if blocking.is_empty() {
        Ok(())
    } else {
        Err(Fatal::Inhibited(blocking.join("; ")).into())
    }
}

/// The services this node's upgrade manages: the configuration's list, or the
/// Synnefo services installed here (gunicorn everywhere; archipelago on
/// Pithos, Cyclades and Ganeti nodes; snf-dispatcher with Cyclades;
/// snf-ganeti-eventd where snf-cyclades-gtools put it).
pub fn managed_services(root: &Root, config: &Config) -> Vec<String> {
    config
        .services
        .managed
        .clone()
        .unwrap_or_else(|| node::installed_services(root))
}

/// The `check --json` document (see `docs/json.md`).
#[derive(Debug, Serialize)]
pub struct Report {
    /// [`SCHEMA`].
    pub schema: u32,
    /// Facts about the node.
    pub node: NodeFacts,
    /// Findings, inhibitors first, then by severity.
    pub findings: Vec<Finding>,
    /// Step ids of each phase, in order.
    pub plan: Plan,
}

/// A managed service now.
#[derive(Debug, Serialize)]
pub struct ServiceNow {
    /// Init script name.
    pub name: String,
    /// `active`, `inactive` or `unknown`.
    pub state: String,
    /// Started at boot.
    pub enabled: bool,
}

/// Facts about the node in the report.
#[derive(Debug, Serialize)]
pub struct NodeFacts {
    /// Host name (from /etc/hostname).
    pub hostname: Option<String>,
    /// Roles.
    pub roles: Vec<&'static str>,
    /// OS codename, or why it is unknown.
    pub os: String,
    /// Synnefo version: `0.18.1`, `none`, or the versions found when mixed.
    pub synnefo: String,
    /// `systemd`, `sysvinit` or `offline`.
    pub init: &'static str,
    /// The services the upgrade manages, as they are now.
    pub services: Vec<ServiceNow>,
}

/// The plan in the report.
#[derive(Debug, Serialize)]
pub struct Plan {
    /// Steps of `prepare`.
    pub prepare: Vec<&'static str>,
    /// Steps of `finish`.
    pub finish: Vec<&'static str>,
}

/// The preflight report of the node under `root`; `services` (when given)
/// tells each managed service's current state.
pub fn report(root: &Root, config: &Config, services: Option<&dyn Services>) -> Report {
    let facts = Facts::read(root);
    let mut versions: Vec<String> = facts
        .packages
        .as_deref()
        .unwrap_or_default()
        .iter()
        .filter(|p| node::is_synnefo_package(p))
        .map(|p| p.upstream_version().to_string())
        .collect();
    versions.sort();
    versions.dedup();
    let synnefo = if versions.is_empty() {
        "none".to_string()
    } else {
        versions.join(", ")
    };
    let services = managed_services(root, config)
        .into_iter()
        .map(|name| {
            let status = services.map(|s| s.status(&name));
            let (state, enabled) = match status {
                Some(Ok(st)) => (if st.active { "active" } else { "inactive" }, st.enabled),
                _ => ("unknown", crate::services::is_enabled_on_disk(root, &name)),
            };
            ServiceNow {
                name,
                state: state.into(),
                enabled,
            }
        })
        .collect();
    Report {
        schema: SCHEMA,
        node: NodeFacts {
            hostname: node::hostname(root),
            roles: facts.roles.iter().map(|r| r.name()).collect(),
            os: node::os_codename(root).unwrap_or_else(|e| format!("unknown ({e:#})")),
            synnefo,
            init: node::InitSystem::detect(root).name(),
            services,
        },
        findings: findings_with(root, config, &facts),
        plan: Plan {
            prepare: steps(PhaseKind::Prepare).iter().map(|s| s.id()).collect(),
            finish: steps(PhaseKind::Finish).iter().map(|s| s.id()).collect(),
        },
    }
}

/// Renders the report as text, grouped by severity, inhibitors first.
pub fn render(report: &Report) -> String {
    let n = &report.node;
    let services: Vec<String> = n
        .services
        .iter()
        .map(|s| {
            format!(
                "{} ({}{})",
                s.name,
                s.state,
                if s.enabled { ", enabled" } else { "" }
            )
        })
        .collect();
    let mut out = format!(
        "node {}: OS {}, Synnefo {}, init {}\nroles: {}\nmanaged services: {}\n",
        n.hostname.as_deref().unwrap_or("?"),
        n.os,
        n.synnefo,
        n.init,
        if n.roles.is_empty() {
            "none".into()
        } else {
            n.roles.join(", ")
        },
        if services.is_empty() {
            "none".into()
        } else {
            services.join(", ")
        },
    );
    // Inhibitors first, then the other findings by severity.
    let group_of = |f: &Finding| {
        if f.inhibitor {
            "INHIBITORS (the node will not be armed)"
        } else {
            f.severity
        }
    };
    let groups = [
        "INHIBITORS (the node will not be armed)",
        "high",
        "medium",
        "low",
        "info",
    ];
    for title in groups {
        let group: Vec<&Finding> = report
            .findings
            .iter()
            .filter(|f| group_of(f) == title)
            .collect();
        if group.is_empty() {
            continue;
        }
        out.push_str(&format!("\n{title}:\n"));
        for f in group {
            out.push_str(&format!(
                "  [{}] {}\n      {}\n      what to do: {}\n",
                f.id, f.title, f.summary, f.remediation.hint
            ));
            for c in &f.remediation.commands {
                out.push_str(&format!("        # {c}\n"));
            }
        }
    }
    if !report.findings.iter().any(|f| f.inhibitor) {
        out.push_str("\nno inhibitor: this node can be armed ('synnefo-upgrade prepare', or install the package)\n");
    }
    out.push_str(&format!(
        "\nplan:\n  prepare: {}\n  finish:  {}\n",
        report.plan.prepare.join(" -> "),
        report.plan.finish.join(" -> ")
    ));
    out
}
