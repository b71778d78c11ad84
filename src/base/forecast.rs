//! The downtime forecast of `check` (its `forecast` in `check --json`): what
//! this node's outage will contain, told before anything stops. The packages
//! the dist-upgrade unpacks and their installed size come from the simulated
//! dist-upgrade (`aptsim` counts its `Inst` lines and their sizes from
//! `apt-cache show` in the same scratch APT state); the databases this node
//! dumps before migrating and their size from PostgreSQL
//! (`pg_database_size`, through the node's `psql`, as the guard reads it);
//! on a database server, the PostgreSQL clusters it runs and their data (the
//! dist-upgrade installs the new release's PostgreSQL beside them and
//! restarts the server inside the outage).
//! The fleet report turns these into seconds with the figures measured on
//! the nodes already upgraded (`contrib/ansible/plugins/modules/fleet_report.py`).

use serde::Serialize;
use std::sync::Mutex;

/// The forecast in `check --json`.
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct Forecast {
    /// Packages the dist-upgrade unpacks (`Inst` lines); `null`: not simulated.
    pub packages_to_unpack: Option<u64>,
    /// Their installed size (KiB, APT's `Installed-Size`); `null`: not simulated.
    pub unpack_installed_kib: Option<u64>,
    /// Of those, how many had no size in the lists (not counted in the size).
    pub unpack_size_unknown: u64,
    /// What the simulated dist-upgrade does to each package, in APT's order
    /// (`null`: not simulated): what dpkg is expected to do, to compare with
    /// `/var/log/apt/history.log` afterwards.
    pub transaction: Option<Vec<PackageAction>>,
    /// The databases this node dumps before migrating, with their size.
    pub databases: Vec<DatabaseSize>,
    /// Their total size in bytes; `null`: this node dumps none, or a size is unknown.
    pub database_bytes: Option<u64>,
    /// The PostgreSQL clusters this node runs (a database server): the
    /// dist-upgrade restarts them inside the outage and installs the new
    /// release's PostgreSQL beside them; they stay on their version.
    pub postgresql_clusters: Vec<PostgresCluster>,
    /// Why a figure is missing (not simulated, no `psql`, ...).
    pub notes: Vec<String>,
}

/// One PostgreSQL cluster of the node.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PostgresCluster {
    /// Its major version (`9.1`).
    pub version: String,
    /// Its name (`main`).
    pub name: String,
    /// The size of its data directory (`/var/lib/postgresql/VERSION/NAME`),
    /// bytes; `null`: not there (another data directory).
    pub data_bytes: Option<u64>,
}

/// One database to dump.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DatabaseSize {
    /// Its name.
    pub name: String,
    /// Its server (empty: the local socket).
    pub host: String,
    /// `pg_database_size` in bytes; `null` when it could not be read.
    pub bytes: Option<u64>,
}

/// One package's part in the simulated dist-upgrade.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PackageAction {
    /// The package (without `:arch`).
    pub package: String,
    /// `install` (not installed before), `upgrade` (another version: a
    /// downgrade too) or `remove`.
    pub action: &'static str,
    /// The version installed before (`null` for `install`, and for `remove`).
    pub from: Option<String>,
    /// The version it gets (`null` for `remove`).
    pub to: Option<String>,
}

/// What the simulation found to unpack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpack {
    /// Packages unpacked.
    pub packages: u64,
    /// Their installed size in KiB (those with a known size).
    pub kib: u64,
    /// Packages without a known size.
    pub unknown: u64,
    /// Every package's action.
    pub actions: Vec<PackageAction>,
}

/// The unpack figures of this run's simulation, or why there are none.
static LAST: Mutex<Option<Result<Unpack, String>>> = Mutex::new(None);

/// Records what this run's simulation found (`aptsim::findings`, above this module).
pub fn record_unpack(found: Result<Unpack, String>) {
    if let Ok(mut last) = LAST.lock() {
        *last = Some(found);
    }
}

