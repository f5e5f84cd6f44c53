//! Alerts against the real labd: a NaN point reaches a webhook receiver within a second (and a refused POST is
//! tried again), once per episode and never again after a restart; a stalled run fires once per silence and
//! its command sink runs; a failed trial and the sweep's end fire; rules over HTTP and labctl, their errors,
//! and their survival across restarts.

use labd_e2e::Daemon;
use labd_e2e::sweeps::{run_file, status, wait_state};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A webhook receiver on a free loopback port: keeps every POST's arrival and JSON body, answers the first
/// `refuse` requests 503 and the rest 200.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<(Instant, Value)>>>,
}

impl Receiver {
    fn start(refuse: usize) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let got: Arc<Mutex<Vec<(Instant, Value)>>> = Arc::default();
        let seen = got.clone();
        std::thread::spawn(move || {
            let mut served = 0;
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let Some(body) = read_request(&mut conn) else {
                    continue;
                };
                let at = Instant::now();
                served += 1;
                let status = if served <= refuse {
                    "503 Service Unavailable"
                } else {
                    "200 OK"
                };
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                if let Ok(v) = serde_json::from_slice(&body) {
                    seen.lock().unwrap().push((at, v));
                }
            }
        });
        Receiver { url, got }
    }

    fn bodies(&self) -> Vec<Value> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Waits for the `n`th request (from 1); answers when it came.
    fn wait(&self, n: usize, secs: u64) -> Instant {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some((at, _)) = self.got.lock().unwrap().get(n - 1) {
                return *at;
            }
            assert!(
                Instant::now() < deadline,
                "the webhook got {} requests, not {n}",
                self.got.lock().unwrap().len()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// One HTTP request's body (headers read up to the blank line, then Content-Length bytes).
fn read_request(conn: &mut std::net::TcpStream) -> Option<Vec<u8>> {
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = conn.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = conn.read(&mut chunk).ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(buf[head_end..].to_vec())
}

fn start(tmp: &Path, config: &str) -> Daemon {
    let file = tmp.join("labd.toml");
    std::fs::write(&file, config).unwrap();
    let inbox = tmp.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    Daemon::start(
        &tmp.join("data"),
        &inbox,
        &["--config", file.to_str().unwrap()],
    )
}

/// Appends lines to a run log, flushed.
fn append(path: &Path, lines: &[String]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
    f.sync_all().unwrap();
}

fn point(step: i64, loss: &str) -> String {
    format!(r#"{{"kind":"metrics","step":{step},"values":{{"loss":{loss}}}}}"#)
}

fn alerts(d: &Daemon) -> Vec<Value> {
    d.labctl_json(&["alerts"])["alerts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_nan_point_reaches_the_webhook_within_a_second_once_per_episode() {
    let tmp = tempfile::tempdir().unwrap();
    // The first POST is refused: the delivery is tried again and recorded with its tries.
    let hook = Receiver::start(1);
    let config = format!(
        r#"
[[alerts.webhooks]]
name = "hook"
url = "{}"
timeout = 2

[[alerts.rules]]
name = "loss-nan"
kind = "nan"
metric = "loss"
"#,
        hook.url
    );
    let mut d = start(tmp.path(), &config);
    let log = d.watch.join("run.jsonl");
    append(
        &log,
        &[
            r#"{"kind":"run","name":"nan-run","config":{"lr":0.1}}"#.into(),
            point(1, "0.9"),
            point(2, "0.7"),
        ],
    );
    d.wait_for("the run's points", 10, |d| d.total_points() == 2);
    assert!(alerts(&d).is_empty(), "good points fire nothing");

    // The NaN point: written, and the webhook is called within a second.
    let written = Instant::now();
    append(&log, &[point(3, "NaN")]);
    let first = hook.wait(1, 10);
    let latency = first.duration_since(written);
    assert!(
        latency < Duration::from_secs(1),
        "the alert reached the webhook {latency:?} after the point was written"
    );
    eprintln!("NaN point written → webhook called: {latency:?}");
    hook.wait(2, 10);
    let body = &hook.bodies()[0];
    assert_eq!(body["rule"], "loss-nan");
    assert_eq!(body["kind"], "nan");
    assert_eq!(body["subject"]["metric"], "loss");
    assert_eq!(body["value"], "NaN");
    assert_eq!(body["step"], 3);
    assert!(body["seq"].as_u64().is_some() && body["host"].is_string());
    let run = body["subject"]["run"].as_str().unwrap().to_string();
    assert!(run.contains("nan-run"), "{run}");
    // The retry carried the same firing.
    assert_eq!(hook.bodies()[1], hook.bodies()[0]);
    d.wait_for("the delivery to be recorded", 10, |d| {
        alerts(d)
            .first()
            .is_some_and(|a| a["deliveries"].as_array().is_some_and(|x| !x.is_empty()))
    });
    let a = &alerts(&d)[0];
    assert_eq!(a["open"], true);
    assert_eq!(a["deliveries"][0]["sink"], "hook");
    assert_eq!(a["deliveries"][0]["outcome"], "delivered");
    assert_eq!(a["deliveries"][0]["attempts"], 2);

    // More bad points in the same episode fire nothing; a good point ends it; the next NaN fires again.
    append(&log, &[point(4, "Infinity"), point(5, "NaN")]);
    d.wait_for("the points", 10, |d| d.total_points() == 5);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(alerts(&d).len(), 1, "one firing per episode");
    append(&log, &[point(6, "0.5")]);
    d.wait_for("the episode to end", 10, |d| alerts(d)[0]["open"] == false);
    append(&log, &[point(7, "NaN")]);
    hook.wait(3, 10);
    d.wait_for("the second firing", 10, |d| alerts(d).len() == 2);
    assert_eq!(alerts(&d)[0]["step"], 7);

    // After kill -9 and a restart: the firings are in the log, nothing is fired or sent again.
    d.wait_for("the second delivery to be recorded", 10, |d| {
        alerts(d)[0]["deliveries"]
            .as_array()
            .is_some_and(|x| !x.is_empty())
    });
    d.kill9();
    d.restart();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(alerts(&d).len(), 2);
    assert_eq!(hook.bodies().len(), 3, "nothing was sent again");
    // labctl's table, and the firings in the event stream.
    let out = d.labctl(&["alerts", "--open"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("loss-nan") && text.contains("NaN at step 7"),
        "{text}"
    );
}

#[test]
fn a_stalled_run_fires_once_per_silence_and_runs_the_command() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("cmd-out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let config = format!(
        r#"
[[alerts.commands]]
name = "note"
command = "cat > {}/alert-$LABD_ALERT_SEQ.json && echo \"$LABD_ALERT_KIND $LABD_ALERT_RUN\" > {}/env-$LABD_ALERT_SEQ.txt"
"#,
        out_dir.display(),
        out_dir.display()
    );
    let d = start(tmp.path(), &config);
    // The rule over labctl, with a duration as people write it, and at most one firing a minute to the command.
    let out = d.labctl(&[
        "alerts",
        "add",
        "silent",
        "--kind",
        "stall",
        "--after",
        "1500ms",
        "--max-per-minute",
        "1",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = d.watch.join("stall.jsonl");
    append(
        &log,
        &[r#"{"kind":"run","name":"sleepy"}"#.into(), point(1, "1.0")],
    );
    d.wait_for("the run", 10, |d| d.total_points() == 1);
    // Silent for 1.5 s: one firing, and only one however long the silence lasts.
    d.wait_for("the stall alert", 10, |d| !alerts(d).is_empty());
    std::thread::sleep(Duration::from_secs(3));
    let fired = alerts(&d);
    assert_eq!(fired.len(), 1, "a stall fires once: {fired:?}");
    assert_eq!(fired[0]["kind"], "stall");
    assert_eq!(fired[0]["open"], true);
    // The command ran with the firing on stdin and in its environment.
    let seq = fired[0]["seq"].as_u64().unwrap();
    let file = out_dir.join(format!("alert-{seq}.json"));
    d.wait_for("the command's output", 10, |_| file.exists());
    let body: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(body["rule"], "silent");
    let env = std::fs::read_to_string(out_dir.join(format!("env-{seq}.txt"))).unwrap();
    assert!(env.starts_with("stall ") && env.contains("sleepy"), "{env}");
    // Heard from again: the episode ends; silent again: a new one.
    append(&log, &[point(2, "0.9")]);
    d.wait_for("the episode to end", 10, |d| alerts(d)[0]["open"] == false);
    d.wait_for("the second stall", 10, |d| alerts(d).len() == 2);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(alerts(&d).len(), 2);
    // A run that ends is not stalled.
    append(&log, &[r#"{"kind":"status","status":"completed"}"#.into()]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(alerts(&d).len(), 2);
    // The second firing came within the minute: recorded, held back from the command.
    d.wait_for("the deliveries", 10, |d| {
        let outcomes: Vec<Value> = alerts(d)
            .iter()
            .map(|a| a["deliveries"][0]["outcome"].clone())
            .collect();
        outcomes == [json!("held_back"), json!("delivered")]
    });
    let seq2 = alerts(&d)[0]["seq"].as_u64().unwrap();
    assert!(!out_dir.join(format!("alert-{seq2}.json")).exists());
}

#[test]
fn rules_over_http_are_checked_recorded_and_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let config = r#"
[alerts]
journal = true

[[alerts.rules]]
name = "from-file"
kind = "failed"
"#;
    let mut d = start(tmp.path(), config);
    // Mistakes name their field.
    let (code, e) = d.post(
        "/alerts/rules",
        &json!({"name": "t", "kind": "threshold", "metric": "loss"}),
    );
    assert_eq!(code, 400, "{e}");
    assert!(e["error"].as_str().unwrap().contains("above"), "{e}");
    let (code, e) = d.post(
        "/alerts/rules",
        &json!({"name": "t", "kind": "nan", "metric": "loss", "sinks": ["pager"]}),
    );
    assert_eq!(code, 400, "{e}");
    assert!(e["error"].as_str().unwrap().contains("pager"), "{e}");
    let (code, e) = d.post(
        "/alerts/rules",
        &json!({"name": "t", "kind": "nan", "metrc": "x"}),
    );
    assert!(code == 400 || code == 422, "{code} {e}");
    // The file's rule is changed in the file.
    let (code, e) = d.post(
        "/alerts/rules",
        &json!({"name": "from-file", "kind": "sweep_finished"}),
    );
    assert_eq!(code, 409, "{e}");
    let out = d.labctl(&["alerts", "rm", "from-file"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("configuration file"));
    // Set, replaced, listed; kept across a restart (they are events).
    let (code, r) = d.post(
        "/alerts/rules",
        &json!({"name": "big", "kind": "threshold", "metric": "*loss", "above": 100.0}),
    );
    assert_eq!(code, 201, "{r}");
    let (code, _) = d.post(
        "/alerts/rules",
        &json!({"name": "big", "kind": "threshold", "metric": "*loss", "above": 10.0, "runs": "x*"}),
    );
    assert_eq!(code, 201);
    let (code, _) = d.post(
        "/alerts/rules",
        &json!({"name": "div", "kind": "divergence", "metric": "loss", "factor": 3.0, "points": 2}),
    );
    assert_eq!(code, 201);
    d.kill9();
    d.restart();
    let rules = d.labctl_json(&["alerts", "rules"]);
    let names: Vec<&str> = rules["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["big", "div", "from-file"]);
    let big = &rules["rules"][0];
    assert_eq!(big["above"], 10.0);
    assert_eq!(big["runs"], "x*");
    assert_eq!(rules["sinks"], json!(["journal"]));
    // The threshold with its runs glob: x1 fires, y1 does not; the divergence fires after two points.
    append(
        &d.watch.join("x1.jsonl"),
        &[
            r#"{"kind":"run","name":"x1"}"#.into(),
            point(1, "1.0"),
            point(2, "12.5"),
        ],
    );
    append(
        &d.watch.join("y1.jsonl"),
        &[r#"{"kind":"run","name":"y1"}"#.into(), point(1, "50")],
    );
    d.wait_for("the firings", 10, |d| alerts(d).len() == 1);
    let a = &alerts(&d)[0];
    assert_eq!(a["rule"], "big");
    assert!(a["message"].as_str().unwrap().contains("above 10"), "{a}");
    append(
        &d.watch.join("y1.jsonl"),
        &[point(2, "160"), point(3, "170")],
    );
    d.wait_for("the divergence", 10, |d| {
        alerts(d).iter().any(|a| a["rule"] == "div")
    });
    // The journal sink: labd's log says it.
    d.wait_for("the journal line", 10, |d| {
        d.log().contains("alert: loss of run")
    });
    // A failed run fires the file's rule.
    append(
        &d.watch.join("y1.jsonl"),
        &[r#"{"kind":"status","status":"failed","notes":"CUDA error"}"#.into()],
    );
    d.wait_for("the failure alert", 10, |d| {
        alerts(d).iter().any(|a| a["rule"] == "from-file")
    });
    // Removed: gone from the list, and its points fire nothing more.
    let out = d.labctl(&["alerts", "rm", "big"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, _) = request_delete(&d, "/alerts/rules/big");
    assert_eq!(code, 404);
    let n = alerts(&d).len();
    append(
        &d.watch.join("x1.jsonl"),
        &[point(3, "0.5"), point(4, "99")],
    );
    d.wait_for("the points", 10, |d| d.total_points() == 7);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(alerts(&d).len(), n);
}

fn request_delete(d: &Daemon, path: &str) -> (u16, Value) {
    labd_e2e::request(&d.addr, "DELETE", path, None, None)
}

#[test]
fn a_failed_trial_and_the_sweeps_end_fire() {
    let tmp = tempfile::tempdir().unwrap();
    let d = start(
        tmp.path(),
        "[[alerts.rules]]\nname = \"trials\"\nkind = \"failed\"\nsweeps = \"ok*\"\n\n[[alerts.rules]]\nname = \"done\"\nkind = \"sweep_finished\"\n",
    );
    let file = tmp.path().join("s.yaml");
    std::fs::write(
        &file,
        "sweep:\n  x: [1, 2]\nparallel: 2\ncommand: test {param:x} -eq 1\n",
    )
    .unwrap();
    run_file(&d, &file, &["--base", "{}", "--id", "okay"]);
    wait_state(&d, "okay", "finished", 60);
    d.wait_for("both alerts", 10, |d| alerts(d).len() == 2);
    let all = alerts(&d);
    let rules: Vec<&str> = all.iter().map(|a| a["rule"].as_str().unwrap()).collect();
    assert_eq!(rules, ["done", "trials"], "{all:?}");
    assert_eq!(all[1]["subject"]["sweep"], "okay");
    assert!(all[1]["subject"]["trial"].is_string());
    assert!(
        all[0]["message"].as_str().unwrap().contains("finished"),
        "{}",
        all[0]
    );
    assert_eq!(status(&d, "okay")["state"], "finished");
}
