//! The Apache and nginx configuration as the servers read it, and the one
//! change the upgrade makes in it: gunicorn 19 reads `X-Forwarded-Proto`, not
//! `X-Forwarded-Protocol`.
//!
//! - Which files: Apache's `apache2.conf` and the files in `sites-available`,
//!   `sites-enabled`, `conf.d`, `conf-available`, `conf-enabled` and
//!   `mods-enabled`; nginx's `nginx.conf`, `proxy_params` and the files in
//!   `sites-available`, `sites-enabled`, `conf.d` and `snippets` (editor and
//!   dpkg leftovers skipped); and every file these include, the way the
//!   server finds it: Apache's `Include`/`IncludeOptional` relative to its
//!   `ServerRoot` (`/etc/apache2` unless `apache2.conf` sets another; a
//!   directory stands for the files under it, leftovers skipped), nginx's
//!   `include` relative to `/etc/nginx`; wildcards (`*`, `?`, `[…]`) in any
//!   component, matching no leading dot. Each file is read once, so a cycle
//!   of includes ends. An include that leads outside `/etc` (or names a
//!   variable) is not followed, and one that names a file the layout
//!   conversion renames must be changed: a warning names each, `file:line`.
//! - Statements, not lines: Apache's directives (one per line, a `\` at the
//!   end continues it, a line starting with `#` is a comment; names in any
//!   case), nginx's (ended by `;`, `{` or `}`, several on a line or one over
//!   several, a `#` starting a word comments out the rest of the line).
//! - What changes: the header name of Apache's `RequestHeader ACTION HEADER …`
//!   and nginx's `proxy_set_header HEADER VALUE`, quoted or not, any case;
//!   every other byte is kept. Any other mention of the header outside a
//!   comment (`Header set`, `SetEnvIf`, `more_set_input_headers`, …) is not
//!   changed: a warning names its `file:line`. Comments are neither changed
//!   nor reported.
//!
//! Read-only; the edits are [`Change::Edit`]s that [`super::Conversion::apply`] writes.

use anyhow::Result;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use super::hostile::is_ours;
use super::{is_leftover, list_dir, read_through, Change, Conversion, Loaded};
use crate::base::fsx::Root;

const OLD_HEADER: &[u8] = b"X-Forwarded-Protocol";
const NEW_HEADER: &[u8] = b"X-Forwarded-Proto";
/// What an edit says it did.
pub const WHAT: &str = "X-Forwarded-Protocol -> X-Forwarded-Proto";

/// Which web server's syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// `RequestHeader ACTION HEADER …`, `Include PATH`.
    Apache,
    /// `proxy_set_header HEADER VALUE;`, `include PATH;`.
    Nginx,
}

impl Server {
    /// Where its configuration lives, and relative includes start.
    fn conf_dir(self) -> &'static str {
        match self {
            Server::Apache => "/etc/apache2",
            Server::Nginx => "/etc/nginx",
        }
    }

    /// Its main file.
    fn main_file(self) -> &'static str {
        match self {
            Server::Apache => "/etc/apache2/apache2.conf",
            Server::Nginx => "/etc/nginx/nginx.conf",
        }
    }

    /// The files read whether or not something includes them (after the
    /// directories, so that a file is named by its directory first).
    fn files(self) -> &'static [&'static str] {
        match self {
            Server::Apache => &["/etc/apache2/apache2.conf"],
            Server::Nginx => &["/etc/nginx/nginx.conf", "/etc/nginx/proxy_params"],
        }
    }

    /// The directories whose files are read whether or not included.
    fn dirs(self) -> &'static [&'static str] {
        match self {
            Server::Apache => &[
                "/etc/apache2/sites-available",
                "/etc/apache2/conf.d",
                "/etc/apache2/sites-enabled",
                "/etc/apache2/conf-available",
                "/etc/apache2/conf-enabled",
                "/etc/apache2/mods-enabled",
            ],
            Server::Nginx => &[
                "/etc/nginx/sites-available",
                "/etc/nginx/sites-enabled",
                "/etc/nginx/conf.d",
                "/etc/nginx/snippets",
            ],
        }
    }

    /// The directive that sets a request header, and the index of its header word.
    fn header_directive(self) -> (&'static [u8], usize) {
        match self {
            Server::Apache => (b"RequestHeader", 2),
            Server::Nginx => (b"proxy_set_header", 1),
        }
    }

    fn is_include(self, word: &[u8]) -> bool {
        match self {
            Server::Apache => {
                word.eq_ignore_ascii_case(b"Include")
                    || word.eq_ignore_ascii_case(b"IncludeOptional")
            }
            Server::Nginx => word.eq_ignore_ascii_case(b"include"),
        }
    }
}

