//! A private, throwaway PostgreSQL cluster for tests and benches: `initdb` into a temp
//! directory, a server on a free loopback port with trust authentication for loopback only, one
//! database, and `pg_ctl stop` plus removal of the directory on drop. Nothing is shared with a
//! system cluster; the server binaries come from the Debian package (`.ci/run` installs it).
//!
//! PostgreSQL refuses to run as root, so when the tests run as root (CI, this machine) the
//! cluster belongs to the unprivileged `postgres` user and the commands run through `runuser`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Where the server binaries are: `PG_BIN` if set, else the newest `/usr/lib/postgresql/*/bin`
/// holding `initdb`, else whatever `initdb` the PATH has.
pub fn bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

/// A running cluster; stopped and deleted when dropped.
pub struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    owner: Option<&'static str>,
    pub port: u16,
    /// The database made for the caller.
    pub database: String,
}

impl PgCluster {
    /// Starts a cluster and creates database `airlock`. Panics with the server's own words
    /// when PostgreSQL is missing or does not start: a test that needs it cannot go on.
    pub fn start() -> PgCluster {
        match PgCluster::try_start() {
            Ok(c) => c,
            Err(e) => panic!("cannot start a throwaway PostgreSQL: {e}"),
        }
    }

    /// Starts a cluster that also speaks TLS (`ssl = on`) with this server certificate and key
    /// (PEM); clients may still connect without TLS.
    pub fn start_tls(cert_pem: &str, key_pem: &str) -> PgCluster {
        match PgCluster::try_start_with(Some((cert_pem, key_pem, None))) {
            Ok(c) => c,
            Err(e) => panic!("cannot start a throwaway PostgreSQL with TLS: {e}"),
        }
    }

    /// [`PgCluster::start_tls`], trusting `client_ca_pem` for client certificates
    /// (`ssl_ca_file`); see [`PgCluster::require_client_certs`].
    pub fn start_tls_with_client_ca(
        cert_pem: &str,
        key_pem: &str,
        client_ca_pem: &str,
    ) -> PgCluster {
        match PgCluster::try_start_with(Some((cert_pem, key_pem, Some(client_ca_pem)))) {
            Ok(c) => c,
            Err(e) => panic!("cannot start a throwaway PostgreSQL with TLS: {e}"),
        }
    }

    pub fn try_start() -> Result<PgCluster, String> {
        PgCluster::try_start_with(None)
    }

    fn try_start_with(tls: Option<(&str, &str, Option<&str>)>) -> Result<PgCluster, String> {
        let bin = bin_dir().ok_or(
            "no PostgreSQL server binaries (install the Debian package `postgresql`, or set PG_BIN)",
        )?;
        let root = is_root();
        let owner = root.then_some("postgres");
        let dir = tempfile::Builder::new()
            .prefix("airlock-pg-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        if let Some(user) = owner {
            // The cluster's owner must be able to reach and write its directory.
            run(Command::new("chown").arg(user).arg(dir.path()))?;
        }
        let data = dir.path().join("data");
        let mut initdb = command(owner, &bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"])
            .arg("--locale=C.UTF-8");
        run(&mut initdb)?;
        let mut ssl = String::new();
        if let Some((cert, key, client_ca)) = tls {
            let (cert_file, key_file) =
                (dir.path().join("server.crt"), dir.path().join("server.key"));
            std::fs::write(&cert_file, cert).map_err(|e| format!("server.crt: {e}"))?;
            std::fs::write(&key_file, key).map_err(|e| format!("server.key: {e}"))?;
            // The server refuses a key that others can read, or that it does not own.
            run(Command::new("chmod").arg("600").arg(&key_file))?;
            if let Some(user) = owner {
                run(Command::new("chown")
                    .arg(user)
                    .arg(&cert_file)
                    .arg(&key_file))?;
            }
            ssl = format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                cert_file.display(),
                key_file.display()
            );
            if let Some(ca) = client_ca {
                let ca_file = dir.path().join("client-ca.crt");
                std::fs::write(&ca_file, ca).map_err(|e| format!("client-ca.crt: {e}"))?;
                ssl += &format!(" -c ssl_ca_file={}", ca_file.display());
            }
        }
        let mut last = String::new();
        // A free port can be taken between the probe and the server's bind: try a few.
        for _ in 0..5 {
            let port = free_port();
            let opts = format!(
                "-p {port} -c listen_addresses=127.0.0.1 -k {} -c fsync=off \
                 -c synchronous_commit=off -c full_page_writes=off -c max_connections=200{ssl}",
                dir.path().display()
            );
            let mut start = command(owner, &bin.join("pg_ctl"));
            start
                .arg("-D")
                .arg(&data)
                .args(["-o", &opts, "-w", "-t", "30", "-l"])
                .arg(dir.path().join("server.log"))
                .arg("start");
            match run(&mut start) {
                Ok(_) => {
                    let c = PgCluster {
                        dir,
                        bin,
                        owner,
                        port,
                        database: "airlock".into(),
                    };
                    c.create_database("airlock")?;
                    return Ok(c);
                }
                Err(e) => {
                    last = format!(
                        "{e}\n{}",
                        std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default()
                    )
                }
            }
        }
        Err(last)
    }

