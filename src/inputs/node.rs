//! Facts about this node: OS codename, init system, roles (from dpkg status
//! and Ganeti's ssconf), which Synnefo services it has. Read-only; a run reads
//! them once, into [`Facts`].

use anyhow::{Context, Result};
use std::path::Path;

use crate::base::fsx::{self, Root};
use crate::base::paths;

pub mod facts;
pub mod ganeti;
pub use facts::Facts;

/// The services the guide stops, in the order they are stopped
/// (and started again in reverse).
pub const SYNNEFO_SERVICES: &[&str] = &[
    "gunicorn",
    "snf-dispatcher",
    "snf-ganeti-eventd",
    "archipelago",
];

/// The init system in charge of the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InitSystem {
    /// systemd is PID 1 (`/run/systemd/system` exists).
    Systemd,
    /// Anything else: sysvinit on wheezy.
    #[serde(rename = "sysvinit")]
    Sysv,
    /// `--root`: nothing is running, services are handled offline.
    Offline,
}

impl InitSystem {
    /// Detects the init system of `root`.
    pub fn detect(root: &Root) -> InitSystem {
        if !root.is_live() {
            InitSystem::Offline
        } else if Path::new(paths::RUN_SYSTEMD_SYSTEM).is_dir() {
            InitSystem::Systemd
        } else {
            InitSystem::Sysv
        }
    }

    /// Every init system.
    pub const ALL: [InitSystem; 3] = [InitSystem::Systemd, InitSystem::Sysv, InitSystem::Offline];

    /// Its name in reports and JSON.
    pub fn name(self) -> &'static str {
        match self {
            InitSystem::Systemd => "systemd",
            InitSystem::Sysv => "sysvinit",
            InitSystem::Offline => "offline",
        }
    }
}

display_as_name!(InitSystem);

/// Value of `key` in an os-release style file (`KEY=value`, optionally quoted).
fn os_release_value(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (k, v) = line.trim().split_once('=')?;
        (k == key).then(|| v.trim().trim_matches(|c| c == '"' || c == '\'').to_string())
    })
}

/// Debian codename for a major version (wheezy's os-release lacks the codename).
fn codename_of_major(major: &str) -> Option<&'static str> {
    Some(match major {
        "7" => "wheezy",
        "8" => "jessie",
        "9" => "stretch",
        "10" => "buster",
        "11" => "bullseye",
        "12" => "bookworm",
        "13" => "trixie",
        _ => return None,
    })
}

/// The OS codename: `VERSION_CODENAME`, else the word in parentheses of
/// `VERSION` (`7 (wheezy)`), else the major number of `/etc/debian_version`.
pub fn os_codename(root: &Root) -> Result<String> {
    let os_release = fsx::read_text_opt(root, paths::OS_RELEASE)
        .ok()
        .flatten()
        .unwrap_or_default();
    if let Some(name) = os_release_value(&os_release, "VERSION_CODENAME").filter(|v| !v.is_empty())
    {
        return Ok(name);
    }
    if let Some(version) = os_release_value(&os_release, "VERSION") {
        if let Some((_, rest)) = version.split_once('(') {
            if let Some((name, _)) = rest.split_once(')') {
                return Ok(name.trim().to_lowercase());
            }
        }
    }
    let debian_version = fsx::read_text(root, paths::DEBIAN_VERSION).with_context(|| {
        format!(
            "reading '{}' and '{}'",
            paths::OS_RELEASE,
            paths::DEBIAN_VERSION
        )
    })?;
    let major = debian_version.trim().split('.').next().unwrap_or_default();
    codename_of_major(major)
        .map(str::to_string)
        .with_context(|| {
            format!(
                "'{}' holds '{}', not a Debian release this tool knows",
                paths::DEBIAN_VERSION,
                debian_version.trim()
            )
        })
}

/// The systemd unit of a service named by its init script.
pub fn unit_name(service: &str) -> String {
    if service.ends_with(".service") {
        service.to_string()
    } else {
        format!("{service}.service")
    }
}

