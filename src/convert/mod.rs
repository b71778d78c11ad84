//! Config conversion: every 0.19 change of the upgrade guide, in place (docs/design.md
//! §2 conversion rows, §3.1 `convert`).
//!
//! - [`settings`]: `/etc/synnefo/*.conf` (Python 2): cache URIs → cache dicts
//!   ([`caches`]), `BACKEND_ALLOCATOR_MODULE`, `ALLOWED_HOSTS`.
//! - [`gunicorn`]: `/etc/gunicorn.d/*`: `mode` `django` → `wsgi`, the WSGI module
//!   appended to `args`.
//! - [`webserver`]: Apache sites renamed to `*.conf` (with their `sites-enabled`
//!   links), `conf.d` moved to `conf-available`, and `/var/log/synnefo` owned
//!   by the synnefo user.
//! - [`webconf`]: `X-Forwarded-Protocol` → `X-Forwarded-Proto` in every file
//!   Apache and nginx read, includes followed.
//! - [`hostile`]: links that lead outside `/etc` (never written through) and
//!   world-writable settings files.
//! - [`python`]: the tokenizer and literal parser the first two stand on.
//!
//! All or nothing: [`plan`] reads everything and computes every change, without
//! writing; any problem (a file that does not parse, a value that is not a
//! literal, a setting assigned inside an `if`) is a [`Fatal::BadInput`] naming
//! file and line (exit 2), and nothing is written. [`Conversion::apply`] then
//! backs up and atomically replaces each file through [`crate::base::fsx`] (mode and
//! owner kept), after checking that nothing changed since the plan. A converted
//! node plans no change: a second run changes nothing.
//!
//! For the finish phase:
//!
//! ```no_run
//! # fn step(root: &synnefo_upgrade::base::fsx::Root, config: &synnefo_upgrade::inputs::config::Config) -> anyhow::Result<String> {
//! let conversion = synnefo_upgrade::convert::plan(root, config)?; // read-only; warnings logged
//! conversion.apply(root)?; // no-op when there is nothing to do
//! Ok(conversion.summary()) // one line per change, or "nothing to convert"
//! # }
//! ```
//!
//! `Conversion::diff()` renders unified diffs for `convert --dry-run`.

pub mod caches;
pub mod gunicorn;
pub mod hostile;
pub mod python;
pub mod settings;
pub mod webconf;
pub mod webserver;

use anyhow::{Context, Result};
use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::base::error::Fatal;
use crate::base::fsx::{self, Root};
use crate::inputs::config::Config;

/// One change to the node.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// New content for a file (written through a symbolic link to its target).
    Edit {
        /// The node path written (links resolved).
        path: PathBuf,
        /// The path the operator knows it by (a link, or a file renamed first).
        shown: PathBuf,
        /// The content the plan was computed from.
        old: Vec<u8>,
        /// The new content.
        new: Vec<u8>,
        /// What changes, for the report.
        what: Vec<String>,
    },
    /// A file renamed (an Apache site gaining `.conf`).
    Rename {
        /// Node path now.
        from: PathBuf,
        /// Node path after.
        to: PathBuf,
    },
    /// A symbolic link replaced by another (a `sites-enabled` link following its site).
    Relink {
        /// The link now.
        from: PathBuf,
        /// The link after (may be `from`).
        to: PathBuf,
        /// Its new target.
        target: PathBuf,
    },
    /// A new symbolic link (a `conf-enabled` link, as `a2enconf` makes it).
    Link {
        /// The link.
        path: PathBuf,
        /// Its target.
        target: PathBuf,
    },
    /// A directory made to exist and be owned by `uid:gid`.
    OwnDir {
        /// Node path.
        path: PathBuf,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
        /// True when it does not exist yet.
        create: bool,
    },
}

/// Everything a conversion would change, computed before anything is written.
#[derive(Debug, Clone, Default)]
pub struct Conversion {
    /// The changes, in the order they are applied.
    pub changes: Vec<Change>,
    /// Values kept that the operator should look at (also logged).
    pub warnings: Vec<String>,
}

