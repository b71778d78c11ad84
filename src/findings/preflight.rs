//! Preflight: what `check` reports and what decides whether this node may be
//! armed. Findings carry a severity, whether they inhibit, and what to do.
//!
//! Shared by `check` (which reports them) and `prepare` (which refuses to run,
//! exit 3, while any inhibits). Computed from the run's [`Facts`] and the
//! configuration; the only files it reads itself are the VM owner changelog
//! the configuration names and the files `finish`'s conversion will change
//! (it plans the conversion, read-only). Read-only: it never writes the
//! node (the dist-upgrade simulation of [`crate::findings::aptsim`] writes only its own
//! scratch APT state, outside the node). It knows nothing of the plan: the plan runs it.

use serde::Serialize;

use crate::actions::services::Services;
use crate::base::apt;
use crate::base::changelog;
use crate::base::dpkg;
use crate::base::exec::shell_word;
use crate::base::finding::{self, Finding, Severity};
use crate::base::fsx::Root;
use crate::base::state::Phase;
use crate::inputs::config::Config;
use crate::inputs::node::{self, Facts, Role};

/// Version of the `check --json` document.
pub const SCHEMA: u32 = 1;

/// The Synnefo version this tool upgrades from.
pub const FROM_VERSION: &str = "0.18.1";

/// A managed service's state now, in the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceState {
    /// Running.
    Active,
    /// Not running.
    Inactive,
    /// The init system did not answer.
    Unknown,
}

impl ServiceState {
    /// Every state.
    pub const ALL: [ServiceState; 3] = [
        ServiceState::Active,
        ServiceState::Inactive,
        ServiceState::Unknown,
    ];

    /// The name in reports and JSON.
    pub fn name(self) -> &'static str {
        match self {
            ServiceState::Active => "active",
            ServiceState::Inactive => "inactive",
            ServiceState::Unknown => "unknown",
        }
    }
}

display_as_name!(ServiceState);

