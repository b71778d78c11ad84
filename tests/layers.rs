//! src/ reads as its layers (issue 26): each layer is a folder, a module
//! imports only from its own layer or the ones below, and no two modules
//! import each other, even through others.
//!
//! Every `crate::` path outside comments counts (a `use`, a path in code, a
//! grouped `use crate::{a, b}`), at the granularity of a module: `src/X.rs`
//! or `src/X/` at the top, `src/LAYER/X.rs` or `src/LAYER/X/` in a layer's
//! folder (a module's own files may refer to each other). The tests name
//! what they find, so a newcomer sees which arrow points up.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// docs/design.md's "Where things go", bottom first: each layer's name, its
/// folder under src/ (`None`: modules at the top of src/), and its modules.
/// The conversion keeps its own folder at the top (`src/convert/`), in the
/// layer of the inputs: the facts read the settings with its reader.
const LAYERS: &[(&str, Option<&str>, &[&str])] = &[
    (
        "the node's primitives and the vocabulary",
        Some("base"),
        &[
            "error",
            "paths",
            "clock",
            "fsx",
            "state",
            "finding",
            "logging",
            "exec",
            "children",
            "dpkg",
            "apt",
            "changelog",
            "forecast",
        ],
    ),
    ("inputs and readers", Some("inputs"), &["config", "node"]),
    (
        "what is done to the node",
        Some("actions"),
        &[
            "services",
            "bootstart",
            "policy_rcd",
            "backup",
            "synnefo",
            "migwait",
            "dbguard",
            "migorder",
        ],
    ),
    (
        "sources of findings",
        Some("findings"),
        &["aptsim", "boot", "notices", "preflight"],
    ),
    (
        "phases",
        Some("phases"),
        &[
            "plan",
            "rearm",
            "runner",
            "interrupt",
            "status",
            "distupgrade",
        ],
    ),
    ("the command line", None, &["cli", "commands"]),
];

/// Modules at the top of src/ that belong to a layer with a folder:
/// (module, the layer's name).
const AT_THE_TOP: &[(&str, &str)] = &[("convert", "inputs and readers")];

/// Test helpers (`#[cfg(test)]`), below everything.
const OUTSIDE_THE_LAYERS: &[&str] = &["testing"];

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

