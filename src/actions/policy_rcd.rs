//! policy-rc.d: the decision (Debian's `README.policy-rc.d` interface) and its
//! installation as `/usr/sbin/policy-rc.d`, a link to our binary.
//!
//! While armed, start-like actions of managed services are denied (101), both
//! for init script ids (`gunicorn`, from invoke-rc.d) and unit names
//! (`gunicorn.service`, from deb-systemd-invoke); `stop` and `status` are
//! allowed. A policy-rc.d that was there before is kept (as our backup of it)
//! and consulted for every other service. Each denial is appended to the ledger.
//!
//! It fails closed: while the node is armed, a state it cannot read means
//! deny for every service that may be managed ([`run`]).
//!
//! This runs on every service action of a dist-upgrade: it reads one small
//! file and does nothing else (the fallbacks run only when that file cannot
//! be read).

use anyhow::Result;
use std::path::Path;
use std::process::Command;

use crate::base::fsx::{self, Root};
use crate::base::paths;
use crate::base::state::State;
use crate::inputs::node::SYNNEFO_SERVICES;

/// Exit codes of the interface.
pub mod code {
    /// Action allowed.
    pub const ALLOW: i32 = 0;
    /// Unknown initscript id.
    pub const UNKNOWN_ID: i32 = 100;
    /// Action forbidden.
    pub const FORBIDDEN: i32 = 101;
    /// Syntax error.
    pub const SYNTAX: i32 = 103;
}

/// A parsed invocation.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    /// `--list ID [RUNLEVEL...]`.
    List {
        /// Service id.
        id: String,
    },
    /// `ID ACTIONS [RUNLEVEL]`.
    Decide {
        /// Service id (`gunicorn` or `gunicorn.service`).
        id: String,
        /// Actions, unwrapped from `(start)` forms.
        actions: Vec<String>,
        /// Runlevel, when given.
        runlevel: Option<String>,
    },
}

/// Parses `[--quiet] ID ACTIONS [RUNLEVEL]` or `[--quiet] --list ID [RUNLEVEL...]`.
pub fn parse(args: &[String]) -> Result<Request, String> {
    let mut list = false;
    let mut positional = Vec::new();
    for arg in args {
        match arg.as_str() {
            "--quiet" => {}
            "--list" => list = true,
            other if other.starts_with("--") => return Err(format!("unknown option '{other}'")),
            other => positional.push(other.to_string()),
        }
    }
    let mut positional = positional.into_iter();
    let id = positional.next().ok_or("missing initscript id")?;
    if list {
        return Ok(Request::List { id });
    }
    let actions: Vec<String> = positional
        .next()
        .ok_or("missing actions")?
        .split_whitespace()
        .map(|a| a.trim_start_matches('(').trim_end_matches(')').to_string())
        .collect();
    if actions.is_empty() {
        return Err("empty actions".into());
    }
    let runlevel = positional.next();
    if positional.next().is_some() {
        return Err("too many arguments".into());
    }
    Ok(Request::Decide {
        id,
        actions,
        runlevel,
    })
}

/// Whether `id` names one of `managed` (`gunicorn` or `gunicorn.service`).
pub fn is_managed<'a>(managed: impl IntoIterator<Item = &'a str>, id: &str) -> bool {
    let name = id.strip_suffix(".service").unwrap_or(id);
    managed.into_iter().any(|m| m == name)
}

/// Actions that never start anything.
fn harmless(action: &str) -> bool {
    matches!(action, "stop" | "force-stop" | "status")
}

/// The decision for a managed service: deny when any action may start it.
pub fn decide_managed(actions: &[String]) -> i32 {
    if actions.iter().all(|a| harmless(a)) {
        code::ALLOW
    } else {
        code::FORBIDDEN
    }
}

/// The reason recorded in the ledger for a denial made without a readable state.
pub const UNREADABLE_STATE: &str = "state-unreadable";

/// The line of the armed marker that lists the managed services (`prepare`'s
/// `arm` step writes it), for policy-rc.d to know them without the state.
const MARKER_MANAGED: &str = "managed:";

/// The armed marker's text: who wrote it and the managed services.
pub fn marker_text<'a>(managed: impl IntoIterator<Item = &'a str>) -> String {
    let names: Vec<&str> = managed.into_iter().collect();
    format!(
        "armed by synnefo-upgrade prepare\n{MARKER_MANAGED} {}\n",
        names.join(" ")
    )
}

