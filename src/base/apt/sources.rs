//! Reading APT's sources as APT reads them: one-line `.list` lines and deb822
//! `.sources` stanzas, into [`Source`]s. Read-only; the rewrite is in
//! [`super::rewrite`], which uses the same parsers.
//!
//! A one-line line is split the way APT's `ParseQuoteWord` splits it: white
//! space separates words except inside `[…]` and `"…"`, so an options block
//! `[ arch=amd64 trusted=yes ]` and a disc's URI
//! `cdrom:[Debian GNU/Linux 7 _Wheezy_ - Official amd64 DVD Binary-1]/` are
//! one word each; a `#` starts a comment unless it is inside brackets.

use anyhow::Result;
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::base::fsx::Root;
use crate::base::paths;

/// One suite of a source as APT reads it: a one-line `deb`/`deb-src` line,
/// or one of the `Suites:` of a deb822 stanza (which may name several types
/// and URIs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The sources file (a node path).
    pub file: PathBuf,
    /// The line (1-based) the suite is written on.
    pub line: usize,
    /// From a deb822 `.sources` stanza rather than a one-line `.list` line.
    pub deb822: bool,
    /// Whether APT reads it (a deb822 stanza may say `Enabled: no`).
    pub enabled: bool,
    /// `deb`, `deb-src`.
    pub types: Vec<String>,
    /// The archive roots, as written.
    pub uris: Vec<String>,
    /// The suite.
    pub suite: String,
    /// The components (none for a flat suite such as `wheezy/`).
    pub components: Vec<String>,
    pub(super) options: Options,
}

impl Source {
    /// Whether it lists binary packages (a `deb` type) that APT reads.
    pub fn serves_binaries(&self) -> bool {
        self.enabled && self.types.iter().any(|t| t == "deb")
    }

    /// Whether one of its URIs is a disc (`cdrom:[…]/`).
    pub fn is_disc(&self) -> bool {
        self.uris.iter().any(|u| is_disc(u))
    }
}

/// Whether `uri` is a disc's (`cdrom:[LABEL]/`): it serves the release it was
/// pressed for and nothing else.
pub fn is_disc(uri: &str) -> bool {
    uri.get(..6)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("cdrom:"))
}

/// A source's options, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Options {
    /// A one-line options block, verbatim (`[arch=amd64 trusted=yes]`), or empty.
    Line(String),
    /// The option fields of a deb822 stanza (see [`DEB822_OPTIONS`]): the
    /// stanza's first line, and each field with its value (continuation
    /// lines joined by `\n`).
    Stanza(usize, Vec<(&'static str, String)>),
}

/// deb822 fields and the one-line option each becomes (sources.list(5)).
pub(super) const DEB822_OPTIONS: &[(&str, &str)] = &[
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

/// Every sources file of the node, in the order APT reads them:
/// `sources.list`, then `sources.list.d/*.list` and `*.sources` by name.
/// `true`: a deb822 file.
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
    files.retain(|(p, _)| crate::base::fsx::is_regular_file(root, p));
    files
}

/// Every source of the node, in the order APT reads them.
pub fn sources(root: &Root) -> Result<Vec<Source>> {
    let mut found = Vec::new();
    for (path, deb822) in source_files(root) {
        let text = crate::base::fsx::read_text(root, &path)?;
        found.extend(parse(&text, deb822, &path));
    }
    Ok(found)
}

/// The sources of one file's `text`; `file` is recorded in each.
pub fn parse(text: &str, deb822: bool, file: &Path) -> Vec<Source> {
    if deb822 {
        return deb822_sources(text, file);
    }
    text.lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let parsed = ListLine::parse(line)?;
            Some(Source {
                file: file.to_path_buf(),
                line: i + 1,
                deb822: false,
                enabled: true,
                types: vec![line[parsed.kind].to_string()],
                uris: vec![line[parsed.uri].to_string()],
                suite: line[parsed.suite].to_string(),
                components: parsed
                    .components
                    .into_iter()
                    .map(|c| line[c].to_string())
                    .collect(),
                options: Options::Line(
                    parsed
                        .options
                        .map_or(String::new(), |o| line[o].to_string()),
                ),
            })
        })
        .collect()
}

