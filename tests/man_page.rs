//! The man pages in `docs/man/` (shipped in the .deb) are generated:
//! `synnefo-upgrade(8)` and one page per command, `synnefo-upgrade-COMMAND(8)`,
//! which the first one lists (as git's pages do), from the CLI definition
//! and [`synnefo_upgrade::cli::manual`] (EXIT STATUS, ENVIRONMENT, FILES,
//! EXAMPLES, SEE ALSO); `upgrade.toml(5)` from docs/configuration.md, the
//! configuration reference. This test fails when a page is stale or missing,
//! or when `docs/man/` holds a page of a command that is gone.
//! Regenerate with `UPDATE_MAN=1 cargo test --test man_page`.

use clap::CommandFactory;
use std::collections::BTreeMap;
use std::path::Path;
use synnefo_upgrade::cli::{manual, Cli, Manual, EXIT_CODES};

/// Text escaped for roff: backslashes and hyphens, and a line that would
/// begin with a control character.
fn esc(text: &str) -> String {
    let t = text.replace('\\', "\\e").replace('-', "\\-");
    t.lines()
        .map(|l| {
            if l.starts_with('.') || l.starts_with('\'') {
                format!("\\&{l}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Inline Markdown to roff: `code` and **strong** in bold, links as their text.
fn inline(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(['`', '*', '[']) {
        out.push_str(&esc(&rest[..i]));
        let tail = &rest[i..];
        let (bold, len) = if let Some(t) = tail.strip_prefix('`') {
            match t.find('`') {
                Some(j) => (Some(&t[..j]), j + 2),
                None => (None, 0),
            }
        } else if let Some(t) = tail.strip_prefix("**") {
            match t.find("**") {
                Some(j) => (Some(&t[..j]), j + 4),
                None => (None, 0),
            }
        } else if tail.starts_with('[') {
            match (tail.find("]("), tail.find(')')) {
                (Some(j), Some(k)) if j < k => {
                    out.push_str(&esc(&tail[1..j]));
                    rest = &tail[k + 1..];
                    continue;
                }
                _ => (None, 0),
            }
        } else {
            (None, 0)
        };
        match bold {
            Some(b) => {
                out.push_str(&format!("\\fB{}\\fR", esc(b)));
                rest = &tail[len..];
            }
            None => {
                out.push_str(&esc(&tail[..1]));
                rest = &tail[1..];
            }
        }
    }
    out.push_str(&esc(rest));
    out
}

/// The sections of `manual`, in roff.
fn sections(m: &Manual) -> String {
    let mut r = String::new();
    let tagged = |r: &mut String, title: &str, items: &[(String, &str)]| {
        if items.is_empty() {
            return;
        }
        if title.contains(' ') {
            r.push_str(&format!(".SH \"{title}\"\n"));
        } else {
            r.push_str(&format!(".SH {title}\n"));
        }
        for (tag, text) in items {
            r.push_str(&format!(".TP\n\\fB{}\\fR\n{}\n", esc(tag), esc(text)));
        }
    };
    let codes: Vec<(String, &str)> = m
        .exit_codes
        .iter()
        .map(|(c, t)| (c.to_string(), *t))
        .collect();
    tagged(&mut r, "EXIT STATUS", &codes);
    let env: Vec<(String, &str)> = m
        .environment
        .iter()
        .map(|(v, t)| (v.to_string(), *t))
        .collect();
    tagged(&mut r, "ENVIRONMENT", &env);
    let files: Vec<(String, &str)> = m.files.iter().map(|(f, t)| (f.to_string(), *t)).collect();
    tagged(&mut r, "FILES", &files);
    if !m.examples.is_empty() {
        r.push_str(".SH EXAMPLES\n");
        for (what, command) in m.examples {
            r.push_str(&format!(
                ".PP\n{}:\n.PP\n.RS 4\n.nf\n{}\n.fi\n.RE\n",
                esc(what),
                esc(command)
            ));
        }
    }
    if !m.see_also.is_empty() {
        r.push_str(".SH \"SEE ALSO\"\n");
        let refs: Vec<String> = m
            .see_also
            .iter()
            .map(|p| match p.split_once('(') {
                Some((name, section)) => format!("\\fB{}\\fR({section}", esc(name)),
                None => esc(p),
            })
            .collect();
        r.push_str(&format!("{}\n", refs.join(",\n")));
    }
    r
}

/// upgrade.toml(5), from docs/configuration.md: its headings become
/// sections, its paragraphs, lists and code blocks stay what they are, and
/// each row of a table becomes a tagged paragraph (the first cell the tag,
/// the others after it).
fn upgrade_toml_page(markdown: &str) -> Vec<u8> {
    let mut r = format!(
        ".TH UPGRADE.TOML 5 \"\" \"synnefo-upgrade {}\"\n\
         .SH NAME\nupgrade.toml \\- configuration of synnefo\\-upgrade(8)\n.SH DESCRIPTION\n",
        env!("CARGO_PKG_VERSION")
    );
    let mut code = false;
    let mut header: Vec<String> = Vec::new();
    // The paragraph (or list item) being read: its macro and its lines
    // (inline code may go over a line break).
    let mut open: Option<(&str, Vec<String>)> = None;
    let flush = |r: &mut String, open: &mut Option<(&str, Vec<String>)>| {
        if let Some((mac, lines)) = open.take() {
            r.push_str(&format!("{mac}\n{}\n", inline(&lines.join(" "))));
        }
    };
    for line in markdown.lines() {
        if line.starts_with("```") {
            flush(&mut r, &mut open);
            r.push_str(if code {
                ".fi\n.RE\n"
            } else {
                ".PP\n.RS 4\n.nf\n"
            });
            code = !code;
            continue;
        }
        if code {
            r.push_str(&format!("{}\n", esc(line)));
            continue;
        }
        let t = line.trim();
        if t.starts_with("# ") {
            continue;
        }
        if let Some(h) = t.strip_prefix("## ") {
            flush(&mut r, &mut open);
            r.push_str(&format!(".SH \"{}\"\n", esc(&h.to_uppercase())));
            continue;
        }
        if t.starts_with('|') {
            flush(&mut r, &mut open);
            let separator = t
                .trim_matches('|')
                .split('|')
                .all(|c| c.trim().chars().all(|ch| ch == '-' || ch == ':'));
            if separator {
                continue;
            }
            let cells: Vec<String> = t
                .trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().replace("\\|", "|"))
                .collect();
            if header.is_empty() {
                header = cells;
                continue;
            }
            r.push_str(&format!(".TP\n{}\n", inline(&cells[0])));
            let rest: Vec<String> = cells[1..]
                .iter()
                .zip(&header[1..])
                .map(|(c, h)| {
                    if h == "Meaning" {
                        inline(c)
                    } else {
                        format!("{}: {}.", esc(h), inline(c))
                    }
                })
                .collect();
            r.push_str(&format!("{}\n", rest.join("\n")));
            continue;
        }
        header.clear();
        if t.is_empty() {
            flush(&mut r, &mut open);
            continue;
        }
        if let Some(item) = t.strip_prefix("- ") {
            flush(&mut r, &mut open);
            open = Some((".IP \\(bu 2", vec![item.to_string()]));
            continue;
        }
        match open.as_mut() {
            Some((_, lines)) => lines.push(t.to_string()),
            None => open = Some((".PP", vec![t.to_string()])),
        }
    }
    flush(&mut r, &mut open);
    r.push_str(
        ".SH \"SEE ALSO\"\n\\fBsynnefo\\-upgrade\\fR(8), \\fBsynnefo\\-upgrade\\-check\\fR(8)\n",
    );
    r.into_bytes()
}

/// Every page: file name and contents.
fn pages() -> BTreeMap<String, Vec<u8>> {
    // No page for `help`: it is not a command of ours (`--help` is on every page).
    let mut cli = Cli::command().disable_help_subcommand(true);
    cli.build();
    let mut commands: Vec<(Option<String>, clap::Command)> = cli
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| (Some(c.get_name().to_string()), c.clone()))
        .collect();
    commands.push((None, cli));
    let mut pages: BTreeMap<String, Vec<u8>> = commands
        .into_iter()
        .map(|(name, command)| {
            // The exit codes are --help's epilogue; the page has EXIT STATUS.
            let man = clap_mangen::Man::new(command.after_help(None::<&str>))
                .section("8")
                .source(concat!("synnefo-upgrade ", env!("CARGO_PKG_VERSION")));
            let mut page = Vec::new();
            man.render(&mut page).expect("rendering into memory");
            let mut page = String::from_utf8(page).expect("UTF-8");
            let extra = sections(&manual(name.as_deref()));
            match page.find("\n.SH VERSION") {
                Some(at) => page.insert_str(at + 1, &extra),
                None => page.push_str(&extra),
            }
            (man.get_filename(), page.into_bytes())
        })
        .collect();
    let reference = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md"),
    )
    .expect("docs/configuration.md");
    pages.insert("upgrade.toml.5".into(), upgrade_toml_page(&reference));
    pages
}

/// The exit codes as docs/design.md shows them.
fn exit_code_table() -> String {
    let mut t = String::from("| Exit code | Meaning |\n|---|---|\n");
    for (code, meaning) in EXIT_CODES {
        t.push_str(&format!("| {code} | {meaning} |\n"));
    }
    t
}

/// One table of exit codes: `--help` prints it, every page but policy-rc.d's
/// has it as EXIT STATUS, docs/design.md shows it.
#[test]
fn one_exit_code_table_everywhere() {
    let help = Cli::command().render_long_help().to_string();
    let design =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/design.md"))
            .unwrap();
    assert!(
        design.contains(&exit_code_table()),
        "docs/design.md does not show the exit codes of src/cli.rs; put this table in it:\n{}",
        exit_code_table()
    );
    let rendered = pages();
    for (code, meaning) in EXIT_CODES {
        assert!(
            help.contains(&format!("{code:>3}  {meaning}")),
            "--help lacks exit code {code}:\n{help}"
        );
        for (name, page) in &rendered {
            if name == "synnefo-upgrade-policy-rc.d.8" || name.ends_with(".5") {
                continue;
            }
            let page = std::str::from_utf8(page).unwrap();
            assert!(
                page.contains(".SH \"EXIT STATUS\"\n")
                    && page.contains(&format!(".TP\n\\fB{code}\\fR\n{}\n", esc(meaning))),
                "{name} lacks exit code {code}"
            );
        }
    }
    // Every command's page has the sections Debian's man pages have.
    for (name, page) in &rendered {
        let page = std::str::from_utf8(page).unwrap();
        let want: &[&str] = if name.ends_with(".5") {
            &[".SH NAME", ".SH DESCRIPTION", ".SH \"SEE ALSO\""]
        } else {
            &[
                ".SH NAME",
                ".SH SYNOPSIS",
                ".SH DESCRIPTION",
                ".SH OPTIONS",
                ".SH \"EXIT STATUS\"",
                ".SH FILES",
                ".SH EXAMPLES",
                ".SH \"SEE ALSO\"",
            ]
        };
        for section in want {
            assert!(page.contains(section), "{name} has no {section}");
        }
    }
}

#[test]
fn man_pages_match_the_cli_definition() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/man");
    let rendered = pages();
    if std::env::var_os("UPDATE_MAN").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for (name, page) in &rendered {
            std::fs::write(dir.join(name), page).unwrap();
        }
    }
    let mut committed = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "8" || e == "5") {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            committed.insert(name, std::fs::read(&path).unwrap());
        }
    }
    let names = |pages: &BTreeMap<String, Vec<u8>>| pages.keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        names(&committed),
        names(&rendered),
        "docs/man/ does not hold exactly one page per command: run 'UPDATE_MAN=1 cargo test --test man_page' (and remove pages of commands that are gone)"
    );
    for (name, page) in &rendered {
        assert!(
            committed[name] == *page,
            "docs/man/{name} is stale: run 'UPDATE_MAN=1 cargo test --test man_page'"
        );
    }

    // The main page lists each command under the name of its own page, and a
    // command's page has its options: prepare's page documents --download-only.
    let main = std::str::from_utf8(&rendered["synnefo-upgrade.8"]).unwrap();
    for command in ["check", "prepare", "finish", "status", "policy\\-rc.d"] {
        assert!(
            main.contains(&format!("synnefo\\-upgrade\\-{command}(8)")),
            "synnefo-upgrade(8) does not list '{command}'"
        );
        let page = format!("synnefo-upgrade-{}.8", command.replace('\\', ""));
        assert!(rendered.contains_key(&page), "no page {page}");
    }
    assert!(!main.contains("synnefo\\-upgrade\\-help(8)"));
    let prepare = std::str::from_utf8(&rendered["synnefo-upgrade-prepare.8"]).unwrap();
    for option in ["\\-\\-download\\-only", "\\-\\-dry\\-run", "\\-\\-root"] {
        assert!(
            prepare.contains(option),
            "synnefo-upgrade-prepare(8) lacks {option}"
        );
    }
}
