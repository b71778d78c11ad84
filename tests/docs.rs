//! The documented step ids (docs/json.md, a contract for fleet tooling) are
//! exactly the plan's, in order.

use synnefo_upgrade::base::state::PhaseKind;
use synnefo_upgrade::phases::plan::steps;

#[test]
fn json_doc_lists_every_step_of_every_phase_in_order() {
    let doc = include_str!("../docs/json.md").replace('\n', " ");
    for phase in [PhaseKind::Prepare, PhaseKind::Finish, PhaseKind::Abort] {
        let ids: Vec<&str> = steps(phase).iter().map(|s| s.id).collect();
        let listed = format!("`{}`: {}.", phase.name(), ids.join(", "));
        assert!(doc.contains(&listed), "docs/json.md should say: {listed}");
    }
}

/// Every "design.md §N" a comment cites is a numbered heading of docs/design.md.
#[test]
fn cited_design_sections_exist() {
    let design = include_str!("../docs/design.md");
    let headings: Vec<&str> = design
        .lines()
        .filter(|l| l.starts_with('#'))
        .filter_map(|l| l.trim_start_matches('#').split_whitespace().next())
        .map(|n| n.trim_end_matches('.'))
        .collect();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cited = 0;
    let mut stack = vec![root.join("src"), root.join("debian")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            for (at, _) in text.match_indices('§') {
                let section: String = text[at + '§'.len_utf8()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '.')
                    .collect();
                let section = section.trim_end_matches('.');
                assert!(
                    headings.contains(&section),
                    "{} cites §{section}, which docs/design.md does not have (headings: {headings:?})",
                    path.display()
                );
                cited += 1;
            }
        }
    }
    assert!(
        cited > 0,
        "no citation found: is the walk looking in the right place?"
    );
}

/// Every finding id that a `Finding` constructor in src/ is given as a
/// literal is documented in docs/json.md (a contract for fleet tooling).
#[test]
fn json_doc_lists_every_literal_finding_id() {
    fn sources(dir: &std::path::Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let doc = include_str!("../docs/json.md");
    let mut texts = Vec::new();
    sources(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut texts,
    );
    let mut ids = Vec::new();
    for text in &texts {
        for ctor in ["Finding::new(", "Finding::inhibitor("] {
            for (at, _) in text.match_indices(ctor) {
                let rest = text[at + ctor.len()..].trim_start();
                if let Some(literal) = rest.strip_prefix('"') {
                    if let Some(end) = literal.find('"') {
                        ids.push(literal[..end].to_string());
                    }
                }
            }
        }
    }
    assert!(ids.len() > 20, "the scan finds the constructors: {ids:?}");
    for id in ids {
        assert!(
            doc.contains(&format!("`{id}`")),
            "docs/json.md should list the finding id `{id}`"
        );
    }
}
