//! The dist-upgrade, simulated before anything stops: what APT would do with
//! the rewritten sources, asked without changing the node.
//!
//! The sources as `prepare` will rewrite them ([`apt::rewrite`], plus the
//! jessie-backports line and the gevent pin it adds) go into a scratch APT
//! state outside the node ([`fsx::Scratch`]: its own `sources.list`,
//! `sources.list.d/`, `preferences.d/`, lists and cache); `apt-get update`
//! fills it, then `apt-get -s dist-upgrade` runs against the node's own dpkg
//! status, with `Debug::NoLocking` so that no lock of the real APT is taken
//! (the postinst runs with dpkg's lock held). Its `Inst`/`Remv`/`Conf` lines
//! decide the findings: a Synnefo package that would not reach 0.19 or would
//! be removed, `systemd-sysv` not installed, gevent/greenlet candidates below
//! [`apt::GEVENT_REQUIREMENTS`], a source that fails to download.
//!
//! What needs no download is checked always, also under `--root` and without
//! network: dpkg holds (the `hold` selection of dpkg's status, which `apt-mark
//! hold` sets) and APT pins (`/etc/apt/preferences`, `preferences.d`).
//!
//! Reads the node only. The parsers and the findings are pure; [`findings`]
//! reads the node, runs APT and hands them what it read.

use anyhow::Result;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::base::apt;
use crate::base::dpkg::{self, Package};
use crate::base::exec;
use crate::base::finding::{Finding, Severity};
use crate::base::fsx::{self, Root};
use crate::base::paths;
use crate::inputs::config::Config;
use crate::inputs::node::{self, Facts};

/// APT's preferences file.
pub const PREFERENCES: &str = "/etc/apt/preferences";
/// APT's preferences fragments.
pub const PREFERENCES_DIR: &str = "/etc/apt/preferences.d";
/// The Synnefo version the dist-upgrade must bring.
pub const TO_VERSION: &str = "0.19";
/// How long each `apt-get` of the simulation may take (seconds).
pub const TIMEOUT_SECS: u64 = 300;
/// How long the download of `prepare --download-only` may take (seconds).
pub const DOWNLOAD_TIMEOUT_SECS: u64 = 3600;
/// The node's archive cache, where `prepare --download-only` leaves the packages.
pub const ARCHIVES: &str = "/var/cache/apt/archives";
/// The packages whose pin or hold keeps sysvinit as the init system.
const SYSVINIT: &[&str] = &["sysvinit", "sysvinit-core"];
/// The package that makes systemd the init system.
const SYSTEMD_SYSV: &str = "systemd-sysv";

/// One line of `apt-get -s` output that changes a package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `Inst pkg [old] (new Suite [arch])`: unpacked at `new` (`old`: the
    /// version installed now, if any).
    Inst {
        /// The package (without `:arch`).
        package: String,
        /// The version installed now.
        old: Option<String>,
        /// The version it would get.
        new: String,
    },
    /// `Remv pkg [ver]`: removed.
    Remv {
        /// The package (without `:arch`).
        package: String,
    },
    /// `Conf pkg (ver Suite [arch])`: configured.
    Conf {
        /// The package (without `:arch`).
        package: String,
        /// The version configured.
        version: String,
    },
}

fn bare_name(word: &str) -> String {
    word.split(':').next().unwrap_or(word).to_string()
}

/// The text inside the leading `open`…`close` of `rest`, and what follows.
fn bracketed(rest: &str, open: char, close: char) -> Option<(&str, &str)> {
    let inner = rest.trim_start().strip_prefix(open)?;
    let end = inner.find(close)?;
    Some((&inner[..end], &inner[end + close.len_utf8()..]))
}

/// Parses the `Inst`, `Remv` and `Conf` lines of `apt-get -s` output (other
/// lines, such as `Reading package lists...` or the summaries, are skipped).
pub fn parse_simulation(text: &str) -> Vec<Action> {
    text.lines()
        .filter_map(|line| {
            let (verb, rest) = line.split_once(' ')?;
            let rest = rest.trim_start();
            let (name, rest) = rest.split_once(' ').unwrap_or((rest, ""));
            let package = bare_name(name);
            match verb {
                "Inst" => {
                    let (old, rest) = match bracketed(rest, '[', ']') {
                        Some((old, after)) => (Some(old.trim().to_string()), after),
                        None => (None, rest),
                    };
                    let (new, _) = bracketed(rest, '(', ')')?;
                    Some(Action::Inst {
                        package,
                        old,
                        new: new.split_whitespace().next()?.to_string(),
                    })
                }
                "Remv" => Some(Action::Remv { package }),
                "Conf" => {
                    let (version, _) = bracketed(rest, '(', ')')?;
                    Some(Action::Conf {
                        package,
                        version: version.split_whitespace().next()?.to_string(),
                    })
                }
                _ => None,
            }
        })
        .collect()
}

/// What the dist-upgrade would leave of `name`: its version, or `None` when
/// it would be removed or is not installed (`installed`: dpkg's present packages).
pub fn final_version(actions: &[Action], installed: &[Package], name: &str) -> Option<String> {
    let mut version = installed
        .iter()
        .find(|p| p.name == name && p.is_present())
        .map(|p| p.version.clone());
    for action in actions {
        match action {
            Action::Inst { package, new, .. } if package == name => version = Some(new.clone()),
            Action::Remv { package } if package == name => version = None,
            _ => {}
        }
    }
    version
}

/// A download that `apt-get update` reported as failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What failed (the URL, or the URI and suite as APT names them).
    pub url: String,
    /// Why, as APT says it.
    pub reason: String,
}

impl Failure {
    /// Whether the failure is one of reaching the network at all (name
    /// resolution, no route), not of the source itself.
    pub fn is_network(&self) -> bool {
        const NETWORK: &[&str] = &[
            "Could not resolve",
            "Temporary failure resolving",
            "Network is unreachable",
            "No route to host",
            "Could not connect",
            "Connection timed out",
            "Connection failed",
        ];
        NETWORK.iter().any(|n| self.reason.contains(n))
    }
}

/// Parses the failures of `apt-get update` output: `W:`/`E: Failed to fetch
/// URL  REASON` (every APT), `Err URI …` / `Err:N URI …` followed by an
/// indented reason, and `E: The repository 'URI SUITE Release' does not have
/// a Release file.` (APT ≥ 1.5). Duplicates are dropped.
pub fn parse_update_failures(text: &str) -> Vec<Failure> {
    let mut found: Vec<Failure> = Vec::new();
    let mut push = |f: Failure| {
        if !found.iter().any(|g| g.url == f.url) {
            found.push(f);
        }
    };
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let body = line
            .strip_prefix("W: ")
            .or_else(|| line.strip_prefix("E: "))
            .or_else(|| {
                line.strip_prefix("Err:")
                    .map(|r| r.trim_start_matches(|c: char| c.is_ascii_digit()))
            })
            .or_else(|| line.strip_prefix("Err "));
        let Some(body) = body else { continue };
        if let Some(rest) = body.strip_prefix("Failed to fetch ") {
            let (url, reason) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            push(Failure {
                url: url.to_string(),
                reason: reason.trim().to_string(),
            });
        } else if let Some(rest) = body.strip_prefix("The repository '") {
            let (what, why) = rest.split_once('\'').unwrap_or((rest, ""));
            push(Failure {
                url: what.trim_end_matches(" Release").to_string(),
                reason: if why.contains("not signed") {
                    "it is not signed".into()
                } else {
                    "it has no Release file".into()
                },
            });
        } else if let Some(rest) = body.strip_prefix("GPG error: ") {
            // `URI SUITE Release: REASON`: APT does not use the source.
            let (what, why) = rest.split_once(": ").unwrap_or((rest, ""));
            push(Failure {
                url: what.trim_end_matches(" Release").to_string(),
                reason: format!("GPG error: {}", why.trim()),
            });
        } else if line.starts_with("Err") {
            let what = body.trim();
            let reason = lines
                .get(i + 1)
                .filter(|next| next.starts_with([' ', '\t']))
                .map_or("", |next| next.trim());
            push(Failure {
                url: what.to_string(),
                reason: reason.to_string(),
            });
        }
    }
    // An `Err` line, the `Failed to fetch` and the missing Release file of
    // one source name one failure: keep the full URL, else the first per URI.
    let full: Vec<String> = found
        .iter()
        .filter(|f| !f.url.contains(' '))
        .map(|f| f.url.clone())
        .collect();
    let mut seen: Vec<String> = Vec::new();
    found.retain(|f| {
        let Some((uri, _)) = f.url.split_once(' ') else {
            return true;
        };
        let uri = uri.trim_end_matches('/');
        if full.iter().any(|u| u.starts_with(uri)) || seen.iter().any(|s| s == uri) {
            return false;
        }
        seen.push(uri.to_string());
        true
    });
    found
}

