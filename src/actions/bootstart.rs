//! Boot-time starts of the managed services under sysvinit, while armed.
//!
//! Masks (`/etc/systemd/system/NAME.service -> /dev/null`) and policy-rc.d do
//! not stop sysvinit: a reboot of an armed node before its dist-upgrade would
//! run `/etc/rc2.d/S02gunicorn` and bring 0.18.1 back. So `prepare` disables
//! the boot-time start exactly as `update-rc.d NAME disable` does on Debian's
//! insserv-based sysvinit (`sysv_toggle` in init-system-helpers): in each
//! runlevel of the script's `Default-Start` (only `S`, `2`–`5`), every
//! `S??NAME` link is renamed to `K??NAME`, same sequence number, same target.
//! The rename goes through [`fsx::rename`], which backs up the `S` link first:
//! that backup is the record of what was enabled, and `finish` and `abort` put
//! it back ([`restore`]) and drop the `K` link, so the rc directories end as
//! they were, byte for byte.
//!
//! Unlike update-rc.d, a script without a `Default-Start` line is not an
//! error here: all of `S`, `2`–`5` are looked at (armed must mean down).
//! Under systemd the masks already cover it; the links are toggled there too
//! (the sysv generator reads them), and restored the same way.

use anyhow::{bail, Result};
use std::path::{Path, PathBuf};

use crate::base::fsx::{self, Root};
use crate::base::paths;

/// The runlevels whose links `update-rc.d disable` may toggle.
pub const START_LEVELS: [&str; 5] = ["S", "2", "3", "4", "5"];

/// The rc directory of runlevel `level` (`/etc/rc2.d`).
fn rc_dir(level: &str) -> PathBuf {
    PathBuf::from(format!("/etc/rc{level}.d"))
}

/// Where update-rc.d looks for the LSB header of `name`, in its order: the
/// first non-empty one of the insserv override, the init script, the
/// packaged override.
fn lsb_header(root: &Root, name: &str) -> Option<String> {
    [
        format!("/etc/insserv/overrides/{name}"),
        format!("{}/{name}", paths::INIT_D),
        format!("/usr/share/insserv/overrides/{name}"),
    ]
    .iter()
    .filter_map(|p| fsx::read_file_opt(root, Path::new(p)).ok().flatten())
    .find(|t| !t.is_empty())
    .map(|t| String::from_utf8_lossy(&t).into_owned())
}

/// The runlevels whose start links `update-rc.d NAME disable` toggles: the
/// `Default-Start` of the LSB header (inside `### BEGIN INIT INFO`), limited
/// to `S` and `2`–`5`; all of them when there is no such line.
pub fn start_levels(root: &Root, name: &str) -> Vec<String> {
    let mut levels: Option<Vec<String>> = None;
    if let Some(text) = lsb_header(root, name) {
        let mut inside = false;
        for line in text.lines() {
            if line.starts_with("### BEGIN INIT INFO") {
                inside = true;
            } else if line.starts_with("### END INIT INFO") {
                break;
            } else if inside {
                if let Some(rest) = line.strip_prefix("# Default-Start:") {
                    levels = Some(rest.split_whitespace().map(String::from).collect());
                }
            }
        }
    }
    match levels {
        Some(l) if !l.is_empty() => l
            .into_iter()
            .filter(|l| START_LEVELS.contains(&l.as_str()))
            .collect(),
        _ => START_LEVELS.iter().map(|l| l.to_string()).collect(),
    }
}

/// The sequence numbers of the `KIND??NAME` entries of `dir` (kind `S` or `K`),
/// sorted: what update-rc.d's glob `[SK][0-9][0-9]NAME` matches.
fn numbers(root: &Root, dir: &Path, kind: char, name: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(root.path(dir)) else {
        return Vec::new();
    };
    let mut found: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter_map(|f| {
            let rest = f.strip_prefix(kind)?;
            let (num, tail) = (rest.get(..2)?, rest.get(2..)?);
            (tail == name && num.bytes().all(|b| b.is_ascii_digit())).then(|| num.to_string())
        })
        .collect();
    found.sort();
    found
}

