//! Gunicorn: every file in `/etc/gunicorn.d/` that holds a Synnefo `CONFIG`
//! ([`is_synnefo`]): `'mode': 'django'` becomes `'wsgi'` and
//! `'synnefo.webproject.wsgi'` is appended as the last item of `args` (tuple
//! or list; one more line in the file's own indentation when the brackets
//! span lines) unless an item names that module already (`…wsgi`, or
//! `…wsgi:CALLABLE`); other arguments and every other byte are kept. Exactly
//! the 0.18.1 → 0.19 difference of Synnefo's own `synnefo.example`.
//!
//! Files of other applications are left alone, even when they do not parse;
//! one that runs in Django mode (deprecated since gunicorn 18, removed in
//! 19.7; Synnefo 0.19 leaves it for jessie's gunicorn 19) is reported
//! ([`django_mode_findings`], `gunicorn-django-mode`): moving it to its own
//! WSGI module is its owner's. A Synnefo file that does not parse, or whose
//! `CONFIG` is not a literal, is refused (exit 2, file and line named).

use anyhow::Result;
use std::path::Path;

use super::python::{self, Assigns, Expr, ExprKind, Module, Seq};
use super::{
    apply_edits, bad, eol_at, is_leftover, list_dir, read_through, Conversion, Edit, Loaded,
};
use crate::base::finding::{Finding, Severity};
use crate::base::fsx::Root;
use std::os::unix::ffi::OsStrExt;

/// Where gunicorn-debian reads its configs.
pub const GUNICORN_DIR: &str = "/etc/gunicorn.d";
/// Synnefo 0.19's WSGI entry point, the last argument in wsgi mode.
pub const WSGI_MODULE: &str = "synnefo.webproject.wsgi";

/// The configs in [`GUNICORN_DIR`] (editor and dpkg leftovers skipped).
fn configs(root: &Root) -> Result<Vec<Loaded>> {
    let dir = Path::new(GUNICORN_DIR);
    let mut out = Vec::new();
    for name in list_dir(root, dir)? {
        if is_leftover(name.as_bytes()) {
            continue;
        }
        out.extend(read_through(root, &dir.join(&name))?);
    }
    Ok(out)
}

/// Adds the gunicorn conversions to `out`.
pub fn plan(root: &Root, out: &mut Conversion) -> Result<()> {
    for loaded in configs(root)? {
        if let Some((new, what)) = convert(&loaded)? {
            out.changes.extend(loaded.change(new, what));
        }
    }
    Ok(())
}

/// The strings of a `CONFIG`'s `args` (none when it is not a tuple or list).
fn args(config: &Expr) -> Vec<&str> {
    match config.get("args").map(|a| &a.kind) {
        Some(ExprKind::Tuple(items, _) | ExprKind::List(items, _)) => {
            items.iter().filter_map(Expr::as_str).collect()
        }
        _ => Vec::new(),
    }
}

/// Whether an argument names Synnefo's WSGI module (`MODULE` or `MODULE:CALLABLE`).
fn names_wsgi_module(arg: &str) -> bool {
    arg.strip_prefix(WSGI_MODULE)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(':'))
}

/// The Django settings module a `CONFIG` names: its `environment`'s
/// `DJANGO_SETTINGS_MODULE`, else `--settings` (Django mode) or `--env`/`-e`
/// `DJANGO_SETTINGS_MODULE=…` in its args.
pub fn settings_module(config: &Expr) -> Option<String> {
    if let Some(s) = config
        .get("environment")
        .and_then(|e| e.get("DJANGO_SETTINGS_MODULE"))
        .and_then(Expr::as_str)
    {
        return Some(s.to_string());
    }
    let args = args(config);
    let env = |a: &str| {
        a.strip_prefix("DJANGO_SETTINGS_MODULE=")
            .map(str::to_string)
    };
    args.iter().enumerate().find_map(|(i, a)| {
        let next = args.get(i + 1).copied();
        match *a {
            "--settings" => next.map(str::to_string),
            "--env" | "-e" => next.and_then(env),
            _ => a
                .strip_prefix("--settings=")
                .map(str::to_string)
                .or_else(|| a.strip_prefix("--env=").and_then(env)),
        }
    })
}

