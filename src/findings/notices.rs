//! Reported, not changed: traps of the wheezy → jessie move that are the
//! operator's to resolve, each a notice with the commands that resolve it.
//! Two PostgreSQL clusters side by side (jessie's 9.4 beside wheezy's 9.1),
//! a remote `guest` in `AMQP_HOSTS` (RabbitMQ ≥ 3.3 lets `guest` in from
//! localhost only), gunicorn reached through a proxy on another host
//! (`forwarded_allow_ips`), and another application's gunicorn config in
//! Django mode (see [`crate::convert::gunicorn::django_mode_findings`]).
//!
//! Read-only. The parsers and the findings are pure; [`findings`] reads the
//! node and hands them what it read.

use std::cmp::Ordering;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::base::dpkg::{self, Package};
use crate::base::exec::shell_word;
use crate::base::finding::{Finding, Severity};
use crate::base::fsx::Root;

/// Where postgresql-common keeps one directory per cluster: `VERSION/NAME/`.
pub const POSTGRESQL_DIR: &str = "/etc/postgresql";
/// The PostgreSQL version jessie brings.
pub const JESSIE_POSTGRESQL: &str = "9.4";
/// The first postgresql-common whose new server packages create their
/// `main` cluster only where no cluster exists yet (Debian's changelog, 269:
/// "Create "main" cluster only when no other clusters exist yet"); trixie
/// has 278, jessie 165, which made an empty `main` of each new version.
pub const POSTGRESQL_COMMON_MAIN_ONLY_ALONE: &str = "269";

/// The server version a package name carries: `postgresql-17` -> `17`,
/// `postgresql-9.4` -> `9.4`; `None` for clients, extensions and the rest
/// (`postgresql-client-17`, `postgresql-17-postgis-3`, `postgresql-common`).
fn server_version(package: &str) -> Option<&str> {
    package.strip_prefix("postgresql-").filter(|v| {
        v.starts_with(|c: char| c.is_ascii_digit())
            && v.chars().all(|c| c.is_ascii_digit() || c == '.')
    })
}

/// What the dist-upgrade brings of PostgreSQL: the newest server version it
/// installs, and whether that package creates an empty `main` cluster beside
/// the existing ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgTarget {
    /// The server version (`9.4`, `17`).
    pub version: String,
    /// An empty `VERSION/main` appears (postgresql-common before 269).
    pub creates_main: bool,
}

impl PgTarget {
    /// Jessie's: what is told where the dist-upgrade was not simulated.
    pub fn jessie() -> PgTarget {
        PgTarget {
            version: JESSIE_POSTGRESQL.into(),
            creates_main: true,
        }
    }

    /// From the simulated transaction: the newest `postgresql-VERSION` it
    /// installs or upgrades, and the postgresql-common it leaves (its new
    /// version, else the installed one); `None` when it brings no server.
    pub fn from_transaction(
        actions: &[crate::base::forecast::PackageAction],
        packages: &[Package],
    ) -> Option<PgTarget> {
        let version = actions
            .iter()
            .filter(|a| a.action != "remove")
            .filter_map(|a| server_version(&a.package))
            .max_by(|a, b| dpkg::compare_versions(a, b))?
            .to_string();
        let common = actions
            .iter()
            .find(|a| a.package == "postgresql-common" && a.action != "remove")
            .and_then(|a| a.to.clone())
            .or_else(|| {
                packages
                    .iter()
                    .find(|p| p.is_present() && p.name == "postgresql-common")
                    .map(|p| p.version.clone())
            });
        let creates_main = common.is_none_or(|v| {
            dpkg::compare_versions(&v, POSTGRESQL_COMMON_MAIN_ONLY_ALONE) == Ordering::Less
        });
        Some(PgTarget {
            version,
            creates_main,
        })
    }
}

