//! APT: the sources rewrite (one-line `.list` and deb822 `.sources` files),
//! the backports source, pin and snippet. Reading the sources is
//! [`sources`]'s; which of them is the Debian archive is [`archive`]'s.
//!
//! The suite `FROM` and its derivatives (`FROM-updates`, `FROM/updates`,
//! `FROM-backports`, flat `FROM/`) become `TO…`; comments, options, URIs,
//! components, whitespace and unrelated lines stay byte for byte. In deb822
//! files a `Suites:` value may continue on following lines (RFC 822
//! continuation lines, starting with white space); those are rewritten too.
//! A one-line source on a disc (`deb cdrom:[…]/ FROM main`) is commented out
//! instead, as Debian's release notes advise: a wheezy disc cannot serve
//! jessie, and APT would fail on it (its backup brings it back on abort).
//! The jessie-backports line added on service nodes carries the options of
//! the main Debian source it derives from (`[arch=… trusted=…]`, or a deb822
//! stanza's `Architectures:`, `Trusted:`, `Signed-By:` …).

use anyhow::Result;
use std::path::PathBuf;

use crate::base::dpkg;
use crate::base::fsx::{self, Root};

pub mod archive;
pub mod sources;

pub use archive::{add_backports_hint, backports_source, Backports, Lists};
pub use sources::{source_files, Source};

/// The new suite name, when `suite` is `from` or derived from it.
pub fn rewrite_suite(suite: &str, from: &str, to: &str) -> Option<String> {
    let rest = suite.strip_prefix(from)?;
    (rest.is_empty() || rest.starts_with('-') || rest.starts_with('/'))
        .then(|| format!("{to}{rest}"))
}

/// The APT configuration snippet written by `prepare` and removed by `finish`
/// and `abort`: unattended conffile handling and the guard hook.
pub const CONF_SNIPPET: &str = "/etc/apt/apt.conf.d/50synnefo-upgrade";
/// The jessie-backports source added on service nodes when none exists.
pub const BACKPORTS_LIST: &str = "/etc/apt/sources.list.d/synnefo-upgrade-backports.list";
/// The pin of gevent and greenlet to the versions the guide requires.
pub const PIN_FILE: &str = "/etc/apt/preferences.d/synnefo-upgrade-gevent";

