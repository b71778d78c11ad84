//! APT: the sources rewrite (one-line `.list` and deb822 `.sources` files).
//!
//! The suite `FROM` and its derivatives (`FROM-updates`, `FROM/updates`,
//! `FROM-backports`, flat `FROM/`) become `TO…`; comments, options, URIs,
//! components, whitespace and unrelated lines stay byte for byte. In deb822
//! files a `Suites:` value may continue on following lines (RFC 822
//! continuation lines, starting with white space); those are rewritten too.
//! The jessie-backports line added on service nodes carries the options of
//! the main Debian source it derives from (`[arch=… trusted=…]`, or a deb822
//! stanza's `Architectures:`, `Trusted:`, `Signed-By:` …).

use anyhow::Result;
use std::path::{Path, PathBuf};

use crate::dpkg;
use crate::fsx::{self, Root};
use crate::paths;

/// The new suite name, when `suite` is `from` or derived from it.
pub fn rewrite_suite(suite: &str, from: &str, to: &str) -> Option<String> {
    let rest = suite.strip_prefix(from)?;
    (rest.is_empty() || rest.starts_with('-') || rest.starts_with('/'))
        .then(|| format!("{to}{rest}"))
}

/// The byte span of the suite of a one-line-style `deb`/`deb-src` line.
fn list_suite_span(line: &str) -> Option<(usize, usize)> {
    let trimmed = line.trim_start();
    if !(trimmed.starts_with("deb ")
        || trimmed.starts_with("deb-src ")
        || trimmed.starts_with("deb\t")
        || trimmed.starts_with("deb-src\t"))
    {
        return None;
    }
    // Tokens with their byte offsets; an options block `[ ... ]` is one token.
    let mut tokens = Vec::new();
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if bytes[i] == b'#' {
            break;
        }
        let start = i;
        if bytes[i] == b'[' {
            while i < bytes.len() && bytes[i] != b']' {
                i += 1;
            }
            i = (i + 1).min(bytes.len());
        } else {
            while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
                i += 1;
            }
        }
        tokens.push((start, i));
    }
    let mut index = 1;
    if tokens.get(index).is_some_and(|(s, _)| bytes[*s] == b'[') {
        index += 1;
    }
    tokens.get(index + 1).copied() // the suite follows the URI
}

/// Rewrites one line of a one-line-style sources file.
fn rewrite_list_line(line: &str, from: &str, to: &str) -> Option<String> {
    let (start, end) = list_suite_span(line)?;
    let new = rewrite_suite(&line[start..end], from, to)?;
    Some(format!("{}{new}{}", &line[..start], &line[end..]))
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

/// The node's main Debian source: the first `deb` source whose suite is one
/// of `suites` itself, on a Debian archive (not security), in the order APT
/// reads the files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    /// The archive's URI.
    pub uri: String,
    /// Its options, in one-line form: `[arch=amd64 trusted=yes]`, or empty.
    pub options: String,
}

impl Mirror {
    /// The one-line source of `suite` on this mirror, with the same options.
    pub fn line(&self, suite: &str, components: &str) -> String {
        if self.options.is_empty() {
            format!("deb {} {suite} {components}", self.uri)
        } else {
            format!("deb {} {} {suite} {components}", self.options, self.uri)
        }
    }
}

fn is_debian_archive(uri: &str) -> bool {
    uri.contains("debian") && !uri.contains("security")
}

/// deb822 fields and the one-line option each becomes (sources.list(5)).
const DEB822_OPTIONS: &[(&str, &str)] = &[
    ("Architectures", "arch"),
    ("Languages", "lang"),
    ("Targets", "target"),
    ("PDiffs", "pdiffs"),
    ("By-Hash", "by-hash"),
    ("Allow-Insecure", "allow-insecure"),
    ("Allow-Weak", "allow-weak"),
    ("Allow-Downgrade-To-Insecure", "allow-downgrade-to-insecure"),
    ("Trusted", "trusted"),
    ("Signed-By", "signed-by"),
    ("Check-Valid-Until", "check-valid-until"),
    ("Valid-Until-Min", "valid-until-min"),
    ("Valid-Until-Max", "valid-until-max"),
    ("Check-Date", "check-date"),
    ("Date-Max-Future", "date-max-future"),
    ("InRelease-Path", "inrelease-path"),
];

/// The main Debian mirror of a one-line sources file, if it has one.
fn list_mirror(text: &str, suites: &[&str]) -> Option<Mirror> {
    text.lines().find_map(|line| {
        let (start, end) = list_suite_span(line)?;
        let mut words = line[..start].split_whitespace();
        if words.next() != Some("deb") || !suites.contains(&&line[start..end]) {
            return None;
        }
        let head = line[..start].trim();
        let uri = head.rsplit(char::is_whitespace).next()?;
        // Between `deb` and the URI: the options block, verbatim.
        let options = head["deb".len()..head.len() - uri.len()].trim();
        is_debian_archive(uri).then(|| Mirror {
            uri: uri.to_string(),
            options: options.to_string(),
        })
    })
}

