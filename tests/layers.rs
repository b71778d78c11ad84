//! The modules of src/ import one way: no import circle among them (issue 26).
//!
//! Every `crate::` path outside comments counts (a `use`, a path in code, a
//! grouped `use crate::{a, b}`), at the granularity of the top-level module
//! (`src/X.rs` or `src/X/`): a module's own folder may refer to itself. The
//! test names the circle it finds, so a newcomer sees which arrow points up.
//! And the layers of docs/design.md ("Where things go") hold: a module imports
//! only from its own layer or the ones below, and every module has a layer.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("reading src/") {
        let path = entry.expect("a src/ entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The text without `//` comments (doc comments included) or string literals'
/// contents, closely enough for paths: a `//` inside a string ends the line's
/// code early, which can only hide a path, never invent one.
fn code_of(text: &str) -> String {
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules `code` names through `crate::`.
fn referenced(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a, b::c, self}`: every first segment (nesting is not used here).
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for item in group.split(',') {
                let name = ident(item.trim());
                if !name.is_empty() && name != "self" {
                    out.insert(name);
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

/// The top-level module of a file under src/: `src/plan/finish.rs` -> `plan`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("a file under src/");
    let first = rel.components().next().expect("a path under src/");
    let first = first.as_os_str().to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// The import graph of src/: module -> the modules it names.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeSet<String> = files
        .iter()
        .map(|f| module_of(&src, f))
        .filter(|m| m != "lib" && m != "main")
        .collect();
    let mut g: BTreeMap<String, BTreeSet<String>> = modules
        .iter()
        .map(|m| (m.clone(), BTreeSet::new()))
        .collect();
    for file in &files {
        let from = module_of(&src, file);
        let Some(edges) = g.get_mut(&from) else {
            continue; // lib.rs declares, main.rs calls: neither is imported
        };
        let text = std::fs::read_to_string(file).expect("reading a source file");
        for to in referenced(&code_of(&text)) {
            if to != from && modules.contains(&to) {
                edges.insert(to);
            }
        }
    }
    g
}

/// A circle through `start`, if there is one (depth-first, names in order).
fn circle_from(
    g: &BTreeMap<String, BTreeSet<String>>,
    start: &str,
    at: &str,
    path: &mut Vec<String>,
    seen: &mut BTreeSet<String>,
) -> Option<Vec<String>> {
    for next in &g[at] {
        if next == start {
            let mut circle = path.clone();
            circle.push(start.to_string());
            return Some(circle);
        }
        if seen.insert(next.clone()) {
            path.push(next.clone());
            if let Some(c) = circle_from(g, start, next, path, seen) {
                return Some(c);
            }
            path.pop();
        }
    }
    None
}

/// docs/design.md's "Where things go", bottom first: the modules of each layer.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "the node's primitives and the vocabulary",
        &[
            "error",
            "paths",
            "clock",
            "fsx",
            "state",
            "finding",
            "logging",
            "exec",
            "dpkg",
            "apt",
            "changelog",
            "forecast",
            "testing",
        ],
    ),
    ("inputs and readers", &["config", "convert", "node"]),
    (
        "what is done to the node",
        &[
            "services",
            "bootstart",
            "policy_rcd",
            "backup",
            "synnefo",
            "migwait",
            "dbguard",
        ],
    ),
    (
        "sources of findings",
        &["aptsim", "boot", "notices", "preflight"],
    ),
    ("phases", &["plan", "rearm", "runner", "status"]),
    ("the command line", &["cli", "commands"]),
];

#[test]
fn every_module_imports_only_from_its_layer_or_below() {
    let layer_of: BTreeMap<&str, usize> = LAYERS
        .iter()
        .enumerate()
        .flat_map(|(i, (_, modules))| modules.iter().map(move |m| (*m, i)))
        .collect();
    let g = graph();
    let unplaced: Vec<&String> = g
        .keys()
        .filter(|m| !layer_of.contains_key(m.as_str()))
        .collect();
    assert!(
        unplaced.is_empty(),
        "modules with no layer: {unplaced:?}; add each to LAYERS here and to docs/design.md's \"Where things go\""
    );
    let mut up = Vec::new();
    for (from, tos) in &g {
        for to in tos {
            let (f, t) = (layer_of[from.as_str()], layer_of[to.as_str()]);
            if t > f {
                up.push(format!(
                    "{from} ({}) -> {to} ({})",
                    LAYERS[f].0, LAYERS[t].0
                ));
            }
        }
    }
    assert!(up.is_empty(), "imports that point up a layer: {up:#?}");
}

#[test]
fn the_design_notes_name_every_layer_and_its_modules() {
    let design = include_str!("../docs/design.md");
    let section = design
        .split("## Where things go")
        .nth(1)
        .expect("docs/design.md has a \"Where things go\" section");
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    for (name, modules) in LAYERS {
        let line = section
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("\"Where things go\" has no line for {name}"));
        for m in modules.iter().filter(|m| **m != "testing") {
            assert!(
                line.contains(&format!("`{m}`")),
                "the line for {name} should name `{m}`: {line}"
            );
        }
    }
}

#[test]
fn no_import_circle_among_src_modules() {
    let g = graph();
    assert!(
        g.len() > 10 && g.values().map(BTreeSet::len).sum::<usize>() > 20,
        "the import graph looks empty: {g:?}"
    );
    for start in g.keys() {
        let mut path = vec![start.clone()];
        let mut seen = BTreeSet::new();
        if let Some(circle) = circle_from(&g, start, start, &mut path, &mut seen) {
            panic!(
                "import circle among src/ modules: {} (an arrow must point down: move the shared part below both)",
                circle.join(" -> ")
            );
        }
    }
}

#[test]
fn the_reader_sees_grouped_and_plain_paths_and_skips_comments() {
    let code = code_of(
        "use crate::{aptsim, fsx::Root, self};\n\
         let x = crate::state::now(); // crate::plan is only said here\n\
         /// [`crate::runner`] in a doc comment\n",
    );
    let names: Vec<String> = referenced(&code).into_iter().collect();
    assert_eq!(names, ["aptsim", "fsx", "state"]);
}
