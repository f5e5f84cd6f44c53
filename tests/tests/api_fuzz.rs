//! The HTTP API fuzzed from its own OpenAPI document with schemathesis against the real daemon: no 5xx, no
//! answer that breaks its documented schema, status code or content type.
//!
//! Needs Python with schemathesis (`tests/api/requirements.txt`), named by `LABD_API_PYTHON`; without it the
//! test says so and passes, unless `LABD_REQUIRE_API_FUZZ=1` (scripts/test.sh sets both). `LABD_API_EXAMPLES`
//! sets the examples per operation (default 25). Left out: the event tail (it streams forever) and
//! `POST /ingest`, which reads whatever path it is given on this machine (its own tests cover it).

use labd_e2e::{Daemon, write_run};
use std::process::Command;

#[test]
fn schemathesis_finds_no_server_error_and_no_answer_off_its_schema() {
    let Some(python) = std::env::var_os("LABD_API_PYTHON") else {
        assert!(
            std::env::var("LABD_REQUIRE_API_FUZZ").is_err(),
            "LABD_REQUIRE_API_FUZZ is set but LABD_API_PYTHON is not"
        );
        eprintln!(
            "skipped: set LABD_API_PYTHON to a Python with schemathesis (tests/api/requirements.txt)"
        );
        return;
    };
    let examples = std::env::var("LABD_API_EXAMPLES").unwrap_or_else(|_| "25".into());
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("inbox");
    for (i, lr) in ["0.1", "0.01", "0.001"].iter().enumerate() {
        write_run(
            &inbox.join(format!("r{i}.jsonl")),
            &format!("r{i}"),
            20,
            i != 2,
        );
        let _ = lr;
    }
    // Trials of fuzzed sweeps run `/bin/sh -c <anything>`: with no PATH only shell builtins exist.
    let empty = tmp.path().join("no-commands");
    std::fs::create_dir_all(&empty).unwrap();
    let d = Daemon::start_with_env(
        &tmp.path().join("data"),
        &inbox,
        &[],
        &[("PATH", empty.to_str().unwrap())],
    );
    d.wait_for("the runs", 20, |d| d.ls().len() == 3);
    let report = tmp.path().join("report");
    let out = Command::new(python)
        .args(["-m", "schemathesis.cli", "run"])
        .arg(labd_e2e::repo_root().join("schemas/openapi.json"))
        .args(["--url", &d.addr])
        .args([
            "--checks",
            "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance",
            "--max-examples",
            &examples,
            "--exclude-path",
            "/api/v1/events/tail",
            "--exclude-path",
            "/api/v1/ingest",
            "--request-timeout",
            "20",
            "--seed",
            "1",
            "--report",
            "junit",
            "--report-dir",
        ])
        .arg(&report)
        .env("NO_COLOR", "1")
        // Its example database goes here, not into the checkout.
        .current_dir(tmp.path())
        .output()
        .expect("running schemathesis");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let junit = std::fs::read_dir(&report)
        .ok()
        .and_then(|mut e| e.next())
        .and_then(|e| e.ok())
        .and_then(|e| std::fs::read_to_string(e.path()).ok())
        .unwrap_or_else(|| {
            panic!(
                "no report from schemathesis:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    // Failures are labd's; errors are labd's too (timeouts, refused connections) except one Hypothesis
    // bug under CPython 3.11 while it generates data.
    let failures = junit.matches("<failure").count();
    let labd_errors = junit
        .split("<error")
        .skip(1)
        .filter(|e| !e.contains("AST constructor recursion depth mismatch"))
        .count();
    let cases = stdout
        .lines()
        .skip_while(|l| !l.contains("Test cases:"))
        .nth(1)
        .unwrap_or("")
        .trim()
        .to_string();
    eprintln!("schemathesis: {cases}; {failures} failures, {labd_errors} errors");
    assert_eq!(failures + labd_errors, 0, "{stdout}");
    assert!(!d.log().contains("panicked"), "{}", d.log());
    assert_eq!(d.get("/health").1["status"], "ok");
}
