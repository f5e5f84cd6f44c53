//! Configuration: flags, `LABD_*` environment variables and an optional TOML file, merged in that order of
//! precedence (flag > env > file > default) into one validated [`Config`].

mod alerts;
mod federation;

pub use alerts::{Alerts, CommandSink, Webhook};
pub use federation::{Auth, Federation, NatsUrl, Role, Tls, shown_url};

use crate::ingest;
use clap::{Parser, Subcommand};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Configuration errors, each naming the setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("--listen {value:?}: {reason}")]
    Listen { value: String, reason: String },
    #[error(
        "refusing to listen on {addr} without a token: anything off loopback must be protected; set LABD_TOKEN (or --token)"
    )]
    TokenRequired { addr: SocketAddr },
    #[error("{setting}: {reason}")]
    Invalid {
        setting: &'static str,
        reason: String,
    },
}

/// `labd`: the daemon. Without a subcommand it runs (ingests, serves the API).
#[derive(Parser, Debug, Default)]
#[command(
    name = "labd",
    version,
    about = "labd: the replayable record of every ML experiment on this host"
)]
pub struct Cli {
    /// Folder holding labd's database (default: $STATE_DIRECTORY under systemd, else ./labd-data).
    #[arg(long, env = "LABD_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Folder to watch for run logs, recursively (repeatable; env: comma-separated). Default <data-dir>/inbox.
    #[arg(long, env = "LABD_WATCH", value_delimiter = ',')]
    pub watch: Vec<PathBuf>,
    /// Address of the HTTP API (default 127.0.0.1:7420).
    #[arg(long, env = "LABD_LISTEN")]
    pub listen: Option<String>,
    /// TOML configuration file.
    #[arg(long, env = "LABD_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Ingest what is in the watched folders, then exit.
    #[arg(long, env = "LABD_ONCE")]
    pub once: bool,
    /// Bearer token required for every request when listening off loopback, and for changes always.
    #[arg(long, env = "LABD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Seconds without news after which a running run shows as `stale` (default 600).
    #[arg(long, env = "LABD_STALE_AFTER")]
    pub stale_after: Option<f64>,
    /// Seconds between full rescans of the watched folders (default 5).
    #[arg(long, env = "LABD_RESCAN")]
    pub rescan: Option<f64>,
    /// Seconds between usage samples of running sweep trials (default 5).
    #[arg(long, env = "LABD_SWEEP_HEARTBEAT")]
    pub sweep_heartbeat: Option<f64>,
    /// The CMR benchmark runner (built with `--features torch`); default: `labd-cmr` beside this binary.
    #[arg(long, env = "LABD_CMR_RUNNER")]
    pub cmr_runner: Option<PathBuf>,
    /// Longest line accepted in a log, in bytes (default 1 MiB).
    #[arg(long, env = "LABD_MAX_LINE_BYTES")]
    pub max_line_bytes: Option<usize>,
    /// Largest HTTP request body, in bytes (default 16 MiB).
    #[arg(long, env = "LABD_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Free bytes kept on the data directory's file system: below them intake pauses (and resumes once space
    /// is freed) instead of failing a write (default 64 MiB; 0: no reserve).
    #[arg(long, env = "LABD_MIN_FREE_BYTES")]
    pub min_free_bytes: Option<u64>,
    /// Seconds between saves of the views' checkpoint while running (default 30; a restart replays only what
    /// came after the last one).
    #[arg(long, env = "LABD_CHECKPOINT_EVERY")]
    pub checkpoint_every: Option<f64>,
    /// Seconds an HTTP client may take to send a request's headers, or to take a piece of the answer,
    /// before its connection is closed (default 30).
    #[arg(long, env = "LABD_CLIENT_TIMEOUT")]
    pub client_timeout: Option<f64>,
    /// Seconds a request may take, its body included, before it is answered 408 (default 120; the event tail
    /// is exempt).
    #[arg(long, env = "LABD_REQUEST_TIMEOUT")]
    pub request_timeout: Option<f64>,
    /// Most HTTP connections open at once; more wait to be accepted (default 512).
    #[arg(long, env = "LABD_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Host name recorded with each run (default: this machine's).
    #[arg(long, env = "LABD_HOST")]
    /// Clock of the time in new experiment ids: `utc` (default) or `local`, as the experiment manager wrote them.
    #[arg(long, env = "LABD_ID_TIME")]
    pub id_time: Option<String>,
    pub host: Option<String>,
    /// Globs of config keys left out of grouping (comma-separated; default: seeds, paths, folders, outputs,
    /// checkpoints, timestamps, names).
    #[arg(long, env = "LABD_NOISE_KEYS", value_delimiter = ',')]
    pub noise_keys: Vec<String>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Rebuild the views from the log of a stopped daemon's data directory (offline).
    Replay {
        /// Build the views as of a sequence number or RFC 3339 time, and print them, leaving the saved ones alone.
        #[arg(long)]
        as_of: Option<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// A watched folder in the TOML file: a path, or `{ path = "...", format = "tensorboard" }`.
#[derive(Deserialize, Debug)]
#[serde(untagged)]
enum WatchEntry {
    Path(PathBuf),
    WithFormat { path: PathBuf, format: String },
}

/// `PATH=FORMAT` on the command line: a watched folder whose files are read as FORMAT.
fn split_format(p: &Path) -> (PathBuf, Option<String>) {
    let text = p.to_string_lossy();
    match text.rsplit_once('=') {
        Some((path, f)) if labd_sources::Format::from_user(f).is_some() || f == "auto" => {
            (PathBuf::from(path), Some(f.to_string()))
        }
        _ => (p.to_path_buf(), None),
    }
}

/// The TOML file: the same settings as the flags.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    #[serde(default)]
    watch: Vec<WatchEntry>,
    listen: Option<String>,
    token: Option<String>,
    once: Option<bool>,
    stale_after: Option<f64>,
    rescan: Option<f64>,
    sweep_heartbeat: Option<f64>,
    cmr_runner: Option<PathBuf>,
    max_line_bytes: Option<usize>,
    max_body_bytes: Option<usize>,
    checkpoint_every: Option<f64>,
    min_free_bytes: Option<u64>,
    client_timeout: Option<f64>,
    request_timeout: Option<f64>,
    max_connections: Option<usize>,
    host: Option<String>,
    id_time: Option<String>,
    noise_keys: Option<Vec<String>>,
    #[serde(default)]
    display: crate::analytics::display::Display,
    /// Metric name or glob → default reduction.
    #[serde(default)]
    reductions: std::collections::BTreeMap<String, String>,
    /// The site's Slurm: where its commands are, the shared folder, how often to poll.
    #[serde(default)]
    slurm: SlurmFile,
    /// This labd's place in a lab-wide ledger over NATS JetStream.
    #[serde(default)]
    federation: federation::FederationFile,
    /// Alert rules and where their firings go.
    #[serde(default)]
    alerts: alerts::AlertsFile,
}

/// `[slurm]` in the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SlurmFile {
    sbatch: Option<PathBuf>,
    squeue: Option<PathBuf>,
    sacct: Option<PathBuf>,
    scancel: Option<PathBuf>,
    dir: Option<PathBuf>,
    poll: Option<f64>,
}

