//! The web view in a real headless Chromium against the real labd: `tests/web/test_ui.py` (Playwright for
//! Python, Debian's chromium) checks the table, a filter, a run's curves on the canvas, a comparison, a live
//! point and an ingest error. Screenshots land in `target/web-screenshots/`.
//!
//! Needs a Python with Playwright (`LABD_WEB_PYTHON`, else `python3`) and chromium (`CHROMIUM`, else
//! `/usr/bin/chromium`); the README's test command installs both and sets LABD_REQUIRE_BROWSER=1, so there a
//! missing browser is a failure, not a skip.

use labd_e2e::{Daemon, repo_root};
use serde_json::json;
use std::io::Write;
use std::path::Path;
use std::process::Command;

fn python() -> Option<String> {
    let py = std::env::var("LABD_WEB_PYTHON").unwrap_or_else(|_| "python3".into());
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let has_playwright = Command::new(&py)
        .args(["-c", "import playwright.sync_api"])
        .output()
        .is_ok_and(|o| o.status.success());
    let ok = has_playwright && Path::new(&chromium).exists();
    if !ok {
        assert!(
            std::env::var_os("LABD_REQUIRE_BROWSER").is_none(),
            "the browser test needs {py} with playwright and {chromium} (scripts/test.sh installs them)"
        );
        eprintln!("skipping: no playwright in {py} or no {chromium}");
        return None;
    }
    Some(py)
}

/// 30 finished runs (3 learning rates × 10 seeds, 100 steps of loss and acc, one NaN) and one still running.
fn corpus(inbox: &Path) {
    std::fs::create_dir_all(inbox).unwrap();
    for lr in [0.1, 0.01, 0.001] {
        for seed in 0..10 {
            let name = format!("lr{lr}_s{seed}");
            let mut f = std::fs::File::create(inbox.join(format!("{name}.jsonl"))).unwrap();
            let run = json!({"kind": "run", "name": name, "tags": ["web"],
                "config": {"optim": {"lr": lr}, "seed": seed, "model": "mlp"}});
            writeln!(f, "{run}").unwrap();
            for step in 0..100 {
                let loss = 2.0 * (-(step as f64) * lr * 5.0).exp() + 0.01 * seed as f64;
                let value = if seed == 3 && step == 50 {
                    json!("NaN")
                } else {
                    json!(loss)
                };
                writeln!(
                    f,
                    "{}",
                    json!({"kind": "metrics", "step": step, "values": {"loss": value, "acc": 1.0 - loss / 3.0}})
                )
                .unwrap();
            }
            writeln!(f, "{}", json!({"kind": "message", "text": "done"})).unwrap();
            writeln!(f, "{}", json!({"kind": "status", "status": "completed"})).unwrap();
        }
    }
    let mut f = std::fs::File::create(inbox.join("live.jsonl")).unwrap();
    writeln!(
        f,
        "{}",
        json!({"kind": "run", "name": "live", "config": {"optim": {"lr": 0.5}, "seed": 0, "model": "mlp"}})
    )
    .unwrap();
    for step in 0..10 {
        writeln!(
            f,
            "{}",
            json!({"kind": "metrics", "step": step, "values": {"loss": 1.0 / (step as f64 + 1.0), "acc": step as f64 / 10.0}})
        )
        .unwrap();
    }
    std::fs::File::create(inbox.join("bad.jsonl")).unwrap();
}

#[test]
fn the_web_view_in_a_real_browser() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("inbox");
    corpus(&inbox);
    let d = Daemon::start(&tmp.path().join("data"), &inbox, &[]);
    d.wait_for("the corpus", 20, |d| d.ls().len() == 31);
    let shots = repo_root().join("target/web-screenshots");
    let out = Command::new(&py)
        .arg(repo_root().join("tests/web/test_ui.py"))
        .arg("--addr")
        .arg(&d.addr)
        .arg("--live-log")
        .arg(inbox.join("live.jsonl"))
        .arg("--bad-log")
        .arg(inbox.join("bad.jsonl"))
        .arg("--inbox")
        .arg(&inbox)
        .arg("--train")
        .arg(repo_root().join("sweeps/examples/train.py"))
        .arg("--out")
        .arg(&shots)
        .output()
        .expect("running the browser test");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success(), "{text}\n{}", d.log());
    assert!(text.contains("all web checks passed"));
    assert!(shots.join("run.png").exists() && shots.join("compare.png").exists());
}

#[test]
fn pages_are_urls_and_assets_are_embedded_without_a_token() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start(&tmp.path().join("data"), &tmp.path().join("inbox"), &[]);
    for page in [
        "/",
        "/runs",
        "/runs/x",
        "/compare?ids=a,b",
        "/groups",
        "/sweeps/s",
        "/benchmarks/b",
        "/live",
    ] {
        let body = ureq_get(&d.addr, page);
        assert!(
            body.0 == 200 && body.1.contains("/ui/app.js"),
            "{page}: {body:?}"
        );
    }
    let js = ureq_get(&d.addr, "/ui/app.js");
    assert!(js.0 == 200 && js.1.contains("function render"));
    assert_eq!(ureq_get(&d.addr, "/ui/../labd.redb").0, 404);
    assert_eq!(ureq_get(&d.addr, "/ui/nope.js").0, 404);
    assert!(ureq_get(&d.addr, "/ui/uPlot.LICENSE").1.contains("MIT"));
}

/// A plain GET of a path outside the API: status and body.
fn ureq_get(addr: &str, path: &str) -> (u16, String) {
    use std::io::Read;
    let host = addr.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}