/// A byte range of a file.
type Span = (usize, usize);

/// What one file holds for us.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The header names to rename (quotes excluded).
    pub renames: Vec<Span>,
    /// Other mentions of the header outside comments: where each starts.
    pub mentions: Vec<usize>,
    /// Includes: where the directive starts, and its argument (unquoted).
    pub includes: Vec<(usize, Vec<u8>)>,
    /// Apache's `ServerRoot`, when the file sets it.
    pub server_root: Option<Vec<u8>>,
}

/// Length of the end of line at `i` (0 when there is none).
fn eol_len(src: &[u8], i: usize) -> usize {
    match src.get(i) {
        Some(b'\n') => 1,
        Some(b'\r') if src.get(i + 1) == Some(&b'\n') => 2,
        Some(b'\r') => 1,
        _ => 0,
    }
}

fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\x0b' | b'\x0c')
}

/// The end of a quoted word starting at `start` (just past its closing
/// quote, or where the line ends); `\` escapes, and a `\` before an end of
/// line continues the line.
fn quoted_end(src: &[u8], start: usize, continues: bool) -> usize {
    let q = src[start];
    let mut i = start + 1;
    while i < src.len() && src[i] != q {
        if src[i] == b'\\' {
            let e = eol_len(src, i + 1);
            i += if e > 0 && continues { 1 + e } else { 2 };
            continue;
        }
        if !continues && eol_len(src, i) > 0 {
            // nginx strings may span lines.
            i += 1;
            continue;
        }
        if eol_len(src, i) > 0 {
            return i;
        }
        i += 1;
    }
    (i + 1).min(src.len())
}

/// Apache's statements: the words of each directive, comments left out.
fn apache_statements(src: &[u8]) -> Vec<Vec<Span>> {
    let mut out = Vec::new();
    let mut words: Vec<Span> = Vec::new();
    let mut comment = false;
    let mut i = 0;
    while i < src.len() {
        let continuation = if src[i] == b'\\' {
            eol_len(src, i + 1)
        } else {
            0
        };
        if continuation > 0 {
            i += 1 + continuation;
            continue;
        }
        let e = eol_len(src, i);
        if e > 0 {
            if !comment && !words.is_empty() {
                out.push(std::mem::take(&mut words));
            }
            words.clear();
            comment = false;
            i += e;
            continue;
        }
        if is_blank(src[i]) || comment {
            i += 1;
            continue;
        }
        if words.is_empty() && src[i] == b'#' {
            comment = true;
            i += 1;
            continue;
        }
        let start = i;
        if src[i] == b'"' || src[i] == b'\'' {
            i = quoted_end(src, i, true);
        } else {
            while i < src.len()
                && !is_blank(src[i])
                && eol_len(src, i) == 0
                && !(src[i] == b'\\' && eol_len(src, i + 1) > 0)
            {
                i += 1;
            }
        }
        words.push((start, i));
    }
    if !comment && !words.is_empty() {
        out.push(words);
    }
    out
}

/// nginx's statements: the words of each directive up to its `;` or `{`,
/// comments left out.
fn nginx_statements(src: &[u8]) -> Vec<Vec<Span>> {
    let mut out = Vec::new();
    let mut words: Vec<Span> = Vec::new();
    let mut i = 0;
    while i < src.len() {
        let b = src[i];
        if b.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if b == b'#' {
            while i < src.len() && eol_len(src, i) == 0 {
                i += 1;
            }
            continue;
        }
        if matches!(b, b';' | b'{' | b'}') {
            if !words.is_empty() {
                out.push(std::mem::take(&mut words));
            }
            i += 1;
            continue;
        }
        let start = i;
        if b == b'"' || b == b'\'' {
            i = quoted_end(src, i, false);
        } else {
            while i < src.len() {
                let c = src[i];
                if c == b'\\' {
                    i = (i + 2).min(src.len());
                    continue;
                }
                // `${name}` is a variable, not a block.
                let variable = c == b'{' && i > start && src[i - 1] == b'$';
                if !variable && (c.is_ascii_whitespace() || c == b';' || c == b'{') {
                    break;
                }
                i += 1;
            }
        }
        words.push((start, i));
    }
    if !words.is_empty() {
        out.push(words);
    }
    out
}

