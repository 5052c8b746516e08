//! The private PostgreSQL cluster of the zero-config mode.
//!
//! `eventgate serve` without `DATABASE_URL` keeps a cluster in `<data-dir>/pg`, made with the
//! PostgreSQL server binaries already on the machine. It listens on 127.0.0.1 only, on a
//! port picked free at each start, with a random password kept in `<data-dir>/credentials`
//! (mode 0600), so no other local user can use it. initdb refuses to run as root, so as
//! root the cluster belongs to the `postgres` system user and its tools run via `runuser`.
//! A cluster left running by a killed eventgate is reused as it is.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sqlx::postgres::PgConnectOptions;
use tokio::process::Command;

const SUPERUSER: &str = "eventgate";
const RUN_AS_WHEN_ROOT: &str = "postgres";

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedPgError {
    #[error(
        "no PostgreSQL server binaries (initdb, pg_ctl, postgres) found via pg_config, PATH or /usr/lib/postgresql/*/bin; install them (Debian: apt-get install postgresql) or set DATABASE_URL"
    )]
    BinariesNotFound,
    #[error(
        "running as root, the private cluster must belong to the '{RUN_AS_WHEN_ROOT}' system user, which does not exist (install the postgresql package or set DATABASE_URL)"
    )]
    NoServiceUser,
    #[error("cannot prepare data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("could not run {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("{step} failed ({status}): {stderr}")]
    Step {
        step: &'static str,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("the cluster in {0} looks running but its postmaster.pid has no port")]
    UnreadablePid(PathBuf),
    #[error("cannot pick a free port: {0}")]
    Port(std::io::Error),
    #[error("the operating system's random number generator failed: {0}")]
    Random(getrandom::Error),
}

/// A running private cluster. Call [`EmbeddedPostgres::stop`] on shutdown.
#[derive(Debug)]
pub struct EmbeddedPostgres {
    bin: PathBuf,
    pgdata: PathBuf,
    port: u16,
    password: String,
    run_as: Option<&'static str>,
    /// False when we found the cluster already running: then we leave it running.
    owned: bool,
}

impl EmbeddedPostgres {
    /// Creates the cluster if `data_dir` has none, then starts it (or adopts a running one).
    pub async fn start(data_dir: &Path) -> Result<Self, EmbeddedPgError> {
        let bin = find_binaries()
            .await
            .ok_or(EmbeddedPgError::BinariesNotFound)?;
        let run_as = running_as_root().then_some(RUN_AS_WHEN_ROOT);
        if run_as.is_some() && !user_exists(RUN_AS_WHEN_ROOT).await {
            return Err(EmbeddedPgError::NoServiceUser);
        }
        let data_dir = prepare_data_dir(data_dir, run_as.is_some())?;
        let pgdata = data_dir.join("pg");
        let credentials = data_dir.join("credentials");

        let password = if pgdata.join("PG_VERSION").exists() {
            read_credentials(&credentials)?
        } else {
            let password = random_password()?;
            init_cluster(&bin, &pgdata, &data_dir, &password, run_as).await?;
            write_private_file(&credentials, &password)?;
            password
        };

        let mut cluster = Self {
            bin,
            pgdata,
            port: 0,
            password,
            run_as,
            owned: true,
        };
        if let Some(port) = cluster.running_port().await? {
            tracing::info!(
                port,
                "reusing the private PostgreSQL cluster that is already running"
            );
            cluster.port = port;
            cluster.owned = false;
        } else {
            cluster.port = free_port()?;
            cluster.pg_ctl_start().await?;
            tracing::info!(port = cluster.port, pgdata = %cluster.pgdata.display(), "started the private PostgreSQL cluster");
        }
        Ok(cluster)
    }

    pub fn connect_options(&self) -> PgConnectOptions {
        PgConnectOptions::new()
            .host("127.0.0.1")
            .port(self.port)
            .username(SUPERUSER)
            .password(&self.password)
            .database("postgres")
    }