/// Whether `apt-get update` left any index in the scratch lists directory
/// (APT prints `Get:` even for what then fails).
fn fetched_any(lists: &Path) -> bool {
    std::fs::read_dir(lists).is_ok_and(|entries| {
        entries
            .filter_map(|e| e.ok())
            .any(|e| e.file_type().is_ok_and(|t| t.is_file()) && e.file_name() != "lock")
    })
}

/// One stanza of APT preferences (`apt_preferences(5)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// The stanza's first line (1-based).
    pub line: usize,
    /// `Package:` (names, globs with `*`, or `/regex/`), split on white space.
    pub packages: Vec<String>,
    /// `Pin:` (`version 0.18.1*`, `release n=wheezy`, `origin …`).
    pub pin: String,
    /// `Pin-Priority:`.
    pub priority: i64,
}

/// Parses APT preferences: stanzas of `Package:`, `Pin:` and `Pin-Priority:`
/// separated by blank lines; `#` comments and `Explanation:` are skipped; a
/// stanza without the three fields, or with a priority that is not a number,
/// is skipped (APT ignores it too, with a warning).
pub fn parse_preferences(text: &str) -> Vec<Pin> {
    let mut pins = Vec::new();
    let mut start = 0;
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut flush = |start: usize, fields: &mut Vec<(String, String)>| {
        let get = |key: &str| {
            fields
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.clone())
        };
        if let (Some(packages), Some(pin), Some(priority)) =
            (get("Package"), get("Pin"), get("Pin-Priority"))
        {
            if let Ok(priority) = priority.trim().parse() {
                pins.push(Pin {
                    line: start,
                    packages: packages.split_whitespace().map(str::to_string).collect(),
                    pin: pin.trim().to_string(),
                    priority,
                });
            }
        }
        fields.clear();
    };
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            flush(start, &mut fields);
            continue;
        }
        if line.trim_start().starts_with('#') {
            continue;
        }
        if fields.is_empty() {
            start = i + 1;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = fields.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
            continue;
        }
        if let Some((key, value)) = line.split_once(':') {
            fields.push((key.trim().to_string(), value.trim().to_string()));
        }
    }
    flush(start, &mut fields);
    pins
}

/// Whether `pattern` (a package name, or a glob with `*` and `?`) matches `name`.
/// A `/regex/` matches nothing here (reported by the simulation instead).
fn glob_matches(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    !pattern.starts_with('/') && go(pattern.as_bytes(), name.as_bytes())
}

impl Pin {
    fn matches(&self, name: &str) -> bool {
        self.packages.iter().any(|p| glob_matches(p, name))
    }

    /// The version pattern of a `Pin: version …`.
    fn version(&self) -> Option<&str> {
        self.pin.strip_prefix("version").map(str::trim)
    }

    /// Whether the pin names the old release (`release n=FROM`, `a=FROM`, or `release FROM`).
    fn is_release(&self, from: &str) -> bool {
        let Some(rest) = self.pin.strip_prefix("release") else {
            return false;
        };
        rest.split([',', ' '])
            .map(str::trim)
            .any(|t| t == from || t == format!("n={from}") || t == format!("a={from}"))
    }

    /// Whether the pin selects only versions older than `min` (`version 0.18*`).
    fn is_older_version(&self, min: &str) -> bool {
        self.version().is_some_and(|v| {
            let literal = v.split(['*', '?']).next().unwrap_or_default();
            !literal.is_empty()
                && dpkg::compare_versions(dpkg::upstream(literal), min) == Ordering::Less
                && !min.starts_with(literal)
        })
    }

    /// Whether the pin selects old versions only (the old release, or an older version).
    fn is_old(&self, from: &str, min: &str) -> bool {
        self.is_release(from) || self.is_older_version(min)
    }
}

/// Why `pin` would stop the upgrade, if it would: a Synnefo package kept
/// below 0.19 (an old version or the old release above 500, or a negative
/// priority on what is not old), `systemd-sysv` forbidden (a negative
/// priority), sysvinit kept (priority ≥ 1000, or the old release above 500).
/// `synnefo`: the Synnefo package names to consider; `from`: the old suite.
pub fn pin_problem(pin: &Pin, synnefo: &[String], from: &str) -> Option<String> {
    let keeps = |min: &str| {
        (pin.priority > 500 && pin.is_old(from, min))
            || (pin.priority < 0 && !pin.is_old(from, min))
    };
    let held: Vec<&str> = synnefo
        .iter()
        .map(String::as_str)
        .filter(|s| pin.matches(s))
        .collect();
    if !held.is_empty() && keeps(TO_VERSION) {
        return Some(format!(
            "keeps {} from reaching Synnefo {TO_VERSION}",
            held.join(", ")
        ));
    }
    if pin.matches(SYSTEMD_SYSV) && pin.priority < 0 && !pin.is_release(from) {
        return Some(format!(
            "forbids {SYSTEMD_SYSV}: jessie would keep booting sysvinit and the finish unit would never run"
        ));
    }
    let sysv: Vec<&str> = SYSVINIT
        .iter()
        .copied()
        .filter(|s| pin.matches(s))
        .collect();
    if !sysv.is_empty() && (pin.priority >= 1000 || (pin.priority > 500 && pin.is_release(from))) {
        return Some(format!(
            "keeps {}: jessie would boot sysvinit instead of systemd and the finish unit would never run",
            sysv.join(", ")
        ));
    }
    None
}

/// The findings of the pins of `files` (`(path, text)`: the preferences
/// files as read), for the Synnefo packages of `packages`.
pub fn pin_findings(files: &[(PathBuf, String)], packages: &[Package], from: &str) -> Vec<Finding> {
    let mut synnefo: Vec<String> = node::SYNNEFO_PACKAGES
        .iter()
        .map(|s| s.to_string())
        .collect();
    synnefo.extend(
        packages
            .iter()
            .filter(|p| node::is_synnefo_package(p))
            .map(|p| p.name.clone()),
    );
    synnefo.sort();
    synnefo.dedup();
    let mut found = Vec::new();
    for (path, text) in files {
        for pin in parse_preferences(text) {
            if let Some(why) = pin_problem(&pin, &synnefo, from) {
                found.push(Finding::inhibitor(
                    "apt-pin",
                    format!(
                        "{}:{}: the APT pin of '{}' ({}, priority {}) {why}",
                        path.display(),
                        pin.line,
                        pin.packages.join(" "),
                        pin.pin,
                        pin.priority
                    ),
                    "APT pins decide the dist-upgrade's candidates; this one defeats the upgrade",
                    format!(
                        "remove or narrow the stanza at {}:{}",
                        path.display(),
                        pin.line
                    ),
                ));
            }
        }
    }
    found
}