/// The site's Slurm, for sweeps with `executor: slurm`.
#[derive(Clone, Debug)]
pub struct Slurm {
    /// The commands (names are looked up on the PATH).
    pub sbatch: PathBuf,
    pub squeue: PathBuf,
    pub sacct: PathBuf,
    pub scancel: PathBuf,
    /// Where Slurm sweeps' trial folders and run logs go: on storage the nodes share; watched by labd.
    pub dir: PathBuf,
    /// Time between two polls of Slurm's queue.
    pub poll: Duration,
}

/// The bearer token. Its `Debug` form hides it, so that it never reaches a log through the configuration.
#[derive(Clone)]
pub struct Token(pub String);

impl Token {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<hidden>)")
    }
}

/// The validated configuration of a daemon.
#[derive(Clone, Debug)]
pub struct Config {
    pub data_dir: PathBuf,
    pub watch: Vec<PathBuf>,
    /// Watched folders whose files are read as one format (not judged by name), from `{path, format}` entries.
    pub formats: Vec<(PathBuf, labd_sources::Format)>,
    pub listen: SocketAddr,
    pub token: Option<Token>,
    pub once: bool,
    pub stale_after: Duration,
    pub rescan: Duration,
    pub ingest: ingest::Options,
    pub max_body_bytes: usize,
    /// Free bytes kept on the data directory's file system (intake pauses below them).
    pub min_free_bytes: u64,
    /// Longest wait for a client's headers or for a client to take a piece of an answer.
    pub client_timeout: Duration,
    /// Longest time for one request (the event tail is exempt).
    pub request_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
    pub host: String,
    /// How often the views' checkpoint is saved while running.
    pub checkpoint_every: Duration,
    /// Config keys left out of grouping.
    pub noise: crate::analytics::params::Noise,
    /// Display names of parameters and values in tables (`[display]` in the TOML file).
    pub display: crate::analytics::display::Display,
    /// Default reductions per metric (`[reductions]` in the TOML file).
    pub reductions: crate::analytics::reduce::Reductions,
    /// How often running trials' usage is sampled and recorded.
    pub sweep_heartbeat: Duration,
    /// The CMR benchmark runner; `None`: `labd-cmr` beside the labd binary.
    pub cmr_runner: Option<PathBuf>,
    /// The site's Slurm (`[slurm]`); the defaults work where sbatch is on the PATH and the data folder is on
    /// storage the nodes share.
    pub slurm: Slurm,
    /// `[federation]`: publishing to and consuming from a lab-wide ledger over NATS JetStream; `None`: this
    /// labd keeps its ledger to itself.
    pub federation: Option<Federation>,
    /// `[alerts]`: the file's rules and the sinks firings go to.
    pub alerts: Alerts,
}

