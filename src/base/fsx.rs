//! The only module that writes files.
//!
//! It owns `--root` resolution ([`Root`]) and every change to the file system:
//! atomic replace (temporary file in the target's directory, owner and mode set,
//! `fsync`, `rename`, `fsync` of the directory), a backup of the original first,
//! symlinks (masks, enable links), removals and the append-only ledger.
//! Other modules read freely but ask this one to write.
//!
//! Every change of a node path is also recorded ([`CHANGES`], read by
//! [`changes`]): [`undo`] and [`undo_all`] take back exactly what we did
//! (renames, the files and links we created, the files we replaced), and keep
//! beside its file an edit the operator made since ([`KEPT_MARK`]).

use anyhow::{Context, Result};
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use crate::base::paths;

mod changes;
use changes::{Changes, Entry};
pub use changes::{CHANGES, WRITTEN_DIR};

/// The system root every absolute path is resolved under (`/`, or `--root DIR`).
#[derive(Debug, Clone)]
pub struct Root {
    dir: PathBuf,
}

impl Root {
    /// A root at `dir`; `/` is the live system.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Root { dir: dir.into() }
    }

    /// True when this is the running system (no `--root`): services, D-Bus and
    /// init scripts are only touched then.
    pub fn is_live(&self) -> bool {
        self.dir == Path::new("/")
    }

    /// The host path of node path `abs` taken as it is written (no link
    /// followed): only for a node path that is already resolved.
    fn lexical(&self, abs: &Path) -> PathBuf {
        let relative: PathBuf = abs
            .components()
            .filter(|c| !matches!(c, Component::RootDir | Component::Prefix(_)))
            .collect();
        self.dir.join(relative)
    }

    /// The host path of `abs`, an absolute path on the node, with every
    /// symbolic link in it followed inside the tree ([`Root::resolve`]): what
    /// reads, `stat`s, directory listings and writes through a link use.
    /// On the live root the kernel's own resolution is the tree's, so the
    /// path is only joined (policy-rc.d stays cheap).
    ///
    /// A path that cannot be resolved (a loop of links) gives a host path no
    /// file system call accepts (it holds a NUL byte), so nothing is reached
    /// through it and the caller's own error names the node path.
    pub fn path(&self, abs: impl AsRef<Path>) -> PathBuf {
        self.host(abs.as_ref(), true)
    }

    /// The host path of `abs` itself, not following a link that is its last
    /// component (its directories are resolved as by [`Root::path`]): what
    /// `read_link`, `symlink_metadata`, removing, renaming and creating links
    /// (masks `NAME.service -> /dev/null`) use, and our own files opened
    /// with `O_NOFOLLOW`.
    pub fn path_nofollow(&self, abs: impl AsRef<Path>) -> PathBuf {
        self.host(abs.as_ref(), false)
    }

    fn host(&self, abs: &Path, follow_last: bool) -> PathBuf {
        if self.is_live() {
            return self.lexical(abs);
        }
        match self.resolve_in_tree(abs, follow_last) {
            Ok(node) => self.lexical(&node),
            Err(_) => {
                let mut unreachable = self.lexical(abs).into_os_string();
                unreachable.push("\0(unresolvable symbolic links)");
                PathBuf::from(unreachable)
            }
        }
    }

    /// The node path `abs` designates once every symbolic link in it is
    /// followed, with absolute link targets taken as node paths and `..`
    /// never above the root (so a link never leads out of the tree). The
    /// result need not exist.
    pub fn resolve(&self, abs: &Path) -> Result<PathBuf> {
        self.resolve_in_tree(abs, true)
    }

    /// [`Root::resolve`] of the directory of `abs`, with its last component
    /// kept as it is (a link there is not followed): where the entry `abs`
    /// itself lives.
    pub fn resolve_nofollow(&self, abs: &Path) -> Result<PathBuf> {
        self.resolve_in_tree(abs, false)
    }

    fn resolve_in_tree(&self, abs: &Path, follow_last: bool) -> Result<PathBuf> {
        let mut pending: Vec<PathBuf> = vec![abs.to_path_buf()];
        let mut out = PathBuf::from("/");
        let mut hops = 0;
        while let Some(next) = pending.pop() {
            let mut parts: Vec<Component> = next.components().collect();
            parts.reverse();
            while let Some(part) = parts.pop() {
                match part {
                    Component::RootDir | Component::Prefix(_) => out = PathBuf::from("/"),
                    Component::CurDir => {}
                    Component::ParentDir => {
                        out.pop();
                    }
                    Component::Normal(name) => {
                        out.push(name);
                        let last = parts.is_empty() && pending.is_empty();
                        if last && !follow_last {
                            continue;
                        }
                        let host = self.lexical(&out);
                        let is_link = fs::symlink_metadata(&host)
                            .map(|m| m.file_type().is_symlink())
                            .unwrap_or(false);
                        if !is_link {
                            continue;
                        }
                        hops += 1;
                        if hops > 40 {
                            anyhow::bail!(
                                "too many levels of symbolic links in '{}'",
                                abs.display()
                            );
                        }
                        let target = fs::read_link(&host)
                            .with_context(|| format!("reading link '{}'", out.display()))?;
                        out.pop();
                        let rest: PathBuf = parts.drain(..).rev().collect();
                        if !rest.as_os_str().is_empty() {
                            pending.push(rest);
                        }
                        pending.push(target);
                        break;
                    }
                }
            }
        }
        Ok(out)
    }

    /// The node path of a host path under this root (inverse of [`Root::path`]).
    pub fn node_path(&self, host: &Path) -> PathBuf {
        match host.strip_prefix(&self.dir) {
            Ok(rel) => Path::new("/").join(rel),
            Err(_) => host.to_path_buf(),
        }
    }
}

/// A node path where a regular file was expected and something else is
/// (a FIFO, a socket, a device, a directory). It is never opened for
/// reading: a FIFO would block the run forever, a device would never end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{}' is {kind}, not a regular file: synnefo-upgrade does not read it (reading it could block forever); move it out of the way, or replace it by a regular file", path.display())]
pub struct NotRegular {
    /// The node path.
    pub path: PathBuf,
    /// What it is, in words ("a FIFO (named pipe)").
    pub kind: &'static str,
}

/// `ft` in words, for [`NotRegular`].
fn kind_of(ft: fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_fifo() {
        "a FIFO (named pipe)"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

/// The node files skipped by [`read_file_opt`] in this run (not regular
/// files), for the run's report.
static SKIPPED: std::sync::Mutex<Vec<NotRegular>> = std::sync::Mutex::new(Vec::new());

/// Every node file this run skipped because it is not a regular file
/// ([`read_file_opt`], [`read_text_opt`]), in the order met: each was
/// logged as a warning when met; `check` and `finish` report them too.
pub fn skipped() -> Vec<NotRegular> {
    SKIPPED.lock().map(|s| s.clone()).unwrap_or_default()
}

fn note_skipped(not_regular: NotRegular) {
    let Ok(mut skipped) = SKIPPED.lock() else {
        return;
    };
    if !skipped.contains(&not_regular) {
        log::warn!("{not_regular}");
        skipped.push(not_regular);
    }
}

/// Whether a read follows a link that is the last component of the path.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Follow {
    /// A node file: links followed inside the tree.
    Yes,
    /// A file of ours: never through a link (`O_NOFOLLOW`).
    No,
}

/// Opens node file `abs` for reading with `O_NONBLOCK | O_NOCTTY`
/// (`O_CLOEXEC` is std's own), and refuses anything the open file descriptor
/// does not show to be a regular file: no open or read of a node file ever
/// blocks. `None`: it does not exist.
fn open_regular(root: &Root, abs: &Path, follow: Follow) -> Result<Option<File>> {
    let (host, nofollow) = match follow {
        Follow::Yes => (root.path(abs), 0),
        Follow::No => (root.path_nofollow(abs), nix::libc::O_NOFOLLOW),
    };
    let not_regular = |kind| {
        anyhow::Error::new(NotRegular {
            path: abs.to_path_buf(),
            kind,
        })
    };
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY | nofollow)
        .open(&host)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        // A socket cannot be opened.
        Err(e) if e.raw_os_error() == Some(nix::libc::ENXIO) => {
            let kind = fs::metadata(&host).map_or("not a regular file", |m| kind_of(m.file_type()));
            return Err(not_regular(kind));
        }
        Err(e) => return Err(e).with_context(|| format!("reading '{}'", abs.display())),
    };
    let meta = file
        .metadata()
        .with_context(|| format!("reading '{}'", abs.display()))?;
    if !meta.is_file() {
        return Err(not_regular(kind_of(meta.file_type())));
    }
    Ok(Some(file))
}

/// The bytes of node file `abs` (see [`open_regular`]); `None` when absent.
fn read_regular(root: &Root, abs: &Path, follow: Follow) -> Result<Option<Vec<u8>>> {
    use std::io::Read;
    let Some(mut file) = open_regular(root, abs, follow)? else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .with_context(|| format!("reading '{}'", abs.display()))?;
    Ok(Some(bytes))
}

/// Reads node file `abs`, links followed inside the tree, never blocking: a
/// FIFO, socket, device or directory there is a [`NotRegular`] error (find
/// it with [`not_regular`]), an absent file an error too.
pub fn read_file(root: &Root, abs: impl AsRef<Path>) -> Result<Vec<u8>> {
    let abs = abs.as_ref();
    read_regular(root, abs, Follow::Yes)?
        .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
        .with_context(|| format!("reading '{}'", abs.display()))
}