    /// `postgres://postgres@127.0.0.1:PORT/DB`.
    pub fn url(&self) -> String {
        self.url_of(&self.database)
    }

    pub fn url_of(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates another empty database (one per test keeps tests on one cluster apart).
    pub fn create_database(&self, name: &str) -> Result<(), String> {
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""))
            .map(|_| ())
    }

    /// Runs SQL through `psql` and returns its unaligned, tuples-only output.
    pub fn psql(&self, database: &str, sql: &str) -> Result<String, String> {
        let out = run(Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
            ])
            .args([
                "-U",
                "postgres",
                "-p",
                &self.port.to_string(),
                "-d",
                database,
                "-c",
                sql,
            ]))?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Lets clients into `database` only over TLS with a client certificate whose common name
    /// is the user (`hostssl DATABASE all 127.0.0.1/32 cert`, anything else refused); the other
    /// databases keep trust, so `psql` here still works.
    pub fn require_client_certs(&self, database: &str) -> Result<(), String> {
        let hba = self.data_dir().join("pg_hba.conf");
        let old = std::fs::read_to_string(&hba).map_err(|e| format!("pg_hba.conf: {e}"))?;
        let lines = format!(
            "hostssl {database} all 127.0.0.1/32 cert\nhost {database} all 127.0.0.1/32 reject\n{old}"
        );
        std::fs::write(&hba, lines).map_err(|e| format!("pg_hba.conf: {e}"))?;
        self.psql("postgres", "SELECT pg_reload_conf()")?;
        // The postmaster reloads on the signal, a moment after the call returns.
        std::thread::sleep(Duration::from_millis(500));
        Ok(())
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let mut stop = command(self.owner, &self.bin.join("pg_ctl"));
        stop.arg("-D")
            .arg(self.data_dir())
            .args(["-m", "immediate", "-w", "-t", "20", "stop"]);
        let _ = run(&mut stop);
        // The temp dir is removed by its own drop; files made by `postgres` are removable by
        // root, and a non-root run owns them itself.
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn command(owner: Option<&str>, program: &Path) -> Command {
    match owner {
        Some(user) => {
            let mut c = Command::new("runuser");
            c.args(["-u", user, "--"]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

fn run(c: &mut Command) -> Result<Output, String> {
    let out = c.output().map_err(|e| format!("{c:?}: {e}"))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "{c:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(54329)
}

/// Waits until `f` holds or `within` passes; for tests that poll a cluster.
pub fn wait_until(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_starts_answers_sql_and_is_removed_on_drop() {
        let c = PgCluster::start();
        assert_eq!(c.psql("airlock", "SELECT 40 + 2").unwrap(), "42");
        let dir = c.data_dir();
        assert!(dir.join("PG_VERSION").exists());
        drop(c);
        assert!(!dir.exists(), "the cluster's directory is removed");
    }
}
