//! The commands this run is waiting for now (a step's `snf-manage migrate`,
//! `pg_dump`, …), so that a signal that stops the run stops them too: under
//! systemd the whole unit is signalled anyway, but a run stopped by hand
//! (`kill PID`) must not leave a migration running that nobody records.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::sync::Mutex;

static RUNNING: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// A command on the list while this lives (from its spawn to its wait).
#[must_use = "the command leaves the list when this is dropped"]
pub struct Tracked(u32);

/// Puts the command with process id `pid` on the list.
pub fn track(pid: u32) -> Tracked {
    RUNNING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .push(pid);
    Tracked(pid)
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let mut running = RUNNING
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(at) = running.iter().position(|&p| p == self.0) {
            running.swap_remove(at);
        }
    }
}

/// Sends `signal` to every command on the list; the process ids it reached.
pub fn signal_all(signal: Signal) -> Vec<u32> {
    let running = RUNNING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    running
        .iter()
        .copied()
        .filter(|&pid| i32::try_from(pid).is_ok_and(|raw| kill(Pid::from_raw(raw), signal).is_ok()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tracked_command_gets_the_signal_and_leaves_the_list_when_waited_for() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let tracked = track(child.id());
        assert_eq!(signal_all(Signal::SIGTERM), vec![child.id()]);
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(Signal::SIGTERM as i32));
        drop(tracked);
        assert!(!RUNNING.lock().unwrap().contains(&child.id()));
    }
}