/// `word` without its enclosing quotes: the range inside them.
fn unquoted(src: &[u8], (s, e): Span) -> Span {
    let word = &src[s..e];
    match (word.first(), word.last()) {
        (Some(a), Some(b)) if word.len() >= 2 && a == b && (*a == b'"' || *a == b'\'') => {
            (s + 1, e - 1)
        }
        _ => (s, e),
    }
}

/// Where the header's name stands alone in `src[span]` (not inside a longer name).
fn header_at(src: &[u8], (s, e): Span) -> Vec<usize> {
    let n = OLD_HEADER.len();
    let part_of_name = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    (s..e.saturating_sub(n - 1))
        .filter(|&p| {
            src[p..p + n].eq_ignore_ascii_case(OLD_HEADER)
                && (p == s || !part_of_name(src[p - 1]))
                && (p + n == e || !part_of_name(src[p + n]))
        })
        .collect()
}

/// What `src` holds for us, read as `server`'s configuration.
pub fn parse(src: &[u8], server: Server) -> Parsed {
    let statements = match server {
        Server::Apache => apache_statements(src),
        Server::Nginx => nginx_statements(src),
    };
    let (directive, index) = server.header_directive();
    let mut parsed = Parsed::default();
    for words in statements {
        let (s, e) = unquoted(src, words[0]);
        let name = &src[s..e];
        let arg = |i: usize| {
            words.get(i).map(|&w| {
                let (s, e) = unquoted(src, w);
                src[s..e].to_vec()
            })
        };
        let mut renamed = None;
        if name.eq_ignore_ascii_case(directive) {
            if let Some(&w) = words.get(index) {
                let (s, e) = unquoted(src, w);
                if src[s..e].eq_ignore_ascii_case(OLD_HEADER) {
                    parsed.renames.push((s, e));
                    renamed = Some(s);
                }
            }
        } else if server.is_include(name) {
            if let Some(path) = arg(1) {
                parsed.includes.push((words[0].0, path));
            }
        } else if server == Server::Apache && name.eq_ignore_ascii_case(b"ServerRoot") {
            parsed.server_root = arg(1);
        }
        for &w in &words {
            parsed.mentions.extend(
                header_at(src, w)
                    .into_iter()
                    .filter(|p| Some(*p) != renamed),
            );
        }
    }
    parsed
}

/// `src` with the header renamed wherever `server` sets it; and how many times.
pub fn rewrite_header(src: &[u8], server: Server) -> (Vec<u8>, usize) {
    let parsed = parse(src, server);
    (rename(src, &parsed.renames), parsed.renames.len())
}

fn rename(src: &[u8], spans: &[Span]) -> Vec<u8> {
    let mut out = Vec::with_capacity(src.len());
    let mut at = 0;
    for &(s, e) in spans {
        out.extend_from_slice(&src[at..s]);
        out.extend_from_slice(NEW_HEADER);
        at = e;
    }
    out.extend_from_slice(&src[at..]);
    out
}

/// The 1-based line of byte `offset`.
fn line_of(src: &[u8], offset: usize) -> usize {
    let mut line = 1;
    let mut i = 0;
    while i < offset.min(src.len()) {
        let e = eol_len(src, i);
        if e > 0 {
            line += 1;
            i += e;
        } else {
            i += 1;
        }
    }
    line
}

/// What a node path is, read through its links.
enum Found {
    File(Loaded),
    Dir(Vec<OsString>),
    Other,
}