/// Content of [`CONF_SNIPPET`].
pub const CONF_SNIPPET_TEXT: &str = "\
// Written by 'synnefo-upgrade prepare'; removed when the upgrade finishes or is aborted.
// A modified conffile (e.g. /etc/synnefo/*.conf) must not stop the dist-upgrade at a
// prompt: keep the operator's file (the finish phase converts it and reports every
// *.dpkg-dist left beside it).
Dpkg::Options { \"--force-confdef\"; \"--force-confold\"; };
// After every dpkg run, stop a managed Synnefo service that something started
// behind policy-rc.d's back (it must stay down until the first boot under systemd).
DPkg::Post-Invoke { \"if [ -x /usr/sbin/synnefo-upgrade ]; then /usr/sbin/synnefo-upgrade guard || true; fi\"; };
";

/// Content of [`PIN_FILE`]: gevent 1.1.1-2 and greenlet 0.4.10-1 (the
/// backports builds, `~bpo8+N`), as the 0.19 guide requires.
pub const PIN_TEXT: &str = "\
# Written by 'synnefo-upgrade prepare'. Synnefo 0.19 needs gevent 1.1.1-2 and
# greenlet 0.4.10-1 from jessie-backports (jessie's gevent 1.0.1 has SSL bugs).
# Kept after the upgrade, so that later upgrades do not go back to jessie's.
Package: python-gevent
Pin: version 1.1.1-2*
Pin-Priority: 990

Package: python-greenlet
Pin: version 0.4.10-1*
Pin-Priority: 990
";

/// What Synnefo 0.19's gunicorn workers need (jessie's gevent 1.0.1 has SSL
/// bugs); GRNET's own jessie builds (`1.1.1-1~0bpo80~grnet1`) qualify, and
/// [`PIN_TEXT`] still prefers the guide's backports builds, which are newer.
pub const GEVENT_REQUIREMENTS: [dpkg::Requirement; 2] = [
    dpkg::Requirement {
        package: "python-gevent",
        min: "1.1.1",
    },
    dpkg::Requirement {
        package: "python-greenlet",
        min: "0.4.9",
    },
];

/// Fails when an installed gevent or greenlet is older than
/// [`GEVENT_REQUIREMENTS`] (in dpkg's ordering), naming how to get the
/// backports build of `suite_to`.
pub fn ensure_gevent(packages: &[dpkg::Package], suite_to: &str) -> Result<()> {
    for requirement in &GEVENT_REQUIREMENTS {
        let package = requirement.package;
        match requirement.installed(packages) {
            Some(version) if !requirement.is_met_by(version) => anyhow::bail!(
                "{package} is {version}, older than the {} Synnefo 0.19 needs (see {PIN_FILE}): \
                 'apt-get install -t {suite_to}-backports {package}', then run 'synnefo-upgrade finish'",
                requirement.min
            ),
            _ => {}
        }
    }
    Ok(())
}

/// Why a suite has no equivalent in the new release, if it has none.
pub fn unmappable(suite: &str, from: &str) -> Option<String> {
    const OLDER: &[&str] = &["etch", "lenny", "squeeze"];
    if let Some(rest) = suite.strip_prefix(from) {
        if rest == "-lts" {
            return Some(format!(
                "'{suite}' has no successor: jessie's long-term support comes from security.debian.org 'jessie/updates'; remove the line"
            ));
        }
        return None;
    }
    let codename = suite.split(['-', '/']).next().unwrap_or(suite);
    OLDER
        .contains(&codename)
        .then(|| format!("'{suite}' belongs to an older release than {from}; remove the line or point it at {from} first"))
}

/// Rewrites the suites among the white-space separated words of `text`,
/// keeping the white space; `None` when none changes.
fn rewrite_words(text: &str, from: &str, to: &str) -> Option<String> {
    let mut changed = false;
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let ws = rest.len() - rest.trim_start().len();
        out.push_str(&rest[..ws]);
        rest = &rest[ws..];
        let word_len = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let word = &rest[..word_len];
        match rewrite_suite(word, from, to) {
            Some(new) => {
                changed = true;
                out.push_str(&new);
            }
            None => out.push_str(word),
        }
        rest = &rest[word_len..];
    }
    changed.then_some(out)
}

/// A sources file as prepare leaves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewritten {
    /// The new text.
    pub text: String,
    /// The lines (1-based, of the old text) of the disc sources commented out.
    pub disabled: Vec<usize>,
}

/// What a disc's line commented out starts with.
pub fn disabled_prefix(from: &str, to: &str) -> String {
    format!("# Disabled by 'synnefo-upgrade prepare' (a {from} disc cannot serve {to}):")
}

/// What the rewrite makes of one line of a one-line-style file: the
/// new text, and whether it is a disc's line commented out.
fn rewrite_list_line(line: &str, from: &str, to: &str) -> Option<(String, bool)> {
    let parsed = sources::ListLine::parse(line)?;
    let new = rewrite_suite(&line[parsed.suite.clone()], from, to)?;
    if sources::is_disc(&line[parsed.uri]) {
        return Some((format!("{} {line}", disabled_prefix(from, to)), true));
    }
    let suite = parsed.suite;
    Some((
        format!("{}{new}{}", &line[..suite.start], &line[suite.end..]),
        false,
    ))
}

/// Rewrites a whole sources file; `None` when nothing changes.
pub fn rewrite(text: &str, deb822: bool, from: &str, to: &str) -> Option<Rewritten> {
    let mut changed = false;
    let mut disabled = Vec::new();
    let mut cursor = sources::Deb822Cursor::default();
    let out: String = text
        .split_inclusive('\n')
        .enumerate()
        .map(|(i, line)| {
            let (body, eol) = match line.strip_suffix('\n') {
                Some(b) => (b, "\n"),
                None => (line, ""),
            };
            let new = if deb822 {
                cursor.suites_value(body).and_then(|value| {
                    let offset = body.len() - value.len();
                    rewrite_words(value, from, to).map(|new| format!("{}{new}", &body[..offset]))
                })
            } else {
                rewrite_list_line(body, from, to).map(|(new, disc)| {
                    if disc {
                        disabled.push(i + 1);
                    }
                    new
                })
            };
            match new {
                Some(n) => {
                    changed = true;
                    format!("{n}{eol}")
                }
                None => line.to_string(),
            }
        })
        .collect();
    changed.then_some(Rewritten {
        text: out,
        disabled,
    })
}

