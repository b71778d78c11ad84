//! The man pages in `docs/man/` (shipped in the .deb) are generated from the
//! CLI definition: `synnefo-upgrade(8)`, and one page per command,
//! `synnefo-upgrade-COMMAND(8)`, which the first one lists (as git's pages do).
//! This test fails when a page is stale or missing, or when `docs/man/` holds
//! a page of a command that is gone.
//! Regenerate with `UPDATE_MAN=1 cargo test --test man_page`.

use clap::CommandFactory;
use std::collections::BTreeMap;
use std::path::Path;
use synnefo_upgrade::cli::Cli;

/// Every page: file name and contents.
fn pages() -> BTreeMap<String, Vec<u8>> {
    // No page for `help`: it is not a command of ours (`--help` is on every page).
    let mut cli = Cli::command().disable_help_subcommand(true);
    cli.build();
    let mut commands: Vec<clap::Command> = cli
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .cloned()
        .collect();
    commands.push(cli);
    commands
        .into_iter()
        .map(|command| {
            let man = clap_mangen::Man::new(command)
                .section("8")
                .source(concat!("synnefo-upgrade ", env!("CARGO_PKG_VERSION")));
            let mut page = Vec::new();
            man.render(&mut page).expect("rendering into memory");
            (man.get_filename(), page)
        })
        .collect()
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
        if path.extension().is_some_and(|e| e == "8") {
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
