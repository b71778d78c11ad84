//! dpkg's database: `/var/lib/dpkg/status` (paragraphs of `Field: value` with
//! continuation lines) and Debian version ordering (`deb-version(7)`).
//!
//! Read-only.

use anyhow::{Context, Result};
use std::cmp::Ordering;

use crate::fsx::Root;

/// dpkg's status file.
pub const STATUS_FILE: &str = "/var/lib/dpkg/status";

/// One package of the status file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// `Package:`.
    pub name: String,
    /// `Version:` (may be empty for packages never installed).
    pub version: String,
    /// The state word of `Status:` (`installed`, `config-files`, `unpacked`, ...).
    pub state: String,
    /// `Source:` without a version, or the package name.
    pub source: String,
    /// `Installed-Size:` in KiB (0 when absent).
    pub installed_size_kib: u64,
}

impl Package {
    /// Whether the package's files are on the system (anything but
    /// `not-installed` and `config-files`).
    pub fn is_present(&self) -> bool {
        !matches!(self.state.as_str(), "not-installed" | "config-files" | "")
    }

    /// The upstream part of the version: without epoch and Debian revision.
    pub fn upstream_version(&self) -> &str {
        upstream(&self.version)
    }
}

/// The upstream part of a Debian version (`1:0.18.1-1~wheezy` → `0.18.1`).
pub fn upstream(version: &str) -> &str {
    let no_epoch = version.split_once(':').map_or(version, |(_, rest)| rest);
    no_epoch.rsplit_once('-').map_or(no_epoch, |(up, _)| up)
}

/// Parses the text of a status file. Malformed paragraphs (no `Package:`) are skipped.
pub fn parse_status(text: &str) -> Vec<Package> {
    let mut packages = Vec::new();
    for paragraph in text.split("\n\n") {
        let mut name = None;
        let mut version = String::new();
        let mut state = String::new();
        let mut source = None;
        let mut installed_size_kib = 0;
        for line in paragraph.lines() {
            if line.starts_with([' ', '\t']) {
                continue; // continuation of a multi-line field
            }
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match key {
                "Package" => name = Some(value.to_string()),
                "Version" => version = value.to_string(),
                "Status" => {
                    state = value
                        .split_whitespace()
                        .nth(2)
                        .unwrap_or_default()
                        .to_string()
                }
                "Source" => source = value.split_whitespace().next().map(str::to_string),
                "Installed-Size" => installed_size_kib = value.parse().unwrap_or(0),
                _ => {}
            }
        }
        if let Some(name) = name {
            let source = source.unwrap_or_else(|| name.clone());
            packages.push(Package {
                name,
                version,
                state,
                source,
                installed_size_kib,
            });
        }
    }
    packages
}

/// The packages whose files are present on the node under `root`.
pub fn present_packages(root: &Root) -> Result<Vec<Package>> {
    let text = std::fs::read_to_string(root.path(STATUS_FILE))
        .with_context(|| format!("reading '{STATUS_FILE}'"))?;
    Ok(parse_status(&text)
        .into_iter()
        .filter(Package::is_present)
        .collect())
}

/// Order of a character in the non-digit parts of a version: `~` first, then
/// the end of the part, then letters, then everything else.
fn char_order(c: Option<u8>) -> i32 {
    match c {
        Some(b'~') => -1,
        None => 0,
        Some(c) if c.is_ascii_alphabetic() => c as i32,
        Some(c) => c as i32 + 256,
    }
}

/// Compares two version fragments (upstream or revision) the dpkg way.
fn compare_fragment(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        // Non-digit prefix.
        while (i < a.len() && !a[i].is_ascii_digit()) || (j < b.len() && !b[j].is_ascii_digit()) {
            let ca = (i < a.len() && !a[i].is_ascii_digit()).then(|| a[i]);
            let cb = (j < b.len() && !b[j].is_ascii_digit()).then(|| b[j]);
            let order = char_order(ca).cmp(&char_order(cb));
            if order != Ordering::Equal {
                return order;
            }
            i += usize::from(ca.is_some());
            j += usize::from(cb.is_some());
        }
        // Digit run, compared numerically (leading zeros ignored).
        let start_a = i;
        while i < a.len() && a[i].is_ascii_digit() {
            i += 1;
        }
        let start_b = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        let da = std::str::from_utf8(&a[start_a..i])
            .unwrap_or("")
            .trim_start_matches('0');
        let db = std::str::from_utf8(&b[start_b..j])
            .unwrap_or("")
            .trim_start_matches('0');
        let order = da.len().cmp(&db.len()).then_with(|| da.cmp(db));
        if order != Ordering::Equal {
            return order;
        }
    }
    Ordering::Equal
}

