//! The command line (docs/design.md §3.1, a contract: tests and tooling rely on it).
//!
//! Parsing only; `main.rs` dispatches and [`crate::base::error`] maps exit codes.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// The exit codes of every command: the one table `--help`, the man pages'
/// EXIT STATUS and docs/design.md show (tests/man_page.rs keeps them equal).
/// `policy-rc.d` answers invoke-rc.d with its own ([`POLICY_RCD_EXIT_CODES`]).
pub const EXIT_CODES: &[(i32, &str)] = &[
    (0, "success"),
    (1, "a step failed (the report and the journal say which, and what to do)"),
    (
        2,
        "bad input or usage (configuration, state or file that cannot be parsed); nothing changed",
    ),
    (
        3,
        "refused in the node's present state (a preflight inhibitor; abort once the dist-upgrade \
         started; convert before it, without --force); nothing changed",
    ),
    (
        75,
        "another run holds the lock (the message names it); nothing changed: run again when it has \
         ended; status --wait: the upgrade neither ended nor failed within the time given",
    ),
];

/// The exit codes of `policy-rc.d`, as Debian's policy-rc.d interface defines them.
pub const POLICY_RCD_EXIT_CODES: &[(i32, &str)] = &[
    (0, "the action is allowed"),
    (
        101,
        "the action is forbidden: a start-like action of a managed service while the upgrade is armed",
    ),
    (100, "unknown initscript id (--list of a service we do not know)"),
    (103, "syntax error in the arguments"),
];

/// `--help`'s epilogue: [`EXIT_CODES`].
pub fn exit_codes_help() -> String {
    let mut text = String::from("Exit codes:");
    for (code, meaning) in EXIT_CODES {
        text.push_str(&format!("\n {code:>3}  {meaning}"));
    }
    text
}

/// What a command's man page says beyond its options (tests/man_page.rs
/// renders it into docs/man/).
pub struct Manual {
    /// EXIT STATUS.
    pub exit_codes: &'static [(i32, &'static str)],
    /// ENVIRONMENT: variable and meaning (none: no section).
    pub environment: &'static [(&'static str, &'static str)],
    /// FILES: path and meaning.
    pub files: &'static [(&'static str, &'static str)],
    /// EXAMPLES: what it does, and the command line.
    pub examples: &'static [(&'static str, &'static str)],
    /// SEE ALSO: `page(section)`.
    pub see_also: &'static [&'static str],
}

const ENV_LOCK_WAIT: (&str, &str) = (
    "SYNNEFO_UPGRADE_LOCK_WAIT",
    "seconds to wait for the lock held by another run (default 30; 0: do not wait, exit 75 at once)",
);
const FILE_CONFIG: (&str, &str) = (
    "/etc/synnefo-upgrade/upgrade.toml, /etc/synnefo-upgrade/upgrade.d/*.toml",
    "the configuration: upgrade.toml(5)",
);
const FILE_STATE: (&str, &str) = (
    "/var/lib/synnefo-upgrade/state.json",
    "the upgrade's state: the phase, every step's outcome, the managed services",
);
const FILE_ARMED: (&str, &str) = (
    "/var/lib/synnefo-upgrade/armed",
    "present while the node is armed (policy-rc.d denies the managed services' starts)",
);
const FILE_LOCK: (&str, &str) = (
    "/var/lib/synnefo-upgrade/lock",
    "held by the run in progress; its holder is written in it",
);
const FILE_BACKUPS: (&str, &str) = (
    "/var/lib/synnefo-upgrade/backups/",
    "the original of every file prepare, finish or convert changed",
);
const FILE_DUMPS: (&str, &str) = (
    "/var/backups/synnefo-upgrade/",
    "finish's database dumps and configuration tarball ([backups] dir)",
);
const FILE_LEDGER: (&str, &str) = (
    "/var/lib/synnefo-upgrade/denied-actions.log",
    "every start policy-rc.d denied, with its reason",
);
const FILE_LOG: (&str, &str) = (
    "/var/log/synnefo-upgrade.log",
    "the steps' log where the journal is not running (before the first boot under systemd)",
);
const FILE_UNIT: (&str, &str) = (
    "/lib/systemd/system/synnefo-upgrade-finish.service",
    "the unit that runs finish on the first boot under systemd",
);
const FILE_POLICY: (&str, &str) = (
    "/usr/sbin/policy-rc.d",
    "installed by prepare while armed (a link to this program); the one it replaced is kept and consulted",
);
const FILE_CHECK: (&str, &str) = (
    "/var/lib/synnefo-upgrade/check.json",
    "the last check's report (the check --json document), shown by status --json as last_check",
);
const SEE_MAIN: &str = "synnefo-upgrade(8)";
const SEE_CONFIG: &str = "upgrade.toml(5)";

