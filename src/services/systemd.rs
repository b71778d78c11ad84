//! systemd over D-Bus: blocking zbus proxies on `org.freedesktop.systemd1`.
//!
//! Jobs are issued in parallel after subscribing to `JobRemoved`, each awaited
//! through that signal with its result checked, then the unit's `ActiveState`
//! is read back. Only methods systemd 215 (jessie) has are used.

use anyhow::{bail, Context, Result};
use std::collections::{HashMap, HashSet};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use zbus::zvariant::OwnedObjectPath;

use super::{Action, ServiceStatus, Services};
use crate::node::{unit_name, InitSystem};

/// The system bus socket (the fixed address of Debian's dbus).
const SYSTEM_BUS_SOCKET: &str = "/run/dbus/system_bus_socket";

/// How long one batch of jobs may take.
const JOB_TIMEOUT: Duration = Duration::from_secs(300);

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1",
    gen_async = false
)]
trait Manager {
    fn subscribe(&self) -> zbus::Result<()>;
    fn start_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn stop_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn restart_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn load_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;
    fn mask_unit_files(
        &self,
        files: &[&str],
        runtime: bool,
        force: bool,
    ) -> zbus::Result<Vec<(String, String, String)>>;
    fn unmask_unit_files(
        &self,
        files: &[&str],
        runtime: bool,
    ) -> zbus::Result<Vec<(String, String, String)>>;
    fn get_unit_file_state(&self, file: &str) -> zbus::Result<String>;
    fn disable_unit_files(
        &self,
        files: &[&str],
        runtime: bool,
    ) -> zbus::Result<Vec<(String, String, String)>>;
    fn reload(&self) -> zbus::Result<()>;
    #[zbus(signal)]
    fn job_removed(
        &self,
        id: u32,
        job: OwnedObjectPath,
        unit: String,
        result: String,
    ) -> zbus::Result<()>;
}

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Unit",
    default_service = "org.freedesktop.systemd1",
    gen_async = false
)]
trait Unit {
    #[zbus(property)]
    fn active_state(&self) -> zbus::Result<String>;
}

/// Services of a node where systemd is PID 1.
pub struct Systemd {
    conn: zbus::blocking::Connection,
    manager: ManagerProxy<'static>,
}

impl Systemd {
    /// Connects to the system bus. The socket is opened here, by path, rather
    /// than through zbus's address parsing: the static binary must never reach
    /// code that resolves names through NSS (zbus's TCP transport does).
    pub fn connect() -> Result<Self> {
        let stream = std::os::unix::net::UnixStream::connect(SYSTEM_BUS_SOCKET).with_context(|| {
            format!("connecting to the D-Bus system bus at '{SYSTEM_BUS_SOCKET}'; is dbus installed and running?")
        })?;
        let conn = zbus::blocking::connection::Builder::async_io_unix_stream(stream)
            .build()
            .context("authenticating on the D-Bus system bus")?;
        let manager = ManagerProxy::new(&conn).context("creating the systemd manager proxy")?;
        Ok(Systemd { conn, manager })
    }

    fn active_state(&self, unit: &str) -> Result<String> {
        let path = self
            .manager
            .load_unit(unit)
            .with_context(|| format!("loading unit '{unit}'"))?;
        let proxy = UnitProxy::builder(&self.conn)
            .path(path)
            .context("unit object path")?
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .with_context(|| format!("creating proxy for unit '{unit}'"))?;
        proxy
            .active_state()
            .with_context(|| format!("reading ActiveState of '{unit}'"))
    }

    /// Issues one start or stop job per unit (all at once), then waits for every `JobRemoved`.
    fn run_jobs(&self, verb: Action, names: &[String]) -> Result<()> {
        let manager = &self.manager;
        self.run_jobs_with(verb.name(), names, |unit| match verb {
            Action::Start => manager.start_unit(unit, "replace"),
            Action::Stop | Action::Status => manager.stop_unit(unit, "replace"),
        })
    }