/// The findings of dpkg holds among `packages`: a held Synnefo package,
/// sysvinit, or a gevent/greenlet below the requirement.
pub fn hold_findings(packages: &[Package]) -> Vec<Finding> {
    let held: Vec<&Package> = packages
        .iter()
        .filter(|p| p.is_held() && p.is_present())
        .filter(|p| {
            node::is_synnefo_package(p)
                || SYSVINIT.contains(&p.name.as_str())
                || apt::GEVENT_REQUIREMENTS
                    .iter()
                    .any(|r| r.package == p.name && !r.is_met_by(&p.version))
        })
        .collect();
    if held.is_empty() {
        return Vec::new();
    }
    let names: Vec<&str> = held.iter().map(|p| p.name.as_str()).collect();
    vec![Finding::inhibitor(
        "dpkg-hold",
        format!("held by dpkg: {}", names.join(", ")),
        format!(
            "a held package keeps its version through the dist-upgrade: {}",
            held.iter()
                .map(|p| format!("{} stays {}", p.name, p.version))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        "release the hold (apt-mark unhold), then check again",
    )
    .commands(names.iter().map(|n| format!("apt-mark unhold {n}")))]
}

/// The findings of a simulated dist-upgrade (`actions`) of the node with
/// `packages`; `suite_to`: where gevent/greenlet would come from;
/// `switch`: whether `dist-upgrade` installs systemd-sysv after a release
/// that keeps sysvinit, and whether APT would let it.
pub fn simulation_findings(
    actions: &[Action],
    packages: &[Package],
    suite_to: &str,
    switch: &Switch,
) -> Vec<Finding> {
    let mut found = Vec::new();
    let synnefo: Vec<&Package> = packages
        .iter()
        .filter(|p| p.is_present() && node::is_synnefo_package(p))
        .collect();
    let removed: Vec<&str> = synnefo
        .iter()
        .filter(|p| final_version(actions, packages, &p.name).is_none())
        .map(|p| p.name.as_str())
        .collect();
    if !removed.is_empty() {
        found.push(Finding::inhibitor(
            "dist-upgrade-synnefo-removed",
            format!("the dist-upgrade would remove {}", removed.join(", ")),
            "apt-get -s dist-upgrade with the new sources removes these Synnefo packages (a conflict, or no 0.19 build of them in the sources)",
            format!("make Synnefo {TO_VERSION} packages available (the new release's Synnefo repository), then check again"),
        ));
    }
    let kept: Vec<(&str, String)> = synnefo
        .iter()
        .filter_map(|p| {
            let v = final_version(actions, packages, &p.name)?;
            (dpkg::compare_versions(dpkg::upstream(&v), TO_VERSION) == Ordering::Less)
                .then_some((p.name.as_str(), v))
        })
        .collect();
    if !kept.is_empty() {
        found.push(
            Finding::inhibitor(
                "dist-upgrade-synnefo-kept",
                format!(
                    "the dist-upgrade would leave Synnefo below {TO_VERSION}: {}",
                    kept.iter().map(|(n, v)| format!("{n} {v}")).collect::<Vec<_>>().join(", ")
                ),
                "held, pinned, or no 0.19 build in the new sources: 'finish' would refuse the node after the reboot",
                format!("add the Synnefo {TO_VERSION} repository for the new release, release holds and pins, then check again"),
            )
            .commands([format!(
                "apt-cache policy {}",
                kept.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(" ")
            )]),
        );
    }
    let systemd_sysv = final_version(actions, packages, SYSTEMD_SYSV);
    let no_systemd = |why: String| {
        Finding::inhibitor(
            "dist-upgrade-no-systemd",
            format!("the dist-upgrade would not install {SYSTEMD_SYSV}"),
            why,
            "remove what keeps sysvinit (a hold, a pin of sysvinit-core or against systemd-sysv), then check again",
        )
        .commands([format!("apt-cache policy {SYSTEMD_SYSV} sysvinit-core sysvinit")])
    };
    let booted_sysvinit = "the node would boot sysvinit after the dist-upgrade, and synnefo-upgrade-finish.service (a systemd unit) would never run: the services would stay down";
    if systemd_sysv.is_some() {
    } else if let Switch::Fails(error) = switch {
        found.push(no_systemd(format!(
            "the release keeps sysvinit, and APT refuses the switch that 'synnefo-upgrade dist-upgrade' asks for after it (apt-get -s install {SYSTEMD_SYSV}: {error}): {booted_sysvinit}"
        )));
    } else if *switch == Switch::Possible {
        // A release that keeps sysvinit (trixie does; jessie switched by
        // itself): our dist-upgrade asks for the switch; a bare apt-get does not.
        found.push(
            Finding::new(
                "dist-upgrade-keeps-sysvinit",
                Severity::Low,
                format!("the release keeps sysvinit: {SYSTEMD_SYSV} comes after the dist-upgrade"),
                format!("apt-get dist-upgrade leaves sysvinit-core; 'synnefo-upgrade dist-upgrade' then installs {SYSTEMD_SYSV} ([dist_upgrade] switch_to_systemd), which synnefo-upgrade-finish.service needs at the next boot"),
                format!("run 'synnefo-upgrade dist-upgrade'; after a bare apt-get dist-upgrade, install {SYSTEMD_SYSV} before you reboot"),
            )
            .commands([format!("apt-get install {SYSTEMD_SYSV}")]),
        );
    } else {
        found.push(no_systemd(booted_sysvinit.to_string()));
    }
    for requirement in &apt::GEVENT_REQUIREMENTS {
        let name = requirement.package;
        match final_version(actions, packages, name) {
            Some(v) if !requirement.is_met_by(&v) => found.push(
                Finding::inhibitor(
                    "dist-upgrade-gevent",
                    format!("the dist-upgrade would leave {name} at {v}, older than {}", requirement.min),
                    format!("Synnefo {TO_VERSION}'s gunicorn workers need {name} >= {} (from {suite_to}-backports, pinned by {})", requirement.min, apt::PIN_FILE),
                    format!("make {suite_to}-backports reachable (or a build >= {}), then check again", requirement.min),
                )
                .commands([format!("apt-cache policy {name}")]),
            ),
            _ => {}
        }
    }
    found
}

/// The findings of `apt-get update` failures (`failures`, none network-only).
pub fn failure_findings(failures: &[Failure]) -> Vec<Finding> {
    failures
        .iter()
        .map(|f| {
            Finding::inhibitor(
                "dist-upgrade-source-failed",
                format!("a source of the new release fails to download: {}", f.url),
                if f.reason.is_empty() {
                    "apt-get update of the rewritten sources failed for it".to_string()
                } else {
                    format!("apt-get update of the rewritten sources: {}", f.reason)
                },
                "fix or remove the source line (the dist-upgrade would go without it), then check again",
            )
        })
        .collect()
}

fn not_simulated(why: impl Into<String>) -> Finding {
    Finding::new(
        "dist-upgrade-not-simulated",
        Severity::Info,
        "the dist-upgrade was not simulated",
        why,
        "on the live node with network, 'synnefo-upgrade check' asks APT what the dist-upgrade would do; holds and pins were checked",
    )
}

/// The preferences files of the node: `preferences`, then `preferences.d/*`
/// in name order (APT reads files without extension or ending in `.pref`).
fn preference_files(root: &Root) -> Vec<(PathBuf, String)> {
    let mut files = vec![PathBuf::from(PREFERENCES)];
    if let Ok(entries) = std::fs::read_dir(root.path(PREFERENCES_DIR)) {
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| {
                n.ends_with(".pref")
                    || (!n.contains('.')
                        && n.chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-')))
            })
            .collect();
        names.sort();
        files.extend(
            names
                .into_iter()
                .map(|n| Path::new(PREFERENCES_DIR).join(n)),
        );
    }
    files
        .into_iter()
        .filter_map(|p| {
            let text = fsx::read_text_opt(root, &p).ok()??;
            Some((p, text))
        })
        .collect()
}

/// Everything about the dist-upgrade for the node of `facts`: holds and pins
/// always; the simulation on the live node of the old release, as root, when
/// `[preflight] simulate` is on (otherwise a notice says why not).
pub fn findings(root: &Root, config: &Config, facts: &Facts) -> Vec<Finding> {
    let packages = facts.packages();
    let release = &config.release;
    let mut found = hold_findings(packages);
    found.extend(pin_findings(
        &preference_files(root),
        packages,
        &release.suite_from,
    ));
    let skip = if !config.preflight.simulate {
        Some("[preflight] simulate = false".to_string())
    } else if !root.is_live() {
        Some(format!(
            "under --root {} (a tree, not a running node)",
            root.path("/").display()
        ))
    } else if facts.live_non_root {
        Some("not run as root".to_string())
    } else if facts.os.as_deref() != Ok(release.os_from.as_str()) || facts.packages.is_err() {
        Some(format!(
            "the node is not a readable {} node",
            release.os_from
        ))
    } else {
        None
    };
    if let Some(why) = skip {
        crate::base::forecast::record_unpack(Err(format!(
            "the dist-upgrade was not simulated: {why}"
        )));
        found.push(not_simulated(why));
        return found;
    }
    match simulate(root, config, facts.is_service_node()) {
        Ok(Simulated::Offline(why)) => {
            crate::base::forecast::record_unpack(Err(format!("no network: {why}")));
            found.push(not_simulated(format!("no network: {why}")))
        }
        Ok(Simulated::Done {
            failures,
            actions,
            switch,
        }) => {
            log::info!(
                "dist-upgrade simulated: {} package action(s), {} failed source(s){}",
                actions.as_ref().map_or(0, Vec::len),
                failures.len(),
                if actions.is_err() {
                    ", apt-get -s dist-upgrade failed"
                } else {
                    ""
                }
            );
            found.extend(failure_findings(&failures));
            match actions {
                Ok(actions) => found.extend(simulation_findings(
                    &actions,
                    packages,
                    &release.suite_to,
                    &switch,
                )),
                Err(errors) => found.push(Finding::inhibitor(
                    "dist-upgrade-fails",
                    "apt-get -s dist-upgrade fails with the new sources",
                    errors,
                    "resolve what APT reports (often a package of a third-party source with no build for the new release), then check again",
                )),
            }
        }
        Err(e) => found.push(Finding::new(
            "dist-upgrade-not-simulated",
            Severity::Low,
            "the dist-upgrade could not be simulated",
            format!("{e:#}"),
            "check that apt-get runs; holds and pins were checked",
        )),
    }
    found
}

/// What the simulation saw.
#[derive(Debug)]
pub enum Simulated {
    /// No source could be reached at all: no network (the reasons).
    Offline(String),
    /// The update ran; its failures, and the dist-upgrade's actions (or the
    /// error lines of a dist-upgrade that fails).
    Done {
        /// Sources that failed to download.
        failures: Vec<Failure>,
        /// The dist-upgrade's actions, or why it fails.
        actions: std::result::Result<Vec<Action>, String>,
        /// The switch to systemd-sysv after a dist-upgrade that keeps sysvinit.
        switch: Switch,
    },
}

/// The switch to systemd-sysv that `dist-upgrade` asks for after a release
/// that keeps sysvinit (`[dist_upgrade] switch_to_systemd`), as simulated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Switch {
    /// Not asked for: switched off, or the dist-upgrade installs systemd-sysv.
    NotAsked,
    /// APT would install systemd-sysv.
    Possible,
    /// APT refuses it (its error lines, or what it would do instead).
    Fails(String),
}

