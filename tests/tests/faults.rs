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
    let problem = paused(&d, "disk full", a, 507);
    assert!(problem.contains("LABD_MIN_FREE_BYTES"), "{problem}");
    assert!(d.log().contains("disk full"), "the log says it too");

    // Space returns: intake resumes by itself, and everything is there once.
    std::fs::remove_file(&filler).unwrap();
    resumed_whole(&mut d, a + b);
    drop(d);
    drop(mount);
}

/// Waits until intake is paused with `reason`, then checks that reads work, that what was committed (`points`)
/// is whole and that a push is refused with `status` and the reason. Answers the problem `/health` gives.
fn paused(d: &Daemon, reason: &str, points: u64, status: u16) -> String {
    d.wait_for("intake paused with the reason", 20, |d| {
        let (_, h) = d.get("/health");
        h["status"] == "degraded" && h["problem"].as_str().is_some_and(|p| p.contains(reason))
    });
    let problem = d.get("/health").1["problem"].as_str().unwrap().to_string();
    assert_eq!(d.total_points(), points);
    let id = d.ls()[0]["id"].as_str().unwrap().to_string();
    assert_eq!(d.get(&format!("/experiments/{id}")).0, 200);
    assert_eq!(
        d.get(&format!("/experiments/{id}/metrics/train/loss")).0,
        200
    );
    let (s, e) = d.post("/experiments", &serde_json::json!({"name": "pushed"}));
    assert_eq!(s, status, "{e}");
    assert!(e["error"].as_str().unwrap().contains(reason), "{e}");
    problem
}

/// Once the fault is gone: intake resumes by itself, and the two runs' `points` are there once, in live views
/// equal to a replay and after a kill -9.
fn resumed_whole(d: &mut Daemon, points: u64) {
    d.wait_for("intake resumed and run b read", 60, |d| {
        d.get("/health").1["status"] == "ok" && d.total_points() == points
    });
    let verify = d.labctl_json(&["replay", "--verify"]);
    assert_eq!(verify["differing"], serde_json::json!([]), "{verify}");
    d.kill9();
    d.restart();
    assert_eq!(d.total_points(), points);
    assert_eq!(d.ls().len(), 2);
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
    let problem = paused(&d, "event log I/O error", a, 503);
    assert!(problem.contains("File too large"), "{problem}");

    // The fault goes away: labd reopens the log, intake resumes, and everything is there once.
    limit_file_size(d.pid(), None);
    resumed_whole(&mut d, a + b);
    assert!(
        d.log().contains("reopened after an I/O error"),
        "{}",
        d.log()
    );
}
