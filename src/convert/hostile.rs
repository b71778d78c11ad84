//! Hostile and odd configuration trees: symbolic links that lead out of
//! `/etc`, and settings files anyone may write. Read-only.
//!
//! "Ours" means inside `/etc`: the node's own configuration, which the
//! conversion backs up and may change. A link in `/etc/synnefo`,
//! `/etc/gunicorn.d` or `/etc/apache2` whose target lies outside `/etc` (a
//! configuration-management checkout, a shared mount, another host's tree)
//! belongs to whoever manages that target: the conversion never writes
//! through it, never renames or replaces the link itself, and refuses (exit 2,
//! nothing written) when such a file needs a change, so the operator converts
//! it where it really lives. `check` reports every such link, and every
//! world-writable settings file (Python that Synnefo executes as root and as
//! the synnefo user).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::Change;
use crate::base::fsx::Root;

/// The trees whose links must stay inside `/etc`.
pub const LINKED_TREES: &[&str] = &["/etc/synnefo", "/etc/gunicorn.d", "/etc/apache2"];

/// The trees of settings files that must not be world-writable.
pub const SETTINGS_TREES: &[&str] = &["/etc/synnefo", "/etc/gunicorn.d"];

/// Whether node path `p` is ours (inside `/etc`).
pub fn is_ours(p: &Path) -> bool {
    p.starts_with("/etc")
}

/// Every node path under `abs` (not following links into directories), sorted.
fn walk(root: &Root, abs: &Path, out: &mut Vec<(PathBuf, fs::Metadata)>) {
    let Ok(names) = super::list_dir(root, abs) else {
        return;
    };
    for name in names {
        let path = abs.join(name);
        let Ok(meta) = fs::symlink_metadata(root.path_nofollow(&path)) else {
            continue;
        };
        let is_dir = meta.is_dir();
        out.push((path.clone(), meta));
        if is_dir {
            walk(root, &path, out);
        }
    }
}

/// Links in [`LINKED_TREES`] that lead outside `/etc`, and those trees
/// themselves when they lead there (`/etc/synnefo -> /srv/synnefo`): (link,
/// where it leads).
pub fn links_outside_etc(root: &Root) -> Vec<(PathBuf, PathBuf)> {
    let mut entries = Vec::new();
    let mut found = Vec::new();
    for tree in LINKED_TREES {
        let tree = Path::new(tree);
        match root.resolve(tree) {
            Ok(target) if !is_ours(&target) => found.push((tree.to_path_buf(), target)),
            _ => walk(root, tree, &mut entries),
        }
    }
    found.extend(
        entries
            .into_iter()
            .filter(|(_, m)| m.file_type().is_symlink())
            .filter_map(|(link, _)| {
                let target = root.resolve(&link).ok()?;
                (!is_ours(&target)).then_some((link, target))
            }),
    );
    found
}

/// Regular files (links followed) in [`SETTINGS_TREES`] that anyone may write.
pub fn world_writable(root: &Root) -> Vec<(PathBuf, u32)> {
    let mut entries = Vec::new();
    for tree in SETTINGS_TREES {
        walk(root, Path::new(tree), &mut entries);
    }
    entries
        .into_iter()
        .filter_map(|(path, _)| {
            let meta = fs::metadata(root.path(&path)).ok()?;
            let mode = meta.mode() & 0o7777;
            (meta.is_file() && mode & 0o002 != 0).then_some((path, mode))
        })
        .collect()
}

/// What in `changes` would write through, rename or replace a link that
/// leads outside `/etc`: one line each, for the refusal.
pub fn refused(root: &Root, changes: &[Change]) -> Vec<String> {
    // Where a path really is, links (of the path or of its directories) followed.
    let outside = |p: &Path| -> Option<PathBuf> {
        let target = root.resolve(p).ok()?;
        (!is_ours(&target)).then_some(target)
    };
    changes
        .iter()
        .filter_map(|change| match change {
            Change::Edit { path, shown, .. } => outside(path).map(|target| {
                format!(
                    "'{}' leads to '{}', outside /etc: it is not written through",
                    shown.display(),
                    target.display()
                )
            }),
            Change::Rename { from, .. } | Change::Relink { from, .. } => {
                outside(from).map(|target| {
                    let how = if crate::base::fsx::is_link(root, from) {
                        "is a link to"
                    } else {
                        "is, through a linked directory,"
                    };
                    format!(
                        "'{}' {how} '{}', outside /etc: it is not ours to rename or replace",
                        from.display(),
                        target.display()
                    )
                })
            }
            Change::Link { path, .. } => root
                .resolve_nofollow(path)
                .ok()
                .filter(|at| !is_ours(at))
                .map(|at| {
                    format!(
                        "'{}' would be made at '{}', outside /etc: it is not ours to create",
                        path.display(),
                        at.display()
                    )
                }),
            _ => None,
        })
        .collect()
}
