//! Helpers for the sweep tests: the example training script, a daemon with a fast heartbeat, a sweep's status,
//! waiting for its state, its trials, a trial's stderr, files under a folder, a sleeping trial's process.

use crate::{Daemon, repo_root};
use serde_json::Value;
use std::path::{Path, PathBuf};

pub fn train() -> String {
    repo_root()
        .join("sweeps/examples/train.py")
        .to_string_lossy()
        .into_owned()
}

/// A daemon with a fast heartbeat, and a base config in `tmp`.
pub fn setup(tmp: &Path) -> (Daemon, PathBuf) {
    let base = tmp.join("base.json");
    std::fs::write(
        &base,
        r#"{"optim": {"lr": 0.01}, "epochs": 2, "steps_per_epoch": 3, "seed": 0}"#,
    )
    .unwrap();
    let d = Daemon::start(
        &tmp.join("data"),
        &tmp.join("inbox"),
        &["--sweep-heartbeat", "0.3"],
    );
    (d, base)
}

/// `labctl sweep run FILE [ARGS...]`, which must succeed.
pub fn run_file(d: &Daemon, file: &Path, args: &[&str]) {
    let mut all = vec!["sweep", "run", file.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = d.labctl(&all);
    assert!(
        out.status.success(),
        "labctl {all:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A trial script with two objectives that pull apart, written into `dir`: from the config's `width` and
/// `bad`, one point with `loss` = 1/width + bad and `cost` = width + bad (a wider model: lower loss, higher
/// cost; `bad: 1` is worse in both), then `completed`.
pub fn two_objective_script(dir: &Path) -> PathBuf {
    let script = dir.join("two.py");
    std::fs::write(
        &script,
        "import json, os\nc = json.load(open(os.environ['LABD_TRIAL_CONFIG']))\nw, bad = c['width'], c['bad']\nwith open(os.environ['LABD_RUN_LOG'], 'a') as f:\n    f.write(json.dumps({'kind': 'metrics', 'step': 1, 'values': {'loss': 1.0 / w + bad, 'cost': w + bad}}) + '\\n')\n    f.write(json.dumps({'kind': 'status', 'status': 'completed'}) + '\\n')\n",
    )
    .unwrap();
    script
}

pub fn status(d: &Daemon, id: &str) -> Value {
    d.labctl_json(&["sweep", "status", id])
}

pub fn wait_state(d: &Daemon, id: &str, state: &str, secs: u64) -> Value {
    d.wait_for(&format!("sweep {id} {state}"), secs, |d| {
        status(d, id)["state"] == state
    });
    status(d, id)
}

pub fn trials(s: &Value) -> &Vec<Value> {
    s["trials"].as_array().unwrap()
}

/// What a trial's attempts wrote to their stderr, from its sweep's status `s`.
pub fn trial_stderr(s: &Value, t: &Value) -> String {
    let dir = Path::new(s["dir"].as_str().unwrap()).join(t["id"].as_str().unwrap());
    walk_files(&dir)
        .into_iter()
        .filter(|p| p.ends_with("stderr.log"))
        .map(|p| std::fs::read_to_string(p).unwrap_or_default())
        .collect()
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Whether a process with `marker` on its command line is alive.
pub fn sleeper_alive(marker: &str) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
        std::fs::read(e.path().join("cmdline"))
            .map(|c| String::from_utf8_lossy(&c).contains(marker))
            .unwrap_or(false)
            && std::fs::read_to_string(e.path().join("stat"))
                .map(|s| !s.contains(") Z "))
                .unwrap_or(false)
    })
}
