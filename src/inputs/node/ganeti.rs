//! What Ganeti runs on this node, read the way each of Ganeti's hypervisors
//! lists its own instances (Ganeti 2.10 as snf-ganeti ships it, and 3.0),
//! without the master: `gnt-*` commands answer only there, and a node about
//! to reboot must tell by itself.
//!
//! - `kvm`: a pid file per instance in `/var/run/ganeti/kvm-hypervisor/pid/`
//!   (written by QEMU's `-pidfile`), running while its process lives (Ganeti
//!   also matches the process's `-name`; a pid file whose process lives
//!   counts here either way: a stale file makes a false alarm, never a missed
//!   instance);
//! - `fake`: a file per instance in `/var/run/ganeti/fake-hypervisor/`
//!   (removed when the instance stops or migrates away);
//! - `chroot`: a directory per instance in `/var/run/ganeti/chroot-hypervisor/`
//!   with the instance's disk mounted on it;
//! - `lxc` (2.10): a directory per instance in `/var/run/ganeti/lxc/` with
//!   its root file system mounted on it; `lxc` (3.0) and `xen-pvm`/`xen-hvm`
//!   keep no such state: when `ssconf_hypervisor_list` enables them, their
//!   own tool is asked (`lxc-ls --running`; `xl list` or `xm list`, whichever
//!   is installed, Domain-0 left out).
//!
//! Whether the node is drained or offline is in the cluster configuration,
//! which Ganeti copies to the master candidates only
//! (`/var/lib/ganeti/config.data`); no ssconf file says it.

use std::path::Path;

use crate::base::exec;
use crate::base::fsx::{self, Root};

/// Ganeti's runtime directory.
pub const RUN_DIR: &str = "/var/run/ganeti";
/// Where Ganeti's KVM hypervisor keeps one pid file per running instance.
pub const KVM_PID_DIR: &str = "/var/run/ganeti/kvm-hypervisor/pid";
/// The cluster configuration (on the master and the master candidates).
pub const CONFIG_DATA: &str = "/var/lib/ganeti/config.data";

/// An instance running on this node, shown `NAME (HYPERVISOR)`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RunningInstance {
    /// Its name, as Ganeti knows it.
    pub name: String,
    /// The hypervisor whose runtime state shows it.
    pub hypervisor: &'static str,
}

impl std::fmt::Display for RunningInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.name, self.hypervisor)
    }
}

