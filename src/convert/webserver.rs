//! The web server in front of gunicorn, and Synnefo's log directory.
//!
//! - Apache 2.4 (jessie) includes only `*.conf` from `sites-enabled/`: every
//!   site in `sites-available/` without the suffix is renamed to `NAME.conf`,
//!   and every `sites-enabled/` link (or file) follows: `NAME.conf`, pointing at
//!   the renamed site, in the same relative or absolute form. When `NAME.conf`
//!   exists already, both are left alone with a warning.
//! - Apache 2.4 no longer reads `conf.d/`: every file there moves to
//!   `conf-available/NAME.conf` (a name ending in `.conf` keeps it, once) and
//!   is enabled by a `conf-enabled/NAME.conf -> ../conf-available/NAME.conf`
//!   link, as `a2enconf` makes it (a `conf.d/` link becomes a
//!   `conf-available/` link to the same file). When the destination exists
//!   already, the file is left alone with a warning.
//! - gunicorn 19 reads `X-Forwarded-Proto`, not `X-Forwarded-Protocol`: the
//!   header is renamed wherever Apache and nginx read it ([`super::webconf`]),
//!   in the files as these renames leave them.
//! - `/var/log/synnefo` (Synnefo 0.19 logs to `synnefo.log` there) exists and
//!   belongs to the `synnefo` user, ids read from `/etc/passwd`.

use anyhow::Result;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

use super::{
    is_leftover, list_dir, owner, passwd_ids, read_through, split_lines, webconf, Change,
    Conversion,
};
use crate::base::error::Fatal;
use crate::base::exec::shell_word;
use crate::base::fsx::Root;

/// Apache's sites.
pub const APACHE_AVAILABLE: &str = "/etc/apache2/sites-available";
/// Apache's enabled sites (links, as `a2ensite` makes them).
pub const APACHE_ENABLED: &str = "/etc/apache2/sites-enabled";
/// Apache 2.2's configuration snippets, not read by Apache 2.4.
pub const APACHE_CONF_D: &str = "/etc/apache2/conf.d";
/// Apache 2.4's configuration snippets.
pub const APACHE_CONF_AVAILABLE: &str = "/etc/apache2/conf-available";
/// Apache 2.4's enabled snippets (links, as `a2enconf` makes them).
pub const APACHE_CONF_ENABLED: &str = "/etc/apache2/conf-enabled";
/// Synnefo's log directory.
pub const LOG_DIR: &str = "/var/log/synnefo";

/// Adds the web server and log directory changes to `out`.
pub fn plan(root: &Root, out: &mut Conversion) -> Result<()> {
    let available = Path::new(APACHE_AVAILABLE);
    let enabled = Path::new(APACHE_ENABLED);
    // Sites to rename: name -> name.conf.
    let mut renamed: BTreeMap<OsString, OsString> = BTreeMap::new();
    for name in list_dir(root, available)? {
        if is_leftover(name.as_bytes()) || name.as_bytes().ends_with(b".conf") {
            continue;
        }
        let from = available.join(&name);
        if read_through(root, &from)?.is_none() {
            continue;
        }
        let new_name = with_conf(&name);
        let to = available.join(&new_name);
        if fs::symlink_metadata(root.path_nofollow(&to)).is_ok() {
            both_exist(out, &from, &to);
        } else {
            out.changes.push(Change::Rename { from, to });
            renamed.insert(name.clone(), new_name);
        }
    }
    conf_d(root, out)?;
    for name in list_dir(root, enabled)? {
        if is_leftover(name.as_bytes()) {
            continue;
        }
        let from = enabled.join(&name);
        let to = enabled.join(with_conf(&name));
        let needs_suffix = !name.as_bytes().ends_with(b".conf");
        match fs::read_link(root.path_nofollow(&from)) {
            Ok(target) => {
                let points = lexical(&enabled.join(&target));
                let site = points
                    .parent()
                    .filter(|p| *p == available)
                    .and_then(|_| points.file_name())
                    .and_then(|n| renamed.get(n));
                let new_target = match site {
                    Some(new_name) => target.with_file_name(new_name),
                    None => target.clone(),
                };
                if new_target == target && !needs_suffix {
                    continue;
                }
                let to = if needs_suffix { to } else { from.clone() };
                if to != from && fs::symlink_metadata(root.path_nofollow(&to)).is_ok() {
                    both_exist(out, &from, &to);
                    continue;
                }
                out.changes.push(Change::Relink {
                    from,
                    to,
                    target: new_target,
                });
            }
            Err(_) if needs_suffix && fs::metadata(root.path(&from)).is_ok_and(|m| m.is_file()) => {
                if fs::symlink_metadata(root.path_nofollow(&to)).is_ok() {
                    both_exist(out, &from, &to);
                    continue;
                }
                out.changes.push(Change::Rename { from, to });
            }
            Err(_) => {}
        }
    }
    webconf::plan(root, out)?;
    log_dir(root, out)
}