/// A replacement of bytes `start..end` of a file by `text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    /// First byte replaced.
    pub start: usize,
    /// Just past the last byte replaced (`start` for an insertion).
    pub end: usize,
    /// The replacement.
    pub text: Vec<u8>,
}

impl Edit {
    /// Replaces `start..end` by `text`.
    pub fn new(start: usize, end: usize, text: impl Into<Vec<u8>>) -> Edit {
        Edit {
            start,
            end,
            text: text.into(),
        }
    }
}

/// `src` with `edits` made; edits must not overlap (insertions at one offset
/// keep their order).
pub fn apply_edits(src: &[u8], edits: &[Edit]) -> Result<Vec<u8>> {
    let mut sorted: Vec<&Edit> = edits.iter().collect();
    sorted.sort_by_key(|e| (e.start, e.end));
    let mut out = Vec::with_capacity(src.len() + 256);
    let mut at = 0;
    for e in sorted {
        anyhow::ensure!(
            e.start >= at && e.end >= e.start && e.end <= src.len(),
            "internal error: overlapping edits at byte {}",
            e.start
        );
        out.extend_from_slice(&src[at..e.start]);
        out.extend_from_slice(&e.text);
        at = e.end;
    }
    out.extend_from_slice(&src[at..]);
    Ok(out)
}

/// A bad-input error naming `path:line`.
pub fn bad(path: &Path, line: usize, message: impl std::fmt::Display) -> anyhow::Error {
    Fatal::BadInput(format!("{}:{line}: {message}", path.display())).into()
}

/// The end of line used at `offset` (the one ending its line), else the file's first, else `\n`.
pub fn eol_at(src: &[u8], offset: usize) -> &'static str {
    let find = |from: usize| {
        src[from.min(src.len())..]
            .iter()
            .position(|b| *b == b'\n' || *b == b'\r')
            .map(|p| from + p)
    };
    match find(offset).or_else(|| find(0)) {
        Some(i) if src[i] == b'\r' && src.get(i + 1) == Some(&b'\n') => "\r\n",
        Some(i) if src[i] == b'\r' => "\r",
        _ => "\n",
    }
}

/// Physical lines, each with its end of line.
pub fn split_lines(bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut from = 0;
    let mut i = 0;
    while i < bytes.len() {
        let end = match bytes[i] {
            b'\n' => Some(i + 1),
            b'\r' if bytes.get(i + 1) == Some(&b'\n') => Some(i + 2),
            b'\r' => Some(i + 1),
            _ => None,
        };
        match end {
            Some(e) => {
                out.push(&bytes[from..e]);
                from = e;
                i = e;
            }
            None => i += 1,
        }
    }
    if from < bytes.len() {
        out.push(&bytes[from..]);
    }
    out
}

/// Names in directory `abs` (none when it does not exist), sorted by bytes.
/// Links are followed inside the tree; `abs` a link that leads nowhere is an
/// error, not an empty directory (its files would be skipped unsaid).
pub fn list_dir(root: &Root, abs: &Path) -> Result<Vec<OsString>> {
    let entries = match fs::read_dir(root.path(abs)) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let nofollow = root.path_nofollow(abs);
            if let Ok(target) = fs::read_link(&nofollow) {
                return Err(Fatal::BadInput(format!(
                    "'{}' is a symbolic link to '{}', which does not exist{}: its files cannot be read; make the link lead to the directory (inside the root), then run this again",
                    abs.display(),
                    target.display(),
                    if root.is_live() { "" } else { " inside the root (under --root, an absolute link target is taken inside the root)" }
                ))
                .into());
            }
            return Ok(Vec::new());
        }
        Err(e) => return Err(e).with_context(|| format!("listing '{}'", abs.display())),
    };
    let mut names = entries
        .map(|e| e.map(|e| e.file_name()))
        .collect::<std::io::Result<Vec<_>>>()
        .with_context(|| format!("listing '{}'", abs.display()))?;
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(names)
}