/// The scratch APT state of the sources as prepare will leave them (see the
/// module doc): its directory, removed when dropped, and the `apt-get`
/// options that point APT at it (and at the node's dpkg status and
/// `/etc/apt/preferences`). The node's own APT configuration (`apt.conf`,
/// `apt.conf.d`: a proxy, for example) still applies: only these options
/// are given.
#[derive(Debug)]
pub struct ScratchApt {
    scratch: fsx::Scratch,
    options: Vec<String>,
}

/// What `apt-get update` into a [`ScratchApt`] got.
#[derive(Debug)]
pub enum Updated {
    /// No source could be reached at all: no network (the reasons).
    Offline(String),
    /// The lists were fetched; the sources that failed (none: all of them).
    Fetched(Vec<Failure>),
}

impl ScratchApt {
    /// Builds the scratch state for the node under `root` (`service_node`:
    /// it gets the jessie-backports line and the gevent pin, as prepare adds them).
    pub fn new(root: &Root, config: &Config, service_node: bool) -> Result<ScratchApt> {
        let release = &config.release;
        let (from, to) = (release.suite_from.as_str(), release.suite_to.as_str());
        let scratch = fsx::Scratch::new("aptsim")?;
        // The sources as prepare's apt-sources and apt-config steps will leave them.
        for (path, deb822) in apt::source_files(root) {
            let text = fsx::read_text(root, &path)?;
            let text = apt::rewrite(&text, deb822, from, to).map_or(text, |new| new.text);
            let rel = if path == Path::new(paths::APT_SOURCES_LIST) {
                "sources.list".to_string()
            } else {
                format!(
                    "sources.list.d/{}",
                    path.file_name()
                        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
                )
            };
            scratch.write(&rel, text.as_bytes())?;
        }
        if service_node {
            if let apt::Backports::Add(line) = apt::backports_source(root, from, to)? {
                scratch.write(
                    "sources.list.d/synnefo-upgrade-backports.list",
                    line.as_bytes(),
                )?;
            }
        }
        // The node's preferences and preferences.d (copies: APT never opens
        // a node file we skipped, a FIFO say), and the gevent pin prepare adds.
        scratch.dir("preferences.d")?;
        for (path, text) in preference_files(root) {
            if path == Path::new(PREFERENCES) {
                scratch.write("preferences", text.as_bytes())?;
            } else if path.starts_with(PREFERENCES_DIR) {
                let name = path
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
                scratch.write(&format!("preferences.d/{name}"), text.as_bytes())?;
            }
        }
        let pin_name = Path::new(apt::PIN_FILE)
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        if !root.path(apt::PIN_FILE).exists() {
            scratch.write(
                &format!("preferences.d/{pin_name}"),
                apt::PIN_TEXT.as_bytes(),
            )?;
        }
        scratch.dir("sources.list.d")?;
        scratch.dir("lists/partial")?;
        scratch.dir("cache/archives/partial")?;
        let at = |rel: &str| scratch.path().join(rel).to_string_lossy().into_owned();
        let options = vec![
            format!("Dir::Etc::SourceList={}", at("sources.list")),
            format!("Dir::Etc::SourceParts={}", at("sources.list.d")),
            format!("Dir::Etc::Preferences={}", at("preferences")),
            format!("Dir::Etc::PreferencesParts={}", at("preferences.d")),
            format!("Dir::State::Lists={}", at("lists")),
            format!("Dir::Cache={}", at("cache")),
            format!(
                "Dir::State::status={}",
                root.path(dpkg::STATUS_FILE).display()
            ),
            "Debug::NoLocking=1".to_string(),
            // The scratch directory is root's, mode 0700: no download sandbox user.
            "APT::Sandbox::User=root".to_string(),
            "Acquire::Languages=none".to_string(),
            "Acquire::Retries=0".to_string(),
            "Acquire::http::Timeout=30".to_string(),
            "Acquire::ftp::Timeout=30".to_string(),
        ];
        Ok(ScratchApt { scratch, options })
    }