/// Space the dist-upgrade needs, estimated from what is installed: the
/// downloads (about a third of the installed size) in the archive cache, and
/// about a quarter of it more in `/`, plus the configured margin in each.
fn space_findings(
    space: Option<node::facts::Space>,
    config: &Config,
    packages: &[dpkg::Package],
    found: &mut Vec<Finding>,
) {
    let installed_kib: u64 = packages.iter().map(|p| p.installed_size_kib).sum();
    let margin = config.preflight.space_margin_mib;
    let archives_need = installed_kib / 3 / 1024 + margin;
    let root_need = installed_kib / 4 / 1024 + margin;
    let archives = "/var/cache/apt/archives";
    let Some(node::facts::Space {
        archives_free_mib: archives_free,
        archives_on_root_fs: same_fs,
        root_free_mib: root_free,
    }) = space
    else {
        return;
    };
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

/// The findings for the node of `facts` under `root`, inhibitors first.
pub fn findings(root: &Root, config: &Config, facts: &Facts) -> Vec<Finding> {
    let mut found = Vec::new();
    let from = &config.release.os_from;
    if facts.live_non_root {
        found.push(Finding::inhibitor(
            "not-root",
            "synnefo-upgrade must run as root",
            "it stops services and edits /etc",
            "run it as root",
        ));
    }
    match &facts.os {
        Ok(codename) if codename == from => {}
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
            e.clone(),
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
                .filter(|p| !p.is_upstream(FROM_VERSION))
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
                    Severity::Low,
                    "no Synnefo package is installed",
                    "only the OS and the services found are upgraded",
                    "make sure this is the node you mean",
                ));
            }
            space_findings(facts.space, config, packages, &mut found);
        }
    }
    let instances = &facts.running_instances;
    if !instances.is_empty() {
        let me = facts.hostname.clone().unwrap_or_else(|| "NODE".into());
        found.push(
            Finding::inhibitor(
                "ganeti-instances",
                format!(
                    "{} Ganeti instance(s) still run on this node",
                    instances.len()
                ),
                format!(
                    "running: {}",
                    instances
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                format!(
                    "evacuate the node first, on the Ganeti master: drain it, then live-migrate each running instance away (not 'gnt-node migrate {}': it fails on a stopped instance of the node, which 'gnt-instance migrate -f --allow-failover' fails over)",
                    shell_word(&me)
                ),
            )
            .commands(
                std::iter::once(format!("gnt-node modify --drained=yes {}", shell_word(&me))).chain(
                    instances
                        .iter()
                        .map(|i| format!("gnt-instance migrate -f {}", shell_word(&i.name))),
                ),
            ),
        );
    }
    if let Some(crate::inputs::node::ganeti::Drain::Open) = facts.drain {
        let me = facts.hostname.clone().unwrap_or_else(|| "NODE".into());
        found.push(
            Finding::new(
                "ganeti-node-not-drained",
                Severity::Medium,
                "this Ganeti node is not drained",
                "the cluster's allocator may place new instances here while the node is evacuated and rebooted (the cluster configuration says so; it is on the master candidates)",
                "drain the node on the Ganeti master before evacuating it, and undrain it once it is back",
            )
            .commands([
                format!("gnt-node modify --drained=yes {}", shell_word(&me)),
                format!("gnt-node modify --drained=no {}", shell_word(&me)),
            ]),
        );
    }
    apt_findings(config, facts, &mut found);
    match &facts.state {
        Ok(None) | Ok(Some(Phase::Aborted)) => {}
        Ok(Some(Phase::Preparing)) => found.push(Finding::new(
            "prepare-incomplete",
            Severity::Medium,
            "an earlier prepare did not complete",
            "running prepare again resumes it",
            "run 'synnefo-upgrade prepare'",
        )),
        Ok(Some(phase)) => found.push(Finding::inhibitor(
            "already-armed",
            format!("this node is already {phase}"),
            "prepare runs once per node",
            "see 'synnefo-upgrade status'",
        )),
        Err(e) => found.push(Finding::inhibitor(
            "state-file",
            "the state file is not this version's",
            e.clone(),
            "inspect /var/lib/synnefo-upgrade/state.json; move it away only if no upgrade is in progress",
        )),
    }
    if let Some(path) = &config.fix_ip_history.changelog {
        let problem = match crate::base::fsx::read_file(root, path) {
            Err(e) => Some(format!("cannot read it: {e:#}")),
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
                    shell_word(&**path)
                )]),
            );
        }
    }
    notices(root, config, facts, &mut found);
    let packages = facts.packages.as_deref().unwrap_or_default();
    found.extend(crate::findings::boot::findings(root, packages));
    // The simulation first: the PostgreSQL notice tells what it brings.
    found.extend(crate::findings::aptsim::findings(root, config, facts));
    found.extend(crate::findings::notices::findings(
        root,
        packages,
        crate::findings::notices::Moment::BeforeUpgrade,
    ));
    found.extend(crate::convert::webserver::access_findings(root));
    // Last: the node files skipped by any of the above (and by the facts).
    found.extend(finding::skipped_files());
    found.sort_by_key(|f| (!f.inhibitor, f.severity));
    found
}