/// Names of editor, dpkg and ucf leftovers that no service reads as config.
pub fn is_leftover(name: &[u8]) -> bool {
    name.starts_with(b".")
        || name.ends_with(b"~")
        || [".bak", ".orig", ".swp", ".save", ".old"]
            .iter()
            .any(|s| name.ends_with(s.as_bytes()))
        || name.windows(6).any(|w| w == b".dpkg-")
        || name.windows(5).any(|w| w == b".ucf-")
}

/// A file read through its symbolic links.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The path it was found by.
    pub shown: PathBuf,
    /// The regular file it resolves to (where edits are written).
    pub real: PathBuf,
    /// Its content.
    pub bytes: Vec<u8>,
}

/// Reads node path `abs` following links inside the tree; `None` when it
/// does not exist, or is not (or does not lead to) a regular file: a FIFO,
/// socket, device or directory is skipped with a warning
/// ([`fsx::read_file_opt`]), never opened for reading.
pub fn read_through(root: &Root, abs: &Path) -> Result<Option<Loaded>> {
    let real = root.resolve(abs)?;
    let Some(bytes) = crate::base::fsx::read_file_opt(root, &real)? else {
        return Ok(None);
    };
    Ok(Some(Loaded {
        shown: abs.to_path_buf(),
        real,
        bytes,
    }))
}

impl Loaded {
    /// The change writing `new` over this file, when it differs.
    pub fn change(&self, new: Vec<u8>, what: Vec<String>) -> Option<Change> {
        (new != self.bytes).then(|| Change::Edit {
            path: self.real.clone(),
            shown: self.shown.clone(),
            old: self.bytes.clone(),
            new,
            what,
        })
    }
}

/// Computes the whole conversion of the node under `root`. Reads only.
pub fn plan(root: &Root, config: &Config) -> Result<Conversion> {
    let mut conversion = Conversion::default();
    settings::plan(root, &config.convert, &mut conversion)?;
    gunicorn::plan(root, &mut conversion)?;
    webserver::plan(root, &mut conversion)?;
    let refused = hostile::refused(root, &conversion.changes);
    if !refused.is_empty() {
        return Err(Fatal::BadInput(format!(
            "refusing to convert through symbolic links that lead outside /etc: {}; convert those files where they live (or replace each link by a copy of its target), then run this again",
            refused.join("; ")
        ))
        .into());
    }
    let mut seen = std::collections::BTreeMap::new();
    for change in &conversion.changes {
        if let Change::Edit { path, shown, .. } = change {
            if let Some(first) = seen.insert(path.clone(), shown.clone()) {
                return Err(Fatal::BadInput(format!(
                    "'{}' and '{}' are the same file ('{}'); convert it by hand",
                    first.display(),
                    shown.display(),
                    path.display()
                ))
                .into());
            }
        }
    }
    for warning in &conversion.warnings {
        log::warn!("{warning}");
    }
    Ok(conversion)
}

impl Conversion {
    /// True when the node is already converted.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Unified diffs of every edit, and a line for every other change.
    pub fn diff(&self) -> String {
        let mut out = String::new();
        for change in &self.changes {
            match change {
                Change::Edit {
                    shown, old, new, ..
                } => {
                    let (old, new) = (String::from_utf8_lossy(old), String::from_utf8_lossy(new));
                    let name = shown.display().to_string();
                    let diff = similar::TextDiff::from_lines(old.as_ref(), new.as_ref());
                    out.push_str(
                        &diff
                            .unified_diff()
                            .context_radius(3)
                            .header(&name, &name)
                            .to_string(),
                    );
                }
                other => {
                    out.push_str(&describe(other));
                    out.push('\n');
                }
            }
        }
        out
    }

