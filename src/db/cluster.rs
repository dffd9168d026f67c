//! The managed ("embedded default") PostgreSQL cluster: used when no database URL is
//! configured. It lives in `<state_dir>/postgres`, listens only on a Unix socket in that
//! directory, and is driven with the system's own `initdb` and `pg_ctl`.
//!
//! - PostgreSQL refuses to run as root; when overseer is root the cluster runs as the
//!   unprivileged `postgres` user that Debian's package creates.
//! - A cluster left running by a crashed overseer is reused, not duplicated (`pg_ctl status`).
//! - Ephemeral clusters live in a temporary directory removed when they stop.
//!
//! The test harness starts its shared cluster with this same code.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use diesel::{Connection, PgConnection, RunQueryDsl};
use nix::unistd::{Gid, Uid, User};

use crate::config::database_url::DatabaseUrl;

/// The cluster's superuser and the database overseer uses.
pub const SUPERUSER: &str = "overseer";
pub const DATABASE: &str = "overseer";
/// The unprivileged account the cluster runs as when overseer is root.
pub const SERVICE_USER: &str = "postgres";

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "PostgreSQL server programs not found ({0} is not on PATH nor under \
         /usr/lib/postgresql/*/bin): install the Debian package `postgresql` \
         (apt-get install postgresql), or set database.url"
    )]
    MissingBinaries(&'static str),
    #[error(
        "overseer runs as root and PostgreSQL refuses to: the managed cluster runs as the \
         `{SERVICE_USER}` user, which does not exist (the Debian package `postgresql` creates \
         it), or set database.url"
    )]
    NoServiceUser,
    #[error(
        "the `{SERVICE_USER}` user cannot reach {dir}: {blocker} is not searchable by others; \
         choose a state_dir outside it (e.g. /var/lib/overseer) or set database.url"
    )]
    Unreachable { dir: PathBuf, blocker: PathBuf },
    #[error(
        "the socket path {0} is too long for a Unix socket (max 107 bytes): choose a shorter \
         state_dir"
    )]
    SocketPathTooLong(PathBuf),
    #[error("{action} failed: {detail}")]
    Command { action: String, detail: String },
    #[error("cluster directory {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("connecting to the managed cluster: {0}")]
    Connect(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ClusterError + '_ {
    move |source| ClusterError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Debug, Clone)]
pub struct Binaries {
    pub initdb: PathBuf,
    pub pg_ctl: PathBuf,
    pub bin_dir: PathBuf,
}

/// Finds `initdb` and `pg_ctl`: on PATH first, else the newest `/usr/lib/postgresql/*/bin`.
pub fn find_binaries() -> Result<Binaries, ClusterError> {
    fn on_path(name: &str) -> Option<PathBuf> {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    }
    let from_path = on_path("initdb").zip(on_path("pg_ctl"));
    if let Some((initdb, pg_ctl)) = from_path {
        let initdb = fs::canonicalize(&initdb).unwrap_or(initdb);
        let pg_ctl = fs::canonicalize(&pg_ctl).unwrap_or(pg_ctl);
        let bin_dir = pg_ctl.parent().map(Path::to_path_buf).unwrap_or_default();
        return Ok(Binaries {
            initdb,
            pg_ctl,
            bin_dir,
        });
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            Some((v, e.path().join("bin")))
        })
        .collect();
    versions.sort();
    for (_, bin) in versions.into_iter().rev() {
        let (initdb, pg_ctl) = (bin.join("initdb"), bin.join("pg_ctl"));
        if initdb.is_file() && pg_ctl.is_file() {
            return Ok(Binaries {
                initdb,
                pg_ctl,
                bin_dir: bin,
            });
        }
    }
    Err(ClusterError::MissingBinaries("initdb/pg_ctl"))
}

#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// The cluster directory (`<state_dir>/postgres`): data in `data/`, socket in the dir.
    pub dir: PathBuf,
    /// Remove the whole directory when the cluster stops.
    pub ephemeral: bool,
    /// Extra `postgresql.conf` settings (the tests turn fsync off).
    pub settings: Vec<(String, String)>,
}

impl ClusterOptions {
    pub fn persistent(state_dir: &Path) -> Self {
        Self {
            dir: state_dir.join("postgres"),
            ephemeral: false,
            settings: Vec::new(),
        }
    }