/// The text without `//` comments (doc comments included), closely enough
/// for paths: a `//` inside a string ends the line's code early, which can
/// only hide a path, never invent one.
fn code_of(text: &str) -> String {
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// The first two segments of each path `code` names through `crate::`
/// (`crate::base::fsx::Root` -> `base::fsx`; `crate::convert` -> `convert`).
fn referenced(code: &str) -> BTreeSet<Vec<String>> {
    let segments = |path: &str| -> Vec<String> {
        path.split("::")
            .map(|s| ident(s.trim()))
            .take_while(|s| !s.is_empty())
            .take(2)
            .collect()
    };
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a, b::c, self}` (nesting is not used here).
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for item in group.split(',') {
                let path = segments(item);
                if !path.is_empty() && path[0] != "self" {
                    out.insert(path);
                }
            }
        } else {
            let path = segments(rest);
            if !path.is_empty() {
                out.insert(path);
            }
        }
    }
    out
}

fn layer_folders() -> BTreeSet<&'static str> {
    LAYERS.iter().filter_map(|(_, folder, _)| *folder).collect()
}

/// The module a `crate::` path names: `[base, fsx]` -> `fsx`, `[convert, ..]` -> `convert`.
fn module_named(path: &[String]) -> Option<String> {
    if layer_folders().contains(path[0].as_str()) {
        path.get(1).cloned()
    } else {
        Some(path[0].clone())
    }
}

/// The module of a file, with the layer folder it is in:
/// `src/actions/services/systemd.rs` -> (`services`, Some(`actions`)).
fn module_of(src: &Path, file: &Path) -> Option<(String, Option<String>)> {
    let rel = file.strip_prefix(src).expect("a file under src/");
    let parts: Vec<String> = rel
        .components()
        .map(|c| {
            c.as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_string()
        })
        .collect();
    if layer_folders().contains(parts[0].as_str()) {
        // A layer's mod.rs only declares its modules.
        (parts.len() > 1 && parts[1] != "mod").then(|| (parts[1].clone(), Some(parts[0].clone())))
    } else {
        (parts[0] != "lib" && parts[0] != "main").then(|| (parts[0].clone(), None))
    }
}

/// The import graph of src/: module -> the modules it names; and where each module lives.
#[allow(clippy::type_complexity)]
fn graph() -> (
    BTreeMap<String, BTreeSet<String>>,
    BTreeMap<String, Option<String>>,
) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut folder_of = BTreeMap::new();
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        if let Some((module, folder)) = module_of(&src, file) {
            folder_of.insert(module.clone(), folder);
            g.entry(module).or_default();
        }
    }
    for file in &files {
        let Some((from, _)) = module_of(&src, file) else {
            continue; // lib.rs and the layers' mod.rs declare, main.rs calls
        };
        let text = std::fs::read_to_string(file).expect("reading a source file");
        for path in referenced(&code_of(&text)) {
            if let Some(to) = module_named(&path) {
                if to != from && g.contains_key(&to) {
                    g.get_mut(&from).expect("a module of the graph").insert(to);
                }
            }
        }
    }
    (g, folder_of)
}

#[test]
fn every_module_is_in_its_layers_folder_and_imports_only_from_its_layer_or_below() {
    let mut layer_of: BTreeMap<&str, usize> = LAYERS
        .iter()
        .enumerate()
        .flat_map(|(i, (_, _, modules))| modules.iter().map(move |m| (*m, i)))
        .collect();
    let (g, folder_of) = graph();
    for (module, layer) in AT_THE_TOP {
        assert_eq!(
            folder_of.get(*module),
            Some(&None),
            "{module} should be at the top of src/"
        );
        let i = LAYERS
            .iter()
            .position(|(name, _, _)| name == layer)
            .expect("a layer of LAYERS");
        layer_of.insert(module, i);
    }
    let unplaced: Vec<&String> = g
        .keys()
        .filter(|m| !layer_of.contains_key(m.as_str()) && !OUTSIDE_THE_LAYERS.contains(&m.as_str()))
        .collect();
    assert!(
        unplaced.is_empty(),
        "modules with no layer: {unplaced:?}; put each in its layer's folder, in LAYERS here and in docs/design.md's \"Where things go\""
    );
    for (module, &i) in layer_of
        .iter()
        .filter(|(m, _)| !AT_THE_TOP.iter().any(|(t, _)| t == *m))
    {
        let (name, folder, _) = LAYERS[i];
        assert_eq!(
            folder_of.get(*module).map(|f| f.as_deref()),
            Some(folder),
            "module {module} of the layer {name} should be in src/{}",
            folder.unwrap_or("")
        );
    }
    let mut up = Vec::new();
    for (from, tos) in &g {
        for to in tos {
            let (Some(&f), Some(&t)) = (layer_of.get(from.as_str()), layer_of.get(to.as_str()))
            else {
                continue; // the test helpers
            };
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
fn the_design_notes_name_every_layer_its_folder_and_its_modules() {
    let design = include_str!("../docs/design.md");
    let section = design
        .split("## Where things go")
        .nth(1)
        .expect("docs/design.md has a \"Where things go\" section");
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    for (name, folder, modules) in LAYERS {
        let line = section
            .lines()
            .find(|l| l.contains(&format!("**{name}**")))
            .unwrap_or_else(|| panic!("\"Where things go\" has no line for **{name}**"));
        if let Some(folder) = folder {
            assert!(
                line.contains(&format!("`src/{folder}/`")),
                "the line for {name} should name `src/{folder}/`: {line}"
            );
        }
        let top = AT_THE_TOP.iter().filter(|(_, l)| l == name).map(|(m, _)| m);
        for m in modules.iter().chain(top) {
            assert!(
                line.contains(&format!("`{m}`")),
                "the line for {name} should name `{m}`: {line}"
            );
        }
    }
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

#[test]
fn no_import_circle_among_src_modules() {
    let (g, _) = graph();
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
        "use crate::{findings::aptsim, base::fsx::Root, self};\n\
         let x = crate::base::state::now(); // crate::phases::plan is only said here\n\
         let c = crate::convert::plan(root);\n\
         /// [`crate::phases::runner`] in a doc comment\n",
    );
    let modules: Vec<String> = referenced(&code)
        .iter()
        .filter_map(|p| module_named(p))
        .collect();
    assert_eq!(modules, ["fsx", "state", "convert", "aptsim"]);
}