    /// `apt-get update` into the scratch lists.
    pub fn update(&self, root: &Root) -> Result<Updated> {
        let update = apt_get(root, &self.options, &["update"], TIMEOUT_SECS)?;
        let update_text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&update.stdout),
            String::from_utf8_lossy(&update.stderr)
        );
        let failures = parse_update_failures(&update_text);
        if !failures.is_empty()
            && failures.iter().all(Failure::is_network)
            && !fetched_any(&self.scratch.path().join("lists"))
        {
            let reasons: Vec<String> = failures
                .iter()
                .map(|f| format!("{}: {}", f.url, f.reason))
                .collect();
            return Ok(Updated::Offline(reasons.join("; ")));
        }
        Ok(Updated::Fetched(failures))
    }
}

/// The error lines of a failed `apt-get` run (at most 20), or its status.
fn error_lines(out: &std::process::Output, what: &str) -> String {
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    let errors: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("E: ") || l.starts_with(' ') || l.contains("Depends:"))
        .take(20)
        .collect();
    if errors.is_empty() {
        format!("{what} exited with {}", out.status)
    } else {
        errors.join("; ")
    }
}

/// Runs the simulation for the node under `root` (see the module doc).
pub fn simulate(root: &Root, config: &Config, service_node: bool) -> Result<Simulated> {
    let apt = ScratchApt::new(root, config, service_node)?;
    let failures = match apt.update(root)? {
        Updated::Offline(why) => return Ok(Simulated::Offline(why)),
        Updated::Fetched(failures) => failures,
    };
    let sim = apt_get(root, &apt.options, &["-s", "dist-upgrade"], TIMEOUT_SECS)?;
    let actions = if sim.status.success() {
        Ok(parse_simulation(&String::from_utf8_lossy(&sim.stdout)))
    } else {
        Err(error_lines(&sim, "apt-get -s dist-upgrade"))
    };
    // The forecast: the installed size of what is unpacked, from the same lists.
    crate::base::forecast::record_unpack(match &actions {
        Ok(actions) => Ok(unpack_sizes(root, &apt, actions)),
        Err(e) => Err(format!("apt-get -s dist-upgrade fails: {e}")),
    });
    let packages = dpkg::present_packages(root)?;
    let switch = match &actions {
        Ok(actions)
            if config.dist_upgrade.switch_to_systemd
                && final_version(actions, &packages, SYSTEMD_SYSV).is_none() =>
        {
            simulate_switch(root, &apt, &packages)?
        }
        _ => Switch::NotAsked,
    };
    Ok(Simulated::Done {
        failures,
        actions,
        switch,
    })
}

/// Asks APT, in the scratch state, for the switch to systemd-sysv that
/// `dist-upgrade` runs after a release that keeps sysvinit. It is asked of
/// the node as it is now, before the dist-upgrade: what refuses it then (a
/// pin against systemd-sysv, a hold of sysvinit-core, no systemd-sysv in the
/// sources) refuses it after.
fn simulate_switch(root: &Root, apt: &ScratchApt, packages: &[Package]) -> Result<Switch> {
    let args = apt::systemd_switch_args(packages, &[]);
    let mut argv = vec!["-s"];
    argv.extend(args.iter().map(String::as_str));
    let sim = apt_get(root, &apt.options, &argv, TIMEOUT_SECS)?;
    let shown = format!("apt-get {}", args.join(" "));
    if !sim.status.success() {
        return Ok(Switch::Fails(error_lines(&sim, &shown)));
    }
    let actions = parse_simulation(&String::from_utf8_lossy(&sim.stdout));
    Ok(
        if final_version(&actions, packages, SYSTEMD_SYSV).is_some() {
            Switch::Possible
        } else {
            Switch::Fails(format!("{shown} would not install it"))
        },
    )
}

/// The packages `actions` unpack and their size (`apt-cache show` of each
/// `package=version` in the scratch state; a package it does not show
/// counts as of unknown size).
fn unpack_sizes(
    root: &Root,
    apt: &ScratchApt,
    actions: &[Action],
) -> crate::base::forecast::Unpack {
    let args = show_args(actions);
    let mut text = String::new();
    if !args.is_empty() {
        let mut argv: Vec<&str> = vec!["show"];
        argv.extend(args.iter().map(String::as_str));
        match apt_tool(root, "apt-cache", &apt.options, &argv, TIMEOUT_SECS) {
            Ok(out) => text = String::from_utf8_lossy(&out.stdout).into_owned(),
            Err(e) => log::warn!("apt-cache show for the forecast: {e:#}"),
        }
    }
    unpack(actions, &parse_installed_sizes(&text))
}

/// `Installed-Size` (KiB) of each `(package, version)` in `apt-cache show`
/// output (stanzas separated by blank lines). Never panics.
pub fn parse_installed_sizes(text: &str) -> HashMap<(String, String), u64> {
    let mut sizes = HashMap::new();
    for stanza in text.split("\n\n") {
        let mut package = None;
        let mut version = None;
        let mut size = None;
        for line in stanza.lines() {
            if let Some((key, value)) = line.split_once(':') {
                let value = value.trim();
                match key {
                    "Package" => package = Some(value.split(':').next().unwrap_or(value)),
                    "Version" => version = Some(value),
                    "Installed-Size" => size = value.parse::<u64>().ok(),
                    _ => {}
                }
            }
        }
        if let (Some(p), Some(v), Some(s)) = (package, version, size) {
            sizes.insert((p.to_string(), v.to_string()), s);
        }
    }
    sizes
}

/// The packages the simulated dist-upgrade unpacks and their size.
pub fn unpack(
    actions: &[Action],
    sizes: &HashMap<(String, String), u64>,
) -> crate::base::forecast::Unpack {
    use crate::base::forecast::PackageAction;
    let mut out = crate::base::forecast::Unpack {
        packages: 0,
        kib: 0,
        unknown: 0,
        actions: Vec::new(),
    };
    for action in actions {
        match action {
            Action::Inst { package, old, new } => {
                out.packages += 1;
                match sizes.get(&(package.clone(), new.clone())) {
                    Some(kib) => out.kib += kib,
                    None => out.unknown += 1,
                }
                out.actions.push(PackageAction {
                    package: package.clone(),
                    action: if old.is_some() { "upgrade" } else { "install" },
                    from: old.clone(),
                    to: Some(new.clone()),
                });
            }
            Action::Remv { package } => out.actions.push(PackageAction {
                package: package.clone(),
                action: "remove",
                from: None,
                to: None,
            }),
            Action::Conf { .. } => {}
        }
    }
    out
}

/// The `pkg=version` arguments for `apt-cache show` of what is unpacked.
pub fn show_args(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Inst { package, new, .. } => Some(format!("{package}={new}")),
            _ => None,
        })
        .collect()
}

/// The `.deb` files in `dir` and their sizes.
fn debs(dir: &Path) -> Vec<(std::ffi::OsString, u64)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "deb"))
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            meta.is_file().then(|| (e.file_name(), meta.len()))
        })
        .collect()
}

/// What [`download`] fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    /// Packages fetched by this run.
    pub packages: usize,
    /// Their size in bytes.
    pub bytes: u64,
    /// Packages that were in the archive cache already and are still there.
    pub cached: usize,
}

