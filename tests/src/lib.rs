//! Helpers for the end-to-end tests: start the real `labd` on a temp dir and a free loopback port, drive it
//! with the real `labctl` and plain HTTP, kill it, restart it.
//!
//! The binaries are taken from the target folder these tests were built into; build them first
//! (`cargo build --workspace --bins`, which `scripts/test.sh` does).

pub mod nats;
pub mod slurm;
pub mod sweeps;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// Path of a workspace binary next to this test executable's `deps/` folder.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile> folder");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` first (scripts/test.sh does)",
        path.display()
    );
    path
}

/// The repository's root folder.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A running `labd`.
pub struct Daemon {
    child: Option<Child>,
    pub data_dir: PathBuf,
    pub watch: PathBuf,
    pub port: u16,
    pub addr: String,
    pub token: Option<String>,
    extra: Vec<String>,
    /// Run as this user and group id (tests that need permissions to apply while running as root).
    uid: Option<u32>,
    /// Environment variables set for the daemon.
    envs: Vec<(String, String)>,
}

impl Daemon {
    /// Starts labd on `data_dir`, watching `watch`, and waits until it answers.
    pub fn start(data_dir: &Path, watch: &Path, extra: &[&str]) -> Daemon {
        Daemon::start_as(data_dir, watch, extra, None)
    }

    /// Like [`Daemon::start`], as user and group `uid` when given.
    pub fn start_as(data_dir: &Path, watch: &Path, extra: &[&str], uid: Option<u32>) -> Daemon {
        Daemon::start_full(data_dir, watch, extra, uid, &[])
    }

    /// Like [`Daemon::start`], with environment variables for the daemon.
    pub fn start_with_env(
        data_dir: &Path,
        watch: &Path,
        extra: &[&str],
        envs: &[(&str, &str)],
    ) -> Daemon {
        Daemon::start_full(data_dir, watch, extra, None, envs)
    }

    fn start_full(
        data_dir: &Path,
        watch: &Path,
        extra: &[&str],
        uid: Option<u32>,
        envs: &[(&str, &str)],
    ) -> Daemon {
        let mut d = Daemon {
            uid,
            envs: envs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            child: None,
            data_dir: data_dir.to_path_buf(),
            watch: watch.to_path_buf(),
            port: free_port(),
            addr: String::new(),
            token: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        d.addr = format!("http://127.0.0.1:{}", d.port);
        d.spawn();
        d
    }

    /// Starts labd again on the same folders without waiting for it to answer (to kill it while it starts).
    pub fn restart_nowait(&mut self) {
        self.launch();
    }

    fn spawn(&mut self) {
        self.launch();
        self.wait_ready();
    }

    fn launch(&mut self) {
        // Appended to, so the log of a killed daemon stays for the next one's reader.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.with_extension(format!("{}.log", self.port)))
            .ok();
        let mut cmd = Command::new(bin("labd"));
        cmd.arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--watch")
            .arg(&self.watch)
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--rescan")
            .arg("1")
            .args(&self.extra)
            .env("RUST_LOG", "info")
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null());
        if let Some(id) = self.uid {
            use std::os::unix::process::CommandExt;
            cmd.uid(id).gid(id);
        }
        match log {
            Some(f) => cmd.stderr(f),
            None => cmd.stderr(Stdio::null()),
        };
        self.child = Some(cmd.spawn().expect("starting labd"));
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if ureq::get(format!("{}/api/v1/health", self.addr))
                .call()
                .is_ok()
            {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("labd exited at start: {status}; log: {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "labd did not answer within 30 s; log: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    /// The daemon's stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.with_extension(format!("{}.log", self.port)))
            .unwrap_or_default()
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("labd is running").id()
    }

    /// The daemon's peak resident memory so far, in MiB (VmHWM).
    pub fn peak_rss_mib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kib| kib / 1024)
    }