/// Moves every `conf.d/` file to `conf-available/NAME.conf`, enabled by a
/// `conf-enabled/` link.
fn conf_d(root: &Root, out: &mut Conversion) -> Result<()> {
    let conf_d = Path::new(APACHE_CONF_D);
    for name in list_dir(root, conf_d)? {
        if is_leftover(name.as_bytes()) {
            continue;
        }
        let from = conf_d.join(&name);
        let Some(loaded) = read_through(root, &from)? else {
            continue;
        };
        let new_name = if name.as_bytes().ends_with(b".conf") {
            name.clone()
        } else {
            with_conf(&name)
        };
        let to = Path::new(APACHE_CONF_AVAILABLE).join(&new_name);
        if fs::symlink_metadata(root.path_nofollow(&to)).is_ok() {
            out.warnings.push(format!(
                "'{}' and '{}' both exist; '{}' left alone (Apache 2.4 does not read conf.d)",
                from.display(),
                to.display(),
                from.display()
            ));
            continue;
        }
        if let Ok(target) = fs::read_link(root.path_nofollow(&from)) {
            // conf.d and conf-available are siblings: an absolute target, or
            // one that leaves the directory first, leads to the same file from
            // either; any other leads there by its absolute path.
            let keeps =
                target.is_absolute() || target.components().next() == Some(Component::ParentDir);
            out.changes.push(Change::Relink {
                from: from.clone(),
                to: to.clone(),
                target: if keeps { target } else { loaded.real.clone() },
            });
        } else {
            out.changes.push(Change::Rename {
                from: from.clone(),
                to: to.clone(),
            });
        }
        let link = Path::new(APACHE_CONF_ENABLED).join(&new_name);
        let target = Path::new("../conf-available").join(&new_name);
        if fs::read_link(root.path_nofollow(&link)).ok().as_ref() != Some(&target) {
            if fs::symlink_metadata(root.path_nofollow(&link)).is_ok() {
                out.warnings.push(format!(
                    "'{}' exists and is not a link to '{}': enable it by hand ('a2enconf {}')",
                    link.display(),
                    target.display(),
                    shell_word(Path::new(&new_name).with_extension(""))
                ));
            } else {
                out.changes.push(Change::Link { path: link, target });
            }
        }
    }
    Ok(())
}

/// Apache 2.4's module that still understands 2.2's `Order`/`Allow`/`Deny`.
pub const ACCESS_COMPAT_LOAD: &str = "/etc/apache2/mods-enabled/access_compat.load";

/// Apache 2.2 access control directives (`Order`, `Allow`, `Deny`, any case,
/// not in comments) in `src`: 1-based line and the directive as written.
pub fn old_access_directives(src: &[u8]) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, line) in split_lines(src).into_iter().enumerate() {
        let Some(&(s, e)) = words(line).first() else {
            continue;
        };
        let word = &line[s..e];
        if [&b"Order"[..], b"Allow", b"Deny"]
            .iter()
            .any(|d| word.eq_ignore_ascii_case(d))
        {
            out.push((i + 1, String::from_utf8_lossy(word).into_owned()));
        }
    }
    out
}