    /// How this conversion breaks the release before the upgrade (Synnefo
    /// 0.18.1, Apache 2.2), one phrase each: why `convert` waits for it.
    pub fn old_release_breaks(&self) -> Vec<String> {
        let whats = || {
            self.changes.iter().flat_map(|c| match c {
                Change::Edit { what, .. } => what.as_slice(),
                _ => &[],
            })
        };
        let mut out = Vec::new();
        if whats().any(|w| w.contains("FilterAllocator")) {
            out.push("Synnefo 0.18.1 has no FilterAllocator (BACKEND_ALLOCATOR_MODULE): Cyclades could not allocate a VM".to_string());
        }
        let commented: Vec<&str> = whats()
            .filter_map(|w| w.strip_suffix(" commented out"))
            .collect();
        if !commented.is_empty() {
            out.push(format!(
                "Synnefo 0.18.1 reads the settings commented out for 0.19 ({})",
                commented.join(", ")
            ));
        }
        let moved = self
            .changes
            .iter()
            .filter(|c| match c {
                Change::Rename { from, .. } | Change::Relink { from, .. } => {
                    from.starts_with(webserver::APACHE_CONF_D)
                }
                _ => false,
            })
            .count();
        if moved > 0 {
            out.push(format!(
                "Apache 2.2 reads conf.d/, not conf-available/ and conf-enabled/: {moved} snippet(s) would leave its reach"
            ));
        }
        if out.is_empty() {
            out.push("every change is for Synnefo 0.19 and Apache 2.4".to_string());
        }
        out
    }

    /// One line per change, or a line saying there is nothing to do.
    pub fn summary(&self) -> String {
        if self.is_empty() {
            return "nothing to convert: the configuration already has the 0.19 shape\n".into();
        }
        self.changes
            .iter()
            .map(|c| format!("  {}\n", describe(c)))
            .collect()
    }

    /// What `convert` prints: for a dry run the diffs, then what would be done;
    /// otherwise what was done.
    pub fn report(&self, dry_run: bool) -> String {
        let n = self.changes.len();
        match (self.is_empty(), dry_run) {
            (true, _) => self.summary(),
            (false, true) => format!(
                "{}dry run, nothing written; {n} change(s) to make:\n{}",
                self.diff(),
                self.summary()
            ),
            (false, false) => format!("converted, {n} change(s) made:\n{}", self.summary()),
        }
    }

    /// Makes every change: backup, then atomic replace, mode and owner kept.
    /// Checks first that every file is still as planned; on a mismatch nothing
    /// is written.
    pub fn apply(&self, root: &Root) -> Result<()> {
        self.verify(root)?;
        for change in &self.changes {
            match change {
                Change::Rename { from, to } => {
                    if let Some(parent) = to.parent() {
                        fsx::ensure_dir(root, &parent.to_string_lossy(), 0o755)?;
                    }
                    fsx::rename(root, from, to)?
                }
                Change::Link { path, target } => fsx::symlink(root, path, target)?,
                Change::Relink { from, to, target } => {
                    fsx::backup(root, from)?;
                    fsx::symlink(root, to, target)?;
                    if from != to {
                        fsx::remove(root, from)?;
                    }
                }
                Change::Edit { path, new, .. } => fsx::write_file(root, path, new, 0o644)?,
                Change::OwnDir { path, uid, gid, .. } => {
                    fsx::ensure_dir_owned(root, path, 0o755, *uid, *gid)?
                }
            }
        }
        Ok(())
    }

    fn verify(&self, root: &Root) -> Result<()> {
        let renamed = |p: &Path| {
            self.changes.iter().find_map(|c| match c {
                Change::Rename { from, to } if to == p => Some(from.clone()),
                _ => None,
            })
        };
        for change in &self.changes {
            let changed = |p: &Path| {
                Fatal::BadInput(format!(
                    "'{}' changed since the conversion was planned; run it again",
                    p.display()
                ))
            };
            match change {
                Change::Edit { path, old, .. } => {
                    let now_at = renamed(path).unwrap_or_else(|| path.clone());
                    let now = crate::base::fsx::read_file(root, &now_at)?;
                    if &now != old {
                        return Err(changed(&now_at).into());
                    }
                }
                Change::Rename { from, to } => {
                    if fs::symlink_metadata(root.path_nofollow(to)).is_ok()
                        || fs::symlink_metadata(root.path_nofollow(from)).is_err()
                    {
                        return Err(changed(from).into());
                    }
                }
                Change::Relink { from, .. } => {
                    if fs::read_link(root.path_nofollow(from)).is_err() {
                        return Err(changed(from).into());
                    }
                }
                Change::Link { path, target } => {
                    if fs::symlink_metadata(root.path_nofollow(path)).is_ok()
                        && fs::read_link(root.path_nofollow(path)).ok().as_ref() != Some(target)
                    {
                        return Err(changed(path).into());
                    }
                }
                Change::OwnDir { .. } => {}
            }
        }
        Ok(())
    }
}