/// Reads node file `abs` like [`read_file`]; `None` when it is absent, or
/// when it is not a regular file: then it is skipped with a warning that
/// says what to do, and remembered for the run's report ([`skipped`]).
pub fn read_file_opt(root: &Root, abs: impl AsRef<Path>) -> Result<Option<Vec<u8>>> {
    let abs = abs.as_ref();
    match read_regular(root, abs, Follow::Yes) {
        Err(e) => match not_regular(&e) {
            Some(not_regular) => {
                note_skipped(not_regular.clone());
                Ok(None)
            }
            None => Err(e),
        },
        found => found,
    }
}

/// The first `max` bytes of node file `abs`, read like [`read_file_opt`]
/// (links followed inside the tree, never blocking; not a regular file:
/// skipped with a warning): for files whose head is all that is needed.
pub fn read_head(root: &Root, abs: impl AsRef<Path>, max: u64) -> Result<Option<Vec<u8>>> {
    use std::io::Read;
    let abs = abs.as_ref();
    let file = match open_regular(root, abs, Follow::Yes) {
        Ok(Some(file)) => file,
        Ok(None) => return Ok(None),
        Err(e) => match not_regular(&e) {
            Some(not_regular) => {
                note_skipped(not_regular.clone());
                return Ok(None);
            }
            None => return Err(e),
        },
    };
    let mut head = Vec::new();
    file.take(max)
        .read_to_end(&mut head)
        .with_context(|| format!("reading '{}'", abs.display()))?;
    Ok(Some(head))
}

/// [`read_file`] of a text file (UTF-8).
pub fn read_text(root: &Root, abs: impl AsRef<Path>) -> Result<String> {
    let abs = abs.as_ref();
    utf8(abs, read_file(root, abs)?)
}

/// [`read_file_opt`] of a text file (UTF-8).
pub fn read_text_opt(root: &Root, abs: impl AsRef<Path>) -> Result<Option<String>> {
    let abs = abs.as_ref();
    read_file_opt(root, abs)?
        .map(|bytes| utf8(abs, bytes))
        .transpose()
}

/// Reads a text file of ours (the state file): never through a symbolic
/// link (`O_NOFOLLOW`), never blocking, only a regular file; `None` when
/// absent.
pub fn read_own_text(root: &Root, abs: &str) -> Result<Option<String>> {
    let abs = Path::new(abs);
    read_regular(root, abs, Follow::No)?
        .map(|bytes| utf8(abs, bytes))
        .transpose()
}

fn utf8(abs: &Path, bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "reading '{}': not UTF-8 text (byte {})",
            abs.display(),
            e.utf8_error().valid_up_to()
        )
    })
}

/// Whether node path `abs` is (or leads inside the tree to) a regular file:
/// for a listing whose files are read next. Something else there (a FIFO, a
/// socket, a device, a directory) is skipped as by [`read_file_opt`], with a
/// warning; an absent file is not.
pub fn is_regular_file(root: &Root, abs: impl AsRef<Path>) -> bool {
    let abs = abs.as_ref();
    match fs::metadata(root.path(abs)) {
        Ok(meta) if meta.is_file() => true,
        Ok(meta) => {
            note_skipped(NotRegular {
                path: abs.to_path_buf(),
                kind: kind_of(meta.file_type()),
            });
            false
        }
        Err(_) => false,
    }
}

/// Fails with [`NotRegular`] unless node path `abs` is (or leads inside the
/// tree to) a regular file: for a file handed to another program to read.
pub fn check_regular(root: &Root, abs: &Path) -> Result<()> {
    let meta =
        fs::metadata(root.path(abs)).with_context(|| format!("reading '{}'", abs.display()))?;
    if meta.is_file() {
        return Ok(());
    }
    Err(NotRegular {
        path: abs.to_path_buf(),
        kind: kind_of(meta.file_type()),
    }
    .into())
}

/// The [`NotRegular`] in `err`'s chain, if that is what it is.
pub fn not_regular(err: &anyhow::Error) -> Option<&NotRegular> {
    err.chain().find_map(|c| c.downcast_ref::<NotRegular>())
}

/// Where the backup of node path `abs` is kept.
pub fn backup_path(abs: &Path) -> PathBuf {
    let rel: PathBuf = abs
        .components()
        .filter(|c| !matches!(c, Component::RootDir | Component::Prefix(_)))
        .collect();
    Path::new(paths::BACKUP_DIR).join(rel)
}

/// Directories we created outside our state directory, one node path a line,
/// so that `abort` can remove them again (when empty).
pub const CREATED_DIRS: &str = "/var/lib/synnefo-upgrade/created-dirs";

/// Creates `abs` (and parents) if missing; new directories get `mode`. Those
/// created outside our state directory are recorded in [`CREATED_DIRS`].
/// Links on the way are followed inside the tree: the directories are
/// created where `abs` resolves to.
pub fn ensure_dir(root: &Root, abs: &str, mode: u32) -> Result<()> {
    if root.path(abs).is_dir() {
        return Ok(());
    }
    let real = root.resolve(Path::new(abs))?;
    let mut missing = Vec::new();
    let mut dir = Some(real.as_path());
    while let Some(d) = dir.filter(|d| !root.path(d).is_dir()) {
        missing.push(d.to_path_buf());
        dir = d.parent();
    }
    for d in missing.iter().rev() {
        // Our state directory and its ancestors are not recorded (the record lives there).
        if !d.starts_with(paths::STATE_DIR) && !Path::new(paths::STATE_DIR).starts_with(d) {
            ensure_dir(root, paths::STATE_DIR, 0o700)?;
            append_line(root, CREATED_DIRS, &d.to_string_lossy())?;
        }
        match fs::create_dir(root.path(d)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(e).with_context(|| format!("creating directory '{}'", d.display()))
            }
        }
        fs::set_permissions(root.path(d), fs::Permissions::from_mode(mode))
            .with_context(|| format!("setting mode of '{}'", d.display()))?;
    }
    Ok(())
}

/// Removes the directories recorded in [`CREATED_DIRS`] that are empty again,
/// deepest first. Returns those removed.
pub fn remove_created_dirs(root: &Root) -> Result<Vec<PathBuf>> {
    let Some(text) = read_text_opt(root, Path::new(CREATED_DIRS))? else {
        return Ok(Vec::new());
    };
    let mut dirs: Vec<PathBuf> = text
        .lines()
        .filter(|l| !l.is_empty())
        .map(PathBuf::from)
        .collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    dirs.dedup();
    let mut removed = Vec::new();
    for d in dirs {
        let host = root.path(&d);
        if host.is_dir()
            && fs::read_dir(&host)
                .map(|mut e| e.next().is_none())
                .unwrap_or(false)
        {
            fs::remove_dir(&host)
                .with_context(|| format!("removing directory '{}'", d.display()))?;
            removed.push(d);
        }
    }
    remove(root, Path::new(CREATED_DIRS))?;
    Ok(removed)
}

/// A temporary path beside `host` (same directory, so the rename is atomic),
/// cleared of a leftover from an interrupted earlier run.
fn temp_beside(host: &Path) -> PathBuf {
    let name = host
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = host.with_file_name(format!(".{name}.synnefo-upgrade.tmp"));
    let _ = fs::remove_file(&tmp);
    tmp
}

fn sync_parent(host: &Path) -> Result<()> {
    if let Some(parent) = host.parent() {
        File::open(parent)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("syncing directory '{}'", parent.display()))?;
    }
    Ok(())
}

/// Copies the current content of `abs` to its backup, once: the first backup
/// is the original and is never overwritten. Mode and owner are kept.
/// A symbolic link is kept as the link it is (its target verbatim, relative as
/// it was, and its owner), so that [`restore`] puts back exactly that link; a
/// relative target therefore means something else from the backup directory:
/// read what it designates with [`backup_designates`], never through the
/// backup's own path. The backup directory must be a real directory
/// ([`ensure_private_dir`]). Returns false when there was nothing to back up.
pub fn backup(root: &Root, abs: &Path) -> Result<bool> {
    let host = root.path_nofollow(abs);
    let meta = match fs::symlink_metadata(&host) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e).with_context(|| format!("reading '{}'", abs.display())),
    };
    ensure_private_dir(root, paths::BACKUP_DIR, true)?;
    let dest_abs = backup_path(abs);
    let dest = root.path_nofollow(&dest_abs);
    if fs::symlink_metadata(&dest).is_ok() {
        return Ok(true);
    }
    // A path we created has no original: taking it back removes it.
    if Changes::load(root)?.created(abs) {
        return Ok(false);
    }
    if let Some(parent) = dest_abs.parent() {
        ensure_dir(root, &parent.to_string_lossy(), 0o700)?;
    }
    if meta.file_type().is_symlink() {
        let target =
            fs::read_link(&host).with_context(|| format!("reading link '{}'", abs.display()))?;
        put_link(&dest, &target, (meta.uid(), meta.gid()))
            .with_context(|| format!("backing up link '{}'", abs.display()))?;
    } else if meta.is_file() {
        let content = read_file(root, abs)?;
        write_new(
            &dest,
            &content,
            meta.mode() & 0o7777,
            Some((meta.uid(), meta.gid())),
        )
        .with_context(|| format!("backing up '{}'", abs.display()))?;
    } else {
        return Err(NotRegular {
            path: abs.to_path_buf(),
            kind: kind_of(meta.file_type()),
        })
        .with_context(|| format!("backing up '{}'", abs.display()));
    }
    sync_parent(&dest)?;
    record(root, &Entry::Backup(abs.to_path_buf()))?;
    Ok(true)
}

/// Makes `dest` (a host path) a symbolic link to `target` owned by `owner`,
/// atomically (a link made beside it, renamed over it).
fn put_link(dest: &Path, target: &Path, owner: (u32, u32)) -> std::io::Result<()> {
    let tmp = temp_beside(dest);
    let made = std::os::unix::fs::symlink(target, &tmp)
        .and_then(|()| std::os::unix::fs::lchown(&tmp, Some(owner.0), Some(owner.1)))
        .and_then(|()| fs::rename(&tmp, dest));
    if made.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    made
}