impl Config {
    /// A configuration for tests and embedding: data in `data_dir`, watching `<data_dir>/inbox`, an ephemeral
    /// loopback port.
    pub fn for_dir(data_dir: &Path) -> Config {
        Config {
            data_dir: data_dir.to_path_buf(),
            watch: vec![data_dir.join("inbox")],
            formats: Vec::new(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            token: None,
            once: false,
            stale_after: Duration::from_secs(600),
            rescan: Duration::from_secs(5),
            ingest: ingest::Options::default(),
            max_body_bytes: 16 << 20,
            min_free_bytes: labd_log::DEFAULT_MIN_FREE,
            client_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(120),
            max_connections: 512,
            host: hostname(),
            checkpoint_every: Duration::from_secs(30),
            noise: Default::default(),
            display: Default::default(),
            reductions: Default::default(),
            sweep_heartbeat: Duration::from_secs(5),
            cmr_runner: None,
            slurm: Slurm {
                sbatch: "sbatch".into(),
                squeue: "squeue".into(),
                sacct: "sacct".into(),
                scancel: "scancel".into(),
                dir: data_dir.join("sweeps"),
                poll: Duration::from_secs(2),
            },
            federation: None,
            alerts: Alerts {
                journal: true,
                ..Default::default()
            },
        }
    }

    /// The database file.
    /// Where sweeps keep their trials' folders (watched, so trials' run logs are ingested).
    pub fn sweeps_dir(&self) -> PathBuf {
        self.data_dir.join("sweeps")
    }

    /// Where benchmarks keep their configuration, runner log and result lines (watched like a drop folder).
    pub fn benchmarks_dir(&self) -> PathBuf {
        self.data_dir.join("benchmarks")
    }

    pub fn log_path(&self) -> PathBuf {
        self.data_dir.join("labd.redb")
    }

    /// Whether the API listens on loopback only.
    pub fn loopback(&self) -> bool {
        self.listen.ip().is_loopback()
    }

    /// Merges flags, environment (already folded into `cli` by clap) and the TOML file.
    pub fn from_cli(cli: &Cli) -> Result<Config, ConfigError> {
        let (file, base) = match &cli.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                let file: FileConfig = toml::from_str(&text).map_err(|e| ConfigError::File {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                (
                    file,
                    path.parent().map(Path::to_path_buf).unwrap_or_default(),
                )
            }
            None => (FileConfig::default(), PathBuf::new()),
        };
        let rel = |p: &PathBuf| {
            if p.is_absolute() {
                p.clone()
            } else {
                base.join(p)
            }
        };
        let data_dir = cli
            .data_dir
            .clone()
            .or_else(|| file.data_dir.as_ref().map(rel))
            .or_else(|| std::env::var_os("STATE_DIRECTORY").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("labd-data"));
        let data_dir = absolute(&data_dir)?;
        let mut config = Config::for_dir(&data_dir);
        let entries: Vec<(PathBuf, Option<String>)> = if !cli.watch.is_empty() {
            cli.watch.iter().map(|p| split_format(p)).collect()
        } else if !file.watch.is_empty() {
            file.watch
                .iter()
                .map(|w| match w {
                    WatchEntry::Path(p) => (rel(p), None),
                    WatchEntry::WithFormat { path, format } => (rel(path), Some(format.clone())),
                })
                .collect()
        } else {
            vec![(data_dir.join("inbox"), None)]
        };
        config.watch.clear();
        for (path, format) in entries {
            let path = absolute(&path)?;
            match format.as_deref() {
                None | Some("auto") => {}
                Some(name) => {
                    let f = labd_sources::Format::from_user(name).ok_or_else(|| {
                        ConfigError::Invalid {
                            setting: "watch",
                            reason: format!(
                                "{}: unknown format {name:?}; use {}",
                                path.display(),
                                labd_sources::Format::USER_NAMES
                            ),
                        }
                    })?;
                    config.formats.push((path.clone(), f));
                }
            }
            config.watch.push(path);
        }
        let listen = cli
            .listen
            .clone()
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:7420".into());
        config.listen =
            listen
                .parse()
                .map_err(|e: std::net::AddrParseError| ConfigError::Listen {
                    value: listen.clone(),
                    reason: e.to_string(),
                })?;
        config.token = cli
            .token
            .clone()
            .or(file.token)
            .filter(|t| !t.is_empty())
            .map(Token);
        config.once = cli.once || file.once.unwrap_or(false);
        if let Some(s) = cli.stale_after.or(file.stale_after) {
            config.stale_after = seconds("stale_after", s)?;
        }
        if let Some(s) = cli.rescan.or(file.rescan) {
            config.rescan = seconds("rescan", s)?;
        }
        if let Some(r) = cli.cmr_runner.clone().or(file.cmr_runner.clone()) {
            config.cmr_runner = Some(r);
        }
        if let Some(s) = cli.sweep_heartbeat.or(file.sweep_heartbeat) {
            config.sweep_heartbeat = seconds("sweep_heartbeat", s)?;
        }
        if let Some(n) = cli.max_line_bytes.or(file.max_line_bytes) {
            if n < 64 {
                return Err(ConfigError::Invalid {
                    setting: "max_line_bytes",
                    reason: format!("{n} is too small (at least 64)"),
                });
            }
            config.ingest.max_line = n;
        }
        if let Some(n) = cli.max_body_bytes.or(file.max_body_bytes) {
            config.max_body_bytes = n;
        }
        if let Some(s) = cli.checkpoint_every.or(file.checkpoint_every) {
            config.checkpoint_every = seconds("checkpoint_every", s)?;
        }
        if let Some(n) = cli.min_free_bytes.or(file.min_free_bytes) {
            config.min_free_bytes = n;
        }
        if let Some(s) = cli.client_timeout.or(file.client_timeout) {
            config.client_timeout = seconds("client_timeout", s)?;
        }
        if let Some(s) = cli.request_timeout.or(file.request_timeout) {
            config.request_timeout = seconds("request_timeout", s)?;
        }
        if let Some(n) = cli.max_connections.or(file.max_connections) {
            if n == 0 {
                return Err(ConfigError::Invalid {
                    setting: "max_connections",
                    reason: "0 would refuse every client (at least 1)".into(),
                });
            }
            config.max_connections = n;
        }
        if let Some(h) = cli.host.clone().or(file.host) {
            config.host = h;
        }
        if let Some(t) = cli.id_time.clone().or(file.id_time) {
            config.ingest.id_clock = t.parse().map_err(|reason| ConfigError::Invalid {
                setting: "id_time",
                reason,
            })?;
        }
        if !cli.noise_keys.is_empty() {
            config.noise = crate::analytics::params::Noise(cli.noise_keys.clone());
        } else if let Some(keys) = file.noise_keys {
            config.noise = crate::analytics::params::Noise(keys);
        }
        config.slurm.dir = config.data_dir.join("sweeps");
        let site = file.slurm;
        for (setting, given) in [
            (&mut config.slurm.sbatch, site.sbatch),
            (&mut config.slurm.squeue, site.squeue),
            (&mut config.slurm.sacct, site.sacct),
            (&mut config.slurm.scancel, site.scancel),
        ] {
            // A bare name is looked up on the PATH; a path is relative to the file.
            if let Some(p) = given {
                *setting = if p.components().count() > 1 {
                    rel(&p)
                } else {
                    p
                };
            }
        }
        if let Some(d) = site.dir {
            config.slurm.dir = absolute(&rel(&d))?;
        }
        if let Some(s) = site.poll {
            config.slurm.poll = seconds("[slurm] poll", s)?;
        }
        config.alerts = alerts::resolve(file.alerts)?;
        config.federation = federation::resolve(file.federation, &config.host, &|p: &Path| {
            rel(&p.to_path_buf())
        })?;
        config.display = file.display;
        config.reductions =
            crate::analytics::reduce::Reductions::parse(&file.reductions).map_err(|e| {
                ConfigError::Invalid {
                    setting: "[reductions]",
                    reason: e.to_string(),
                }
            })?;
        if !config.loopback() && config.token.is_none() {
            return Err(ConfigError::TokenRequired {
                addr: config.listen,
            });
        }
        Ok(config)
    }
}

/// Paths are stored in events as text: make them canonical (absolute, symlinks resolved) so one file has one
/// name whichever way it was reached; a path that does not exist yet is made absolute.
fn absolute(p: &Path) -> Result<PathBuf, ConfigError> {
    if let Ok(canonical) = std::fs::canonicalize(p) {
        return Ok(canonical);
    }
    std::path::absolute(p).map_err(|e| ConfigError::Invalid {
        setting: "path",
        reason: format!("{}: {e}", p.display()),
    })
}

fn seconds(setting: &'static str, s: f64) -> Result<Duration, ConfigError> {
    Duration::try_from_secs_f64(s)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| ConfigError::Invalid {
            setting,
            reason: format!("{s} is not a positive number of seconds"),
        })
}