/// Rewrites every sources file, with a backup of each changed one. Returns
/// the changed files, each with the lines of the disc sources commented out.
pub fn rewrite_sources(root: &Root, from: &str, to: &str) -> Result<Vec<(PathBuf, Vec<usize>)>> {
    let mut planned = Vec::new();
    for (path, deb822) in source_files(root) {
        let bytes = fsx::read_file(root, &path)?;
        let text = String::from_utf8(bytes).map_err(|e| {
            crate::base::error::Fatal::BadInput(format!(
                "{}: not UTF-8 (byte {})",
                path.display(),
                e.utf8_error().valid_up_to()
            ))
        })?;
        if let Some(new) = rewrite(&text, deb822, from, to) {
            planned.push((path, new));
        }
    }
    for (path, new) in &planned {
        fsx::write_file(root, path, new.text.as_bytes(), 0o644)?;
    }
    Ok(planned
        .into_iter()
        .map(|(path, new)| (path, new.disabled))
        .collect())
}

/// The init packages `systemd-sysv` replaces: their removal is asked for by
/// name where one is installed. APT 3.0's solver (trixie's) keeps a package
/// that was installed by hand rather than remove it for a conflict ("Reached
/// two conflicting decisions ... sysvinit-core Conflicts systemd-sysv"),
/// where older APT removed it; naming it resolves with both.
const INITS_REPLACED: &[&str] = &["sysvinit-core"];

/// apt-get's arguments for the switch to systemd-sysv (after `options`),
/// for the apt and the init packages in `packages` (the node's, now).
pub fn systemd_switch_args(packages: &[dpkg::Package], options: &[&str]) -> Vec<String> {
    let apt_version = packages
        .iter()
        .find(|p| p.name == "apt")
        .map(|p| p.version.as_str());
    let mut args: Vec<String> = [removal_of_essentials(apt_version)]
        .iter()
        .chain(options)
        .chain(&["install", "systemd-sysv"])
        .map(|a| a.to_string())
        .collect();
    args.extend(
        INITS_REPLACED
            .iter()
            .filter(|init| packages.iter().any(|p| p.name == **init))
            .map(|init| format!("{init}-")),
    );
    args
}