/// The man page of `command` (`None`: synnefo-upgrade(8) itself).
pub fn manual(command: Option<&str>) -> Manual {
    let page = |files, examples, see_also| Manual {
        exit_codes: EXIT_CODES,
        environment: &[ENV_LOCK_WAIT],
        files,
        examples,
        see_also,
    };
    match command {
        None => Manual {
            environment: &[
                ENV_LOCK_WAIT,
                (
                    "SYNNEFO_UPGRADE_NO_ARM",
                    "1: the package's installation does not arm the node (its postinst skips prepare)",
                ),
            ],
            ..page(
            &[FILE_CONFIG, FILE_STATE, FILE_ARMED, FILE_LOCK, FILE_BACKUPS, FILE_DUMPS, FILE_LEDGER, FILE_LOG, FILE_UNIT],
            &[
                (
                    "Look first: install without arming, then the preflight report",
                    "SYNNEFO_UPGRADE_NO_ARM=1 apt-get install synnefo-upgrade-0.19\nsynnefo-upgrade check",
                ),
                (
                    "Arm (the services stop), upgrade and reboot; the first boot under systemd finishes",
                    "synnefo-upgrade prepare --download\nsynnefo-upgrade dist-upgrade --reboot",
                ),
                ("Follow it", "synnefo-upgrade status\njournalctl -u synnefo-upgrade-finish"),
            ],
            &[
                "synnefo-upgrade-check(8)",
                "synnefo-upgrade-prepare(8)",
                "synnefo-upgrade-finish(8)",
                "synnefo-upgrade-status(8)",
                "synnefo-upgrade-abort(8)",
                SEE_CONFIG,
                "journalctl(1)",
            ],
        )
        },
        Some("check") => page(
            &[FILE_CONFIG, FILE_STATE, FILE_CHECK],
            &[
                ("The preflight report of this node", "synnefo-upgrade check"),
                (
                    "The same for a playbook or a script (any inhibitor: exit 3)",
                    "synnefo-upgrade check --json",
                ),
            ],
            &[SEE_MAIN, "synnefo-upgrade-prepare(8)", SEE_CONFIG],
        ),
        Some("prepare") => page(
            &[FILE_CONFIG, FILE_STATE, FILE_ARMED, FILE_BACKUPS, FILE_POLICY, FILE_UNIT],
            &[
                (
                    "On every node before any is armed: download the packages, change nothing else",
                    "synnefo-upgrade prepare --download-only",
                ),
                ("Arm this node (its services stop)", "synnefo-upgrade prepare --download"),
                ("The steps that would run", "synnefo-upgrade prepare --dry-run"),
            ],
            &[SEE_MAIN, "synnefo-upgrade-abort(8)", "synnefo-upgrade-finish(8)", SEE_CONFIG],
        ),
        Some("finish") => page(
            &[FILE_CONFIG, FILE_STATE, FILE_ARMED, FILE_BACKUPS, FILE_DUMPS, FILE_UNIT],
            &[
                (
                    "Resume at the failed step, once its cause is fixed",
                    "systemctl restart synnefo-upgrade-finish",
                ),
                ("The same by hand", "synnefo-upgrade finish"),
                ("The steps that would run", "synnefo-upgrade finish --dry-run"),
            ],
            &[SEE_MAIN, "synnefo-upgrade-status(8)", SEE_CONFIG, "systemd.service(5)"],
        ),
        Some("abort") => page(
            &[FILE_STATE, FILE_ARMED, FILE_BACKUPS, FILE_POLICY],
            &[("Take back prepare before the dist-upgrade", "synnefo-upgrade abort")],
            &[SEE_MAIN, "synnefo-upgrade-prepare(8)"],
        ),
        Some("dist-upgrade") => page(
            &[
                FILE_CONFIG,
                FILE_STATE,
                (
                    "/var/lib/synnefo-upgrade/dist-upgrade.json",
                    "the last dist-upgrade: its process, start, end, outcome and what to do",
                ),
                (
                    "/var/lib/synnefo-upgrade/dist-upgrade.lock",
                    "held by the running dist-upgrade (a second one follows it)",
                ),
                (
                    "/var/log/synnefo-upgrade-dist-upgrade.log",
                    "the transaction's output (apt-get, dpkg, the maintainer scripts), appended",
                ),
            ],
            &[
                (
                    "After arming: the whole transaction, then the reboot",
                    "synnefo-upgrade dist-upgrade --reboot",
                ),
                (
                    "The connection dropped: follow the one that runs (or see how it ended)",
                    "synnefo-upgrade dist-upgrade\nsynnefo-upgrade status",
                ),
            ],
            &[SEE_MAIN, "synnefo-upgrade-prepare(8)", SEE_CONFIG, "apt-get(8)"],
        ),
        Some("guard") => page(
            &[
                FILE_STATE,
                FILE_ARMED,
                (
                    "/etc/apt/apt.conf.d/50synnefo-upgrade",
                    "APT's options while armed: conffiles kept, and the DPkg::Post-Invoke hook that runs guard",
                ),
            ],
            &[("What APT's DPkg::Post-Invoke hook runs", "synnefo-upgrade guard")],
            &[SEE_MAIN, "synnefo-upgrade-policy-rc.d(8)", "apt.conf(5)"],
        ),
        Some("status") => page(
            &[FILE_STATE, FILE_LOCK, FILE_LOG],
            &[
                ("Where the upgrade is", "synnefo-upgrade status"),
                (
                    "Wait up to an hour for the end (0: done; 1: a step failed; 75: neither yet)",
                    "synnefo-upgrade status --json --wait 3600",
                ),
            ],
            &[SEE_MAIN, "journalctl(1)"],
        ),
        Some("convert") => page(
            &[
                FILE_CONFIG,
                FILE_BACKUPS,
                ("/etc/synnefo/", "the Synnefo settings it converts"),
                ("/etc/gunicorn.d/", "the gunicorn configuration it converts"),
                ("/etc/apache2/", "the Apache sites and configuration it converts"),
            ],
            &[("The diffs of the 0.19 configuration", "synnefo-upgrade convert --dry-run")],
            &[SEE_MAIN, "synnefo-upgrade-finish(8)"],
        ),
        Some("validate-changelog") => page(
            &[(
                "/etc/synnefo-upgrade/upgrade.toml",
                "[fix_ip_history] changelog: the file check and prepare validate this way",
            )],
            &[(
                "Check the VM owner changelog before finish gives it to fix_ip_history",
                "synnefo-upgrade validate-changelog /root/vm-owner-changes.log",
            )],
            &[SEE_MAIN, SEE_CONFIG],
        ),
        Some("policy-rc.d") => Manual {
            exit_codes: POLICY_RCD_EXIT_CODES,
            environment: &[],
            files: &[FILE_ARMED, FILE_STATE, FILE_LEDGER, FILE_POLICY],
            examples: &[(
                "What invoke-rc.d asks while the node is armed (exit 101)",
                "/usr/sbin/policy-rc.d gunicorn start",
            )],
            see_also: &[SEE_MAIN, "invoke-rc.d(8)"],
        },
        Some(_) => page(&[], &[], &[SEE_MAIN]),
    }
}

