//! Files dropped into or written in a watched folder reach the registry, as users see it through labctl.

use labd_e2e::{Daemon, write_run};
use serde_json::Value;
use std::io::Write;

fn find<'a>(rows: &'a [Value], name: &str) -> Option<&'a Value> {
    rows.iter().find(|r| r["name"] == name)
}

#[test]
fn a_dropped_file_is_listed_within_a_second_and_grows_as_it_is_appended_to() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let d = Daemon::start(&tmp.path().join("data"), &inbox, &[]);

    let file = inbox.join("nested/deeper/baseline.jsonl");
    let started = std::time::Instant::now();
    write_run(&file, "baseline", 10, false);
    d.wait_for("the run to be listed", 5, |d| {
        find(&d.ls(), "baseline").is_some()
    });
    let latency = started.elapsed();
    assert!(latency.as_millis() < 1500, "took {latency:?}");

    let rows = d.ls();
    let row = find(&rows, "baseline").unwrap();
    let id = row["id"].as_str().unwrap().to_string();
    assert!(id.contains("_baseline_"), "{id}");
    assert_eq!(row["status"], "running");
    assert_eq!(row["config_hash"].as_str().unwrap().len(), 64);
    assert!(
        id.ends_with(&row["config_hash"].as_str().unwrap()[..8]),
        "id ends with hash8: {id}"
    );

    // Append while running, including a half-written line that must wait for its end.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap();
    f.write_all(b"{\"kind\":\"metrics\",\"split\":\"val\",\"step\":9,\"epoch\":1,\"x\":{\"tokens\":640},\"values\":{\"loss\":0.5}}\n{\"kind\":\"metrics\",\"split\":\"val\",\"st").unwrap();
    f.flush().unwrap();
    d.wait_for("the val point", 5, |d| {
        d.labctl_json(&["show", &id])["metrics"]["val/loss"]["points"] == 1
    });
    std::thread::sleep(std::time::Duration::from_millis(600));
    let show = d.labctl_json(&["show", &id]);
    assert_eq!(
        show["metrics"]["val/loss"]["points"], 1,
        "the half line is not ingested yet"
    );
    f.write_all(b"ep\":10,\"values\":{\"loss\":0.25}}\n{\"kind\":\"summary\",\"group\":\"final\",\"values\":{\"test_acc\":0.9,\"bias\":{\"gmb\":0.1}}}\n{\"kind\":\"status\",\"status\":\"completed\",\"notes\":\"done\"}\n").unwrap();
    f.flush().unwrap();
    d.wait_for("completion", 5, |d| {
        d.labctl_json(&["show", &id])["status"] == "completed"
    });
    let show = d.labctl_json(&["show", &id]);
    assert_eq!(show["metrics"]["val/loss"]["points"], 2);
    assert_eq!(show["metrics"]["train/loss"]["points"], 10);
    assert_eq!(show["metrics"]["train/acc"]["points"], 10);
    assert_eq!(show["summaries"]["final"]["bias"]["gmb"], 0.1);
    assert_eq!(show["status_notes"], "done");
    assert_eq!(show["config"]["optim"]["lr"], 0.01);

    // Points of one metric, paged, with custom axes.
    let page = d.labctl_json(&["metric", &id, "val/loss"]);
    assert_eq!(page["total"], 2);
    assert_eq!(page["points"][0]["x"]["tokens"], 640.0);
    assert_eq!(page["points"][1]["step"], 10);
    let page = d.labctl_json(&["metric", &id, "train/loss", "--offset", "8", "--limit", "5"]);
    let steps: Vec<i64> = page["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["step"].as_i64().unwrap())
        .collect();
    assert_eq!(steps, vec![8, 9]);

    // Filters.
    assert_eq!(
        d.labctl_json(&["ls", "--status", "completed"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        d.labctl_json(&["ls", "--status", "failed"])
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        d.labctl_json(&["ls", "--tag", "t"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        d.labctl_json(&["ls", "--name", "base*"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let bad = d.labctl(&["ls", "--status", "finished"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("unknown status"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

#[test]
fn bad_lines_binary_files_and_nan_are_reported_never_fatal() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let d = Daemon::start(
        &tmp.path().join("data"),
        &inbox,
        &["--max-line-bytes", "1000"],
    );
    let long = "x".repeat(5000);
    std::fs::write(
        inbox.join("messy.jsonl"),
        format!("{{\"kind\":\"run\",\"name\":\"messy\"}}\nnot json at all\n{{\"kind\":\"metrics\",\"step\":1,\"values\":{{\"loss\":NaN,\"acc\":Infinity,\"f1\":null,\"bad\":\"high\"}}}}\n{long}\n{{\"kind\":\"metrics\",\"step\":\"two\",\"values\":{{\"loss\":1}}}}\n{{\"kind\":\"metrics\",\"step\":3,\"values\":{{\"loss\":0.5}}}}\n"),
    )
    .unwrap();
    std::fs::write(
        inbox.join("weights.jsonl"),
        b"\x00\x01\x02binary\x00stuff\n",
    )
    .unwrap();
    std::fs::create_dir_all(inbox.join("loop")).unwrap();
    std::os::unix::fs::symlink(inbox.join("loop"), inbox.join("loop/again")).unwrap();

    d.wait_for("the messy run", 5, |d| {
        find(&d.ls(), "messy").is_some_and(|r| r["points"] == 3)
    });
    let errors = d.labctl_json(&["errors"]);
    let errors = errors.as_array().unwrap();
    let at = |line: u64| {
        errors
            .iter()
            .find(|e| e["line"] == line && e["path"].as_str().unwrap().ends_with("messy.jsonl"))
    };
    assert!(
        at(2).unwrap()["reason"]
            .as_str()
            .unwrap()
            .contains("not a JSON object")
    );
    assert!(
        at(3).unwrap()["reason"]
            .as_str()
            .unwrap()
            .contains("values.bad")
    );
    assert!(
        at(4).unwrap()["reason"]
            .as_str()
            .unwrap()
            .contains("over the limit")
    );
    assert!(
        at(5).unwrap()["reason"]
            .as_str()
            .unwrap()
            .contains("\"step\" must be an integer")
    );
    assert!(
        errors
            .iter()
            .any(|e| e["path"].as_str().unwrap().ends_with("weights.jsonl")
                && e["reason"].as_str().unwrap().contains("binary"))
    );
    let id = find(&d.ls(), "messy").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let nan = d.labctl_json(&["metric", &id, "loss"]);
    assert_eq!(nan["points"][0]["repr"], "NaN");
    assert_eq!(nan["points"][1]["value"], 0.5);
    let inf = d.labctl_json(&["metric", &id, "acc"]);
    assert_eq!(inf["points"][0]["repr"], "Infinity");

    // The human form names file and line.
    let text = String::from_utf8(d.labctl(&["errors"]).stdout).unwrap();
    assert!(
        text.contains("messy.jsonl:2: error: not a JSON object"),
        "{text}"
    );

    // Ingest state shows the dead file, and the daemon is still alive and well.
    let state = d.labctl_json(&["status"]);
    let files = state["ingest"]["files"].as_array().unwrap();
    assert!(
        files.iter().any(
            |f| f["path"].as_str().unwrap().ends_with("weights.jsonl") && f["dead"].is_string()
        )
    );
    assert_eq!(state["health"]["status"], "ok");
}

#[test]
fn a_replaced_file_starts_new_runs_with_a_warning_not_a_mixup() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let d = Daemon::start(&tmp.path().join("data"), &inbox, &[]);
    let file = inbox.join("r.jsonl");
    write_run(&file, "first", 20, true);
    d.wait_for("first run", 5, |d| {
        find(&d.ls(), "first").is_some_and(|r| r["points"] == 40)
    });
    // Replace it by a shorter file (as `>` in a shell does): truncation is detected.
    write_run(&file, "second", 3, true);
    d.wait_for("second run", 5, |d| {
        find(&d.ls(), "second").is_some_and(|r| r["points"] == 6)
    });
    assert_eq!(
        find(&d.ls(), "first").unwrap()["points"],
        40,
        "the first run is untouched"
    );
    let errors = d.labctl_json(&["errors"]);
    assert!(
        errors.as_array().unwrap().iter().any(|e| e["reason"]
            .as_str()
            .unwrap()
            .contains("reading it again from the start")),
        "{errors}"
    );
}

#[test]
fn compare_export_validate_and_tail_work_as_users_run_them() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let d = Daemon::start(&tmp.path().join("data"), &inbox, &[]);
    write_run(&inbox.join("a.jsonl"), "a", 5, true);
    write_run(&inbox.join("b.jsonl"), "b", 7, true);
    d.wait_for("two runs", 5, |d| {
        d.ls().len() == 2 && d.total_points() == 24
    });
    let ids: Vec<String> = d
        .ls()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();

    let cmp = d.labctl_json(&["compare", &ids[0], &ids[1]]);
    let config = cmp["sections"]["config"].as_array().unwrap();
    let name_row = config.iter().find(|r| r["key"] == "name").unwrap();
    assert_eq!(name_row["differs"], true);
    let lr_row = config.iter().find(|r| r["key"] == "optim.lr").unwrap();
    assert_eq!(lr_row["differs"], false);
    let text = String::from_utf8(d.labctl(&["compare", &ids[0], &ids[1]]).stdout).unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with('*') && l.contains("name")),
        "{text}"
    );

    let out = tmp.path().join("export");
    let ex = d.labctl(&["export", &ids[1], "--to", out.to_str().unwrap()]);
    assert!(
        ex.status.success(),
        "{}",
        String::from_utf8_lossy(&ex.stderr)
    );
    let config: Value =
        serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["optim"]["lr"], 0.01);
    let history: Value =
        serde_json::from_slice(&std::fs::read(out.join("metrics/training_history.json")).unwrap())
            .unwrap();
    assert_eq!(history["train/loss"].as_array().unwrap().len(), 7);
    assert!(out.join("artifacts.json").exists());
    assert!(out.join("sources/b.jsonl").exists());

    let bad = tmp.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"kind\":\"run\"}\n{\"kind\":\"metrics\",\"values\":[1]}\n{\"kind\":\"status\",\"status\":\"done\"}\n").unwrap();
    let v = d.labctl(&["validate", bad.to_str().unwrap()]);
    assert_eq!(v.status.code(), Some(1));
    let text = String::from_utf8(v.stdout).unwrap();
    assert!(
        text.contains("bad.jsonl:2: \"values\" must be an object"),
        "{text}"
    );
    assert!(text.contains("bad.jsonl:3: unknown status"), "{text}");
    assert_eq!(
        d.labctl(&["validate", inbox.join("a.jsonl").to_str().unwrap()])
            .status
            .code(),
        Some(0)
    );

    // tail: from the beginning, the first events are the first run's.
    let mut child = std::process::Command::new(labd_e2e::bin("labctl"))
        .args(["tail", "--from", "1", "--json"])
        .env("LABD_ADDR", &d.addr)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut reader, &mut first).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let rec: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(rec["seq"], 1);
    assert!(
        rec["event"]["kind"]["experiment_created"].is_object(),
        "{rec}"
    );
}

#[test]
fn labctl_ingest_reads_a_folder_outside_the_watch_and_silence_makes_runs_stale() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("inbox");
    let elsewhere = tmp.path().join("old-runs");
    let mut expected = 0;
    for i in 0..5 {
        expected += write_run(
            &elsewhere.join(format!("r{i}.jsonl")),
            &format!("old{i}"),
            50,
            i > 0,
        );
    }
    let d = Daemon::start(&tmp.path().join("data"), &inbox, &["--stale-after", "1"]);
    let out = d.labctl(&["ingest", elsewhere.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("{expected} points")), "{text}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ingest:"),
        "progress is shown on stderr"
    );
    assert_eq!(d.total_points(), expected);
    // Ingesting again reads nothing twice.
    let again = d.labctl_json(&["ingest", elsewhere.to_str().unwrap()]);
    assert_eq!(again["points"], 0);
    assert_eq!(d.total_points(), expected);
    // The one run without a final status goes stale once its source is silent.
    d.wait_for("a stale run", 5, |d| {
        d.labctl_json(&["ls", "--status", "stale"])
            .as_array()
            .is_some_and(|a| a.len() == 1)
    });
    assert_eq!(
        d.labctl_json(&["ls", "--status", "completed"])
            .as_array()
            .unwrap()
            .len(),
        4
    );
    let missing = d.labctl(&["ingest", "/definitely/not/here"]);
    assert_eq!(missing.status.code(), Some(2));
}

#[test]
fn a_renamed_over_copy_continues_a_nul_keeps_the_lines_before_it_and_tail_shows_nan() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let d = Daemon::start(&tmp.path().join("data"), &inbox, &[]);

    // rsync and editors write a new file and rename it over the old one.
    let file = inbox.join("synced.jsonl");
    write_run(&file, "synced", 10, false);
    d.wait_for("the first part", 5, |d| d.total_points() == 20);
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str("{\"kind\":\"metrics\",\"split\":\"train\",\"step\":10,\"values\":{\"loss\":0.1,\"acc\":0.9}}\n");
    let tmpfile = inbox.join(".synced.jsonl.tmp");
    std::fs::write(&tmpfile, text).unwrap();
    std::fs::rename(&tmpfile, &file).unwrap();
    d.wait_for("the synced continuation", 5, |d| d.total_points() == 22);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(d.ls().len(), 1, "no second run from the same content");
    assert_eq!(d.total_points(), 22);

    // A zero-filled tail (power loss): the complete lines before it are kept.
    let mut bytes = b"{\"kind\":\"run\",\"name\":\"zeroed\"}\n{\"kind\":\"metrics\",\"values\":{\"loss\":NaN}}\n{\"kind\":\"metrics\",\"values\":{\"loss\":1}}\n{\"kind\":\"met".to_vec();
    bytes.extend_from_slice(&[0u8; 64]);
    std::fs::write(inbox.join("zeroed.jsonl"), bytes).unwrap();
    d.wait_for("the zeroed run", 5, |d| {
        find(&d.ls(), "zeroed").is_some_and(|r| r["points"] == 2)
    });
    let errors = d.labctl_json(&["errors", "--path", "zeroed"]);
    assert!(
        errors[0]["reason"]
            .as_str()
            .unwrap()
            .contains("lines before it were read"),
        "{errors}"
    );

    // One file by itself, outside the watched folder.
    let single = tmp.path().join("single.jsonl");
    write_run(&single, "single", 4, true);
    let report = d.labctl_json(&["ingest", single.to_str().unwrap()]);
    assert_eq!(report["points"], 8, "{report}");
    assert!(find(&d.ls(), "single").is_some());

    // The human tail prints NaN values instead of failing on them.
    let mut child = std::process::Command::new(labd_e2e::bin("labctl"))
        .args(["tail", "--from", "1"])
        .env("LABD_ADDR", &d.addr)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let killer = labd_e2e::KillOnDrop(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)).map_while(Result::ok) {
            if line.contains("loss=NaN") {
                let _ = tx.send(line);
                return;
            }
        }
    });
    let line = rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("a tail line with loss=NaN");
    assert!(line.contains("zeroed"), "{line}");
    drop(killer);
}