/// The node path that the backup of `abs` designates, read as if it were
/// still at `abs`: the backup itself when it is a file; when it is a symbolic
/// link, its target taken from `abs`'s directory (not the backup's, where a
/// relative target leads elsewhere or nowhere), every further link followed
/// inside the root ([`Root::resolve`]). `None` when there is no backup. The
/// result need not exist (a link that dangled where it was still dangles).
pub fn backup_designates(root: &Root, abs: &Path) -> Result<Option<PathBuf>> {
    let backup_abs = backup_path(abs);
    let backup_host = root.path_nofollow(&backup_abs);
    let meta = match fs::symlink_metadata(&backup_host) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(e).with_context(|| format!("reading the backup of '{}'", abs.display()))
        }
    };
    if !meta.file_type().is_symlink() {
        return Ok(Some(backup_abs));
    }
    let target = fs::read_link(&backup_host)
        .with_context(|| format!("reading the backup of link '{}'", abs.display()))?;
    let beside = abs.parent().unwrap_or(Path::new("/")).join(target);
    root.resolve(&beside)
        .with_context(|| format!("following the backed-up link '{}'", abs.display()))
        .map(Some)
}

/// Appends `entry` to [`CHANGES`] (nothing for a path of ours), before the
/// change itself: a change is never made unrecorded. A last line a crash cut
/// short is dropped first.
fn record(root: &Root, entry: &Entry) -> Result<()> {
    if entry.paths().first().is_some_and(|p| changes::is_ours(p)) {
        return Ok(());
    }
    ensure_private_dir(root, paths::STATE_DIR, true)?;
    let mut file = open_append(root, CHANGES)?;
    let len = file
        .metadata()
        .with_context(|| format!("reading '{CHANGES}'"))?
        .len();
    if len > 0 {
        let text = fs::read(root.path_nofollow(CHANGES))
            .with_context(|| format!("reading '{CHANGES}'"))?;
        if !text.ends_with(b"\n") {
            let keep = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            file.set_len(keep as u64)
                .with_context(|| format!("dropping a cut line of '{CHANGES}'"))?;
        }
    }
    file.write_all(format!("{}\n", entry.line()).as_bytes())
        .and_then(|()| file.sync_data())
        .with_context(|| format!("appending to '{CHANGES}'"))
}

/// Records that we are writing `content` into `abs`, with a copy of it (mode
/// 0600, in our private directory) to compare the file with later.
fn record_write(root: &Root, abs: &Path, content: &[u8]) -> Result<()> {
    if changes::is_ours(abs) {
        return Ok(());
    }
    let number = Changes::load(root)?.count() as u64;
    ensure_private_dir(root, paths::STATE_DIR, true)?;
    ensure_private_dir(root, WRITTEN_DIR, true)?;
    let copy = Path::new(WRITTEN_DIR).join(number.to_string());
    write_new(&root.path(&copy), content, 0o600, None)
        .with_context(|| format!("keeping what is written into '{}'", abs.display()))?;
    record(root, &Entry::Write(abs.to_path_buf(), number))
}

/// Drops the record of our changes ([`CHANGES`], [`WRITTEN_DIR`]) once
/// `abort` has taken them all back: a later `prepare` starts a new one.
pub fn forget_changes(root: &Root) -> Result<()> {
    remove(root, Path::new(CHANGES))?;
    match fs::remove_dir_all(root.path(WRITTEN_DIR)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing '{WRITTEN_DIR}'")),
    }
}

/// Creates a temporary file beside `dest` (0600), lets `fill` write it, then
/// `fsync`s and renames it over `dest` and `fsync`s the directory. On any
/// error the temporary file is removed and `dest` is untouched.
fn replace_atomically(dest: &Path, fill: impl FnOnce(&mut File) -> Result<()>) -> Result<()> {
    let tmp = temp_beside(dest);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating '{}'", tmp.display()))?;
    let result = (|| -> Result<()> {
        fill(&mut file)?;
        file.sync_all()?;
        fs::rename(&tmp, dest)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
        .map_err(|e| {
            if is_disk_full(&e) {
                e.context(
                    "its file system is full (the partial file was removed): free space there and run the command again",
                )
            } else {
                e
            }
        })
        .with_context(|| format!("writing '{}'", dest.display()))?;
    sync_parent(dest)
}

/// Writes `content` to a new temporary file beside `dest` and renames it over `dest`.
fn write_new(dest: &Path, content: &[u8], mode: u32, owner: Option<(u32, u32)>) -> Result<()> {
    replace_atomically(dest, |file| {
        file.write_all(content)?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::fchown(&*file, Some(uid), Some(gid))?;
        }
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        Ok(())
    })
}

/// Replaces (or creates) node file `abs` atomically. An existing file is backed
/// up first and keeps its mode and owner; a new file is root-owned with `mode`
/// (and missing parent directories are created 0755). A symbolic link `abs`
/// stays a link: the file it leads to inside the tree is what is backed up
/// and replaced. A link that leads nowhere, and anything but a regular file
/// there, is refused.
pub fn write_file(root: &Root, abs: &Path, content: &[u8], mode: u32) -> Result<()> {
    let real = root.resolve(abs)?;
    let host = root.path_nofollow(&real);
    let (mode, owner) = match fs::symlink_metadata(&host) {
        Ok(meta) if meta.is_file() => {
            backup(root, &real)?;
            (meta.mode() & 0o7777, Some((meta.uid(), meta.gid())))
        }
        Ok(meta) => {
            return Err(NotRegular {
                path: real.clone(),
                kind: kind_of(meta.file_type()),
            })
            .with_context(|| format!("replacing '{}'", abs.display()))
        }
        Err(_) if is_link(root, abs) => anyhow::bail!(
            "replacing '{}': it is a symbolic link to '{}', which does not exist; remove the link or create its target, then run this again",
            abs.display(),
            real.display()
        ),
        Err(_) => {
            if let Some(parent) = real.parent() {
                ensure_dir(root, &parent.to_string_lossy(), 0o755)?;
            }
            (mode, None)
        }
    };
    record_write(root, abs, content)?;
    write_new(&host, content, mode, owner).with_context(|| format!("replacing '{}'", abs.display()))
}

/// Whether node path `abs` itself is a symbolic link.
pub fn is_link(root: &Root, abs: &Path) -> bool {
    fs::symlink_metadata(root.path_nofollow(abs)).is_ok_and(|m| m.file_type().is_symlink())
}

/// Writes a state file of ours (no backup: it is ours), atomically; a link
/// in its place is replaced, never written through.
pub fn write_state_file(root: &Root, abs: &str, content: &[u8]) -> Result<()> {
    ensure_private_dir(root, paths::STATE_DIR, true)?;
    write_new(&root.path_nofollow(abs), content, 0o600, None)
        .with_context(|| format!("writing '{abs}'"))
}

/// Points node path `abs` at `target` atomically (a mask, an enable link, ...).
/// An existing non-link file is backed up first.
pub fn symlink(root: &Root, abs: &Path, target: &Path) -> Result<()> {
    if fs::read_link(root.path_nofollow(abs)).ok().as_deref() == Some(target) {
        return Ok(());
    }
    if let Some(parent) = abs.parent() {
        ensure_dir(root, &parent.to_string_lossy(), 0o755)?;
    }
    let host = root.path_nofollow(abs);
    if fs::symlink_metadata(&host).is_ok() {
        backup(root, abs)?;
    }
    record(root, &Entry::Link(abs.to_path_buf(), target.to_path_buf()))?;
    let tmp = temp_beside(&host);
    std::os::unix::fs::symlink(target, &tmp)
        .and_then(|()| fs::rename(&tmp, &host))
        .with_context(|| format!("linking '{}' -> '{}'", abs.display(), target.display()))?;
    sync_parent(&host)
}

/// Removes node path `abs` (file or link) if present.
pub fn remove(root: &Root, abs: &Path) -> Result<()> {
    let host = root.path_nofollow(abs);
    match fs::remove_file(&host) {
        Ok(()) => sync_parent(&host),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing '{}'", abs.display())),
    }
}

/// Renames node path `from` to `to` (a file or a link), after a backup of
/// `from`; refuses to replace an existing `to`.
pub fn rename(root: &Root, from: &Path, to: &Path) -> Result<()> {
    let (host_from, host_to) = (root.path_nofollow(from), root.path_nofollow(to));
    if fs::symlink_metadata(&host_to).is_ok() {
        anyhow::bail!(
            "renaming '{}': '{}' already exists",
            from.display(),
            to.display()
        );
    }
    backup(root, from)?;
    record(root, &Entry::Rename(from.to_path_buf(), to.to_path_buf()))?;
    fs::rename(&host_from, &host_to)
        .with_context(|| format!("renaming '{}' to '{}'", from.display(), to.display()))?;
    sync_parent(&host_to)
}

/// Makes directory `abs` exist (new: `mode`) and be owned by `uid:gid`
/// (numeric ids; an existing directory keeps its mode).
pub fn ensure_dir_owned(root: &Root, abs: &Path, mode: u32, uid: u32, gid: u32) -> Result<()> {
    let host = root.path(abs);
    // A directory we create is removed again by abort (when empty); one that
    // existed gets its owner back.
    let existed = host.is_dir();
    ensure_dir(root, &abs.to_string_lossy(), mode)?;
    let meta = fs::metadata(&host).with_context(|| format!("reading '{}'", abs.display()))?;
    if (meta.uid(), meta.gid()) != (uid, gid) {
        if existed {
            record(
                root,
                &Entry::Owner(abs.to_path_buf(), meta.uid(), meta.gid()),
            )?;
        }
        std::os::unix::fs::chown(&host, Some(uid), Some(gid))
            .with_context(|| format!("changing the owner of '{}' to {uid}:{gid}", abs.display()))?;
    }
    Ok(())
}

/// What taking back our change of one node path did, for reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undone {
    /// The node path.
    pub path: PathBuf,
    /// What was done.
    pub action: Action,
    /// What it held that we did not leave there (an edit made since).
    pub kept: Option<Kept>,
}