/// `prepare --download-only`: fetches every package the dist-upgrade with
/// the rewritten sources needs into the node's own archive cache
/// ([`ARCHIVES`]), through the scratch state of the simulation
/// ([`ScratchApt`]): the node's sources, lists and tool state are not
/// touched, and after prepare has switched the sources the real
/// `apt-get update && apt-get dist-upgrade` finds the packages there. A
/// source that fails to download, or a package that does, is an error naming
/// the URL.
pub fn download(root: &Root, config: &Config, service_node: bool) -> Result<Downloaded> {
    let apt = ScratchApt::new(root, config, service_node)?;
    let failures = match apt.update(root)? {
        Updated::Offline(why) => anyhow::bail!(
            "no source of the new release could be reached (no network?): {why}; nothing was downloaded"
        ),
        Updated::Fetched(failures) => failures,
    };
    if !failures.is_empty() {
        anyhow::bail!(
            "'apt-get update' of the rewritten sources failed for {}; fix or remove the source line, then run this again (nothing was downloaded)",
            named(&failures)
        );
    }
    let archives = root.path(ARCHIVES);
    let before = debs(&archives);
    let mut options = apt.options.clone();
    options.push(format!("Dir::Cache::Archives={}/", archives.display()));
    let out = apt_get(
        root,
        &options,
        &["-y", "--download-only", "dist-upgrade"],
        DOWNLOAD_TIMEOUT_SECS,
    )?;
    if !out.status.success() {
        let text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let failures = parse_update_failures(&text);
        if failures.is_empty() {
            anyhow::bail!(
                "'apt-get dist-upgrade --download-only' with the rewritten sources failed: {}",
                error_lines(&out, "apt-get dist-upgrade --download-only")
            );
        }
        anyhow::bail!(
            "'apt-get dist-upgrade --download-only' failed to fetch {}; what was fetched stays in {ARCHIVES}: run this again once the source answers",
            named(&failures)
        );
    }
    let after = debs(&archives);
    let new: Vec<&(std::ffi::OsString, u64)> =
        after.iter().filter(|d| !before.contains(d)).collect();
    Ok(Downloaded {
        packages: new.len(),
        bytes: new.iter().map(|(_, size)| size).sum(),
        cached: after.len() - new.len(),
    })
}