    /// The port the cluster listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the cluster if this process started it.
    pub async fn stop(self) -> Result<(), EmbeddedPgError> {
        if !self.owned {
            return Ok(());
        }
        self.stop_server().await?;
        tracing::info!("stopped the private PostgreSQL cluster");
        Ok(())
    }

    /// Stops the server ("fast": sessions are ended, as on a service restart) but keeps
    /// this handle, so [`EmbeddedPostgres::start_server`] can bring it back on the same port.
    /// The fault tests restart PostgreSQL under a running eventgate this way.
    pub async fn stop_server(&self) -> Result<(), EmbeddedPgError> {
        let pg_ctl = self.bin.join("pg_ctl");
        let pgdata = self.pgdata.to_string_lossy().into_owned();
        let output = self
            .run(&pg_ctl, &["-D", &pgdata, "-m", "fast", "-w", "stop"])
            .await?;
        check("pg_ctl stop", output)
    }

    /// Starts a server stopped with [`EmbeddedPostgres::stop_server`] on the same port.
    pub async fn start_server(&self) -> Result<(), EmbeddedPgError> {
        self.pg_ctl_start().await
    }

    async fn running_port(&self) -> Result<Option<u16>, EmbeddedPgError> {
        let pg_ctl = self.bin.join("pg_ctl");
        let pgdata = self.pgdata.to_string_lossy().into_owned();
        let status = self.run(&pg_ctl, &["-D", &pgdata, "status"]).await?;
        if !status.status.success() {
            return Ok(None);
        }
        // postmaster.pid line 4 is the port (PostgreSQL's documented lock-file layout).
        let pid_file = self.pgdata.join("postmaster.pid");
        let contents =
            std::fs::read_to_string(&pid_file).map_err(|source| EmbeddedPgError::DataDir {
                path: pid_file.clone(),
                source,
            })?;
        contents
            .lines()
            .nth(3)
            .and_then(|line| line.trim().parse().ok())
            .map(Some)
            .ok_or(EmbeddedPgError::UnreadablePid(self.pgdata.clone()))
    }

    async fn pg_ctl_start(&self) -> Result<(), EmbeddedPgError> {
        let pg_ctl = self.bin.join("pg_ctl");
        let pgdata = self.pgdata.to_string_lossy().into_owned();
        let log = self
            .pgdata
            .join("server.log")
            .to_string_lossy()
            .into_owned();
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''",
            self.port
        );
        let output = self
            .run(
                &pg_ctl,
                &[
                    "-D", &pgdata, "-l", &log, "-o", &options, "-w", "-t", "60", "start",
                ],
            )
            .await?;
        check("pg_ctl start", output).map_err(|err| match err {
            EmbeddedPgError::Step {
                step,
                status,
                stderr,
            } => EmbeddedPgError::Step {
                step,
                status,
                stderr: format!("{stderr} (see {log})"),
            },
            other => other,
        })
    }

    async fn run(&self, program: &Path, args: &[&str]) -> Result<Output, EmbeddedPgError> {
        run_tool(program, args, self.run_as).await
    }
}

async fn run_tool(
    program: &Path,
    args: &[&str],
    run_as: Option<&str>,
) -> Result<Output, EmbeddedPgError> {
    let mut command = match run_as {
        Some(user) => {
            let mut command = Command::new("runuser");
            command.args(["-u", user, "--"]).arg(program);
            command
        }
        None => Command::new(program),
    };
    // The service user may not be able to enter our working directory.
    command.args(args).current_dir("/").kill_on_drop(true);
    command
        .output()
        .await
        .map_err(|source| EmbeddedPgError::Spawn {
            program: program.display().to_string(),
            source,
        })
}

fn check(step: &'static str, output: Output) -> Result<(), EmbeddedPgError> {
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    Err(EmbeddedPgError::Step {
        step,
        status: output.status,
        stderr: format!("{} {}", stderr.trim(), stdout.trim())
            .trim()
            .to_owned(),
    })
}

