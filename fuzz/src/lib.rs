//! The properties the fuzz targets check, one function per target.
//!
//! Shared by the cargo-fuzz targets in `fuzz/fuzz_targets/` (nightly, libFuzzer)
//! and by `tests/fuzz_smoke.rs` (stable), which includes this file with
//! `#[path]` and replays every committed corpus input through [`TARGETS`]. Each
//! function takes arbitrary bytes and panics when a property breaks; it only
//! calls the product's public parsing functions and never changes them. Files
//! (settings, TOML configuration) go to a scratch root under the temporary
//! directory, removed after each input.

use std::cmp::Ordering;
use std::fs;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};

use synnefo_upgrade::base::error::{exit_code, EXIT_BAD_INPUT};
use synnefo_upgrade::base::fsx::Root;
use synnefo_upgrade::convert::webconf::{self, Server};
use synnefo_upgrade::convert::{self, gunicorn, Change, Loaded};
use synnefo_upgrade::{
    actions::policy_rcd, actions::synnefo, base::apt, base::changelog, base::dpkg, findings::boot,
    findings::notices, inputs::config,
};

/// Runs the parsers over arbitrary `data` and panics when an invariant breaks
/// (the `settings_parser` target and the stable loop in `tests/convert_fuzz.rs`
/// call this): tokenizing never
/// panics; every assignment's value lies inside the file; a literal renders and
/// reads back; a converted gunicorn config converts to nothing the second time.
pub fn check_parsers(data: &[u8]) {
    let loaded = Loaded {
        shown: PathBuf::from("/etc/gunicorn.d/fuzz"),
        real: PathBuf::from("/etc/gunicorn.d/fuzz"),
        bytes: data.to_vec(),
    };
    if let Ok(module) = convert::python::tokenize(data) {
        for stmt in convert::python::assignments(data, &module) {
            let line = &module.lines[stmt.line];
            assert!(line.start <= line.end && line.end <= data.len());
            let toks = &line.tokens[stmt.value.clone()];
            if let Ok(expr) = convert::python::parse_literal(data, toks) {
                assert!(expr.start <= expr.end && expr.end <= data.len());
                if let Some(s) = expr.as_str() {
                    let text = convert::python::quote(s, '"');
                    let back = convert::python::tokenize(text.as_bytes())
                        .expect("quoted string tokenizes");
                    let reread =
                        convert::python::parse_literal(text.as_bytes(), &back.lines[0].tokens)
                            .expect("quoted string is a literal");
                    assert_eq!(reread.as_str(), Some(s));
                }
            }
        }
    }
    if let Ok(Some((new, _))) = convert::gunicorn::convert(&loaded) {
        let again = Loaded {
            bytes: new,
            ..loaded
        };
        assert!(
            matches!(convert::gunicorn::convert(&again), Ok(None)),
            "second conversion changed something"
        );
    }
}

/// A property: panics when `data` breaks it.
pub type Property = fn(data: &[u8]);

/// Every target: its name (the cargo-fuzz binary and its `corpus/` folder) and
/// its property function.
pub const TARGETS: &[(&str, Property)] = &[
    ("settings_parser", settings_parser),
    ("gunicorn", gunicorn),
    ("apache_nginx", apache_nginx),
    ("apt_list", apt_list),
    ("apt_deb822", apt_deb822),
    ("dpkg_status", dpkg_status),
    ("changelog", changelog),
    ("policy_rcd_args", policy_rcd_args),
    ("config_toml", config_toml),
    ("preflight_parsers", preflight_parsers),
];

