//! Numbers come back with the bits they were written with. Property tests generate arbitrary finite doubles
//! (every exponent, subnormals, ±0.0, the extremes, values with 17 significant digits), write them in every
//! format labd ingests as the library that writes that format would, and read them back through the HTTP API,
//! `labctl points` (CSV, JSON and Parquet), after a replay and after a restart from the checkpoint. Integers in
//! configs stay integers, beyond 2^53 too.

mod check;
mod formats;
mod generate;
mod python;
mod tensorboard;

use check::{check_export, check_http, check_points, run_id};
use formats::Expected;
use generate::{case, double};
use labd_e2e::Daemon;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use python::py;
use std::collections::BTreeMap;

#[test]
fn pythons_float_repr_is_what_these_tests_write() {
    // The writers above claim to write as Python does; Python says so itself for a few thousand doubles.
    let mut runner = TestRunner::deterministic();
    let values: Vec<f64> = (0..3000)
        .map(|_| double().new_tree(&mut runner).expect("value").current())
        .collect();
    let script = "import sys, struct\nfor line in sys.stdin:\n    print(repr(struct.unpack('<d', bytes.fromhex(line.strip()))[0]))\n";
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let input: String = values
        .iter()
        .map(|v| {
            v.to_le_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
                + "\n"
        })
        .collect();
    std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), input.as_bytes())
        .expect("write");
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("python3 output");
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let reprs: Vec<&str> = text.lines().collect();
    assert_eq!(reprs.len(), values.len());
    for (v, r) in values.iter().zip(reprs) {
        assert_eq!(py(*v), r, "bits {:#x}", v.to_bits());
    }
}

