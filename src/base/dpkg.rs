//! dpkg's database: `/var/lib/dpkg/status` (paragraphs of `Field: value` with
//! continuation lines), whether every package is fully installed, and Debian
//! version ordering (`deb-version(7)`): every version comparison of the crate
//! goes through [`compare_versions`].
//!
//! Read-only.

use anyhow::Result;
use std::cmp::Ordering;

use crate::base::fsx::Root;

/// dpkg's status file.
pub const STATUS_FILE: &str = "/var/lib/dpkg/status";

/// One package of the status file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// `Package:`.
    pub name: String,
    /// `Version:` (may be empty for packages never installed).
    pub version: String,
    /// The selection of `Status:` (`install`, `hold`, `deinstall`, `purge`):
    /// `hold` (`apt-mark hold`, `echo PKG hold | dpkg --set-selections`)
    /// keeps the package at its version through a dist-upgrade.
    pub want: String,
    /// The state word of `Status:` (`installed`, `config-files`, `unpacked`, ...).
    pub state: String,
    /// The error flag of `Status:` (`ok`, or `reinstreq`: dpkg must reinstall it).
    pub flag: String,
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

    /// Whether the upstream part of the version equals `want` in dpkg's
    /// ordering (`0.18.1-1~wheezy` is `0.18.1`; so is `1:0.18.01-2`).
    pub fn is_upstream(&self, want: &str) -> bool {
        compare_fragment(self.upstream_version(), want) == Ordering::Equal
    }

    /// Whether dpkg's selection holds the package at its version.
    pub fn is_held(&self) -> bool {
        self.want == "hold"
    }

    /// Why dpkg has not finished with the package (`half-configured`,
    /// `reinstreq`, ...); `None` when it is fully installed or absent.
    pub fn unfinished(&self) -> Option<String> {
        let state = match self.state.as_str() {
            "installed" | "not-installed" | "config-files" | "" => None,
            other => Some(other),
        };
        let reinstreq = self.flag.contains("reinstreq");
        match (state, reinstreq) {
            (None, false) => None,
            (Some(state), false) => Some(state.to_string()),
            (None, true) => Some(self.flag.clone()),
            (Some(state), true) => Some(format!("{state}, {}", self.flag)),
        }
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
        let mut flag = String::new();
        let mut want = String::new();
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
                    // `want flag state`, e.g. `install ok half-configured`.
                    let words: Vec<&str> = value.split_whitespace().collect();
                    want = words.first().copied().unwrap_or_default().to_string();
                    flag = words.get(1).copied().unwrap_or_default().to_string();
                    state = words.get(2).copied().unwrap_or_default().to_string();
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
                want,
                state,
                flag,
                source,
                installed_size_kib,
            });
        }
    }
    packages
}

/// The packages whose files are present on the node under `root`.
pub fn present_packages(root: &Root) -> Result<Vec<Package>> {
    let text = crate::base::fsx::read_text(root, std::path::Path::new(STATUS_FILE))?;
    Ok(parse_status(&text)
        .into_iter()
        .filter(Package::is_present)
        .collect())
}

/// Fails unless dpkg has finished with every package of the node under `root`
/// (`install ok installed`, or removed): after a dist-upgrade that did not
/// complete (power loss, a failed maintainer script) nothing may run on top.
pub fn ensure_fully_installed(root: &Root) -> Result<()> {
    let text = crate::base::fsx::read_text(root, std::path::Path::new(STATUS_FILE))?;
    let unfinished: Vec<String> = parse_status(&text)
        .iter()
        .filter_map(|p| p.unfinished().map(|why| format!("{} ({why})", p.name)))
        .collect();
    if unfinished.is_empty() {
        return Ok(());
    }
    const SHOWN: usize = 10;
    let more = unfinished.len().saturating_sub(SHOWN);
    anyhow::bail!(
        "the dist-upgrade did not complete: dpkg has not finished with {} package(s): {}{}; \
         run 'dpkg --configure -a && apt-get dist-upgrade', then 'systemctl restart synnefo-upgrade-finish' \
         (or 'synnefo-upgrade finish')",
        unfinished.len(),
        unfinished[..unfinished.len().min(SHOWN)].join(", "),
        if more > 0 {
            format!(" and {more} more (see 'dpkg --audit')")
        } else {
            String::new()
        }
    )
}

