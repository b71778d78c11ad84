//! Our record of every change made to a node path ([`CHANGES`]): what `abort`
//! takes back (renames, files and links we created, files we replaced), and
//! what it compares a path with to tell an operator's later edit from our own
//! write. This module reads the record; [`super`] writes it, beside the change.
//!
//! One change a line, in the order made, words separated by one space:
//!
//! - `backup P`: P existed; its original is in the backups ([`super::backup`]).
//! - `write P N`: we wrote P; what we wrote is [`WRITTEN_DIR`]`/N`.
//! - `link P T`: we made P a symbolic link to T.
//! - `rename F T`: we renamed F to T.
//! - `owner P UID GID`: we changed the owner of directory P, which was UID:GID.
//!
//! Paths are written byte for byte, except that every byte outside `!`..`~`,
//! and `\`, is written `\xHH` (a path may hold spaces, newlines, non-UTF-8).
//! Paths under our state directory are never recorded.

use anyhow::Result;
use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use super::Root;
use crate::base::error::Fatal;
use crate::base::paths;

/// The record of our changes (see the module's documentation).
pub const CHANGES: &str = "/var/lib/synnefo-upgrade/changes";

/// What we wrote into each file, named by the number of its `write` line in
/// [`CHANGES`] (counting from 0).
pub const WRITTEN_DIR: &str = "/var/lib/synnefo-upgrade/written";

/// One change we made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// The path existed; its original is in the backups.
    Backup(PathBuf),
    /// We wrote the path; the content is [`WRITTEN_DIR`]`/N`.
    Write(PathBuf, u64),
    /// We made the path a symbolic link to the second.
    Link(PathBuf, PathBuf),
    /// We renamed the first path to the second.
    Rename(PathBuf, PathBuf),
    /// We changed the owner of the directory, which was `uid:gid`.
    Owner(PathBuf, u32, u32),
}