    /// Issues one job per unit with `issue` (all at once), then waits for every `JobRemoved`.
    fn run_jobs_with(
        &self,
        verb: &str,
        names: &[String],
        issue: impl Fn(&str) -> zbus::Result<OwnedObjectPath>,
    ) -> Result<()> {
        if names.is_empty() {
            return Ok(());
        }
        self.manager
            .subscribe()
            .context("subscribing to systemd signals")?;
        // Subscribe to JobRemoved before issuing jobs, so that none is missed.
        let removed = self
            .manager
            .receive_job_removed()
            .context("listening for JobRemoved")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for signal in removed {
                if let Ok(args) = signal.args() {
                    if tx
                        .send((args.job.clone(), args.unit.clone(), args.result.clone()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        });
        let mut pending: HashMap<OwnedObjectPath, String> = HashMap::new();
        for name in names {
            let unit = unit_name(name);
            let job = issue(&unit).with_context(|| format!("{verb} of unit '{unit}'"))?;
            pending.insert(job, unit);
        }
        let deadline = Instant::now() + JOB_TIMEOUT;
        let mut failures = Vec::new();
        let mut seen = HashSet::new();
        while !pending.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            let (job, unit, result) = rx.recv_timeout(left).map_err(|_| {
                anyhow::anyhow!(
                    "timed out after {}s waiting for {verb} jobs of {}",
                    JOB_TIMEOUT.as_secs(),
                    pending.values().cloned().collect::<Vec<_>>().join(", ")
                )
            })?;
            if pending.remove(&job).is_some() && seen.insert(unit.clone()) && result != "done" {
                failures.push(format!(
                    "{verb} job of '{unit}' ended with result '{result}'"
                ));
            }
        }
        if !failures.is_empty() {
            bail!("{}; see 'journalctl -u UNIT'", failures.join("; "));
        }
        Ok(())
    }
}

impl Services for Systemd {
    fn init(&self) -> InitSystem {
        InitSystem::Systemd
    }

    fn status(&self, name: &str) -> Result<ServiceStatus> {
        let unit = unit_name(name);
        let active = self.is_active(name)?;
        let file_state = self.manager.get_unit_file_state(&unit).unwrap_or_default();
        // Units that systemd-sysv-generator made from an init script are
        // "generated": whether they start at boot is told by the rc links.
        let enabled = match file_state.as_str() {
            "enabled" | "enabled-runtime" => true,
            "generated" | "" => super::is_enabled_on_disk(&crate::fsx::Root::new("/"), name),
            _ => false,
        };
        Ok(ServiceStatus { active, enabled })
    }

    fn stop(&self, names: &[String]) -> Result<()> {
        self.run_jobs(Action::Stop, names)?;
        for name in names {
            let state = self.active_state(&unit_name(name))?;
            if state != "inactive" && state != "failed" {
                bail!(
                    "'{}' is '{state}' after its stop job; stop it by hand and rerun",
                    unit_name(name)
                );
            }
        }
        Ok(())
    }

    fn start(&self, names: &[String]) -> Result<()> {
        self.run_jobs(Action::Start, names)
    }

    fn restart(&self, names: &[String]) -> Result<()> {
        let manager = &self.manager;
        self.run_jobs_with("restart", names, |unit| {
            manager.restart_unit(unit, "replace")
        })
    }

    fn is_active(&self, name: &str) -> Result<bool> {
        Ok(self.active_state(&unit_name(name))? == "active")
    }

    fn mask(&self, names: &[String]) -> Result<()> {
        let units: Vec<String> = names.iter().map(|n| unit_name(n)).collect();
        let refs: Vec<&str> = units.iter().map(String::as_str).collect();
        self.manager
            .mask_unit_files(&refs, false, false)
            .with_context(|| format!("masking {}", units.join(", ")))?;
        self.manager.reload().context("reloading systemd")
    }

    fn unmask(&self, names: &[String]) -> Result<()> {
        let units: Vec<String> = names.iter().map(|n| unit_name(n)).collect();
        let refs: Vec<&str> = units.iter().map(String::as_str).collect();
        self.manager
            .unmask_unit_files(&refs, false)
            .with_context(|| format!("unmasking {}", units.join(", ")))?;
        self.manager.reload().context("reloading systemd")
    }

    fn disable(&self, names: &[String]) -> Result<()> {
        if names.is_empty() {
            return Ok(());
        }
        let units: Vec<String> = names.iter().map(|n| unit_name(n)).collect();
        let refs: Vec<&str> = units.iter().map(String::as_str).collect();
        self.manager
            .disable_unit_files(&refs, false)
            .with_context(|| format!("disabling {}", units.join(", ")))?;
        self.manager.reload().context("reloading systemd")
    }
}