    /// A fresh cluster in a temporary directory, deleted when it stops.
    pub fn ephemeral() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "overseer-ephemeral-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        Self {
            dir,
            ephemeral: true,
            settings: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct RunAs {
    uid: Uid,
    gid: Gid,
}

/// A running managed cluster. Stop it with [`ManagedCluster::stop`]; dropping it leaves the
/// server running (so that a crash of overseer does not take data with it).
#[derive(Debug)]
pub struct ManagedCluster {
    dir: PathBuf,
    data: PathBuf,
    bins: Binaries,
    run_as: Option<RunAs>,
    ephemeral: bool,
    /// True when this call started the server; false when it found one running.
    pub started_here: bool,
    stopped: bool,
}

impl ManagedCluster {
    /// Initialises (first time), starts (or reuses) the cluster and makes sure the overseer
    /// database exists. Blocking: call it at start-up, before the actors run.
    pub fn start(opts: &ClusterOptions) -> Result<Self, ClusterError> {
        let bins = find_binaries()?;
        let run_as = if Uid::effective().is_root() {
            let user = User::from_name(SERVICE_USER)
                .ok()
                .flatten()
                .ok_or(ClusterError::NoServiceUser)?;
            Some(RunAs {
                uid: user.uid,
                gid: user.gid,
            })
        } else {
            None
        };

        fs::create_dir_all(&opts.dir).map_err(io_err(&opts.dir))?;
        let dir = fs::canonicalize(&opts.dir).map_err(io_err(&opts.dir))?;
        let socket = dir.join(".s.PGSQL.5432");
        if socket.as_os_str().len() > 107 {
            return Err(ClusterError::SocketPathTooLong(socket));
        }
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(io_err(&dir))?;
        if let Some(ids) = run_as {
            check_reachable(&dir, ids)?;
            chown(&dir, ids)?;
        }

        let mut cluster = Self {
            data: dir.join("data"),
            dir,
            bins,
            run_as,
            ephemeral: opts.ephemeral,
            started_here: false,
            stopped: false,
        };

        if !cluster.data.join("PG_VERSION").exists() {
            cluster.initdb()?;
        }
        cluster.write_settings(&opts.settings)?;
        if cluster.is_running() {
            tracing::info!(dir = %cluster.dir.display(), "reusing the running managed PostgreSQL cluster");
        } else {
            cluster.pg_ctl_start()?;
            cluster.started_here = true;
        }
        cluster.ensure_database()?;
        Ok(cluster)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The URL of the overseer database (Unix socket, no password).
    pub fn url(&self) -> DatabaseUrl {
        DatabaseUrl::unix_socket(&self.dir, SUPERUSER, DATABASE)
    }

    /// The URL of another database in this cluster.
    pub fn url_for(&self, database: &str) -> DatabaseUrl {
        DatabaseUrl::unix_socket(&self.dir, SUPERUSER, database)
    }

    pub fn bin_dir(&self) -> &Path {
        &self.bins.bin_dir
    }

    pub fn is_running(&self) -> bool {
        // pg_ctl status: 0 running, 3 not running, 4 no data directory.
        self.command(&self.bins.pg_ctl)
            .arg("status")
            .arg("-D")
            .arg(&self.data)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(&self.dir)
            .env("LC_ALL", "C")
            .env_remove("PGDATA")
            .env_remove("PGHOST");
        if let Some(ids) = self.run_as {
            // Dropping from root, std also clears the supplementary groups (setgroups(0)).
            cmd.uid(ids.uid.as_raw()).gid(ids.gid.as_raw());
            cmd.env("HOME", &self.dir).env("USER", SERVICE_USER);
        }
        cmd
    }

    fn run(&self, action: &str, cmd: &mut Command) -> Result<Output, ClusterError> {
        let out = cmd.output().map_err(|e| ClusterError::Command {
            action: action.to_string(),
            detail: e.to_string(),
        })?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let stdout = String::from_utf8_lossy(&out.stdout);
            let mut detail = format!("{} {}", stderr.trim(), stdout.trim());
            if let Ok(log) = fs::read_to_string(self.dir.join("postgres.log")) {
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                detail.push_str(" | log: ");
                detail.push_str(&tail.into_iter().rev().collect::<Vec<_>>().join(" / "));
            }
            return Err(ClusterError::Command {
                action: action.to_string(),
                detail: detail.trim().to_string(),
            });
        }
        Ok(out)
    }