#[test]
fn where_filters_runs_by_params_summaries_metrics_and_says_where_an_expression_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let examples = labd_e2e::repo_root().join("examples/runs");
    let d = Daemon::start(&tmp.path().join("data"), &examples, &[]);
    d.wait_for("the example runs", 5, |d| d.ls().len() == 7);
    let names = |expr: &str| -> Vec<String> {
        let mut v: Vec<String> = d
            .labctl_json(&["runs", "--where", expr])
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names("optim.lr < 1e-2 and seed == 0"), ["mlp-lr0.001-s0"]);
    assert_eq!(
        names("optim.name == \"sgd\" or status == \"failed\""),
        ["diverged"]
    );
    assert_eq!(names("tag == \"sweep-lr\" and optim.lr in [0.1]").len(), 2);
    assert_eq!(
        names("summary.final.test_acc > 0.8 and metric.val/acc > 0.8 and not exists description")
            .len(),
        0
    );
    assert!(!names("summary.final.test_acc > 0.8 and metric.val/acc > 0.8").is_empty());
    assert_eq!(
        names("model.layers.1 == 64 and name like \"mlp-lr0.1-*\"").len(),
        2
    );
    let bad = d.labctl(&["runs", "--where", "optim.lr <"]);
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("column 11") && err.contains("expected a value"),
        "{err}"
    );
}

/// Ids as the experiment manager made them (seed 001): the name keeps its underscores, and the time can be the
/// host's local time (`--id-time local`).
#[test]
fn ids_keep_underscores_and_their_time_can_be_local() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let line = "{\"kind\":\"run\",\"name\":\"my_exp\",\"time\":\"2024-12-16T14:30:52Z\",\"config\":{\"lr\":0.1}}\n";
    std::fs::write(inbox.join("a.jsonl"), line).unwrap();
    let utc = labd_e2e::Daemon::start(&tmp.path().join("utc"), &inbox, &[]);
    utc.wait_for("the run", 10, |d| d.ls().len() == 1);
    let id = utc.ls()[0]["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("20241216_143052_my_exp_"), "{id}");
    let local = labd_e2e::Daemon::start_with_env(
        &tmp.path().join("local"),
        &inbox,
        &["--id-time", "local"],
        // A POSIX TZ string: no time zone database needed.
        &[("TZ", "JST-9")],
    );
    local.wait_for("the run", 10, |d| d.ls().len() == 1);
    let id = local.ls()[0]["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("20241216_233052_my_exp_"), "{id}");
}
