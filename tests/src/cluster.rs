//! PostgreSQL clusters of the test's own, on free ports (the continuity and backup tests need a
//! primary, a standby and restored copies, not databases in the shared server). PostgreSQL refuses
//! to run as root: the commands run as the `postgres` user, in folders it owns.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The PostgreSQL binaries of this machine.
pub fn pg_bin() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.flatten()
                .map(|e| e.path().join("bin"))
                .filter(|p| p.join("initdb").is_file())
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions
        .pop()
        .expect("PostgreSQL server binaries under /usr/lib/postgresql (apt-get install postgresql)")
}

/// Runs a command as the postgres user; panics with its output on failure.
pub fn as_postgres(args: &[&str]) -> String {
    let out = Command::new("runuser")
        .arg("-u")
        .arg("postgres")
        .arg("--")
        .args(args)
        .output()
        .expect("runuser");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{args:?} failed:\n{text}");
    text
}

/// A folder the postgres user owns, removed on drop.
#[derive(Debug)]
pub struct PgDir {
    dir: tempfile::TempDir,
}

impl PgDir {
    /// A new folder.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("labedge-pg-")
            .tempdir_in("/tmp")
            .expect("tempdir");
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
        let status = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(dir.path())
            .status()
            .expect("chown");
        assert!(status.success());
        Self { dir }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Default for PgDir {
    fn default() -> Self {
        Self::new()
    }
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A cluster: its data folder and port. Stopped (immediately) on drop.
#[derive(Debug)]
pub struct PgCluster {
    /// Data directory.
    pub data: PathBuf,
    /// Port.
    pub port: u16,
}

impl PgCluster {
    /// `initdb` in `parent/name` with trust authentication, `extra` settings appended, started.
    pub fn init(parent: &Path, name: &str, extra: &str) -> Self {
        let data = parent.join(name);
        let bin = pg_bin();
        as_postgres(&[
            bin.join("initdb").to_str().expect("path"),
            "-D",
            data.to_str().expect("path"),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
        ]);
        let port = free_port();
        let conf = format!(
            "\nlisten_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\nfsync = on\n{extra}\n",
            parent.display()
        );
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .expect("conf");
        std::io::Write::write_all(&mut file, conf.as_bytes()).expect("write conf");
        let cluster = Self { data, port };
        cluster.start();
        cluster
    }

    /// An existing data folder (a standby built by a script, a restored copy), on `port`.
    pub fn adopt(data: PathBuf, port: u16) -> Self {
        Self { data, port }
    }

    /// Starts it.
    pub fn start(&self) {
        as_postgres(&[
            pg_bin().join("pg_ctl").to_str().expect("path"),
            "-D",
            self.data.to_str().expect("path"),
            "-o",
            &format!("-p {}", self.port),
            "-l",
            self.data.join("server.log").to_str().expect("path"),
            "-w",
            "start",
        ]);
    }

    /// Stops it: `immediate` is a crash (no checkpoint), `fast` a clean stop.
    pub fn stop(&self, mode: &str) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(pg_bin().join("pg_ctl"))
            .args(["-D", self.data.to_str().expect("path"), "-m", mode, "-w", "stop"])
            .output();
    }

    /// URL of database `db` (as the postgres superuser).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Runs SQL with psql; returns its unaligned output.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new("psql")
            .args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", &self.url(db), "-c", sql])
            .output()
            .expect("psql");
        assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.stop("immediate");
    }
}

/// Path of a script under `deploy/`.
pub fn deploy_script(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(path)
        .to_str()
        .expect("path")
        .to_owned()
}

/// Runs a command to success; panics with its output otherwise.
pub fn shell(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().expect("run");
    assert!(
        out.status.success(),
        "{args:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The cloud's database pair as `deploy/postgres` sets it up: a primary with `primary.conf` (WAL
/// archiving left out) holding database `db`, and the central lab's standby built by
/// `build-standby.sh`, streaming as the synchronous standby `central`.
pub fn replicated_pair(root: &Path, db: &str) -> (PgCluster, PgCluster) {
    let conf = std::fs::read_to_string(deploy_script("postgres/primary.conf"))
        .expect("primary.conf")
        .lines()
        .filter(|l| !l.starts_with("archive_"))
        .collect::<Vec<_>>()
        .join("\n");
    let primary = PgCluster::init(root, "cloud", &conf);
    primary.psql("postgres", &format!("CREATE DATABASE {db}"));
    let standby_port = free_port();
    let standby_dir = root.join("central");
    shell(&[
        &deploy_script("postgres/build-standby.sh"),
        "127.0.0.1",
        &primary.port.to_string(),
        standby_dir.to_str().expect("path"),
        "central",
        &standby_port.to_string(),
    ]);
    let standby = PgCluster::adopt(standby_dir, standby_port);
    // A new standby is listed as `async` while it catches up, then as `sync` once streaming.
    let started = std::time::Instant::now();
    loop {
        let state = primary.psql(
            "postgres",
            "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'central'",
        );
        if state == "sync" {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the central lab is the synchronous standby for critical writes (sync_state {state:?})"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    (primary, standby)
}