/// Renames the `S??NAME` start links of each of `names` to `K??NAME` in the
/// runlevels of its `Default-Start` (as `update-rc.d NAME disable`), backing
/// each up first. Idempotent. Returns the links renamed, as `FROM -> TO`.
pub fn disable(root: &Root, names: &[String]) -> Result<Vec<String>> {
    let mut done = Vec::new();
    for name in names {
        for level in start_levels(root, name) {
            let dir = rc_dir(&level);
            for num in numbers(root, &dir, 'S', name) {
                let from = dir.join(format!("S{num}{name}"));
                let to = dir.join(format!("K{num}{name}"));
                if std::fs::symlink_metadata(root.path_nofollow(&to)).is_ok() {
                    bail!(
                        "both '{}' and '{}' exist: the boot-time start of '{name}' is ambiguous; remove the one \
                         that is wrong (or run 'update-rc.d {} defaults') and run 'synnefo-upgrade prepare' again",
                        from.display(),
                        to.display(),
                        crate::base::exec::shell_word(name)
                    );
                }
                fsx::rename(root, &from, &to)?;
                done.push(format!("{} -> {}", from.display(), to.display()));
            }
        }
    }
    Ok(done)
}

/// The start links of `names` that [`disable`] renamed and that are not back
/// yet: those whose backup is still kept.
pub fn disabled(root: &Root, names: &[String]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for name in names {
        for level in START_LEVELS {
            let dir = rc_dir(level);
            let backups = Path::new(paths::BACKUP_DIR).join(dir.strip_prefix("/").unwrap_or(&dir));
            for num in numbers(root, &backups, 'S', name) {
                found.push(dir.join(format!("S{num}{name}")));
            }
        }
    }
    found
}

/// Whether the boot-time start of every one of `names` is off: no `S??NAME`
/// link left in the runlevels of its `Default-Start`.
pub fn is_disabled(root: &Root, names: &[String]) -> bool {
    names.iter().all(|name| {
        start_levels(root, name)
            .iter()
            .all(|level| numbers(root, &rc_dir(level), 'S', name).is_empty())
    })
}