/// Compares two Debian versions (`[epoch:]upstream[-revision]`).
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let split = |v: &str| -> (u64, String, String) {
        let (epoch, rest) = match v.split_once(':') {
            Some((e, r)) if e.chars().all(|c| c.is_ascii_digit()) => (e.parse().unwrap_or(0), r),
            _ => (0, v),
        };
        let (up, rev) = rest.rsplit_once('-').unwrap_or((rest, ""));
        (epoch, up.to_string(), rev.to_string())
    };
    let (ea, ua, ra) = split(a);
    let (eb, ub, rb) = split(b);
    ea.cmp(&eb)
        .then_with(|| compare_fragment(&ua, &ub))
        .then_with(|| compare_fragment(&ra, &rb))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "\
Package: snf-common
Status: install ok installed
Priority: optional
Section: python
Installed-Size: 321
Maintainer: Synnefo development team <synnefo-devel@googlegroups.com>
Architecture: all
Source: synnefo
Version: 0.18.1-1~wheezy
Depends: python (>= 2.6.6-7~), python-support (>= 0.90.0)
Conffiles:
 /etc/synnefo/00-snf-common-admins.conf 5f1c2e6e4b0c3a0f1d2e3c4b5a697887
Description: Common Synnefo library
 Synnefo is a suite of open source cloud software.
 .
 Package: not-a-real-field

Package: snf-cyclades-app
Status: deinstall ok config-files
Priority: optional
Source: synnefo (0.17-1)
Version: 0.17-1~wheezy

Package: gunicorn
Status: install ok installed
Version: 0.14.5-3+deb7u1

Package: libc6
Status: install ok unpacked
Multi-Arch: same
Version: 2.13-38+deb7u10
";

    #[test]
    fn parses_paragraphs_continuations_and_states() {
        let packages = parse_status(STATUS);
        let names: Vec<&str> = packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["snf-common", "snf-cyclades-app", "gunicorn", "libc6"]
        );
        assert_eq!(packages[0].source, "synnefo");
        assert_eq!(packages[0].installed_size_kib, 321);
        assert_eq!(packages[0].upstream_version(), "0.18.1");
        assert!(packages[0].is_present());
        assert_eq!(packages[1].source, "synnefo");
        assert!(!packages[1].is_present(), "config-files only");
        assert_eq!(packages[2].source, "gunicorn");
        assert!(packages[3].is_present(), "unpacked counts as present");
    }

    #[test]
    fn debian_version_ordering() {
        use Ordering::*;
        let cases = [
            ("0.18.1-1~wheezy", "0.18.1-1", Less),
            ("0.18.1-1", "0.18.1-1", Equal),
            ("0.19-1~jessie", "0.18.1-1~wheezy", Greater),
            ("1:0.1", "0.99", Greater),
            ("0.18.1~rc1", "0.18.1", Less),
            ("0.18.1", "0.18.1a", Less),
            ("0.18.1+deb7u1", "0.18.1a", Greater),
            ("1.0010", "1.10", Equal),
            ("2.13-38+deb7u10", "2.13-38+deb7u9", Greater),
        ];
        for (a, b, want) in cases {
            assert_eq!(compare_versions(a, b), want, "{a} vs {b}");
            assert_eq!(compare_versions(b, a), want.reverse(), "{b} vs {a}");
        }
        assert_eq!(upstream("1:0.18.1-1~wheezy"), "0.18.1");
        assert_eq!(upstream("0.18.1"), "0.18.1");
        assert_eq!(upstream("1.2-3-4"), "1.2-3");
    }
}