fn deb822_sources(text: &str, file: &Path) -> Vec<Source> {
    let mut found = Vec::new();
    for stanza in deb822_stanzas(text) {
        let words = |key: &str| -> Vec<String> {
            stanza
                .value(key)
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_string)
                .collect()
        };
        let enabled = !stanza
            .value("Enabled")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("no"));
        let options: Vec<(&'static str, String)> = DEB822_OPTIONS
            .iter()
            .filter_map(|(key, _)| Some((*key, stanza.value(key)?)))
            .collect();
        let Some(suites) = stanza.field("Suites") else {
            continue;
        };
        for (line, part) in &suites.lines {
            for suite in part.split_whitespace() {
                found.push(Source {
                    file: file.to_path_buf(),
                    line: *line,
                    deb822: true,
                    enabled,
                    types: words("Types"),
                    uris: words("URIs"),
                    suite: suite.to_string(),
                    components: words("Components"),
                    options: Options::Stanza(stanza.line, options.clone()),
                });
            }
        }
    }
    found
}

/// A `deb`/`deb-src` line of a one-line-style file, as byte ranges of the line.
pub(super) struct ListLine {
    pub(super) kind: Range<usize>,
    pub(super) options: Option<Range<usize>>,
    pub(super) uri: Range<usize>,
    pub(super) suite: Range<usize>,
    pub(super) components: Vec<Range<usize>>,
}

impl ListLine {
    /// The parts of `line`; `None` for a comment, a blank line, another type,
    /// or a line APT would reject (no suite, an unclosed `[` or `"`).
    pub(super) fn parse(line: &str) -> Option<ListLine> {
        let mut words = words(&line[..active_end(line)])?.into_iter();
        let kind = words.next()?;
        if !matches!(&line[kind.clone()], "deb" | "deb-src") {
            return None;
        }
        let mut uri = words.next()?;
        let mut options = None;
        if line[uri.clone()].starts_with('[') {
            options = Some(uri);
            uri = words.next()?;
        }
        let suite = words.next()?;
        Some(ListLine {
            kind,
            options,
            uri,
            suite,
            components: words.collect(),
        })
    }
}

/// Where the comment of a one-line-style line starts (its length if none):
/// at the first `#` that is not inside brackets, as APT counts them (the `[`
/// before it outnumber the `]`).
fn active_end(line: &str) -> usize {
    let (mut open, mut closed) = (0usize, 0usize);
    for (i, b) in line.bytes().enumerate() {
        match b {
            b'[' => open += 1,
            b']' => closed += 1,
            b'#' if open <= closed => return i,
            _ => {}
        }
    }
    line.len()
}

/// The words of `text` as APT splits a sources line: white space separates
/// them, except inside `[…]` and `"…"`. `None` when a `[` or `"` is not
/// closed (APT rejects the line).
fn words(text: &str) -> Option<Vec<Range<usize>>> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
            let close = match bytes[i] {
                b'[' => Some(b']'),
                b'"' => Some(b'"'),
                _ => None,
            };
            if let Some(close) = close {
                i += 1 + bytes[i + 1..].iter().position(|&b| b == close)?;
            }
            i += 1;
        }
        found.push(start..i);
    }
    Some(found)
}

/// Where a deb822 file is, line by line: in which field (comments, which
/// APT allows inside a stanza, keep the field open; a blank line ends the stanza).
#[derive(Default)]
pub(super) struct Deb822Cursor {
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
    pub(super) fn suites_value<'a>(&mut self, line: &'a str) -> Option<&'a str> {
        let (key, offset) = self.next(line)?;
        key.eq_ignore_ascii_case("suites").then(|| &line[offset..])
    }
}

/// One field of a deb822 stanza: its name and the value part of each of its
/// lines (1-based), trimmed: the first, then the continuation lines.
struct Field {
    key: String,
    lines: Vec<(usize, String)>,
}

/// One stanza of a deb822 file: its first line (1-based) and its fields.
struct Stanza {
    line: usize,
    fields: Vec<Field>,
}