#[test]
fn every_number_comes_back_bit_for_bit_from_every_format() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let inbox = tmp.path().join("inbox");
    std::fs::create_dir_all(&inbox).expect("inbox");
    let mut d = Daemon::start(&tmp.path().join("data"), &inbox, &[]);
    let cases: u32 = std::env::var("LABD_EXACT_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let all = std::cell::RefCell::new(Vec::<Expected>::new());
    let ids = std::cell::RefCell::new(BTreeMap::<String, String>::new());
    let n = std::cell::Cell::new(0usize);
    let result = runner.run(&case(), |c| {
        n.set(n.get() + 1);
        let runs = formats::write_case(&d, &inbox, n.get(), &c);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let mut found = BTreeMap::new();
        while found.len() < runs.len() {
            let (_, list) = d.get("/experiments");
            let list = list.as_array().cloned().unwrap_or_default();
            for e in &runs {
                let points = e.metrics.values().map(Vec::len).sum();
                if let Some(id) = run_id(&list, &e.name, points) {
                    found.insert(e.name.clone(), id);
                }
            }
            if std::time::Instant::now() > deadline {
                let missing: Vec<&str> = runs
                    .iter()
                    .map(|e| e.name.as_str())
                    .filter(|name| !found.contains_key(*name))
                    .collect();
                return Err(TestCaseError::fail(format!(
                    "not ingested in 30 s: {missing:?}\n{}",
                    d.log()
                )));
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        check_http(&d, &found, &runs).map_err(TestCaseError::fail)?;
        ids.borrow_mut().extend(found);
        all.borrow_mut().extend(runs);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let (ids, all) = (ids.into_inner(), all.into_inner());
    let problems = d.labctl_json(&["errors"]);
    assert_eq!(problems.as_array().map_or(0, Vec::len), 0, "{problems}");

    // Every answer: the long table in each format.
    for format in ["json", "csv", "parquet"] {
        check_points(&d, &ids, &all, format, tmp.path()).unwrap_or_else(|e| panic!("{e}"));
    }
    check_export(&d, &ids, &all, tmp.path()).unwrap_or_else(|e| panic!("{e}"));
    // After a replay of the whole log.
    let replay = d.labctl_json(&["replay"]);
    assert!(replay["points"].as_u64().unwrap_or(0) > 0, "{replay}");
    check_http(&d, &ids, &all).unwrap_or_else(|e| panic!("after replay: {e}"));
    check_points(&d, &ids, &all, "json", tmp.path())
        .unwrap_or_else(|e| panic!("after replay: {e}"));
    // After a restart from the checkpoint (the curve store warmed up from the log).
    d.stop();
    d.restart();
    d.wait_for("the curve store", 60, |d| {
        d.get("/analytics/points?format=json").0 == 200
    });
    check_http(&d, &ids, &all).unwrap_or_else(|e| panic!("after restart: {e}"));
    check_points(&d, &ids, &all, "csv", tmp.path())
        .unwrap_or_else(|e| panic!("after restart: {e}"));
}

#[test]
fn integers_beyond_two_to_the_53_are_kept_and_filtered_exactly() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let inbox = tmp.path().join("inbox");
    std::fs::create_dir_all(&inbox).expect("inbox");
    let d = Daemon::start(&tmp.path().join("data"), &inbox, &[]);
    // 2^53 and 2^53 + 1 are one double; as integers they are two seeds.
    let mut text = String::new();
    for (name, seed) in [
        ("a", "9007199254740992"),
        ("b", "9007199254740993"),
        ("c", "18446744073709551615"),
        ("d", "-9223372036854775808"),
    ] {
        text += &format!(
            "{{\"kind\":\"run\",\"name\":\"{name}\",\"config\":{{\"seed\":{seed},\"lr\":2.1963844280992926}}}}\n\
             {{\"kind\":\"metrics\",\"step\":0,\"values\":{{\"loss\":1.9454612825111754}}}}\n"
        );
    }
    std::fs::write(inbox.join("ints.jsonl"), text).expect("write");
    d.wait_for("four runs", 20, |d| d.ls().len() == 4);
    let seeds: BTreeMap<String, String> = d
        .ls()
        .iter()
        .map(|r| {
            let (_, show) = d.get(&format!("/experiments/{}", r["id"].as_str().unwrap_or("")));
            (
                r["name"].as_str().unwrap_or("").to_string(),
                show["config"]["seed"].to_string(),
            )
        })
        .collect();
    assert_eq!(seeds["a"], "9007199254740992");
    assert_eq!(seeds["b"], "9007199254740993");
    assert_eq!(seeds["c"], "18446744073709551615");
    assert_eq!(seeds["d"], "-9223372036854775808");
    let names = |expr: &str| -> Vec<String> {
        let rows = d.labctl_json(&["ls", "--where", expr]);
        let mut names: Vec<String> = rows
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|r| r["name"].as_str().unwrap_or("").to_string())
            .collect();
        names.sort();
        names
    };
    assert_eq!(names("seed == 9007199254740993"), ["b"]);
    assert_eq!(names("seed == 9007199254740992"), ["a"]);
    assert_eq!(names("seed > 9007199254740992"), ["b", "c"]);
    assert_eq!(names("seed == 18446744073709551615"), ["c"]);
    assert_eq!(names("seed < -9223372036854775807"), ["d"]);
    assert_eq!(names("lr == 2.1963844280992926"), ["a", "b", "c", "d"]);
    assert!(
        names("lr == 2.196384428099293").is_empty(),
        "a neighbouring double is another value"
    );
    assert_eq!(names("metric.loss == 1.9454612825111754").len(), 4);
    assert!(names("metric.loss == 1.9454612825111752").is_empty());
    // The summary table keeps the integer keys as integers.
    let out = d.labctl(&[
        "summary", "--metric", "loss", "--by", "seed", "--format", "csv",
    ]);
    let csv = String::from_utf8_lossy(&out.stdout);
    for seed in [
        "9007199254740992",
        "9007199254740993",
        "18446744073709551615",
    ] {
        assert!(
            csv.lines().any(|l| l.starts_with(&format!("{seed},"))),
            "{seed} in\n{csv}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
