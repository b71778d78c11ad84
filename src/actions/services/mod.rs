//! Stopping, starting and masking services: one trait, three implementations
//! chosen by the init system ([`crate::inputs::node::InitSystem`]):
//!
//! - [`systemd`]: over D-Bus (zbus) on `org.freedesktop.systemd1.Manager`.
//! - [`sysv`]: init scripts by argv; masks written offline as `/dev/null` links.
//! - [`Offline`]: `--root`: nothing runs; masks are links, state is what is enabled.
//!
//! Masks are `/etc/systemd/system/NAME.service -> /dev/null`, exactly what
//! `systemctl mask` writes; whether a unit is masked is read from that link.

use anyhow::Result;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::base::fsx::{self, Root};
use crate::base::paths;
use crate::inputs::node::{unit_name, InitSystem};

pub mod install;
pub mod systemd;
pub mod sysv;

/// What is asked of a service (an init script's argument, a systemd job).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Start it.
    Start,
    /// Stop it.
    Stop,
    /// Ask whether it runs.
    Status,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 3] = [Action::Start, Action::Stop, Action::Status];

    /// The name: the init script's argument, and in messages.
    pub fn name(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Status => "status",
        }
    }
}

display_as_name!(Action);

/// A service's state before we touch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceStatus {
    /// Running now.
    pub active: bool,
    /// Started at boot.
    pub enabled: bool,
}

/// What the phases need from the init system (shared with a thread: finish
/// loads the units ahead while the migrations run, [`Services::load_unmasked_ahead`]).
pub trait Services: Send + Sync {
    /// Which implementation this is.
    fn init(&self) -> InitSystem;
    /// Current state of `name`.
    fn status(&self, name: &str) -> Result<ServiceStatus>;
    /// Stops every service in `names` and verifies each is down.
    fn stop(&self, names: &[String]) -> Result<()>;
    /// Starts every service in `names` and waits for each start to complete.
    fn start(&self, names: &[String]) -> Result<()>;
    /// Restarts every service in `names` (started when it was not running)
    /// and waits for each restart to complete.
    fn restart(&self, names: &[String]) -> Result<()>;
    /// Whether `name` is active now (for systemd: its unit's `ActiveState`,
    /// which stays "active" for a unit made from an init script whose daemon
    /// is gone: such a unit is still stopped before the node is armed).
    fn is_active(&self, name: &str) -> Result<bool>;
    /// Whether `name` is active and its daemon still runs: what finish
    /// proves of a started service. The default is [`Services::is_active`]
    /// (an init script's `status` answers for the daemon); systemd's tells
    /// "active (exited)" of a daemon apart from a oneshot's.
    fn is_running(&self, name: &str) -> Result<bool> {
        self.is_active(name)
    }
    /// Masks every service in `names`.
    fn mask(&self, names: &[String]) -> Result<()>;
    /// Unmasks every service in `names` (the masks under `root`, where the
    /// init system needs none), and reloads the init system's view when it
    /// still sees one masked.
    fn unmask(&self, root: &Root, names: &[String]) -> Result<()>;
    /// Has the init system load `names` unmasked now, while their masks stay
    /// on disk, so that [`Services::unmask`] after the migrations needs no
    /// reload (see systemd's). `None`: nothing to do here (no systemd).
    fn load_unmasked_ahead(&self, _root: &Root, _names: &[String]) -> Result<Option<String>> {
        Ok(None)
    }
    /// Has the init system read the masks on disk again (after a failure
    /// that followed [`Services::load_unmasked_ahead`]). Nothing to do here
    /// without systemd.
    fn load_masks_again(&self) -> Result<()> {
        Ok(())
    }
    /// How long `name` has been active without a break, where the init
    /// system says (systemd); `None` when it is not active or nobody knows
    /// (the settle watch then watches the whole period).
    fn active_for(&self, _name: &str) -> Result<Option<Duration>> {
        Ok(None)
    }
    /// Watches `names` for `settle`: returns at once, with the units not
    /// running, when one goes down, or an empty list when every one stayed
    /// running for the whole period. This default asks [`Services::is_running`]
    /// every [`SETTLE_POLL`]; systemd's is told by systemd's signals.
    fn stays_active(&self, names: &[String], settle: Duration) -> Result<Vec<String>> {
        let mut clock = crate::base::clock::RealClock::start();
        watch_active(settle, SETTLE_POLL, &mut clock, &mut || {
            let mut down = Vec::new();
            for name in names {
                if !self.is_running(name)? {
                    down.push(unit_name(name));
                }
            }
            Ok(down)
        })
    }
}