/// What was done to a path to take our change back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The original came back from its backup.
    Restored,
    /// It was ours (created, or renamed there): removed.
    Removed,
    /// Nothing there, nothing to do.
    Absent,
    /// Already as it was (restored earlier).
    AsItWas,
    /// The directory has its owner back.
    OwnerBack,
}

/// An edit made since we left a path, found when taking our change back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kept {
    /// A file: its content is kept in this node file beside it.
    Copy(PathBuf),
    /// A link we did not make: it pointed here (nothing is kept beside a
    /// link: in a directory that is read whole, a second link would enable
    /// a site or start a service twice).
    Link(PathBuf),
}

impl std::fmt::Display for Undone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let action = match self.action {
            Action::Restored => "restored",
            Action::Removed => "removed",
            Action::Absent => "absent",
            Action::AsItWas => "already as it was",
            Action::OwnerBack => "owner put back",
        };
        write!(f, "{} {action}", self.path.display())?;
        match &self.kept {
            Some(Kept::Copy(copy)) => write!(
                f,
                " (edited since synnefo-upgrade changed it: that version is kept as {})",
                copy.display()
            ),
            Some(Kept::Link(target)) => write!(
                f,
                " (changed since synnefo-upgrade made it: it was a link to {})",
                target.display()
            ),
            None => Ok(()),
        }
    }
}

/// The mark in the name of a kept copy: `NAME.synnefo-upgrade-kept-YYYYmmddTHHMMSS~`
/// (UTC) beside `NAME`. The trailing `~` is the editor-backup mark that the
/// readers of whole directories skip (gunicorn-debian in `/etc/gunicorn.d`,
/// APT's `*.d` directories, `convert` itself) and `*.conf` globs do not
/// match: a copy beside a gunicorn config does not start a second gunicorn.
pub const KEPT_MARK: &str = ".synnefo-upgrade-kept-";

/// When `abs` holds something we did not leave there (an edit made since),
/// keeps it: a file's content in a copy beside it (mode and owner kept; an
/// identical copy kept by an earlier run is reused), a link's target in the
/// answer. Nothing when we know nothing of `abs` or it is as we left it.
fn keep_edit(root: &Root, changes: &Changes, abs: &Path) -> Result<Option<Kept>> {
    let host = root.path_nofollow(abs);
    let Ok(meta) = fs::symlink_metadata(&host) else {
        return Ok(None);
    };
    let known = changes.known(root, abs);
    if !known.any {
        return Ok(None);
    }
    if meta.file_type().is_symlink() {
        let target =
            fs::read_link(&host).with_context(|| format!("reading link '{}'", abs.display()))?;
        if known.links.contains(&target) {
            return Ok(None);
        }
        log::warn!(
            "'{}' was changed since synnefo-upgrade made it: it was a link to '{}'; it is taken back all the same",
            abs.display(),
            target.display()
        );
        return Ok(Some(Kept::Link(target)));
    }
    if !meta.is_file() {
        return Ok(None);
    }
    let content = fs::read(&host).with_context(|| format!("reading '{}'", abs.display()))?;
    if known
        .files
        .iter()
        .any(|copy| fs::read(copy).is_ok_and(|c| c == content))
    {
        return Ok(None);
    }
    let copy = keep_copy(root, abs, &content, &meta)?;
    log::warn!(
        "'{}' was edited since synnefo-upgrade changed it: that version is kept as '{}'",
        abs.display(),
        copy.display()
    );
    Ok(Some(Kept::Copy(copy)))
}

/// Writes `content` (the file `abs` as `meta` describes it) into a new file
/// beside it named with [`KEPT_MARK`]; returns its node path.
fn keep_copy(root: &Root, abs: &Path, content: &[u8], meta: &fs::Metadata) -> Result<PathBuf> {
    let host = root.path_nofollow(abs);
    let dir = host.parent().unwrap_or(Path::new("/"));
    let mut prefix = host
        .file_name()
        .map(|n| n.as_bytes().to_vec())
        .unwrap_or_default();
    prefix.extend_from_slice(KEPT_MARK.as_bytes());
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.as_bytes();
            if name.starts_with(&prefix)
                && name.ends_with(b"~")
                && fs::read(entry.path()).is_ok_and(|c| c == content)
            {
                return Ok(root.node_path(&entry.path()));
            }
        }
    }
    let stamp: String = crate::base::clock::rfc3339(crate::base::clock::now())
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .filter(|c| *c != 'Z')
        .collect();
    for n in 1u32.. {
        let mut name = prefix.clone();
        name.extend_from_slice(stamp.as_bytes());
        if n > 1 {
            name.extend_from_slice(format!("-{n}").as_bytes());
        }
        name.push(b'~');
        let dest = dir.join(OsString::from_vec(name));
        if fs::symlink_metadata(&dest).is_ok() {
            continue;
        }
        write_new(
            &dest,
            content,
            meta.mode() & 0o7777,
            Some((meta.uid(), meta.gid())),
        )
        .with_context(|| format!("keeping the edited '{}'", abs.display()))?;
        return Ok(root.node_path(&dest));
    }
    unreachable!("u32 names exhausted")
}

/// Puts the backup of `abs` back in place, byte for byte with mode and owner,
/// and drops the backup; an edit made since is kept first (see
/// [`keep_edit`]). `None` when there is no backup.
pub fn restore(root: &Root, abs: &Path) -> Result<Option<Undone>> {
    restore_with(root, &Changes::load(root)?, abs)
}

fn restore_with(root: &Root, changes: &Changes, abs: &Path) -> Result<Option<Undone>> {
    let backup_abs = backup_path(abs);
    let backup_host = root.path_nofollow(&backup_abs);
    let meta = match fs::symlink_metadata(&backup_host) {
        Ok(m) => m,
        Err(_) => return Ok(None),
    };
    let kept = keep_edit(root, changes, abs)?;
    let host = root.path_nofollow(abs);
    if meta.file_type().is_symlink() {
        let target = fs::read_link(&backup_host)
            .with_context(|| format!("reading backup of '{}'", abs.display()))?;
        put_link(&host, &target, (meta.uid(), meta.gid()))
            .with_context(|| format!("restoring link '{}'", abs.display()))?;
    } else {
        let content = read_file(root, &backup_abs)
            .with_context(|| format!("reading backup of '{}'", abs.display()))?;
        write_new(
            &host,
            &content,
            meta.mode() & 0o7777,
            Some((meta.uid(), meta.gid())),
        )
        .with_context(|| format!("restoring '{}'", abs.display()))?;
    }
    fs::remove_file(&backup_host)
        .with_context(|| format!("dropping backup of '{}'", abs.display()))?;
    sync_parent(&host)?;
    Ok(Some(Undone {
        path: abs.to_path_buf(),
        action: Action::Restored,
        kept,
    }))
}

/// Opens a file of ours with `options` (for appending), only as the regular
/// file it must be: never through a symbolic link (`O_NOFOLLOW`: `ELOOP`), and
/// without waiting on a FIFO or a device (`O_NONBLOCK`, then anything but a
/// regular file is refused with [`NotRegular`]).
fn open_own(root: &Root, abs: &str, options: &mut OpenOptions) -> Result<File> {
    let file = options
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(root.path_nofollow(abs))
        .with_context(|| format!("opening '{abs}'"))?;
    let meta = file
        .metadata()
        .with_context(|| format!("reading '{abs}'"))?;
    if !meta.is_file() {
        return Err(NotRegular {
            path: PathBuf::from(abs),
            kind: kind_of(meta.file_type()),
        }
        .into());
    }
    Ok(file)
}

/// Opens an append-only log of ours (the denied-action ledger, the log file),
/// creating it 0600; only as a regular file, never through a symbolic link
/// (see [`open_own`]).
pub fn open_append(root: &Root, abs: &str) -> Result<File> {
    open_own(
        root,
        abs,
        OpenOptions::new().append(true).create(true).mode(0o600),
    )
    .with_context(|| format!("opening '{abs}' (it must be a regular file, not a symbolic link)"))
}

/// Appends one line to an append-only log of ours (see [`open_append`]).
pub fn append_line(root: &Root, abs: &str, line: &str) -> Result<()> {
    let mut file = open_append(root, abs)?;
    // One write: appended whole even beside a concurrent writer.
    file.write_all(format!("{line}\n").as_bytes())
        .with_context(|| format!("appending to '{abs}'"))
}

/// Takes back our change of node path `abs`: the original comes back from
/// its backup when there is one (we modified or replaced it); otherwise the
/// path is removed, unless the record says it existed before (its backup was
/// put back already). An edit made since is kept first (see [`keep_edit`]).
pub fn undo(root: &Root, abs: &Path) -> Result<Undone> {
    undo_with(root, &Changes::load(root)?, abs)
}

