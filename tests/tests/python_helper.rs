//! The dependency-free Python writer of the run-log format, ingested for real.

use labd_e2e::{Daemon, repo_root};

#[test]
fn the_python_helper_writes_logs_labd_ingests() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let d = Daemon::start(&tmp.path().join("data"), &inbox, &[]);
    let helper = repo_root().join("schemas/python");
    let script = format!(
        r#"
import math, sys
sys.path.insert(0, {helper:?})
from labd_runlog import RunLog
with RunLog({ok:?}, name="py", config={{"optim": {{"lr": 1e-3}}, "layers": [64, 32]}}, tags=["py"]) as run:
    for step in range(20):
        run.log({{"loss": 1.0 / (step + 1), "acc": step / 20}}, split="train", step=step, epoch=step // 10, x={{"tokens": step * 512}})
    run.log({{"loss": float("nan")}}, split="val", step=19)
    run.message("done training")
    run.summary("final", {{"test_acc": 0.93}})
    run.artifact("checkpoint", "ck.bin")
try:
    with RunLog({bad:?}, name="crashes") as run:
        run.log({{"loss": 1.0}}, step=0)
        raise RuntimeError("out of memory")
except RuntimeError:
    pass
"#,
        helper = helper.to_str().unwrap(),
        ok = inbox.join("py.jsonl").to_str().unwrap(),
        bad = inbox.join("crash.jsonl").to_str().unwrap(),
    );
    std::fs::write(inbox.join("ck.bin"), b"weights").unwrap();
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    d.wait_for("both runs", 5, |d| {
        let rows = d.ls();
        rows.len() == 2 && rows.iter().all(|r| r["status"] != "running")
    });
    let rows = d.ls();
    let py = rows.iter().find(|r| r["name"] == "py").unwrap();
    assert_eq!(py["status"], "completed");
    assert_eq!(py["points"], 41);
    let show = d.labctl_json(&["show", py["id"].as_str().unwrap()]);
    assert_eq!(show["config"]["layers"][1], 32);
    assert_eq!(show["summaries"]["final"]["test_acc"], 0.93);
    assert_eq!(
        show["artifacts"][0]["size"], 7,
        "size filled in from the file"
    );
    assert_eq!(show["artifacts"][0]["sha256"].as_str().unwrap().len(), 64);
    let crash = rows.iter().find(|r| r["name"] == "crashes").unwrap();
    assert_eq!(crash["status"], "failed");
    let show = d.labctl_json(&["show", crash["id"].as_str().unwrap()]);
    assert!(
        show["status_notes"]
            .as_str()
            .unwrap()
            .contains("out of memory")
    );
    let errors = d.labctl_json(&["errors"]);
    assert_eq!(errors.as_array().unwrap().len(), 0, "{errors}");
}