/// `URL (REASON), …` of `failures`.
fn named(failures: &[Failure]) -> String {
    failures
        .iter()
        .map(|f| {
            if f.reason.is_empty() {
                f.url.clone()
            } else {
                format!("{} ({})", f.url, f.reason)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs `apt-get -o OPTION… ARGS` in the C locale, under coreutils'
/// `timeout` when the node has it.
fn apt_get(
    root: &Root,
    options: &[String],
    args: &[&str],
    timeout_secs: u64,
) -> Result<std::process::Output> {
    apt_tool(root, "apt-get", options, args, timeout_secs)
}

/// Runs APT's `program` (`apt-get`, `apt-cache`) like [`apt_get`].
fn apt_tool(
    root: &Root,
    program: &str,
    options: &[String],
    args: &[&str],
    timeout_secs: u64,
) -> Result<std::process::Output> {
    let apt_get = exec::find(root, program)?;
    let apt_get = apt_get.to_string_lossy().into_owned();
    let timeout = exec::find(root, "timeout")
        .ok()
        .map(|t| t.to_string_lossy().into_owned());
    let secs = timeout_secs.to_string();
    let mut argv: Vec<&str> = Vec::new();
    if let Some(t) = &timeout {
        argv.extend([t.as_str(), secs.as_str()]);
    }
    argv.push(&apt_get);
    for option in options {
        argv.extend(["-o", option.as_str()]);
    }
    argv.extend(args);
    let out = exec::run_output(
        &argv,
        &[("LC_ALL", "C"), ("DEBIAN_FRONTEND", "noninteractive")],
    )?;
    if timeout.is_some() && out.status.code() == Some(124) {
        anyhow::bail!(
            "'apt-get {}' did not finish within {timeout_secs} s",
            args.join(" ")
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `apt-cache show` output as APT prints it (fields trimmed to the point).
    const SHOW: &str = "Package: snf-common\nVersion: 0.19-1~jessie\nInstalled-Size: 1200\nMaintainer: x\n\nPackage: systemd-sysv\nVersion: 215-17+deb8u7\nInstalled-Size: 120\n\nPackage: libc6:amd64\nVersion: 2.19-18\nInstalled-Size: 10000\n\nPackage: broken\nVersion: 1\nInstalled-Size: many\n";

    fn inst(package: &str, new: &str) -> Action {
        Action::Inst {
            package: package.into(),
            old: None,
            new: new.into(),
        }
    }

    #[test]
    fn installed_sizes_by_package_and_version() {
        let sizes = parse_installed_sizes(SHOW);
        assert_eq!(sizes.len(), 3);
        assert_eq!(
            sizes[&("snf-common".to_string(), "0.19-1~jessie".to_string())],
            1200
        );
        assert_eq!(sizes[&("libc6".to_string(), "2.19-18".to_string())], 10000);
    }

    #[test]
    fn unpack_counts_inst_lines_and_sums_their_sizes() {
        let actions = parse_simulation(
            "Inst snf-common [0.18.1-1~wheezy] (0.19-1~jessie Synnefo:jessie [all])\n\
             Inst systemd-sysv (215-17+deb8u7 Debian:8 [amd64])\n\
             Inst libc6:amd64 [2.13-38] (2.19-18 Debian:8 [amd64])\n\
             Inst other (3 Debian:8 [amd64])\n\
             Conf snf-common (0.19-1~jessie Synnefo:jessie [all])\n\
             Remv sysvinit [2.88]\n",
        );
        let u = unpack(&actions, &parse_installed_sizes(SHOW));
        assert_eq!((u.packages, u.kib, u.unknown), (4, 11320, 1));
        // The transaction, as check --json shows it: one entry per Inst and
        // Remv line, in APT's order; Conf lines are not actions of their own.
        let listed: Vec<(&str, &str, Option<&str>, Option<&str>)> = u
            .actions
            .iter()
            .map(|a| {
                (
                    a.package.as_str(),
                    a.action,
                    a.from.as_deref(),
                    a.to.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            listed,
            [
                (
                    "snf-common",
                    "upgrade",
                    Some("0.18.1-1~wheezy"),
                    Some("0.19-1~jessie")
                ),
                ("systemd-sysv", "install", None, Some("215-17+deb8u7")),
                ("libc6", "upgrade", Some("2.13-38"), Some("2.19-18")),
                ("other", "install", None, Some("3")),
                ("sysvinit", "remove", None, None),
            ]
        );
        assert_eq!(
            show_args(&actions),
            [
                "snf-common=0.19-1~jessie",
                "systemd-sysv=215-17+deb8u7",
                "libc6=2.19-18",
                "other=3"
            ]
        );
        // Nothing to unpack.
        assert_eq!(unpack(&[inst("a", "1")][..0], &HashMap::new()).packages, 0);
    }

    fn status(text: &str) -> Vec<Package> {
        dpkg::parse_status(text)
    }

    fn pkg(name: &str, version: &str, want: &str, source: &str) -> String {
        format!(
            "Package: {name}\nStatus: {want} ok installed\nSource: {source}\nVersion: {version}\n"
        )
    }

    /// A wheezy Synnefo node's status, gevent and sysvinit included.
    fn wheezy_node(hold: &str) -> Vec<Package> {
        let want = |n: &str| if n == hold { "hold" } else { "install" };
        status(
            &[
                pkg(
                    "snf-common",
                    "0.18.1-1~wheezy",
                    want("snf-common"),
                    "synnefo",
                ),
                pkg(
                    "snf-cyclades-app",
                    "0.18.1-1~wheezy",
                    want("snf-cyclades-app"),
                    "synnefo",
                ),
                pkg(
                    "sysvinit",
                    "2.88dsf-41+deb7u1",
                    want("sysvinit"),
                    "sysvinit",
                ),
                pkg(
                    "python-gevent",
                    "0.13.6-1+nmu3",
                    want("python-gevent"),
                    "gevent",
                ),
                pkg(
                    "python-greenlet",
                    "0.3.1-2.5",
                    want("python-greenlet"),
                    "python-greenlet",
                ),
            ]
            .join("\n"),
        )
    }

    /// Lines as apt 2.6 prints them on this machine (`apt-get -s dist-upgrade`,
    /// `apt-get -s install hello`, `apt-get -s remove dpkg-dev`), and as
    /// wheezy's apt 0.9.7 does (no `:arch` on names, one suite).
    const SIMULATION: &str = "\
Reading package lists...
Building dependency tree...
Reading state information...
Calculating upgrade...
The following packages will be upgraded:
  base-files bash
Inst base-files [12.4+deb12u11] (12.4+deb12u15 Debian:12.15/oldstable [amd64])
Conf base-files (12.4+deb12u15 Debian:12.15/oldstable [amd64])
Inst libpam-modules-bin [1.5.2-6+deb12u1] (1.5.2-6+deb12u3 Debian-Security:12/oldstable-security [amd64]) [libpam-modules:amd64 on libpam-modules-bin:amd64] [libpam-modules:amd64 ]
Inst hello (2.10-3 Debian:12.15/oldstable [amd64])
Conf hello (2.10-3 Debian:12.15/oldstable [amd64])
Remv dpkg-dev [1.21.23] [lintian:amd64 ]
Remv lintian [2.116.3+deb12u1]
Inst login:amd64 [1:4.13+dfsg1-1+deb12u1] (1:4.13+dfsg1-1+deb12u2 Debian:12.15/oldstable [amd64])
Inst snf-common [0.18.1-1~wheezy] (0.19-1~jessie localhost:jessie [all])
Inst systemd-sysv (215-17+deb8u7 Debian:8.11/oldstable [amd64])
1 upgraded, 1 newly installed, 2 to remove and 0 not upgraded.
";

    #[test]
    fn simulation_lines_of_apt_2_6_and_wheezy() {
        let actions = parse_simulation(SIMULATION);
        assert_eq!(actions.len(), 10, "{actions:#?}");
        assert_eq!(
            actions[0],
            Action::Inst {
                package: "base-files".into(),
                old: Some("12.4+deb12u11".into()),
                new: "12.4+deb12u15".into()
            }
        );
        assert_eq!(
            actions[1],
            Action::Conf {
                package: "base-files".into(),
                version: "12.4+deb12u15".into()
            }
        );
        assert_eq!(
            actions[3],
            Action::Inst {
                package: "hello".into(),
                old: None,
                new: "2.10-3".into()
            }
        );
        assert_eq!(
            actions[5],
            Action::Remv {
                package: "dpkg-dev".into()
            }
        );
        assert_eq!(
            actions[7],
            Action::Inst {
                package: "login".into(),
                old: Some("1:4.13+dfsg1-1+deb12u1".into()),
                new: "1:4.13+dfsg1-1+deb12u2".into()
            }
        );
        let installed = status(&pkg("dpkg-dev", "1.21.23", "install", "dpkg"));
        assert_eq!(final_version(&actions, &installed, "dpkg-dev"), None);
        assert_eq!(
            final_version(&actions, &installed, "hello").as_deref(),
            Some("2.10-3")
        );
        assert_eq!(final_version(&actions, &installed, "absent"), None);
    }

    #[test]
    fn a_complete_upgrade_has_no_finding() {
        let node = wheezy_node("");
        let sim = "\
Inst snf-common [0.18.1-1~wheezy] (0.19-1~jessie localhost:jessie [all])
Inst snf-cyclades-app [0.18.1-1~wheezy] (0.19-1~jessie localhost:jessie [all])
Inst systemd-sysv (215-17+deb8u7 Debian:8.11/oldstable [amd64])
Inst python-gevent [0.13.6-1+nmu3] (1.1.1-2~bpo8+1 Debian Backports:jessie-backports [amd64])
Inst python-greenlet [0.3.1-2.5] (0.4.10-1~bpo8+1 Debian Backports:jessie-backports [amd64])
";
        let found = simulation_findings(&parse_simulation(sim), &node, "jessie", &Switch::NotAsked);
        assert!(found.is_empty(), "{found:#?}");
    }

    #[test]
    fn synnefo_kept_or_removed_no_systemd_old_gevent_inhibit() {
        let node = wheezy_node("");
        // snf-common not upgraded (held or pinned), snf-cyclades-app removed,
        // no systemd-sysv, jessie's gevent 1.0.1 (no backports).
        let sim = "\
Remv snf-cyclades-app [0.18.1-1~wheezy]
Inst python-gevent [0.13.6-1+nmu3] (1.0.1-2 Debian:8.11/oldstable [amd64])
Inst python-greenlet [0.3.1-2.5] (0.4.10-1~bpo8+1 Debian Backports:jessie-backports [amd64])
Inst sysvinit [2.88dsf-41+deb7u1] (2.88dsf-59 Debian:8.11/oldstable [amd64])
";
        let found = simulation_findings(&parse_simulation(sim), &node, "jessie", &Switch::NotAsked);
        let ids: Vec<&str> = found.iter().map(|f| f.id).collect();
        assert_eq!(
            ids,
            [
                "dist-upgrade-synnefo-removed",
                "dist-upgrade-synnefo-kept",
                "dist-upgrade-no-systemd",
                "dist-upgrade-gevent"
            ]
        );
        assert!(found.iter().all(|f| f.inhibitor));
        assert!(
            found[0].title.contains("snf-cyclades-app"),
            "{}",
            found[0].title
        );
        assert!(
            found[1].title.contains("snf-common 0.18.1-1~wheezy"),
            "{}",
            found[1].title
        );
        assert!(
            found[3].title.contains("python-gevent at 1.0.1-2"),
            "{}",
            found[3].title
        );
        // GRNET's own build qualifies, compared the dpkg way.
        let grnet =
            "Inst python-gevent [0.13.6-1+nmu3] (1.1.1-1~0bpo80~grnet1 grnet:jessie [amd64])\n";
        let found =
            simulation_findings(&parse_simulation(grnet), &node, "jessie", &Switch::NotAsked);
        assert!(
            !found.iter().any(|f| f.title.contains("python-gevent")),
            "{found:#?}"
        );
    }

    #[test]
    fn a_release_that_keeps_sysvinit_is_a_notice_where_dist_upgrade_switches() {
        let node = wheezy_node("");
        // trixie's dist-upgrade: sysvinit-core upgraded, no systemd-sysv.
        let sim = "\
Inst snf-common [0.18.1-1~wheezy] (0.19-1~jessie localhost [all])
Inst snf-cyclades-app [0.18.1-1~wheezy] (0.19-1~jessie localhost [all])
Inst sysvinit-core [3.06-4] (3.14-4 Debian:13.8/stable [amd64])
Inst systemd (257.13-1~deb13u1 Debian:13.8/stable [amd64])
";
        let actions = parse_simulation(sim);
        // The one init finding (the fixture node's old gevent is told apart:
        // not this test's).
        let init = |switch: &Switch| {
            let found = simulation_findings(&actions, &node, "trixie", switch);
            let init: Vec<Finding> = found
                .into_iter()
                .filter(|f| f.id != "dist-upgrade-gevent")
                .collect();
            assert_eq!(init.len(), 1, "{init:#?}");
            init.into_iter().next().expect("one finding")
        };
        // `synnefo-upgrade dist-upgrade` asks for the switch: told, not an inhibitor.
        let told = init(&Switch::Possible);
        assert_eq!(told.id, "dist-upgrade-keeps-sysvinit");
        assert!(!told.inhibitor);
        assert_eq!(told.remediation.commands, ["apt-get install systemd-sysv"]);
        // Where APT refuses the switch, or without it, the node would boot
        // sysvinit: an inhibitor, which names APT's refusal.
        let refused = init(&Switch::Fails(
            "E: Package 'systemd-sysv' has no installation candidate".into(),
        ));
        assert_eq!(refused.id, "dist-upgrade-no-systemd");
        assert!(refused.inhibitor);
        assert!(
            refused.summary.contains("has no installation candidate"),
            "{refused:#?}"
        );
        let off = init(&Switch::NotAsked);
        assert_eq!(off.id, "dist-upgrade-no-systemd");
        assert!(off.inhibitor);
    }

    #[test]
    fn update_failures_of_apt_2_6_and_wheezy_name_the_url() {
        // apt 2.6, produced on this machine (a file: repository without the
        // suite, an http archive without it).
        let new = "\
Get:1 file:/tmp/nonexistent-repo jessie InRelease
Ign:1 file:/tmp/nonexistent-repo jessie InRelease
Err:3 file:/tmp/nonexistent-repo jessie/main amd64 Packages
  File not found - /tmp/nonexistent-repo/dists/jessie/main/binary-amd64/Packages (2: No such file or directory)
Err:8 http://deb.debian.org/debian jessie Release
  404  Not Found [IP: 203.0.113.80 80]
Reading package lists...
E: The repository 'http://deb.debian.org/debian jessie Release' does not have a Release file.
";
        let failures = parse_update_failures(new);
        assert_eq!(
            failures,
            [
                Failure {
                    url: "file:/tmp/nonexistent-repo jessie/main amd64 Packages".into(),
                    reason: "File not found - /tmp/nonexistent-repo/dists/jessie/main/binary-amd64/Packages (2: No such file or directory)".into()
                },
                Failure {
                    url: "http://deb.debian.org/debian jessie Release".into(),
                    reason: "404  Not Found [IP: 203.0.113.80 80]".into()
                },
            ]
        );
        assert!(!failures.iter().any(Failure::is_network));
        // wheezy's apt 0.9.7: the full URL in `W: Failed to fetch`.
        let old = "\
Hit http://security.debian.org jessie/updates Release.gpg
Err http://ftp.gr.debian.org jessie/main amd64 Packages
  404  Not Found [IP: 195.251.29.244 80]
Err http://apt.dev.grnet.gr jessie/ Release.gpg
  Could not resolve 'apt.dev.grnet.gr'
W: Failed to fetch http://ftp.gr.debian.org/debian/dists/jessie/main/binary-amd64/Packages  404  Not Found [IP: 195.251.29.244 80]

W: Failed to fetch http://apt.dev.grnet.gr/jessie/Release.gpg  Could not resolve 'apt.dev.grnet.gr'

E: Some index files failed to download. They have been ignored, or old ones used instead.
";
        let failures = parse_update_failures(old);
        let urls: Vec<&str> = failures.iter().map(|f| f.url.as_str()).collect();
        assert_eq!(
            urls,
            [
                "http://ftp.gr.debian.org/debian/dists/jessie/main/binary-amd64/Packages",
                "http://apt.dev.grnet.gr/jessie/Release.gpg"
            ]
        );
        assert!(!failures[0].is_network());
        assert!(failures[1].is_network());
        // A source whose signature cannot be checked is not used either.
        let gpg = "W: GPG error: http://apt.dev.grnet.gr jessie/ Release: The following signatures couldn't be verified because the public key is not available: NO_PUBKEY 0123456789ABCDEF\n";
        assert_eq!(
            parse_update_failures(gpg),
            [Failure {
                url: "http://apt.dev.grnet.gr jessie/".into(),
                reason: "GPG error: The following signatures couldn't be verified because the public key is not available: NO_PUBKEY 0123456789ABCDEF".into()
            }]
        );
        let found = failure_findings(&failures);
        assert!(found[0].inhibitor && found[0].id == "dist-upgrade-source-failed");
        assert!(found[0].title.contains("binary-amd64/Packages"));
    }

    #[test]
    fn preferences_stanzas_comments_and_bad_priorities() {
        let text = "\
# keep our build
Explanation: local build
Package: snf-common snf-webproject
Pin: version 0.18.1*
Pin-Priority: 1001

Package: systemd-sysv
Pin: release o=Debian
Pin-Priority: -1

Package: broken
Pin: version 1
Pin-Priority: high
";
        let pins = parse_preferences(text);
        assert_eq!(
            pins,
            [
                Pin {
                    line: 2,
                    packages: vec!["snf-common".into(), "snf-webproject".into()],
                    pin: "version 0.18.1*".into(),
                    priority: 1001
                },
                Pin {
                    line: 7,
                    packages: vec!["systemd-sysv".into()],
                    pin: "release o=Debian".into(),
                    priority: -1
                },
            ]
        );
    }

    fn problem(text: &str) -> Option<String> {
        let pins = parse_preferences(text);
        assert_eq!(pins.len(), 1, "{text}");
        pin_problem(&pins[0], &["snf-common".to_string()], "wheezy")
    }

    #[test]
    fn pins_that_defeat_the_upgrade_and_pins_that_do_not() {
        // Synnefo kept on an old version or on the old release.
        assert!(
            problem("Package: snf-common\nPin: version 0.18.1*\nPin-Priority: 1001\n").is_some()
        );
        assert!(problem("Package: snf-*\nPin: version 0.18*\nPin-Priority: 600\n").is_some());
        assert!(problem("Package: *\nPin: release n=wheezy\nPin-Priority: 900\n").is_some());
        assert!(
            problem("Package: snf-common\nPin: release o=GRNET\nPin-Priority: -10\n").is_some()
        );
        // The guide's gevent pin, a pin to 0.19, the old release below 500, or
        // a negative pin on the old release: harmless.
        assert!(
            problem("Package: python-gevent\nPin: version 1.1.1-2*\nPin-Priority: 990\n").is_none()
        );
        assert!(problem("Package: snf-common\nPin: version 0.19*\nPin-Priority: 1001\n").is_none());
        assert!(problem("Package: *\nPin: release n=wheezy\nPin-Priority: 100\n").is_none());
        assert!(
            problem("Package: snf-common\nPin: release n=wheezy\nPin-Priority: -1\n").is_none()
        );
        // systemd-sysv forbidden, sysvinit kept.
        let why = problem("Package: systemd-sysv\nPin: release *\nPin-Priority: -1\n").unwrap();
        assert!(why.contains("finish unit would never run"), "{why}");
        assert!(problem("Package: sysvinit-core\nPin: release *\nPin-Priority: 1001\n").is_some());
        assert!(problem("Package: sysvinit\nPin: release n=wheezy\nPin-Priority: 990\n").is_some());
        assert!(problem("Package: sysvinit-core\nPin: release *\nPin-Priority: 500\n").is_none());
    }

    #[test]
    fn pin_findings_name_file_and_line() {
        let files = vec![(
            PathBuf::from("/etc/apt/preferences.d/local"),
            "Package: python-gevent\nPin: version 1.1.1-2*\nPin-Priority: 990\n\nPackage: snf-cyclades-app\nPin: version 0.18.1-1~wheezy\nPin-Priority: 1001\n".to_string(),
        )];
        let found = pin_findings(&files, &wheezy_node(""), "wheezy");
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(found[0].inhibitor && found[0].id == "apt-pin");
        assert!(
            found[0]
                .title
                .starts_with("/etc/apt/preferences.d/local:5:"),
            "{}",
            found[0].title
        );
    }

    #[test]
    fn dpkg_holds_of_synnefo_sysvinit_and_old_gevent_inhibit() {
        assert!(hold_findings(&wheezy_node("")).is_empty());
        for held in ["snf-common", "sysvinit", "python-gevent"] {
            let found = hold_findings(&wheezy_node(held));
            assert_eq!(found.len(), 1, "{held}");
            assert_eq!(found[0].id, "dpkg-hold");
            assert!(found[0].title.contains(held));
            assert_eq!(
                found[0].remediation.commands,
                [format!("apt-mark unhold {held}")]
            );
        }
        // A hold elsewhere is the operator's business.
        let other = status("Package: vim\nStatus: hold ok installed\nVersion: 2:7.3.547-7\n");
        assert!(hold_findings(&other).is_empty());
    }

    #[test]
    fn globs() {
        assert!(glob_matches("*", "snf-common"));
        assert!(glob_matches("snf-*", "snf-common"));
        assert!(glob_matches("snf-?ommon", "snf-common"));
        assert!(!glob_matches("snf-*", "python-snf"));
        assert!(!glob_matches("/snf-.*/", "snf-common"));
    }
}
