//! The shipped conffile `debian/upgrade.toml`: as shipped it means the compiled
//! defaults; with every commented example enabled it is still valid — so
//! every key it documents exists, with the type it shows.

use synnefo_upgrade::base::fsx::Root;
use synnefo_upgrade::inputs::config::{self, Config};

const SHIPPED: &str = include_str!("../debian/upgrade.toml");

fn load(text: &str) -> anyhow::Result<Config> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("etc/synnefo-upgrade/upgrade.toml");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, text).unwrap();
    config::load(&Root::new(dir.path()), None)
}

#[test]
fn shipped_conffile_is_the_defaults() {
    assert_eq!(load(SHIPPED).unwrap(), Config::default());
}

#[test]
fn every_documented_example_is_valid() {
    // Uncomment `#key = value` and `#[[table]]` lines (not prose comments).
    let enabled: String = SHIPPED
        .lines()
        .map(|line| match line.strip_prefix('#') {
            Some(rest)
                if rest.starts_with("[[")
                    || rest
                        .split_once(" = ")
                        .is_some_and(|(k, _)| !k.contains(' ')) =>
            {
                rest
            }
            _ => line,
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let config = load(&enabled).unwrap_or_else(|e| panic!("{e:#}\n{enabled}"));
    assert_eq!(
        config.services.managed.as_deref(),
        Some(&["gunicorn".to_string(), "archipelago".to_string()][..])
    );
    assert_eq!(config.health.len(), 2);
    assert!(config.fix_ip_history.changelog.is_some());
    assert!(config.cyclades.base_url.is_some());
    assert!(config.convert.allowed_hosts.is_some());
    assert!(config.backups.database_command.is_some());
}

#[test]
fn invalid_values_are_rejected_with_the_file() {
    let err = load("[[health]]\nname = \"x\"\nurl = \"ftp://x\"\n").unwrap_err();
    assert!(
        format!("{err:#}").contains("upgrade.toml: x: url 'ftp://x' is not http"),
        "{err:#}"
    );
    let err = load("[[health]]\nurl = \"http://x\"\ncommand = [\"true\"]\n").unwrap_err();
    assert!(format!("{err:#}").contains("exactly one of"), "{err:#}");
    let err = load("[fix_ip_history]\nchangelog = \"relative.log\"\n").unwrap_err();
    assert!(
        format!("{err:#}").contains("not an absolute path"),
        "{err:#}"
    );
}

/// Every key of the configuration appears in the shipped conffile (as a
/// commented example) and in docs/configuration.md.
#[test]
fn every_key_is_documented() {
    let docs = include_str!("../docs/configuration.md");
    let mut config = Config::default();
    // Optional keys only serialize when set: give each a value.
    config.services.managed = Some(vec![]);
    config.fix_ip_history.changelog = Some(config::NodePath::new("/x").unwrap());
    config.cyclades.base_url = Some("http://x".into());
    config.cyclades.ui_url = Some("http://x".into());
    config.convert.allowed_hosts = Some(vec![]);
    config.backups.database_command = Some(vec!["x".into()]);
    let table = toml::Value::try_from(&config).unwrap();
    let mut missing = Vec::new();
    for (section, keys) in table.as_table().unwrap() {
        let Some(keys) = keys.as_table() else {
            continue;
        };
        for key in keys.keys() {
            if !SHIPPED.contains(&format!("#{key} = ")) {
                missing.push(format!("debian/upgrade.toml: [{section}] {key}"));
            }
            if !docs.contains(&format!("`{section}.{key}`"))
                && !docs.contains(&format!("`{section}.{key}`,"))
            {
                missing.push(format!("docs/configuration.md: {section}.{key}"));
            }
        }
    }
    for key in ["name", "url", "command"] {
        if !SHIPPED.contains(&format!("#{key} = ")) {
            missing.push(format!("debian/upgrade.toml: [[health]] {key}"));
        }
    }
    assert!(missing.is_empty(), "undocumented keys: {missing:?}");
}

#[test]
fn release_names_and_encoding_are_checked() {
    let err = load("[release]\nsuite_to = \"wheezy-backports\"\n").unwrap_err();
    assert!(
        format!("{err:#}").contains("must be different release names"),
        "{err:#}"
    );
    let err = load("[release]\nos_to = \"\"\n").unwrap_err();
    assert!(
        format!("{err:#}").contains("is not a release name"),
        "{err:#}"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("etc/synnefo-upgrade/upgrade.toml");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, b"[release]\n# caf\xe9\n").unwrap();
    let err = config::load(&Root::new(dir.path()), None).unwrap_err();
    assert!(
        format!("{err:#}").contains("upgrade.toml:2: not UTF-8"),
        "{err:#}"
    );
    assert_eq!(
        synnefo_upgrade::base::error::exit_code(&err),
        std::process::ExitCode::from(2)
    );
}
