//! `dist-upgrade`: the operator's step between arming and the reboot, as one
//! command. On an armed node it starts a worker detached from the caller
//! (its own session, stdin `/dev/null`, output appended to
//! [`paths::DIST_UPGRADE_LOG`]), so that a lost ssh session does not kill the
//! transaction, and follows that worker's output until it ends. A second
//! invocation while a worker runs follows the running one instead of
//! starting another.
//!
//! The worker, under its own lock ([`paths::DIST_UPGRADE_LOCK`], not the run
//! lock: the package's postinst may run `prepare` inside the transaction):
//! the configured debconf answers (`debconf-set-selections`), `apt-get
//! update`, `apt-get dist-upgrade` unattended with the conffiles kept
//! (dpkg's `--force-confdef --force-confold`, `UCF_FORCE_CONFFOLD=1`), the
//! switch to systemd-sysv where the release did not make it, and `dpkg
//! --audit`, which must be empty. Its record ([`paths::DIST_UPGRADE_RECORD`])
//! says how it ended; `status` shows it.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use crate::base::apt;
use crate::base::clock::{now, rfc3339};
use crate::base::error::{Fatal, EXIT_STEP_FAILED};
use crate::base::exec;
use crate::base::fsx::{self, Root};
use crate::base::paths;
use crate::base::state::{Phase, State};
use crate::inputs::config::Config;

/// The environment of every command of the transaction: no question asked,
/// conffiles kept (dpkg's options are on the command line), no pager.
const ENV: &[(&str, &str)] = &[
    ("DEBIAN_FRONTEND", "noninteractive"),
    ("UCF_FORCE_CONFFOLD", "1"),
    ("UCF_FORCE_CONFFNEW", ""),
    ("APT_LISTCHANGES_FRONTEND", "none"),
    ("APT_LISTBUGS_FRONTEND", "none"),
];

/// dpkg's conffile answers for apt-get: the default where there is one,
/// else the installed version (the admin's) is kept.
const DPKG_KEEP_CONFFILES: &[&str] = &[
    "-o",
    "Dpkg::Options::=--force-confdef",
    "-o",
    "Dpkg::Options::=--force-confold",
];

/// How a dist-upgrade ended, or that it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The worker runs (or died without recording its end: see [`Report`]).
    Running,
    /// Every command passed and `dpkg --audit` is empty: reboot.
    Succeeded,
    /// A command failed; the message says what to do.
    Failed,
}

/// The record the worker keeps ([`paths::DIST_UPGRADE_RECORD`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// This run's id, given by the command that started the worker (a
    /// record of an earlier run, even of the same pid after a reboot, is
    /// never taken for this one's).
    #[serde(default)]
    pub run_id: String,
    /// The worker's process id.
    pub pid: u32,
    /// When it started (RFC 3339 UTC).
    pub started_at: String,
    /// When it ended; `None` while it runs.
    pub ended_at: Option<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// What failed and what to do, or what to do next.
    pub message: Option<String>,
    /// The log it appends to.
    pub log: String,
    /// Where this run's output begins in the log (bytes).
    pub log_offset: u64,
    /// Whether it reboots the node once it succeeded.
    pub reboot: bool,
}

/// The dist-upgrade in `status`: the record, and whether its worker runs now.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The last record.
    #[serde(flatten)]
    pub record: Record,
    /// A worker holds the lock now. `false` with outcome `running`: it died
    /// without recording its end (killed, a power loss).
    pub running: bool,
}

/// The last dist-upgrade of the node under `root`, `None` when there was none.
pub fn report(root: &Root) -> Result<Option<Report>> {
    let Some(record) = load(root)? else {
        return Ok(None);
    };
    Ok(Some(Report {
        running: holder(root)?.is_some(),
        record,
    }))
}

fn load(root: &Root) -> Result<Option<Record>> {
    let Some(bytes) = fsx::read_file_opt(root, paths::DIST_UPGRADE_RECORD)? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .with_context(|| format!("reading '{}'", paths::DIST_UPGRADE_RECORD))
}