/// How often [`Services::stays_active`]'s default asks.
pub const SETTLE_POLL: Duration = Duration::from_millis(200);

/// The settle watch: `down()` (the units not active) at once and every
/// `poll`, until it names one (returned at once) or `settle` has passed
/// (an empty list). `settle` zero: one look.
pub fn watch_active(
    settle: Duration,
    poll: Duration,
    clock: &mut dyn crate::base::clock::Clock,
    down: &mut dyn FnMut() -> Result<Vec<String>>,
) -> Result<Vec<String>> {
    let start = clock.elapsed();
    loop {
        let now = down()?;
        if !now.is_empty() {
            return Ok(now);
        }
        let spent = clock.elapsed() - start;
        if spent >= settle {
            return Ok(now);
        }
        clock.sleep(poll.min(settle - spent));
    }
}

/// The mask link of a service.
pub fn mask_path(name: &str) -> PathBuf {
    Path::new(paths::SYSTEMD_ADMIN_DIR).join(unit_name(name))
}

/// Whether `name` is masked (its unit in `/etc/systemd/system` links to `/dev/null`).
pub fn is_masked(root: &Root, name: &str) -> bool {
    std::fs::read_link(root.path_nofollow(mask_path(name)))
        .is_ok_and(|t| t == Path::new("/dev/null"))
}

/// Writes masks as links, the way `systemctl mask` does (used where systemd is not running).
pub fn mask_offline(root: &Root, names: &[String]) -> Result<()> {
    names
        .iter()
        .try_for_each(|n| fsx::symlink(root, &mask_path(n), Path::new("/dev/null")))
}

/// Removes mask links (only masks; anything else at that path stays).
pub fn unmask_offline(root: &Root, names: &[String]) -> Result<()> {
    names
        .iter()
        .filter(|n| is_masked(root, n))
        .try_for_each(|n| fsx::remove(root, &mask_path(n)))
}

/// Removes the `.wants` and `.requires` links of the units, and the alias
/// links of their `[Install]` that lead to them, the way `systemctl disable`
/// does for native units (used where systemd is not running).
pub fn disable_offline(root: &Root, names: &[String]) -> Result<()> {
    for name in names {
        for alias in install::alias_links(root, name)? {
            fsx::remove(root, &alias)?;
        }
    }
    let Ok(entries) = std::fs::read_dir(root.path(paths::SYSTEMD_ADMIN_DIR)) else {
        return Ok(());
    };
    let wants: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .filter(|n| {
            let n = n.to_string_lossy();
            n.ends_with(".wants") || n.ends_with(".requires")
        })
        .map(|n| Path::new(paths::SYSTEMD_ADMIN_DIR).join(n))
        .collect();
    for dir in wants {
        for name in names {
            fsx::remove(root, &dir.join(unit_name(name)))?;
        }
    }
    Ok(())
}

/// Whether sysvinit starts `name` at boot (an `S` link in rc2.d–rc5.d) or
/// systemd has it wanted by a target.
pub fn is_enabled_on_disk(root: &Root, name: &str) -> bool {
    let sysv = (2..=5).any(|level| {
        std::fs::read_dir(root.path(format!("/etc/rc{level}.d")))
            .map(|entries| {
                entries.filter_map(|e| e.ok()).any(|e| {
                    let file = e.file_name();
                    let file = file.to_string_lossy();
                    file.starts_with('S') && file.get(3..) == Some(name)
                })
            })
            .unwrap_or(false)
    });
    let unit = unit_name(name);
    let systemd = std::fs::read_dir(root.path(paths::SYSTEMD_ADMIN_DIR))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".wants"))
                .any(|e| {
                    let link = Path::new(paths::SYSTEMD_ADMIN_DIR)
                        .join(e.file_name())
                        .join(&unit);
                    std::fs::symlink_metadata(root.path_nofollow(link)).is_ok()
                })
        })
        .unwrap_or(false);
    sysv || systemd
}