/// The one place this module reads the file system (through
/// [`read_through`] and [`list_dir`]): node path `abs` read through its
/// links, and the real path it leads to. What lies outside `/etc` is read
/// only when `outside` says so.
fn open(root: &Root, abs: &Path, outside: bool) -> Result<(PathBuf, Found)> {
    let real = root.resolve(abs)?;
    if !outside && !is_ours(&real) {
        return Ok((real, Found::Other));
    }
    if fs::metadata(root.path(&real)).is_ok_and(|m| m.is_dir()) {
        let names = list_dir(root, &real)?;
        return Ok((real, Found::Dir(names)));
    }
    let found = match read_through(root, abs)? {
        Some(loaded) => Found::File(loaded),
        None => Found::Other,
    };
    Ok((real, found))
}

/// Whether `name` matches the shell wildcard `pattern` (`*`, `?`, `[…]`
/// with `!` or `^` and ranges, `\` escapes); a leading dot only explicitly.
fn wildcard(pattern: &[u8], name: &[u8]) -> bool {
    if name.first() == Some(&b'.') && pattern.first() != Some(&b'.') {
        return false;
    }
    fn go(p: &[u8], n: &[u8]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some(b'*') => (0..=n.len()).any(|i| go(&p[1..], &n[i..])),
            Some(b'?') => !n.is_empty() && go(&p[1..], &n[1..]),
            Some(b'[') => {
                let Some(&c) = n.first() else {
                    return false;
                };
                let mut i = 1;
                let negate = matches!(p.get(i), Some(b'!' | b'^'));
                if negate {
                    i += 1;
                }
                let mut hit = false;
                let mut first = true;
                while i < p.len() && (first || p[i] != b']') {
                    first = false;
                    let lo = p[i];
                    if p.get(i + 1) == Some(&b'-') && p.get(i + 2).is_some_and(|b| *b != b']') {
                        hit |= lo <= c && c <= p[i + 2];
                        i += 3;
                    } else {
                        hit |= lo == c;
                        i += 1;
                    }
                }
                if i >= p.len() {
                    // No closing bracket: a literal '['.
                    return c == b'[' && go(&p[1..], &n[1..]);
                }
                hit != negate && go(&p[i + 1..], &n[1..])
            }
            Some(b'\\') if p.len() > 1 => n.first() == Some(&p[1]) && go(&p[2..], &n[1..]),
            Some(c) => n.first() == Some(c) && go(&p[1..], &n[1..]),
        }
    }
    go(pattern, name)
}

fn has_wildcard(name: &[u8]) -> bool {
    name.iter().any(|b| matches!(b, b'*' | b'?' | b'['))
}

/// A file to read: the path it is known by, its server, and what included it.
struct Pending {
    shown: PathBuf,
    server: Server,
    from: Option<(PathBuf, usize)>,
}

/// The walk over every file the servers read.
struct Walk<'a> {
    root: &'a Root,
    /// Real paths read already.
    seen: BTreeSet<PathBuf>,
    /// Files with something for us, in the order first reached.
    found: Vec<(Loaded, Parsed)>,
    warnings: Vec<String>,
    /// Node paths the layout conversion moves: from → to.
    moved: &'a BTreeMap<PathBuf, PathBuf>,
    /// Where relative includes start.
    base: PathBuf,
}