/// A scratch node root, removed when dropped (also when a property panics).
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "synnefo-upgrade-fuzz-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, AtomicOrdering::Relaxed)
        ));
        fs::create_dir_all(&dir).expect("creating the scratch root");
        Scratch(dir)
    }

    fn root(&self) -> Root {
        Root::new(&self.0)
    }

    fn write(&self, abs: &str, bytes: &[u8]) {
        let path = self.root().path(abs);
        fs::create_dir_all(path.parent().expect("absolute path")).expect("creating a directory");
        fs::write(path, bytes).expect("writing a scratch file");
    }

    fn remove(&self, abs: &str) {
        fs::remove_file(self.root().path(abs)).expect("removing a scratch file");
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn is_bad_input(err: &anyhow::Error) -> bool {
    exit_code(err) == ExitCode::from(EXIT_BAD_INPUT)
}

/// Python settings: [`check_parsers`] (tokenizer, literals, gunicorn),
/// then the settings conversion over up to three `/etc/synnefo/*.conf` files
/// (the input split at NUL bytes): it never panics, refuses only with a
/// bad-input error (exit 2), and a converted node converts to nothing.
pub fn settings_parser(data: &[u8]) {
    check_parsers(data);
    let scratch = Scratch::new();
    let root = scratch.root();
    for (i, part) in data.splitn(3, |b| *b == 0).enumerate() {
        scratch.write(&format!("/etc/synnefo/{}0-fuzz.conf", i + 1), part);
    }
    let options = config::Convert {
        allowed_hosts: Some(vec!["cloud.example.org".into(), ".example.org".into()]),
    };
    let plan = |out: &mut convert::Conversion| convert::settings::plan(&root, &options, out);
    let mut first = convert::Conversion::default();
    if let Err(e) = plan(&mut first) {
        assert!(is_bad_input(&e), "settings refused without exit 2: {e:#}");
        return;
    }
    for change in &first.changes {
        let Change::Edit { path, old, new, .. } = change else {
            panic!("settings conversion planned {change:?}");
        };
        assert_ne!(old, new, "an edit that changes nothing");
        fs::write(root.path(path), new).expect("writing the converted file");
    }
    let mut second = convert::Conversion::default();
    match plan(&mut second) {
        Ok(()) => assert!(
            second.changes.is_empty(),
            "a converted node converts again: {}",
            second.summary()
        ),
        Err(e) => panic!("a converted node is refused: {e:#}"),
    }
}

/// gunicorn configs: a conversion never panics; refusals are bad-input errors
/// naming the file; a converted config differs, says what changed, and
/// converts to nothing the second time.
pub fn gunicorn(data: &[u8]) {
    let shown = PathBuf::from("/etc/gunicorn.d/fuzz");
    let loaded = Loaded {
        shown: shown.clone(),
        real: shown,
        bytes: data.to_vec(),
    };
    match gunicorn::convert(&loaded) {
        Ok(None) => {}
        Ok(Some((new, what))) => {
            assert_ne!(new, data, "a conversion that changes nothing");
            assert!(!what.is_empty(), "a conversion that says nothing");
            let again = Loaded {
                bytes: new,
                ..loaded
            };
            match gunicorn::convert(&again) {
                Ok(None) => {}
                Ok(Some((_, what))) => panic!("second conversion changed {what:?}"),
                Err(e) => panic!("converted config refused: {e:#}"),
            }
        }
        Err(e) => {
            let msg = format!("{e:#}");
            assert!(is_bad_input(&e), "refused without exit 2: {msg}");
            assert!(msg.starts_with("/etc/gunicorn.d/fuzz:"), "{msg}");
        }
    }
}

const OLD_HEADER: &[u8] = b"x-forwarded-protocol";

fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// Apache and nginx header rewrite: lines are kept one for one; only lines
/// naming `X-Forwarded-Protocol` change, each by exactly that word; the count
/// is the number of renamed headers (at least one per changed line); a second
/// rewrite changes nothing.
pub fn apache_nginx(data: &[u8]) {
    for server in [Server::Apache, Server::Nginx] {
        let (out, n) = webconf::rewrite_header(data, server);
        assert_eq!(
            out.len() + 3 * n,
            data.len(),
            "{server:?}: only the header shrinks"
        );
        let before = convert::split_lines(data);
        let after = convert::split_lines(&out);
        assert_eq!(before.len(), after.len(), "{server:?}: lines kept");
        let mut changed = 0;
        for (b, a) in before.iter().zip(&after) {
            if b != a {
                changed += 1;
                assert!(contains_ignore_case(b, OLD_HEADER), "{server:?}: {b:?}");
                assert!(a.windows(17).any(|w| w == b"X-Forwarded-Proto"));
            }
        }
        assert!(changed <= n, "{server:?}: count of renamed headers");
        assert_eq!(changed == 0, n == 0, "{server:?}: a rename changes a line");
        let (again, m) = webconf::rewrite_header(&out, server);
        assert_eq!((m, &again), (0, &out), "{server:?}: second rewrite");
    }
}

/// Suite pairs the APT targets rewrite with (the `to` never starts with the
/// `from`, as with real codenames; the lengths differ so that a change shows).
const SUITES: [(&str, &str); 2] = [("wheezy", "jessie"), ("jessie", "stretch")];

fn apt(data: &[u8], deb822: bool) {
    // `rewrite_sources` refuses a file that is not UTF-8 before parsing it.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for (from, to) in SUITES {
        for word in text.split_whitespace() {
            let mapped = apt::rewrite_suite(word, from, to);
            if let Some(new) = &mapped {
                assert_eq!(new.strip_prefix(to), word.strip_prefix(from), "{word}");
            }
            if apt::unmappable(word, from).is_some() && mapped.is_some() {
                assert_eq!(word, format!("{from}-lts"), "unmappable yet rewritten");
            }
        }
        let Some(new) = apt::rewrite(text, deb822, from, to) else {
            continue;
        };
        let out = new.text;
        assert_ne!(out, text, "a rewrite that changes nothing");
        let before: Vec<&str> = text.split_inclusive('\n').collect();
        let after: Vec<&str> = out.split_inclusive('\n').collect();
        assert_eq!(before.len(), after.len(), "lines kept");
        let disabled = apt::disabled_prefix(from, to);
        for (i, (b, a)) in before.iter().zip(&after).enumerate() {
            if new.disabled.contains(&(i + 1)) {
                // A disc's line, commented out whole: nothing else changes.
                assert!(!deb822, "{b:?}: a deb822 line commented out");
                assert_eq!(*a, format!("{disabled} {b}"), "{b:?}");
                continue;
            }
            if b == a {
                continue;
            }
            assert!(b.contains(from) && a.contains(to), "{b:?} -> {a:?}");
            assert_eq!(b.ends_with('\n'), a.ends_with('\n'), "end of line kept");
            if !deb822 {
                assert_eq!(
                    a.len() + from.len(),
                    b.len() + to.len(),
                    "one suite per line"
                );
            }
        }
        assert_eq!(
            apt::rewrite(&out, deb822, from, to),
            None,
            "a second rewrite changes something"
        );
    }
}

