//! Every absolute path the tool knows, in one place.
//!
//! Paths here are absolute on the node; they are always resolved through
//! `fsx::Root` so that `--root DIR` works for all of them.

/// The configuration file (a conffile of the package).
pub const CONFIG_FILE: &str = "/etc/synnefo-upgrade/upgrade.toml";
/// Drop-ins read after [`CONFIG_FILE`], in name order.
pub const CONFIG_DROPIN_DIR: &str = "/etc/synnefo-upgrade/upgrade.d";
/// State directory (mode 0700).
pub const STATE_DIR: &str = "/var/lib/synnefo-upgrade";
/// The state file.
pub const STATE_FILE: &str = "/var/lib/synnefo-upgrade/state.json";
/// The last `check`'s report (the `check --json` document), for `status --json`.
pub const CHECK_REPORT: &str = "/var/lib/synnefo-upgrade/check.json";
/// Held by `dist-upgrade`'s detached worker while it runs (not the run lock:
/// the package's own postinst may run `prepare` inside the transaction).
pub const DIST_UPGRADE_LOCK: &str = "/var/lib/synnefo-upgrade/dist-upgrade.lock";
/// The last `dist-upgrade`'s record: when, which process, how it ended.
pub const DIST_UPGRADE_RECORD: &str = "/var/lib/synnefo-upgrade/dist-upgrade.json";
/// `dist-upgrade`'s output (apt-get's, dpkg's, the maintainer scripts'), appended.
pub const DIST_UPGRADE_LOG: &str = "/var/log/synnefo-upgrade-dist-upgrade.log";
/// The lock held for the duration of a run.
pub const LOCK_FILE: &str = "/var/lib/synnefo-upgrade/lock";
/// The marker the finish unit's `ConditionPathExists=` checks.
pub const ARMED_MARKER: &str = "/var/lib/synnefo-upgrade/armed";
/// Where backups of every file we change are kept, mirroring their paths.
pub const BACKUP_DIR: &str = "/var/lib/synnefo-upgrade/backups";
/// Ledger of the actions policy-rc.d denied.
pub const DENIED_LEDGER: &str = "/var/lib/synnefo-upgrade/denied-actions.log";
/// Debian's policy-rc.d hook.
pub const POLICY_RCD: &str = "/usr/sbin/policy-rc.d";
/// Our binary, as installed by the package.
pub const BINARY: &str = "/usr/sbin/synnefo-upgrade";
/// Log file used when there is no journald (wheezy).
pub const LOG_FILE: &str = "/var/log/synnefo-upgrade.log";
/// The finish unit as shipped.
pub const FINISH_UNIT_FILE: &str = "/lib/systemd/system/synnefo-upgrade-finish.service";
/// The link that enables the finish unit (what `systemctl enable` writes).
pub const FINISH_UNIT_WANTS: &str =
    "/etc/systemd/system/multi-user.target.wants/synnefo-upgrade-finish.service";
/// Where systemd masks live (`NAME.service -> /dev/null`).
pub const SYSTEMD_ADMIN_DIR: &str = "/etc/systemd/system";
/// sysvinit scripts.
pub const INIT_D: &str = "/etc/init.d";
/// systemd's runtime directory: present iff systemd is PID 1.
pub const RUN_SYSTEMD_SYSTEM: &str = "/run/systemd/system";
/// journald's native socket.
pub const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";
/// OS identification.
pub const OS_RELEASE: &str = "/etc/os-release";
/// Debian's version file (wheezy's os-release has no codename field).
pub const DEBIAN_VERSION: &str = "/etc/debian_version";
/// The main APT sources file.
pub const APT_SOURCES_LIST: &str = "/etc/apt/sources.list";
/// APT sources drop-in directory.
pub const APT_SOURCES_DIR: &str = "/etc/apt/sources.list.d";
/// APT's downloaded indexes (`*_Release`, `*_Packages`…), named after their URIs.
pub const APT_LISTS_DIR: &str = "/var/lib/apt/lists";
