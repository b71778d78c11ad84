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
use crate::base::fsx::Root;
use crate::inputs::node::{unit_name, InitSystem};

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
    fn get_unit_file_state(&self, file: &str) -> zbus::Result<String>;
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
    #[zbus(property)]
    fn sub_state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn load_state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn need_daemon_reload(&self) -> zbus::Result<bool>;
    #[zbus(property)]
    fn active_enter_timestamp_monotonic(&self) -> zbus::Result<u64>;
}

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Service",
    default_service = "org.freedesktop.systemd1",
    gen_async = false
)]
trait Service {
    #[zbus(property, name = "Type")]
    fn service_type(&self) -> zbus::Result<String>;
}

/// Whether a unit in `active`/`sub` state has its work still running: a
/// service that is "active (exited)" has no process left, which for a
/// oneshot is its normal end and for any other type a daemon that died
/// (a unit systemd-sysv-generator made from an init script has
/// `RemainAfterExit=yes`, so its ActiveState never leaves "active" when the
/// daemon goes: real Synnefo's gunicorn and snf-dispatcher on jessie).
pub fn daemon_running(active: &str, sub: &str, service_type: &str) -> bool {
    active == "active" && (sub != "exited" || service_type == "oneshot")
}

/// Services of a node where systemd is PID 1.
pub struct Systemd {
    conn: zbus::blocking::Connection,
    manager: ManagerProxy<'static>,
    /// The units [`Services::load_unmasked_ahead`] had systemd load
    /// unmasked in this run: their unmask needs no look at systemd's view
    /// (a start that still meets one masked reloads and tries again).
    loaded_ahead: std::sync::Mutex<HashSet<String>>,
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
        Ok(Systemd {
            conn,
            manager,
            loaded_ahead: Default::default(),
        })
    }

    /// The unit's object (loaded by systemd if it was not).
    fn unit(&self, unit: &str) -> Result<UnitProxy<'static>> {
        Ok(self.unit_with_path(unit)?.0)
    }

    /// [`Systemd::unit`], with the unit's object path.
    fn unit_with_path(&self, unit: &str) -> Result<(UnitProxy<'static>, OwnedObjectPath)> {
        let path = self
            .manager
            .load_unit(unit)
            .with_context(|| format!("loading unit '{unit}'"))?;
        let proxy = UnitProxy::builder(&self.conn)
            .path(path.clone())
            .context("unit object path")?
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .with_context(|| format!("creating proxy for unit '{unit}'"))?;
        Ok((proxy, path))
    }

    /// [`daemon_running`] of the unit now.
    fn running(&self, unit: &str) -> Result<bool> {
        let (proxy, path) = self.unit_with_path(unit)?;
        self.running_at(unit, &proxy, path)
    }

    /// [`daemon_running`] of `unit`, whose object the caller has: SubState
    /// is read only when it is active, the service's Type only when it is
    /// "exited" (the one case the Type decides).
    fn running_at(&self, unit: &str, proxy: &UnitProxy<'_>, path: OwnedObjectPath) -> Result<bool> {
        let active = proxy
            .active_state()
            .with_context(|| format!("reading ActiveState of '{unit}'"))?;
        let sub = if active == "active" {
            proxy
                .sub_state()
                .with_context(|| format!("reading SubState of '{unit}'"))?
        } else {
            String::new()
        };
        let service_type = if sub == "exited" {
            ServiceProxy::builder(&self.conn)
                .path(path)
                .context("unit object path")?
                .cache_properties(zbus::proxy::CacheProperties::No)
                .build()
                .with_context(|| format!("creating the service proxy of '{unit}'"))?
                .service_type()
                .with_context(|| format!("reading Type of '{unit}'"))?
        } else {
            String::new()
        };
        Ok(daemon_running(&active, &sub, &service_type))
    }

    fn active_state(&self, unit: &str) -> Result<String> {
        self.unit(unit)?
            .active_state()
            .with_context(|| format!("reading ActiveState of '{unit}'"))
    }

    /// The units of `names` that systemd does not have loaded as they are on
    /// disk now (masked or not found in memory, or changed on disk since):
    /// those need a reload before they can start.
    fn stale(&self, names: &[String]) -> Result<Vec<String>> {
        let mut stale = Vec::new();
        for name in names {
            let unit = unit_name(name);
            let proxy = self.unit(&unit)?;
            let load = proxy
                .load_state()
                .with_context(|| format!("reading LoadState of '{unit}'"))?;
            let changed = proxy.need_daemon_reload().unwrap_or(true);
            if load != "loaded" || changed {
                stale.push(format!(
                    "{unit} ({load}{})",
                    if changed { ", changed on disk" } else { "" }
                ));
            }
        }
        Ok(stale)
    }

    /// Sends on `tx` whenever a unit of `names` changes (its
    /// `PropertiesChanged`, subscribed before the watch's first look).
    fn watch_changes(&self, names: &[String], tx: &mpsc::Sender<()>) -> Result<()> {
        self.subscribe()?;
        for name in names {
            let unit = unit_name(name);
            let path = self
                .manager
                .load_unit(&unit)
                .with_context(|| format!("loading unit '{unit}'"))?;
            let props = zbus::blocking::fdo::PropertiesProxy::builder(&self.conn)
                .destination("org.freedesktop.systemd1")
                .context("systemd's bus name")?
                .path(path)
                .context("unit object path")?
                .build()
                .with_context(|| format!("creating the properties proxy of '{unit}'"))?;
            let changes = props
                .receive_properties_changed()
                .with_context(|| format!("listening for changes of '{unit}'"))?;
            let tx = tx.clone();
            // Ends with the first change after the watch is over (the send fails).
            std::thread::spawn(move || {
                for _ in changes {
                    if tx.send(()).is_err() {
                        break;
                    }
                }
            });
        }
        Ok(())
    }

    /// Subscribes this connection to the manager's signals. systemd 254 and
    /// later (trixie's 257) answer a second `Subscribe` on one connection
    /// with `org.freedesktop.systemd1.AlreadySubscribed` (finish's
    /// restart-apache after start-services failed so on the `release` VM
    /// scenario's trixie); older ones (jessie's 215, bookworm's 252) take
    /// it again. Either way the connection is subscribed.
    fn subscribe(&self) -> Result<()> {
        match self.manager.subscribe() {
            Err(zbus::Error::MethodError(name, _, _)) if is_already_subscribed(name.as_str()) => {
                Ok(())
            }
            other => other.context("subscribing to systemd signals"),
        }
    }

    fn reload(&self) -> Result<Duration> {
        let t0 = Instant::now();
        self.manager.reload().context("reloading systemd")?;
        Ok(t0.elapsed())
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
        self.subscribe()?;
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
            "generated" | "" => super::is_enabled_on_disk(&crate::base::fsx::Root::new("/"), name),
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

    /// A unit systemd still has masked or not found (its view older than
    /// the disk: a reload by someone else after ours ahead) is reloaded
    /// once and started again.
    fn start(&self, names: &[String]) -> Result<()> {
        match self.run_jobs(Action::Start, names) {
            Err(e) if needs_reload(&e) => {
                let took = self.reload()?;
                log::info!(
                    "systemd reloaded in {} ms: a start met a unit masked or not found in its view ({e:#})",
                    took.as_millis()
                );
                self.run_jobs(Action::Start, names)
            }
            other => other,
        }
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

    fn is_running(&self, name: &str) -> Result<bool> {
        self.running(&unit_name(name))
    }

    /// From the unit's `ActiveEnterTimestampMonotonic` (CLOCK_MONOTONIC, as
    /// ours: a clock set at boot by NTP does not move it).
    fn active_for(&self, name: &str) -> Result<Option<Duration>> {
        let unit = unit_name(name);
        let (proxy, path) = self.unit_with_path(&unit)?;
        if !self.running_at(&unit, &proxy, path)? {
            return Ok(None);
        }
        let entered = proxy
            .active_enter_timestamp_monotonic()
            .with_context(|| format!("reading ActiveEnterTimestampMonotonic of '{unit}'"))?;
        let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
            .context("reading the monotonic clock")?;
        let now_us = (now.tv_sec() as u64) * 1_000_000 + (now.tv_nsec() as u64) / 1_000;
        // 0: systemd does not know (never entered active in this boot).
        Ok((entered != 0).then(|| Duration::from_micros(now_us.saturating_sub(entered))))
    }

    fn mask(&self, names: &[String]) -> Result<()> {
        let units: Vec<String> = names.iter().map(|n| unit_name(n)).collect();
        let refs: Vec<&str> = units.iter().map(String::as_str).collect();
        self.manager
            .mask_unit_files(&refs, false, false)
            .with_context(|| format!("masking {}", units.join(", ")))?;
        self.manager.reload().context("reloading systemd")
    }

    /// The mask links removed as `systemctl unmask` removes them (prepare
    /// made them in the admin directory, as `systemctl mask` does), then one
    /// reload only when systemd still has one of them masked (or not found,
    /// or changed on disk): after [`Services::load_unmasked_ahead`] it has
    /// not, and the start can follow at once (a reload runs every generator
    /// and reads every unit again: seconds on a slow node, on the downtime's
    /// critical path). The links go through our file module rather than
    /// systemd's `UnmaskUnitFiles`, whose lookup of every unit path cost up
    /// to a second of the downtime on a loaded node; the links are the same.
    fn unmask(&self, root: &Root, names: &[String]) -> Result<()> {
        if names.is_empty() {
            return Ok(());
        }
        super::unmask_offline(root, names).with_context(|| {
            format!(
                "unmasking {}: remove the masks with 'systemctl unmask', then run 'synnefo-upgrade finish'",
                names.join(", ")
            )
        })?;
        let units: Vec<String> = names.iter().map(|n| unit_name(n)).collect();
        let ahead = self
            .loaded_ahead
            .lock()
            .map(|set| names.iter().all(|n| set.contains(n)))
            .unwrap_or(false);
        if ahead {
            // Six D-Bus round trips saved on the downtime's critical path
            // (half a second on a loaded node); start-services reloads if
            // systemd's view changed meanwhile.
            log::info!(
                "systemd loaded {} unmasked ahead in this run: no reload",
                units.join(", ")
            );
            return Ok(());
        }
        let stale = self.stale(names)?;
        if stale.is_empty() {
            log::info!(
                "systemd has {} loaded unmasked already: no reload",
                units.join(", ")
            );
            return Ok(());
        }
        let took = self.reload()?;
        log::info!(
            "systemd reloaded in {} ms (it had {})",
            took.as_millis(),
            stale.join(", ")
        );
        Ok(())
    }

    /// The reload off the critical path: finish calls this while the
    /// migrations run (or are waited for). The boot links of `names` go
    /// first (restore-boot-state puts back the right ones after the
    /// migrations), so that a crash while the masks are off starts nothing
    /// at the next boot; then the masks come off, systemd reloads (the units
    /// in memory unmasked, generated ones made), and the masks go back on
    /// disk at once, whatever the reload did: on disk, and so for any boot,
    /// the node stays in the safe state until unmask-services.
    fn load_unmasked_ahead(&self, root: &Root, names: &[String]) -> Result<Option<String>> {
        if names.is_empty() {
            return Ok(None);
        }
        super::disable_offline(root, names)?;
        super::unmask_offline(root, names)?;
        let reloaded = self.reload();
        super::mask_offline(root, names).with_context(|| {
            format!(
                "masking {} again after loading them ahead: mask them by hand ('systemctl mask'), then run 'synnefo-upgrade finish'",
                names.join(", ")
            )
        })?;
        if reloaded.is_ok() {
            if let Ok(mut set) = self.loaded_ahead.lock() {
                set.extend(names.iter().cloned());
            }
        }
        Ok(Some(match reloaded {
            Ok(took) => format!(
                "{} loaded unmasked ahead (systemd reloaded in {} ms; masked again on disk)",
                names.join(", "),
                took.as_millis()
            ),
            Err(e) => format!("units not loaded ahead ({e:#}): unmask-services reloads systemd"),
        }))
    }

    fn load_masks_again(&self) -> Result<()> {
        if let Ok(mut set) = self.loaded_ahead.lock() {
            set.clear();
        }
        self.reload().map(|took| {
            log::info!(
                "systemd reloaded in {} ms: the masks on disk are in force again",
                took.as_millis()
            )
        })
    }

    /// Told by systemd: each unit's `PropertiesChanged` (subscribed before
    /// the first look, so no change is missed) wakes the watch, which looks
    /// at the units' state ([`daemon_running`]) then and at least twice a second.
    fn stays_active(&self, names: &[String], settle: Duration) -> Result<Vec<String>> {
        let (tx, rx) = mpsc::channel::<()>();
        // Without the signals (an error setting them up) the watch still
        // looks twice a second: slower to see a death, never blind.
        if let Err(e) = self.watch_changes(names, &tx) {
            log::warn!("watching the units' changes: {e:#}; looking at them twice a second");
        }
        drop(tx);
        let deadline = Instant::now() + settle;
        loop {
            let mut down = Vec::new();
            for name in names {
                if !self.running(&unit_name(name))? {
                    down.push(unit_name(name));
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if !down.is_empty() || left.is_zero() {
                return Ok(down);
            }
            // A change, or half a second, or the end of the period.
            let slice = left.min(Duration::from_millis(500));
            if let Err(mpsc::RecvTimeoutError::Disconnected) = rx.recv_timeout(slice) {
                std::thread::sleep(slice);
            }
        }
    }
}

/// Whether a start failed because systemd's view of a unit is older than
/// the disk: masked, or not found (a unit generated from an init script
/// before the last reload).
fn needs_reload(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<zbus::Error>(),
            Some(zbus::Error::MethodError(name, _, _)) if is_stale_view(name.as_str())
        )
    })
}