/// One-line-style `.list` files: see [`apt`]: every rewrite is idempotent,
/// keeps lines one for one and changes only the suite.
pub fn apt_list(data: &[u8]) {
    apt(data, false);
}

/// deb822 `.sources` files: the same properties as [`apt_list`].
pub fn apt_deb822(data: &[u8]) {
    apt(data, true);
}

fn check_ordering(versions: &[&str]) {
    use dpkg::compare_versions as cmp;
    for a in versions {
        assert_eq!(cmp(a, a), Ordering::Equal, "{a:?} reflexive");
        let tilde = format!("{a}~");
        assert_eq!(cmp(&tilde, a), Ordering::Less, "{tilde:?} < {a:?}");
        for b in versions {
            let ab = cmp(a, b);
            assert_eq!(ab, cmp(b, a).reverse(), "{a:?} vs {b:?} antisymmetric");
            for c in versions {
                let (bc, ac) = (cmp(b, c), cmp(a, c));
                if ab != Ordering::Greater && bc != Ordering::Greater {
                    assert_ne!(ac, Ordering::Greater, "{a:?} <= {b:?} <= {c:?} transitive");
                }
                if ab == Ordering::Equal {
                    assert_eq!(ac, bc, "{a:?} == {b:?} but not against {c:?}");
                }
            }
        }
    }
}

/// dpkg status and versions: parsing never panics; every package survives a
/// render and re-parse unchanged; `upstream` is a part of the version; version
/// ordering is reflexive, antisymmetric and transitive (over the first three
/// lines of the input and the first versions found), and `V~` sorts before `V`.
pub fn dpkg_status(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return; // read_to_string refuses it before parsing
    };
    let packages = dpkg::parse_status(text);
    assert!(packages.len() <= text.split("\n\n").count());
    let mut rendered = String::new();
    for p in &packages {
        assert!(p.version.contains(p.upstream_version()));
        rendered.push_str(&format!(
            "Package: {}\nStatus: {} {} {}\nVersion: {}\nInstalled-Size: {}\n",
            p.name, p.want, p.flag, p.state, p.version, p.installed_size_kib
        ));
        if p.source != p.name {
            rendered.push_str(&format!("Source: {} (1.0)\n", p.source));
        }
        rendered.push('\n');
    }
    assert_eq!(
        dpkg::parse_status(&rendered),
        packages,
        "render and re-parse"
    );
    let mut versions: Vec<&str> = text.lines().take(3).collect();
    versions.extend(packages.iter().take(3).map(|p| p.version.as_str()));
    check_ordering(&versions);
}