/// Upgrade a Synnefo 0.18.1 node on Debian wheezy to Synnefo 0.19 on jessie.
///
/// Installing the synnefo-upgrade-0.19 package runs `prepare` (arming); after
/// `dist-upgrade` (apt-get dist-upgrade, unattended) and a reboot,
/// synnefo-upgrade-finish.service runs
/// `finish` on the first boot under systemd. Every step is logged to the journal
/// (`journalctl -u synnefo-upgrade-finish`) and recorded for `status`.
#[derive(Debug, Parser)]
#[command(name = "synnefo-upgrade", version, after_help = exit_codes_help())]
pub struct Cli {
    /// Resolve every path under DIR (like dpkg --root), symbolic links too
    /// (an absolute link target is a path under DIR, never one of the host);
    /// services are handled offline (mask links, recorded state) and nothing
    /// running is touched.
    #[arg(long, global = true, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// Read FILE instead of /etc/synnefo-upgrade/upgrade.toml (drop-ins in
    /// upgrade.d/ still apply). FILE is a path on this host, relative to the
    /// working directory, not under --root DIR (the drop-ins are); it must
    /// exist and be a regular file (exit 2 otherwise).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// More detail (repeat for even more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Preflight report: node facts, findings, inhibitors, the plan, the
    /// downtime forecast. Changes nothing on the node; keeps the report in
    /// /var/lib/synnefo-upgrade/check.json (status --json shows it as
    /// last_check; when it cannot be kept, a warning says so).
    Check {
        /// Print the report as JSON (schema in docs/json.md).
        #[arg(long)]
        json: bool,
        /// Do not keep this report (a look that must leave the node as it
        /// was: Ansible's --check, the last look before a reboot); the last
        /// kept one stays.
        #[arg(long)]
        no_save: bool,
    },
    /// Arm the upgrade: stop and mask the Synnefo services, install policy-rc.d,
    /// switch APT to the new release, enable the finish unit.
    Prepare {
        /// List the steps that would run; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Also run 'apt-get update' and 'apt-get dist-upgrade --download-only'
        /// (after the sources switch, before the services stop), so that the
        /// downtime does not include the downloads. Not from the package's
        /// postinst (APT holds its locks then): install with
        /// SYNNEFO_UPGRADE_NO_ARM=1, then run 'synnefo-upgrade prepare --download'.
        #[arg(long, conflicts_with = "dry_run")]
        download: bool,
        /// Only download, arm nothing: 'apt-get update' of the sources as prepare
        /// will rewrite them into a scratch APT state (as 'check' simulates), then
        /// 'apt-get dist-upgrade --download-only' into /var/cache/apt/archives.
        /// The node's sources, services and upgrade state are left as they are;
        /// after the real prepare, the dist-upgrade finds every package already
        /// there. Run it on every node before the first node is armed, so that
        /// no download falls in the downtime. A source or package that fails to
        /// download is an error naming its URL (exit 1).
        #[arg(long, conflicts_with_all = ["dry_run", "download"])]
        download_only: bool,
    },
    /// Complete the upgrade on the first boot under systemd (the unit runs this);
    /// resumes at the failed step when run again.
    Finish {
        /// List the steps that would run; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// The operator's step on an armed node: apt-get update and apt-get
    /// dist-upgrade, unattended, detached from this session.
    ///
    /// Runs in a worker of its own session (a lost ssh connection does not
    /// stop it) and follows its output here; run again, it follows the one
    /// that runs. The transaction: the debconf answers of [dist_upgrade]
    /// debconf, apt-get update, apt-get dist-upgrade with the conffiles kept
    /// (dpkg's --force-confdef --force-confold, UCF_FORCE_CONFFOLD=1,
    /// DEBIAN_FRONTEND=noninteractive), systemd-sysv installed where the
    /// release kept sysvinit ([dist_upgrade] switch_to_systemd), then dpkg
    /// --audit, which must be empty. Its output goes to
    /// /var/log/synnefo-upgrade-dist-upgrade.log and the journal; status shows
    /// it. Refused (exit 3) on a node that is not armed. Then reboot.
    DistUpgrade {
        /// Reboot once the transaction ended cleanly and dpkg --audit is empty.
        #[arg(long)]
        reboot: bool,
        /// The detached worker itself (started by dist-upgrade).
        #[arg(long, hide = true)]
        worker: bool,
        /// The worker's run id (given by the dist-upgrade that starts it).
        #[arg(long, hide = true, default_value = "")]
        run_id: String,
    },
    /// Before the dist-upgrade only: take back everything prepare changed (files
    /// byte for byte, masks, policy-rc.d, the finish unit) and start the
    /// services that ran. Refused, changing nothing, once dpkg changed a package.
    ///
    /// A conversion made before it (convert --force) is taken back too: renames
    /// undone, the files and links it created removed, so each Apache site is
    /// enabled once, as before. A file edited since prepare or convert is
    /// restored all the same, and the edited version is kept beside it as
    /// FILE.synnefo-upgrade-kept-YYYYmmddTHHMMSS~ (UTC, same mode and owner),
    /// named in the output and the journal.
    Abort,
    /// Stop managed services that came up during a dpkg run (the APT
    /// DPkg::Post-Invoke hook runs this while the upgrade is armed).
    ///
    /// Like the phases, it waits for the lock of a run in progress.
    Guard,
    /// Show the state of every step, the managed services and masks, and where the logs are.
    Status {
        /// Print the status as JSON (schema in docs/json.md).
        #[arg(long)]
        json: bool,
        /// Wait up to SECONDS for the upgrade to end, then print the status:
        /// returns as soon as the phase is `done` (exit 0) or a step failed
        /// (exit 1); exit 75 when neither happened within SECONDS. Watches the
        /// state file (inotify), so the end is seen within a second, by one
        /// command instead of a poll loop.
        #[arg(long, value_name = "SECONDS")]
        wait: Option<u64>,
    },
    /// Config conversion alone: Synnefo settings, gunicorn and web server
    /// files to their 0.19 shape, all or nothing.
    ///
    /// Refused, changing nothing (exit 3), on a node not yet upgraded (not on
    /// jessie, or Synnefo not 0.19): Synnefo 0.18.1 and Apache 2.2 do not read
    /// that shape (the message says what this conversion would break), and
    /// finish converts at the first boot under jessie. --dry-run is never
    /// refused; --force converts all the same.
    Convert {
        /// Print unified diffs of what would change; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Convert a node not yet upgraded all the same (Synnefo 0.18.1 has no
        /// FilterAllocator; Apache 2.2 reads conf.d/, not conf-available/). A
        /// later prepare and abort take the conversion back.
        #[arg(long)]
        force: bool,
    },
    /// Check a VM owner changelog for fix_ip_history and report every bad line
    /// (exit 2); a valid file prints a summary. Changes nothing.
    ValidateChangelog {
        /// The changelog: `<vmid>|<from_uuid>|<to_uuid>|<%Y-%m-%d %H:%M:%S.%f>` per line.
        file: PathBuf,
    },
    /// The policy-rc.d decision: exit 101 for start-like actions of managed
    /// services while armed, 0 otherwise. Also runs when invoked as `policy-rc.d`.
    ///
    /// It fails closed: while armed (or being armed), a state file it cannot
    /// read (missing beside the armed marker, empty, truncated, hand-edited,
    /// of a newer schema, not a regular file) means 101 for every service that
    /// may be managed (gunicorn, snf-dispatcher, snf-ganeti-eventd,
    /// archipelago, and those the armed marker or the ledger name), said on
    /// stderr and recorded in /var/lib/synnefo-upgrade/denied-actions.log with
    /// the reason `state-unreadable`. Other services are decided by the
    /// policy-rc.d that was there before (a link followed from /usr/sbin, as
    /// it was), else allowed.
    #[command(name = "policy-rc.d")]
    PolicyRcd {
        /// `[--quiet] ID ACTIONS [RUNLEVEL]` or `--list ID`.
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "ARGS"
        )]
        args: Vec<String>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_options_anywhere_and_policy_args_verbatim() {
        let cli = Cli::parse_from([
            "synnefo-upgrade",
            "policy-rc.d",
            "--quiet",
            "gunicorn",
            "(start)",
            "2",
        ]);
        match cli.command {
            Command::PolicyRcd { args } => {
                assert_eq!(args, ["--quiet", "gunicorn", "(start)", "2"])
            }
            other => panic!("{other:?}"),
        }
        let cli = Cli::parse_from([
            "synnefo-upgrade",
            "prepare",
            "--root",
            "/tmp/x",
            "-vv",
            "--dry-run",
        ]);
        assert_eq!(cli.root, PathBuf::from("/tmp/x"));
        assert_eq!(cli.verbose, 2);
        assert!(matches!(
            cli.command,
            Command::Prepare {
                dry_run: true,
                download: false,
                download_only: false
            }
        ));
        let cli = Cli::parse_from(["synnefo-upgrade", "prepare", "--download-only"]);
        assert!(matches!(
            cli.command,
            Command::Prepare {
                download_only: true,
                ..
            }
        ));
        for other in ["--download", "--dry-run"] {
            let refused =
                Cli::try_parse_from(["synnefo-upgrade", "prepare", "--download-only", other]);
            assert!(
                refused.is_err(),
                "--download-only with {other} was accepted"
            );
        }
        let cli = Cli::parse_from(["synnefo-upgrade", "convert", "--dry-run"]);
        assert!(matches!(
            cli.command,
            Command::Convert {
                dry_run: true,
                force: false
            }
        ));
        let cli = Cli::parse_from(["synnefo-upgrade", "convert", "--force"]);
        assert!(matches!(
            cli.command,
            Command::Convert {
                dry_run: false,
                force: true
            }
        ));
    }
}
