//! Faults of the machine: the data directory's disk fills up; writes to the event log fail with I/O errors.
//!
//! The test mounts a small tmpfs for the data directory, so it needs root (CI runs as root); elsewhere it says
//! so and passes, unless `LABD_REQUIRE_FAULTS=1`.

use labd_e2e::{Daemon, write_run};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted for the test, unmounted when dropped.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path, mib: u64) -> Option<Mount> {
        std::fs::create_dir_all(at).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Mount(at.to_path_buf()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn free_bytes(dir: &Path) -> u64 {
    let out = Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(dir)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .unwrap()
}

#[test]
fn a_full_disk_pauses_intake_keeps_reads_and_resumes_when_space_returns() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(mount) = Mount::tmpfs(&tmp.path().join("small"), 96) else {
        assert!(
            std::env::var("LABD_REQUIRE_FAULTS").is_err(),
            "cannot mount a tmpfs (needs root) and LABD_REQUIRE_FAULTS is set"
        );
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let inbox = tmp.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let data = mount.0.join("data");
    let mut d = Daemon::start(
        &data,
        &inbox,
        &["--min-free-bytes", &(16u64 << 20).to_string()],
    );
    let a = write_run(&inbox.join("a.jsonl"), "a", 2000, true);
    d.wait_for("run a", 20, |d| d.total_points() == a);

    // Fill the disk to 8 MiB free: below the 16 MiB reserve.
    let filler = mount.0.join("filler");
    let fill = free_bytes(&mount.0).saturating_sub(8 << 20);
    let f = std::fs::File::create(&filler).unwrap();
    f.set_len(fill).unwrap();
    // tmpfs allocates on write, not on set_len: write it for real.
    drop(f);
    std::fs::write(&filler, vec![1u8; fill as usize]).unwrap();
    assert!(free_bytes(&mount.0) < 16 << 20);

    let b = write_run(&inbox.join("b.jsonl"), "b", 3000, true);
    d.wait_for("intake paused with the reason", 20, |d| {
        let (_, h) = d.get("/health");
        h["status"] == "degraded"
            && h["problem"]
                .as_str()
                .is_some_and(|p| p.contains("disk full"))
    });
    let (_, h) = d.get("/health");
    let problem = h["problem"].as_str().unwrap();
    assert!(problem.contains("LABD_MIN_FREE_BYTES"), "{problem}");
    assert!(d.log().contains("disk full"), "the log says it too");

    // Reads keep working, and what was committed is whole.
    assert_eq!(d.total_points(), a);
    let rows = d.ls();
    let id = rows[0]["id"].as_str().unwrap().to_string();
    assert_eq!(d.get(&format!("/experiments/{id}")).0, 200);
    assert_eq!(
        d.get(&format!("/experiments/{id}/metrics/train/loss")).0,
        200
    );
    // A write over HTTP is refused with 507 and the reason.
    let (s, e) = d.post("/experiments", &serde_json::json!({"name": "pushed"}));
    assert_eq!(s, 507, "{e}");
    assert!(e["error"].as_str().unwrap().contains("disk full"), "{e}");

    // Space returns: intake resumes by itself, and everything is there once.
    std::fs::remove_file(&filler).unwrap();
    d.wait_for("intake resumed and run b read", 30, |d| {
        d.get("/health").1["status"] == "ok" && d.total_points() == a + b
    });
    let verify = d.labctl_json(&["replay", "--verify"]);
    assert_eq!(verify["differing"], serde_json::json!([]), "{verify}");
    d.kill9();
    d.restart();
    assert_eq!(d.total_points(), a + b);
    assert_eq!(d.ls().len(), 2);
    drop(d);
    drop(mount);
}

/// Sets labd's soft file-size limit (RLIMIT_FSIZE; the hard one stays, so it can be raised again without
/// privileges): writes past it fail with EFBIG, an I/O error like any other.
fn limit_file_size(pid: u32, bytes: Option<u64>) {
    let value = bytes.map_or("unlimited".to_string(), |b| b.to_string());
    let ok = Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg(format!("--fsize={value}:"))
        .status()
        .unwrap()
        .success();
    assert!(ok, "prlimit --fsize={value} failed");
}

#[test]
fn an_io_error_pauses_intake_keeps_reads_and_labd_reopens_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let data = tmp.path().join("data");
    let mut d = Daemon::start(&data, &inbox, &[]);
    let a = write_run(&inbox.join("a.jsonl"), "a", 2000, true);
    d.wait_for("run a", 20, |d| d.total_points() == a);

    // Every write into the upper half of the database file now fails.
    let size = std::fs::metadata(data.join("labd.redb")).unwrap().len();
    limit_file_size(d.pid(), Some(size / 2));
    let b = write_run(&inbox.join("b.jsonl"), "b", 200_000, true);
    d.wait_for("intake paused with the reason", 20, |d| {
        let (_, h) = d.get("/health");
        h["status"] == "degraded"
            && h["problem"]
                .as_str()
                .is_some_and(|p| p.contains("event log I/O error"))
    });
    let (_, h) = d.get("/health");
    let problem = h["problem"].as_str().unwrap();
    assert!(problem.contains("File too large"), "{problem}");

    // Reads keep working, and what was committed is whole.
    assert_eq!(d.total_points(), a);
    let id = d.ls()[0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        d.get(&format!("/experiments/{id}/metrics/train/loss")).0,
        200
    );
    // A write over HTTP is refused with 503 and the reason.
    let (s, e) = d.post("/experiments", &serde_json::json!({"name": "pushed"}));
    assert_eq!(s, 503, "{e}");
    assert!(e["error"].as_str().unwrap().contains("I/O error"), "{e}");

    // The fault goes away: labd reopens the log, intake resumes, and everything is there once.
    limit_file_size(d.pid(), None);
    d.wait_for("intake resumed and run b read", 60, |d| {
        d.get("/health").1["status"] == "ok" && d.total_points() == a + b
    });
    assert!(
        d.log().contains("reopened after an I/O error"),
        "{}",
        d.log()
    );
    let verify = d.labctl_json(&["replay", "--verify"]);
    assert_eq!(verify["differing"], serde_json::json!([]), "{verify}");
    d.kill9();
    d.restart();
    assert_eq!(d.total_points(), a + b);
    assert_eq!(d.ls().len(), 2);
}
