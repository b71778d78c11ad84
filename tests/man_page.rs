//! The man page `docs/synnefo-upgrade.8` (shipped in the .deb) is generated from
//! the CLI definition; this test fails when it is stale.
//! Regenerate with `UPDATE_MAN=1 cargo test --test man_page`.

use clap::CommandFactory;
use synnefo_upgrade::cli::Cli;

#[test]
fn man_page_matches_the_cli_definition() {
    let mut rendered = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .section("8")
        .render(&mut rendered)
        .unwrap();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/synnefo-upgrade.8");
    if std::env::var_os("UPDATE_MAN").is_some() {
        std::fs::write(path, &rendered).unwrap();
    }
    let committed = std::fs::read(path).unwrap_or_default();
    assert!(
        committed == rendered,
        "docs/synnefo-upgrade.8 is stale: run 'UPDATE_MAN=1 cargo test --test man_page'"
    );
    let text = String::from_utf8(rendered).unwrap();
    for command in ["check", "prepare", "finish", "status", "policy\\-rc.d"] {
        assert!(text.contains(command), "man page lacks '{command}'");
    }
}