fn save(root: &Root, record: &Record) -> Result<()> {
    let mut text = serde_json::to_string_pretty(record)?;
    text.push('\n');
    fsx::write_state_file(root, paths::DIST_UPGRADE_RECORD, text.as_bytes())
}

/// Who holds the dist-upgrade's lock now (`PID COMMAND`), if anyone.
pub fn holder(root: &Root) -> Result<Option<String>> {
    fsx::lock_holder_at(root, paths::DIST_UPGRADE_LOCK)
}

/// `synnefo-upgrade dist-upgrade [--reboot]`: refuses unless the node is
/// armed; follows the running worker, or starts one and follows it. Exit 0
/// when it succeeded, 1 when it failed.
pub fn run(root: &Root, config_file: Option<&Path>, reboot: bool) -> Result<ExitCode> {
    if let Some(holder) = holder(root)? {
        let record = load(root)?;
        log::info!(
            "dist-upgrade: one runs already ({holder}{}); following it (its output: {})",
            record
                .as_ref()
                .map_or_else(String::new, |r| format!(", since {}", r.started_at)),
            paths::DIST_UPGRADE_LOG
        );
        let offset = record.map_or(0, |r| r.log_offset);
        return follow(root, None, offset);
    }
    ensure_armed(root)?;
    let offset = log_size(root);
    let exe = std::env::current_exe().context("finding this program to start the worker")?;
    let mut command = std::process::Command::new(&exe);
    if !root.is_live() {
        command.arg("--root").arg(root.path("/"));
    }
    if let Some(file) = config_file {
        let file =
            std::path::absolute(file).with_context(|| format!("--config '{}'", file.display()))?;
        command.arg("--config").arg(file);
    }
    let run_id = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    command.args(["dist-upgrade", "--worker", "--run-id", &run_id]);
    if reboot {
        command.arg("--reboot");
    }
    let log = fsx::open_append(root, paths::DIST_UPGRADE_LOG)?;
    let err = log
        .try_clone()
        .context("duplicating the log's descriptor")?;
    command
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(err);
    // Its own session: no terminal, no SIGHUP when the operator's ssh goes.
    // SAFETY: between fork and exec the closure only calls setsid(2), which
    // is async-signal-safe, and allocates nothing.
    unsafe {
        use std::os::unix::process::CommandExt;
        command.pre_exec(|| {
            nix::unistd::setsid()
                .map(|_| ())
                .map_err(std::io::Error::from)
        });
    }
    let child = command
        .spawn()
        .with_context(|| format!("starting '{} dist-upgrade --worker'", exe.display()))?;
    log::info!(
        "dist-upgrade: started (pid {}), detached from this session: it goes on if this connection drops ('synnefo-upgrade dist-upgrade' again follows it); its output: {}",
        child.id(),
        paths::DIST_UPGRADE_LOG
    );
    follow(root, Some((child, run_id)), offset)
}

/// Held by `abort` while it runs: no dist-upgrade starts under it (the
/// worker then finds the lock taken and its caller says so). `None` on a
/// node without our state directory (never armed: nothing to keep apart,
/// and nothing is written).
pub fn exclude(root: &Root) -> Result<Option<nix::fcntl::Flock<std::fs::File>>> {
    use nix::fcntl::{Flock, FlockArg};
    if !fsx::check_private_dir(root, paths::STATE_DIR)? {
        return Ok(None);
    }
    let deadline = std::time::Instant::now() + fsx::lock_wait()?;
    let mut file = fsx::open_lock_at(root, paths::DIST_UPGRADE_LOCK)?;
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(mut lock) => {
                let command = std::env::args().collect::<Vec<_>>().join(" ");
                fsx::write_lock_holder(&mut lock, &format!("{} {command}", std::process::id()))?;
                return Ok(Some(lock));
            }
            Err((back, nix::errno::Errno::EWOULDBLOCK)) => {
                let held_by = holder(root)?.unwrap_or_default();
                // Another abort holds it for as long as it runs: wait as
                // for the run lock (whose message then says who).
                if held_by.contains("dist-upgrade") || std::time::Instant::now() >= deadline {
                    bail!(Fatal::Busy(format!(
                        "{held_by} holds '{}': abort is refused while a dist-upgrade runs, and once dpkg changed a package; nothing was changed",
                        paths::DIST_UPGRADE_LOCK
                    )));
                }
                file = back;
                std::thread::sleep(Duration::from_millis(200));
            }
            Err((_, errno)) => bail!("locking '{}': {errno}", paths::DIST_UPGRADE_LOCK),
        }
    }
}

