//! CMR benchmarks through the real labd and labctl: a small benchmark run by the real `labd-cmr` (built with the
//! `torch` feature), its exports and comparison; results dropped in from elsewhere; and the answer when labd has
//! no runner.

use labd_e2e::Daemon;
use serde_json::{Value, json};
use std::path::PathBuf;

/// The runner beside the test binaries, if it was built (`--features labd-cmr/torch`). The README's test command
/// builds it and sets LABD_REQUIRE_TORCH=1, so there its absence is a failure, not a skip.
fn runner() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let path = exe.parent()?.parent()?.join("labd-cmr");
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var_os("LABD_REQUIRE_TORCH").is_none(),
        "{} is missing: build with `--features labd-cmr/torch` (scripts/test.sh does)",
        path.display()
    );
    eprintln!("skipping: labd-cmr was not built (needs --features labd-cmr/torch)");
    None
}

const TINY: &str = r#"
name: tiny
model: {layers: 2, d_model: 32, heads: 4, vocab: 1024, max_seq_len: 256}
cmr: {hook_layers: [0, 1]}
run:
  device: cpu
  threads: 1
  warmup: 1
  repeats: 3
  sequence_lengths: [32, 64, 128]
  batch_sizes: [1, 2]
  focus_sequence_length: 64
  buffer_steps: 4
datasets: {samples: 3}
"#;

