//! Real faults for end-to-end tests, each torn down by its `Drop`:
//!
//! - [`FullDisk`]: the SQLite database on a small tmpfs of its own that the test fills
//!   (every write fails with `ENOSPC`, reads still work) and frees again. A read-only
//!   remount cannot serve: Linux refuses `remount,ro` (EBUSY) while SQLite holds the file
//!   open for writing.
//! - [`PrivatePg`]: a PostgreSQL cluster of the test's own (the shared one on 5432 serves
//!   other tests), stopped with `pg_ctl stop -m immediate` and started again on its port.
//! - [`BlackHole`]: a TCP port that accepts connections and never answers.
//! - [`Server::kill9`] (SIGKILL without waiting) and [`Server::start_on`] (a server on a
//!   given PostgreSQL database).
//!
//! Every missing tool or permission is a failure saying how to get it, never a skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Backend, Server};

/// Runs a command, failing with its output unless it succeeds.
fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A SQLite database on a tmpfs of its own that can be filled to the last page.
pub struct FullDisk {
    mount: PathBuf,
    fill: PathBuf,
}

impl FullDisk {
    /// Mounts a tmpfs of `size_mb` MiB (needs root, as `./scripts/test` runs).
    pub fn mount(size_mb: u32) -> Self {
        let mount = std::env::temp_dir().join(format!("arcan-tmpfs-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&mount).expect("mount point");
        run(
            Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size_mb}m"), "tmpfs"])
                .arg(&mount),
            "mounting a tmpfs for the SQLite fault test (run the tests as root, as ./scripts/test does)",
        );
        let fill = mount.join("fill");
        Self { mount, fill }
    }

    /// A fresh server data directory whose `arcan.db` is a link into the tmpfs. SQLite
    /// resolves the link, so its `-wal` and `-shm` files live there too; the log, keys and
    /// TLS material stay on the ordinary disk.
    pub fn data_dir(&self) -> PathBuf {
        let dir = Server::fresh_dir();
        std::os::unix::fs::symlink(self.mount.join("arcan.db"), dir.join("arcan.db"))
            .expect("link arcan.db into the tmpfs");
        dir
    }

    /// The database's WAL file (to check that SQLite put it on the tmpfs).
    pub fn wal(&self) -> PathBuf {
        self.mount.join("arcan.db-wal")
    }

    /// Fills the tmpfs: first checkpoints the WAL into the database and truncates it, so
    /// that every later commit must grow the WAL (a WAL page is a frame of 4 KiB + 24 bytes,
    /// more than any slack a tmpfs page leaves), then writes zeros until `ENOSPC`.
    pub async fn fill(&self) {
        use sqlx::{Connection, Row};
        let url = format!("sqlite://{}", self.mount.join("arcan.db").display());
        let mut c = sqlx::SqliteConnection::connect(&url).await.expect("sqlite");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let row = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .fetch_one(&mut c)
                .await
                .expect("checkpoint");
            if row.get::<i64, _>(0) == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the server kept the WAL busy for 10 s: no truncating checkpoint"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        c.close().await.expect("close");
        use std::io::Write;
        let mut f = std::fs::File::create(&self.fill).expect("fill file");
        for chunk in [1 << 20, 4096, 512] {
            let zeros = vec![0u8; chunk];
            loop {
                match f.write_all(&zeros) {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(28) => break,
                    Err(e) => panic!("filling the tmpfs: {e}"),
                }
            }
        }
    }

    /// Frees the space again.
    pub fn free(&self) {
        std::fs::remove_file(&self.fill).expect("remove the fill file");
    }
}

impl Drop for FullDisk {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.fill);
        // Lazy: a server still holding the file does not keep the mount.
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
        let _ = std::fs::remove_dir(&self.mount);
    }
}