fn ensure_armed(root: &Root) -> Result<()> {
    let phase = State::load(root)?.map(|s| s.phase);
    match phase {
        Some(Phase::Armed) => Ok(()),
        Some(Phase::Done) => bail!(Fatal::Inhibited(
            "the upgrade of this node is done; there is no dist-upgrade to run (see 'synnefo-upgrade status')".into()
        )),
        Some(Phase::Finishing) => bail!(Fatal::Inhibited(
            "this node is finishing (its first boot on the new release ran 'finish'): the dist-upgrade is behind it; run 'synnefo-upgrade finish' to resume (see 'synnefo-upgrade status')".into()
        )),
        Some(phase) => bail!(Fatal::Inhibited(format!(
            "this node is not armed (phase '{phase}'): the dist-upgrade runs only on an armed node, whose Synnefo services are stopped and kept down; run 'synnefo-upgrade prepare' first; nothing was changed"
        ))),
        None => bail!(Fatal::Inhibited(
            "this node is not armed: the dist-upgrade runs only on an armed node, whose Synnefo services are stopped and kept down; run 'synnefo-upgrade prepare' first; nothing was changed".into()
        )),
    }
}

fn log_size(root: &Root) -> u64 {
    std::fs::metadata(root.path_nofollow(paths::DIST_UPGRADE_LOG)).map_or(0, |m| m.len())
}