/// `--root`: nothing is running. A service counts as active when it is enabled
/// (it would run after boot); stop and start only log.
pub struct Offline {
    root: Root,
}

impl Offline {
    /// Offline services of the tree at `root`.
    pub fn new(root: Root) -> Self {
        Offline { root }
    }
}

impl Services for Offline {
    fn init(&self) -> InitSystem {
        InitSystem::Offline
    }
    fn status(&self, name: &str) -> Result<ServiceStatus> {
        let enabled = is_enabled_on_disk(&self.root, name);
        Ok(ServiceStatus {
            active: enabled,
            enabled,
        })
    }
    fn stop(&self, names: &[String]) -> Result<()> {
        names
            .iter()
            .for_each(|n| log::info!("offline (--root): not stopping '{n}'"));
        Ok(())
    }
    fn start(&self, names: &[String]) -> Result<()> {
        names
            .iter()
            .for_each(|n| log::info!("offline (--root): not starting '{n}'"));
        Ok(())
    }
    fn restart(&self, names: &[String]) -> Result<()> {
        names
            .iter()
            .for_each(|n| log::info!("offline (--root): not restarting '{n}'"));
        Ok(())
    }
    fn is_active(&self, name: &str) -> Result<bool> {
        Ok(!is_masked(&self.root, name))
    }
    fn mask(&self, names: &[String]) -> Result<()> {
        mask_offline(&self.root, names)
    }
    fn unmask(&self, _root: &Root, names: &[String]) -> Result<()> {
        unmask_offline(&self.root, names)
    }
}