impl Walk<'_> {
    /// Warns that the include at `from` of `shown`, which leads to `real`, is not followed.
    fn warn_outside(&mut self, (file, line): &(PathBuf, usize), shown: &Path, real: &Path) {
        let leads = if real == shown {
            String::new()
        } else {
            format!(", which leads to '{}'", real.display())
        };
        self.warnings.push(format!(
            "'{}:{line}' includes '{}'{leads}, outside /etc: not followed; if it sets X-Forwarded-Protocol, rename that to X-Forwarded-Proto there (gunicorn 19 reads only that)",
            file.display(),
            shown.display()
        ));
    }

    /// Every file `stack` leads to, depth first.
    fn run(&mut self, mut stack: Vec<Pending>) -> Result<()> {
        stack.reverse();
        while let Some(next) = stack.pop() {
            // A file found in a directory is read wherever its link leads, so
            // that an edit it needs is refused (`hostile::refused`); an
            // include out of /etc is not followed.
            let included = next.from.is_some();
            let (real, found) = open(self.root, &next.shown, !included)?;
            if let Some(from) = next.from.as_ref().filter(|_| !is_ours(&real)) {
                self.warn_outside(from, &next.shown, &real);
                continue;
            }
            match found {
                Found::File(mut loaded) => {
                    // Named without `..` where that leads to the same file.
                    let tidy = super::webserver::lexical(&loaded.shown);
                    if self.root.resolve(&tidy).ok().as_ref() == Some(&loaded.real) {
                        loaded.shown = tidy;
                    }
                    self.file(loaded, next.server, &mut stack)?
                }
                // Apache reads every file under an included directory.
                Found::Dir(names) if next.server == Server::Apache && included => {
                    if !self.seen.insert(real) {
                        continue;
                    }
                    for name in names.into_iter().rev() {
                        if !is_leftover(name.as_bytes()) {
                            stack.push(Pending {
                                shown: next.shown.join(name),
                                server: next.server,
                                from: next.from.clone(),
                            });
                        }
                    }
                }
                Found::Dir(_) | Found::Other => {}
            }
        }
        Ok(())
    }

    /// Reads one file: its includes go on `stack`.
    fn file(&mut self, loaded: Loaded, server: Server, stack: &mut Vec<Pending>) -> Result<()> {
        if !self.seen.insert(loaded.real.clone()) {
            return Ok(());
        }
        let parsed = parse(&loaded.bytes, server);
        let mut next = Vec::new();
        for (offset, pattern) in &parsed.includes {
            let line = line_of(&loaded.bytes, *offset);
            let from = (loaded.shown.clone(), line);
            for shown in self.expand(&from, pattern)? {
                next.push(Pending {
                    shown,
                    server,
                    from: Some(from.clone()),
                });
            }
        }
        stack.extend(next.into_iter().rev());
        if !parsed.renames.is_empty() || !parsed.mentions.is_empty() {
            self.found.push((loaded, parsed));
        }
        Ok(())
    }

    /// The node paths an include names, wildcards matched; directories the
    /// match would list outside `/etc` are reported instead.
    fn expand(&mut self, from: &(PathBuf, usize), pattern: &[u8]) -> Result<Vec<PathBuf>> {
        if pattern.is_empty() {
            return Ok(Vec::new());
        }
        if pattern.windows(2).any(|w| w == b"${") {
            self.warnings.push(format!(
                "'{}:{}' includes '{}', which names a variable: not followed; if it sets X-Forwarded-Protocol, rename that to X-Forwarded-Proto there (gunicorn 19 reads only that)",
                from.0.display(),
                from.1,
                String::from_utf8_lossy(pattern)
            ));
            return Ok(Vec::new());
        }
        let pattern = Path::new(OsStr::from_bytes(pattern));
        let full = self.base.join(pattern);
        if !has_wildcard(full.as_os_str().as_bytes()) {
            if let Some(to) = self.moved.get(&super::webserver::lexical(&full)) {
                self.warnings.push(format!(
                    "'{}:{}' includes '{}', which the conversion moves to '{}': change the include to the new name",
                    from.0.display(),
                    from.1,
                    full.display(),
                    to.display()
                ));
            }
            return Ok(vec![full]);
        }
        let mut paths = vec![PathBuf::from("/")];
        for part in full.components() {
            let name = match part {
                Component::Normal(n) if has_wildcard(n.as_bytes()) => n,
                Component::RootDir | Component::Prefix(_) => continue,
                other => {
                    for p in &mut paths {
                        p.push(other);
                    }
                    continue;
                }
            };
            let mut matched = Vec::new();
            for dir in paths {
                match open(self.root, &dir, false)? {
                    (real, _) if !is_ours(&real) => self.warn_outside(from, &full, &real),
                    (_, Found::Dir(names)) => matched.extend(
                        names
                            .into_iter()
                            .filter(|n| wildcard(name.as_bytes(), n.as_bytes()))
                            .map(|n| dir.join(n)),
                    ),
                    _ => {}
                }
            }
            paths = matched;
        }
        Ok(paths)
    }
}