/// The main Debian mirror of a deb822 sources file, if it has one; `path`
/// names the file in the error when an option cannot go on one line.
fn deb822_mirror(text: &str, suites: &[&str], path: &Path) -> Result<Option<Mirror>> {
    for stanza in deb822_stanzas(text) {
        let field = |key: &str| {
            stanza
                .fields
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.as_str())
        };
        let words = |key: &str| field(key).unwrap_or_default().split_whitespace();
        if field("Enabled").is_some_and(|v| v.trim().eq_ignore_ascii_case("no"))
            || !words("Types").any(|t| t == "deb")
            || !words("Suites").any(|s| suites.contains(&s))
        {
            continue;
        }
        let Some(uri) = words("URIs").find(|u| is_debian_archive(u)) else {
            continue;
        };
        let mut options = Vec::new();
        for (key, option) in DEB822_OPTIONS {
            let Some(value) = field(key) else { continue };
            if value.contains("-----BEGIN PGP") {
                anyhow::bail!(
                    "{}:{}: the Debian source's {key} holds a key inline, which a one-line source cannot carry: \
                     add the backports suite{} to this stanza's Suites: yourself (prepare then adds no line)",
                    path.display(),
                    stanza.line,
                    suites
                        .first()
                        .map_or(String::new(), |from| format!(" ('{from}-backports')"))
                );
            }
            // A list may continue on the next lines; one-line options separate with commas.
            let value: Vec<&str> = value
                .split(|c: char| c.is_whitespace() || c == ',')
                .filter(|v| !v.is_empty())
                .collect();
            options.push(format!("{option}={}", value.join(",")));
        }
        return Ok(Some(Mirror {
            uri: uri.to_string(),
            options: if options.is_empty() {
                String::new()
            } else {
                format!("[{}]", options.join(" "))
            },
        }));
    }
    Ok(None)
}

/// The node's main Debian mirror (see [`Mirror`]).
pub fn debian_mirror(root: &Root, suites: &[&str]) -> Result<Option<Mirror>> {
    for (path, deb822) in source_files(root) {
        let text = fsx::read_text(root, &path)?;
        let found = if deb822 {
            deb822_mirror(&text, suites, &path)?
        } else {
            list_mirror(&text, suites)
        };
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}

/// The backports source to add for `to`, unless one exists (as `from-backports`,
/// rewritten by prepare, or `to-backports`). `None`: nothing to add.
pub fn backports_source(root: &Root, from: &str, to: &str) -> Result<Option<String>> {
    let exists = suites(root)?
        .iter()
        .any(|(_, _, s)| s == &format!("{from}-backports") || s == &format!("{to}-backports"));
    if exists {
        return Ok(None);
    }
    // Before or after the rewrite of the sources.
    Ok(debian_mirror(root, &[from, to])?.map(|mirror| {
        format!(
            "# Added by 'synnefo-upgrade prepare': gevent and greenlet for Synnefo 0.19.\n{}\n",
            mirror.line(&format!("{to}-backports"), "main")
        )
    }))
}

/// The suites of every active source line: `(file, line number, suite)`.
pub fn suites(root: &Root) -> Result<Vec<(PathBuf, usize, String)>> {
    let mut found = Vec::new();
    for (path, deb822) in source_files(root) {
        let text = fsx::read_text(root, &path)?;
        let mut cursor = Deb822Cursor::default();
        for (i, line) in text.lines().enumerate() {
            if deb822 {
                if let Some(value) = cursor.suites_value(line) {
                    found.extend(
                        value
                            .split_whitespace()
                            .map(|s| (path.clone(), i + 1, s.to_string())),
                    );
                }
            } else if let Some((start, end)) = list_suite_span(line) {
                found.push((path.clone(), i + 1, line[start..end].to_string()));
            }
        }
    }
    Ok(found)
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

/// Where a deb822 file is, line by line: in which field (comments, which
/// APT allows inside a stanza, keep the field open; a blank line ends the stanza).
#[derive(Default)]
struct Deb822Cursor {
    field: Option<String>,
}

impl Deb822Cursor {
    /// Moves past `line`; returns the field it belongs to and the byte offset
    /// where its value part starts (`None` for comments and blank lines).
    fn next(&mut self, line: &str) -> Option<(String, usize)> {
        if line.starts_with('#') {
            return None;
        }
        if line.trim().is_empty() {
            self.field = None;
            return None;
        }
        if line.starts_with([' ', '\t']) {
            return self.field.clone().map(|f| (f, 0));
        }
        self.field = line.split_once(':').map(|(key, _)| key.trim().to_string());
        let key = self.field.clone()?;
        Some((key, line.find(':')? + 1))
    }

    /// The part of `line` that is in a `Suites:` value, if any.
    fn suites_value<'a>(&mut self, line: &'a str) -> Option<&'a str> {
        let (key, offset) = self.next(line)?;
        key.eq_ignore_ascii_case("suites").then(|| &line[offset..])
    }
}

/// One stanza of a deb822 file: its first line (1-based) and its fields, a
/// value's continuation lines joined by `\n`.
struct Stanza {
    line: usize,
    fields: Vec<(String, String)>,
}