/// The implementation for the node under `root`.
pub fn for_node(root: &Root) -> Result<Box<dyn Services>> {
    Ok(match InitSystem::detect(root) {
        InitSystem::Offline => Box::new(Offline::new(root.clone())),
        InitSystem::Sysv => Box::new(sysv::Sysv::new(root.clone())),
        InitSystem::Systemd => Box::new(systemd::Systemd::connect()?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_print_as_their_serialized_names() {
        crate::testing::assert_display_is_serde_name(&Action::ALL);
    }

    #[test]
    fn offline_masks_are_dev_null_links_and_admin_files_survive_unmask() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let names = vec!["gunicorn".to_string(), "archipelago".to_string()];
        mask_offline(&root, &names).unwrap();
        assert!(is_masked(&root, "gunicorn"));
        assert_eq!(
            std::fs::read_link(root.path_nofollow("/etc/systemd/system/gunicorn.service")).unwrap(),
            Path::new("/dev/null")
        );
        // An admin's own unit file at the mask path is not a mask and stays.
        std::fs::remove_file(root.path_nofollow("/etc/systemd/system/archipelago.service"))
            .unwrap();
        std::fs::write(
            root.path("/etc/systemd/system/archipelago.service"),
            "[Unit]\n",
        )
        .unwrap();
        unmask_offline(&root, &names).unwrap();
        assert!(!is_masked(&root, "gunicorn"));
        assert!(root
            .path("/etc/systemd/system/archipelago.service")
            .is_file());
    }

    /// A clock that only moves when slept: the watch's logic without waiting.
    struct FakeClock(Duration);

    impl crate::base::clock::Clock for FakeClock {
        fn elapsed(&self) -> Duration {
            self.0
        }
        fn sleep(&mut self, d: Duration) {
            self.0 += d;
        }
    }

    #[test]
    fn settle_watch_returns_at_once_when_a_unit_goes_down_and_after_the_period_otherwise() {
        let poll = Duration::from_millis(200);
        // Every look active: the whole period, one look per poll and one at the start.
        let mut clock = FakeClock(Duration::ZERO);
        let mut looks = 0;
        let down = watch_active(Duration::from_secs(2), poll, &mut clock, &mut || {
            looks += 1;
            Ok(vec![])
        })
        .unwrap();
        assert!(down.is_empty());
        assert_eq!(clock.0, Duration::from_secs(2));
        assert_eq!(looks, 11);
        // gunicorn dies at the fourth look: returned then, not at the end.
        let mut clock = FakeClock(Duration::ZERO);
        let mut looks = 0;
        let down = watch_active(Duration::from_secs(5), poll, &mut clock, &mut || {
            looks += 1;
            Ok(if looks >= 4 {
                vec!["gunicorn.service".to_string()]
            } else {
                vec![]
            })
        })
        .unwrap();
        assert_eq!(down, ["gunicorn.service"]);
        assert_eq!(clock.0, Duration::from_millis(600));
        // No settle period: one look.
        let mut clock = FakeClock(Duration::ZERO);
        let mut looks = 0;
        watch_active(Duration::ZERO, poll, &mut clock, &mut || {
            looks += 1;
            Ok(vec![])
        })
        .unwrap();
        assert_eq!((looks, clock.0), (1, Duration::ZERO));
    }

    #[test]
    fn offline_settle_watch_sees_a_unit_masked_during_the_period_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let offline = Offline::new(root.clone());
        let names = vec!["gunicorn".to_string(), "snf-dispatcher".to_string()];
        // Both "active" (not masked) for the short period.
        let t0 = std::time::Instant::now();
        assert!(offline
            .stays_active(&names, Duration::from_millis(500))
            .unwrap()
            .is_empty());
        assert!(t0.elapsed() >= Duration::from_millis(500));
        // snf-dispatcher goes down 300 ms into a 10 s period: seen at once.
        let masker = {
            let root = root.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(300));
                mask_offline(&root, &["snf-dispatcher".to_string()]).unwrap();
            })
        };
        let t0 = std::time::Instant::now();
        let down = offline
            .stays_active(&names, Duration::from_secs(10))
            .unwrap();
        masker.join().unwrap();
        assert_eq!(down, ["snf-dispatcher.service"]);
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    }

    /// What systemd's load_unmasked_ahead does to the tree: boot links off,
    /// masks off and on again; the masks stand at the end (the safe state),
    /// and the final unmask removes them.
    #[test]
    fn masks_taken_off_and_put_back_stand_and_unmask_later() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let names = vec!["gunicorn".to_string(), "snf-dispatcher".to_string()];
        mask_offline(&root, &names).unwrap();
        fsx::symlink(
            &root,
            Path::new("/etc/systemd/system/multi-user.target.wants/snf-dispatcher.service"),
            Path::new("/lib/systemd/system/snf-dispatcher.service"),
        )
        .unwrap();
        disable_offline(&root, &names).unwrap();
        unmask_offline(&root, &names).unwrap();
        assert!(!is_masked(&root, "gunicorn"));
        mask_offline(&root, &names).unwrap();
        assert!(names.iter().all(|n| is_masked(&root, n)));
        assert!(!is_enabled_on_disk(&root, "snf-dispatcher"));
        unmask_offline(&root, &names).unwrap();
        assert!(names.iter().all(|n| !is_masked(&root, n)));
    }

    #[test]
    fn enabled_from_rc_links() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        std::fs::create_dir_all(root.path("/etc/rc2.d")).unwrap();
        std::os::unix::fs::symlink("../init.d/gunicorn", root.path("/etc/rc2.d/S02gunicorn"))
            .unwrap();
        std::os::unix::fs::symlink(
            "../init.d/archipelago",
            root.path("/etc/rc2.d/K01archipelago"),
        )
        .unwrap();
        assert!(is_enabled_on_disk(&root, "gunicorn"));
        assert!(!is_enabled_on_disk(&root, "archipelago"));
        assert!(!is_enabled_on_disk(&root, "gunicorn-extra"));
    }
}