/// The APT sources: suites with no successor, discs of the old release, and
/// on a service node the Debian archive that jessie-backports derives from.
fn apt_findings(config: &Config, facts: &Facts, found: &mut Vec<Finding>) {
    let (from, to) = (&config.release.suite_from, &config.release.suite_to);
    let sources = match &facts.apt_sources {
        Ok(sources) => sources,
        Err(e) => {
            found.push(Finding::inhibitor(
                "apt-source",
                "the APT sources cannot be read",
                e.clone(),
                "check /etc/apt/sources.list(.d)",
            ));
            return;
        }
    };
    for source in sources.iter().filter(|s| s.enabled) {
        let at = format!("{}:{}", source.file.display(), source.line);
        if let Some(why) = apt::unmappable(&source.suite, from) {
            found.push(Finding::inhibitor(
                "apt-source",
                format!("{at}: the APT suite has no {to} equivalent"),
                why,
                format!("edit {at}"),
            ));
        }
        if !source.is_disc() || apt::rewrite_suite(&source.suite, from, to).is_none() {
            continue;
        }
        let disc = source.uris.join(" ");
        let title = format!("{at}: a {from} disc cannot serve {to}");
        found.push(if source.deb822 {
            Finding::inhibitor(
                "apt-cdrom",
                title,
                format!("'{disc}' has only what was pressed on it; prepare does not disable a deb822 stanza, and APT would fail on it with {to}"),
                format!("set 'Enabled: no' in the stanza at {at} (or take the disc's URI out of it), then check again"),
            )
        } else {
            Finding::new(
                "apt-cdrom",
                Severity::Low,
                title,
                format!("'{disc}' has only what was pressed on it: prepare comments the line out (abort restores it from the backup)"),
                "nothing to do: the dist-upgrade takes its packages from the network sources",
            )
        });
    }
    if !facts.is_service_node() {
        return;
    }
    match apt::archive::backports(sources, &facts.apt_lists, from, to) {
        Ok(apt::Backports::NoMirror) => found.push(Finding::inhibitor(
            "apt-backports",
            format!("no Debian archive found to add {to}-backports from"),
            format!(
                "Synnefo 0.19's gunicorn workers need gevent and greenlet from {to}-backports (pinned by {}), \
                 which prepare adds on the node's Debian mirror; no '{from}' source qualifies: APT's lists do not say \
                 'Origin: Debian' / 'Label: Debian' for any, nor is any laid out as a Debian mirror (Debian's \
                 components on a '…/debian' path; ceph's 'debian-hammer' or nginx's 'packages/debian' are not)",
                apt::PIN_FILE
            ),
            apt::add_backports_hint(to),
        )),
        Ok(_) => {}
        Err(e) => found.push(Finding::inhibitor(
            "apt-backports",
            format!("the {to}-backports source cannot be derived from the Debian source"),
            format!("{e:#}"),
            apt::add_backports_hint(to),
        )),
    }
}