/// The Synnefo services this node has (an init script or a unit file).
pub fn installed_services(root: &Root) -> Vec<String> {
    SYNNEFO_SERVICES
        .iter()
        .filter(|name| {
            root.path(Path::new(paths::INIT_D).join(name)).exists()
                || root
                    .path(Path::new("/lib/systemd/system").join(unit_name(name)))
                    .exists()
        })
        .map(|name| name.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn root_with(files: &[(&str, &str)]) -> (tempfile::TempDir, Root) {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        for (p, c) in files {
            let host = root.path(p);
            fs::create_dir_all(host.parent().unwrap()).unwrap();
            fs::write(host, c).unwrap();
        }
        (dir, root)
    }

    #[test]
    fn codename_from_each_source() {
        let (_d, jessie) = root_with(&[(
            "/etc/os-release",
            "PRETTY_NAME=\"Debian GNU/Linux 8 (jessie)\"\nVERSION_ID=\"8\"\nVERSION=\"8 (jessie)\"\nID=debian\n",
        )]);
        assert_eq!(os_codename(&jessie).unwrap(), "jessie");
        let (_d, bookworm) = root_with(&[(
            "/etc/os-release",
            "VERSION_CODENAME=bookworm\nVERSION=\"12 (bookworm)\"\n",
        )]);
        assert_eq!(os_codename(&bookworm).unwrap(), "bookworm");
        let (_d, wheezy) = root_with(&[("/etc/debian_version", "7.11\n")]);
        assert_eq!(os_codename(&wheezy).unwrap(), "wheezy");
        let (_d, odd) = root_with(&[("/etc/debian_version", "kali-rolling\n")]);
        assert!(format!("{:#}", os_codename(&odd).unwrap_err()).contains("kali-rolling"));
    }

    #[test]
    fn installed_services_from_init_scripts_and_units() {
        let (_d, root) = root_with(&[
            ("/etc/init.d/gunicorn", "#!/bin/sh\n"),
            ("/lib/systemd/system/snf-ganeti-eventd.service", "[Unit]\n"),
        ]);
        assert_eq!(
            installed_services(&root),
            vec!["gunicorn", "snf-ganeti-eventd"]
        );
    }
}

/// The `/etc/default` file and variable that gate a service's init script.
pub fn default_flag_of(service: &str) -> Option<(&'static str, &'static str)> {
    match service {
        "snf-dispatcher" => Some(("/etc/default/snf-dispatcher", "SNF_DSPTCH_ENABLE")),
        "snf-ganeti-eventd" => Some(("/etc/default/snf-ganeti-eventd", "SNF_EVENTD_ENABLE")),
        _ => None,
    }
}

/// The value of a shell variable assignment in an `/etc/default` file (the last one wins).
pub fn default_flag(root: &Root, service: &str) -> Option<String> {
    let (file, var) = default_flag_of(service)?;
    let text = fsx::read_text_opt(root, file).ok()??;
    text.lines().rev().find_map(|line| {
        let (k, v) = line.trim().split_once('=')?;
        (k.trim() == var).then(|| v.trim().trim_matches(|c| c == '"' || c == '\'').to_string())
    })
}

/// The binary packages built from Synnefo's source package (their versions move
/// together). Other `snf-*` packages (snf-image, snf-pithos-webclient, ...)
/// are separate projects with versions of their own.
pub const SYNNEFO_PACKAGES: &[&str] = &[
    "snf-common",
    "snf-webproject",
    "snf-django-lib",
    "snf-branding",
    "snf-astakos-app",
    "snf-pithos-backend",
    "snf-pithos-app",
    "snf-cyclades-app",
    "snf-cyclades-gtools",
    "snf-admin-app",
    "snf-stats-app",
    "snf-tools",
    "python-astakosclient",
];

/// Whether a present package is part of Synnefo proper.
pub fn is_synnefo_package(package: &crate::base::dpkg::Package) -> bool {
    SYNNEFO_PACKAGES.contains(&package.name.as_str()) || package.source == "synnefo"
}

/// A role of the node, from its packages and Ganeti's ssconf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// snf-astakos-app.
    Astakos,
    /// snf-cyclades-app.
    Cyclades,
    /// snf-pithos-app.
    Pithos,
    /// snf-cyclades-gtools or ganeti: a Ganeti node.
    GanetiNode,
    /// Listed in `ssconf_master_candidates`.
    MasterCandidate,
    /// Named in `ssconf_master_node`.
    GanetiMaster,
    /// archipelago.
    Archipelago,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 7] = [
        Role::Astakos,
        Role::Cyclades,
        Role::Pithos,
        Role::GanetiNode,
        Role::MasterCandidate,
        Role::GanetiMaster,
        Role::Archipelago,
    ];

    /// The name used in reports and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Role::Astakos => "astakos",
            Role::Cyclades => "cyclades",
            Role::Pithos => "pithos",
            Role::GanetiNode => "ganeti-node",
            Role::MasterCandidate => "master-candidate",
            Role::GanetiMaster => "ganeti-master",
            Role::Archipelago => "archipelago",
        }
    }
}

display_as_name!(Role);

/// Ganeti's ssconf directory.
pub const SSCONF_DIR: &str = "/var/lib/ganeti";

