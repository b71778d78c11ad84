//! policy-rc.d: the decision (Debian's `README.policy-rc.d` interface) and its
//! installation as `/usr/sbin/policy-rc.d`, a link to our binary.
//!
//! While armed, start-like actions of managed services are denied (101), both
//! for init script ids (`gunicorn`, from invoke-rc.d) and unit names
//! (`gunicorn.service`, from deb-systemd-invoke); `stop` and `status` are
//! allowed. A policy-rc.d that was there before is kept (as our backup of it)
//! and consulted for every other service. Each denial is appended to the ledger.
//!
//! This runs on every service action of a dist-upgrade: it reads one small
//! file and does nothing else.

use anyhow::Result;
use std::path::Path;
use std::process::Command;

use crate::fsx::{self, Root};
use crate::paths;
use crate::state::{self, State};

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

/// Runs the decision for the node under `root` (`/` when invoked as policy-rc.d)
/// and returns the exit code.
pub fn run(root: &Root, args: &[String]) -> i32 {
    let request = match parse(args) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("policy-rc.d: {e}; usage: policy-rc.d [--quiet] ID ACTIONS [RUNLEVEL]");
            return code::SYNTAX;
        }
    };
    // No readable state means nothing is armed: allow, as if we were not here.
    let state = State::load(root).ok().flatten();
    let managed = |id: &str| state.as_ref().is_some_and(|s| is_managed(s.managed(), id));
    match request {
        Request::List { id } => {
            let verdict = if managed(&id) {
                "managed: start, restart and reload denied"
            } else {
                "not managed"
            };
            println!("{id}: {verdict}");
            code::ALLOW
        }
        Request::Decide {
            id,
            actions,
            runlevel,
        } if managed(&id) => {
            let verdict = decide_managed(&actions);
            if verdict == code::FORBIDDEN {
                let line = format!(
                    "{} {id} {} {}",
                    state::now(),
                    actions.join(","),
                    runlevel.as_deref().unwrap_or("-")
                );
                if let Err(e) = fsx::append_line(root, paths::DENIED_LEDGER, &line) {
                    eprintln!("policy-rc.d: {e:#}");
                }
            }
            verdict
        }
        Request::Decide { .. } => consult_previous(root, args),
    }
}

/// The answer of the policy-rc.d that was installed before ours, or allow.
fn consult_previous(root: &Root, args: &[String]) -> i32 {
    let previous = root.path(fsx::backup_path(Path::new(paths::POLICY_RCD)));
    if !previous.is_file() {
        return code::ALLOW;
    }
    match Command::new(&previous).args(args).status() {
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

/// Removes ours and puts back the previous one, byte for byte.
pub fn remove(root: &Root) -> Result<()> {
    if !is_installed(root) {
        return Ok(());
    }
    if !fsx::restore(root, Path::new(paths::POLICY_RCD))? {
        fsx::remove(root, Path::new(paths::POLICY_RCD))?;
    }
    Ok(())
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