/// Puts back the start links [`disable`] renamed (from their backups, same
/// name, same target) and removes the `K` link that replaced each: the one
/// with the same number, or, when a package run renumbered it (insserv), the
/// `K??NAME` links of that directory. Idempotent (the `K` link goes first, the
/// backup last). Returns the links restored.
pub fn restore(root: &Root, names: &[String]) -> Result<Vec<String>> {
    let mut done = Vec::new();
    for start in disabled(root, names) {
        let dir = start.parent().unwrap_or(Path::new("/"));
        let file = start
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (num, name) = (&file[1..3], &file[3..]);
        let same = dir.join(format!("K{num}{name}"));
        let kills: Vec<PathBuf> = if std::fs::symlink_metadata(root.path_nofollow(&same)).is_ok() {
            vec![same]
        } else {
            numbers(root, dir, 'K', name)
                .iter()
                .map(|n| dir.join(format!("K{n}{name}")))
                .collect()
        };
        for kill in kills {
            fsx::remove(root, &kill)?;
        }
        fsx::restore(root, &start)?;
        done.push(start.display().to_string());
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn node() -> (tempfile::TempDir, Root) {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        (dir, root)
    }

    fn link(root: &Root, target: &str, abs: &str) {
        let host = root.path_nofollow(abs);
        std::fs::create_dir_all(host.parent().unwrap()).unwrap();
        symlink(target, host).unwrap();
    }

    #[test]
    fn levels_come_from_the_lsb_header_and_default_to_all_start_levels() {
        let (_dir, root) = node();
        std::fs::create_dir_all(root.path("/etc/init.d")).unwrap();
        std::fs::write(
            root.path("/etc/init.d/gunicorn"),
            "#!/bin/sh\n### BEGIN INIT INFO\n# Provides: gunicorn\n# Default-Start:     2 3 4 5\n# Default-Stop:      0 1 6\n### END INIT INFO\n",
        )
        .unwrap();
        assert_eq!(start_levels(&root, "gunicorn"), ["2", "3", "4", "5"]);
        // The insserv override wins, as in update-rc.d; runlevel 1 is never toggled.
        std::fs::create_dir_all(root.path("/etc/insserv/overrides")).unwrap();
        std::fs::write(
            root.path("/etc/insserv/overrides/gunicorn"),
            "### BEGIN INIT INFO\n# Default-Start: 1 2\n### END INIT INFO\n",
        )
        .unwrap();
        assert_eq!(start_levels(&root, "gunicorn"), ["2"]);
        assert_eq!(start_levels(&root, "archipelago"), START_LEVELS);
    }

    #[test]
    fn disable_renames_s_to_k_and_restore_brings_back_exactly_the_s_links() {
        let (_dir, root) = node();
        link(&root, "../init.d/gunicorn", "/etc/rc2.d/S02gunicorn");
        link(&root, "../init.d/gunicorn", "/etc/rc3.d/S02gunicorn");
        link(&root, "../init.d/gunicorn", "/etc/rc0.d/K01gunicorn");
        link(
            &root,
            "../init.d/gunicorn-extra",
            "/etc/rc2.d/S03gunicorn-extra",
        );
        link(&root, "../init.d/archipelago", "/etc/rc2.d/K01archipelago");
        let names = vec!["gunicorn".to_string(), "archipelago".to_string()];
        assert!(!is_disabled(&root, &names));
        let done = disable(&root, &names).unwrap();
        assert_eq!(done.len(), 2, "{done:?}");
        assert!(is_disabled(&root, &names));
        for level in ["2", "3"] {
            assert!(std::fs::symlink_metadata(
                root.path_nofollow(format!("/etc/rc{level}.d/S02gunicorn"))
            )
            .is_err());
            assert_eq!(
                std::fs::read_link(root.path_nofollow(format!("/etc/rc{level}.d/K02gunicorn")))
                    .unwrap(),
                Path::new("../init.d/gunicorn")
            );
        }
        assert!(
            std::fs::symlink_metadata(root.path_nofollow("/etc/rc2.d/S03gunicorn-extra")).is_ok()
        );
        assert!(disable(&root, &names).unwrap().is_empty(), "idempotent");

        let restored = restore(&root, &names).unwrap();
        assert_eq!(restored.len(), 2, "{restored:?}");
        for level in ["2", "3"] {
            assert!(std::fs::symlink_metadata(
                root.path_nofollow(format!("/etc/rc{level}.d/K02gunicorn"))
            )
            .is_err());
            assert_eq!(
                std::fs::read_link(root.path_nofollow(format!("/etc/rc{level}.d/S02gunicorn")))
                    .unwrap(),
                Path::new("../init.d/gunicorn")
            );
        }
        // What was off before stays off; stop links stay.
        assert!(std::fs::symlink_metadata(root.path_nofollow("/etc/rc2.d/K01archipelago")).is_ok());
        assert!(std::fs::symlink_metadata(root.path_nofollow("/etc/rc0.d/K01gunicorn")).is_ok());
        assert!(restore(&root, &names).unwrap().is_empty(), "idempotent");
    }

    #[test]
    fn restore_after_a_package_run_renumbered_the_k_link() {
        let (_dir, root) = node();
        link(&root, "../init.d/gunicorn", "/etc/rc2.d/S02gunicorn");
        let names = vec!["gunicorn".to_string()];
        disable(&root, &names).unwrap();
        std::fs::rename(
            root.path_nofollow("/etc/rc2.d/K02gunicorn"),
            root.path_nofollow("/etc/rc2.d/K04gunicorn"),
        )
        .unwrap();
        restore(&root, &names).unwrap();
        let left: Vec<String> = std::fs::read_dir(root.path("/etc/rc2.d"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, ["S02gunicorn"]);
    }

    #[test]
    fn an_ambiguous_pair_is_refused_with_what_to_do() {
        let (_dir, root) = node();
        link(&root, "../init.d/gunicorn", "/etc/rc2.d/S02gunicorn");
        link(&root, "../init.d/gunicorn", "/etc/rc2.d/K02gunicorn");
        let err = disable(&root, &["gunicorn".to_string()]).unwrap_err();
        assert!(
            format!("{err:#}").contains("update-rc.d gunicorn defaults"),
            "{err:#}"
        );
        assert!(std::fs::symlink_metadata(root.path_nofollow("/etc/rc2.d/S02gunicorn")).is_ok());
    }
}