fn undo_with(root: &Root, changes: &Changes, abs: &Path) -> Result<Undone> {
    if let Some(done) = restore_with(root, changes, abs)? {
        return Ok(done);
    }
    // A link we wrote through: the backup is of the file it leads to.
    let real = root.resolve(abs)?;
    if real != root.resolve_nofollow(abs)? {
        if let Some(done) = restore_with(root, changes, &real)? {
            return Ok(done);
        }
    }
    let undone = |action, kept| Undone {
        path: abs.to_path_buf(),
        action,
        kept,
    };
    if changes.existed(abs) {
        return Ok(undone(Action::AsItWas, None));
    }
    if fs::symlink_metadata(root.path_nofollow(abs)).is_err() {
        return Ok(undone(Action::Absent, None));
    }
    let kept = keep_edit(root, changes, abs)?;
    remove(root, abs)?;
    Ok(undone(Action::Removed, kept))
}

/// Node paths with a backup, sorted.
fn backed_up(root: &Root) -> Result<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                walk(&entry.path(), out)?;
            } else {
                out.push(entry.path());
            }
        }
        Ok(())
    }
    let base = root.path_nofollow(paths::BACKUP_DIR);
    let mut found = Vec::new();
    if check_private_dir(root, paths::BACKUP_DIR)? {
        walk(&base, &mut found).with_context(|| format!("listing '{}'", paths::BACKUP_DIR))?;
    }
    found.sort();
    Ok(found
        .iter()
        .filter_map(|host| host.strip_prefix(&base).ok())
        .map(|rel| Path::new("/").join(rel))
        .collect())
}

/// Takes back every change recorded and restores every backup: the paths we
/// created (files, links, rename targets) are removed, first, while the
/// originals they are compared with are still in the backups; then every
/// original comes back; then the directories whose owner we changed get it
/// back. An edit made since is kept beside its file ([`keep_edit`]). Returns
/// what was done, path by path.
pub fn undo_all(root: &Root) -> Result<Vec<Undone>> {
    let changes = Changes::load(root)?;
    let mut done = Vec::new();
    for abs in changes.paths() {
        let has_backup = fs::symlink_metadata(root.path_nofollow(backup_path(&abs))).is_ok();
        if changes::is_ours(&abs) || has_backup || !changes.created(&abs) {
            continue;
        }
        let undone = undo_with(root, &changes, &abs)?;
        if undone.action != Action::Absent {
            done.push(undone);
        }
    }
    for abs in backed_up(root)? {
        done.extend(restore_with(root, &changes, &abs)?);
    }
    for (abs, uid, gid) in changes.owners() {
        let host = root.path(&abs);
        let Ok(meta) = fs::symlink_metadata(&host) else {
            continue;
        };
        if !meta.is_dir() || (meta.uid(), meta.gid()) == (uid, gid) {
            continue;
        }
        std::os::unix::fs::chown(&host, Some(uid), Some(gid))
            .with_context(|| format!("giving '{}' its owner {uid}:{gid} back", abs.display()))?;
        done.push(Undone {
            path: abs,
            action: Action::OwnerBack,
            kept: None,
        });
    }
    Ok(done)
}

/// Whether `err` is a full disk (`ENOSPC`, `EDQUOT`) somewhere in its chain.
pub fn is_disk_full(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .or_else(|| c.downcast_ref::<PartialWrite>().map(|p| &p.source))
            .is_some_and(|e| {
                matches!(
                    e.raw_os_error(),
                    Some(nix::libc::ENOSPC) | Some(nix::libc::EDQUOT)
                )
            })
    })
}

/// A write that failed after `written` bytes reached the file (the source
/// says why: `ENOSPC` for a full disk).
#[derive(Debug, thiserror::Error)]
#[error("writing failed after {written} bytes")]
pub struct PartialWrite {
    /// Bytes written before the failure.
    pub written: u64,
    /// The failure.
    #[source]
    pub source: std::io::Error,
}

/// How much a failed [`write_from_command`] had written, from its error.
pub fn written_before_full(err: &anyhow::Error) -> Option<u64> {
    err.chain()
        .find_map(|c| c.downcast_ref::<PartialWrite>())
        .map(|p| p.written)
}

/// Writes what `command` prints on stdout to node file `abs` (mode 0600,
/// root-owned, atomically: nothing appears unless the command succeeds and
/// every byte reached the disk; a partial temporary file is removed). The
/// output passes through us, so a full disk is our own `ENOSPC`
/// ([`PartialWrite`]), not a guess from the command's exit status. Used for
/// backups (database dumps, tarballs); the parent directory is private
/// (see [`ensure_private_dir`]). Returns the bytes written.
///
/// What the command says on stderr is read (its last [`STDERR_KEPT`] bytes)
/// and ends the error of a failure, so that the caller can tell a database
/// server that is not up yet ("Connection refused") from any other failure;
/// on success it is logged as a warning. The command is named by program and
/// arguments only: its environment (`PGPASSWORD`) never reaches a message.
pub fn write_from_command(
    root: &Root,
    abs: &Path,
    command: &mut std::process::Command,
) -> Result<u64> {
    use std::io::Read;
    let host = root.path_nofollow(abs);
    if let Some(parent) = abs.parent() {
        ensure_private_dir(root, &parent.to_string_lossy(), false)?;
    }
    let name = command_line(command);
    let mut written = 0u64;
    replace_atomically(&host, |file| {
        let mut child = command
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .stdin(std::process::Stdio::null())
            .spawn()
            .with_context(|| format!("running {name}"))?;
        let _tracked = crate::base::children::track(child.id());
        let mut out = child.stdout.take().context("no stdout pipe")?;
        let err = child.stderr.take().context("no stderr pipe")?;
        let said = std::thread::spawn(move || read_tail(err, STDERR_KEPT));
        let mut buf = vec![0u8; 64 * 1024];
        let copied = loop {
            let n = match out.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(anyhow::Error::new(e).context("reading its output")),
            };
            if let Err(source) = file.write_all(&buf[..n]) {
                break Err(PartialWrite { written, source }.into());
            }
            written += n as u64;
        };
        if copied.is_err() {
            let _ = child.kill();
        }
        drop(out);
        let status = child
            .wait()
            .with_context(|| format!("waiting for {name}"))?;
        let said = said.join().unwrap_or_default();
        let said = said.trim();
        copied?;
        if !status.success() {
            if said.is_empty() {
                anyhow::bail!("{name} failed ({status})");
            }
            anyhow::bail!("{name} failed ({status}): {said}");
        }
        if !said.is_empty() {
            log::warn!("{name}: {said}");
        }
        file.sync_all()
            .map_err(|source| PartialWrite { written, source })?;
        Ok(())
    })
    .with_context(|| format!("writing '{}'", abs.display()))?;
    Ok(written)
}

/// How much of a command's stderr [`write_from_command`] keeps (the end).
const STDERR_KEPT: usize = 8 * 1024;

/// Reads `from` to its end, keeping its last `keep` bytes (lossy UTF-8).
fn read_tail(mut from: impl std::io::Read, keep: usize) -> String {
    let mut kept: Vec<u8> = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > keep {
                    kept.drain(..kept.len() - keep);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&kept).into_owned()
}

/// A command as a message names it: program and arguments, each quoted,
/// never its environment (which may hold a password).
pub fn command_line(command: &std::process::Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|a| format!("{:?}", a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// How long a second run waits for the lock, by default.
pub const LOCK_WAIT_DEFAULT: std::time::Duration = std::time::Duration::from_secs(30);

/// The environment variable that sets that wait, in seconds (`0`: do not wait).
pub const LOCK_WAIT_ENV: &str = "SYNNEFO_UPGRADE_LOCK_WAIT";

/// How long a run waits for a lock held by another ([`LOCK_WAIT_ENV`], else
/// [`LOCK_WAIT_DEFAULT`]).
pub fn lock_wait() -> Result<std::time::Duration> {
    match std::env::var(LOCK_WAIT_ENV) {
        Err(_) => Ok(LOCK_WAIT_DEFAULT),
        Ok(v) => v
            .trim()
            .parse::<u64>()
            .map(std::time::Duration::from_secs)
            .map_err(|_| {
                anyhow::anyhow!(crate::base::error::Fatal::BadInput(format!(
                    "{LOCK_WAIT_ENV}='{v}' is not a number of seconds"
                )))
            }),
    }
}

/// Opens (creating) the lock file, for the runner's `flock`; never through a
/// symbolic link. The first thing a run that writes does: a state or backup
/// directory that is a link is refused here, before anything is written.
pub fn open_lock(root: &Root) -> Result<File> {
    open_lock_at(root, paths::LOCK_FILE)
}

/// Opens (creating) lock file `abs` in the state directory (the run lock,
/// the dist-upgrade's lock), as [`open_lock`] does.
pub fn open_lock_at(root: &Root, abs: &str) -> Result<File> {
    check_private_dir(root, paths::STATE_DIR)?;
    check_private_dir(root, paths::BACKUP_DIR)?;
    ensure_private_dir(root, paths::STATE_DIR, true)?;
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(root.path_nofollow(abs))
        .with_context(|| format!("opening '{abs}' (it must not be a symbolic link)"))
}

/// Who holds the run lock now (`PID COMMAND`, as the holder wrote it), or
/// `None` when no run holds it (or there is no lock file). Looks with a
/// shared lock taken and let go at once, on the file opened read-only:
/// `status` writes nothing.
pub fn lock_holder(root: &Root) -> Result<Option<String>> {
    lock_holder_at(root, paths::LOCK_FILE)
}

/// Who holds lock file `abs` now, as [`lock_holder`] looks.
pub fn lock_holder_at(root: &Root, abs: &str) -> Result<Option<String>> {
    use nix::fcntl::{Flock, FlockArg};
    use std::io::Read;
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(root.path_nofollow(abs))
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(e).with_context(|| format!("opening '{abs}'"));
        }
    };
    match Flock::lock(file, FlockArg::LockSharedNonblock) {
        Ok(_free) => Ok(None),
        Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
            let mut text = String::new();
            file.read_to_string(&mut text)
                .with_context(|| format!("reading '{abs}'"))?;
            Ok(Some(text.trim().to_string()))
        }
        Err((_, errno)) => Err(anyhow::anyhow!("looking at the lock '{abs}': {errno}")),
    }
}