/// This machine's host name.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into the buffer we own.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_the_file_and_paths_in_the_file_are_relative_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("labd.toml");
        std::fs::write(
            &file,
            "data_dir = \"data\"\nwatch = [\"runs\"]\nlisten = \"127.0.0.1:9999\"\nrescan = 2\n[display.names]\n\"optim.lr\" = \"LR\"\n",
        )
        .unwrap();
        let cli = Cli {
            config: Some(file),
            listen: Some("127.0.0.1:8888".into()),
            ..Default::default()
        };
        let c = Config::from_cli(&cli).unwrap();
        assert_eq!(c.data_dir, dir.path().join("data"));
        assert_eq!(c.watch, vec![dir.path().join("runs")]);
        assert_eq!(c.listen.port(), 8888);
        assert_eq!(c.rescan, Duration::from_secs(2));
        assert_eq!(c.display.name("optim.lr"), "LR");
    }

    #[test]
    fn off_loopback_needs_a_token_and_typos_are_named() {
        let cli = Cli {
            data_dir: Some("/tmp/x".into()),
            listen: Some("0.0.0.0:7420".into()),
            ..Default::default()
        };
        assert!(matches!(
            Config::from_cli(&cli),
            Err(ConfigError::TokenRequired { .. })
        ));
        let cli = Cli {
            token: Some("s3cret-t0ken".into()),
            ..cli
        };
        let config = Config::from_cli(&cli).unwrap();
        assert!(
            !format!("{config:?}").contains("s3cret-t0ken"),
            "the token stays out of debug output"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("labd.toml");
        std::fs::write(&file, "wach = [\"runs\"]\n").unwrap();
        let err = Config::from_cli(&Cli {
            config: Some(file),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("wach"), "{err}");
    }

    #[test]
    fn watched_folders_can_fix_their_format() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("labd.toml");
        std::fs::write(
            &file,
            "watch = [\"runs\", { path = \"tb\", format = \"tensorboard\" }]\n",
        )
        .unwrap();
        let cli = Cli {
            config: Some(file.clone()),
            ..Default::default()
        };
        let c = Config::from_cli(&cli).unwrap();
        assert_eq!(c.watch.len(), 2);
        assert_eq!(
            c.formats,
            vec![(dir.path().join("tb"), labd_sources::Format::TensorBoard)]
        );
        std::fs::write(&file, "watch = [{ path = \"x\", format = \"excel\" }]\n").unwrap();
        let err = Config::from_cli(&cli).unwrap_err().to_string();
        assert!(err.contains("unknown format \"excel\""), "{err}");
        let cli = Cli {
            watch: vec![PathBuf::from("/data/logs=lightning"), PathBuf::from("/a=b")],
            ..Default::default()
        };
        let c = Config::from_cli(&cli).unwrap();
        assert_eq!(
            c.watch,
            vec![PathBuf::from("/data/logs"), PathBuf::from("/a=b")]
        );
        assert_eq!(c.formats.len(), 1);
    }
}