/// A minimum version of a package (`package (>= min)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requirement {
    /// The binary package.
    pub package: &'static str,
    /// The lowest version that will do, compared the dpkg way.
    pub min: &'static str,
}

impl Requirement {
    /// Whether `version` satisfies the requirement (`dpkg --compare-versions version ge min`).
    pub fn is_met_by(&self, version: &str) -> bool {
        compare_versions(version, self.min) != Ordering::Less
    }

    /// The installed version of the package among `packages`, if present.
    pub fn installed<'a>(&self, packages: &'a [Package]) -> Option<&'a str> {
        packages
            .iter()
            .find(|p| p.name == self.package && p.is_present())
            .map(|p| p.version.as_str())
    }
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
    fn the_selection_of_status_is_kept_and_hold_is_seen() {
        let packages = parse_status(
            "Package: snf-common\nStatus: hold ok installed\nVersion: 0.18.1-1~wheezy\n\n\
             Package: vim\nStatus: install ok installed\nVersion: 2:7.3.547-7\n",
        );
        assert_eq!(packages[0].want, "hold");
        assert!(packages[0].is_held() && packages[0].is_present());
        assert_eq!(packages[1].want, "install");
        assert!(!packages[1].is_held());
    }

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

    /// Pairs and the answer of `dpkg --compare-versions A lt|eq|gt B` (dpkg
    /// 1.21.23); [`table_agrees_with_the_dpkg_of_this_machine`] asks dpkg again.
    const DPKG_ORDER: &[(&str, &str, Ordering)] = &[
        ("1.1.1-1~0bpo80~grnet1", "1.1.1", Ordering::Greater),
        ("1.1.1-1~0bpo80~grnet1", "1.1.1-1", Ordering::Less),
        ("1.1.1-1~0bpo80~grnet1", "1.1.1-2~bpo8+1", Ordering::Less),
        ("1.1.1-2~bpo8+1", "1.1.1-2", Ordering::Less),
        ("1.1.1-2~bpo8+1", "1.1.1", Ordering::Greater),
        ("1.1.1~rc1-1", "1.1.1", Ordering::Less),
        ("1.0.1-2", "1.1.1", Ordering::Less),
        ("1.0.1-2+deb8u1", "1.1.1", Ordering::Less),
        ("0.4.9-1~0bpo80~grnet1", "0.4.9", Ordering::Greater),
        ("0.4.10-1~bpo8+1", "0.4.9", Ordering::Greater),
        (
            "0.4.10-1~bpo8+1",
            "0.4.9-1~0bpo80~grnet1",
            Ordering::Greater,
        ),
        ("0.4.2-1", "0.4.9", Ordering::Less),
        ("0.4.9", "0.4.10", Ordering::Less),
        ("1:0.4.2", "0.4.9", Ordering::Greater),
        ("0.19-1~jessie", "0.19", Ordering::Greater),
        ("0.19~rc1-1", "0.19", Ordering::Less),
        ("0.19.1-1", "0.19-1", Ordering::Greater),
        ("1.0-1", "1.0-1.1", Ordering::Less),
        ("1.0+b1", "1.0", Ordering::Greater),
        ("1.0~~", "1.0~", Ordering::Less),
        ("1.0a", "1.0+", Ordering::Less),
        ("1.01", "1.1", Ordering::Equal),
        ("0:1.1", "1.1", Ordering::Equal),
        ("2.13-38+deb7u10", "2.13-38+deb7u9", Ordering::Greater),
    ];

    #[test]
    fn ordering_of_the_gevent_and_greenlet_builds() {
        for (a, b, want) in DPKG_ORDER {
            assert_eq!(compare_versions(a, b), *want, "{a} vs {b}");
            assert_eq!(compare_versions(b, a), want.reverse(), "{b} vs {a}");
        }
        let gevent = Requirement {
            package: "python-gevent",
            min: "1.1.1",
        };
        assert!(gevent.is_met_by("1.1.1-1~0bpo80~grnet1"));
        assert!(gevent.is_met_by("1.1.1"));
        assert!(gevent.is_met_by("1.1.1-2~bpo8+1"));
        assert!(!gevent.is_met_by("1.1.1~rc1-1"));
        assert!(!gevent.is_met_by("1.0.1-2"));
    }

    #[test]
    fn table_agrees_with_the_dpkg_of_this_machine() {
        // A Debian build host always has dpkg; elsewhere the table above stands alone.
        if std::process::Command::new("dpkg")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("dpkg not found: the table is checked against compare_versions only");
            return;
        }
        for (a, b, want) in DPKG_ORDER {
            let op = match want {
                Ordering::Less => "lt",
                Ordering::Equal => "eq",
                Ordering::Greater => "gt",
            };
            let status = std::process::Command::new("dpkg")
                .args(["--compare-versions", a, op, b])
                .status()
                .unwrap();
            assert!(status.success(), "dpkg says {a} {op} {b} is false");
        }
    }

    #[test]
    fn unfinished_packages_and_the_message() {
        let text = "\
Package: libc6
Status: install ok installed
Version: 2.19-18+deb8u10

Package: python-gevent
Status: install ok half-configured
Version: 1.1.1-2~bpo8+1

Package: snf-common
Status: install ok unpacked
Version: 0.19-1~jessie

Package: udev
Status: install reinstreq half-installed
Version: 215-17+deb8u7

Package: man-db
Status: install ok triggers-pending
Version: 2.7.0.2-5

Package: dbus
Status: install ok triggers-awaited
Version: 1.8.22-0+deb8u1

Package: snf-cyclades-app
Status: deinstall ok config-files
Version: 0.18.1-1~wheezy

Package: old-thing
Status: purge ok not-installed

Package: broken
Status: install reinstreq installed
Version: 1.0
";
        let found: Vec<(String, String)> = parse_status(text)
            .iter()
            .filter_map(|p| p.unfinished().map(|why| (p.name.clone(), why)))
            .collect();
        let found: Vec<(&str, &str)> = found
            .iter()
            .map(|(n, w)| (n.as_str(), w.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                ("python-gevent", "half-configured"),
                ("snf-common", "unpacked"),
                ("udev", "half-installed, reinstreq"),
                ("man-db", "triggers-pending"),
                ("dbus", "triggers-awaited"),
                ("broken", "reinstreq"),
            ]
        );

        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        std::fs::create_dir_all(root.path("/var/lib/dpkg")).unwrap();
        std::fs::write(root.path(STATUS_FILE), text).unwrap();
        let message = format!("{:#}", ensure_fully_installed(&root).unwrap_err());
        assert!(
            message.contains("6 package(s): python-gevent (half-configured), snf-common (unpacked), udev (half-installed, reinstreq)"),
            "{message}"
        );
        assert!(
            message.contains("'dpkg --configure -a && apt-get dist-upgrade', then 'systemctl restart synnefo-upgrade-finish'"),
            "{message}"
        );
        let fixed = text
            .replace("ok half-configured", "ok installed")
            .replace("ok unpacked", "ok installed")
            .replace("reinstreq half-installed", "ok installed")
            .replace("ok triggers-pending", "ok installed")
            .replace("ok triggers-awaited", "ok installed")
            .replace("reinstreq installed", "ok installed");
        std::fs::write(root.path(STATUS_FILE), fixed).unwrap();
        ensure_fully_installed(&root).unwrap();
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
        let synnefo = |version: &str| Package {
            version: version.into(),
            ..parse_status("Package: snf-common\nStatus: install ok installed\n")[0].clone()
        };
        assert!(synnefo("0.18.1-1~wheezy").is_upstream("0.18.1"));
        assert!(synnefo("1:0.18.01-2").is_upstream("0.18.1"));
        assert!(!synnefo("0.18.1a-1").is_upstream("0.18.1"));
        assert!(!synnefo("0.19-1~jessie").is_upstream("0.18.1"));
        assert!(synnefo("0.19-1~jessie").is_upstream("0.19"));
        assert_eq!(upstream("0.18.1"), "0.18.1");
        assert_eq!(upstream("1.2-3-4"), "1.2-3");
    }
}
