//! A real one-node Slurm cluster for a test (`scripts/slurm-cluster.sh` in a folder of the test's): started
//! on creation, stopped on drop. Without Slurm's packages a test skips, unless `LABD_REQUIRE_SLURM=1` (set by
//! `scripts/test.sh` where it could install them), where their absence fails it.

use crate::repo_root;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A running cluster.
pub struct Cluster {
    pub dir: PathBuf,
    /// Its `slurm.conf`: `SLURM_CONF` for labd and for the commands a test runs itself.
    pub conf: PathBuf,
}

impl Cluster {
    /// Starts a cluster in `dir`; `None` (the test skips) where Slurm is not installed and not required.
    pub fn start(dir: &Path) -> Option<Cluster> {
        let installed = Command::new("sh")
            .args([
                "-c",
                "command -v slurmctld && command -v munged && command -v sbatch",
            ])
            .output()
            .is_ok_and(|o| o.status.success());
        let required = std::env::var_os("LABD_REQUIRE_SLURM").is_some_and(|v| v == "1");
        if !installed && !required {
            eprintln!("Slurm (slurm-wlm, munge) is not installed: skipping");
            return None;
        }
        let out = Command::new(repo_root().join("scripts/slurm-cluster.sh"))
            .arg("start")
            .arg(dir)
            .output()
            .expect("scripts/slurm-cluster.sh");
        assert!(
            out.status.success(),
            "the Slurm cluster did not start: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Some(Cluster {
            dir: dir.to_path_buf(),
            conf: dir.join("slurm.conf"),
        })
    }

    /// `SLURM_CONF` for a daemon.
    pub fn env(&self) -> (&'static str, String) {
        ("SLURM_CONF", self.conf.to_string_lossy().into_owned())
    }

    /// Runs one of Slurm's commands against this cluster; answers its standard output.
    pub fn run(&self, program: &str, args: &[&str]) -> String {
        let out = Command::new(program)
            .args(args)
            .env("SLURM_CONF", &self.conf)
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        assert!(
            out.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Stops only the controller (Slurm unreachable), or starts it again with the same state.
    pub fn controller(&self, up: bool) {
        let out = Command::new(repo_root().join("scripts/slurm-cluster.sh"))
            .arg(if up {
                "start-controller"
            } else {
                "stop-controller"
            })
            .arg(&self.dir)
            .output()
            .expect("scripts/slurm-cluster.sh");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The lines of finished jobs (jobcomp/filetxt): one per array task that ran.
    pub fn finished(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("jobcomp.txt"))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(repo_root().join("scripts/slurm-cluster.sh"))
            .arg("stop")
            .arg(&self.dir)
            .output();
    }
}