/// The errors of `StartUnit` on a unit systemd has masked or not found.
fn is_stale_view(error_name: &str) -> bool {
    matches!(
        error_name,
        "org.freedesktop.systemd1.UnitMasked"
            | "org.freedesktop.systemd1.NoSuchUnit"
            | "org.freedesktop.systemd1.LoadFailed"
    )
}

/// The D-Bus error systemd 254 and later give a second `Subscribe`.
fn is_already_subscribed(error_name: &str) -> bool {
    error_name == "org.freedesktop.systemd1.AlreadySubscribed"
}

#[cfg(test)]
mod tests {
    use super::{daemon_running, is_already_subscribed, is_stale_view};

    #[test]
    fn a_start_refused_for_a_view_older_than_the_disk_reloads() {
        assert!(is_stale_view("org.freedesktop.systemd1.UnitMasked"));
        assert!(is_stale_view("org.freedesktop.systemd1.NoSuchUnit"));
        assert!(!is_stale_view("org.freedesktop.DBus.Error.AccessDenied"));
        assert!(!is_stale_view(
            "org.freedesktop.systemd1.JobTypeNotApplicable"
        ));
    }

    #[test]
    fn a_second_subscribe_refused_by_a_newer_systemd_is_no_error() {
        assert!(is_already_subscribed(
            "org.freedesktop.systemd1.AlreadySubscribed"
        ));
        assert!(!is_already_subscribed(
            "org.freedesktop.DBus.Error.AccessDenied"
        ));
        assert!(!is_already_subscribed(
            "org.freedesktop.systemd1.NoSuchUnit"
        ));
    }

    #[test]
    fn an_exited_daemon_is_not_running_an_exited_oneshot_is() {
        // An init script's unit (forking, RemainAfterExit=yes) whose daemon died.
        assert!(!daemon_running("active", "exited", "forking"));
        assert!(!daemon_running("active", "exited", "simple"));
        assert!(daemon_running("active", "exited", "oneshot"));
        assert!(daemon_running("active", "running", "forking"));
        assert!(!daemon_running("activating", "start", "forking"));
        assert!(!daemon_running("failed", "failed", "oneshot"));
        assert!(!daemon_running("inactive", "dead", "simple"));
    }
}