/// Which services are managed, as far as policy-rc.d can tell.
enum Managed {
    /// Not armed: no state, no marker.
    Nothing,
    /// The services the state records.
    Recorded(State),
    /// The state could not be read (`why`) on a node that is armed or being
    /// armed: every service that may be managed (see [`may_be_managed`]).
    Unknown {
        why: anyhow::Error,
        names: Vec<String>,
    },
}

impl Managed {
    /// Reads the state; anything unreadable where state is expected is [`Managed::Unknown`].
    fn load(root: &Root) -> Managed {
        let why = match State::load(root) {
            Ok(Some(state)) => return Managed::Recorded(state),
            // No state and no marker: nothing is armed, allow as if we were not here.
            Ok(None) => match std::fs::symlink_metadata(root.path_nofollow(paths::ARMED_MARKER)) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Managed::Nothing,
                _ => anyhow::anyhow!(
                    "'{}' is missing while '{}' is there",
                    paths::STATE_FILE,
                    paths::ARMED_MARKER
                ),
            },
            Err(e) => e,
        };
        Managed::Unknown {
            why,
            names: may_be_managed(root),
        }
    }

    fn contains(&self, id: &str) -> bool {
        match self {
            Managed::Nothing => false,
            Managed::Recorded(state) => is_managed(state.managed(), id),
            Managed::Unknown { names, .. } => is_managed(names.iter().map(String::as_str), id),
        }
    }
}

/// Every service that may be managed when the state cannot tell: the Synnefo
/// services the tool knows, those the armed marker lists (the configuration
/// may name others) and those the ledger shows denied or stopped before.
fn may_be_managed(root: &Root) -> Vec<String> {
    let mut names: Vec<String> = SYNNEFO_SERVICES.iter().map(|s| s.to_string()).collect();
    let marker = fsx::read_own_text(root, paths::ARMED_MARKER)
        .ok()
        .flatten()
        .unwrap_or_default();
    let listed = marker
        .lines()
        .filter_map(|l| l.strip_prefix(MARKER_MANAGED))
        .flat_map(str::split_whitespace);
    // Ledger lines: `TIME ID ACTIONS RUNLEVEL [REASON]`.
    let ledger = fsx::read_own_text(root, paths::DENIED_LEDGER)
        .ok()
        .flatten()
        .unwrap_or_default();
    let denied = ledger.lines().filter_map(|l| l.split_whitespace().nth(1));
    for name in listed.chain(denied) {
        let name = name.strip_suffix(".service").unwrap_or(name);
        if !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    }
    names
}

/// Runs the decision for the node under `root` (`/` when invoked as policy-rc.d)
/// and returns the exit code.
///
/// Fails closed: on a node that is armed (or being armed) whose state cannot
/// be read (missing beside the armed marker, empty, truncated, hand-edited, of
/// a newer schema, a link, a FIFO, a directory, unreadable), start-like
/// actions of every service that may be managed are denied, each denial says
/// why on stderr and is recorded with the reason [`UNREADABLE_STATE`]; other
/// services are still decided by the previous policy.
pub fn run(root: &Root, args: &[String]) -> i32 {
    let request = match parse(args) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("policy-rc.d: {e}; usage: policy-rc.d [--quiet] ID ACTIONS [RUNLEVEL]");
            return code::SYNTAX;
        }
    };
    let managed = Managed::load(root);
    match request {
        Request::List { id } => {
            let verdict = match &managed {
                m if !m.contains(&id) => "not managed",
                Managed::Unknown { .. } => {
                    "may be managed (the state cannot be read): start, restart and reload denied"
                }
                _ => "managed: start, restart and reload denied",
            };
            println!("{id}: {verdict}");
            code::ALLOW
        }
        Request::Decide {
            id,
            actions,
            runlevel,
        } if managed.contains(&id) => {
            let verdict = decide_managed(&actions);
            if verdict == code::FORBIDDEN {
                let mut line = format!(
                    "{} {id} {} {}",
                    crate::base::clock::now(),
                    actions.join(","),
                    runlevel.as_deref().unwrap_or("-")
                );
                if let Managed::Unknown { why, names } = &managed {
                    line.push(' ');
                    line.push_str(UNREADABLE_STATE);
                    eprintln!(
                        "policy-rc.d: denied '{id} {}': the upgrade's state cannot be read ({why:#}); \
                         while the node is armed, starts of every service that may be managed ({}) are \
                         denied. Repair '{}' (undo a hand edit; for a newer schema install that newer \
                         synnefo-upgrade again), check it with 'synnefo-upgrade status', then run the \
                         action again; each such denial is recorded in '{}'",
                        actions.join(" "),
                        names.join(", "),
                        paths::STATE_FILE,
                        paths::DENIED_LEDGER
                    );
                }
                if let Err(e) = fsx::append_line(root, paths::DENIED_LEDGER, &line) {
                    eprintln!("policy-rc.d: {e:#}");
                }
            }
            verdict
        }
        Request::Decide { .. } => consult_previous(root, args),
    }
}