fn deb822_stanzas(text: &str) -> Vec<Stanza> {
    let mut stanzas: Vec<Stanza> = Vec::new();
    let mut cursor = Deb822Cursor::default();
    let mut open = false;
    for (i, line) in text.lines().enumerate() {
        let Some((key, offset)) = cursor.next(line) else {
            open &= !line.trim().is_empty() || line.starts_with('#');
            continue;
        };
        if !open {
            stanzas.push(Stanza {
                line: i + 1,
                fields: Vec::new(),
            });
            open = true;
        }
        let Some(stanza) = stanzas.last_mut() else {
            continue;
        };
        let value = line[offset..].trim();
        match stanza.fields.last_mut() {
            Some((k, v)) if offset == 0 && *k == key => {
                if !v.is_empty() {
                    v.push('\n');
                }
                v.push_str(value);
            }
            _ => stanza.fields.push((key, value.to_string())),
        }
    }
    stanzas
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

/// Rewrites a whole sources file; `None` when nothing changes.
pub fn rewrite(text: &str, deb822: bool, from: &str, to: &str) -> Option<String> {
    let mut changed = false;
    let mut cursor = Deb822Cursor::default();
    let out: String = text
        .split_inclusive('\n')
        .map(|line| {
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
                rewrite_list_line(body, from, to)
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
    changed.then_some(out)
}

/// Every sources file of the node: `sources.list`, `sources.list.d/*.list` and `*.sources`.
pub fn source_files(root: &Root) -> Vec<(PathBuf, bool)> {
    let mut files = vec![(PathBuf::from(paths::APT_SOURCES_LIST), false)];
    if let Ok(entries) = std::fs::read_dir(root.path(paths::APT_SOURCES_DIR)) {
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in names {
            let deb822 = name.ends_with(".sources");
            if deb822 || name.ends_with(".list") {
                files.push((Path::new(paths::APT_SOURCES_DIR).join(name), deb822));
            }
        }
    }
    files.retain(|(p, _)| fsx::is_regular_file(root, p));
    files
}

/// Rewrites every sources file, with a backup of each changed one. Returns the changed files.
pub fn rewrite_sources(root: &Root, from: &str, to: &str) -> Result<Vec<PathBuf>> {
    let mut planned = Vec::new();
    for (path, deb822) in source_files(root) {
        let bytes = fsx::read_file(root, &path)?;
        let text = String::from_utf8(bytes).map_err(|e| {
            crate::error::Fatal::BadInput(format!(
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
        fsx::write_file(root, path, new.as_bytes(), 0o644)?;
    }
    Ok(planned.into_iter().map(|(p, _)| p).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let out = rewrite(text, false, "wheezy", "jessie").unwrap();
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
            backports_source(&root, "wheezy", "jessie").unwrap().as_deref(),
            Some("# Added by 'synnefo-upgrade prepare': gevent and greenlet for Synnefo 0.19.\ndeb [arch=amd64] http://ftp.gr.debian.org/debian/ jessie-backports main\n")
        );
        std::fs::write(
            root.path("/etc/apt/sources.list.d/bpo.list"),
            "deb http://ftp.gr.debian.org/debian/ wheezy-backports main\n",
        )
        .unwrap();
        assert_eq!(backports_source(&root, "wheezy", "jessie").unwrap(), None);
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
        assert_eq!(
            backports_source(&root, "wheezy", "jessie").unwrap(),
            Some(want.clone())
        );
        // After prepare's rewrite of the sources: the same line.
        rewrite_sources(&root, "wheezy", "jessie").unwrap();
        assert_eq!(
            backports_source(&root, "wheezy", "jessie").unwrap(),
            Some(want)
        );
        // Options with spaces inside the brackets are copied as they are.
        let (_dir, root) = node_with_sources(&[(
            paths::APT_SOURCES_LIST,
            "deb [ arch=amd64,i386 signed-by=/etc/apt/mirror.gpg ] http://mirror/debian/ jessie main\n",
        )]);
        assert_eq!(
            backports_source(&root, "wheezy", "jessie").unwrap(),
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
            backports_source(&root, "wheezy", "jessie").unwrap(),
            Some(format!("{ADDED}deb [arch=amd64,i386 trusted=yes signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian jessie-backports main\n"))
        );
        rewrite_sources(&root, "wheezy", "jessie").unwrap();
        assert!(backports_source(&root, "wheezy", "jessie")
            .unwrap()
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
        let out = rewrite(text, true, "wheezy", "jessie").unwrap();
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
        let found: Vec<(usize, String)> = suites(&root)
            .unwrap()
            .into_iter()
            .map(|(_, line, suite)| (line, suite))
            .collect();
        let found: Vec<(usize, &str)> = found.iter().map(|(l, s)| (*l, s.as_str())).collect();
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
        assert_eq!(backports_source(&root, "wheezy", "jessie").unwrap(), None);
    }

    #[test]
    fn deb822_suites_field() {
        let text = "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: wheezy wheezy-updates\nComponents: main\n";
        assert_eq!(
            rewrite(text, true, "wheezy", "jessie").unwrap(),
            "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: jessie jessie-updates\nComponents: main\n"
        );
    }
}