/// The transaction of this run's simulation (`None`: not simulated, or
/// not yet in this run).
pub fn last_transaction() -> Option<Vec<PackageAction>> {
    match LAST.lock().ok()?.as_ref()? {
        Ok(u) => Some(u.actions.clone()),
        Err(_) => None,
    }
}

/// The forecast from this run's simulation and `databases` (the sizes of
/// those this node dumps; `None`: it dumps none, with the reason).
pub fn forecast(databases: Result<Vec<DatabaseSize>, String>) -> Forecast {
    let mut f = Forecast::default();
    match LAST.lock().ok().and_then(|l| l.clone()) {
        Some(Ok(u)) => {
            f.packages_to_unpack = Some(u.packages);
            f.unpack_installed_kib = Some(u.kib);
            f.unpack_size_unknown = u.unknown;
            f.transaction = Some(u.actions);
        }
        Some(Err(why)) => f.notes.push(format!("packages to unpack unknown: {why}")),
        None => f
            .notes
            .push("packages to unpack unknown: the dist-upgrade was not simulated".into()),
    }
    match databases {
        Ok(dbs) => {
            f.database_bytes = dbs.iter().map(|d| d.bytes).sum();
            if f.database_bytes.is_none() && !dbs.is_empty() {
                f.notes.push("a database size could not be read".into());
            }
            f.databases = dbs;
        }
        Err(why) => f.notes.push(format!("no database dump: {why}")),
    }
    f
}

/// The forecast as text (for `check`).
pub fn render(f: &Forecast) -> String {
    let mut out = String::from("downtime forecast (what the outage contains):\n");
    match (f.packages_to_unpack, f.unpack_installed_kib) {
        (Some(n), Some(kib)) => out.push_str(&format!(
            "  unpack {n} package(s), {:.1} MiB installed{}\n",
            kib as f64 / 1024.0,
            if f.unpack_size_unknown > 0 {
                format!(" ({} without a known size)", f.unpack_size_unknown)
            } else {
                String::new()
            }
        )),
        _ => out.push_str("  packages to unpack: unknown\n"),
    }
    for d in &f.databases {
        out.push_str(&format!(
            "  dump database {}{}: {}\n",
            d.name,
            if d.host.is_empty() {
                String::new()
            } else {
                format!(" at {}", d.host)
            },
            d.bytes.map_or("size unknown".to_string(), |b| format!(
                "{:.1} MiB",
                b as f64 / (1024.0 * 1024.0)
            ))
        ));
    }
    for c in &f.postgresql_clusters {
        out.push_str(&format!(
            "  PostgreSQL cluster {}/{} ({}): restarted by the dist-upgrade and the reboot; it stays on {}, the new release's PostgreSQL is installed beside it (pg_upgradecluster after the roll-out)\n",
            c.version,
            c.name,
            c.data_bytes.map_or("data size unknown".to_string(), |b| format!(
                "{:.1} MiB of data",
                b as f64 / (1024.0 * 1024.0)
            )),
            c.version
        ));
    }
    for note in &f.notes {
        out.push_str(&format!("  ({note})\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_total_is_unknown_when_one_size_is() {
        let db = |name: &str, bytes| DatabaseSize {
            name: name.into(),
            host: "10.0.0.1".into(),
            bytes,
        };
        let f = forecast(Ok(vec![
            db("snf_apps", Some(3 << 20)),
            db("snf_pithos", Some(1 << 20)),
        ]));
        assert_eq!(f.database_bytes, Some(4 << 20));
        let f = forecast(Ok(vec![
            db("snf_apps", Some(3 << 20)),
            db("snf_pithos", None),
        ]));
        assert_eq!(f.database_bytes, None);
        assert!(f.notes.iter().any(|n| n.contains("could not be read")));
        let f = forecast(Err("[migrations] run = false".into()));
        assert!(f.databases.is_empty() && f.database_bytes.is_none());
        assert!(render(&f).contains("no database dump: [migrations] run = false"));
    }
}