/// What [`write_lock_holder`] wrote (`PID COMMAND`): the holder's process id,
/// when it is a number, and its command.
pub fn parse_lock_holder(text: &str) -> (Option<u32>, &str) {
    let text = text.trim();
    let (pid, command) = text.split_once(' ').unwrap_or((text, ""));
    (pid.parse().ok(), command)
}

/// Records who holds the lock (`PID COMMAND`) in the locked file, for a
/// second run to name it.
pub fn write_lock_holder(file: &mut File, holder: &str) -> Result<()> {
    use std::io::{Seek, SeekFrom};
    file.set_len(0)
        .and_then(|()| file.seek(SeekFrom::Start(0)).map(|_| ()))
        .and_then(|()| writeln!(file, "{holder}"))
        .and_then(|()| file.sync_data())
        .context("writing the lock's holder into the lock file")
}

/// Makes our private directory `abs` (the state directory, the backups)
/// exist as a real directory, created with mode 0700: refuses a symbolic link
/// there (a file of ours is never reached through one) and, with `tighten`
/// (a directory that is ours alone), makes a looser mode 0700. A directory
/// the operator chose keeps its mode (our files in it are 0600 anyway).
pub fn ensure_private_dir(root: &Root, abs: &str, tighten: bool) -> Result<()> {
    if !check_private_dir(root, abs)? {
        return ensure_dir(root, abs, 0o700);
    }
    let host = root.path_nofollow(abs);
    if tighten {
        let mode = fs::symlink_metadata(&host)
            .with_context(|| format!("reading '{abs}'"))?
            .mode();
        if mode & 0o077 != 0 {
            fs::set_permissions(&host, fs::Permissions::from_mode(0o700))
                .with_context(|| format!("setting mode 0700 on '{abs}'"))?;
        }
    }
    Ok(())
}