/// Prints the log from `offset` as it grows, until the worker (`child`,
/// started with that run id, or the lock's holder) has ended; then its
/// outcome.
fn follow(
    root: &Root,
    mut child: Option<(std::process::Child, String)>,
    mut offset: u64,
) -> Result<ExitCode> {
    let mut out = std::io::stdout();
    let mut started = child.is_none();
    let mut exit = None;
    loop {
        offset = print_from(root, offset, &mut out)?;
        if let Some((c, _)) = child.as_mut() {
            exit = c.try_wait().context("waiting for the worker")?;
        }
        if !started {
            // The worker has taken its lock once the record names this run.
            let id = child.as_ref().map(|(_, id)| id.as_str());
            started = exit.is_some() || load(root)?.is_some_and(|r| Some(r.run_id.as_str()) == id);
        }
        if started && (exit.is_some() || holder(root)?.is_none()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    print_from(root, offset, &mut out)?;
    let record = load(root)?;
    let ours = match &child {
        Some((_, id)) => record.filter(|r| &r.run_id == id),
        None => record,
    };
    let code = exit.and_then(|e| e.code());
    match ours {
        Some(r) if r.outcome == Outcome::Succeeded => {
            log::info!("dist-upgrade: {}", r.message.as_deref().unwrap_or("done"));
            Ok(ExitCode::SUCCESS)
        }
        Some(r) if r.outcome == Outcome::Failed => {
            log::error!("dist-upgrade: {}", r.message.as_deref().unwrap_or("failed"));
            Ok(ExitCode::from(EXIT_STEP_FAILED))
        }
        Some(_) => {
            log::error!(
                "dist-upgrade: the worker ended without recording how (killed?); see {}. Run 'dpkg --configure -a', then 'synnefo-upgrade dist-upgrade' again",
                paths::DIST_UPGRADE_LOG
            );
            Ok(ExitCode::from(EXIT_STEP_FAILED))
        }
        // Our worker found another holding the lock (two started at once,
        // or an abort): follow that one, if it is a dist-upgrade.
        None if code == Some(i32::from(crate::base::error::EXIT_BUSY))
            && holder(root)?.is_some() =>
        {
            let offset = load(root)?.map_or(offset, |r| r.log_offset);
            log::info!("dist-upgrade: another one started at the same moment; following it");
            follow(root, None, offset)
        }
        // It refused or failed before its record (its message is above).
        None => Ok(ExitCode::from(
            code.and_then(|c| u8::try_from(c).ok())
                .unwrap_or(EXIT_STEP_FAILED),
        )),
    }
}

fn print_from(root: &Root, offset: u64, out: &mut impl Write) -> Result<u64> {
    let mut file = match std::fs::File::open(root.path_nofollow(paths::DIST_UPGRADE_LOG)) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(offset),
        Err(e) => return Err(e).with_context(|| format!("reading '{}'", paths::DIST_UPGRADE_LOG)),
    };
    file.seek(SeekFrom::Start(offset))
        .with_context(|| format!("reading '{}'", paths::DIST_UPGRADE_LOG))?;
    let mut buf = Vec::new();
    file.read_to_end(&mut buf)
        .with_context(|| format!("reading '{}'", paths::DIST_UPGRADE_LOG))?;
    // A reader that went away (the operator's ssh) does not stop the follow:
    // the worker is not ours to stop.
    let _ = out.write_all(&buf).and_then(|()| out.flush());
    Ok(offset + buf.len() as u64)
}

/// The detached worker (`dist-upgrade --worker`): the transaction, recorded.
pub fn worker(root: &Root, config: &Config, reboot: bool, run_id: &str) -> Result<ExitCode> {
    use nix::fcntl::{Flock, FlockArg};
    let file = fsx::open_lock_at(root, paths::DIST_UPGRADE_LOCK)?;
    let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => lock,
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => bail!(Fatal::Busy(format!(
            "another dist-upgrade runs ({}); 'synnefo-upgrade dist-upgrade' follows it",
            holder(root)?.unwrap_or_default()
        ))),
        Err((_, errno)) => bail!("locking '{}': {errno}", paths::DIST_UPGRADE_LOCK),
    };
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    fsx::write_lock_holder(&mut lock, &format!("{} {command}", std::process::id()))?;
    ensure_armed(root)?;
    let mut record = Record {
        run_id: run_id.to_string(),
        pid: std::process::id(),
        started_at: rfc3339(now()),
        ended_at: None,
        outcome: Outcome::Running,
        message: None,
        log: paths::DIST_UPGRADE_LOG.into(),
        log_offset: log_size(root),
        reboot,
    };
    save(root, &record)?;
    say(&format!(
        "dist-upgrade: started at {} (pid {}): apt-get update, apt-get dist-upgrade (conffiles kept), then dpkg --audit",
        record.started_at, record.pid
    ));
    let result = transaction(root, config);
    record.ended_at = Some(rfc3339(now()));
    let code = match result {
        Ok(()) => {
            record.outcome = Outcome::Succeeded;
            record.message = Some(if reboot {
                "the dist-upgrade ended cleanly and dpkg --audit is empty: rebooting; the first boot under systemd finishes the upgrade".into()
            } else if old_init_cannot_shut_down(root) {
                format!("the dist-upgrade ended cleanly and dpkg --audit is empty: reboot now with 'synnefo-upgrade dist-upgrade --reboot', not 'reboot': {OLD_INIT_STRANDED}; the first boot under systemd finishes the upgrade")
            } else {
                "the dist-upgrade ended cleanly and dpkg --audit is empty: reboot now ('reboot'); the first boot under systemd finishes the upgrade".into()
            });
            ExitCode::SUCCESS
        }
        Err(e) => {
            record.outcome = Outcome::Failed;
            record.message = Some(format!(
                "{e:#}; the Synnefo services stay down (policy-rc.d). Fix the cause, run 'dpkg --configure -a' (dpkg may have been interrupted), then 'synnefo-upgrade dist-upgrade' again; do not reboot before it succeeds"
            ));
            ExitCode::from(EXIT_STEP_FAILED)
        }
    };
    save(root, &record)?;
    say(&format!(
        "dist-upgrade: {} at {}: {}",
        match record.outcome {
            Outcome::Succeeded => "succeeded",
            _ => "FAILED",
        },
        record.ended_at.as_deref().unwrap_or("?"),
        record.message.as_deref().unwrap_or("")
    ));
    if reboot && record.outcome == Outcome::Succeeded {
        // Under the lock: the caller follows until the reboot was asked for.
        let rebooted = reboot_node(root);
        if let Err(e) = rebooted {
            record.message = Some(format!(
                "the dist-upgrade ended cleanly and dpkg --audit is empty, but the reboot failed ({e:#}): reboot by hand ('reboot')"
            ));
            save(root, &record)?;
            say(&format!(
                "dist-upgrade: {}",
                record.message.as_deref().unwrap_or("")
            ));
        }
    }
    drop(lock);
    Ok(code)
}