/// Adds the header edits (and warnings for what is left) to `out`, for every
/// file the servers read. `out.changes` holds the layout's renames and
/// relinks already: an edit of a file moved by them is made at its new name.
pub fn plan(root: &Root, out: &mut Conversion) -> Result<()> {
    let mut moved_file = BTreeMap::new();
    let mut moved = BTreeMap::new();
    for change in &out.changes {
        match change {
            Change::Rename { from, to } => {
                moved_file.insert(from.clone(), to.clone());
                moved.insert(from.clone(), to.clone());
            }
            Change::Relink { from, to, .. } => {
                moved.insert(from.clone(), to.clone());
            }
            _ => {}
        }
    }
    let mut found = Vec::new();
    let mut warnings = Vec::new();
    let mut seen = BTreeSet::new();
    for server in [Server::Apache, Server::Nginx] {
        let base = match server {
            Server::Apache => apache_server_root(root)?,
            Server::Nginx => PathBuf::from(server.conf_dir()),
        };
        let mut walk = Walk {
            root,
            seen: std::mem::take(&mut seen),
            found: Vec::new(),
            warnings: Vec::new(),
            moved: &moved,
            base,
        };
        let mut start = Vec::new();
        for dir in server.dirs() {
            for name in list_dir(root, Path::new(dir))? {
                if !is_leftover(name.as_bytes()) {
                    start.push(Path::new(dir).join(name));
                }
            }
        }
        start.extend(server.files().iter().map(PathBuf::from));
        walk.run(
            start
                .into_iter()
                .map(|shown| Pending {
                    shown,
                    server,
                    from: None,
                })
                .collect(),
        )?;
        seen = walk.seen;
        found.extend(walk.found);
        warnings.extend(walk.warnings);
    }
    for (loaded, parsed) in found {
        for &at in &parsed.mentions {
            warnings.push(format!(
                "'{}:{}' names X-Forwarded-Protocol, not as the header a RequestHeader or proxy_set_header sets: not converted; if it passes the scheme on to gunicorn, change it to X-Forwarded-Proto by hand (gunicorn 19 reads only that)",
                loaded.shown.display(),
                line_of(&loaded.bytes, at),
            ));
        }
        if parsed.renames.is_empty() {
            continue;
        }
        let path = moved_file
            .get(&loaded.real)
            .cloned()
            .unwrap_or(loaded.real.clone());
        let shown = moved
            .get(&loaded.shown)
            .cloned()
            .unwrap_or(loaded.shown.clone());
        let new = rename(&loaded.bytes, &parsed.renames);
        out.changes.push(Change::Edit {
            path,
            shown,
            old: loaded.bytes,
            new,
            what: vec![WHAT.into()],
        });
    }
    out.warnings.extend(warnings);
    Ok(())
}

