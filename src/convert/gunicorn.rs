//! Gunicorn: every file in `/etc/gunicorn.d/` that holds a Synnefo `CONFIG`
//! (its `DJANGO_SETTINGS_MODULE` is Synnefo's, or it runs from `/etc/synnefo`):
//! `'mode': 'django'` becomes `'wsgi'` and `'synnefo.webproject.wsgi'` is
//! appended as the last item of `args` (tuple or list; one more line in the
//! file's own indentation when the brackets span lines); other arguments and
//! every other byte are kept. Exactly the 0.18.1 → 0.19 difference of
//! Synnefo's own `synnefo.example`.
//!
//! Files of other applications are left alone, even when they do not parse;
//! a Synnefo file that does not parse, or whose `CONFIG` is not a literal, is
//! refused (exit 2, file and line named).

use anyhow::Result;
use std::path::Path;

use super::python::{self, Assigns, Expr, ExprKind, Module, Seq};
use super::{
    apply_edits, bad, eol_at, is_leftover, list_dir, read_through, Conversion, Edit, Loaded,
};
use crate::fsx::Root;
use std::os::unix::ffi::OsStrExt;

/// Where gunicorn-debian reads its configs.
pub const GUNICORN_DIR: &str = "/etc/gunicorn.d";
/// Synnefo 0.19's WSGI entry point, the last argument in wsgi mode.
pub const WSGI_MODULE: &str = "synnefo.webproject.wsgi";

/// Adds the gunicorn conversions to `out`.
pub fn plan(root: &Root, out: &mut Conversion) -> Result<()> {
    let dir = Path::new(GUNICORN_DIR);
    for name in list_dir(root, dir)? {
        if is_leftover(name.as_bytes()) {
            continue;
        }
        let Some(loaded) = read_through(root, &dir.join(&name))? else {
            continue;
        };
        if let Some((new, what)) = convert(&loaded)? {
            out.changes.extend(loaded.change(new, what));
        }
    }
    Ok(())
}

fn is_synnefo(config: &Expr) -> bool {
    let settings = config
        .get("environment")
        .and_then(|e| e.get("DJANGO_SETTINGS_MODULE"))
        .and_then(Expr::as_str);
    let dir = config.get("working_dir").and_then(Expr::as_str);
    let has_wsgi = match config.get("args").map(|a| &a.kind) {
        Some(ExprKind::Tuple(items, _) | ExprKind::List(items, _)) => {
            items.iter().any(|i| i.as_str() == Some(WSGI_MODULE))
        }
        _ => false,
    };
    settings.is_some_and(|s| s == "synnefo.settings" || s.starts_with("synnefo."))
        || dir.is_some_and(|d| d.trim_end_matches('/') == "/etc/synnefo")
        || has_wsgi
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
    let module = match python::tokenize(src) {
        Ok(m) => m,
        Err(e) => {
            let line = python::line_at(&python::line_starts(src), e.offset);
            return refuse(line, e.message);
        }
    };
    let stmts = python::assignments(src, &module);
    let configs: Vec<_> = stmts
        .iter()
        .filter(|s| s.names.iter().any(|n| n == "CONFIG"))
        .collect();
    let Some(last) = configs.last() else {
        return Ok(None);
    };
    if let Some(other) = configs.iter().find(|s| s.kind == Assigns::Other) {
        let line = module.line(module.lines[other.line].start);
        return refuse(
            line,
            "CONFIG is assigned inside a block or by a compound statement: convert it by hand"
                .into(),
        );
    }
    let toks = &module.lines[last.line].tokens[last.value.clone()];
    let config = match python::parse_literal(src, toks) {
        Ok(c) if matches!(c.kind, ExprKind::Dict(..)) => c,
        Ok(c) => return refuse(module.line(c.start), "CONFIG is not a dict".into()),
        Err(e) => {
            return refuse(
                module.line(e.offset),
                format!("CONFIG: {e}; only literal values can be converted: convert it by hand"),
            )
        }
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
                if !items.iter().any(|i| i.as_str() == Some(WSGI_MODULE)) {
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
