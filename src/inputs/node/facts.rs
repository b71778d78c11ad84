//! What a run knows of the node, gathered once at its start ([`Facts::gather`])
//! and carried in the plan's context: the preflight computes its findings from
//! it, and the steps decide from it where they apply.
//!
//! Each command is its own process, so "once per run" is also "fresh for each
//! phase": `finish` runs after the dist-upgrade and so sees the new packages.
//! A step that must see what an earlier step of the same run changed re-reads
//! it itself, and says why.

use std::collections::BTreeMap;

use super::{InitSystem, Role};
use crate::base::apt;
use crate::base::dpkg::{self, Package};
use crate::base::fsx::Root;
use crate::base::state::{Phase, State};
use crate::convert::settings::Settings;
use crate::inputs::config::Config;

/// Free space where the dist-upgrade needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    /// MiB free in `/var/cache/apt/archives` (or `/var`).
    pub archives_free_mib: u64,
    /// Whether the archive cache is on the file system of `/`.
    pub archives_on_root_fs: bool,
    /// MiB free in `/`.
    pub root_free_mib: u64,
}

/// What a run knows of the node.
#[derive(Debug, Clone)]
pub struct Facts {
    /// The OS codename, or why it is unknown.
    pub os: Result<String, String>,
    /// The init system in charge.
    pub init: InitSystem,
    /// The host name (`/etc/hostname`).
    pub hostname: Option<String>,
    /// The present packages of dpkg's status, or why it cannot be read.
    pub packages: Result<Vec<Package>, String>,
    /// The roles, sorted.
    pub roles: Vec<Role>,
    /// The Synnefo services installed here (init script or unit file).
    pub installed_services: Vec<String>,
    /// The `/etc/default` enable flags of the services that have one (installed or not).
    pub default_flags: BTreeMap<String, Option<String>>,
    /// Ganeti instances running here ([`super::ganeti`]).
    pub running_instances: Vec<super::ganeti::RunningInstance>,
    /// On a Ganeti node: whether the cluster keeps new instances off it.
    pub drain: Option<super::ganeti::Drain>,
    /// Whether the run is live and not as root.
    pub live_non_root: bool,
    /// The APT sources at the start of the run, or why they cannot be read.
    /// The `apt-sources` and `apt-config` steps read the files from disk, not
    /// these.
    pub apt_sources: Result<Vec<apt::Source>, String>,
    /// What APT's lists say of the archives it fetched.
    pub apt_lists: apt::Lists,
    /// The phase of the state file at the start of the run (`None`: no state
    /// file), or why it cannot be read: the preflight's view. The runner keeps
    /// the live state, which its steps change, in the plan's context.
    pub state: Result<Option<Phase>, String>,
    /// Free space, when the file systems answer.
    pub space: Option<Space>,
    /// The Synnefo settings' `BACKEND_ALLOCATOR_MODULE` at the start of the run
    /// (empty when it is not a string), when set. `finish`'s conversion may
    /// change it; no later step of that run reads it.
    pub allocator: Option<String>,
}

impl Facts {
    /// Reads the node under `root`, read-only.
    pub fn gather(root: &Root) -> Facts {
        let packages = dpkg::present_packages(root).map_err(|e| format!("{e:#}"));
        let roles = super::roles(root, packages.as_deref().unwrap_or_default());
        let installed_services = super::installed_services(root);
        let default_flags = super::SYNNEFO_SERVICES
            .iter()
            .filter(|s| super::default_flag_of(s).is_some())
            .map(|s| (s.to_string(), super::default_flag(root, s)))
            .collect();
        let hostname = super::hostname(root);
        let drain = roles
            .contains(&super::Role::GanetiNode)
            .then(|| super::ganeti::drain(root, hostname.as_deref().unwrap_or_default()));
        Facts {
            os: super::os_codename(root).map_err(|e| format!("{e:#}")),
            init: InitSystem::detect(root),
            hostname,
            packages,
            roles,
            installed_services,
            default_flags,
            running_instances: super::running_instances(root),
            drain,
            live_non_root: root.is_live() && !nix::unistd::geteuid().is_root(),
            apt_sources: apt::sources::sources(root).map_err(|e| format!("{e:#}")),
            apt_lists: apt::Lists::read(root),
            state: State::load(root)
                .map(|s| s.map(|s| s.phase))
                .map_err(|e| format!("{e:#}")),
            space: space(root),
            allocator: Settings::load(root)
                .and_then(|s| s.literal("BACKEND_ALLOCATOR_MODULE"))
                .ok()
                .flatten()
                .map(|m| m.as_str().unwrap_or_default().to_string()),
        }
    }