/// The owner changelog: `validate` never panics; a valid file has one change
/// per line, each the line's fields; every line without exactly 4 `|` fields
/// is reported; bad line numbers ascend within the file; a line's verdict does
/// not depend on the other lines.
pub fn changelog(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return; // check_file refuses it before validating
    };
    // Python's splitlines, independently of the product.
    let normalized = text.replace("\r\n", "\n").replace('\r', "\n");
    let lines: Vec<&str> = match normalized.strip_suffix('\n') {
        _ if normalized.is_empty() => Vec::new(),
        Some(body) => body.split('\n').collect(),
        None => normalized.split('\n').collect(),
    };
    let bad_lines: Vec<usize> = match changelog::validate(text) {
        Ok(changes) => {
            assert_eq!(changes.len(), lines.len());
            for (i, c) in changes.iter().enumerate() {
                assert_eq!(c.line, i + 1);
                let fields: Vec<&str> = lines[i].split('|').collect();
                assert_eq!(fields.len(), 4, "accepted {:?}", lines[i]);
                assert_eq!([&c.from, &c.to, &c.date], [fields[1], fields[2], fields[3]]);
                assert_eq!(fields[0].parse::<u64>().ok(), Some(c.vm));
            }
            let summary = changelog::summarize(&changes);
            assert_eq!(summary.changes, changes.len());
            assert!(summary.vms <= summary.changes);
            assert_eq!(summary.range.is_some(), !changes.is_empty());
            Vec::new()
        }
        Err(bad) => {
            assert!(!bad.is_empty());
            assert!(bad.windows(2).all(|w| w[0].line < w[1].line), "ascending");
            assert!(bad.iter().all(|b| (1..=lines.len()).contains(&b.line)));
            assert!(bad.iter().all(|b| !b.problem.is_empty()));
            bad.iter().map(|b| b.line).collect()
        }
    };
    for (i, line) in lines.iter().enumerate().take(64) {
        let is_bad = bad_lines.contains(&(i + 1));
        if line.split('|').count() != 4 {
            assert!(is_bad, "line {} accepted with != 4 fields: {line:?}", i + 1);
        }
        let alone = changelog::validate(&format!("{line}\n"));
        assert_eq!(alone.is_err(), is_bad, "line {} alone: {line:?}", i + 1);
    }
}

/// policy-rc.d arguments (the input split at NUL bytes, as argv): `parse` never
/// panics; `--quiet` anywhere changes nothing; a decision has an id that is not
/// an option and non-empty actions without whitespace, and is denied exactly
/// when an action may start the service; an id is managed under both its names.
pub fn policy_rcd_args(data: &[u8]) {
    let args: Vec<String> = if data.is_empty() {
        Vec::new()
    } else {
        data.split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect()
    };
    let result = policy_rcd::parse(&args);
    let mut quiet = vec!["--quiet".to_string()];
    quiet.extend(args.iter().cloned());
    quiet.push("--quiet".into());
    assert_eq!(
        policy_rcd::parse(&quiet),
        result,
        "--quiet changed the result"
    );
    match result {
        Ok(policy_rcd::Request::List { id }) => {
            assert!(args.iter().any(|a| a == "--list"));
            assert!(!id.starts_with("--"));
        }
        Ok(policy_rcd::Request::Decide { id, actions, .. }) => {
            assert!(!id.starts_with("--"), "{id:?}");
            assert!(!args.iter().any(|a| a == "--list"));
            assert!(!actions.is_empty());
            assert!(actions.iter().all(|a| !a.contains(char::is_whitespace)));
            let harmless = actions
                .iter()
                .all(|a| matches!(a.as_str(), "stop" | "force-stop" | "status"));
            let want = if harmless {
                policy_rcd::code::ALLOW
            } else {
                policy_rcd::code::FORBIDDEN
            };
            assert_eq!(policy_rcd::decide_managed(&actions), want, "{actions:?}");
            let name = id.strip_suffix(".service").unwrap_or(&id);
            assert!(policy_rcd::is_managed([name], &id));
            assert!(policy_rcd::is_managed([name], &format!("{name}.service")));
            assert!(!policy_rcd::is_managed([format!("{name}x").as_str()], &id));
        }
        Err(e) => assert!(!e.is_empty()),
    }
}

const MAIN: &str = "/etc/synnefo-upgrade/upgrade.toml";
const DROPIN: &str = "/etc/synnefo-upgrade/upgrade.d/50-fuzz.toml";