/// Set in the environment of the previous policy we run: a previous policy
/// that leads back to us (a link to our binary, a script calling
/// policy-rc.d) is not consulted again, so a decision never loops.
const CONSULTING: &str = "SYNNEFO_UPGRADE_CONSULTING_PREVIOUS_POLICY";

/// The answer of the policy-rc.d that was installed before ours, or allow.
///
/// It is run from what it designated where it was (a relative link is
/// followed from `/usr/sbin`, not from our backup directory), as
/// `/usr/sbin/policy-rc.d`; as invoke-rc.d does, a policy that is not an
/// executable file (a link that dangled before us too) means allow.
fn consult_previous(root: &Root, args: &[String]) -> i32 {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    if std::env::var_os(CONSULTING).is_some() {
        return code::ALLOW;
    }
    let previous = match fsx::backup_designates(root, Path::new(paths::POLICY_RCD)) {
        Ok(Some(previous)) => root.path(previous),
        Ok(None) => return code::ALLOW,
        Err(e) => {
            eprintln!("policy-rc.d: the previous policy-rc.d: {e:#}; it is not consulted");
            return code::ALLOW;
        }
    };
    let executable = std::fs::metadata(&previous)
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if !executable {
        return code::ALLOW;
    }
    match Command::new(&previous)
        .arg0(paths::POLICY_RCD)
        .args(args)
        .env(CONSULTING, "1")
        .status()
    {
        Ok(status) => status.code().unwrap_or(code::FORBIDDEN),
        Err(e) => {
            eprintln!(
                "policy-rc.d: running the previous policy '{}': {e}",
                previous.display()
            );
            code::FORBIDDEN
        }
    }
}

/// Whether our policy-rc.d is installed.
pub fn is_installed(root: &Root) -> bool {
    std::fs::read_link(root.path_nofollow(paths::POLICY_RCD))
        .is_ok_and(|t| t == Path::new(paths::BINARY))
}

/// Installs `/usr/sbin/policy-rc.d` as a link to our binary; an existing one is
/// backed up (and consulted for services we do not manage).
pub fn install(root: &Root) -> Result<()> {
    if is_installed(root) {
        return Ok(());
    }
    fsx::symlink(root, Path::new(paths::POLICY_RCD), Path::new(paths::BINARY))
}

/// Removes ours and puts back the previous one, byte for byte. Returns what
/// was done (`None`: ours was not installed).
pub fn remove(root: &Root) -> Result<Option<fsx::Undone>> {
    if !is_installed(root) {
        return Ok(None);
    }
    fsx::undo(root, Path::new(paths::POLICY_RCD)).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_every_documented_form() {
        assert_eq!(
            parse(&args(&["--quiet", "gunicorn", "(start)", "2"])).unwrap(),
            Request::Decide {
                id: "gunicorn".into(),
                actions: vec!["start".into()],
                runlevel: Some("2".into())
            }
        );
        assert_eq!(
            parse(&args(&["gunicorn.service", "stop start"])).unwrap(),
            Request::Decide {
                id: "gunicorn.service".into(),
                actions: vec!["stop".into(), "start".into()],
                runlevel: None
            }
        );
        assert_eq!(
            parse(&args(&["--list", "cron", "2", "3"])).unwrap(),
            Request::List { id: "cron".into() }
        );
        assert!(parse(&args(&["gunicorn"])).is_err());
        assert!(parse(&args(&[])).is_err());
        assert!(parse(&args(&["--frobnicate", "gunicorn", "start"])).is_err());
    }

    #[test]
    fn managed_ids_in_both_forms_and_start_like_actions_denied() {
        let managed = ["gunicorn", "archipelago"];
        assert!(is_managed(managed, "gunicorn"));
        assert!(is_managed(managed, "gunicorn.service"));
        assert!(!is_managed(managed, "gunicorn-foo"));
        assert!(!is_managed(managed, "cron"));
        for denied in [
            &["start"][..],
            &["restart"],
            &["reload"],
            &["force-reload"],
            &["stop", "start"],
        ] {
            assert_eq!(decide_managed(&args(denied)), code::FORBIDDEN, "{denied:?}");
        }
        for allowed in [&["stop"][..], &["status"], &["force-stop"]] {
            assert_eq!(decide_managed(&args(allowed)), code::ALLOW, "{allowed:?}");
        }
    }
}
