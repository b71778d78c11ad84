//! Boot-time enablement of native systemd units, the way `systemctl enable`
//! and `systemctl disable` make it: the `[Install]` section's `WantedBy=`,
//! `RequiredBy=` and `Alias=` become links in `/etc/systemd/system`
//! (`TARGET.wants/UNIT`, `TARGET.requires/UNIT`, `ALIAS`), each pointing at the
//! unit file systemd would load.
//!
//! A service without such a unit (only an init script, or a unit file
//! without `[Install]`) is a sysv-generated or static unit: its boot-time
//! start is the rc `S` links' business ([`crate::actions::bootstart`]).

use anyhow::Result;
use std::path::{Path, PathBuf};

use crate::base::fsx::{self, Root};
use crate::base::paths;
use crate::convert::read_through;
use crate::inputs::node::unit_name;

/// Where systemd 215 looks for unit files, first match wins.
pub const UNIT_DIRS: [&str; 3] = [
    paths::SYSTEMD_ADMIN_DIR,
    paths::RUN_SYSTEMD_SYSTEM,
    "/lib/systemd/system",
];

/// What a unit's `[Install]` section asks `systemctl enable` for.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Install {
    /// `WantedBy=`: a `TARGET.wants/UNIT` link each.
    pub wanted_by: Vec<String>,
    /// `RequiredBy=`: a `TARGET.requires/UNIT` link each.
    pub required_by: Vec<String>,
    /// `Alias=`: an `ALIAS` link each.
    pub alias: Vec<String>,
}

impl Install {
    /// Whether `systemctl enable` would make any link.
    pub fn is_empty(&self) -> bool {
        self.wanted_by.is_empty() && self.required_by.is_empty() && self.alias.is_empty()
    }

    /// The links `systemctl enable` makes for `unit`, relative to `/etc/systemd/system`.
    pub fn links(&self, unit: &str) -> Vec<PathBuf> {
        let dir = |target: &String, kind: &str| Path::new(&format!("{target}.{kind}")).join(unit);
        self.wanted_by
            .iter()
            .map(|t| dir(t, "wants"))
            .chain(self.required_by.iter().map(|t| dir(t, "requires")))
            .chain(self.alias.iter().map(PathBuf::from))
            .collect()
    }
}

