//! Facts about this node: OS codename, init system, which Synnefo services it has.
//!
//! Read-only. Later issues add roles from dpkg status and Ganeti ssconf.

use anyhow::{Context, Result};
use std::path::Path;

use crate::fsx::Root;
use crate::paths;

/// The services the guide stops, in the order they are stopped
/// (and started again in reverse).
pub const SYNNEFO_SERVICES: &[&str] = &[
    "gunicorn",
    "snf-dispatcher",
    "snf-ganeti-eventd",
    "archipelago",
];

/// The init system in charge of the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitSystem {
    /// systemd is PID 1 (`/run/systemd/system` exists).
    Systemd,
    /// Anything else: sysvinit on wheezy.
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

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            InitSystem::Systemd => "systemd",
            InitSystem::Sysv => "sysvinit",
            InitSystem::Offline => "offline",
        }
    }
}

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
    let os_release = std::fs::read_to_string(root.path(paths::OS_RELEASE)).unwrap_or_default();
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
    let debian_version =
        std::fs::read_to_string(root.path(paths::DEBIAN_VERSION)).with_context(|| {
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