impl Stanza {
    fn field(&self, key: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.key.eq_ignore_ascii_case(key))
    }

    /// The value of `key`, its lines joined by `\n`.
    fn value(&self, key: &str) -> Option<String> {
        let lines = &self.field(key)?.lines;
        let parts: Vec<&str> = lines
            .iter()
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
            .collect();
        Some(parts.join("\n"))
    }
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
        let value = (i + 1, line[offset..].trim().to_string());
        match stanza.fields.last_mut() {
            Some(field) if offset == 0 && field.key == key => field.lines.push(value),
            _ => stanza.fields.push(Field {
                key,
                lines: vec![value],
            }),
        }
    }
    stanzas
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(line: &str) -> Option<(Option<&str>, &str, &str, Vec<&str>)> {
        let p = ListLine::parse(line)?;
        Some((
            p.options.map(|o| &line[o]),
            &line[p.uri],
            &line[p.suite],
            p.components.into_iter().map(|c| &line[c]).collect(),
        ))
    }

    #[test]
    fn a_disc_label_with_spaces_is_one_uri() {
        let line = "deb cdrom:[Debian GNU/Linux 7.0 _Wheezy_ - Official amd64 DVD Binary-1 20130504-14:43]/ wheezy main contrib";
        assert_eq!(
            parts(line),
            Some((
                None,
                "cdrom:[Debian GNU/Linux 7.0 _Wheezy_ - Official amd64 DVD Binary-1 20130504-14:43]/",
                "wheezy",
                vec!["main", "contrib"]
            ))
        );
        // With options, tabs, and a `#` inside the label (not a comment).
        let line = "deb-src\t[ arch=amd64 ]  cdrom:[Debian 7 #1 _Wheezy_]/\twheezy main # the DVD";
        assert_eq!(
            parts(line),
            Some((
                Some("[ arch=amd64 ]"),
                "cdrom:[Debian 7 #1 _Wheezy_]/",
                "wheezy",
                vec!["main"]
            ))
        );
    }

    #[test]
    fn options_comments_and_quotes_as_apt_splits_them() {
        assert_eq!(
            parts("deb [arch=amd64 trusted=yes] http://mirror/debian wheezy main#no space"),
            Some((
                Some("[arch=amd64 trusted=yes]"),
                "http://mirror/debian",
                "wheezy",
                vec!["main"]
            ))
        );
        assert_eq!(
            parts("  deb \"http://mirror/my debian\" wheezy/"),
            Some((None, "\"http://mirror/my debian\"", "wheezy/", vec![]))
        );
        for not_a_source in [
            "# deb http://mirror/debian wheezy main",
            "#deb cdrom:[Debian 7]/ wheezy main",
            "deb http://mirror/debian",
            "deb [arch=amd64 http://mirror/debian wheezy main",
            "deb cdrom:[Debian 7 wheezy main",
            "rpm http://mirror/debian wheezy main",
            "debian http://mirror/debian wheezy main",
            "",
        ] {
            assert!(parts(not_a_source).is_none(), "{not_a_source}");
        }
    }

    #[test]
    fn deb822_stanzas_give_one_source_per_suite_with_its_line() {
        let text = "\
Types: deb deb-src
URIs: http://deb.debian.org/debian http://mirror/debian
Suites: wheezy
# a comment inside the stanza
 wheezy-updates
Components: main contrib
Architectures: amd64
 i386

Enabled: no
Types: deb
URIs: cdrom:[Debian7]/
Suites: wheezy
Components: main
";
        let found = parse(text, true, Path::new("/etc/apt/sources.list.d/d.sources"));
        let summary: Vec<(usize, &str, bool, usize, bool)> = found
            .iter()
            .map(|s| {
                (
                    s.line,
                    s.suite.as_str(),
                    s.enabled,
                    s.uris.len(),
                    s.is_disc(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (3, "wheezy", true, 2, false),
                (5, "wheezy-updates", true, 2, false),
                (13, "wheezy", false, 1, true)
            ]
        );
        assert_eq!(found[0].components, ["main", "contrib"]);
        assert_eq!(
            found[0].options,
            Options::Stanza(1, vec![("Architectures", "amd64\ni386".to_string())])
        );
    }
}