/// Whether a `CONFIG` runs Synnefo: its args name Synnefo's WSGI module, or
/// the settings module it names is Synnefo's (`synnefo.settings`;
/// snf-webproject's `synnefo.*`), or it names none and runs from
/// `/etc/synnefo` (where Synnefo's settings live, as snf-deploy and the guide
/// set it up). Another Django application names its own settings module
/// and project directory, so none of these holds for it.
pub fn is_synnefo(config: &Expr) -> bool {
    if args(config).into_iter().any(names_wsgi_module) {
        return true;
    }
    match settings_module(config) {
        Some(s) => s.starts_with("synnefo."),
        None => config
            .get("working_dir")
            .and_then(Expr::as_str)
            .is_some_and(|d| d.trim_end_matches('/') == "/etc/synnefo"),
    }
}

/// A gunicorn-debian config read.
enum Read {
    /// Its tokens and its (last) `CONFIG` dict.
    Config(Module, Expr),
    /// No `CONFIG` assigned.
    NoConfig,
    /// Cannot be read: the line and why.
    Unreadable(usize, String),
}

fn read_config(src: &[u8]) -> Read {
    let module = match python::tokenize(src) {
        Ok(m) => m,
        Err(e) => {
            let line = python::line_at(&python::line_starts(src), e.offset);
            return Read::Unreadable(line, e.message);
        }
    };
    let stmts = python::assignments(src, &module);
    let configs: Vec<_> = stmts
        .iter()
        .filter(|s| s.names.iter().any(|n| n == "CONFIG"))
        .collect();
    let Some(last) = configs.last() else {
        return Read::NoConfig;
    };
    if let Some(other) = configs.iter().find(|s| s.kind == Assigns::Other) {
        let line = module.line(module.lines[other.line].start);
        return Read::Unreadable(
            line,
            "CONFIG is assigned inside a block or by a compound statement: convert it by hand"
                .into(),
        );
    }
    let toks = &module.lines[last.line].tokens[last.value.clone()];
    match python::parse_literal(src, toks) {
        Ok(c) if matches!(c.kind, ExprKind::Dict(..)) => Read::Config(module, c),
        Ok(c) => Read::Unreadable(module.line(c.start), "CONFIG is not a dict".into()),
        Err(e) => Read::Unreadable(
            module.line(e.offset),
            format!("CONFIG: {e}; only literal values can be converted: convert it by hand"),
        ),
    }
}

/// `gunicorn-django-mode`: each config in [`GUNICORN_DIR`] of another
/// application that runs in Django mode. Unreadable files are skipped.
pub fn django_mode_findings(root: &Root) -> Vec<Finding> {
    let mut found = Vec::new();
    for loaded in configs(root).unwrap_or_default() {
        let Read::Config(_, config) = read_config(&loaded.bytes) else {
            continue;
        };
        if is_synnefo(&config) || config.get("mode").and_then(Expr::as_str) != Some("django") {
            continue;
        }
        let file = loaded.shown.display();
        let dir = config.get("working_dir").and_then(Expr::as_str);
        let app = match (settings_module(&config), dir) {
            (Some(s), _) => format!("Django settings '{s}'"),
            (None, Some(d)) => format!("working_dir '{d}'"),
            (None, None) => "not Synnefo".to_string(),
        };
        found.push(Finding::new(
            "gunicorn-django-mode",
            Severity::Medium,
            format!("{file} runs another application ({app}) in gunicorn's Django mode"),
            "Django mode (gunicorn_django) is deprecated since gunicorn 18 and removed in 19.7; Synnefo 0.19 leaves it for jessie's gunicorn 19, and synnefo-upgrade converts only Synnefo's own configs: this application stays in Django mode and may not start after the upgrade",
            format!("in {file}, set 'mode': 'wsgi' and add the application's WSGI module ('PROJECT.wsgi:application', which Django 1.4 and later create) as the last item of 'args'; wheezy's gunicorn runs it so too, so this can be done before the upgrade"),
        ));
    }
    found
}