/// Apache's `ServerRoot`: what `apache2.conf` sets, else `/etc/apache2`.
fn apache_server_root(root: &Root) -> Result<PathBuf> {
    let main = Path::new(Server::Apache.main_file());
    let set = match open(root, main, false)? {
        (_, Found::File(loaded)) => parse(&loaded.bytes, Server::Apache).server_root,
        _ => None,
    };
    Ok(set
        .map(|s| PathBuf::from(OsStr::from_bytes(&s)))
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| PathBuf::from(Server::Apache.conf_dir())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `src` read as `server`'s: renamed `n` times into `want`; the lines
    /// of the other mentions.
    fn renamed(server: Server, src: &str, n: usize, want: &str) -> Vec<usize> {
        let (out, count) = rewrite_header(src.as_bytes(), server);
        assert_eq!((String::from_utf8(out).unwrap().as_str(), count), (want, n));
        let parsed = parse(src.as_bytes(), server);
        parsed
            .mentions
            .iter()
            .map(|&o| line_of(src.as_bytes(), o))
            .collect()
    }

    #[test]
    fn apache_request_headers_any_action_case_quoting_and_continuation() {
        let mentions = renamed(
            Server::Apache,
            "  RequestHeader set X-Forwarded-Protocol \"https\"\r\n#RequestHeader set X-Forwarded-Protocol \"https\"\nrequestheader SET \"x-forwarded-protocol\" https early\nRequestHeader set X-Forwarded-Protocol-Other x\nHeader set X-Forwarded-Protocol x\nRequestHeader setifempty \\\n  'X-Forwarded-Protocol' https\n# a comment \\\nRequestHeader set X-Forwarded-Protocol continued-comment\n",
            3,
            "  RequestHeader set X-Forwarded-Proto \"https\"\r\n#RequestHeader set X-Forwarded-Protocol \"https\"\nrequestheader SET \"X-Forwarded-Proto\" https early\nRequestHeader set X-Forwarded-Protocol-Other x\nHeader set X-Forwarded-Protocol x\nRequestHeader setifempty \\\n  'X-Forwarded-Proto' https\n# a comment \\\nRequestHeader set X-Forwarded-Protocol continued-comment\n",
        );
        assert_eq!(mentions, [5], "Header set is reported");
    }

    #[test]
    fn nginx_statements_on_one_line_over_lines_and_around_comments() {
        let mentions = renamed(
            Server::Nginx,
            "server { location / { proxy_set_header X-Forwarded-Protocol $scheme; proxy_pass http://x; } } # proxy_set_header X-Forwarded-Protocol $scheme;\n\tproxy_set_header\n\t\t\"X-FORWARDED-PROTOCOL\" $scheme;proxy_set_header Host $host;\nproxy_set_header X-Forwarded-Protocol;\nmore_set_input_headers 'X-Forwarded-Protocol: https';\nset $a \"${b}X-Forwarded-Protocol\"; add_header X-Forwarded-Protocol x#y;\n",
            3,
            "server { location / { proxy_set_header X-Forwarded-Proto $scheme; proxy_pass http://x; } } # proxy_set_header X-Forwarded-Protocol $scheme;\n\tproxy_set_header\n\t\t\"X-Forwarded-Proto\" $scheme;proxy_set_header Host $host;\nproxy_set_header X-Forwarded-Proto;\nmore_set_input_headers 'X-Forwarded-Protocol: https';\nset $a \"${b}X-Forwarded-Protocol\"; add_header X-Forwarded-Protocol x#y;\n",
        );
        assert_eq!(mentions, [5, 6, 6]);
    }

    #[test]
    fn includes_and_server_root() {
        let src = b"ServerRoot \"/srv/httpd\"\nInclude ports.conf\n  includeoptional \"conf-enabled/*.conf\"\n# Include nope\n";
        let parsed = parse(src, Server::Apache);
        assert_eq!(parsed.server_root.as_deref(), Some(&b"/srv/httpd"[..]));
        let inc: Vec<(usize, &[u8])> = parsed
            .includes
            .iter()
            .map(|(o, p)| (line_of(src, *o), p.as_slice()))
            .collect();
        assert_eq!(inc, [(2, &b"ports.conf"[..]), (3, b"conf-enabled/*.conf")]);
        let src =
            b"http { include mime.types; include /etc/nginx/sites-enabled/*; } # include x;\n";
        let parsed = parse(src, Server::Nginx);
        let inc: Vec<&[u8]> = parsed.includes.iter().map(|(_, p)| p.as_slice()).collect();
        assert_eq!(inc, [&b"mime.types"[..], b"/etc/nginx/sites-enabled/*"]);
    }

    #[test]
    fn wildcards_as_the_shell_matches_them() {
        assert!(wildcard(b"*.conf", b"synnefo.conf"));
        assert!(!wildcard(b"*.conf", b"synnefo.conf~"));
        assert!(!wildcard(b"*", b".hidden"));
        assert!(wildcard(b".*", b".hidden"));
        assert!(wildcard(b"site-?[0-9]", b"site-a7"));
        assert!(!wildcard(b"site-[!0-9]", b"site-7"));
        assert!(wildcard(b"a[]b]c", b"a]c"));
        assert!(wildcard(b"a\\*", b"a*"));
        assert!(!wildcard(b"a\\*", b"ab"));
        assert!(wildcard(b"[x", b"[x"));
    }

    #[test]
    fn lines_count_every_end_of_line_style() {
        assert_eq!(line_of(b"a\r\nb\rc\nd", 7), 4);
        assert_eq!(line_of(b"abc", 2), 1);
    }
}