/// `apache-access-compat`: 2.2 access control in the Apache configuration
/// while `mod_access_compat` is not enabled (Apache 2.4 refuses to start).
pub fn access_findings(root: &Root) -> Vec<crate::base::finding::Finding> {
    if fs::symlink_metadata(root.path_nofollow(ACCESS_COMPAT_LOAD)).is_ok() {
        return Vec::new();
    }
    let mut hits = Vec::new();
    let mut seen = BTreeSet::new();
    for dir in [
        APACHE_AVAILABLE,
        APACHE_ENABLED,
        APACHE_CONF_D,
        APACHE_CONF_AVAILABLE,
    ] {
        let dir = Path::new(dir);
        for name in list_dir(root, dir).unwrap_or_default() {
            if is_leftover(name.as_bytes()) {
                continue;
            }
            let Ok(Some(loaded)) = read_through(root, &dir.join(&name)) else {
                continue;
            };
            if !seen.insert(loaded.real.clone()) {
                continue;
            }
            for (line, word) in old_access_directives(&loaded.bytes) {
                hits.push(format!("{}:{line} ({word})", loaded.shown.display()));
            }
        }
    }
    if hits.is_empty() {
        return Vec::new();
    }
    vec![crate::base::finding::Finding::new(
        "apache-access-compat",
        crate::base::finding::Severity::Medium,
        "Apache 2.2 access control (Order/Allow/Deny) without mod_access_compat",
        format!(
            "Apache 2.4 on jessie does not know these directives unless mod_access_compat is enabled: {}",
            hits.join(", ")
        ),
        "replace them by Apache 2.4's 'Require' ('Order allow,deny' + 'Allow from all' becomes 'Require all granted'; 'Deny from all' becomes 'Require all denied'), or enable the compatibility module after the dist-upgrade",
    )
    .commands(["a2enmod access_compat".to_string()])]
}

/// Warns that `from` stays because `to`, its `.conf` name, exists already.
fn both_exist(out: &mut Conversion, from: &Path, to: &Path) {
    out.warnings.push(format!(
        "'{}' and '{}' both exist; '{}' left alone (Apache 2.4 reads only *.conf)",
        from.display(),
        to.display(),
        from.display()
    ));
}

fn with_conf(name: &OsString) -> OsString {
    let mut bytes = name.as_bytes().to_vec();
    bytes.extend_from_slice(b".conf");
    OsString::from_vec(bytes)
}

/// `p` with `.` and `..` resolved lexically.
pub(super) fn lexical(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    out
}

/// Words of a line with their byte ranges; a quoted word is one word.
fn words(line: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < line.len() {
        if line[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        if line[i] == b'"' || line[i] == b'\'' {
            let q = line[i];
            i += 1;
            while i < line.len() && line[i] != q {
                i += if line[i] == b'\\' { 2 } else { 1 };
            }
            i = (i + 1).min(line.len());
        } else {
            while i < line.len() && !line[i].is_ascii_whitespace() && line[i] != b';' {
                i += 1;
            }
            if i == start {
                i += 1;
            }
        }
        out.push((start, i));
    }
    out
}

/// `/var/log/synnefo` present and owned by the synnefo user.
fn log_dir(root: &Root, out: &mut Conversion) -> Result<()> {
    let Some((uid, gid)) = passwd_ids(root, "synnefo")? else {
        if Path::new(&root.path(super::settings::SETTINGS_DIR)).is_dir() {
            out.warnings.push(format!(
                "no 'synnefo' user in /etc/passwd: {LOG_DIR} left as it is"
            ));
        }
        return Ok(());
    };
    let path = PathBuf::from(LOG_DIR);
    match fs::metadata(root.path(&path)) {
        Ok(m) if !m.is_dir() => {
            Err(Fatal::BadInput(format!("{LOG_DIR} exists and is not a directory")).into())
        }
        Ok(_) if owner(root, &path) == Some((uid, gid)) => Ok(()),
        Ok(_) => {
            out.changes.push(Change::OwnDir {
                path,
                uid,
                gid,
                create: false,
            });
            Ok(())
        }
        Err(_) => {
            out.changes.push(Change::OwnDir {
                path,
                uid,
                gid,
                create: true,
            });
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_access_directives_any_case_not_in_comments() {
        let src = b"<Directory /x>\n  Order allow,deny\r\n\tallow from all\n  # Deny from all\n  AllowOverride None\n  DENY from 10.0.0.1\n  Require all granted\n</Directory>\n";
        assert_eq!(
            old_access_directives(src),
            vec![
                (2, "Order".to_string()),
                (3, "allow".to_string()),
                (6, "DENY".to_string())
            ]
        );
        assert!(old_access_directives(b"Orderly x\n#Order allow,deny\n").is_empty());
    }

    #[test]
    fn lexical_paths() {
        assert_eq!(
            lexical(Path::new("/etc/apache2/sites-enabled/../sites-available/x")),
            Path::new("/etc/apache2/sites-available/x")
        );
    }
}
