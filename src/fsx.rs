//! The only module that writes files.
//!
//! It owns `--root` resolution ([`Root`]) and every change to the file system:
//! atomic replace (temporary file in the target's directory, owner and mode set,
//! `fsync`, `rename`, `fsync` of the directory), a backup of the original first,
//! symlinks (masks, enable links), removals and the append-only ledger.
//! Other modules read freely but ask this one to write.

use anyhow::{Context, Result};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use crate::paths;

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
/// is the original and is never overwritten. Mode and owner are kept; a
/// symbolic link `abs` is backed up as the link. The backup directory must
/// be a real directory ([`ensure_private_dir`]).
/// Returns false when there was nothing to back up.
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
    if let Some(parent) = dest_abs.parent() {
        ensure_dir(root, &parent.to_string_lossy(), 0o700)?;
    }
    if meta.file_type().is_symlink() {
        let target =
            fs::read_link(&host).with_context(|| format!("reading link '{}'", abs.display()))?;
        std::os::unix::fs::symlink(&target, &dest)
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
    Ok(true)
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
    fs::rename(&host_from, &host_to)
        .with_context(|| format!("renaming '{}' to '{}'", from.display(), to.display()))?;
    sync_parent(&host_to)
}

/// Makes directory `abs` exist (new: `mode`) and be owned by `uid:gid`
/// (numeric ids; an existing directory keeps its mode).
pub fn ensure_dir_owned(root: &Root, abs: &Path, mode: u32, uid: u32, gid: u32) -> Result<()> {
    ensure_dir(root, &abs.to_string_lossy(), mode)?;
    let host = root.path(abs);
    let meta = fs::metadata(&host).with_context(|| format!("reading '{}'", abs.display()))?;
    if (meta.uid(), meta.gid()) != (uid, gid) {
        std::os::unix::fs::chown(&host, Some(uid), Some(gid))
            .with_context(|| format!("changing the owner of '{}' to {uid}:{gid}", abs.display()))?;
    }
    Ok(())
}

/// Puts the backup of `abs` back in place, byte for byte with mode and owner,
/// and drops the backup. Returns false when there is no backup.
pub fn restore(root: &Root, abs: &Path) -> Result<bool> {
    let backup_abs = backup_path(abs);
    let backup_host = root.path_nofollow(&backup_abs);
    let meta = match fs::symlink_metadata(&backup_host) {
        Ok(m) => m,
        Err(_) => return Ok(false),
    };
    let host = root.path_nofollow(abs);
    if meta.file_type().is_symlink() {
        let target = fs::read_link(&backup_host)
            .with_context(|| format!("reading backup of '{}'", abs.display()))?;
        let _ = fs::remove_file(&host);
        std::os::unix::fs::symlink(&target, &host)
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
    Ok(true)
}

/// Opens an append-only log of ours (the denied-action ledger, the log file),
/// creating it 0600; never through a symbolic link (`O_NOFOLLOW`).
pub fn open_append(root: &Root, abs: &str) -> Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(root.path_nofollow(abs))
        .with_context(|| format!("opening '{abs}' (it must not be a symbolic link)"))
}

/// Appends one line to an append-only log of ours (see [`open_append`]).
pub fn append_line(root: &Root, abs: &str, line: &str) -> Result<()> {
    let mut file = open_append(root, abs)?;
    writeln!(file, "{line}").with_context(|| format!("appending to '{abs}'"))
}

/// Undoes our change of node path `abs`: the original comes back from its
/// backup when there is one (we modified or replaced it; for a link we wrote
/// through, the backup of the file it leads to), otherwise the path is
/// removed (we created it). Returns what was done, for reports.
pub fn undo(root: &Root, abs: &Path) -> Result<&'static str> {
    if restore(root, abs)? {
        return Ok("restored");
    }
    let real = root.resolve(abs)?;
    if real != root.resolve_nofollow(abs)? && restore(root, &real)? {
        Ok("restored")
    } else if fs::symlink_metadata(root.path_nofollow(abs)).is_ok() {
        remove(root, abs)?;
        Ok("removed")
    } else {
        Ok("absent")
    }
}

/// Restores every backup (see [`restore`]); returns the node paths restored.
pub fn restore_all(root: &Root) -> Result<Vec<PathBuf>> {
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
    let mut restored = Vec::new();
    for host in found {
        let Ok(rel) = host.strip_prefix(&base) else {
            continue;
        };
        let abs = Path::new("/").join(rel);
        if restore(root, &abs)? {
            restored.push(abs);
        }
    }
    Ok(restored)
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
    let mut written = 0u64;
    replace_atomically(&host, |file| {
        let mut child = command
            .stdout(std::process::Stdio::piped())
            .stdin(std::process::Stdio::null())
            .spawn()
            .with_context(|| format!("running {command:?}"))?;
        let mut out = child.stdout.take().context("no stdout pipe")?;
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
            .with_context(|| format!("waiting for {command:?}"))?;
        copied?;
        if !status.success() {
            anyhow::bail!("{command:?} failed ({status})");
        }
        file.sync_all()
            .map_err(|source| PartialWrite { written, source })?;
        Ok(())
    })
    .with_context(|| format!("writing '{}'", abs.display()))?;
    Ok(written)
}

/// Opens (creating) the lock file, for the runner's `flock`; never through a
/// symbolic link. The first thing a run that writes does: a state or backup
/// directory that is a link is refused here, before anything is written.
pub fn open_lock(root: &Root) -> Result<File> {
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
        .open(root.path_nofollow(paths::LOCK_FILE))
        .with_context(|| {
            format!(
                "opening '{}' (it must not be a symbolic link)",
                paths::LOCK_FILE
            )
        })
}

/// Records who holds the lock (`PID COMMAND`) in the locked file, for a
/// second run to name it.
pub fn write_lock_holder(file: &mut File, holder: &str) -> Result<()> {
    use std::io::{Seek, SeekFrom};
    file.set_len(0)
        .and_then(|()| file.seek(SeekFrom::Start(0)).map(|_| ()))
        .and_then(|()| writeln!(file, "{holder}"))
        .and_then(|()| file.sync_data())
        .with_context(|| format!("writing '{}'", paths::LOCK_FILE))
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
/// but a directory there is refused ([`Fatal::BadInput`](crate::error::Fatal),
/// exit 2), before anything is written through it.
pub fn check_private_dir(root: &Root, abs: &str) -> Result<bool> {
    let host = root.path_nofollow(abs);
    match fs::symlink_metadata(&host) {
        Ok(meta) if meta.file_type().is_symlink() => {
            let target = fs::read_link(&host).unwrap_or_default();
            anyhow::bail!(crate::error::Fatal::BadInput(format!(
                "'{abs}' is a symbolic link (to '{}'): synnefo-upgrade keeps its state and backups only in a real directory; replace the link by a directory (mode 0700)",
                target.display()
            )))
        }
        Ok(meta) if meta.is_dir() => Ok(true),
        Ok(_) => anyhow::bail!(crate::error::Fatal::BadInput(format!(
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

        assert!(restore(&root, abs).unwrap());
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
        assert_eq!(undo(&root, link).unwrap(), "restored");
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
/// ([`crate::aptsim`]). It is never under `--root`, nor under the node's
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