/// The converted content of one gunicorn config and what changed; `None` when
/// it is not a Synnefo config.
pub fn convert(loaded: &Loaded) -> Result<Option<(Vec<u8>, Vec<String>)>> {
    let src = &loaded.bytes;
    let mentions_synnefo = src.windows(7).any(|w| w.eq_ignore_ascii_case(b"synnefo"));
    let refuse = |line: usize, message: String| -> Result<Option<(Vec<u8>, Vec<String>)>> {
        if mentions_synnefo {
            Err(bad(&loaded.shown, line, message))
        } else {
            log::debug!("'{}' left alone: {message}", loaded.shown.display());
            Ok(None)
        }
    };
    let (module, config) = match read_config(src) {
        Read::Config(module, config) => (module, config),
        Read::NoConfig => return Ok(None),
        Read::Unreadable(line, message) => return refuse(line, message),
    };
    if !is_synnefo(&config) {
        return Ok(None);
    }
    let mut edits = Vec::new();
    let mut what = Vec::new();
    match config.get("mode") {
        None => {}
        Some(mode) => {
            match (&mode.kind, mode.as_str()) {
                (ExprKind::Str { quote, .. }, Some("django")) => {
                    edits.push(Edit::new(
                        mode.start,
                        mode.end,
                        python::quote("wsgi", *quote as char),
                    ));
                    what.push("mode django -> wsgi".to_string());
                }
                (_, Some("wsgi")) => {}
                _ => {
                    let shown = String::from_utf8_lossy(&src[mode.start..mode.end]).into_owned();
                    return Err(bad(
                    &loaded.shown,
                    module.line(mode.start),
                    format!("CONFIG 'mode' is {shown}, neither 'django' nor 'wsgi': convert it by hand"),
                ));
                }
            }
        }
    }
    match config.get("args") {
        None => {
            let ExprKind::Dict(entries, seq) = &config.kind else {
                unreachable!("checked above")
            };
            let last = entries.last().map(|(k, v)| (k.start, v.end));
            let item = format!("'args': ({},)", python::quote(WSGI_MODULE, '\''));
            edits.extend(append_item(src, &module, seq, last, &item, false));
            what.push(format!("args added with {WSGI_MODULE}"));
        }
        Some(args) => match &args.kind {
            ExprKind::Tuple(items, seq) | ExprKind::List(items, seq) => {
                if !items.iter().filter_map(Expr::as_str).any(names_wsgi_module) {
                    let quote = items
                        .iter()
                        .rev()
                        .find_map(|i| match i.kind {
                            ExprKind::Str { quote, .. } => Some(quote as char),
                            _ => None,
                        })
                        .unwrap_or('\'');
                    let last = items.last().map(|i| (i.start, i.end));
                    let tuple = matches!(args.kind, ExprKind::Tuple(..));
                    let item = python::quote(WSGI_MODULE, quote);
                    edits.extend(append_item(src, &module, seq, last, &item, tuple));
                    what.push(format!("{WSGI_MODULE} appended to args"));
                }
            }
            _ => {
                return Err(bad(
                    &loaded.shown,
                    module.line(args.start),
                    "CONFIG 'args' is not a tuple or a list: convert it by hand",
                ))
            }
        },
    }
    if edits.is_empty() {
        return Ok(None);
    }
    Ok(Some((apply_edits(src, &edits)?, what)))
}

