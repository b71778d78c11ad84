//! A throwaway PostgreSQL server for the tests that need a real one
//! (tests/vm/install-deps installs PostgreSQL; the tests run it as
//! `postgres` when root).

use super::Node;
use std::fs;

/// Runs `command`, which must succeed; its stdout.
pub fn succeeds(command: &mut std::process::Command) -> String {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A throwaway PostgreSQL server (the machine's own binaries) on 127.0.0.1,
/// run as `postgres` when we are root; stopped on drop.
pub struct Server {
    dir: tempfile::TempDir,
    bin: std::path::PathBuf,
    pub port: u16,
}

impl Server {
    pub fn as_postgres(&self, program: &str) -> std::process::Command {
        let program = self.bin.join(program);
        if nix::unistd::Uid::effective().is_root() {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            std::process::Command::new(program)
        }
    }

    pub fn start() -> Server {
        Server::start_on(25429)
    }

    /// A server on `port`: below Linux's ephemeral range (32768-60999), so
    /// that no client socket of a test running beside it (a local port the
    /// kernel picked) can hold it when the server binds.
    pub fn start_on(port: u16) -> Server {
        let bin = fs::read_dir("/usr/lib/postgresql")
            .expect(
                "PostgreSQL server binaries in /usr/lib/postgresql (apt-get install postgresql)",
            )
            .flatten()
            .map(|e| e.path().join("bin"))
            .find(|b| b.join("initdb").is_file())
            .expect("an initdb under /usr/lib/postgresql/*/bin");
        let dir = tempfile::tempdir().unwrap();
        if nix::unistd::Uid::effective().is_root() {
            let pg = nix::unistd::User::from_name("postgres").unwrap().unwrap();
            std::os::unix::fs::chown(dir.path(), Some(pg.uid.as_raw()), Some(pg.gid.as_raw()))
                .unwrap();
        }
        let server = Server { dir, bin, port };
        let data = server.dir.path().join("data");
        succeeds(
            server
                .as_postgres("initdb")
                .args(["-A", "trust", "-U", "postgres", "-D"])
                .arg(&data),
        );
        server.start_again();
        for db in ["snf_apps", "snf_pithos"] {
            server.sql(&format!("CREATE DATABASE {db}"));
        }
        server
    }

    /// Starts the server (again, after [`Server::stop`]), waiting until it
    /// accepts connections.
    pub fn start_again(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        let out = self
            .as_postgres("pg_ctl")
            .args(["-w", "-l"])
            .arg(self.dir.path().join("log"))
            .args(["-o", &options, "-D"])
            .arg(self.dir.path().join("data"))
            .arg("start")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start on port {}: {}\nserver log:\n{}",
            self.port,
            String::from_utf8_lossy(&out.stderr),
            fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
        );
    }

    /// Stops the server (a database node going down for its reboot).
    pub fn stop(&self) {
        succeeds(
            self.as_postgres("pg_ctl")
                .args(["-w", "-m", "fast", "-D"])
                .arg(self.dir.path().join("data"))
                .arg("stop"),
        );
    }

    pub fn psql(&self, db: &str) -> std::process::Command {
        let mut c = std::process::Command::new(self.bin.join("psql"));
        c.args(["-X", "-A", "-t", "-h", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .args(["-U", "postgres", "-d", db]);
        c
    }

    /// The server's `psql` as the node's `/usr/bin/psql` (a script: a link's
    /// absolute target would be read under the fixture root).
    pub fn psql_in(&self, node: &Node) {
        let program = self.bin.join("psql");
        node.write(
            "/usr/bin/psql",
            &format!("#!/bin/sh\nexec '{}' \"$@\"\n", program.display()),
            0o755,
        );
    }

    /// Points `node` at this server: its Django default database is
    /// snf_apps here (user postgres, no password), its `psql` is the
    /// server's, and `dropin` is its upgrade.d/50-test.toml. Then arms it
    /// and moves it to jessie, ready for `finish`.
    pub fn serve(&self, node: &Node, dropin: &str) {
        node.write(
            "/etc/synnefo/10-snf-webproject-database.conf",
            &format!("DATABASES = {{'default': {{'ENGINE': 'django.db.backends.postgresql_psycopg2', 'NAME': 'snf_apps', 'USER': 'postgres', 'PASSWORD': '', 'HOST': '127.0.0.1', 'PORT': '{}'}}}}\n", self.port),
            0o640,
        );
        self.psql_in(node);
        node.write("/etc/synnefo-upgrade/upgrade.d/50-test.toml", dropin, 0o644);
        node.ok(&["prepare"]);
        node.to_jessie();
    }

    /// A client of `db` named `app` (`PGAPPNAME`) that sends `sql` and stays
    /// connected until its stdin is closed (`drop(child.stdin.take())`);
    /// with the first line of the answer, read once it came.
    pub fn client(&self, db: &str, app: &str, sql: &str) -> (std::process::Child, String) {
        use std::io::{BufRead, Write};
        let mut child = self
            .psql(db)
            .env("PGAPPNAME", app)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.as_mut().unwrap(), "{sql};").unwrap();
        let mut first = String::new();
        std::io::BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut first)
            .unwrap();
        (child, first.trim().to_string())
    }

    pub fn sql(&self, sql: &str) -> String {
        succeeds(self.psql("postgres").args(["-c", sql]))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self
            .as_postgres("pg_ctl")
            .args(["-m", "immediate", "-D"])
            .arg(self.dir.path().join("data"))
            .arg("stop")
            .output();
    }
}