async fn init_cluster(
    bin: &Path,
    pgdata: &Path,
    data_dir: &Path,
    password: &str,
    run_as: Option<&str>,
) -> Result<(), EmbeddedPgError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| EmbeddedPgError::DataDir { path, source }
    };
    std::fs::create_dir_all(pgdata).map_err(io_err(pgdata))?;
    std::fs::set_permissions(pgdata, std::fs::Permissions::from_mode(0o700))
        .map_err(io_err(pgdata))?;
    // initdb reads the superuser password from a file; it lives only for this call.
    let pwfile = data_dir.join("initdb.pw");
    write_private_file(&pwfile, password)?;
    if let Some(user) = run_as {
        chown(user, pgdata).await?;
        chown(user, &pwfile).await?;
    }
    let output = run_tool(
        &bin.join("initdb"),
        &[
            "-D",
            &pgdata.to_string_lossy(),
            "-U",
            SUPERUSER,
            "--pwfile",
            &pwfile.to_string_lossy(),
            "-A",
            "scram-sha-256",
            "-E",
            "UTF8",
            "--no-instructions",
        ],
        run_as,
    )
    .await;
    let _ = std::fs::remove_file(&pwfile);
    check("initdb", output?)
}

async fn chown(user: &str, path: &Path) -> Result<(), EmbeddedPgError> {
    let output = Command::new("chown")
        .arg(format!("{user}:"))
        .arg(path)
        .output()
        .await
        .map_err(|source| EmbeddedPgError::Spawn {
            program: "chown".into(),
            source,
        })?;
    check("chown", output)
}

/// Creates the data dir and returns its absolute path. As root it must be traversable by
/// the service user, so it is made 0711 (enter, not list).
fn prepare_data_dir(data_dir: &Path, as_root: bool) -> Result<PathBuf, EmbeddedPgError> {
    let io_err = |source| EmbeddedPgError::DataDir {
        path: data_dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(data_dir).map_err(io_err)?;
    let mode = if as_root { 0o711 } else { 0o700 };
    std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(mode)).map_err(io_err)?;
    std::fs::canonicalize(data_dir).map_err(io_err)
}

fn write_private_file(path: &Path, contents: &str) -> Result<(), EmbeddedPgError> {
    let io_err = |source| EmbeddedPgError::DataDir {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err)?;
    file.write_all(contents.as_bytes()).map_err(io_err)
}

fn read_credentials(path: &Path) -> Result<String, EmbeddedPgError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .map_err(|source| EmbeddedPgError::DataDir {
            path: path.to_path_buf(),
            source,
        })
}

fn random_password() -> Result<String, EmbeddedPgError> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(EmbeddedPgError::Random)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

fn free_port() -> Result<u16, EmbeddedPgError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(EmbeddedPgError::Port)?;
    listener
        .local_addr()
        .map(|addr| addr.port())
        .map_err(EmbeddedPgError::Port)
}

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

async fn user_exists(user: &str) -> bool {
    Command::new("id")
        .arg("-u")
        .arg(user)
        .output()
        .await
        .is_ok_and(|output| output.status.success())
}

/// The first directory holding initdb, pg_ctl and postgres: `pg_config --bindir`, then
/// PATH, then the newest `/usr/lib/postgresql/<major>/bin`.
async fn find_binaries() -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output().await
        && output.status.success()
    {
        candidates.push(PathBuf::from(
            String::from_utf8_lossy(&output.stdout).trim(),
        ));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path));
    }
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versioned: Vec<(u32, PathBuf)> = entries
            .flatten()
            .filter_map(|entry| {
                let major = entry.file_name().to_str()?.parse().ok()?;
                Some((major, entry.path().join("bin")))
            })
            .collect();
        versioned.sort_by_key(|(major, _)| std::cmp::Reverse(*major));
        candidates.extend(versioned.into_iter().map(|(_, path)| path));
    }
    candidates.into_iter().find(|dir| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|tool| dir.join(tool).is_file())
    })
}
