//! The HTTP API as scripts use it: push mode, bad requests, token enforcement.

use labd_e2e::{Daemon, KillOnDrop, announce_body, bin, free_port, request, try_request};
use serde_json::json;

#[test]
fn push_mode_lands_in_the_same_log_and_bad_requests_say_what_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("inbox");
    let d = Daemon::start(
        &tmp.path().join("data"),
        &inbox,
        &["--max-body-bytes", "100000"],
    );
    let (s, created) = d.post("/experiments", &json!({"name": "pushy", "config": {"optim": {"lr": 0.1}}, "tags": ["http"], "time": "2025-01-02T03:04:05Z"}));
    assert_eq!(s, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("20250102_030405_pushy_"), "{id}");
    let rows: Vec<_> = (0..100)
        .map(|i| json!({"split": "train", "step": i, "values": {"loss": 1.0 / (i as f64 + 1.0)}}))
        .collect();
    assert_eq!(
        d.post(
            &format!("/experiments/{id}/metrics"),
            &json!({"rows": rows})
        )
        .0,
        201
    );
    assert_eq!(
        d.post(
            &format!("/experiments/{id}/summaries"),
            &json!({"group": "test", "values": {"acc": 0.9}})
        )
        .0,
        201
    );
    assert_eq!(
        d.post(
            &format!("/experiments/{id}/artifacts"),
            &json!({"role": "checkpoint", "path": "/nowhere/ck.pt"})
        )
        .0,
        201
    );
    assert_eq!(
        d.post(
            &format!("/experiments/{id}/messages"),
            &json!({"text": "hello"})
        )
        .0,
        201
    );
    assert_eq!(
        d.post(
            &format!("/experiments/{id}/status"),
            &json!({"status": "completed"})
        )
        .0,
        201
    );
    let show = d.labctl_json(&["show", &id]);
    assert_eq!(show["metrics"]["train/loss"]["points"], 100);
    assert_eq!(show["summaries"]["test"]["acc"], 0.9);
    assert_eq!(show["status"], "completed");
    assert_eq!(show["messages"], 1);
    assert_eq!(show["sources"][0], "http");

    // Bad requests: 4xx with a message naming the problem.
    let (s, e) = d.post(
        &format!("/experiments/{id}/metrics"),
        &json!([{"step": 1, "values": {"a": 1}}, {"step": "x", "values": {}}]),
    );
    assert_eq!(s, 400);
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("row 1: \"step\" must be an integer"),
        "{e}"
    );
    assert_eq!(
        show["metrics"]["train/loss"]["points"], 100,
        "nothing of a rejected batch is kept"
    );
    let (s, e) = d.post("/experiments/nope/status", &json!({"status": "completed"}));
    assert_eq!(s, 404);
    assert!(e["error"].as_str().unwrap().contains("nope"));
    let (s, e) = d.post(
        &format!("/experiments/{id}/status"),
        &json!({"status": "done"}),
    );
    assert_eq!(s, 400);
    assert!(e["error"].as_str().unwrap().contains("unknown status"));
    let status = announce_body(&d.addr, &format!("/experiments/{id}/metrics"), 200_000);
    assert!(
        status.contains("413"),
        "body over --max-body-bytes: {status}"
    );
    let (s, e) = d.get("/experiments/nope/metrics/train/loss");
    assert_eq!(s, 404, "{e}");
    let (s, e) = d.get(&format!("/experiments/{id}/metrics/val/loss"));
    assert_eq!(s, 404);
    assert!(
        e["error"].as_str().unwrap().contains("train/loss"),
        "lists the metrics it has: {e}"
    );
    let (s, _) = d.get("/experiments?status=bogus");
    assert_eq!(s, 400);
    let (s, _) = d.get("/no/such/thing");
    assert_eq!(s, 404);
    let (s, e) = d.get("/events?from=1&limit=3");
    assert_eq!(s, 200);
    assert_eq!(e["events"].as_array().unwrap().len(), 3);
    assert_eq!(e["next"], 4);
    let (s, doc) = d.get("/openapi.json");
    assert_eq!(s, 200);
    assert_eq!(doc["openapi"], "3.1.0");
}

#[test]
fn off_loopback_every_request_needs_the_token() {
    let tmp = tempfile::tempdir().unwrap();
    // Without a token labd refuses to listen off loopback.
    let out = std::process::Command::new(bin("labd"))
        .args(["--listen", "0.0.0.0:0", "--data-dir"])
        .arg(tmp.path().join("refused"))
        .env_remove("LABD_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("without a token"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let port = free_port();
    let _child = KillOnDrop(
        std::process::Command::new(bin("labd"))
            .args([
                "--listen",
                &format!("0.0.0.0:{port}"),
                "--token",
                "s3cret",
                "--data-dir",
            ])
            .arg(tmp.path().join("data"))
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let addr = format!("http://127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while try_request(&addr, "GET", "/health", None, Some("s3cret")).map(|r| r.0) != Ok(200) {
        assert!(std::time::Instant::now() < deadline, "labd did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(request(&addr, "GET", "/health", None, None).0, 401);
    assert_eq!(
        request(&addr, "GET", "/experiments", None, Some("wrong")).0,
        401
    );
    assert_eq!(
        request(
            &addr,
            "POST",
            "/experiments",
            Some(&json!({"name": "x"})),
            None
        )
        .0,
        401
    );
    assert_eq!(
        request(
            &addr,
            "POST",
            "/experiments",
            Some(&json!({"name": "x"})),
            Some("s3cret")
        )
        .0,
        201
    );
    let ls = std::process::Command::new(bin("labctl"))
        .args(["ls", "--json", "--addr", &addr])
        .env_remove("LABD_TOKEN")
        .output()
        .unwrap();
    assert_eq!(ls.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&ls.stderr).contains("401"));
    let ls = std::process::Command::new(bin("labctl"))
        .args(["ls", "--json", "--addr", &addr, "--token", "s3cret"])
        .output()
        .unwrap();
    assert!(ls.status.success());
}

#[test]
fn on_loopback_a_configured_token_guards_changes_only() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        &tmp.path().join("data"),
        &tmp.path().join("inbox"),
        &["--token", "t0k"],
    );
    assert_eq!(d.get("/health").0, 200);
    assert_eq!(d.post("/experiments", &json!({"name": "x"})).0, 401);
    assert_eq!(
        request(
            &d.addr,
            "POST",
            "/experiments",
            Some(&json!({"name": "x"})),
            Some("t0k")
        )
        .0,
        201
    );
}

#[test]
fn sigterm_stops_promptly_and_cleanly_with_a_tail_attached() {
    let tmp = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(&tmp.path().join("data"), &tmp.path().join("inbox"), &[]);
    let _tail = KillOnDrop(
        std::process::Command::new(bin("labctl"))
            .args(["tail"])
            .env("LABD_ADDR", &d.addr)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    let started = std::time::Instant::now();
    let status = d.stop();
    assert!(status.success(), "{status}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}