    fn initdb(&self) -> Result<(), ClusterError> {
        tracing::info!(dir = %self.data.display(), "initialising the managed PostgreSQL cluster");
        let mut cmd = self.command(&self.bins.initdb);
        cmd.arg("-D")
            .arg(&self.data)
            .arg("-U")
            .arg(SUPERUSER)
            .arg("--auth=trust")
            .arg("--encoding=UTF8")
            .arg("--no-locale")
            .arg("--no-instructions");
        self.run("initdb", &mut cmd)?;
        let conf = self.data.join("postgresql.conf");
        let mut text = fs::read_to_string(&conf).map_err(io_err(&conf))?;
        text.push_str(
            "\n# Added by overseer: settings it manages.\ninclude_if_exists = 'overseer.conf'\n",
        );
        fs::write(&conf, text).map_err(io_err(&conf))?;
        Ok(())
    }

    fn write_settings(&self, extra: &[(String, String)]) -> Result<(), ClusterError> {
        let socket_dir = self.dir.to_string_lossy().replace('\'', "''");
        let mut text = format!(
            "# Written by overseer at every start; edits are overwritten.\n\
             listen_addresses = ''\n\
             unix_socket_directories = '{socket_dir}'\n\
             unix_socket_permissions = 0700\n\
             max_connections = 200\n\
             logging_collector = off\n\
             autovacuum_naptime = '10s'\n"
        );
        for (k, v) in extra {
            text.push_str(&format!("{k} = '{}'\n", v.replace('\'', "''")));
        }
        let path = self.data.join("overseer.conf");
        fs::write(&path, text).map_err(io_err(&path))?;
        if let Some(ids) = self.run_as {
            chown(&path, ids)?;
        }
        Ok(())
    }

    fn pg_ctl_start(&self) -> Result<(), ClusterError> {
        tracing::info!(dir = %self.dir.display(), "starting the managed PostgreSQL cluster");
        let log = self.dir.join("postgres.log");
        let mut cmd = self.command(&self.bins.pg_ctl);
        cmd.arg("start")
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&log)
            .arg("-w")
            .arg("-t")
            .arg("60")
            .arg("-s");
        // The server must not share our stdout/stderr (it outlives pipes we would hold).
        cmd.stdin(std::process::Stdio::null());
        self.run("pg_ctl start", &mut cmd).map(|_| ())
    }

    fn ensure_database(&self) -> Result<(), ClusterError> {
        let url = self.url_for("postgres");
        let mut conn = PgConnection::establish(url.expose())
            .map_err(|e| ClusterError::Connect(e.to_string()))?;
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let found: Count = diesel::sql_query(format!(
            "SELECT count(*) AS n FROM pg_database WHERE datname = '{DATABASE}'"
        ))
        .get_result(&mut conn)
        .map_err(|e| ClusterError::Connect(e.to_string()))?;
        if found.n == 0 {
            diesel::sql_query(format!("CREATE DATABASE {DATABASE}"))
                .execute(&mut conn)
                .map_err(|e| ClusterError::Connect(e.to_string()))?;
        }
        Ok(())
    }

    /// Stops the server (fast shutdown: open sessions are disconnected, data is flushed) and,
    /// for an ephemeral cluster, deletes its directory. Safe to call twice.
    pub fn stop(&mut self) -> Result<(), ClusterError> {
        if self.stopped {
            return Ok(());
        }
        if self.is_running() {
            let mut cmd = self.command(&self.bins.pg_ctl);
            cmd.arg("stop")
                .arg("-D")
                .arg(&self.data)
                .arg("-m")
                .arg("fast")
                .arg("-w")
                .arg("-t")
                .arg("60")
                .arg("-s");
            self.run("pg_ctl stop", &mut cmd)?;
        }
        self.stopped = true;
        if self.ephemeral {
            fs::remove_dir_all(&self.dir).map_err(io_err(&self.dir))?;
        }
        Ok(())
    }
}

fn chown(path: &Path, ids: RunAs) -> Result<(), ClusterError> {
    nix::unistd::chown(path, Some(ids.uid), Some(ids.gid)).map_err(|e| ClusterError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::from(e),
    })
}

/// Every ancestor of `dir` must be searchable by the service user, or PostgreSQL cannot
/// open its data directory.
fn check_reachable(dir: &Path, ids: RunAs) -> Result<(), ClusterError> {
    for ancestor in dir.ancestors().skip(1) {
        let meta = fs::metadata(ancestor).map_err(io_err(ancestor))?;
        let mode = meta.mode();
        let ok = if meta.uid() == ids.uid.as_raw() {
            mode & 0o100 != 0
        } else if meta.gid() == ids.gid.as_raw() {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        };
        if !ok {
            return Err(ClusterError::Unreachable {
                dir: dir.to_path_buf(),
                blocker: ancestor.to_path_buf(),
            });
        }
    }
    Ok(())
}
