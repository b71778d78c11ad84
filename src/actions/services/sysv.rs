//! sysvinit: services through their init scripts (by argv, no shell), state from
//! the script's LSB `status` (falling back to the pidfile), masks as links.

use anyhow::{bail, Context, Result};
use std::path::Path;

use super::{is_enabled_on_disk, mask_offline, unmask_offline, Action, ServiceStatus, Services};
use crate::base::exec;
use crate::base::fsx::Root;
use crate::base::paths;
use crate::inputs::node::InitSystem;

/// Services of a node running sysvinit.
pub struct Sysv {
    root: Root,
}

impl Sysv {
    /// Services of the live node.
    pub fn new(root: Root) -> Self {
        Sysv { root }
    }

    fn script(&self, name: &str) -> String {
        Path::new(paths::INIT_D)
            .join(name)
            .to_string_lossy()
            .into_owned()
    }

    fn pid_alive(&self, name: &str) -> bool {
        ["/run", "/var/run"].iter().any(|dir| {
            crate::base::fsx::read_text_opt(&self.root, Path::new(&format!("{dir}/{name}.pid")))
                .ok()
                .flatten()
                .and_then(|t| t.trim().parse::<i32>().ok())
                .is_some_and(|pid| {
                    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
                })
        })
    }
}

impl Services for Sysv {
    fn init(&self) -> InitSystem {
        InitSystem::Sysv
    }

    fn status(&self, name: &str) -> Result<ServiceStatus> {
        Ok(ServiceStatus {
            active: self.is_active(name)?,
            enabled: is_enabled_on_disk(&self.root, name),
        })
    }

    fn stop(&self, names: &[String]) -> Result<()> {
        for name in names {
            let script = self.script(name);
            let (status, output) = exec::run_captured(&[&script, Action::Stop.name()])?;
            log::debug!("{script} {}: {status}: {}", Action::Stop, output.trim());
            if self.is_active(name)? {
                bail!(
                    "'{script} stop' exited with {status} and '{name}' is still running: {}; stop it by hand and rerun",
                    output.trim()
                );
            }
        }
        Ok(())
    }

    fn start(&self, names: &[String]) -> Result<()> {
        for name in names {
            let script = self.script(name);
            let (status, output) = exec::run_captured(&[&script, Action::Start.name()])?;
            if !status.success() {
                bail!("'{script} start' exited with {status}: {}", output.trim());
            }
        }
        Ok(())
    }

    fn restart(&self, names: &[String]) -> Result<()> {
        for name in names {
            let script = self.script(name);
            let (status, output) = exec::run_captured(&[&script, "restart"])?;
            if !status.success() {
                bail!("'{script} restart' exited with {status}: {}", output.trim());
            }
        }
        Ok(())
    }

    fn is_active(&self, name: &str) -> Result<bool> {
        let script = self.script(name);
        if !self.root.path(&script).exists() {
            return Ok(false);
        }
        let (status, _) = exec::run_captured(&[&script, Action::Status.name()])
            .with_context(|| format!("asking '{script}' for status"))?;
        // LSB: 0 running; 1–3 not running; 4 (or anything else) unknown.
        Ok(match status.code() {
            Some(0) => true,
            Some(1..=3) => false,
            _ => self.pid_alive(name),
        })
    }

    fn mask(&self, names: &[String]) -> Result<()> {
        mask_offline(&self.root, names)
    }

    fn unmask(&self, _root: &Root, names: &[String]) -> Result<()> {
        unmask_offline(&self.root, names)
    }
}