/// One line for the log and the journal: the logger writes the worker's
/// stderr (the log file) and the journal (or, without one, the node's log
/// file), once each.
fn say(line: &str) {
    log::info!("{line}");
}

/// `name` on the node, inside the tree only: under `--root` a fixture's
/// tool, never the live system's apt-get, dpkg or reboot.
fn tool(root: &Root, name: &str) -> Result<String> {
    exec::find_inside(root, name)
        .map(|p| p.to_string_lossy().into_owned())
        .with_context(|| {
            format!(
                "'{name}' is not installed on the node ({})",
                root.path("/").display()
            )
        })
}

/// Runs `argv` (with `input` on its stdin) with its output going straight
/// to the worker's stdout and stderr, the log file: no pipe through the
/// worker, so neither the worker's end nor a daemon that keeps the
/// descriptor open can kill or hang the transaction. The lines it added to
/// the log then go to the journal. Returns its status and those lines.
fn run_to_log(root: &Root, argv: &[&str], input: Option<&[u8]>) -> Result<exec::Logged> {
    let (program, args) = argv.split_first().context("empty command")?;
    let shown = argv.join(" ");
    let _ = std::io::stdout().flush();
    let before = log_size(root);
    let mut child = std::process::Command::new(program)
        .args(args)
        .envs(ENV.iter().copied())
        .stdin(if input.is_some() {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
        .spawn()
        .with_context(|| format!("starting '{shown}'"))?;
    if let (Some(bytes), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(bytes)
            .with_context(|| format!("writing to '{shown}'"))?;
    }
    let status = child
        .wait()
        .with_context(|| format!("waiting for '{shown}'"))?;
    let mut added = Vec::new();
    print_from(root, before, &mut added)?;
    let lines: Vec<String> = String::from_utf8_lossy(&added)
        .lines()
        .map(String::from)
        .collect();
    let name = Path::new(program)
        .file_name()
        .map_or_else(|| program.to_string(), |n| n.to_string_lossy().into_owned());
    crate::base::logging::dist_upgrade_output(&name, &lines);
    Ok(exec::Logged { status, lines })
}

fn transaction(root: &Root, config: &Config) -> Result<()> {
    let apt_get = tool(root, "apt-get")?;
    let answers = &config.dist_upgrade.debconf;
    if !answers.is_empty() {
        let program = tool(root, "debconf-set-selections")?;
        let input = answers.join("\n") + "\n";
        say(&format!(
            "dist-upgrade: debconf answers ([dist_upgrade] debconf): {}",
            answers.join("; ")
        ));
        checked(
            run_to_log(root, &[&program], Some(input.as_bytes()))?,
            "debconf-set-selections",
        )?;
    }
    let run = |args: &[&str], what: &str| -> Result<()> {
        say(&format!("dist-upgrade: {what}"));
        let mut argv = vec![apt_get.as_str()];
        argv.extend_from_slice(args);
        checked(run_to_log(root, &argv, None)?, &argv.join(" "))
    };
    run(&["-q", "update"], "apt-get update")?;
    let mut upgrade = vec!["-y", "-q"];
    upgrade.extend_from_slice(DPKG_KEEP_CONFFILES);
    upgrade.push("dist-upgrade");
    run(&upgrade, "apt-get dist-upgrade (conffiles kept)")?;
    if config.dist_upgrade.switch_to_systemd {
        let packages = crate::base::dpkg::present_packages(root)?;
        if !packages.iter().any(|p| p.name == "systemd-sysv") {
            let switch = apt::systemd_switch_args(&packages, DPKG_KEEP_CONFFILES);
            let switch: Vec<&str> = ["-y", "-q"]
                .into_iter()
                .chain(switch.iter().map(String::as_str))
                .collect();
            run(
                &switch,
                "the release kept sysvinit: apt-get install systemd-sysv ([dist_upgrade] switch_to_systemd)",
            )?;
        }
    }
    let dpkg = tool(root, "dpkg")?;
    let admindir = root.path("/var/lib/dpkg");
    let admindir = admindir.to_string_lossy();
    say("dist-upgrade: dpkg --audit");
    let audit = run_to_log(root, &[&dpkg, "--admindir", &admindir, "--audit"], None)?;
    if !audit.status.success() || audit.lines.iter().any(|l| !l.trim().is_empty()) {
        bail!(
            "dpkg --audit reports packages that are not fully installed ({}): {}",
            audit.status,
            audit.lines.join(" / ")
        );
    }
    Ok(())
}

/// Why a plain `reboot` must not be used after the switch on such a node.
const OLD_INIT_STRANDED: &str = "the running sysvinit lost /etc/init.d/rc with sysv-rc, which this release's systemd-sysv removes, and would stop at a maintenance shell on the console instead of rebooting";

/// The running init is sysvinit (systemd is not PID 1) and its runlevel
/// script is gone: trixie's systemd-sysv conflicts with sysv-rc,
/// initscripts, insserv and startpar, so the switch removes them (jessie's
/// keeps them). Told to reboot, that init finds no `/etc/init.d/rc`, says
/// "cannot execute", and waits at a maintenance shell on the console: a
/// remote node never comes back.
fn old_init_cannot_shut_down(root: &Root) -> bool {
    !root.path("/run/systemd/system").is_dir() && !root.path("/etc/init.d/rc").exists()
}

/// Reboots the node. Where the old init can still shut down (systemd is
/// PID 1, or sysvinit with its rc), through it (`reboot`). Where it cannot
/// ([`old_init_cannot_shut_down`]), what its rc would have done that
/// matters: the services stopped by their init scripts (`/etc/rc6.d/K*`, in
/// rc's order, each bounded by `timeout`), the filesystems synced, then the
/// kernel asked to reboot at once (`reboot -f`, which does not ask the init).
fn reboot_node(root: &Root) -> Result<()> {
    let program = tool(root, "reboot")?;
    let mut command = std::process::Command::new(&program);
    if old_init_cannot_shut_down(root) {
        say(&format!("dist-upgrade: {OLD_INIT_STRANDED}: stopping the services by their init scripts (/etc/rc6.d/K*), then syncing and rebooting with 'reboot -f'"));
        let dir = root.path("/etc/rc6.d");
        let mut scripts: Vec<std::path::PathBuf> = std::fs::read_dir(&dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| e.file_name().to_string_lossy().starts_with('K'))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default();
        scripts.sort();
        let timeout = tool(root, "timeout").ok();
        for script in scripts.iter().filter(|p| p.is_file()) {
            let script = script.to_string_lossy().into_owned();
            let argv: Vec<&str> = match &timeout {
                Some(t) => vec![t.as_str(), "60", script.as_str(), "stop"],
                None => vec![script.as_str(), "stop"],
            };
            match run_to_log(root, &argv, None) {
                Ok(logged) if !logged.status.success() => say(&format!(
                    "dist-upgrade: '{script} stop' failed ({}), rebooting anyway",
                    logged.status
                )),
                Err(e) => say(&format!(
                    "dist-upgrade: '{script} stop': {e:#}, rebooting anyway"
                )),
                Ok(_) => {}
            }
        }
        nix::unistd::sync();
        command.arg("-f");
    }
    let status = command
        .status()
        .with_context(|| format!("running '{program}'"))?;
    if status.success() {
        Ok(())
    } else {
        bail!("'{program}' failed ({status})")
    }
}

fn checked(logged: exec::Logged, shown: &str) -> Result<()> {
    if logged.status.success() {
        return Ok(());
    }
    let tail: Vec<&str> = logged
        .lines
        .iter()
        .rev()
        .take(5)
        .rev()
        .map(String::as_str)
        .collect();
    bail!("'{shown}' failed ({}): {}", logged.status, tail.join(" / "))
}
