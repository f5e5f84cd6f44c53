//! The HTTP API as scripts use it: push mode, bad requests, token enforcement.

use labd_e2e::{
    Daemon, KillOnDrop, announce_body, bin, free_port, request, request_path, try_request,
};
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
            .env("RUST_LOG", "debug")
            .stderr(std::fs::File::create(tmp.path().join("labd.log")).unwrap())
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
    // MLflow's API too: its reads need the token off loopback, refused in MLflow's shape.
    let mlflow = "/api/2.0/mlflow/experiments/get?experiment_id=0";
    let (status, e) = request_path(&addr, "GET", mlflow, None, None);
    assert_eq!(
        (status, e["error_code"].as_str()),
        (401, Some("UNAUTHENTICATED")),
        "{e}"
    );
    let (status, e) = request_path(&addr, "GET", mlflow, None, Some("s3cret"));
    assert_eq!(
        (status, e["experiment"]["name"].as_str()),
        (200, Some("Default")),
        "{e}"
    );
    // Nothing secret in the logs, even at debug level.
    let log = std::fs::read_to_string(tmp.path().join("labd.log")).unwrap();
    assert!(log.contains("listening"), "{log}");
    assert!(!log.contains("s3cret"), "the token is in the log: {log}");
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

/// Slow or stuck clients cannot hold labd: headers that never finish, a body that never arrives and an answer
/// nobody reads all end within the configured times, and other clients are served meanwhile.
#[test]
fn slow_clients_are_cut_off_and_others_are_served() {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("inbox");
    let d = Daemon::start(
        &tmp.path().join("data"),
        &inbox,
        &[
            "--client-timeout",
            "1",
            "--request-timeout",
            "2",
            "--max-connections",
            "8",
        ],
    );
    let host = d.addr.trim_start_matches("http://").to_string();
    let closed_within = |s: &mut std::net::TcpStream, secs: u64| -> (Duration, String) {
        s.set_read_timeout(Some(Duration::from_secs(secs))).unwrap();
        let t = Instant::now();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                // Closed by labd with our unread request bytes still in its buffer.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e) => panic!("connection still open after {secs} s: {e}"),
            }
        }
        (t.elapsed(), String::from_utf8_lossy(&got).into_owned())
    };
    // Slowloris: half a request line, then nothing.
    let mut loris = std::net::TcpStream::connect(&host).unwrap();
    loris
        .write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    // An idle keep-alive connection that never sends a request.
    let mut idle = std::net::TcpStream::connect(&host).unwrap();
    // A body announced and never sent.
    let mut body = std::net::TcpStream::connect(&host).unwrap();
    write!(
        body,
        "POST /api/v1/validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
    )
    .unwrap();
    // Other clients are served while those hang.
    assert_eq!(d.get("/health").0, 200);
    let (t, _) = closed_within(&mut loris, 10);
    assert!(t < Duration::from_secs(5), "slowloris held {t:?}");
    let (t, _) = closed_within(&mut idle, 10);
    assert!(t < Duration::from_secs(5), "idle connection held {t:?}");
    let (t, answer) = closed_within(&mut body, 10);
    assert!(t < Duration::from_secs(6), "slow body held {t:?}");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("LABD_REQUEST_TIMEOUT"), "{answer}");

    // More clients than connections: the extra ones wait and are served once others leave.
    let hogs: Vec<_> = (0..8)
        .map(|_| std::net::TcpStream::connect(&host).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    assert_eq!(d.get("/health").0, 200, "served after the hogs time out");
    assert!(t.elapsed() > Duration::from_millis(300), "the ninth waited");
    drop(hogs);

    // A client that asks for 20 MB of answers and reads none of them: labd gives up on it after the client
    // timeout instead of holding the answers, and stays responsive.
    let (_, run) = d.post(
        "/experiments",
        &json!({"name": "big", "config": {"blob": "x".repeat(100_000)}}),
    );
    let id = run["id"].as_str().unwrap().to_string();
    let mut reader = std::net::TcpStream::connect(&host).unwrap();
    let one = format!("GET /api/v1/experiments/{id} HTTP/1.1\r\nHost: x\r\n\r\n");
    reader.write_all(one.repeat(200).as_bytes()).unwrap();
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(d.get("/health").0, 200);
    let (_, got) = closed_within(&mut reader, 10);
    assert!(
        got.len() < 200 * 100_000,
        "labd wrote every answer ({} bytes) to a client that read none for 4 s",
        got.len()
    );
    assert!(!d.log().contains("panicked"), "{}", d.log());
}