/// This node's host name: `/etc/hostname` (never a resolver lookup).
pub fn hostname(root: &Root) -> Option<String> {
    fsx::read_text_opt(root, "/etc/hostname")
        .ok()
        .flatten()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| {
            root.is_live()
                .then(|| nix::unistd::gethostname().ok())
                .flatten()
                .map(|h| h.to_string_lossy().into_owned())
        })
}

/// Whether two host names name the same host (FQDN or short name on either side).
fn same_host(a: &str, b: &str) -> bool {
    let short = |s: &str| s.split('.').next().unwrap_or(s).to_ascii_lowercase();
    a.eq_ignore_ascii_case(b) || (short(a) == short(b) && (!a.contains('.') || !b.contains('.')))
}

/// The node's roles, sorted.
pub fn roles(root: &Root, packages: &[crate::base::dpkg::Package]) -> Vec<Role> {
    let has = |name: &str| packages.iter().any(|p| p.name == name);
    let mut roles = Vec::new();
    for (package, role) in [
        ("snf-astakos-app", Role::Astakos),
        ("snf-cyclades-app", Role::Cyclades),
        ("snf-pithos-app", Role::Pithos),
        ("archipelago", Role::Archipelago),
    ] {
        if has(package) {
            roles.push(role);
        }
    }
    if has("snf-cyclades-gtools") || has("ganeti") || has("ganeti2") {
        roles.push(Role::GanetiNode);
    }
    if let Some(me) = hostname(root) {
        let ssconf = |name: &str| {
            fsx::read_text_opt(root, Path::new(SSCONF_DIR).join(name))
                .ok()
                .flatten()
                .unwrap_or_default()
        };
        if ssconf("ssconf_master_candidates")
            .lines()
            .any(|l| same_host(l.trim(), &me))
        {
            roles.push(Role::MasterCandidate);
        }
        if ssconf("ssconf_master_node")
            .lines()
            .any(|l| same_host(l.trim(), &me))
        {
            roles.push(Role::GanetiMaster);
        }
    }
    roles.sort();
    roles
}

pub use ganeti::{running_instances, KVM_PID_DIR};

#[cfg(test)]
mod role_tests {
    use super::*;
    use crate::base::dpkg::Package;
    use crate::testing::assert_display_is_serde_name;

    #[test]
    fn roles_and_init_systems_print_as_their_serialized_names() {
        assert_display_is_serde_name(&Role::ALL);
        assert_display_is_serde_name(&InitSystem::ALL);
    }

    fn pkg(name: &str) -> Package {
        Package {
            name: name.into(),
            version: "0.18.1-1~wheezy".into(),
            want: "install".into(),
            state: "installed".into(),
            flag: "ok".into(),
            source: "synnefo".into(),
            installed_size_kib: 0,
        }
    }

    #[test]
    fn roles_from_packages_and_ssconf() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        std::fs::create_dir_all(root.path("/var/lib/ganeti")).unwrap();
        std::fs::create_dir_all(root.path("/etc")).unwrap();
        std::fs::write(root.path("/etc/hostname"), "node2\n").unwrap();
        std::fs::write(
            root.path("/var/lib/ganeti/ssconf_master_candidates"),
            "node1.example.org\nnode2.example.org\n",
        )
        .unwrap();
        std::fs::write(
            root.path("/var/lib/ganeti/ssconf_master_node"),
            "node1.example.org\n",
        )
        .unwrap();
        let packages = [
            pkg("snf-cyclades-gtools"),
            pkg("archipelago"),
            pkg("snf-common"),
        ];
        assert_eq!(
            roles(&root, &packages),
            [Role::GanetiNode, Role::MasterCandidate, Role::Archipelago]
        );
        std::fs::write(root.path("/etc/hostname"), "node1.example.org\n").unwrap();
        assert_eq!(
            roles(&root, &packages),
            [
                Role::GanetiNode,
                Role::MasterCandidate,
                Role::GanetiMaster,
                Role::Archipelago
            ]
        );
        std::fs::write(root.path("/etc/hostname"), "node10\n").unwrap();
        assert_eq!(
            roles(&root, &packages),
            [Role::GanetiNode, Role::Archipelago]
        );
    }

    #[test]
    fn synnefo_packages_by_name_or_source() {
        let mut image = pkg("snf-image");
        image.source = "snf-image".into();
        assert!(!is_synnefo_package(&image));
        assert!(is_synnefo_package(&pkg("snf-cyclades-app")));
        let mut unknown = pkg("snf-something-new");
        unknown.source = "synnefo".into();
        assert!(is_synnefo_package(&unknown));
    }
}