/// `p` as one word of a line (see the module's documentation).
fn escape(p: &Path) -> String {
    let mut out = String::new();
    for &b in p.as_os_str().as_bytes() {
        if b > b' ' && b <= b'~' && b != b'\\' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

fn unescape(word: &str) -> Option<PathBuf> {
    let bytes = word.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            if bytes.get(i + 1) != Some(&b'x') {
                return None;
            }
            out.push(u8::from_str_radix(word.get(i + 2..i + 4)?, 16).ok()?);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(PathBuf::from(OsString::from_vec(out)))
}

impl Entry {
    /// The line that records it (without the newline).
    pub fn line(&self) -> String {
        match self {
            Entry::Backup(p) => format!("backup {}", escape(p)),
            Entry::Write(p, n) => format!("write {} {n}", escape(p)),
            Entry::Link(p, t) => format!("link {} {}", escape(p), escape(t)),
            Entry::Rename(f, t) => format!("rename {} {}", escape(f), escape(t)),
            Entry::Owner(p, uid, gid) => format!("owner {} {uid} {gid}", escape(p)),
        }
    }

    fn parse(line: &str) -> Option<Entry> {
        let words: Vec<&str> = line.split(' ').collect();
        let path = |i: usize| words.get(i).and_then(|w| unescape(w));
        let number = |i: usize| words.get(i).and_then(|w| w.parse::<u64>().ok());
        let id = |i: usize| words.get(i).and_then(|w| w.parse::<u32>().ok());
        let entry = match (words.first().copied(), words.len()) {
            (Some("backup"), 2) => Entry::Backup(path(1)?),
            (Some("write"), 3) => Entry::Write(path(1)?, number(2)?),
            (Some("link"), 3) => Entry::Link(path(1)?, path(2)?),
            (Some("rename"), 3) => Entry::Rename(path(1)?, path(2)?),
            (Some("owner"), 4) => Entry::Owner(path(1)?, id(2)?, id(3)?),
            _ => return None,
        };
        Some(entry)
    }

    /// The node path whose state it records, first; a rename's target second.
    pub fn paths(&self) -> Vec<&Path> {
        match self {
            Entry::Backup(p) | Entry::Write(p, _) | Entry::Link(p, _) | Entry::Owner(p, ..) => {
                vec![p]
            }
            Entry::Rename(f, t) => vec![f, t],
        }
    }
}

/// Whether node path `abs` is ours (under the state directory): never recorded.
pub fn is_ours(abs: &Path) -> bool {
    abs.starts_with(paths::STATE_DIR)
}

/// What we know a path held when we left it: files (host paths of copies:
/// its backup, what we wrote) and link targets. An operator's edit is
/// anything else.
#[derive(Debug, Default)]
pub struct Known {
    /// Host paths of files with a content we left there.
    pub files: Vec<PathBuf>,
    /// Targets of links we left there.
    pub links: Vec<PathBuf>,
    /// Whether we know anything of the path at all.
    pub any: bool,
}

/// The record, as read.
#[derive(Debug, Default)]
pub struct Changes {
    entries: Vec<Entry>,
}

impl Changes {
    /// Reads [`CHANGES`] under `root` (none yet: empty). A last line without
    /// its newline (a crash while it was appended) is ignored; any other line
    /// that is not a record is bad input.
    pub fn load(root: &Root) -> Result<Changes> {
        // Ours: never through a link, never waiting on a FIFO.
        let Some(text) = super::read_regular(root, Path::new(CHANGES), super::Follow::No)? else {
            return Ok(Changes::default());
        };
        let complete = text.ends_with(b"\n");
        let lines: Vec<&[u8]> = text.split(|b| *b == b'\n').collect();
        let mut entries = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            let last = i + 1 == lines.len();
            if line.is_empty() || (last && !complete) {
                continue;
            }
            let entry = std::str::from_utf8(line).ok().and_then(Entry::parse);
            match entry {
                Some(e) => entries.push(e),
                None => {
                    return Err(Fatal::BadInput(format!(
                        "{CHANGES}:{}: not a record of a change; this file is synnefo-upgrade's own: restore it from a backup of the node, or remove the line and take back that change by hand",
                        i + 1
                    ))
                    .into())
                }
            }
        }
        Ok(Changes { entries })
    }

    /// The number of changes recorded: the number of the next `write`.
    pub fn count(&self) -> usize {
        self.entries.len()
    }

    /// The first change that concerns node path `abs` as its own state.
    fn first(&self, abs: &Path) -> Option<&Entry> {
        self.entries.iter().find(|e| e.paths().contains(&abs))
    }

    /// Whether we created `abs`: the first change of it made it exist (a
    /// write, a link or a rename onto it), so taking it back removes it.
    pub fn created(&self, abs: &Path) -> bool {
        match self.first(abs) {
            Some(Entry::Write(..) | Entry::Link(..)) => true,
            Some(Entry::Rename(_, to)) => to == abs,
            _ => false,
        }
    }

    /// Whether `abs` existed before our first change of it (its original
    /// was backed up, then: once that backup is gone, it is back).
    pub fn existed(&self, abs: &Path) -> bool {
        self.first(abs).is_some() && !self.created(abs)
    }

    /// Every node path recorded, in the order first changed.
    pub fn paths(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = Vec::new();
        for entry in &self.entries {
            for p in entry.paths() {
                if !out.iter().any(|o| o == p) {
                    out.push(p.to_path_buf());
                }
            }
        }
        out
    }

    /// The owner each directory had before our first change of its owner.
    pub fn owners(&self) -> Vec<(PathBuf, u32, u32)> {
        let mut out: Vec<(PathBuf, u32, u32)> = Vec::new();
        for entry in &self.entries {
            if let Entry::Owner(p, uid, gid) = entry {
                if !out.iter().any(|(o, ..)| o == p) {
                    out.push((p.clone(), *uid, *gid));
                }
            }
        }
        out
    }

    /// What `abs` held when we left it: its original (the backup, while it
    /// is kept), what we wrote there, the links we made there, and what was
    /// renamed onto it (what its source held).
    pub fn known(&self, root: &Root, abs: &Path) -> Known {
        let mut known = Known::default();
        self.add_known(root, abs, &mut known, &mut Vec::new());
        known
    }

    fn add_known(&self, root: &Root, abs: &Path, known: &mut Known, seen: &mut Vec<PathBuf>) {
        if seen.iter().any(|s| s == abs) {
            return;
        }
        seen.push(abs.to_path_buf());
        let backup = root.path_nofollow(super::backup_path(abs));
        match fs::symlink_metadata(&backup) {
            Ok(m) if m.file_type().is_symlink() => {
                known.any = true;
                known.links.extend(fs::read_link(&backup).ok());
            }
            Ok(_) => {
                known.any = true;
                known.files.push(backup);
            }
            Err(_) => {}
        }
        for entry in &self.entries {
            match entry {
                Entry::Write(p, n) if p == abs => {
                    known.any = true;
                    known
                        .files
                        .push(root.path(Path::new(WRITTEN_DIR).join(n.to_string())));
                }
                Entry::Link(p, target) if p == abs => {
                    known.any = true;
                    known.links.push(target.clone());
                }
                Entry::Rename(from, to) if to == abs => {
                    known.any = true;
                    self.add_known(root, from, known, seen);
                }
                Entry::Backup(p) if p == abs => known.any = true,
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_through_their_lines_any_byte_in_a_path() {
        let odd = PathBuf::from(OsString::from_vec(
            b"/etc/apache2/sites-available/my site\n\\x\xe9".to_vec(),
        ));
        for entry in [
            Entry::Backup(odd.clone()),
            Entry::Write(odd.clone(), 12),
            Entry::Link(odd.clone(), PathBuf::from("../sites-available/a b")),
            Entry::Rename(odd.clone(), PathBuf::from("/etc/x.conf")),
            Entry::Owner(PathBuf::from("/var/log/synnefo"), 0, 4),
        ] {
            let line = entry.line();
            assert!(!line.contains('\n'), "{line}");
            assert_eq!(Entry::parse(&line), Some(entry), "{line}");
        }
        for bad in [
            "",
            "write /x",
            "write /x y",
            "link /x",
            "backup /x\\q1",
            "chmod /x 1",
        ] {
            assert_eq!(Entry::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn created_existed_and_known_follow_the_order_of_changes() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let p = |s: &str| PathBuf::from(s);
        let changes = Changes {
            entries: vec![
                Entry::Backup(p("/etc/a")),
                Entry::Rename(p("/etc/a"), p("/etc/a.conf")),
                Entry::Write(p("/etc/a.conf"), 2),
                Entry::Link(p("/etc/l"), p("../a.conf")),
            ],
        };
        assert!(changes.existed(Path::new("/etc/a")));
        assert!(!changes.created(Path::new("/etc/a")));
        assert!(changes.created(Path::new("/etc/a.conf")));
        assert!(changes.created(Path::new("/etc/l")));
        assert!(!changes.existed(Path::new("/etc/other")));
        assert!(!changes.created(Path::new("/etc/other")));
        // The renamed file's known contents: its source's original, and what we wrote.
        fs::create_dir_all(root.path(super::super::backup_path(Path::new("/etc")))).unwrap();
        fs::write(
            root.path(super::super::backup_path(Path::new("/etc/a"))),
            "a\n",
        )
        .unwrap();
        let known = changes.known(&root, Path::new("/etc/a.conf"));
        assert!(known.any);
        assert_eq!(
            known.files,
            vec![
                root.path(super::super::backup_path(Path::new("/etc/a"))),
                root.path("/var/lib/synnefo-upgrade/written/2")
            ]
        );
        assert_eq!(
            changes.known(&root, Path::new("/etc/l")).links,
            vec![p("../a.conf")]
        );
        assert!(!changes.known(&root, Path::new("/etc/other")).any);
        assert_eq!(
            changes.paths(),
            vec![p("/etc/a"), p("/etc/a.conf"), p("/etc/l")]
        );
    }
}