    /// The OS codename, or an error saying why it is unknown.
    pub fn os_codename(&self) -> anyhow::Result<&str> {
        self.os.as_deref().map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// The present packages, or an error saying why dpkg's status cannot be read.
    pub fn present_packages(&self) -> anyhow::Result<&[Package]> {
        self.packages.as_deref().map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// The present packages (none when dpkg's status cannot be read).
    pub fn packages(&self) -> &[Package] {
        self.packages.as_deref().unwrap_or_default()
    }

    /// The present Synnefo packages whose upstream version is not `version`,
    /// as `NAME VERSION`; an error when dpkg's status cannot be read.
    pub fn synnefo_not_at(&self, version: &str) -> anyhow::Result<Vec<String>> {
        Ok(self
            .present_packages()?
            .iter()
            .filter(|p| super::is_synnefo_package(p) && !p.is_upstream(version))
            .map(|p| format!("{} {}", p.name, p.version))
            .collect())
    }

    /// Why this node does not run the release the upgrade ends on (the OS
    /// `os_to`, every Synnefo package at `version`), one phrase each; empty
    /// when it does. What cannot be read counts against it.
    pub fn not_upgraded(&self, os_to: &str, version: &str) -> Vec<String> {
        let mut why = Vec::new();
        match self.os_codename() {
            Ok(os) if os == os_to => {}
            Ok(os) => why.push(format!("the OS is {os}, not {os_to}")),
            Err(e) => why.push(format!("the OS is unknown: {e:#}")),
        }
        match self.synnefo_not_at(version) {
            Ok(old) if old.is_empty() => {}
            Ok(old) => why.push(format!(
                "Synnefo packages are not {version}: {}",
                old.join(", ")
            )),
            Err(e) => why.push(format!("the Synnefo version is unknown: {e:#}")),
        }
        why
    }

    /// Whether this node has `role`.
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Whether this node has Synnefo's Django project (snf-webproject, whose
    /// snf-manage runs the migrations): a service node. A Ganeti node
    /// (snf-cyclades-gtools) has not: there is nothing to migrate or dump.
    pub fn has_django_project(&self) -> bool {
        self.is_service_node() || self.packages().iter().any(|p| p.name == "snf-webproject")
    }

    /// Whether this node serves Astakos, Cyclades or Pithos (gunicorn apps).
    pub fn is_service_node(&self) -> bool {
        self.roles
            .iter()
            .any(|r| matches!(r, Role::Astakos | Role::Cyclades | Role::Pithos))
    }

    /// The value of `service`'s `/etc/default` enable flag, when it has one.
    pub fn default_flag(&self, service: &str) -> Option<String> {
        self.default_flags.get(service).cloned().flatten()
    }

    /// The services this node's upgrade manages: the configuration's list, or the
    /// Synnefo services installed here (gunicorn everywhere; archipelago on
    /// Pithos, Cyclades and Ganeti nodes; snf-dispatcher with Cyclades;
    /// snf-ganeti-eventd where snf-cyclades-gtools put it).
    pub fn managed_services(&self, config: &Config) -> Vec<String> {
        config
            .services
            .managed
            .clone()
            .unwrap_or_else(|| self.installed_services.clone())
    }
}

fn space(root: &Root) -> Option<Space> {
    let free = |abs: &str| -> Option<(u64, u64)> {
        let stat = nix::sys::statvfs::statvfs(&root.path(abs)).ok()?;
        Some((
            stat.blocks_available() * stat.fragment_size() / (1024 * 1024),
            stat.filesystem_id(),
        ))
    };
    let (archives_free_mib, archives_fs) =
        free("/var/cache/apt/archives").or_else(|| free("/var"))?;
    let (root_free_mib, root_fs) = free("/")?;
    Some(Space {
        archives_free_mib,
        archives_on_root_fs: archives_fs == root_fs,
        root_free_mib,
    })
}