/// One line for a change.
fn describe(change: &Change) -> String {
    match change {
        Change::Edit { shown, what, .. } => format!("{}: {}", shown.display(), what.join("; ")),
        Change::Rename { from, to } => format!("rename {} -> {}", from.display(), to.display()),
        Change::Relink { from, to, target } => {
            format!(
                "relink {} -> {} (link to {})",
                from.display(),
                to.display(),
                target.display()
            )
        }
        Change::Link { path, target } => {
            format!("link {} -> {}", path.display(), target.display())
        }
        Change::OwnDir {
            path,
            uid,
            gid,
            create,
        } => format!(
            "{} {} owned by {uid}:{gid}",
            if *create { "create" } else { "chown" },
            path.display()
        ),
    }
}

/// Numeric uid and gid of `user` from the node's `/etc/passwd` (never NSS).
pub fn passwd_ids(root: &Root, user: &str) -> Result<Option<(u32, u32)>> {
    let Some(text) = crate::base::fsx::read_file_opt(root, Path::new("/etc/passwd"))? else {
        return Ok(None);
    };
    for (n, line) in text.split(|b| *b == b'\n').enumerate() {
        let fields: Vec<&[u8]> = line.split(|b| *b == b':').collect();
        if fields.first() != Some(&user.as_bytes()) {
            continue;
        }
        let id = |i: usize| {
            fields
                .get(i)
                .and_then(|f| std::str::from_utf8(f).ok())
                .and_then(|f| f.parse::<u32>().ok())
                .ok_or_else(|| {
                    bad(
                        Path::new("/etc/passwd"),
                        n + 1,
                        format!("bad entry for '{user}'"),
                    )
                })
        };
        return Ok(Some((id(2)?, id(3)?)));
    }
    Ok(None)
}

/// Owner of an existing path (following links).
pub fn owner(root: &Root, abs: &Path) -> Option<(u32, u32)> {
    fs::metadata(root.path(abs))
        .ok()
        .map(|m| (m.uid(), m.gid()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_apply_in_order_and_refuse_overlap() {
        let src = b"abcdef";
        let out = apply_edits(
            src,
            &[
                Edit::new(4, 4, "X"),
                Edit::new(0, 1, "A"),
                Edit::new(4, 4, "Y"),
            ],
        )
        .unwrap();
        assert_eq!(out, b"AbcdXYef");
        assert!(apply_edits(src, &[Edit::new(0, 3, ""), Edit::new(2, 4, "")]).is_err());
    }

    #[test]
    fn end_of_line_style_is_detected() {
        assert_eq!(eol_at(b"a\r\nb\r\n", 3), "\r\n");
        assert_eq!(eol_at(b"a\nb", 2), "\n");
        assert_eq!(eol_at(b"a\r\nb", 3), "\r\n");
        assert_eq!(eol_at(b"ab", 0), "\n");
    }

    #[test]
    fn split_lines_keeps_every_end_of_line() {
        assert_eq!(
            split_lines(b"a\r\nb\nc\rd"),
            vec![&b"a\r\n"[..], b"b\n", b"c\r", b"d"]
        );
    }

    #[test]
    fn leftovers_are_recognised() {
        for n in ["x~", ".x", "x.dpkg-old", "x.ucf-dist", "x.bak", "x.orig"] {
            assert!(is_leftover(n.as_bytes()), "{n}");
        }
        for n in ["synnefo", "synnefo-ssl", "x.conf"] {
            assert!(!is_leftover(n.as_bytes()), "{n}");
        }
    }
}
