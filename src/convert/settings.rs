//! Synnefo settings: the effective assignments over `/etc/synnefo/*.conf`, and
//! the 0.19 conversions of the guide made on them.
//!
//! Synnefo `execfile`s every regular file (links followed) ending in `.conf` in
//! `/etc/synnefo`, sorted by name, and the last assignment of a setting wins.
//! This module reads them the same way, finds the winning top-level assignment
//! of each setting it converts and edits the file that holds it (through a
//! symbolic link, the target; the link stays). Commented defaults (`#KEY = …`)
//! are comments and stay so. Every other byte of every file is kept.
//!
//! Conversions (docs/design.md §2):
//! - `VMAPI_CACHE_BACKEND` (else `CACHE_BACKEND`, which 0.18.1 fell back to) and
//!   `VMAPI_CACHE_KEY_PREFIX` → `VMAPI_CACHE`;
//! - `CACHE_BACKEND` → `PUBLIC_STATS_CACHE` (`KEY_PREFIX` `publicstats`, `TIMEOUT`
//!   300) and `VM_PASSWORD_CACHE` (`vmpassword`, `TIMEOUT` `None`), the guide's
//!   values; `PUBLIC_STATS_CACHE_POPULATE_INTERVAL` → `PUBLIC_STATS_CACHE["TIMEOUT"]`.
//!   Each of the four obsolete settings is commented out wherever it is
//!   assigned, under a marker line naming the conversion; the new dicts follow
//!   the winning assignment. A new setting the operator already set is kept.
//! - `BACKEND_ALLOCATOR_MODULE`: the 0.18.1 default becomes the FilterAllocator;
//!   any other value is kept, with a warning.
//! - `ALLOWED_HOSTS`: set when `[convert] allowed_hosts` gives it.
//!
//! Refused (exit 2, file and line named, nothing written): a file Python would
//! not parse; a converted setting assigned other than as a top-level `NAME =
//! value` (inside an `if`, chained, augmented, by subscript) or sharing its line
//! with another statement; a value to convert that is not a literal; an
//! obsolete setting read by another statement (commenting it out would break it).

use anyhow::Result;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use super::caches::{self, Cache};
use super::python::{self, Assigns, Expr, ExprKind, Kind, Lit, Module, Stmt};
use super::{
    apply_edits, bad, eol_at, list_dir, read_through, split_lines, Conversion, Edit, Loaded,
};
use crate::base::fsx::Root;
use crate::inputs::config::Convert;

/// Where Synnefo reads its settings.
pub const SETTINGS_DIR: &str = "/etc/synnefo";
/// The 0.18.1 default allocator.
pub const OLD_ALLOCATOR: &str = "synnefo.logic.allocators.default_allocator.DefaultAllocator";
/// The 0.19 default allocator.
pub const NEW_ALLOCATOR: &str = "synnefo.logic.allocators.filter_allocator.FilterAllocator";
/// The start of every marker line we write.
pub const MARKER: &str = "# synnefo-upgrade-0.19:";

const VMAPI_BACKEND: &str = "VMAPI_CACHE_BACKEND";
const VMAPI_PREFIX: &str = "VMAPI_CACHE_KEY_PREFIX";
const CACHE_BACKEND: &str = "CACHE_BACKEND";
const INTERVAL: &str = "PUBLIC_STATS_CACHE_POPULATE_INTERVAL";
const OBSOLETE: [&str; 4] = [VMAPI_BACKEND, VMAPI_PREFIX, CACHE_BACKEND, INTERVAL];
const VMAPI_CACHE: &str = "VMAPI_CACHE";
const STATS_CACHE: &str = "PUBLIC_STATS_CACHE";
const PASSWORD_CACHE: &str = "VM_PASSWORD_CACHE";
const ALLOCATOR: &str = "BACKEND_ALLOCATOR_MODULE";
const ALLOWED_HOSTS: &str = "ALLOWED_HOSTS";
/// Where Synnefo 0.19 ships the commented `ALLOWED_HOSTS` default.
const DEPLOY_CONF: &str = "10-snf-webproject-deploy.conf";

/// One settings file, parsed.
pub struct File {
    /// Where it was read.
    pub loaded: Loaded,
    /// Its tokens.
    pub module: Module,
    /// Its assigning statements.
    pub stmts: Vec<Stmt>,
}

/// An assignment: file index, statement index.
type At = (usize, usize);