/// Parses the `[Install]` section of unit file text: `#` and `;` comments,
/// lines continued by a trailing backslash, space-separated lists, an empty
/// assignment resetting the list, as systemd reads them. Section and key
/// names are case-sensitive, as in systemd.
pub fn parse_install(text: &str) -> Install {
    let mut install = Install::default();
    let mut in_install = false;
    let mut logical = String::new();
    let mut lines = Vec::new();
    for raw in text.lines() {
        let raw = raw.trim_end_matches('\r');
        if logical.is_empty() && matches!(raw.trim_start().chars().next(), Some('#' | ';')) {
            continue;
        }
        if let Some(head) = raw.strip_suffix('\\') {
            logical.push_str(head);
            logical.push(' ');
            continue;
        }
        logical.push_str(raw);
        lines.push(std::mem::take(&mut logical));
    }
    if !logical.is_empty() {
        lines.push(logical);
    }
    for line in lines {
        let line = line.trim();
        if line.starts_with('[') {
            in_install = line == "[Install]";
            continue;
        }
        if !in_install {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let list = match key.trim() {
            "WantedBy" => &mut install.wanted_by,
            "RequiredBy" => &mut install.required_by,
            "Alias" => &mut install.alias,
            _ => continue,
        };
        let words: Vec<String> = value.split_whitespace().map(String::from).collect();
        if words.is_empty() {
            list.clear();
        }
        for w in words {
            if !list.contains(&w) {
                list.push(w);
            }
        }
    }
    install
}

/// The unit file systemd would load for `name` (a mask is not one) and its
/// `[Install]`; `None` when there is no unit file (a sysv-generated unit).
pub fn native_unit(root: &Root, name: &str) -> Result<Option<(PathBuf, Install)>> {
    let unit = unit_name(name);
    for dir in UNIT_DIRS {
        let path = Path::new(dir).join(&unit);
        if super::is_masked(root, name) && dir == paths::SYSTEMD_ADMIN_DIR {
            continue;
        }
        if let Some(loaded) = read_through(root, &path)? {
            let text = String::from_utf8_lossy(&loaded.bytes);
            return Ok(Some((path, parse_install(&text))));
        }
    }
    Ok(None)
}

/// Enables the native unit of `name` as `systemctl enable` does, by writing
/// its links directly (works while the unit is masked, where D-Bus
/// `EnableUnitFiles` refuses). Idempotent. Returns the links made or kept;
/// `None` when `name` has no native unit with an `[Install]` section.
pub fn enable(root: &Root, name: &str) -> Result<Option<Vec<PathBuf>>> {
    let Some((path, install)) = native_unit(root, name)? else {
        return Ok(None);
    };
    if install.is_empty() {
        return Ok(None);
    }
    let admin = Path::new(paths::SYSTEMD_ADMIN_DIR);
    let mut made = Vec::new();
    for link in install.links(&unit_name(name)) {
        let link = admin.join(link);
        fsx::symlink(root, &link, &path)?;
        made.push(link);
    }
    Ok(Some(made))
}

/// The alias links of `name`'s native unit that lead to it (what `systemctl
/// disable` removes beside the `.wants`/`.requires` links).
pub fn alias_links(root: &Root, name: &str) -> Result<Vec<PathBuf>> {
    let Some((path, install)) = native_unit(root, name)? else {
        return Ok(Vec::new());
    };
    let admin = Path::new(paths::SYSTEMD_ADMIN_DIR);
    Ok(install
        .alias
        .iter()
        .map(|a| admin.join(a))
        .filter(|a| std::fs::read_link(root.path_nofollow(a)).is_ok_and(|t| t == path))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_section_lists_comments_continuations_and_resets() {
        let text = "[Unit]\nDescription=x\nWantedBy=not-here.target\n\n[Install]\n# WantedBy=commented.target\nWantedBy=multi-user.target \\\n  graphical.target\n; RequiredBy=no.target\nRequiredBy=a.target\nRequiredBy=\nRequiredBy=b.target\nAlias=gunicorn-alias.service\nAlso=other.socket\n[Service]\nWantedBy=neither.target\n";
        let install = parse_install(text);
        assert_eq!(
            install,
            Install {
                wanted_by: vec!["multi-user.target".into(), "graphical.target".into()],
                required_by: vec!["b.target".into()],
                alias: vec!["gunicorn-alias.service".into()],
            }
        );
        assert_eq!(
            install.links("gunicorn.service"),
            vec![
                PathBuf::from("multi-user.target.wants/gunicorn.service"),
                PathBuf::from("graphical.target.wants/gunicorn.service"),
                PathBuf::from("b.target.requires/gunicorn.service"),
                PathBuf::from("gunicorn-alias.service"),
            ]
        );
        assert!(
            parse_install("[Unit]\nDescription=static\n[install]\nWantedBy=x.target\n").is_empty()
        );
    }

    #[test]
    fn enable_links_to_the_unit_systemd_loads_even_while_masked() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        std::fs::create_dir_all(root.path("/lib/systemd/system")).unwrap();
        std::fs::write(
            root.path("/lib/systemd/system/gunicorn.service"),
            "[Service]\nExecStart=/usr/bin/gunicorn\n[Install]\nWantedBy=multi-user.target\n",
        )
        .unwrap();
        super::super::mask_offline(&root, &["gunicorn".to_string()]).unwrap();
        let made = enable(&root, "gunicorn").unwrap().unwrap();
        let link = PathBuf::from("/etc/systemd/system/multi-user.target.wants/gunicorn.service");
        assert_eq!(made, vec![link.clone()]);
        assert_eq!(
            std::fs::read_link(root.path_nofollow(&link)).unwrap(),
            Path::new("/lib/systemd/system/gunicorn.service")
        );
        assert!(super::super::is_masked(&root, "gunicorn"), "the mask stays");
        // Again: nothing changes.
        assert_eq!(enable(&root, "gunicorn").unwrap().unwrap(), vec![link]);
        // No unit file, or one without [Install]: not ours to enable.
        assert_eq!(enable(&root, "archipelago").unwrap(), None);
        std::fs::write(
            root.path("/lib/systemd/system/archipelago.service"),
            "[Service]\nExecStart=/bin/true\n",
        )
        .unwrap();
        assert_eq!(enable(&root, "archipelago").unwrap(), None);
    }
}