/// Where PostgreSQL's server programs are.
fn pg_bin(name: &str) -> PathBuf {
    let local = Path::new("/usr/local/bin").join(name);
    if local.exists() {
        return local;
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin").join(name))
        .filter(|p| p.exists())
        .collect();
    dirs.sort();
    dirs.pop().unwrap_or_else(|| {
        panic!(
            "{name} not found in /usr/local/bin or /usr/lib/postgresql/*/bin: install the \
             PostgreSQL server (`apt-get install postgresql`, as ./scripts/test does)"
        )
    })
}

/// A private PostgreSQL cluster (trust auth, loopback, a free port), run as the `postgres`
/// user because PostgreSQL refuses to run as root.
pub struct PrivatePg {
    dir: PathBuf,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl PrivatePg {
    /// `initdb`, start, and create the database `arcan`.
    pub fn start() -> Self {
        let dir = PathBuf::from(format!("/var/tmp/arcan-pg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("cluster dir");
        run(
            Command::new("chown").arg("postgres:postgres").arg(&dir),
            "giving the private cluster's directory to the `postgres` user (it must exist: \
             `apt-get install postgresql` creates it)",
        );
        run(
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(pg_bin("initdb"))
                .args(["-A", "trust", "-U", "postgres", "-N", "-D"])
                .arg(dir.join("data")),
            "initdb of the private cluster",
        );
        let pg = Self {
            dir,
            port: crate::receivers::free_port(),
        };
        pg.start_again();
        run(
            Command::new("psql")
                .arg(pg.url_of("postgres"))
                .args(["-qc", "CREATE DATABASE arcan"]),
            "creating the database on the private cluster",
        );
        pg
    }

    fn url_of(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// The URL of its `arcan` database.
    pub fn url(&self) -> String {
        self.url_of("arcan")
    }

    fn pg_ctl(&self, args: &[&str], what: &str) {
        run(
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(pg_bin("pg_ctl"))
                .arg("-D")
                .arg(self.dir.join("data"))
                .args(args),
            what,
        );
    }

    /// Starts (again) on the same port; returns when it accepts connections.
    pub fn start_again(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("log");
        let log = log.to_str().expect("utf-8 path");
        self.pg_ctl(
            &["-w", "-t", "60", "-l", log, "-o", &opts, "start"],
            "starting the private cluster",
        );
    }

    /// Stops at once, as a crash would (`-m immediate`: no checkpoint, clients cut off).
    pub fn stop_immediate(&self) {
        self.pg_ctl(
            &["-w", "-m", "immediate", "stop"],
            "stopping the private cluster",
        );
    }

    /// The cluster's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(pg_bin("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-w", "-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TCP port that accepts connections and holds them without reading or answering.
pub struct BlackHole {
    task: tokio::task::JoinHandle<()>,
}

impl BlackHole {
    /// Listens on `127.0.0.1:port` (retrying for 10 s while the port is still taken).
    pub async fn start(port: u16) -> Self {
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
                Ok(l) => break l,
                Err(e) if Instant::now() >= deadline => {
                    panic!("black hole cannot bind 127.0.0.1:{port}: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((sock, _)) = listener.accept().await {
                held.push(sock);
            }
        });
        Self { task }
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        // Aborting drops the listener and every held connection.
        self.task.abort();
    }
}

impl Server {
    /// Sends SIGKILL to the server without waiting (`restart` reaps it and starts anew).
    pub fn kill9(&self) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .args(["-KILL", &c.id().to_string()])
                .status();
        }
    }

    /// Starts a `--dev` server on the given PostgreSQL database (e.g. a [`PrivatePg`]'s);
    /// the database is not dropped afterwards.
    pub async fn start_on(database_url: &str, config: &str) -> Self {
        let mut s = Self {
            child: None,
            dir: Self::fresh_dir(),
            base: String::new(),
            root: String::new(),
            http: reqwest::Client::new(),
            backend: Backend::Postgres,
            db_url: Some(database_url.to_owned()),
            pg_db: None,
            config: config.to_owned(),
            dev: true,
            env: Vec::new(),
        };
        s.launch().await;
        s.root = std::fs::read_to_string(s.dir.join("root-token")).expect("root token file");
        s
    }
}

/// The faults on their own, without a server (so a broken fault is told apart from a
/// server bug): a full tmpfs fails SQLite commits but not reads; a private cluster stopped
/// with `-m immediate` refuses connections and, started again, still has its data.
#[cfg(test)]
mod tests {
    use sqlx::{Connection, Row};

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn full_tmpfs_fails_sqlite_commits() {
        let disk = FullDisk::mount(16);
        let dir = disk.data_dir();
        let url = format!("sqlite://{}?mode=rwc", dir.join("arcan.db").display());
        let mut c = sqlx::SqliteConnection::connect(&url).await.expect("open");
        for sql in [
            "PRAGMA journal_mode = WAL",
            "CREATE TABLE t (v TEXT NOT NULL)",
            "INSERT INTO t VALUES ('before')",
        ] {
            sqlx::query(sql).execute(&mut c).await.expect(sql);
        }
        assert!(
            disk.wal().exists(),
            "the WAL follows the link onto the tmpfs"
        );
        disk.fill().await;
        let during = sqlx::query("INSERT INTO t VALUES ('during')")
            .execute(&mut c)
            .await;
        let err = during.expect_err("a commit on a full tmpfs").to_string();
        assert!(err.contains("full"), "{err}");
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM t")
            .fetch_one(&mut c)
            .await
            .expect("reads still work")
            .get(0);
        assert_eq!(n, 1);
        disk.free();
        sqlx::query("INSERT INTO t VALUES ('after')")
            .execute(&mut c)
            .await
            .expect("a commit once space is back");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn private_cluster_stops_and_starts() {
        let pg = tokio::task::block_in_place(PrivatePg::start);
        let mut c = sqlx::PgConnection::connect(&pg.url())
            .await
            .expect("connect");
        for sql in [
            "CREATE TABLE t (v TEXT NOT NULL)",
            "INSERT INTO t VALUES ('kept')",
        ] {
            sqlx::query(sql).execute(&mut c).await.expect(sql);
        }
        tokio::task::block_in_place(|| pg.stop_immediate());
        let dead = sqlx::query("SELECT 1").execute(&mut c).await;
        assert!(dead.is_err(), "the open connection is cut off");
        let refused = sqlx::PgConnection::connect(&pg.url()).await;
        assert!(refused.is_err(), "no new connection while stopped");
        tokio::task::block_in_place(|| pg.start_again());
        let mut c = sqlx::PgConnection::connect(&pg.url())
            .await
            .expect("reconnect");
        let v: String = sqlx::query("SELECT v FROM t")
            .fetch_one(&mut c)
            .await
            .unwrap_or_else(|e| panic!("{e}; cluster log:\n{}", pg.log()))
            .get(0);
        assert_eq!(v, "kept");
    }
}