/// The instances running on this node, sorted. Under `--root` every runtime
/// file counts (no process or mount can be checked) and no tool is asked.
pub fn running_instances(root: &Root) -> Vec<RunningInstance> {
    let mut found = Vec::new();
    let mut add = |names: Vec<String>, hypervisor: &'static str| {
        found.extend(
            names
                .into_iter()
                .map(|name| RunningInstance { name, hypervisor }),
        );
    };
    let live = root.is_live();
    add(
        entries(root, KVM_PID_DIR, |path| {
            !live
                || fsx::read_text_opt(root, path)
                    .ok()
                    .flatten()
                    .and_then(|t| t.trim().parse::<i32>().ok())
                    .is_some_and(|pid| {
                        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
                    })
        }),
        "kvm",
    );
    add(
        entries(root, &format!("{RUN_DIR}/fake-hypervisor"), |_| true),
        "fake",
    );
    // A directory with a file system mounted on it (any directory under --root).
    let mounts = mount_points();
    let mounted_dir = |path: &Path| {
        root.path(path).is_dir() && (!live || mounts.iter().any(|m| Path::new(m) == path))
    };
    add(
        entries(root, &format!("{RUN_DIR}/chroot-hypervisor"), mounted_dir),
        "chroot",
    );
    // 3.0 keeps its own state in lxc/instance and lxc/cgroup.
    add(
        entries(root, &format!("{RUN_DIR}/lxc"), |path| {
            !path.ends_with("instance") && !path.ends_with("cgroup") && mounted_dir(path)
        }),
        "lxc",
    );
    if live {
        let enabled = hypervisors(root);
        if enabled.iter().any(|h| h == "lxc") {
            if let Some(names) = ask(root, &["lxc-ls", "--running"]) {
                add(names.split_whitespace().map(String::from).collect(), "lxc");
            }
        }
        for hv in ["xen-pvm", "xen-hvm"] {
            if enabled.iter().any(|h| h == hv) {
                let listed = ask(root, &["xl", "list"]).or_else(|| ask(root, &["xm", "list"]));
                if let Some(listed) = listed {
                    add(xen_domains(&listed), "xen");
                }
                break;
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

/// The names in `dir` whose path (on the node) passes `running`.
fn entries(root: &Root, dir: &str, running: impl Fn(&Path) -> bool) -> Vec<String> {
    let Ok(list) = std::fs::read_dir(root.path(dir)) else {
        return Vec::new();
    };
    list.filter_map(|e| e.ok())
        .filter(|e| running(&Path::new(dir).join(e.file_name())))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// The mount points of this system (`/proc/self/mountinfo`, field 5).
fn mount_points() -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| m.replace("\\040", " "))
        .collect()
}

/// The hypervisors `ssconf_hypervisor_list` enables.
fn hypervisors(root: &Root) -> Vec<String> {
    fsx::read_text_opt(
        root,
        format!("{}/ssconf_hypervisor_list", super::SSCONF_DIR),
    )
    .ok()
    .flatten()
    .unwrap_or_default()
    .lines()
    .map(|l| l.trim().to_string())
    .filter(|l| !l.is_empty())
    .collect()
}

/// The stdout of `argv` when the tool is installed and succeeds.
fn ask(root: &Root, argv: &[&str]) -> Option<String> {
    let program = exec::find_inside(root, argv[0])?;
    let program = program.to_string_lossy().into_owned();
    let mut full = vec![program.as_str()];
    full.extend(&argv[1..]);
    match exec::run_output(&full, &[]) {
        Ok(out) if out.status.success() => Some(String::from_utf8_lossy(&out.stdout).into_owned()),
        Ok(out) => {
            log::warn!(
                "'{}' failed ({}): {}",
                argv.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
            None
        }
        Err(e) => {
            log::warn!("'{}': {e:#}", argv.join(" "));
            None
        }
    }
}

/// The domains of `xl list` / `xm list` (`Name ID Mem VCPUs State Time`,
/// a header line first), Domain-0 left out.
pub fn xen_domains(listed: &str) -> Vec<String> {
    listed
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "Domain-0")
        .map(String::from)
        .collect()
}

/// Whether the cluster keeps new instances off this node.
#[derive(Debug, Clone, PartialEq)]
pub enum Drain {
    /// Drained: no new instance is placed here.
    Drained,
    /// Offline.
    Offline,
    /// Neither: the allocator may place new instances here.
    Open,
    /// Not known on this node (why).
    Unknown(String),
}

/// Whether the node named `me` (a short name matches its FQDN) is drained or
/// offline, from the cluster configuration this node has.
pub fn drain(root: &Root, me: &str) -> Drain {
    let text = match fsx::read_text_opt(root, CONFIG_DATA) {
        Ok(Some(text)) => text,
        Ok(None) => {
            return Drain::Unknown(format!(
                "no {CONFIG_DATA} (Ganeti keeps it on the master candidates only)"
            ))
        }
        Err(e) => return Drain::Unknown(format!("{e:#}")),
    };
    drain_in(&text, me)
}

/// [`drain`] from the text of `config.data`.
pub fn drain_in(config: &str, me: &str) -> Drain {
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(config) else {
        return Drain::Unknown(format!("{CONFIG_DATA} is not JSON"));
    };
    let Some(nodes) = doc.get("nodes").and_then(|n| n.as_object()) else {
        return Drain::Unknown(format!("{CONFIG_DATA} has no 'nodes'"));
    };
    let short = me.split('.').next().unwrap_or(me);
    let node = nodes.values().find(|n| {
        n.get("name")
            .and_then(|v| v.as_str())
            .is_some_and(|name| name == me || name.split('.').next() == Some(short))
    });
    let Some(node) = node else {
        return Drain::Unknown(format!("{CONFIG_DATA} names no node '{me}'"));
    };
    let flag = |key: &str| node.get(key).and_then(|v| v.as_bool()).unwrap_or(false);
    if flag("offline") {
        Drain::Offline
    } else if flag("drained") {
        Drain::Drained
    } else {
        Drain::Open
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xen_lists_leave_out_the_header_and_domain_0() {
        let xl = "Name                                        ID   Mem VCPUs\tState\tTime(s)\n\
                  Domain-0                                     0  1024     2     r-----   1234.5\n\
                  vm1.example.org                              3   512     1     -b----     12.0\n";
        assert_eq!(xen_domains(xl), vec!["vm1.example.org".to_string()]);
        assert_eq!(xen_domains(""), Vec::<String>::new());
    }

    #[test]
    fn drain_is_read_from_the_cluster_configuration_by_short_or_full_name() {
        let config = r#"{"nodes": {
            "u1": {"name": "node1.example.org", "drained": true, "offline": false},
            "u2": {"name": "node2.example.org", "drained": false, "offline": true},
            "u3": {"name": "node3.example.org", "drained": false, "offline": false}}}"#;
        assert_eq!(drain_in(config, "node1"), Drain::Drained);
        assert_eq!(drain_in(config, "node1.example.org"), Drain::Drained);
        assert_eq!(drain_in(config, "node2"), Drain::Offline);
        assert_eq!(drain_in(config, "node3"), Drain::Open);
        assert!(
            matches!(drain_in(config, "node4"), Drain::Unknown(w) if w.contains("names no node 'node4'"))
        );
        assert!(matches!(drain_in("{", "node1"), Drain::Unknown(_)));
    }
}