/// The clusters (version, name) as `pg_lsclusters` lists them, sorted: its
/// own answer where postgresql-common is installed on the node (it knows the
/// clusters' configuration root), else the `VERSION/NAME/postgresql.conf`
/// directories under [`POSTGRESQL_DIR`] it reads. Read-only either way; a
/// fixture root never reaches the live system's `pg_lsclusters`.
pub fn postgresql_clusters(root: &Root) -> Vec<(String, String)> {
    let listed = crate::base::exec::find_inside(root, "pg_lsclusters").and_then(|program| {
        let program = program.to_string_lossy().into_owned();
        match crate::base::exec::run_captured(&[&program]) {
            Ok((status, text)) if status.success() => Some(parse_lsclusters(&text)),
            Ok((status, text)) => {
                log::debug!(
                    "'pg_lsclusters' failed ({status}): {}; reading {POSTGRESQL_DIR}",
                    text.trim()
                );
                None
            }
            Err(e) => {
                log::debug!("{e:#}; reading {POSTGRESQL_DIR}");
                None
            }
        }
    });
    let mut clusters = listed.unwrap_or_else(|| cluster_dirs(root));
    clusters.sort_by(|a, b| dpkg::compare_versions(&a.0, &b.0).then(a.1.cmp(&b.1)));
    clusters
}

/// The node's PostgreSQL clusters ([`postgresql_clusters`]) with the size of
/// their data directory where Debian puts it (`/var/lib/postgresql/VERSION/NAME`),
/// for the downtime forecast of a database server.
pub fn postgresql_cluster_sizes(root: &Root) -> Vec<crate::base::forecast::PostgresCluster> {
    postgresql_clusters(root)
        .into_iter()
        .map(|(version, name)| {
            let data = root.path(format!("/var/lib/postgresql/{version}/{name}"));
            crate::base::forecast::PostgresCluster {
                data_bytes: data
                    .is_dir()
                    .then(|| crate::actions::backup::tree_size(&data)),
                version,
                name,
            }
        })
        .collect()
}

/// The (version, name) of each cluster `pg_lsclusters` lists (`Ver Cluster
/// Port Status Owner Data-directory Log-file`), with or without its header line.
pub fn parse_lsclusters(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let version = fields.next()?;
            let name = fields.next()?;
            version
                .starts_with(|c: char| c.is_ascii_digit())
                .then(|| (version.to_string(), name.to_string()))
        })
        .collect()
}