/// The settings directory, in Synnefo's order.
pub struct Settings {
    /// The files Synnefo executes, in order.
    pub files: Vec<File>,
}

impl Settings {
    /// Reads and tokenizes every settings file under `root`.
    pub fn load(root: &Root) -> Result<Settings> {
        let dir = Path::new(SETTINGS_DIR);
        let mut files = Vec::new();
        for name in list_dir(root, dir)? {
            let abs = dir.join(&name);
            if !abs.to_string_lossy().ends_with(".conf") {
                continue;
            }
            let Some(loaded) = read_through(root, &abs)? else {
                log::debug!("skipping '{}': not a regular file", abs.display());
                continue;
            };
            files.push(Self::parse(loaded)?);
        }
        Ok(Settings { files })
    }

    /// Parses one file's content.
    pub fn parse(loaded: Loaded) -> Result<File> {
        let module = python::tokenize(&loaded.bytes).map_err(|e| {
            let line = python::line_at(&python::line_starts(&loaded.bytes), e.offset);
            bad(&loaded.shown, line, e.message)
        })?;
        let stmts = python::assignments(&loaded.bytes, &module);
        Ok(File {
            loaded,
            module,
            stmts,
        })
    }

    fn stmt(&self, at: At) -> &Stmt {
        &self.files[at.0].stmts[at.1]
    }