/// Whether our private directory `abs` exists; a symbolic link or anything
/// but a directory there is refused ([`Fatal::BadInput`](crate::base::error::Fatal),
/// exit 2), before anything is written through it.
pub fn check_private_dir(root: &Root, abs: &str) -> Result<bool> {
    let host = root.path_nofollow(abs);
    match fs::symlink_metadata(&host) {
        Ok(meta) if meta.file_type().is_symlink() => {
            let target = fs::read_link(&host).unwrap_or_default();
            anyhow::bail!(crate::base::error::Fatal::BadInput(format!(
                "'{abs}' is a symbolic link (to '{}'): synnefo-upgrade keeps its state and backups only in a real directory; replace the link by a directory (mode 0700)",
                target.display()
            )))
        }
        Ok(meta) if meta.is_dir() => Ok(true),
        Ok(_) => anyhow::bail!(crate::base::error::Fatal::BadInput(format!(
            "'{abs}' is not a directory; move it away"
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("reading '{abs}'")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_recognised_through_context_and_partial_writes() {
        // /dev/full answers every write with ENOSPC.
        let full = OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .and_then(|mut f| f.write_all(b"x").and_then(|()| f.sync_all()));
        let Err(source) = full else {
            panic!("/dev/full accepted a write");
        };
        let err = anyhow::Error::new(PartialWrite {
            written: 5 << 20,
            source,
        })
        .context("writing '/var/backups/synnefo-upgrade/database.dump'");
        assert!(is_disk_full(&err));
        assert_eq!(written_before_full(&err), Some(5 << 20));
        let other = anyhow::Error::new(std::io::Error::from_raw_os_error(nix::libc::EACCES))
            .context("writing 'x'");
        assert!(!is_disk_full(&other));
        assert_eq!(written_before_full(&other), None);
    }

    #[test]
    fn root_resolves_absolute_paths_under_dir() {
        let root = Root::new("/tmp/r");
        assert_eq!(
            root.path("/etc/apt/sources.list"),
            Path::new("/tmp/r/etc/apt/sources.list")
        );
        assert!(!root.is_live());
        assert!(Root::new("/").is_live());
        assert_eq!(Root::new("/").path("/etc/x"), Path::new("/etc/x"));
    }

    #[test]
    fn write_from_command_failure_says_what_the_command_said_but_not_its_environment() {
        // A database server not up yet: pg_dump says so on stderr only, and
        // the backups step waits on that wording (actions::synnefo's list).
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let abs = Path::new("/var/backups/synnefo-upgrade/database.dump");
        let mut command = std::process::Command::new("sh");
        command
            .arg("-c")
            .arg("printf partial; echo 'pg_dump: error: connection to server at \"10.0.0.1\", port 5432 failed: Connection refused' >&2; exit 1")
            .env("PGPASSWORD", "s3cret-passw0rd");
        let err = format!(
            "{:#}",
            write_from_command(&root, abs, &mut command).unwrap_err()
        );
        assert!(err.contains("failed: Connection refused"), "{err}");
        assert!(err.contains("\"sh\" \"-c\""), "{err}");
        assert!(!err.contains("s3cret-passw0rd"), "{err}");
        assert!(!root.path(abs).exists(), "a failed dump left a file");

        // Success: stdout is the file, what stderr said does not fail it.
        let mut command = std::process::Command::new("sh");
        command.arg("-c").arg("printf dump; echo 'a warning' >&2");
        assert_eq!(write_from_command(&root, abs, &mut command).unwrap(), 4);
        assert_eq!(fs::read(root.path(abs)).unwrap(), b"dump");
    }

    #[test]
    fn read_tail_keeps_the_end() {
        let text = "a".repeat(10_000) + "the end";
        let kept = read_tail(text.as_bytes(), 100);
        assert_eq!(kept.len(), 100);
        assert!(kept.ends_with("the end"));
    }

    #[test]
    fn write_file_backs_up_once_and_keeps_mode() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let abs = Path::new("/etc/synnefo/10-db.conf");
        fs::create_dir_all(root.path("/etc/synnefo")).unwrap();
        fs::write(root.path(abs), b"original\n").unwrap();
        fs::set_permissions(root.path(abs), fs::Permissions::from_mode(0o640)).unwrap();

        write_file(&root, abs, b"first change\n", 0o644).unwrap();
        write_file(&root, abs, b"second change\n", 0o644).unwrap();

        assert_eq!(fs::read(root.path(abs)).unwrap(), b"second change\n");
        let mode = fs::metadata(root.path(abs)).unwrap().mode() & 0o7777;
        assert_eq!(mode, 0o640, "mode of the replaced file is kept");
        let backup = root.path(backup_path(abs));
        assert_eq!(
            fs::read(&backup).unwrap(),
            b"original\n",
            "first backup is the original"
        );

        assert!(restore(&root, abs).unwrap().is_some());
        assert_eq!(fs::read(root.path(abs)).unwrap(), b"original\n");
        assert_eq!(fs::metadata(root.path(abs)).unwrap().mode() & 0o7777, 0o640);
        assert!(!backup.exists());
    }

    #[test]
    fn resolve_follows_links_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        fs::create_dir_all(root.path("/etc/synnefo")).unwrap();
        fs::create_dir_all(root.path("/srv/conf")).unwrap();
        std::os::unix::fs::symlink("/srv/conf/real.conf", root.path("/etc/synnefo/a.conf"))
            .unwrap();
        std::os::unix::fs::symlink("a.conf", root.path("/etc/synnefo/b.conf")).unwrap();
        std::os::unix::fs::symlink("../../srv", root.path("/etc/synnefo/srv")).unwrap();
        std::os::unix::fs::symlink("loop", root.path("/etc/synnefo/loop")).unwrap();
        let r = |p: &str| root.resolve(Path::new(p));
        assert_eq!(
            r("/etc/synnefo/b.conf").unwrap(),
            Path::new("/srv/conf/real.conf")
        );
        assert_eq!(
            r("/etc/synnefo/srv/conf/x").unwrap(),
            Path::new("/srv/conf/x")
        );
        assert_eq!(
            r("/etc/synnefo/none.conf").unwrap(),
            Path::new("/etc/synnefo/none.conf")
        );
        assert!(r("/etc/synnefo/loop").is_err());
    }

    #[test]
    fn host_paths_keep_to_the_tree_and_follow_the_last_link_on_request() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let host = |rel: &str| dir.path().join(rel);
        fs::create_dir_all(host("etc/systemd")).unwrap();
        fs::create_dir_all(host("srv/units")).unwrap();
        // An absolute link to a host directory that exists outside the root.
        std::os::unix::fs::symlink(outside.path(), host("etc/systemd/system")).unwrap();
        let inside = root.path(outside.path()).join("x.service");
        assert_eq!(
            root.path("/etc/systemd/system/x.service"),
            inside,
            "an absolute link target is a node path"
        );
        std::os::unix::fs::symlink("/dev/null", host("etc/mask.service")).unwrap();
        assert_eq!(
            root.path_nofollow("/etc/mask.service"),
            host("etc/mask.service")
        );
        assert_eq!(root.path("/etc/mask.service"), host("dev/null"));
        // `..` never climbs above the root, in a path or in a link.
        assert_eq!(root.path("/../../etc/x"), host("etc/x"));
        std::os::unix::fs::symlink("../../../../..", host("srv/units/up")).unwrap();
        assert_eq!(root.path("/srv/units/up/etc"), host("etc"));
        // A loop reaches nothing: every call on it fails.
        std::os::unix::fs::symlink("/srv/loop", host("srv/loop")).unwrap();
        assert!(fs::metadata(root.path("/srv/loop/x")).is_err());
        assert!(ensure_dir(&root, "/srv/loop/x", 0o755).is_err());
        // The live root is the kernel's own resolution: joined only.
        assert_eq!(
            Root::new("/").path("/etc/systemd/system"),
            Path::new("/etc/systemd/system")
        );
    }

    #[test]
    fn reads_refuse_fifos_sockets_devices_and_directories_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        fs::create_dir_all(root.path("/etc/gunicorn.d/sub")).unwrap();
        nix::unistd::mkfifo(
            &root.path("/etc/gunicorn.d/fifo"),
            nix::sys::stat::Mode::from_bits_truncate(0o644),
        )
        .unwrap();
        let _socket =
            std::os::unix::net::UnixListener::bind(root.path("/etc/gunicorn.d/socket")).unwrap();
        std::os::unix::fs::symlink("fifo", root.path("/etc/gunicorn.d/to-fifo")).unwrap();
        for (name, kind) in [
            ("fifo", "a FIFO (named pipe)"),
            ("to-fifo", "a FIFO (named pipe)"),
            ("socket", "a socket"),
            ("sub", "a directory"),
        ] {
            let abs = format!("/etc/gunicorn.d/{name}");
            let err = read_file(&root, &abs).unwrap_err();
            assert_eq!(
                not_regular(&err).map(|n| n.kind),
                Some(kind),
                "{abs}: {err:#}"
            );
            assert_eq!(read_file_opt(&root, &abs).unwrap(), None, "{abs}");
            assert!(
                skipped().iter().any(|s| s.path == Path::new(&abs)),
                "{abs} is remembered for the report"
            );
        }
        let err = read_file(&Root::new("/"), "/dev/zero").unwrap_err();
        assert_eq!(
            not_regular(&err).map(|n| n.kind),
            Some("a character device")
        );
        assert_eq!(read_text_opt(&root, "/etc/gunicorn.d/none").unwrap(), None);
        fs::write(root.path("/etc/gunicorn.d/synnefo"), "CONFIG = {}\n").unwrap();
        assert_eq!(
            read_text(&root, "/etc/gunicorn.d/synnefo").unwrap(),
            "CONFIG = {}\n"
        );
    }

    #[test]
    fn a_link_written_through_stays_a_link_and_its_target_is_backed_up_and_restored() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let (link, target) = (Path::new("/etc/apt/x.list"), Path::new("/srv/apt/x.list"));
        fs::create_dir_all(root.path("/etc/apt")).unwrap();
        fs::create_dir_all(root.path("/srv/apt")).unwrap();
        fs::write(root.path(target), "wheezy\n").unwrap();
        std::os::unix::fs::symlink(target, root.path_nofollow(link)).unwrap();
        write_file(&root, link, b"jessie\n", 0o644).unwrap();
        assert_eq!(fs::read_link(root.path_nofollow(link)).unwrap(), target);
        assert_eq!(fs::read(root.path(target)).unwrap(), b"jessie\n");
        assert_eq!(
            fs::read(root.path(backup_path(target))).unwrap(),
            b"wheezy\n"
        );
        assert_eq!(undo(&root, link).unwrap().action, Action::Restored);
        assert_eq!(fs::read_link(root.path_nofollow(link)).unwrap(), target);
        assert_eq!(fs::read(root.path(target)).unwrap(), b"wheezy\n");
        // A link that leads nowhere is not written through (nor replaced).
        std::os::unix::fs::symlink("/srv/none", root.path_nofollow("/etc/apt/y.list")).unwrap();
        let err = write_file(&root, Path::new("/etc/apt/y.list"), b"x", 0o644).unwrap_err();
        assert!(
            format!("{err:#}").contains("which does not exist"),
            "{err:#}"
        );
        assert!(fs::symlink_metadata(root.path("/srv/none")).is_err());
    }

    #[test]
    fn rename_backs_up_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let (a, b) = (Path::new("/etc/x/site"), Path::new("/etc/x/site.conf"));
        fs::create_dir_all(root.path("/etc/x")).unwrap();
        fs::write(root.path(a), b"one\n").unwrap();
        rename(&root, a, b).unwrap();
        assert_eq!(fs::read(root.path(b)).unwrap(), b"one\n");
        assert_eq!(fs::read(root.path(backup_path(a))).unwrap(), b"one\n");
        fs::write(root.path(a), b"two\n").unwrap();
        assert!(rename(&root, a, b).is_err());
        assert_eq!(fs::read(root.path(b)).unwrap(), b"one\n");
    }

    /// Every entry under `dir`: file content and mode, or link target.
    fn tree(dir: &Path) -> std::collections::BTreeMap<PathBuf, String> {
        let mut out = std::collections::BTreeMap::new();
        let mut pending = vec![dir.to_path_buf()];
        while let Some(d) = pending.pop() {
            for entry in fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                let meta = fs::symlink_metadata(&path).unwrap();
                let rel = path.strip_prefix(dir).unwrap().to_path_buf();
                let what = if meta.file_type().is_symlink() {
                    format!("-> {}", fs::read_link(&path).unwrap().display())
                } else if meta.is_dir() {
                    pending.push(path.clone());
                    format!("dir {:o}", meta.mode() & 0o7777)
                } else {
                    format!(
                        "{:o} {}",
                        meta.mode() & 0o7777,
                        fs::read_to_string(&path).unwrap_or_default()
                    )
                };
                out.insert(rel, what);
            }
        }
        out
    }

    /// Node file `abs` under `root`, as text.
    fn text(root: &Root, abs: &str) -> String {
        fs::read_to_string(root.path(abs)).unwrap_or_else(|e| panic!("{abs}: {e}"))
    }

    #[test]
    fn undo_all_takes_back_renames_links_and_created_files_and_keeps_edits() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let p = Path::new;
        fs::create_dir_all(root.path_nofollow("/etc/x/enabled")).unwrap();
        fs::write(root.path_nofollow("/etc/x/site"), "site\n").unwrap();
        fs::write(root.path_nofollow("/etc/x/plain"), "plain\n").unwrap();
        fs::set_permissions(
            root.path_nofollow("/etc/x/plain"),
            fs::Permissions::from_mode(0o640),
        )
        .unwrap();
        std::os::unix::fs::symlink("../site", root.path_nofollow("/etc/x/enabled/site")).unwrap();
        let before = tree(dir.path());

        // A conversion: the site renamed and rewritten, its link following.
        rename(&root, p("/etc/x/site"), p("/etc/x/site.conf")).unwrap();
        write_file(&root, p("/etc/x/site.conf"), b"site converted\n", 0o644).unwrap();
        backup(&root, p("/etc/x/enabled/site")).unwrap();
        symlink(&root, p("/etc/x/enabled/site.conf"), p("../site.conf")).unwrap();
        remove(&root, p("/etc/x/enabled/site")).unwrap();
        // Files and links made, a file rewritten; a link of ours made twice is still ours.
        write_file(&root, p("/etc/x/new"), b"ours\n", 0o644).unwrap();
        write_file(&root, p("/etc/x/plain"), b"plain ours\n", 0o644).unwrap();
        symlink(&root, p("/etc/x/made"), p("/dev/null")).unwrap();
        symlink(&root, p("/etc/x/made"), p("/dev/zero")).unwrap();
        assert!(
            !root.path_nofollow(backup_path(p("/etc/x/made"))).exists(),
            "ours: no backup"
        );

        // The operator's edits since.
        fs::write(root.path_nofollow("/etc/x/site.conf"), "site edited\n").unwrap();
        fs::write(root.path_nofollow("/etc/x/plain"), "plain edited\n").unwrap();
        fs::remove_file(root.path_nofollow("/etc/x/made")).unwrap();
        std::os::unix::fs::symlink("/elsewhere", root.path_nofollow("/etc/x/made")).unwrap();

        let done = undo_all(&root).unwrap();
        let kept = |abs: &str| {
            done.iter()
                .find(|u| u.path == p(abs))
                .unwrap_or_else(|| panic!("{abs} not in {done:?}"))
                .kept
                .clone()
        };
        let Some(Kept::Copy(site_copy)) = kept("/etc/x/site.conf") else {
            panic!("{done:?}")
        };
        let Some(Kept::Copy(plain_copy)) = kept("/etc/x/plain") else {
            panic!("{done:?}")
        };
        assert_eq!(kept("/etc/x/made"), Some(Kept::Link("/elsewhere".into())));
        assert_eq!(kept("/etc/x/new"), None, "ours, unedited: no copy");
        assert_eq!(kept("/etc/x/enabled/site.conf"), None);
        assert_eq!(text(&root, &site_copy.to_string_lossy()), "site edited\n");
        assert_eq!(text(&root, &plain_copy.to_string_lossy()), "plain edited\n");
        assert!(site_copy.starts_with("/etc/x/") && plain_copy.starts_with("/etc/x/"));
        let name = plain_copy
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(
            name.starts_with("plain.synnefo-upgrade-kept-2") && name.ends_with('~'),
            "{name}"
        );
        assert_eq!(
            fs::metadata(root.path_nofollow(&plain_copy))
                .unwrap()
                .mode()
                & 0o7777,
            0o640,
            "the copy has the edited file's mode"
        );
        // Everything else is as it was.
        fs::remove_file(root.path_nofollow(&site_copy)).unwrap();
        fs::remove_file(root.path_nofollow(&plain_copy)).unwrap();
        let after = tree(dir.path());
        let ours = |t: std::collections::BTreeMap<PathBuf, String>| {
            t.into_iter()
                .filter(|(k, _)| !k.starts_with("var"))
                .collect::<std::collections::BTreeMap<_, _>>()
        };
        assert_eq!(ours(after), ours(before));
    }

    #[test]
    fn a_kept_edit_is_kept_once_and_a_write_cut_short_is_no_edit() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let abs = Path::new("/etc/apt/sources.list");
        fs::create_dir_all(root.path("/etc/apt")).unwrap();
        fs::write(root.path(abs), "wheezy\n").unwrap();
        write_file(&root, abs, b"jessie\n", 0o644).unwrap();
        fs::write(root.path(abs), "jessie, edited\n").unwrap();
        let changes = Changes::load(&root).unwrap();
        let first = keep_edit(&root, &changes, abs).unwrap();
        let again = keep_edit(&root, &changes, abs).unwrap();
        assert!(matches!(first, Some(Kept::Copy(_))), "{first:?}");
        assert_eq!(first, again, "a rerun reuses the copy");
        let copies = fs::read_dir(root.path("/etc/apt"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains(KEPT_MARK)
            })
            .count();
        assert_eq!(copies, 1);
        // Recorded, then a crash before the write: the file is the original, no edit.
        let other = Path::new("/etc/apt/sources.list.d/grnet.list");
        fs::create_dir_all(root.path("/etc/apt/sources.list.d")).unwrap();
        fs::write(root.path(other), "grnet wheezy\n").unwrap();
        backup(&root, other).unwrap();
        record_write(&root, other, b"grnet jessie\n").unwrap();
        let restored = restore(&root, other).unwrap().unwrap();
        assert_eq!(restored.kept, None);
        assert_eq!(
            text(&root, "/etc/apt/sources.list.d/grnet.list"),
            "grnet wheezy\n"
        );
        // Taken back, the record is dropped.
        undo_all(&root).unwrap();
        forget_changes(&root).unwrap();
        assert!(!root.path(CHANGES).exists() && !root.path(WRITTEN_DIR).exists());
        assert_eq!(text(&root, "/etc/apt/sources.list"), "wheezy\n");
    }

    #[test]
    fn a_directory_gets_its_owner_back() {
        // Changing an owner to another user needs root; the tests run as root
        // in the CI's containers and VMs.
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: not root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let abs = Path::new("/var/log/synnefo");
        fs::create_dir_all(root.path(abs)).unwrap();
        std::os::unix::fs::chown(root.path(abs), Some(0), Some(0)).unwrap();
        ensure_dir_owned(&root, abs, 0o755, 4242, 4243).unwrap();
        assert_eq!(fs::metadata(root.path(abs)).unwrap().uid(), 4242);
        let done = undo_all(&root).unwrap();
        assert_eq!(done.len(), 1, "{done:?}");
        assert_eq!(done[0].action, Action::OwnerBack);
        let meta = fs::metadata(root.path(abs)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (0, 0));
    }

    #[test]
    fn a_backed_up_link_is_read_from_where_it_was_and_restored_as_the_same_link() {
        use std::os::unix::fs::symlink as ln;
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        for d in ["/usr/sbin", "/usr/local/sbin", "/etc/site"] {
            fs::create_dir_all(root.path_nofollow(d)).unwrap();
        }
        fs::write(root.path_nofollow("/usr/local/sbin/site"), b"#!/bin/sh\n").unwrap();
        fs::write(root.path_nofollow("/etc/site/policy"), b"#!/bin/sh\n").unwrap();
        ln("/etc/site/policy", root.path_nofollow("/etc/site/current")).unwrap();
        // (link at, its target, what it designates from where it is)
        let cases = [
            ("/usr/sbin/a", "../local/sbin/site", "/usr/local/sbin/site"),
            (
                "/usr/sbin/b",
                "/usr/local/sbin/site",
                "/usr/local/sbin/site",
            ),
            ("/usr/sbin/c", "../../etc/site/current", "/etc/site/policy"),
            ("/usr/sbin/d", "a", "/usr/local/sbin/site"),
            ("/usr/sbin/e", "../local/sbin/gone", "/usr/local/sbin/gone"),
        ];
        // An owner of their own, where we may give one (as root).
        let owner = if nix::unistd::geteuid().is_root() {
            (1234, 1235)
        } else {
            (
                nix::unistd::geteuid().as_raw(),
                nix::unistd::getegid().as_raw(),
            )
        };
        for (at, target, _) in cases {
            ln(target, root.path_nofollow(at)).unwrap();
            std::os::unix::fs::lchown(root.path_nofollow(at), Some(owner.0), Some(owner.1))
                .unwrap();
        }
        for (at, target, designates) in cases {
            let at = Path::new(at);
            assert_eq!(backup_designates(&root, at).unwrap(), None);
            assert!(backup(&root, at).unwrap());
            let kept = root.path_nofollow(backup_path(at));
            assert_eq!(fs::read_link(&kept).unwrap(), Path::new(target), "verbatim");
            let meta = fs::symlink_metadata(&kept).unwrap();
            assert_eq!((meta.uid(), meta.gid()), owner);
            assert_eq!(
                backup_designates(&root, at).unwrap().as_deref(),
                Some(Path::new(designates)),
                "{at:?} -> {target}"
            );
        }
        for (at, _, _) in cases {
            symlink(&root, Path::new(at), Path::new("/usr/sbin/synnefo-upgrade")).unwrap();
        }
        for (at, target, _) in cases {
            assert!(restore(&root, Path::new(at)).unwrap().is_some());
            assert_eq!(
                fs::read_link(root.path_nofollow(at)).unwrap(),
                Path::new(target)
            );
            let meta = fs::symlink_metadata(root.path_nofollow(at)).unwrap();
            assert_eq!((meta.uid(), meta.gid()), owner, "{at}: its owner");
        }
        // A backed-up file designates itself, in the backup directory.
        let file = Path::new("/etc/site/policy");
        backup(&root, file).unwrap();
        assert_eq!(
            backup_designates(&root, file).unwrap(),
            Some(backup_path(file))
        );
    }

    #[test]
    fn read_own_text_refuses_links_fifos_and_directories_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        fs::create_dir_all(root.path("/var/lib/x")).unwrap();
        fs::write(root.path("/var/lib/x/file"), b"text\n").unwrap();
        assert_eq!(
            read_own_text(&root, "/var/lib/x/file").unwrap().as_deref(),
            Some("text\n")
        );
        std::os::unix::fs::symlink("file", root.path("/var/lib/x/link")).unwrap();
        nix::unistd::mkfifo(&root.path("/var/lib/x/fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        fs::create_dir(root.path("/var/lib/x/dir")).unwrap();
        assert!(read_own_text(&root, "/var/lib/x/link").is_err());
        for (name, what) in [("fifo", "a FIFO"), ("dir", "a directory")] {
            let err = read_own_text(&root, &format!("/var/lib/x/{name}")).unwrap_err();
            assert!(format!("{err:#}").contains(what), "{err:#}");
        }
        // Appending: a FIFO without a reader is refused at once (ENXIO), one
        // with a reader as a FIFO.
        assert!(open_append(&root, "/var/lib/x/fifo").is_err());
        let _reader = OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(root.path("/var/lib/x/fifo"))
            .unwrap();
        let err = open_append(&root, "/var/lib/x/fifo").unwrap_err();
        assert!(format!("{err:#}").contains("a FIFO"), "{err:#}");
        assert!(open_append(&root, "/var/lib/x/link").is_err());
        assert_eq!(read_own_text(&root, "/var/lib/x/none").unwrap(), None);
    }

    #[test]
    fn symlink_is_idempotent_and_remove_tolerates_absence() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let mask = Path::new("/etc/systemd/system/gunicorn.service");
        symlink(&root, mask, Path::new("/dev/null")).unwrap();
        symlink(&root, mask, Path::new("/dev/null")).unwrap();
        assert_eq!(
            fs::read_link(root.path_nofollow(mask)).unwrap(),
            Path::new("/dev/null")
        );
        remove(&root, mask).unwrap();
        remove(&root, mask).unwrap();
        assert!(fs::symlink_metadata(root.path_nofollow(mask)).is_err());
    }
}