/// Edits appending `item` to the bracketed sequence `seq` whose last item spans
/// `last`: on a line of its own (indented like the last item) when the closing
/// bracket is on a line of its own, else inline. A one-item tuple gets its comma.
fn append_item(
    src: &[u8],
    module: &Module,
    seq: &Seq,
    last: Option<(usize, usize)>,
    item: &str,
    tuple: bool,
) -> Vec<Edit> {
    let (Some(open), Some(close)) = (seq.open, seq.close) else {
        return Vec::new();
    };
    let close_line = module.line_start(close);
    let close_alone = src[close_line..close]
        .iter()
        .all(|b| matches!(b, b' ' | b'\t'));
    match last {
        Some((last_start, last_end)) if close_alone && close_line > last_start => {
            let line = module.line_start(last_start);
            let indent: String = src[line..]
                .iter()
                .take_while(|b| matches!(b, b' ' | b'\t'))
                .map(|b| *b as char)
                .collect();
            let eol = eol_at(src, last_end);
            let mut edits = Vec::new();
            if seq.trailing_comma.is_none() {
                edits.push(Edit::new(last_end, last_end, ","));
            }
            edits.push(Edit::new(
                close_line,
                close_line,
                format!("{indent}{item},{eol}"),
            ));
            edits
        }
        Some((_, last_end)) => match seq.trailing_comma {
            Some(comma) => vec![Edit::new(comma + 1, comma + 1, format!(" {item},"))],
            None => vec![Edit::new(last_end, last_end, format!(", {item}"))],
        },
        None => {
            let comma = if tuple { "," } else { "" };
            vec![Edit::new(open + 1, open + 1, format!("{item}{comma}"))]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn conv(text: &str) -> Result<Option<String>> {
        let loaded = Loaded {
            shown: PathBuf::from("/etc/gunicorn.d/synnefo"),
            real: PathBuf::from("/etc/gunicorn.d/synnefo"),
            bytes: text.as_bytes().to_vec(),
        };
        Ok(convert(&loaded)?.map(|(b, _)| String::from_utf8(b).unwrap()))
    }

    const ENV: &str = "'environment': {'DJANGO_SETTINGS_MODULE': 'synnefo.settings'}";

    #[test]
    fn inline_tuple_list_and_empty() {
        let c = format!("CONFIG = {{'mode': 'django', {ENV}, 'args': ('--workers=4',)}}\n");
        assert_eq!(
            conv(&c).unwrap().unwrap(),
            format!("CONFIG = {{'mode': 'wsgi', {ENV}, 'args': ('--workers=4', 'synnefo.webproject.wsgi',)}}\n")
        );
        let c = format!("CONFIG = {{\"mode\": \"django\", {ENV}, \"args\": [\"-w\", \"4\"]}}\n");
        assert_eq!(
            conv(&c).unwrap().unwrap(),
            format!("CONFIG = {{\"mode\": \"wsgi\", {ENV}, \"args\": [\"-w\", \"4\", \"synnefo.webproject.wsgi\"]}}\n")
        );
        let c = format!("CONFIG = {{{ENV}, 'args': ()}}\n");
        assert_eq!(
            conv(&c).unwrap().unwrap(),
            format!("CONFIG = {{{ENV}, 'args': ('synnefo.webproject.wsgi',)}}\n")
        );
        let c = format!("CONFIG = {{{ENV}}}\n");
        assert_eq!(
            conv(&c).unwrap().unwrap(),
            format!("CONFIG = {{{ENV}, 'args': ('synnefo.webproject.wsgi',)}}\n")
        );
    }

    #[test]
    fn multi_line_without_trailing_comma_and_crlf() {
        let c = "CONFIG = {\r\n 'mode': 'django',\r\n 'working_dir': '/etc/synnefo',\r\n 'args': [\r\n\t'--bind=127.0.0.1:8080'  # here\r\n ],\r\n}\r\n";
        assert_eq!(
            conv(c).unwrap().unwrap(),
            "CONFIG = {\r\n 'mode': 'wsgi',\r\n 'working_dir': '/etc/synnefo',\r\n 'args': [\r\n\t'--bind=127.0.0.1:8080',  # here\r\n\t'synnefo.webproject.wsgi',\r\n ],\r\n}\r\n"
        );
    }

    #[test]
    fn other_applications_and_converted_files_are_left_alone() {
        assert_eq!(conv("CONFIG = {'mode': 'django', 'environment': {'DJANGO_SETTINGS_MODULE': 'other.settings'}}\n").unwrap(), None);
        assert_eq!(
            conv("CONFIG = {'mode': 'wsgi', 'args': ('synnefo.webproject.wsgi',)}\n").unwrap(),
            None
        );
        assert_eq!(
            conv("CONFIG = {'mode': 'django', 'args': ( \n").unwrap(),
            None
        );
        assert_eq!(conv("X = 1\n").unwrap(), None);
    }

    #[test]
    fn the_wsgi_module_named_with_its_callable_is_not_appended_again() {
        let c = format!("CONFIG = {{'mode': 'django', {ENV}, 'args': ('-w', '4', 'synnefo.webproject.wsgi:application')}}\n");
        assert_eq!(conv(&c).unwrap().unwrap(), c.replace("'django'", "'wsgi'"));
        let c = "CONFIG = {'mode': 'wsgi', 'args': ['synnefo.webproject.wsgi:app']}\n";
        assert_eq!(conv(c).unwrap(), None);
        // A longer module name is not Synnefo's.
        let c = format!("CONFIG = {{{ENV}, 'args': ['synnefo.webproject.wsgi_local']}}\n");
        assert_eq!(
            conv(&c).unwrap().unwrap(),
            format!("CONFIG = {{{ENV}, 'args': ['synnefo.webproject.wsgi_local', 'synnefo.webproject.wsgi']}}\n")
        );
    }

    #[test]
    fn synnefo_is_told_by_its_settings_module_directory_or_wsgi_module() {
        let synnefo = |text: &str| match read_config(text.as_bytes()) {
            Read::Config(_, config) => is_synnefo(&config),
            _ => panic!("{text}"),
        };
        assert!(synnefo(&format!("CONFIG = {{{ENV}}}")));
        assert!(synnefo("CONFIG = {'working_dir': '/etc/synnefo/'}"));
        assert!(synnefo(
            "CONFIG = {'args': ('--settings=synnefo.settings',)}"
        ));
        assert!(synnefo(
            "CONFIG = {'args': ('--env', 'DJANGO_SETTINGS_MODULE=synnefo.settings')}"
        ));
        assert!(synnefo(
            "CONFIG = {'working_dir': '/srv/x', 'args': ('synnefo.webproject.wsgi:application',)}"
        ));
        // Another application's settings win over the directory.
        assert!(!synnefo("CONFIG = {'working_dir': '/etc/synnefo', 'environment': {'DJANGO_SETTINGS_MODULE': 'shop.settings'}}"));
        assert!(!synnefo(
            "CONFIG = {'args': ('--env=DJANGO_SETTINGS_MODULE=synnefo_shop.settings',)}"
        ));
        assert!(!synnefo(
            "CONFIG = {'mode': 'django', 'working_dir': '/srv/shop'}"
        ));
    }

    #[test]
    fn broken_or_computed_synnefo_configs_are_refused() {
        let e = conv("CONFIG = {'mode': 'django',\n 'working_dir': '/etc/synnefo',\n").unwrap_err();
        assert!(
            format!("{e:#}").starts_with("/etc/gunicorn.d/synnefo:1: '{' is never closed"),
            "{e:#}"
        );
        let e = conv("ARGS = ('-w',)\nCONFIG = {'working_dir': '/etc/synnefo',\n 'args': ARGS}\n")
            .unwrap_err();
        assert!(
            format!("{e:#}").contains("synnefo:3: CONFIG: 'ARGS' is not a literal"),
            "{e:#}"
        );
        let e = conv(&format!("CONFIG = {{'mode': 'paste', {ENV}}}\n")).unwrap_err();
        assert!(
            format!("{e:#}").contains("neither 'django' nor 'wsgi'"),
            "{e:#}"
        );
        let e = conv(&format!("CONFIG = {{{ENV}, 'args': '--w'}}\n")).unwrap_err();
        assert!(format!("{e:#}").contains("not a tuple or a list"), "{e:#}");
    }
}