    fn all(&self, name: &str) -> impl Iterator<Item = At> + '_ {
        let name = name.to_string();
        self.files.iter().enumerate().flat_map(move |(fi, f)| {
            let name = name.clone();
            f.stmts
                .iter()
                .enumerate()
                .filter(move |(_, s)| s.names.contains(&name))
                .map(move |(si, _)| (fi, si))
        })
    }

    /// Every top-level `NAME = value` of `name`, in execution order.
    fn simple(&self, name: &str) -> Vec<At> {
        self.all(name)
            .filter(|&at| self.stmt(at).kind == Assigns::Simple)
            .collect()
    }

    /// The literal value Synnefo sees for `name` (its winning top-level
    /// assignment), `None` when no file assigns it; a non-literal is an error
    /// naming file and line.
    pub fn literal(&self, name: &str) -> Result<Option<Expr>> {
        self.effective(name).map(|at| self.value(at)).transpose()
    }

    /// The assignment that wins.
    fn effective(&self, name: &str) -> Option<At> {
        self.simple(name).pop()
    }

    fn line(&self, at: At) -> usize {
        let f = &self.files[at.0];
        let s = &f.stmts[at.1];
        f.module.line(f.module.lines[s.line].start)
    }

    fn place(&self, at: At) -> String {
        format!(
            "{}:{}",
            self.files[at.0].loaded.shown.display(),
            self.line(at)
        )
    }

    fn error(&self, at: At, message: impl std::fmt::Display) -> anyhow::Error {
        bad(&self.files[at.0].loaded.shown, self.line(at), message)
    }

    /// Refuses assignments of `names` the converter cannot edit.
    fn ensure_editable(&self, names: &[&str]) -> Result<()> {
        for name in names {
            for at in self.all(name) {
                if self.stmt(at).kind == Assigns::Other {
                    return Err(self.error(
                        at,
                        format!(
                            "{name} is assigned here inside a block or by a compound statement; \
                             the converter only edits top-level `{name} = value`: convert it by hand"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn value_span(&self, at: At) -> (usize, usize) {
        let f = &self.files[at.0];
        let s = &f.stmts[at.1];
        let toks = &f.module.lines[s.line].tokens;
        match (
            toks.get(s.value.start),
            s.value.end.checked_sub(1).and_then(|e| toks.get(e)),
        ) {
            (Some(a), Some(b)) if s.value.start < s.value.end => (a.start, b.end),
            _ => (f.module.lines[s.line].end, f.module.lines[s.line].end),
        }
    }

    /// The literal value of an assignment, or an error naming it.
    fn value(&self, at: At) -> Result<Expr> {
        let f = &self.files[at.0];
        let s = &f.stmts[at.1];
        let toks = &f.module.lines[s.line].tokens[s.value.clone()];
        python::parse_literal(&f.loaded.bytes, toks).map_err(|e| {
            let line = f.module.line(e.offset);
            bad(
                &f.loaded.shown,
                line,
                format!(
                    "{}: {e}; only literal values can be converted: convert it by hand",
                    s.names[0]
                ),
            )
        })
    }

    fn string(&self, at: At) -> Result<String> {
        let v = self.value(at)?;
        let name = &self.stmt(at).names[0];
        match (&v.kind, v.as_str()) {
            (_, Some(text)) => Ok(text.to_string()),
            // A value in another encoding (a `coding:` line): it would have
            // to be re-encoded into the new setting; refuse rather than guess.
            (python::ExprKind::Str { .. }, None) => Err(self.error(
                at,
                format!("{name}: the value is not UTF-8 (the file's own encoding?); it cannot be carried into the 0.19 setting byte for byte: write it in ASCII (\\x escapes) or convert this setting by hand"),
            )),
            _ => Err(self.error(at, format!("{name}: expected a string"))),
        }
    }

    /// Where each of `names` is first read by a statement other than its own
    /// top-level assignments: file index and byte offset, in Synnefo's order.
    ///
    /// One pass over every statement and every token of every file, whatever
    /// the number of names: the time is linear in the size of the settings.
    fn first_reads<'n>(&self, names: &[&'n str]) -> HashMap<&'n str, (usize, usize)> {
        let wanted: HashMap<&[u8], &'n str> = names.iter().map(|n| (n.as_bytes(), *n)).collect();
        let mut found = HashMap::new();
        for (fi, f) in self.files.iter().enumerate() {
            let src = &f.loaded.bytes;
            // (logical line, name) of each top-level `NAME = value`: there the
            // first token is the name assigned, not a read of it.
            let own: HashSet<(usize, &str)> = f
                .stmts
                .iter()
                .inspect(|_| scanned(1))
                .filter(|s| s.kind == Assigns::Simple)
                .map(|s| (s.line, s.names[0].as_str()))
                .collect();
            for (li, line) in f.module.lines.iter().enumerate() {
                for (k, t) in line.tokens.iter().enumerate() {
                    scanned(1);
                    if t.kind != Kind::Name {
                        continue;
                    }
                    let Some(&name) = wanted.get(python::text(src, t)) else {
                        continue;
                    };
                    let attribute = k > 0 && python::is_op(src, &line.tokens[k - 1], ".");
                    let assigned = k == 0 && own.contains(&(li, name));
                    if !attribute && !assigned {
                        found.entry(name).or_insert((fi, t.start));
                    }
                }
            }
        }
        found
    }
}

/// Counts the statements and tokens [`Settings::first_reads`] looks at (tests
/// prove with it that each is looked at once).
fn scanned(n: usize) {
    #[cfg(test)]
    tests::SCANNED.with(|c| c.set(c.get() + n));
    let _ = n;
}

/// A statement commented out: the marker's reasons, the assignments inserted after it.
type Commented = (Vec<String>, Vec<(String, Lit)>);

/// What is done to one file.
#[derive(Default)]
struct FilePlan {
    /// Statements commented out, by index.
    commented: BTreeMap<usize, Commented>,
    edits: Vec<Edit>,
    what: Vec<String>,
}

#[derive(Default)]
struct Plan {
    files: BTreeMap<usize, FilePlan>,
}

impl Plan {
    fn file(&mut self, fi: usize) -> &mut FilePlan {
        self.files.entry(fi).or_default()
    }

    fn comment(&mut self, at: At, reason: String) {
        self.file(at.0)
            .commented
            .entry(at.1)
            .or_default()
            .0
            .push(reason);
    }

    fn insert(&mut self, at: At, name: &str, value: Lit) {
        let fp = self.file(at.0);
        fp.commented
            .entry(at.1)
            .or_default()
            .1
            .push((name.into(), value));
        fp.what.push(format!("{name} added"));
    }
}

/// Adds the settings conversions to `out`.
pub fn plan(root: &Root, convert: &Convert, out: &mut Conversion) -> Result<()> {
    let settings = Settings::load(root)?;
    if settings.files.is_empty() {
        return Ok(());
    }
    let mut plan = Plan::default();
    caches(&settings, &mut plan, &mut out.warnings)?;
    allocator(&settings, &mut plan, &mut out.warnings)?;
    allowed_hosts(&settings, convert, &mut plan)?;
    for (fi, fp) in plan.files {
        let f = &settings.files[fi];
        let src = &f.loaded.bytes;
        let mut edits = fp.edits;
        for (si, (reasons, inserts)) in &fp.commented {
            let line = &f.module.lines[f.stmts[*si].line];
            let eol = eol_at(src, line.start);
            let mut text = format!("{MARKER} {}{eol}", reasons.join("; ")).into_bytes();
            for physical in split_lines(&src[line.start..line.end]) {
                text.push(b'#');
                text.extend_from_slice(physical);
            }
            if !inserts.is_empty() && !text.ends_with(b"\n") && !text.ends_with(b"\r") {
                text.extend_from_slice(eol.as_bytes());
            }
            for (name, value) in inserts {
                text.extend_from_slice(
                    format!("{name} = {}{eol}", python::render(value, 0, eol)).as_bytes(),
                );
            }
            edits.push(Edit::new(line.start, line.end, text));
        }
        let new = apply_edits(src, &edits)?;
        out.changes.extend(f.loaded.change(new, fp.what));
    }
    Ok(())
}

fn cache_of(settings: &Settings, at: At) -> Result<Cache> {
    let uri = settings.string(at)?;
    caches::parse_uri(&uri).map_err(|e| settings.error(at, e))
}

fn caches(s: &Settings, plan: &mut Plan, warnings: &mut Vec<String>) -> Result<()> {
    let assigned = |n: &str| s.all(n).next().is_some();
    if !OBSOLETE.iter().any(|n| assigned(n)) {
        return Ok(());
    }
    s.ensure_editable(&[
        VMAPI_BACKEND,
        VMAPI_PREFIX,
        CACHE_BACKEND,
        INTERVAL,
        VMAPI_CACHE,
        STATS_CACHE,
        PASSWORD_CACHE,
    ])?;
    // Where each obsolete setting's value goes (for the marker lines).
    let mut feeds: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let vb = s.effective(VMAPI_BACKEND);
    let vp = s.effective(VMAPI_PREFIX);
    let backend = s.effective(CACHE_BACKEND);
    let interval = s.effective(INTERVAL);
    let default_cache = match backend {
        Some(at) => cache_of(s, at)?,
        None => Cache::locmem(),
    };
    let mut add = |plan: &mut Plan,
                   name: &str,
                   at: At,
                   value: Lit,
                   from: &[(&'static str, bool)]| {
        match s.effective(name) {
            Some(existing) => warnings.push(format!(
                "{name} is already set at {}; kept as it is (the obsolete settings it replaces are only commented out)",
                s.place(existing)
            )),
            None => {
                plan.insert(at, name, value);
                for (old, used) in from {
                    if *used {
                        feeds.entry(old).or_default().push(name.to_string());
                    }
                }
            }
        }
    };
    if vb.is_some() || vp.is_some() || backend.is_some() {
        let cache = match vb {
            Some(at) => cache_of(s, at)?,
            None => default_cache.clone(),
        };
        let prefix = match vp {
            Some(at) => s.string(at)?,
            None => "vmapi".into(),
        };
        let at = vb.or(vp).or(backend).expect("one is set");
        let from = [
            (VMAPI_BACKEND, vb.is_some()),
            (VMAPI_PREFIX, vp.is_some()),
            (CACHE_BACKEND, vb.is_none()),
        ];
        add(plan, VMAPI_CACHE, at, cache.to_dict(&prefix, None), &from);
    }
    if backend.is_some() || interval.is_some() {
        let timeout = match interval {
            Some(at) => match s.value(at)?.kind {
                ExprKind::Int(v) => Lit::Int(v),
                ExprKind::Float(f) => Lit::Float(f),
                _ => return Err(s.error(at, format!("{INTERVAL}: expected a number"))),
            },
            None => Lit::Int(300),
        };
        let at = backend.or(interval).expect("one is set");
        let from = [(CACHE_BACKEND, true), (INTERVAL, interval.is_some())];
        add(
            plan,
            STATS_CACHE,
            at,
            default_cache.to_dict("publicstats", Some(timeout)),
            &from,
        );
    }
    if let Some(at) = backend {
        let value = default_cache.to_dict("vmpassword", Some(Lit::None));
        add(plan, PASSWORD_CACHE, at, value, &[(CACHE_BACKEND, true)]);
    }
    let reads = s.first_reads(&OBSOLETE);
    for name in OBSOLETE {
        let all = s.simple(name);
        if all.is_empty() {
            continue;
        }
        if let Some(&at) = all.iter().find(|&&at| !s.stmt(at).alone) {
            return Err(s.error(
                at,
                format!(
                    "{name} shares its line with another statement; put it on a line of its own"
                ),
            ));
        }
        if let Some(&(fi, offset)) = reads.get(name) {
            let f = &s.files[fi];
            return Err(bad(
                &f.loaded.shown,
                f.module.line(offset),
                format!(
                    "this statement reads {name}, which is obsolete in 0.19 and \
                     would be commented out: convert it by hand"
                ),
            ));
        }
        let winner = *all.last().expect("not empty");
        for at in all {
            let why = match (at == winner, feeds.get(name)) {
                (false, _) => "overridden by a later assignment".to_string(),
                (true, Some(to)) => format!("its value is now in {}", to.join(", ")),
                (true, None) => "not converted, see the warning of the conversion".to_string(),
            };
            plan.comment(at, format!("{name} is obsolete since Synnefo 0.19 ({why})"));
            plan.file(at.0).what.push(format!("{name} commented out"));
        }
    }
    Ok(())
}

fn allocator(s: &Settings, plan: &mut Plan, warnings: &mut Vec<String>) -> Result<()> {
    if s.all(ALLOCATOR).next().is_none() {
        return Ok(());
    }
    s.ensure_editable(&[ALLOCATOR])?;
    let Some(at) = s.effective(ALLOCATOR) else {
        return Ok(());
    };
    let value = s.value(at)?;
    let Some(current) = value.as_str() else {
        return Err(s.error(at, format!("{ALLOCATOR}: expected a string")));
    };
    if current == OLD_ALLOCATOR {
        let quote = match value.kind {
            ExprKind::Str { quote, .. } => quote as char,
            _ => '\'',
        };
        let (start, end) = s.value_span(at);
        let fp = plan.file(at.0);
        fp.edits
            .push(Edit::new(start, end, python::quote(NEW_ALLOCATOR, quote)));
        fp.what
            .push(format!("{ALLOCATOR}: DefaultAllocator -> FilterAllocator"));
    } else if current != NEW_ALLOCATOR {
        warnings.push(format!(
            "{ALLOCATOR} = '{current}' at {} kept; Synnefo 0.19's default is '{NEW_ALLOCATOR}' \
             (with BACKEND_FILTER_ALLOCATOR_FILTERS): review it",
            s.place(at)
        ));
    }
    Ok(())
}

fn allowed_hosts(s: &Settings, convert: &Convert, plan: &mut Plan) -> Result<()> {
    let Some(hosts) = &convert.allowed_hosts else {
        return Ok(());
    };
    s.ensure_editable(&[ALLOWED_HOSTS])?;
    let want = Lit::List(hosts.iter().map(|h| Lit::Str(h.clone())).collect());
    let text = python::render(&want, 0, "\n");
    let what = format!("{ALLOWED_HOSTS} = {text} (from upgrade.toml)");
    if let Some(at) = s.effective(ALLOWED_HOSTS) {
        let same = s.value(at).ok().is_some_and(|v| match &v.kind {
            ExprKind::List(items, _) | ExprKind::Tuple(items, _) => items
                .iter()
                .map(Expr::as_str)
                .eq(hosts.iter().map(|h| Some(h.as_str()))),
            _ => false,
        });
        if !same {
            let (start, end) = s.value_span(at);
            let fp = plan.file(at.0);
            fp.edits.push(Edit::new(start, end, text));
            fp.what.push(what);
        }
        return Ok(());
    }
    // Not set: after the commented default (`#ALLOWED_HOSTS = ['*']`) when there
    // is one, else at the end of the file where 0.19 ships it, else of the last file.
    let hint = s.files.iter().enumerate().rev().find_map(|(fi, f)| {
        f.module.comments.iter().rev().find_map(|c| {
            let body = &f.loaded.bytes[c.start..c.end];
            let body = String::from_utf8_lossy(body);
            let body = body.trim_start_matches('#').trim_start();
            let rest = body.strip_prefix(ALLOWED_HOSTS)?.trim_start();
            (c.own_line && rest.starts_with('=') && rest.contains(']')).then_some((fi, c.end))
        })
    });
    let (fi, at, lead, eol) = match hint {
        Some((fi, end)) => {
            let src = &s.files[fi].loaded.bytes;
            let eol = eol_at(src, end);
            if src.len() > end {
                (fi, end + eol.len(), "", eol)
            } else {
                (fi, end, eol, eol)
            }
        }
        None => {
            let fi = s
                .files
                .iter()
                .position(|f| f.loaded.shown.ends_with(DEPLOY_CONF))
                .unwrap_or(s.files.len() - 1);
            let src = &s.files[fi].loaded.bytes;
            let eol = eol_at(src, 0);
            let ends_clean = src.is_empty() || src.ends_with(b"\n") || src.ends_with(b"\r");
            (fi, src.len(), if ends_clean { "" } else { eol }, eol)
        }
    };
    let block = format!(
        "{lead}{MARKER} {ALLOWED_HOSTS} from /etc/synnefo-upgrade/upgrade.toml{eol}{ALLOWED_HOSTS} = {text}{eol}"
    );
    let fp = plan.file(fi);
    fp.edits.push(Edit::new(at, at, block));
    fp.what.push(what);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::path::PathBuf;

    thread_local! {
        /// What [`scanned`] counted on this thread.
        pub(super) static SCANNED: Cell<usize> = const { Cell::new(0) };
    }

    fn settings(files: &[(&str, &str)]) -> Settings {
        Settings {
            files: files
                .iter()
                .map(|(name, text)| {
                    Settings::parse(Loaded {
                        shown: PathBuf::from(format!("/etc/synnefo/{name}")),
                        real: PathBuf::from(format!("/etc/synnefo/{name}")),
                        bytes: text.as_bytes().to_vec(),
                    })
                    .unwrap()
                })
                .collect(),
        }
    }

    #[test]
    fn last_top_level_assignment_wins_across_files() {
        let s = settings(&[
            (
                "10-a.conf",
                "#CACHE_BACKEND = 'x'\nCACHE_BACKEND = 'locmem://'\n",
            ),
            ("20-b.conf", "CACHE_BACKEND = (\n  'memcached://h:1/'\n)\n"),
        ]);
        let at = s.effective(CACHE_BACKEND).unwrap();
        assert_eq!(at, (1, 0));
        assert_eq!(s.string(at).unwrap(), "memcached://h:1/");
        assert_eq!(s.place((0, 0)), "/etc/synnefo/10-a.conf:2");
    }

    #[test]
    fn first_reads_finds_the_first_read_of_each_name_and_skips_its_own_assignments() {
        let s = settings(&[
            (
                "10-a.conf",
                "CACHE_BACKEND = 'locmem://'\nX = django.CACHE_BACKEND\nif 1:\n    CACHE_BACKEND = 'x'\n",
            ),
            (
                "20-b.conf",
                "VMAPI_CACHE_KEY_PREFIX = 'a'\nY = [VMAPI_CACHE_KEY_PREFIX,\n  CACHE_BACKEND]\nZ = CACHE_BACKEND\n",
            ),
        ]);
        let reads = s.first_reads(&OBSOLETE);
        let at = |name| {
            reads.get(name).map(|&(fi, offset)| {
                let f = &s.files[fi];
                format!("{}:{}", f.loaded.shown.display(), f.module.line(offset))
            })
        };
        // The `if` block's assignment is not a top-level one: its name counts
        // as a use (ensure_editable refuses it first anyway).
        assert_eq!(
            at(CACHE_BACKEND).as_deref(),
            Some("/etc/synnefo/10-a.conf:4")
        );
        assert_eq!(
            at(VMAPI_PREFIX).as_deref(),
            Some("/etc/synnefo/20-b.conf:2")
        );
        assert_eq!(at(VMAPI_BACKEND), None);
        assert_eq!(at(INTERVAL), None);
    }

    /// Not timed: counts what the scan looks at. Each statement and each token
    /// once, whatever the number of names and of assignments to them (the scan
    /// was once a pass per name, with a pass over the statements per line).
    #[test]
    fn first_reads_looks_at_each_statement_and_token_once() {
        let mut text = String::new();
        for name in OBSOLETE {
            text.push_str(&format!("{name} = 'locmem://'\n"));
        }
        for n in 0..2000 {
            text.push_str(&format!("S_{n} = {{'k': [1, 2L]}}\n# c\nT_{n} = S_{n}\n"));
        }
        let s = settings(&[("10-a.conf", &text), ("20-b.conf", &text)]);
        let (tokens, stmts) = s.files.iter().fold((0, 0), |(t, n), f| {
            let toks: usize = f.module.lines.iter().map(|l| l.tokens.len()).sum();
            (t + toks, n + f.stmts.len())
        });
        assert_eq!(stmts, 2 * (4 + 2 * 2000));
        SCANNED.with(|c| c.set(0));
        assert!(s.first_reads(&OBSOLETE).is_empty());
        assert_eq!(SCANNED.with(Cell::get), tokens + stmts);
    }
}
