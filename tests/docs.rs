//! The documented step ids (docs/json.md, a contract for fleet tooling) are
//! exactly the plan's, in order.

use synnefo_upgrade::plan::steps;
use synnefo_upgrade::state::PhaseKind;

#[test]
fn json_doc_lists_every_step_of_every_phase_in_order() {
    let doc = include_str!("../docs/json.md").replace('\n', " ");
    for phase in [PhaseKind::Prepare, PhaseKind::Finish, PhaseKind::Abort] {
        let ids: Vec<&str> = steps(phase).iter().map(|s| s.id).collect();
        let listed = format!("`{}`: {}.", phase.name(), ids.join(", "));
        assert!(doc.contains(&listed), "docs/json.md should say: {listed}");
    }
}