#[test]
fn a_small_cmr_benchmark_runs_through_labctl_and_exports_its_reports() {
    let Some(_) = runner() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start(&tmp.path().join("data"), &tmp.path().join("inbox"), &[]);
    let config = tmp.path().join("tiny.yaml");
    std::fs::write(&config, TINY).unwrap();
    let out = d.labctl(&["bench", "cmr", "--config", config.to_str().unwrap()]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}\n{}", d.log());
    assert!(stderr.contains("measurements planned"), "{stderr}");
    assert!(stdout.contains("recommendations:"), "{stdout}");

    let list = d.labctl_json(&["bench", "ls"]);
    let benches = list["benchmarks"].as_array().unwrap();
    assert_eq!(benches.len(), 1);
    let b = &benches[0];
    let id = b["id"].as_str().unwrap().to_string();
    assert_eq!(b["status"], "completed");
    assert_eq!(b["runner"], "labd");
    // 6 overhead + 6 memory + 2 layers + 4 strategies + 3 methods + 4 buffer steps + 3 components + 5 datasets
    assert_eq!(b["planned"], 33);
    assert_eq!(b["measured"], 33);

    // Every measurement is an event in the log; beside them, labd's own samples of what the runner used.
    let events = d.get("/events?limit=100000").1;
    let kinds: Vec<&Value> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["event"]["kind"]["bench_measured"].as_object())
        .filter_map(|m| m.get("analysis"))
        .collect();
    let utilization = kinds.iter().filter(|a| **a == "utilization").count();
    assert_eq!(kinds.len() - utilization, 33);
    assert!(utilization >= 1, "utilization sampled while the runner ran");

    let dir = tmp.path().join("export");
    let out = d.labctl(&["bench", "export", &id, "--out", dir.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every repeat, beside the summary.
    assert!(dir.join("charts/overhead.svg").is_file());
    assert!(dir.join("charts/memory.svg").is_file());
    // What the runner used while it ran, sampled by labd.
    assert!(dir.join("charts/utilization.svg").is_file());
    let raw = std::fs::read_to_string(dir.join("raw_measurements.csv")).unwrap();
    assert!(raw.starts_with("analysis,"), "{raw}");
    assert!(raw.lines().count() > 6, "{raw}");
    let csv = std::fs::read_to_string(dir.join("performance_summary.csv")).unwrap();
    let mut lines = csv.lines();
    assert!(lines.next().unwrap().starts_with(
        "sequence_length,batch_size,baseline_time,full_cmr_time,overhead_percentage,memory_utilization"
    ));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 6);
    for r in &rows {
        let base: f64 = r[2].parse().unwrap();
        let cmr: f64 = r[3].parse().unwrap();
        let pct: f64 = r[4].parse().unwrap();
        assert!(base > 0.0 && cmr > 0.0);
        assert!((pct - (cmr - base) / base * 100.0).abs() < 1e-6);
    }
    let report: Value = serde_json::from_slice(
        &std::fs::read(dir.join("performance_analysis_report.json")).unwrap(),
    )
    .unwrap();
    assert!(!report["recommendations"].as_array().unwrap().is_empty());
    let fits = &report["detailed_results"]["scalability"]["1"]["full_cmr"];
    assert_eq!(fits.as_array().unwrap().len(), 3, "{fits}");
    assert_eq!(
        report["detailed_results"]["components"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    for kind in [
        "conversation",
        "long_context",
        "question_answering",
        "summarization",
        "code_generation",
    ] {
        let ds: Value = serde_json::from_slice(
            &std::fs::read(dir.join(format!("dataset_{kind}_results.json"))).unwrap(),
        )
        .unwrap();
        let (acc, chance) = (
            ds["retrieval_accuracy"].as_f64().unwrap(),
            ds["chance"].as_f64().unwrap(),
        );
        assert!((0.0..=1.0).contains(&acc) && chance < 1.0, "{kind}: {ds}");
    }

    // A second run of the same benchmark compares against the first by default.
    let out = d.labctl(&["bench", "cmr", "--config", config.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        d.log()
    );
    let list = d.labctl_json(&["bench", "ls"]);
    let newest = list["benchmarks"][0]["id"].as_str().unwrap().to_string();
    assert_ne!(newest, id);
    let cmp = d.labctl_json(&["bench", "compare", &newest]);
    assert_eq!(cmp["a"]["id"], id.as_str());
    let rows = cmp["rows"].as_array().unwrap();
    assert!(
        rows.iter()
            .any(|r| r["value"] == "full_cmr_time" && r["analysis"] == "overhead")
    );
}

/// The predecessor's dataset tests as its documentation writes them (`dataset_config`: name, type, max_length,
/// max_samples, batch_size, test_config toggles), on the shipped text and on a folder of the user's own text.
#[test]
fn the_predecessors_dataset_configs_run_on_real_text() {
    let Some(_) = runner() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start(&tmp.path().join("data"), &tmp.path().join("inbox"), &[]);
    let texts = tmp.path().join("texts");
    std::fs::create_dir_all(&texts).unwrap();
    std::fs::write(
        texts.join("notes.md"),
        "The experiment ran for three days. The loss fell slowly and then all at once. ".repeat(20),
    )
    .unwrap();
    std::fs::write(
        texts.join("dialogue.jsonl"),
        "{\"text\": \"Did the run finish? It did, after the second restart.\"}\n".repeat(10),
    )
    .unwrap();
    let config = tmp.path().join("datasets.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
name: dataset-testing
model: {{layers: 2, d_model: 32, heads: 4, vocab: 1024}}
cmr: {{hook_layers: [0, 1]}}
run: {{device: cpu, threads: 1, analyses: [dataset]}}
datasets:
  dataset_configs:
    - name: conversation_test
      type: conversation
      max_length: 512
      max_samples: 50
      batch_size: 4
      test_config: {{enable_memory: true, enable_reconstruction: true}}
    - {{name: qa_plain, type: question_answering, max_samples: 4, test_config: {{enable_memory: false}}}}
    - {{name: long_no_reweave, type: long_context, max_length: 256, max_samples: 3, batch_size: 2,
        test_config: {{enable_memory: true, enable_reconstruction: false}}}}
    - {{name: my_notes, type: summarization, max_samples: 2, text: {}}}
"#,
            texts.display()
        ),
    )
    .unwrap();
    let out = d.labctl(&["bench", "cmr", "--config", config.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        d.log()
    );
    let list = d.labctl_json(&["bench", "ls"]);
    let id = list["benchmarks"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(list["benchmarks"][0]["measured"], 4);
    let results = d.get(&format!("/benchmarks/{id}/datasets")).1;
    let conv = &results["conversation_test"];
    assert_eq!(conv["samples"], 50.0, "{results}");
    assert!(conv["retrieval_accuracy"].as_f64().is_some(), "{conv}");
    assert!(
        conv["reconstruction_fidelity"].is_number() || conv["reconstruction_fidelity"] == "NaN"
    );
    // The plain model: timings only.
    let plain = &results["qa_plain"];
    assert!(plain["time_per_segment"].as_f64().unwrap() > 0.0, "{plain}");
    assert!(plain.get("retrieval_accuracy").is_none(), "{plain}");
    // Stored and retrieved, never reweaved.
    let long = &results["long_no_reweave"];
    assert!(long["retrieval_accuracy"].as_f64().is_some(), "{long}");
    assert!(long.get("reconstruction_fidelity").is_none(), "{long}");
    assert!(results["my_notes"]["facts_asked"].as_f64().unwrap() >= 8.0);
    // The options are the measurements' parameters.
    let events = d.get("/events?limit=100000").1;
    let params: Vec<Value> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["event"]["kind"]["bench_measured"].as_object())
        .filter(|m| m["analysis"] == "dataset")
        .map(|m| m["params"].clone())
        .collect();
    assert_eq!(params.len(), 4);
    assert_eq!(
        params[0],
        json!({"dataset": "conversation_test", "type": "conversation", "text": "corpus", "max_length": 512,
               "batch_size": 4, "memory": true, "reconstruction": true})
    );
    assert_eq!(params[3]["text"], "files");

    // A text path that is not there is refused before anything runs, naming it.
    let (code, body) = d.post(
        "/benchmarks",
        &json!({"config": {"datasets": {"kinds": ["conversation"], "text": "/nonexistent/corpus"}}}),
    );
    assert_eq!(code, 400, "{body}");
    let all = body.to_string();
    assert!(
        all.contains("/nonexistent/corpus") && all.contains("no such file"),
        "{all}"
    );
}

#[test]
fn results_dropped_in_as_benchmark_lines_land_in_the_same_view() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("inbox");
    let d = Daemon::start(&tmp.path().join("data"), &inbox, &[]);
    std::fs::create_dir_all(&inbox).unwrap();
    let mut text = String::from(
        "{\"kind\":\"bench\",\"bench\":\"py-harness-1\",\"name\":\"python\",\"config\":{\"model\":\"gpt2\"},\"build\":{\"torch\":\"2.11\"},\"planned\":4}\n",
    );
    for (n, base, cmr) in [(64, 0.010, 0.012), (128, 0.020, 0.025), (256, 0.045, 0.060)] {
        text.push_str(&format!(
            "{{\"kind\":\"bench_result\",\"bench\":\"py-harness-1\",\"analysis\":\"overhead\",\"params\":{{\"sequence_length\":{n},\"batch_size\":1}},\"values\":{{\"baseline_time\":{base},\"full_cmr_time\":{cmr},\"overhead_percentage\":{},\"memory_utilization\":0.5}}}}\n",
            (cmr - base) / base * 100.0
        ));
    }
    text.push_str("{\"kind\":\"bench_result\",\"bench\":\"py-harness-1\",\"values\":{}}\n");
    text.push_str("{\"kind\":\"bench_end\",\"bench\":\"py-harness-1\",\"status\":\"completed\"}\n");
    std::fs::write(inbox.join("harness.jsonl"), text).unwrap();
    d.wait_for("the dropped benchmark", 10, |d| {
        d.get("/benchmarks/py-harness-1").1["status"] == "completed"
    });
    let (code, b) = d.get("/benchmarks/py-harness-1");
    assert_eq!(code, 200);
    assert_eq!(b["measured"], 3);
    assert!(b["runner"].is_null());
    // The bad line is an ingest error naming file and line.
    let errors = d.get("/ingest/errors").1;
    let text = errors.to_string();
    assert!(
        text.contains("harness.jsonl") && text.contains("without \\\"analysis\\\""),
        "{text}"
    );
    let report = d.get("/benchmarks/py-harness-1/report").1;
    assert_eq!(
        report["summary"]["max_overhead"]["sequence_length"], 256,
        "{report}"
    );
    assert_eq!(
        report["detailed_results"]["scalability"]["1"]["full_cmr"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let csv = labd_e2e::request(
        &d.addr,
        "GET",
        "/benchmarks/py-harness-1/summary.csv",
        None,
        None,
    );
    let csv = csv.1["text"].as_str().unwrap_or_default().to_string();
    assert!(csv.contains("\n128,1,0.02,0.025,25"), "{csv}");
    let raw = labd_e2e::request(
        &d.addr,
        "GET",
        "/benchmarks/py-harness-1/raw.csv",
        None,
        None,
    );
    let raw = raw.1["text"].as_str().unwrap_or_default().to_string();
    assert!(raw.starts_with("analysis,"), "{raw}");
    // Its charts: overhead and time by sequence length from the overhead rows; none of memory without them.
    for chart in ["overhead", "scaling"] {
        let (code, svg) = labd_e2e::request(
            &d.addr,
            "GET",
            &format!("/benchmarks/py-harness-1/charts/{chart}.svg"),
            None,
            None,
        );
        assert_eq!(code, 200, "{chart}: {svg}");
        let svg = svg["text"].as_str().unwrap_or_default().to_string();
        assert!(
            svg.starts_with("<svg") && svg.contains("<polyline"),
            "{svg}"
        );
    }
    assert_eq!(d.get("/benchmarks/py-harness-1/charts/pie.svg").0, 404);
    assert_eq!(d.get("/benchmarks/nope").0, 404);
}

#[test]
fn without_a_runner_labctl_says_how_to_enable_benchmarks() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        &tmp.path().join("data"),
        &tmp.path().join("inbox"),
        &["--cmr-runner", "/nonexistent/labd-cmr"],
    );
    let out = d.labctl(&["bench", "cmr"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`torch` feature") && err.contains("scripts/libtorch.sh"),
        "{err}"
    );
    // A bad configuration is refused before anything runs, naming the field.
    let (code, body) = d.post(
        "/benchmarks",
        &json!({"config": {"cmr": {"hook_layers": [7]}}}),
    );
    assert_eq!(code, 400);
    assert!(body["error"].as_str().unwrap().contains("cmr.hook_layers"));
}

/// A benchmark long enough to be caught running: many repeats of the overhead analysis only.
const SLOW: &str = r#"{"name": "slow", "model": {"layers": 2, "d_model": 32, "heads": 4, "vocab": 1024, "max_seq_len": 256},
  "cmr": {"hook_layers": [0, 1]},
  "run": {"device": "cpu", "threads": 1, "warmup": 1, "repeats": 400, "sequence_lengths": [64, 128, 256],
          "batch_sizes": [1, 2, 4, 8], "analyses": ["overhead"]}}"#;

fn wait_measuring(d: &Daemon, id: &str) {
    d.wait_for("the benchmark's first measurement", 60, |d| {
        d.get(&format!("/benchmarks/{id}")).1["measured"]
            .as_u64()
            .is_some_and(|n| n >= 1)
    });
}

fn runner_alive(dir: &std::path::Path) -> bool {
    // The runner is the process whose working directory is the benchmark's folder.
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .any(|p| std::fs::read_link(p.path().join("cwd")).is_ok_and(|cwd| cwd == dir))
}

#[test]
fn a_benchmark_can_be_cancelled_and_one_cut_off_by_a_crash_is_interrupted() {
    let Some(_) = runner() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(&tmp.path().join("data"), &tmp.path().join("inbox"), &[]);
    let config: Value = serde_json::from_str(SLOW).unwrap();

    let (code, started) = d.post("/benchmarks", &json!({ "config": config }));
    assert_eq!(code, 202, "{started}");
    let id = started["bench"].as_str().unwrap().to_string();
    let dir = std::path::PathBuf::from(started["dir"].as_str().unwrap());
    wait_measuring(&d, &id);
    let (code, body) = d.post("/benchmarks", &json!({ "config": config }));
    assert_eq!(code, 409, "one benchmark at a time: {body}");
    let out = d.labctl(&["bench", "cancel", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    d.wait_for("the cancelled benchmark", 20, |d| {
        d.get(&format!("/benchmarks/{id}")).1["status"] == "cancelled"
    });
    let job = d.get(&format!("/jobs/{}", started["job"])).1;
    assert_eq!(job["finished"], true, "{job}");
    assert!(!runner_alive(&dir), "the runner is gone");
    assert_eq!(
        d.post(&format!("/benchmarks/{id}/cancel"), &json!({})).0,
        409
    );

    // kill -9 labd while a benchmark runs: the runner dies with it, and the restarted labd records it as
    // interrupted.
    let (_, started) = d.post("/benchmarks", &json!({ "config": config }));
    let id = started["bench"].as_str().unwrap().to_string();
    let dir = std::path::PathBuf::from(started["dir"].as_str().unwrap());
    wait_measuring(&d, &id);
    d.kill9();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while runner_alive(&dir) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(!runner_alive(&dir), "the runner died with labd");
    d.restart();
    d.wait_for("the interrupted benchmark", 20, |d| {
        d.get(&format!("/benchmarks/{id}")).1["status"] == "interrupted"
    });
    let b = d.get(&format!("/benchmarks/{id}")).1;
    assert!(
        b["measured"].as_u64().unwrap() >= 1,
        "what it measured is kept: {b}"
    );
}