    /// Whether the daemon is still running.
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait; answers the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        let mut c = self.child.take().expect("labd is running");
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
        c.wait().expect("waiting for labd")
    }

    /// Starts it again on the same folders and port.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop or kill it first");
        self.spawn();
    }

    /// Runs labctl against this daemon.
    pub fn labctl(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(bin("labctl"));
        cmd.args(args)
            .env("LABD_ADDR", &self.addr)
            .env_remove("LABD_TOKEN");
        if let Some(t) = &self.token {
            cmd.env("LABD_TOKEN", t);
        }
        cmd.output().expect("running labctl")
    }

    /// Runs labctl with `--json`, expects success, parses stdout.
    pub fn labctl_json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.labctl(&all);
        if !out.status.success() {
            // The daemon's own account (a daemon that died says why there), its last lines.
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            panic!(
                "labctl {args:?} failed: {}\nlabd's log, last lines:\n{}",
                String::from_utf8_lossy(&out.stderr),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "labctl {args:?} printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// GET an API path; answers status and JSON body.
    pub fn get(&self, path: &str) -> (u16, Value) {
        request(&self.addr, "GET", path, None, self.token.as_deref())
    }

    /// POST JSON to an API path.
    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        request(&self.addr, "POST", path, Some(body), self.token.as_deref())
    }

    /// Waits until `cond` holds (polling), or panics with `what` after `secs`.
    pub fn wait_for(&self, what: &str, secs: u64, mut cond: impl FnMut(&Daemon) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !cond(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Experiments as `labctl ls --json` lists them.
    pub fn ls(&self) -> Vec<Value> {
        self.labctl_json(&["ls"])
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Metric points in all, over every experiment.
    pub fn total_points(&self) -> u64 {
        self.ls()
            .iter()
            .map(|r| r["points"].as_u64().unwrap_or(0))
            .sum()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// One HTTP request with an optional JSON body and bearer token; answers status and JSON (or `{"text":..}`).
/// Panics when the daemon cannot be reached.
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
    token: Option<&str>,
) -> (u16, Value) {
    try_request(addr, method, path, body, token)
        .unwrap_or_else(|e| panic!("{method} {addr}{path}: {e}"))
}

/// Like [`request`], answering transport errors instead of panicking.
pub fn try_request(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
    token: Option<&str>,
) -> Result<(u16, Value), String> {
    try_request_to(&format!("{addr}/api/v1{path}"), method, body, token)
}

/// A request to any path of the listener (MLflow's API, say), not only `/api/v1`'s; as [`request`].
pub fn request_path(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
    token: Option<&str>,
) -> (u16, Value) {
    try_request_to(&format!("{addr}{path}"), method, body, token)
        .unwrap_or_else(|e| panic!("{method} {addr}{path}: {e}"))
}

fn try_request_to(
    url: &str,
    method: &str,
    body: Option<&Value>,
    token: Option<&str>,
) -> Result<(u16, Value), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let url = url.to_string();
    let res = match (method, body) {
        ("GET", _) => {
            let mut r = agent.get(&url);
            if let Some(t) = token {
                r = r.header("Authorization", format!("Bearer {t}"));
            }
            r.call()
        }
        ("DELETE", _) => {
            let mut r = agent.delete(&url);
            if let Some(t) = token {
                r = r.header("Authorization", format!("Bearer {t}"));
            }
            r.call()
        }
        (method, body) => {
            let mut r = if method == "PATCH" {
                agent.patch(&url)
            } else {
                agent.post(&url)
            };
            if let Some(t) = token {
                r = r.header("Authorization", format!("Bearer {t}"));
            }
            match body {
                Some(b) => r.send_json(b),
                None => r.send_empty(),
            }
        }
    };
    let mut res = res.map_err(|e| e.to_string())?;
    let status = res.status().as_u16();
    let text = res
        .body_mut()
        .with_config()
        .limit(u64::MAX)
        .read_to_string()
        .unwrap_or_default();
    let json = serde_json::from_str(&text).unwrap_or_else(|_| serde_json::json!({ "text": text }));
    Ok((status, json))
}

/// Sends only the head of a request announcing `content_length` bytes; answers the status line the server
/// sends back (a server must be able to refuse an oversized body without reading it).
pub fn announce_body(addr: &str, path: &str, content_length: usize) -> String {
    use std::io::{Read, Write};
    let host = addr.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(host).expect("connect");
    let _ = write!(
        s,
        "POST /api/v1{path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {content_length}\r\nConnection: close\r\n\r\n["
    );
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

/// Kills a child process when dropped (so a failing test leaves no daemon behind).
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Writes a run log with `steps` metrics lines of two values each; answers the points written.
pub fn write_run(path: &Path, name: &str, steps: usize, finish: bool) -> u64 {
    use std::fmt::Write;
    let mut text = format!(
        "{{\"kind\":\"run\",\"name\":\"{name}\",\"config\":{{\"optim\":{{\"lr\":0.01}},\"name\":\"{name}\"}},\"tags\":[\"t\"]}}\n"
    );
    for s in 0..steps {
        let _ = writeln!(
            text,
            "{{\"kind\":\"metrics\",\"split\":\"train\",\"step\":{s},\"values\":{{\"loss\":{},\"acc\":{}}}}}",
            1.0 / (s as f64 + 1.0),
            s as f64 / steps as f64
        );
    }
    if finish {
        text.push_str("{\"kind\":\"status\",\"status\":\"completed\"}\n");
    }
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).expect("creating folder");
    }
    std::fs::write(path, text).expect("writing run log");
    steps as u64 * 2
}

/// Copies the fixture folder `rel` (under `tests/fixtures/formats`) to `to`.
pub fn copy_fixture(rel: &str, to: &std::path::Path) {
    let from = repo_root().join("tests/fixtures/formats").join(rel);
    let mut stack = vec![(from, to.to_path_buf())];
    while let Some((src, dst)) = stack.pop() {
        std::fs::create_dir_all(&dst).unwrap();
        for e in std::fs::read_dir(&src).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push((p.clone(), dst.join(e.file_name())));
            } else {
                std::fs::copy(&p, dst.join(e.file_name())).unwrap();
            }
        }
    }
}