/// The clusters with a `postgresql.conf` under [`POSTGRESQL_DIR`].
fn cluster_dirs(root: &Root) -> Vec<(String, String)> {
    // Node paths all the way: a link among them is followed inside the tree.
    let names = |dir: &Path| -> Vec<String> {
        std::fs::read_dir(root.path(dir))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|name| root.path(dir.join(name)).is_dir())
                    .collect()
            })
            .unwrap_or_default()
    };
    let base = Path::new(POSTGRESQL_DIR);
    names(base)
        .into_iter()
        .flat_map(|version| {
            let dir = base.join(&version);
            names(&dir)
                .into_iter()
                .filter(|name| root.path(dir.join(name).join("postgresql.conf")).is_file())
                .map(move |name| (version.clone(), name))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// When the notices are evaluated: the PostgreSQL one said ahead of the
/// dist-upgrade would be false after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    /// On the old release (`check`, prepare's preflight, `status` until finish).
    BeforeUpgrade,
    /// After the dist-upgrade (`finish`, `status` once finish has begun).
    AfterUpgrade,
}

/// The PostgreSQL notice: with clusters of two versions, the commands that
/// move the older ones to the newest (`pg_upgradecluster`), after dropping
/// the empty cluster of the same name that the new version's package
/// created; after the upgrade, with clusters of one version older than an
/// installed server (a release whose package made no new cluster), the
/// commands that move them to it; before the upgrade, with PostgreSQL
/// installed and clusters older than what the dist-upgrade brings
/// (`target`: from the simulation, else jessie's), the same said ahead,
/// with the clusters the upgrade leaves (`after the upgrade: clusters ...`).
pub fn postgresql_findings(
    clusters: &[(String, String)],
    packages: &[Package],
    moment: Moment,
) -> Vec<Finding> {
    postgresql_findings_for(clusters, packages, moment, &PgTarget::jessie())
}

/// [`postgresql_findings`] with what the dist-upgrade brings (`target`).
pub fn postgresql_findings_for(
    clusters: &[(String, String)],
    packages: &[Package],
    moment: Moment,
    target: &PgTarget,
) -> Vec<Finding> {
    let Some(newest) = clusters
        .iter()
        .map(|c| c.0.as_str())
        .max_by(|a, b| dpkg::compare_versions(a, b))
    else {
        return Vec::new();
    };
    let older: Vec<&(String, String)> = clusters
        .iter()
        .filter(|c| dpkg::compare_versions(&c.0, newest) == Ordering::Less)
        .collect();
    let commands_to = |target: &str, old: &[&(String, String)], new_names: &[&str]| {
        let mut commands = Vec::new();
        for (version, name) in old {
            if new_names.contains(&name.as_str()) {
                commands.push(format!(
                    "pg_dropcluster --stop {} {}",
                    shell_word(target),
                    shell_word(name)
                ));
            }
            commands.push(format!(
                "pg_upgradecluster {} {}",
                shell_word(version),
                shell_word(name)
            ));
        }
        commands
    };
    if !older.is_empty() {
        let new_names: Vec<&str> = clusters
            .iter()
            .filter(|c| c.0 == newest)
            .map(|c| c.1.as_str())
            .collect();
        let listed: Vec<String> = clusters.iter().map(|(v, n)| format!("{v}/{n}")).collect();
        return vec![Finding::new(
            "postgresql-clusters",
            Severity::Medium,
            format!("PostgreSQL clusters of two versions: {}", listed.join(", ")),
            format!("the data stays in the older cluster(s) until they are upgraded; a {newest} cluster of the same name, created empty by the new package, runs on another port"),
            format!("when the {newest} cluster of the same name is the empty one the package made, drop it and upgrade the old one (the package does not: it is your data)"),
        )
        .commands(commands_to(newest, &older, &new_names))];
    }
    let installed = |name: &str| packages.iter().any(|p| p.is_present() && p.name == name);
    let listed = |clusters: &[(String, String)]| -> String {
        clusters
            .iter()
            .map(|(v, n)| format!("{v}/{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let old: Vec<&(String, String)> = clusters.iter().collect();
    if moment == Moment::AfterUpgrade {
        // One version of clusters, a newer server installed: a release whose
        // package made no cluster of its own (trixie's).
        let server = packages
            .iter()
            .filter(|p| p.is_present())
            .filter_map(|p| server_version(&p.name))
            .max_by(|a, b| dpkg::compare_versions(a, b));
        return match server {
            Some(server) if dpkg::compare_versions(newest, server) == Ordering::Less => {
                vec![Finding::new(
                    "postgresql-clusters",
                    Severity::Low,
                    format!("PostgreSQL {server} is installed; the clusters still run {newest}: {}", listed(clusters)),
                    format!("the data stays in the {newest} cluster(s), served by the old release's postgresql-{newest}, which gets no more updates"),
                    format!("when you choose to: upgrade the cluster(s) to {server} (the package does not: it is your data)"),
                )
                .commands(commands_to(server, &old, &[]))]
            }
            _ => Vec::new(),
        };
    }
    let server_here = clusters
        .iter()
        .any(|c| installed(&format!("postgresql-{}", c.0)));
    let to = target.version.as_str();
    if dpkg::compare_versions(newest, to) == Ordering::Less
        && (installed("postgresql") || server_here)
    {
        let names: Vec<&str> = clusters.iter().map(|c| c.1.as_str()).collect();
        let (made, after, hint, new_names) = if target.creates_main {
            let mut after = clusters.to_vec();
            if !clusters.iter().any(|c| c.0 == to && c.1 == "main") {
                after.push((to.to_string(), "main".to_string()));
            }
            (
                format!("postgresql-{to} creates an empty {to}/main on another port (postgresql-common before {POSTGRESQL_COMMON_MAIN_ONLY_ALONE}, as jessie's)"),
                after,
                "after the upgrade, when you choose to: drop the empty new cluster and upgrade the old one (the package leaves both as they are)",
                names.clone(),
            )
        } else {
            (
                format!("postgresql-{to} creates no cluster while one exists (postgresql-common {POSTGRESQL_COMMON_MAIN_ONLY_ALONE} and later, as trixie's)"),
                clusters.to_vec(),
                "after the upgrade, when you choose to: upgrade the old cluster(s) (the package leaves them as they are)",
                Vec::new(),
            )
        };
        return vec![Finding::new(
            "postgresql-clusters",
            Severity::Low,
            format!("the dist-upgrade brings PostgreSQL {to} beside {newest}"),
            format!("{made}; Synnefo's data stays in the {newest} cluster(s), which keep running until upgraded; after the upgrade: clusters {}", listed(&after)),
            hint,
        )
        .commands(commands_to(to, &old, &new_names))];
    }
    Vec::new()
}

/// User and host of an `amqp://USER:PASSWORD@HOST:PORT/VHOST` URL.
pub fn amqp_user_host(url: &str) -> Option<(String, String)> {
    let rest = url
        .strip_prefix("amqp://")
        .or_else(|| url.strip_prefix("amqps://"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let (userinfo, hostport) = authority.rsplit_once('@')?;
    let user = userinfo.split(':').next().unwrap_or_default();
    let host = if let Some(v6) = hostport.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        hostport.split(':').next().unwrap_or_default()
    };
    Some((user.to_string(), host.to_string()))
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host == "::1" || host.starts_with("127.")
}

/// The AMQP notice: `guest` over the network is refused by RabbitMQ ≥ 3.3
/// (`loopback_users`), so a remote `guest` in `AMQP_HOSTS` stops working when
/// the broker's node moves to a newer RabbitMQ.
pub fn amqp_findings(hosts: &[String]) -> Vec<Finding> {
    let remote: Vec<String> = hosts
        .iter()
        .filter_map(|url| amqp_user_host(url))
        .filter(|(user, host)| user == "guest" && !is_loopback(host))
        .map(|(_, host)| host)
        .collect();
    if remote.is_empty() {
        return Vec::new();
    }
    vec![Finding::new(
        "amqp-remote-guest",
        Severity::Medium,
        format!("AMQP_HOSTS logs in as 'guest' on {}", remote.join(", ")),
        "RabbitMQ 3.3 and later accept the guest user from localhost only: once the broker runs a newer RabbitMQ, the dispatcher and the Ganeti hooks cannot connect",
        "create a user of your own on the broker and put it in AMQP_HOSTS (the package leaves the credentials as they are)",
    )
    .commands([
        "rabbitmqctl add_user synnefo PASSWORD".to_string(),
        "rabbitmqctl set_permissions synnefo '.*' '.*' '.*'".to_string(),
    ])]
}

/// The addresses a gunicorn-debian config binds (`'--bind=ADDR'`,
/// `'--bind', 'ADDR'`, `'-b', 'ADDR'`, `'-bADDR'`), from its quoted strings;
/// commented lines are skipped.
pub fn gunicorn_binds(text: &str) -> Vec<String> {
    let mut strings = Vec::new();
    for line in text.lines() {
        let line = line.trim_start();
        if line.starts_with('#') {
            continue;
        }
        let mut rest = line;
        while let Some(start) = rest.find(['\'', '"']) {
            let quote = rest[start..].chars().next().unwrap_or('\'');
            let after = &rest[start + 1..];
            let Some(end) = after.find(quote) else {
                break;
            };
            strings.push(after[..end].to_string());
            rest = &after[end + 1..];
        }
    }
    let mut binds = Vec::new();
    let mut iter = strings.iter().peekable();
    while let Some(s) = iter.next() {
        if let Some(addr) = s.strip_prefix("--bind=") {
            binds.push(addr.to_string());
        } else if s == "--bind" || s == "-b" {
            if let Some(addr) = iter.next() {
                binds.push(addr.clone());
            }
        } else if let Some(addr) = s
            .strip_prefix("-b")
            .filter(|a| !a.is_empty() && !a.starts_with('-'))
        {
            binds.push(addr.to_string());
        }
    }
    binds
}

/// The gunicorn notice: bound beyond loopback with no web server on this host, the
/// TLS-terminating proxy is on another host, and jessie's gunicorn 19 trusts
/// its `X-Forwarded-Proto` only from `forwarded_allow_ips` (default
/// 127.0.0.1): Synnefo would see `http` and build wrong URLs.
pub fn gunicorn_findings(binds: &[(String, String)], proxy_here: bool) -> Vec<Finding> {
    if proxy_here {
        return Vec::new();
    }
    binds
        .iter()
        .filter(|(_, addr)| {
            if addr.starts_with("unix:") {
                return false;
            }
            let host = match addr.rsplit_once(':') {
                Some((host, _)) => host,
                None => addr.as_str(),
            };
            !is_loopback(host)
        })
        .map(|(file, addr)| {
            Finding::new(
                "gunicorn-forwarded-ips",
                Severity::Low,
                format!("{file}: gunicorn listens on {addr}, with no web server on this host"),
                "the proxy in front is on another host; gunicorn 19 (jessie) honours X-Forwarded-Proto only from the addresses in forwarded_allow_ips (default 127.0.0.1), so HTTPS requests look like HTTP to Synnefo",
                format!("add '--forwarded-allow-ips=PROXY_ADDRESS' to the args in {file} (the package does not guess your proxy's address)"),
            )
        })
        .collect()
}

/// Whether a web server that could be the proxy in front of gunicorn is
/// installed on this node (Apache, as Synnefo's guide sets up, or nginx).
fn local_proxy(root: &Root, packages: &[Package]) -> bool {
    packages.iter().any(|p| {
        p.is_present()
            && (p.name == "apache2"
                || p.name == "apache2.2-common"
                || p.name.starts_with("apache2-mpm-")
                || p.name == "nginx"
                || p.name.starts_with("nginx-"))
    }) || root.path("/etc/apache2/apache2.conf").is_file()
        || root.path("/etc/nginx/nginx.conf").is_file()
}

/// The notices of the node under `root`, at `moment`.
pub fn findings(root: &Root, packages: &[Package], moment: Moment) -> Vec<Finding> {
    findings_with(root, packages, moment, &postgresql_clusters(root))
}

/// [`findings`], with the PostgreSQL clusters read already ([`postgresql_clusters`]).
pub fn findings_with(
    root: &Root,
    packages: &[Package],
    moment: Moment,
    clusters: &[(String, String)],
) -> Vec<Finding> {
    // What the dist-upgrade brings, from this run's simulation (check and
    // prepare simulate before they read the notices); jessie's without one.
    let target = crate::base::forecast::last_transaction()
        .map(|actions| PgTarget::from_transaction(&actions, packages))
        .unwrap_or_else(|| Some(PgTarget::jessie()));
    let mut found = match target {
        Some(target) => postgresql_findings_for(clusters, packages, moment, &target),
        // Simulated, and no server in it: nothing comes beside the clusters.
        None if moment == Moment::BeforeUpgrade => Vec::new(),
        None => postgresql_findings(clusters, packages, moment),
    };
    if let Ok(Some(value)) =
        crate::convert::settings::Settings::load(root).and_then(|s| s.literal("AMQP_HOSTS"))
    {
        use crate::convert::python::ExprKind;
        let hosts: Vec<String> = match &value.kind {
            ExprKind::List(items, _) | ExprKind::Tuple(items, _) => items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_string))
                .collect(),
            _ => value.as_str().map(str::to_string).into_iter().collect(),
        };
        found.extend(amqp_findings(&hosts));
    }
    let dir = Path::new(crate::convert::gunicorn::GUNICORN_DIR);
    let mut binds = Vec::new();
    for name in crate::convert::list_dir(root, dir).unwrap_or_default() {
        if crate::convert::is_leftover(name.as_bytes()) {
            continue;
        }
        let abs = dir.join(&name);
        // Other applications' configs are theirs; a FIFO there is skipped
        // with a warning, never opened. Python 2 source need not be UTF-8
        // (a `coding:` line): the strings looked for are ASCII.
        let Ok(Some(bytes)) = crate::base::fsx::read_file_opt(root, &abs) else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        if text.contains("synnefo") {
            for addr in gunicorn_binds(&text) {
                binds.push((abs.display().to_string(), addr));
            }
        }
    }
    found.extend(gunicorn_findings(&binds, local_proxy(root, packages)));
    found.extend(crate::convert::gunicorn::django_mode_findings(root));
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{arbitrary_texts, package};

    const B: Moment = Moment::BeforeUpgrade;

    fn c(v: &str, n: &str) -> (String, String) {
        (v.into(), n.into())
    }

    #[test]
    fn two_postgresql_versions_give_the_upgradecluster_commands() {
        let found = postgresql_findings(&[c("9.1", "main"), c("9.4", "main")], &[], B);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].id, "postgresql-clusters");
        assert!(!found[0].inhibitor);
        assert_eq!(
            found[0].remediation.commands,
            [
                "pg_dropcluster --stop 9.4 main",
                "pg_upgradecluster 9.1 main"
            ]
        );
        // Versions compared the dpkg way: 9.10 is newer than 9.4.
        let found = postgresql_findings(&[c("9.10", "x"), c("9.4", "main")], &[], B);
        assert_eq!(
            found[0].remediation.commands,
            ["pg_upgradecluster 9.4 main"]
        );
        // A cluster name a shell would split is quoted.
        let found = postgresql_findings(&[c("9.1", "my main"), c("9.4", "my main")], &[], B);
        assert_eq!(
            found[0].remediation.commands,
            [
                "pg_dropcluster --stop 9.4 \"my main\"",
                "pg_upgradecluster 9.1 \"my main\""
            ]
        );
    }

    #[test]
    fn pg_lsclusters_output_is_read_with_or_without_its_header() {
        let text = "Ver Cluster Port Status Owner    Data directory               Log file\n\
                    9.1 main    5432 online postgres /var/lib/postgresql/9.1/main /var/log/postgresql/postgresql-9.1-main.log\n\
                    9.4 main    5433 down   postgres /var/lib/postgresql/9.4/main /var/log/postgresql/postgresql-9.4-main.log\n\
                    Warning: something on stderr\n";
        assert_eq!(parse_lsclusters(text), [c("9.1", "main"), c("9.4", "main")]);
        assert_eq!(
            parse_lsclusters("9.4 web 5434 online postgres /srv/pg /var/log/pg.log\n"),
            [c("9.4", "web")]
        );
        assert!(parse_lsclusters("").is_empty());
        assert!(parse_lsclusters("9.1\n").is_empty());
    }

    #[test]
    fn one_wheezy_cluster_is_told_ahead_only_where_postgresql_is_installed() {
        let wheezy = [c("9.1", "main")];
        assert!(postgresql_findings(&wheezy, &[], B).is_empty());
        let found = postgresql_findings(&wheezy, &[package("postgresql-9.1")], B);
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].remediation.commands,
            [
                "pg_dropcluster --stop 9.4 main",
                "pg_upgradecluster 9.1 main"
            ]
        );
        assert!(postgresql_findings(&[c("9.4", "main")], &[package("postgresql")], B).is_empty());
        assert!(postgresql_findings(&[], &[package("postgresql")], B).is_empty());
        // After the dist-upgrade it would be false: only two versions are told.
        let after = Moment::AfterUpgrade;
        assert!(postgresql_findings(&wheezy, &[package("postgresql-9.1")], after).is_empty());
        let two = [c("9.1", "main"), c("9.4", "main")];
        assert_eq!(postgresql_findings(&two, &[], after).len(), 1);
    }

    #[test]
    fn the_release_says_whether_an_empty_cluster_comes_beside_the_old_one() {
        use crate::base::forecast::PackageAction;
        let act = |package: &str, action: &'static str, to: &str| PackageAction {
            package: package.into(),
            action,
            from: None,
            to: (action != "remove").then(|| to.into()),
        };
        let bookworm = [c("15", "main")];
        let installed = [package("postgresql"), package("postgresql-15")];
        // trixie: postgresql-17 with postgresql-common 278 makes no cluster
        // while 15/main exists; client and extension packages are not servers.
        let trixie = PgTarget::from_transaction(
            &[
                act("postgresql-client-17", "install", "17.6-0+deb13u1"),
                act("postgresql-common", "upgrade", "278+deb13u1"),
                act("postgresql-17", "install", "17.6-0+deb13u1"),
                act("postgresql-17-postgis-3", "install", "3.5.2"),
                act("postgresql", "upgrade", "17+278"),
            ],
            &installed,
        );
        assert_eq!(
            trixie,
            Some(PgTarget {
                version: "17".into(),
                creates_main: false
            })
        );
        let found = postgresql_findings_for(&bookworm, &installed, B, &trixie.unwrap());
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].title,
            "the dist-upgrade brings PostgreSQL 17 beside 15"
        );
        assert!(
            found[0].summary.contains("creates no cluster")
                && found[0]
                    .summary
                    .ends_with("after the upgrade: clusters 15/main"),
            "{}",
            found[0].summary
        );
        assert_eq!(found[0].remediation.commands, ["pg_upgradecluster 15 main"]);

        // jessie: postgresql-9.4 with postgresql-common 165 makes an empty
        // 9.4/main; the installed postgresql-common counts when it stays.
        let mut common = package("postgresql-common");
        common.version = "165+deb8u3".into();
        let jessie = PgTarget::from_transaction(
            &[act("postgresql-9.4", "install", "9.4.26-0+deb8u1")],
            &[package("postgresql-9.1"), common],
        )
        .unwrap();
        assert_eq!(jessie, PgTarget::jessie());
        let found = postgresql_findings_for(
            &[c("9.1", "main")],
            &[package("postgresql-9.1")],
            B,
            &jessie,
        );
        assert!(
            found[0]
                .summary
                .ends_with("after the upgrade: clusters 9.1/main, 9.4/main"),
            "{}",
            found[0].summary
        );
        assert_eq!(
            found[0].remediation.commands,
            [
                "pg_dropcluster --stop 9.4 main",
                "pg_upgradecluster 9.1 main"
            ]
        );

        // A transaction with no server in it brings nothing beside.
        assert_eq!(
            PgTarget::from_transaction(
                &[
                    act("postgresql-client-17", "install", "17"),
                    act("postgresql-15", "remove", "")
                ],
                &installed
            ),
            None
        );

        // After trixie's upgrade: 15/main alone, postgresql-17 installed.
        let after = [package("postgresql-15"), package("postgresql-17")];
        let found = postgresql_findings(&bookworm, &after, Moment::AfterUpgrade);
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].title,
            "PostgreSQL 17 is installed; the clusters still run 15: 15/main"
        );
        assert_eq!(found[0].remediation.commands, ["pg_upgradecluster 15 main"]);
        // Already on the newest installed server: nothing to tell.
        assert!(postgresql_findings(&[c("17", "main")], &after, Moment::AfterUpgrade).is_empty());
    }

    #[test]
    fn remote_guest_in_amqp_hosts_is_reported() {
        let hosts = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let found = amqp_findings(&hosts(&[
            "amqp://guest:guest@localhost:5672",
            "amqp://guest:guest@127.0.0.1:5672",
            "amqp://synnefo:secret@mq.example.org:5672",
            "amqp://guest:guest@mq2.example.org:5672/",
        ]));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].id, "amqp-remote-guest");
        assert!(
            found[0].title.contains("mq2.example.org"),
            "{}",
            found[0].title
        );
        assert!(!found[0].title.contains("localhost"));
        assert!(amqp_findings(&hosts(&["amqp://guest:guest@[::1]:5672", "garbage"])).is_empty());
    }

    #[test]
    fn gunicorn_bind_beyond_loopback_without_apache_is_reported() {
        let real = "CONFIG = {\n 'args': (\n   '--bind=127.0.0.1:8080',\n   # '--bind=0.0.0.0:1',\n   '--workers=8',\n ),\n}\n";
        assert_eq!(gunicorn_binds(real), ["127.0.0.1:8080"]);
        let open = "CONFIG = {'args': ('--bind', '0.0.0.0:8080', \"-b\", \"[::]:80\", '-b10.0.0.1:9', '--workers=2')}\n";
        assert_eq!(
            gunicorn_binds(open),
            ["0.0.0.0:8080", "[::]:80", "10.0.0.1:9"]
        );

        let f = "/etc/gunicorn.d/synnefo".to_string();
        let binds = [
            (f.clone(), "127.0.0.1:8080".to_string()),
            (f.clone(), "unix:/run/g.sock".to_string()),
            (f.clone(), "0.0.0.0:8080".to_string()),
        ];
        let found = gunicorn_findings(&binds, false);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].id, "gunicorn-forwarded-ips");
        assert!(found[0].title.contains("0.0.0.0:8080"));
        assert!(found[0].remediation.hint.contains("forwarded-allow-ips"));
        assert!(gunicorn_findings(&binds, true).is_empty());
    }

    #[test]
    fn notice_parsers_survive_arbitrary_input() {
        let alphabet = b"'\"-b-bind=:@/amqp://guest[]#\n 0.1";
        for text in arbitrary_texts(alphabet, 0xdead_beef_cafe_f00d, 2000, 120) {
            let binds: Vec<(String, String)> = gunicorn_binds(&text)
                .into_iter()
                .map(|b| ("f".into(), b))
                .collect();
            let _ = gunicorn_findings(&binds, false);
            let _ = amqp_findings(std::slice::from_ref(&text));
        }
    }
}