/// A private scratch directory outside the node (`/run`, else the temporary
/// directory), removed with everything in it when dropped. For state that is
/// not the node's: the dist-upgrade simulation's own APT lists and cache
/// ([`crate::findings::aptsim`]). It is never under `--root`, nor under the node's
/// `/etc` or `/var`.
#[derive(Debug)]
pub struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    /// Creates a new directory, mode 0700, named for `purpose`.
    pub fn new(purpose: &str) -> Result<Scratch> {
        use std::os::unix::fs::DirBuilderExt;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!("synnefo-upgrade-{purpose}.{}.{nanos}", std::process::id());
        let mut last = None;
        for base in [PathBuf::from("/run"), std::env::temp_dir()] {
            let dir = base.join(&name);
            match fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => return Ok(Scratch { dir }),
                Err(e) => last = Some(format!("'{}': {e}", dir.display())),
            }
        }
        anyhow::bail!("creating a scratch directory: {}", last.unwrap_or_default())
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Writes `rel` (relative, parents created) with `content`.
    pub fn write(&self, rel: &str, content: &[u8]) -> Result<PathBuf> {
        let path = self.dir.join(rel.trim_start_matches('/'));
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .with_context(|| format!("creating '{}'", parent.display()))?;
        }
        fs::write(&path, content).with_context(|| format!("writing '{}'", path.display()))?;
        Ok(path)
    }

    /// Creates the directory `rel` (and its parents).
    pub fn dir(&self, rel: &str) -> Result<PathBuf> {
        let path = self.dir.join(rel.trim_start_matches('/'));
        fs::create_dir_all(&path).with_context(|| format!("creating '{}'", path.display()))?;
        Ok(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            log::warn!("removing scratch directory '{}': {e}", self.dir.display());
        }
    }
}