fn notices(root: &Root, config: &Config, facts: &Facts, found: &mut Vec<Finding>) {
    let service_node = facts.is_service_node();
    found.push(Finding::new(
        "kamaki",
        Severity::Info,
        "users need Kamaki >= 0.15",
        "0.19 lists API endpoints the OpenStack way, a breaking change for older clients",
        "tell the cloud's users to upgrade Kamaki",
    ));
    if service_node && config.migrations.run {
        found.push(Finding::new(
            "migrations-here",
            Severity::Medium,
            "database migrations will run on this node",
            "run them on exactly one node per service (Astakos, Cyclades, Pithos): two nodes migrating one database at once is the hazard the guide warns about",
            "on the other nodes of the same service set [migrations] run = false",
        ));
        found.extend(crate::actions::synnefo::south_findings(
            &crate::actions::synnefo::south_listing(root),
        ));
    }
    for service in ["snf-ganeti-eventd", "snf-dispatcher"] {
        let Some((file, var)) = node::default_flag_of(service) else {
            continue;
        };
        if !facts.installed_services.iter().any(|s| s == service) {
            continue;
        }
        let value = facts.default_flag(service);
        let enabled = value.as_deref() == Some("true");
        found.push(Finding::new(
            if service == "snf-dispatcher" { "dispatcher-flag" } else { "eventd-flag" },
            Severity::Low,
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
            if !conversion.is_empty() {
                let changes: Vec<String> = conversion
                    .summary()
                    .lines()
                    .map(|l| l.trim().to_string())
                    .collect();
                found.push(Finding::new(
                    "convert-plan",
                    Severity::Info,
                    format!(
                        "finish will convert the configuration to the 0.19 shape: {} change(s)",
                        changes.len()
                    ),
                    changes.join("; "),
                    "nothing to do: finish makes them after the dist-upgrade ('synnefo-upgrade convert --dry-run' shows the diffs)",
                ));
            }
            for warning in &conversion.warnings {
                found.push(Finding::new(
                    "convert-warning",
                    Severity::Low,
                    "the conversion will leave something for you to check",
                    warning.clone(),
                    "see 'synnefo-upgrade convert --dry-run'",
                ));
            }
        }
    }
    if let Some(module) = &facts.allocator {
        if module != crate::convert::settings::OLD_ALLOCATOR
            && module != crate::convert::settings::NEW_ALLOCATOR
        {
            found.push(Finding::new(
                "custom-allocator",
                Severity::Medium,
                format!("BACKEND_ALLOCATOR_MODULE is a custom '{module}'"),
                "it is kept as it is; 0.19's default is the FilterAllocator, with the new project-backend policy",
                format!("consider '{}'", crate::convert::settings::NEW_ALLOCATOR),
            ));
        }
    }
    // Hostile trees (convert/hostile.rs): links out of /etc, world-writable settings.
    for (link, target) in crate::convert::hostile::links_outside_etc(root) {
        found.push(Finding::new("config-symlink", Severity::Medium,
            format!("'{}' is a symbolic link to '{}', outside /etc", link.display(), target.display()),
            "synnefo-upgrade never writes through it, nor renames or replaces it; a conversion it needs is refused",
            "replace the link by a copy of its target, or convert that file where it lives"));
    }
    for (file, mode) in crate::convert::hostile::world_writable(root) {
        found.push(Finding::new("world-writable-config", Severity::High,
            format!("'{}' is world-writable (mode {mode:o})", file.display()),
            "any local user can put Python code in it that Synnefo runs, as root under snf-manage",
            "remove the write permission of others").commands([format!("chmod o-w {}", shell_word(&file))]));
    }
    if service_node && config.convert.allowed_hosts.is_none() {
        found.push(Finding::new(
            "allowed-hosts",
            Severity::Info,
            "ALLOWED_HOSTS will be ['*'] (0.19's default)",
            "Django 1.7 checks the Host header against ALLOWED_HOSTS",
            "set [convert] allowed_hosts to this service's host names",
        ));
    }
}

/// The `check --json` document (see `docs/json.md`).
#[derive(Debug, Serialize)]
pub struct Report {
    /// [`SCHEMA`].
    pub schema: u32,
    /// When the node was checked (RFC 3339 UTC).
    pub checked_at: String,
    /// The version of synnefo-upgrade that checked it.
    pub tool_version: String,
    /// Facts about the node.
    pub node: NodeFacts,
    /// Findings, inhibitors first, then by severity.
    pub findings: Vec<Finding>,
    /// Step ids of each phase, in order.
    pub plan: Plan,
    /// What this node's outage will contain (filled by `check`).
    pub forecast: crate::base::forecast::Forecast,
}

/// A managed service now.
#[derive(Debug, Serialize)]
pub struct ServiceNow {
    /// Init script name.
    pub name: String,
    /// Running now, or unknown.
    pub state: ServiceState,
    /// Started at boot.
    pub enabled: bool,
}

/// Facts about the node in the report.
#[derive(Debug, Serialize)]
pub struct NodeFacts {
    /// Host name (from /etc/hostname).
    pub hostname: Option<String>,
    /// Roles.
    pub roles: Vec<Role>,
    /// OS codename, or why it is unknown.
    pub os: String,
    /// Synnefo version: `0.18.1`, `none`, or the versions found when mixed.
    pub synnefo: String,
    /// The init system.
    pub init: node::InitSystem,
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

/// The preflight report of the node of `facts` under `root`; `services` (when
/// given) tells each managed service's current state; `plan` is the plan's step ids.
pub fn report(
    root: &Root,
    config: &Config,
    facts: &Facts,
    services: Option<&dyn Services>,
    plan: Plan,
) -> Report {
    let mut versions: Vec<String> = facts
        .packages()
        .iter()
        .filter(|p| node::is_synnefo_package(p))
        .map(|p| p.upstream_version().to_string())
        .collect();
    versions.sort_by(|a, b| dpkg::compare_versions(a, b));
    versions.dedup();
    let synnefo = if versions.is_empty() {
        "none".to_string()
    } else {
        versions.join(", ")
    };
    let services = facts
        .managed_services(config)
        .into_iter()
        .map(|name| {
            let status = services.map(|s| s.status(&name));
            let (state, enabled) = match status {
                Some(Ok(st)) if st.active => (ServiceState::Active, st.enabled),
                Some(Ok(st)) => (ServiceState::Inactive, st.enabled),
                _ => (
                    ServiceState::Unknown,
                    crate::actions::services::is_enabled_on_disk(root, &name),
                ),
            };
            ServiceNow {
                name,
                state,
                enabled,
            }
        })
        .collect();
    Report {
        schema: SCHEMA,
        checked_at: crate::base::clock::rfc3339(crate::base::clock::now()),
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        node: NodeFacts {
            hostname: facts.hostname.clone(),
            roles: facts.roles.clone(),
            os: match &facts.os {
                Ok(codename) => codename.clone(),
                Err(e) => format!("unknown ({e})"),
            },
            synnefo,
            init: facts.init,
            services,
        },
        findings: findings(root, config, facts),
        plan,
        forecast: crate::base::forecast::Forecast::default(),
    }
}

/// Keeps `report` as the node's last check ([`crate::base::paths::CHECK_REPORT`], the
/// `check --json` document, mode 0600 in the state directory), which
/// `status --json` shows as `last_check`. Replaces the one before.
pub fn save(root: &Root, report: &Report) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(report)?;
    text.push('\n');
    crate::base::fsx::write_state_file(root, crate::base::paths::CHECK_REPORT, text.as_bytes())
}

/// The node's last check as [`save`] kept it: `None` when there is none;
/// an unreadable or malformed file is an error naming it.
pub fn last(root: &Root) -> anyhow::Result<Option<serde_json::Value>> {
    use anyhow::Context;
    let path = crate::base::paths::CHECK_REPORT;
    let Some(bytes) = crate::base::fsx::read_file_opt(root, path)? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .with_context(|| format!("reading '{path}': not the JSON 'synnefo-upgrade check' writes; run 'synnefo-upgrade check' again to replace it"))
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
            n.roles
                .iter()
                .map(|r| r.name())
                .collect::<Vec<_>>()
                .join(", ")
        },
        if services.is_empty() {
            "none".into()
        } else {
            services.join(", ")
        },
    );
    // Inhibitors first, then the other findings by severity.
    let inhibitors = "INHIBITORS (the node will not be armed)".to_string();
    let groups = std::iter::once((inhibitors, None))
        .chain(Severity::ALL.into_iter().map(|s| (s.to_string(), Some(s))));
    for (title, severity) in groups {
        let group: Vec<&Finding> = report
            .findings
            .iter()
            .filter(|f| match severity {
                None => f.inhibitor,
                Some(s) => !f.inhibitor && f.severity == s,
            })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::assert_display_is_serde_name;

    #[test]
    fn severities_and_service_states_print_as_their_serialized_names() {
        assert_display_is_serde_name(&Severity::ALL);
        assert_display_is_serde_name(&ServiceState::ALL);
    }

    #[test]
    fn severities_sort_from_the_most_severe() {
        let mut all = Severity::ALL;
        all.reverse();
        all.sort();
        assert_eq!(all, Severity::ALL);
    }
}