/// The apt-get option that lets a transaction remove an essential package
/// (the init system it replaces), for the apt that is installed now (after the
/// dist-upgrade): `--allow-remove-essential` from apt 1.1 on; older apt (jessie
/// has 1.0.9) does not know it and refuses the command line, and removes an
/// essential package with `--force-yes`.
fn removal_of_essentials(apt_version: Option<&str>) -> &'static str {
    match apt_version {
        Some(v) if dpkg::compare_versions(v, "1.1~") == std::cmp::Ordering::Less => "--force-yes",
        _ => "--allow-remove-essential",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::paths;

    #[test]
    fn suites_and_derivatives() {
        assert_eq!(
            rewrite_suite("wheezy", "wheezy", "jessie").as_deref(),
            Some("jessie")
        );
        assert_eq!(
            rewrite_suite("wheezy-updates", "wheezy", "jessie").as_deref(),
            Some("jessie-updates")
        );
        assert_eq!(
            rewrite_suite("wheezy/updates", "wheezy", "jessie").as_deref(),
            Some("jessie/updates")
        );
        assert_eq!(
            rewrite_suite("wheezy/", "wheezy", "jessie").as_deref(),
            Some("jessie/")
        );
        assert_eq!(rewrite_suite("wheezyish", "wheezy", "jessie"), None);
        assert_eq!(rewrite_suite("stable", "wheezy", "jessie"), None);
    }

    #[test]
    fn list_file_rewrites_only_suites() {
        let text = "# deb http://ftp.gr.debian.org/debian wheezy main\n\
deb http://ftp.gr.debian.org/debian wheezy main contrib\n\
deb-src  http://ftp.gr.debian.org/debian   wheezy-updates main # keep wheezy here\n\
deb [arch=amd64 trusted=yes] http://apt.dev.grnet.gr wheezy/\n\
deb http://security.debian.org/ wheezy/updates main\n\
deb http://ceph.com/debian-firefly/ wheezy main\n\
deb http://example.org/wheezy stable main\n";
        let out = rewrite(text, false, "wheezy", "jessie").unwrap().text;
        assert_eq!(
            out,
            "# deb http://ftp.gr.debian.org/debian wheezy main\n\
deb http://ftp.gr.debian.org/debian jessie main contrib\n\
deb-src  http://ftp.gr.debian.org/debian   jessie-updates main # keep wheezy here\n\
deb [arch=amd64 trusted=yes] http://apt.dev.grnet.gr jessie/\n\
deb http://security.debian.org/ jessie/updates main\n\
deb http://ceph.com/debian-firefly/ jessie main\n\
deb http://example.org/wheezy stable main\n"
        );
        assert_eq!(
            rewrite(&out, false, "wheezy", "jessie"),
            None,
            "a second run changes nothing"
        );
    }

    #[test]
    fn a_disc_of_the_old_release_is_commented_out_not_rewritten() {
        let text = "deb cdrom:[Debian GNU/Linux 7.0 _Wheezy_ - Official amd64 DVD Binary-1 20130504-14:43]/ wheezy main contrib\n\
deb http://ftp.gr.debian.org/debian wheezy main\n\
\tdeb-src [arch=amd64] cdrom:[Debian 7 #1]/ wheezy-updates main # the disc\n\
deb cdrom:[Debian GNU/Linux 8 _Jessie_]/ jessie main\n";
        let out = rewrite(text, false, "wheezy", "jessie").unwrap();
        assert_eq!(
            out.text,
            "# Disabled by 'synnefo-upgrade prepare' (a wheezy disc cannot serve jessie): \
deb cdrom:[Debian GNU/Linux 7.0 _Wheezy_ - Official amd64 DVD Binary-1 20130504-14:43]/ wheezy main contrib\n\
deb http://ftp.gr.debian.org/debian jessie main\n\
# Disabled by 'synnefo-upgrade prepare' (a wheezy disc cannot serve jessie): \
\tdeb-src [arch=amd64] cdrom:[Debian 7 #1]/ wheezy-updates main # the disc\n\
deb cdrom:[Debian GNU/Linux 8 _Jessie_]/ jessie main\n"
        );
        assert_eq!(out.disabled, [1, 3]);
        assert_eq!(rewrite(&out.text, false, "wheezy", "jessie"), None);
    }

    #[test]
    fn backports_from_the_main_mirror_unless_present() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        std::fs::create_dir_all(root.path("/etc/apt/sources.list.d")).unwrap();
        std::fs::write(
            root.path(paths::APT_SOURCES_LIST),
            "deb http://security.debian.org/ wheezy/updates main\ndeb [arch=amd64] http://ftp.gr.debian.org/debian/ wheezy main contrib\n",
        )
        .unwrap();
        assert_eq!(
            added(&root).as_deref(),
            Some("# Added by 'synnefo-upgrade prepare': gevent and greenlet for Synnefo 0.19.\ndeb [arch=amd64] http://ftp.gr.debian.org/debian/ jessie-backports main\n")
        );
        std::fs::write(
            root.path("/etc/apt/sources.list.d/bpo.list"),
            "deb http://ftp.gr.debian.org/debian/ wheezy-backports main\n",
        )
        .unwrap();
        assert_eq!(added(&root), None);
    }

    fn installed(name: &str, version: &str) -> dpkg::Package {
        dpkg::parse_status(&format!(
            "Package: {name}\nStatus: install ok installed\nVersion: {version}\n"
        ))
        .remove(0)
    }

    #[test]
    fn gevent_requirements_in_dpkg_order() {
        let grnet = [
            installed("python-gevent", "1.1.1-1~0bpo80~grnet1"),
            installed("python-greenlet", "0.4.9-1~0bpo80~grnet1"),
        ];
        ensure_gevent(&grnet, "jessie").unwrap();
        let guide = [
            installed("python-gevent", "1.1.1-2~bpo8+1"),
            installed("python-greenlet", "0.4.10-1~bpo8+1"),
        ];
        ensure_gevent(&guide, "jessie").unwrap();
        ensure_gevent(&[], "jessie").unwrap();
        let jessie = [
            installed("python-gevent", "1.0.1-2"),
            installed("python-greenlet", "0.4.10-1~bpo8+1"),
        ];
        let message = format!("{:#}", ensure_gevent(&jessie, "jessie").unwrap_err());
        assert_eq!(
            message,
            "python-gevent is 1.0.1-2, older than the 1.1.1 Synnefo 0.19 needs (see /etc/apt/preferences.d/synnefo-upgrade-gevent): \
             'apt-get install -t jessie-backports python-gevent', then run 'synnefo-upgrade finish'"
        );
        let rc = [installed("python-greenlet", "0.4.9~rc1-1")];
        assert!(ensure_gevent(&rc, "jessie").is_err());
    }

    #[test]
    fn pin_prefers_the_guides_backports_builds_over_grnets() {
        // A 990 pin wins over every other candidate but never downgrades: the
        // pinned builds must be newer than GRNET's and meet the requirement.
        let pinned: Vec<(&str, String)> = PIN_TEXT
            .split("\n\n")
            .filter_map(|stanza| {
                let field = |key: &str| {
                    stanza
                        .lines()
                        .find_map(|l| l.strip_prefix(key))
                        .map(str::trim)
                };
                let version = field("Pin: version ")?.strip_suffix('*')?;
                assert_eq!(field("Pin-Priority:"), Some("990"));
                Some((field("Package:")?, format!("{version}~bpo8+1")))
            })
            .collect();
        assert_eq!(
            pinned,
            [
                ("python-gevent", "1.1.1-2~bpo8+1".to_string()),
                ("python-greenlet", "0.4.10-1~bpo8+1".to_string())
            ]
        );
        for ((package, backports), grnet) in pinned
            .iter()
            .zip(["1.1.1-1~0bpo80~grnet1", "0.4.9-1~0bpo80~grnet1"])
        {
            let requirement = GEVENT_REQUIREMENTS
                .iter()
                .find(|r| r.package == *package)
                .unwrap();
            assert!(requirement.is_met_by(backports), "{backports}");
            assert!(requirement.is_met_by(grnet), "{grnet}");
            assert_eq!(
                dpkg::compare_versions(backports, grnet),
                std::cmp::Ordering::Greater,
                "{backports} vs {grnet}"
            );
        }
    }

    #[test]
    fn unmappable_suites() {
        assert!(unmappable("wheezy-lts", "wheezy").is_some());
        assert!(unmappable("squeeze-backports", "wheezy").is_some());
        assert!(unmappable("wheezy-backports", "wheezy").is_none());
        assert!(unmappable("stable", "wheezy").is_none());
        assert!(unmappable("jessie", "wheezy").is_none());
    }

    fn node_with_sources(files: &[(&str, &str)]) -> (tempfile::TempDir, Root) {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        std::fs::create_dir_all(root.path(paths::APT_SOURCES_DIR)).unwrap();
        for (path, text) in files {
            std::fs::write(root.path(path), text).unwrap();
        }
        (dir, root)
    }

    /// The backports source prepare adds; `None`: one is listed.
    fn added(root: &Root) -> Option<String> {
        match backports_source(root, "wheezy", "jessie").unwrap() {
            Backports::Add(line) => Some(line),
            Backports::Listed => None,
            Backports::NoMirror => panic!("no Debian mirror found"),
        }
    }

    const ADDED: &str =
        "# Added by 'synnefo-upgrade prepare': gevent and greenlet for Synnefo 0.19.\n";

    #[test]
    fn backports_line_keeps_the_options_of_the_main_line() {
        let (_dir, root) = node_with_sources(&[(
            paths::APT_SOURCES_LIST,
            "# mirror\ndeb [arch=amd64 trusted=yes] http://security.debian.org/ wheezy/updates main\n\
             deb-src [arch=amd64] http://mirror/debian wheezy main\n\
             deb\t[arch=amd64 trusted=yes]  http://mirror/debian wheezy main contrib # main\n",
        )]);
        let want = format!(
            "{ADDED}deb [arch=amd64 trusted=yes] http://mirror/debian jessie-backports main\n"
        );
        assert_eq!(added(&root), Some(want.clone()));
        // After prepare's rewrite of the sources: the same line.
        rewrite_sources(&root, "wheezy", "jessie").unwrap();
        assert_eq!(added(&root), Some(want));
        // Options with spaces inside the brackets are copied as they are.
        let (_dir, root) = node_with_sources(&[(
            paths::APT_SOURCES_LIST,
            "deb [ arch=amd64,i386 signed-by=/etc/apt/mirror.gpg ] http://mirror/debian/ jessie main\n",
        )]);
        assert_eq!(
            added(&root),
            Some(format!("{ADDED}deb [ arch=amd64,i386 signed-by=/etc/apt/mirror.gpg ] http://mirror/debian/ jessie-backports main\n"))
        );
    }

    #[test]
    fn backports_line_from_a_deb822_stanza_keeps_its_options() {
        let sources = "\
Types: deb
URIs: http://security.debian.org/
Suites: wheezy/updates
Components: main

# disabled mirror
Enabled: no
Types: deb
URIs: http://old.example.org/debian
Suites: wheezy
Components: main

Types: deb-src deb
URIs: http://deb.debian.org/debian
Suites: wheezy
 wheezy-updates
Components: main contrib
Architectures: amd64
 i386
Trusted: yes
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
X-Repolib-Name: Debian
";
        let (_dir, root) = node_with_sources(&[
            (paths::APT_SOURCES_LIST, "# empty\n"),
            ("/etc/apt/sources.list.d/debian.sources", sources),
        ]);
        assert_eq!(
            added(&root),
            Some(format!("{ADDED}deb [arch=amd64,i386 trusted=yes signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian jessie-backports main\n"))
        );
        rewrite_sources(&root, "wheezy", "jessie").unwrap();
        assert!(added(&root)
            .unwrap()
            .contains("[arch=amd64,i386 trusted=yes signed-by="));

        // A key inline in Signed-By cannot go on one line: say where and what to do.
        let inline = "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: wheezy\nComponents: main\nSigned-By:\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n mQINBFyb\n -----END PGP PUBLIC KEY BLOCK-----\n";
        let (_dir, root) = node_with_sources(&[("/etc/apt/sources.list.d/debian.sources", inline)]);
        let message = format!(
            "{:#}",
            backports_source(&root, "wheezy", "jessie").unwrap_err()
        );
        assert!(
            message.starts_with("/etc/apt/sources.list.d/debian.sources:1: the Debian source's Signed-By holds a key inline"),
            "{message}"
        );
        assert!(
            message
                .contains("add the backports suite ('wheezy-backports') to this stanza's Suites:"),
            "{message}"
        );
    }

    #[test]
    fn deb822_continued_suites_are_rewritten_and_listed() {
        let text = "\
# Debian, deb822 style
Types: deb deb-src
URIs: http://deb.debian.org/debian
Suites: wheezy
  wheezy-updates
# a comment inside the stanza
\twheezy-backports   wheezyish
Components: main
 wheezy

Types: deb
URIs: http://security.debian.org/
Suites:
 wheezy/updates
Components: main
Description: wheezy mirror
 of wheezy
";
        let out = rewrite(text, true, "wheezy", "jessie").unwrap().text;
        assert_eq!(
            out,
            "\
# Debian, deb822 style
Types: deb deb-src
URIs: http://deb.debian.org/debian
Suites: jessie
  jessie-updates
# a comment inside the stanza
\tjessie-backports   wheezyish
Components: main
 wheezy

Types: deb
URIs: http://security.debian.org/
Suites:
 jessie/updates
Components: main
Description: wheezy mirror
 of wheezy
"
        );
        assert_eq!(rewrite(&out, true, "wheezy", "jessie"), None);

        let (_dir, root) = node_with_sources(&[
            (paths::APT_SOURCES_LIST, "# empty\n"),
            ("/etc/apt/sources.list.d/debian.sources", text),
        ]);
        let found = sources::sources(&root).unwrap();
        let found: Vec<(usize, &str)> = found.iter().map(|s| (s.line, s.suite.as_str())).collect();
        assert_eq!(
            found,
            [
                (4, "wheezy"),
                (5, "wheezy-updates"),
                (7, "wheezy-backports"),
                (7, "wheezyish"),
                (14, "wheezy/updates")
            ]
        );
        // wheezy-backports is listed: nothing to add.
        assert_eq!(added(&root), None);
    }

    #[test]
    fn deb822_suites_field() {
        let text = "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: wheezy wheezy-updates\nComponents: main\n";
        assert_eq!(
            rewrite(text, true, "wheezy", "jessie").unwrap().text,
            "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: jessie jessie-updates\nComponents: main\n"
        );
    }
}