/// The TOML configuration: loading never panics; a UTF-8 file that does not
/// load is a bad-input error (exit 2) naming the file; the same file gives the
/// same configuration as the main file, as a drop-in, and as both (a merge
/// with itself changes nothing).
pub fn config_toml(data: &[u8]) {
    let scratch = Scratch::new();
    let root = scratch.root();
    scratch.write(MAIN, data);
    let main = config::load(&root, None);
    if std::str::from_utf8(data).is_err() {
        // Not UTF-8: an I/O error ("reading '...'"), exit 1 (see fuzz/README.md).
        assert!(main.is_err());
        return;
    }
    if let Err(e) = &main {
        let msg = format!("{e:#}");
        assert!(is_bad_input(e), "refused without exit 2: {msg}");
        assert!(msg.starts_with(MAIN), "{msg}");
    }
    scratch.write(DROPIN, data);
    let both = config::load(&root, None);
    scratch.remove(MAIN);
    let dropin = config::load(&root, None);
    if let Err(e) = &dropin {
        let msg = format!("{e:#}");
        assert!(is_bad_input(e), "refused without exit 2: {msg}");
        assert!(msg.starts_with(DROPIN), "{msg}");
    }
    let ok = |r: &anyhow::Result<config::Config>| r.as_ref().ok().cloned();
    assert_eq!(ok(&main), ok(&dropin), "main file vs drop-in");
    assert_eq!(ok(&main), ok(&both), "merged with itself");
    assert_eq!(main.is_ok(), dropin.is_ok());
    assert_eq!(main.is_ok(), both.is_ok());
}

/// The read-only parsers behind preflight's boot, database and notice
/// findings, on UTF-8 input (lossy): South's `migrate --list` parses to
/// migrations with a one-word name, and rendering them in South's format
/// parses back to the same; fstab entries have non-empty, whitespace-free
/// fields on ascending lines and survive a render and re-parse; with every
/// path present no device is missing, and with none present every missing
/// device inhibits; gunicorn binds and AMQP URLs never panic, and a notice
/// names what it found.
pub fn preflight_parsers(data: &[u8]) {
    let text = String::from_utf8_lossy(data);

    let migrations = synnefo::parse_south_list(&text);
    let marked = text
        .lines()
        .filter(|l| {
            let t = l.trim();
            t.starts_with("(*)") || t.starts_with("( )")
        })
        .count();
    assert!(migrations.len() <= marked, "one migration per marked line");
    let mut rendered = String::new();
    let mut app = None;
    for m in &migrations {
        assert!(
            !m.name.is_empty() && !m.name.contains(char::is_whitespace),
            "{m:?}"
        );
        if app != Some(&m.app) {
            rendered.push_str(&format!(" {}\n", m.app));
            app = Some(&m.app);
        }
        rendered.push_str(&format!(
            "  ({}) {}\n",
            if m.applied { '*' } else { ' ' },
            m.name
        ));
    }
    assert_eq!(
        synnefo::parse_south_list(&rendered),
        migrations,
        "South render and re-parse"
    );
    let pending = migrations.iter().any(|m| !m.applied);
    let found = synnefo::south_findings(&Ok(text.to_string()));
    assert_eq!(
        found.iter().any(|f| f.inhibitor),
        pending,
        "inhibits exactly when one is pending"
    );

    let entries = boot::parse_fstab(&text);
    assert!(
        entries.windows(2).all(|w| w[0].line < w[1].line),
        "ascending lines"
    );
    let mut rendered = String::new();
    for e in &entries {
        for field in [&e.spec, &e.file, &e.vfstype] {
            assert!(
                !field.is_empty() && !field.contains(char::is_whitespace) && !field.contains('#')
            );
        }
        rendered.push_str(&format!(
            "{} {} {} {}\n",
            e.spec,
            e.file,
            e.vfstype,
            e.options.join(",")
        ));
    }
    let reparsed: Vec<_> = boot::parse_fstab(&rendered)
        .into_iter()
        .map(|e| (e.spec, e.file, e.vfstype, e.options))
        .collect();
    let original: Vec<_> = entries
        .iter()
        .cloned()
        .map(|e| (e.spec, e.file, e.vfstype, e.options))
        .collect();
    assert_eq!(reparsed, original, "fstab render and re-parse");
    let all = boot::fstab_findings(&entries, &|_| true);
    assert!(all.iter().all(|f| f.id != "fstab-device-missing"));
    let none = boot::fstab_findings(&entries, &|_| false);
    for f in &none {
        assert!(
            f.id.starts_with("fstab-") && f.title.starts_with("/etc/fstab:"),
            "{f:?}"
        );
        if f.id == "fstab-device-missing" {
            assert!(f.inhibitor);
        }
    }

    let binds = notices::gunicorn_binds(&text);
    let named: Vec<(String, String)> = binds
        .iter()
        .map(|b| ("/etc/gunicorn.d/f".into(), b.clone()))
        .collect();
    for f in notices::gunicorn_findings(&named, false) {
        assert!(binds.iter().any(|b| f.title.contains(b.as_str())), "{f:?}");
    }
    let urls: Vec<String> = text.split_whitespace().map(str::to_string).collect();
    for url in &urls {
        let _ = notices::amqp_user_host(url);
    }
    assert!(notices::amqp_findings(&urls).len() <= 1);
}
