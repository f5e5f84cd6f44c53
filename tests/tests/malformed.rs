//! The malformed-input corpus: every format gets NaN and infinities, numbers out of range, invalid UTF-8, a
//! byte order mark, CRLF endings, duplicate keys, 10,000-deep nesting, a 100,000-key config, empty and
//! truncated files, plus a 1 GB single line, a FIFO, a symlink loop and files truncated, rewritten, renamed and
//! deleted while labd reads them. Each case ends in its documented outcome (kept, or an ingest error that
//! names the file and the line); none stops the daemon, damages the good run beside them, or grows labd's
//! memory with the input. `LABD_CORPUS_BIG_LINE_MB` sets the size of the big line (default 1024).

use labd_e2e::{Daemon, write_run};
use serde_json::Value;
use std::path::Path;

/// What a case must end in.
enum Outcome {
    /// Read without any ingest error for the file.
    Clean,
    /// An ingest error for the file whose reason contains the text (and, when given, at that line).
    Error(&'static str, Option<u64>),
}

struct Case {
    name: &'static str,
    /// Path under the inbox.
    path: String,
    bytes: Vec<u8>,
    outcome: Outcome,
}

fn deep_json(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

fn many_keys(n: usize) -> String {
    let body: Vec<String> = (0..n).map(|i| format!("\"k{i}\":{i}")).collect();
    format!("{{{}}}", body.join(","))
}

fn tb_record(body: &[u8]) -> Vec<u8> {
    let masked = |b: &[u8]| crc32c::crc32c(b).rotate_right(15).wrapping_add(0xa282_ead8);
    let len = (body.len() as u64).to_le_bytes();
    let mut out = len.to_vec();
    out.extend_from_slice(&masked(&len).to_le_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(&masked(body).to_le_bytes());
    out
}

fn corpus() -> Vec<Case> {
    use Outcome::*;
    let run = r#"{"kind":"run","name":"NAME","config":{"lr":0.1}}"#;
    let metric = |step: u64, v: &str| {
        format!(r#"{{"kind":"metrics","step":{step},"values":{{"loss":{v}}}}}"#)
    };
    let runlog = |name: &str, lines: &[String]| {
        let mut s = run.replace("NAME", name);
        s.push('\n');
        for l in lines {
            s.push_str(l);
            s.push('\n');
        }
        s.into_bytes()
    };
    let mut cases = vec![
        // The run log.
        Case {
            name: "runlog: NaN and infinities",
            path: "runlog/nan.jsonl".into(),
            bytes: runlog("rl_nan", &[metric(1, "NaN"), metric(2, "Infinity"), metric(3, "-Infinity")]),
            outcome: Clean,
        },
        Case {
            name: "runlog: 1e400",
            path: "runlog/range.jsonl".into(),
            bytes: runlog("rl_range", &[metric(1, "1e400"), metric(2, "0.5")]),
            outcome: Error("out of range", Some(2)),
        },
        Case {
            name: "runlog: invalid UTF-8",
            path: "runlog/utf8.jsonl".into(),
            bytes: [
                runlog("rl_utf8", &[]),
                b"{\"kind\":\"message\",\"text\":\"\xff\xfe\"}\n".to_vec(),
                metric(1, "1").into_bytes(),
                b"\n".to_vec(),
            ]
            .concat(),
            outcome: Error("not valid UTF-8", Some(2)),
        },
        Case {
            name: "runlog: byte order mark",
            path: "runlog/bom.jsonl".into(),
            bytes: [b"\xEF\xBB\xBF".to_vec(), runlog("rl_bom", &[metric(1, "1")])].concat(),
            outcome: Clean,
        },
        Case {
            name: "runlog: CRLF endings",
            path: "runlog/crlf.jsonl".into(),
            bytes: String::from_utf8(runlog("rl_crlf", &[metric(1, "1"), metric(2, "2")]))
                .unwrap()
                .replace('\n', "\r\n")
                .into_bytes(),
            outcome: Clean,
        },
        Case {
            name: "runlog: duplicate keys",
            path: "runlog/dup.jsonl".into(),
            bytes: runlog(
                "rl_dup",
                &[r#"{"kind":"metrics","step":1,"step":2,"values":{"loss":1}}"#.into()],
            ),
            // As in Python's json: the last of duplicate keys wins.
            outcome: Clean,
        },
        Case {
            name: "runlog: 10,000-deep nesting",
            path: "runlog/deep.jsonl".into(),
            bytes: runlog(
                "rl_deep",
                &[format!(r#"{{"kind":"run","name":"deep2","config":{{"x":{}}}}}"#, deep_json(10_000))],
            ),
            outcome: Error("recursion limit", Some(2)),
        },
        Case {
            name: "runlog: 100,000-key config",
            path: "runlog/keys.jsonl".into(),
            bytes: format!(
                "{{\"kind\":\"run\",\"name\":\"rl_keys\",\"config\":{}}}\n{}\n",
                many_keys(100_000),
                metric(1, "1")
            )
            .into_bytes(),
            outcome: Clean,
        },
        Case {
            name: "runlog: empty file",
            path: "runlog/empty.jsonl".into(),
            bytes: Vec::new(),
            outcome: Clean,
        },
        Case {
            name: "runlog: truncated mid-line (waits for the rest, reported once quiet)",
            path: "runlog/truncated.jsonl".into(),
            bytes: [runlog("rl_truncated", &[metric(1, "1")]), br#"{"kind":"metrics","st"#.to_vec()].concat(),
            outcome: Clean,
        },
        Case {
            name: "runlog: wrong types",
            path: "runlog/types.jsonl".into(),
            bytes: runlog(
                "rl_types",
                &[r#"{"kind":"metrics","step":"one","values":{"loss":1}}"#.into(), r#"[1,2,3]"#.into()],
            ),
            outcome: Error("must be an integer", Some(2)),
        },
        // dr_gen.
        Case {
            name: "dr_gen: NaN, 1e400, invalid UTF-8, deep nesting",
            path: "drgen/run/json_out.jsonl".into(),
            bytes: [
                br#"{"type": "dict_config", "value": {"seed": 0, "lr": 0.1}}"#.to_vec(),
                b"\n".to_vec(),
                br#"{"type": "dict", "value": {"epoch": 0, "train": {"loss": NaN}}}"#.to_vec(),
                b"\n".to_vec(),
                br#"{"type": "dict", "value": {"epoch": 1, "train": {"loss": 1e400}}}"#.to_vec(),
                b"\n\xff\xfe\n".to_vec(),
                format!(r#"{{"type": "dict", "value": {}}}"#, deep_json(10_000)).into_bytes(),
                b"\n".to_vec(),
            ]
            .concat(),
            outcome: Error("number out of range", Some(3)),
        },
        Case {
            name: "dr_gen: run lines with a 100,000-key hyperparameter set",
            path: "drgen/runs.jsonl".into(),
            bytes: format!(
                "{{\"run_id\": \"big\", \"hyperparameters\": {}, \"metrics\": {{\"train/loss\": [1.0, NaN, Infinity]}}}}\n",
                many_keys(100_000)
            )
            .into_bytes(),
            outcome: Clean,
        },
        // The Trainer's state.
        Case {
            name: "trainer_state.json: NaN and Infinity (as Python writes them)",
            path: "hf/hf_nan/trainer_state.json".into(),
            bytes: br#"{"global_step": 2, "log_history": [{"step": 1, "loss": NaN, "grad_norm": Infinity}, {"step": 2, "loss": 0.5}]}"#.to_vec(),
            outcome: Clean,
        },
        Case {
            name: "trainer_state.json: byte order mark and CRLF",
            path: "hf/bom/trainer_state.json".into(),
            bytes: b"\xEF\xBB\xBF{\"global_step\": 1,\r\n \"log_history\": [{\"step\": 1, \"loss\": 0.5}]}\r\n".to_vec(),
            outcome: Clean,
        },
        Case {
            name: "trainer_state.json: truncated",
            path: "hf/truncated/trainer_state.json".into(),
            bytes: br#"{"global_step": 2, "log_history": [{"step": 1, "lo"#.to_vec(),
            outcome: Error("not a whole trainer_state.json", None),
        },
        Case {
            name: "trainer_state.json: 10,000-deep nesting",
            path: "hf/deep/trainer_state.json".into(),
            bytes: format!(r#"{{"global_step": 1, "log_history": {}}}"#, deep_json(10_000)).into_bytes(),
            outcome: Error("recursion limit", None),
        },
        Case {
            name: "trainer_state.json: invalid UTF-8",
            path: "hf/utf8/trainer_state.json".into(),
            bytes: b"{\"global_step\": 1, \"log_history\": [{\"step\": 1, \"note\": \"\xff\"}]}".to_vec(),
            outcome: Error("not a whole trainer_state.json", None),
        },
        Case {
            name: "trainer_state.json: 1e400 and duplicate keys",
            path: "hf/range/trainer_state.json".into(),
            bytes: br#"{"global_step": 1, "global_step": 2, "log_history": [{"step": 1, "loss": 1e400}]}"#.to_vec(),
            outcome: Error("number out of range", None),
        },
        Case {
            name: "trainer_state.json: empty",
            path: "hf/empty/trainer_state.json".into(),
            bytes: Vec::new(),
            outcome: Clean,
        },
        // Lightning's CSV.
        Case {
            name: "metrics.csv: BOM, CRLF, NaN, inf, 1e400, a ragged row, a word",
            path: "lightning/version_0/metrics.csv".into(),
            bytes: b"\xEF\xBB\xBFepoch,step,train_loss\r\n0,0,nan\r\n0,1,inf\r\n0,2,1e400\r\n0,3\r\n0,4,oops\r\n0,5,0.5\r\n".to_vec(),
            outcome: Error("not a number", Some(6)),
        },
        Case {
            name: "metrics.csv: invalid UTF-8 and duplicate columns",
            path: "lightning/version_1/metrics.csv".into(),
            bytes: b"epoch,step,loss,loss\n0,0,1.0,2.0\n0,1,\xff,1\n".to_vec(),
            outcome: Error("not UTF-8", None),
        },
        Case {
            name: "metrics.csv: empty",
            path: "lightning/version_2/metrics.csv".into(),
            bytes: Vec::new(),
            outcome: Clean,
        },
        // TensorBoard.
        Case {
            name: "tfevents: random bytes",
            path: "tb/random/events.out.tfevents.1.host".into(),
            bytes: (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect(),
            outcome: Error("damaged length", Some(1)),
        },
        Case {
            name: "tfevents: a record with a bad checksum",
            path: "tb/crc/events.out.tfevents.2.host".into(),
            bytes: {
                let mut r = tb_record(b"\x09\x00\x00\x00\x00\x00\x00\xf0\x3f");
                let n = r.len();
                r[n - 1] ^= 0xff;
                r
            },
            outcome: Error("checksum fails", Some(1)),
        },
        Case {
            name: "tfevents: empty",
            path: "tb/empty/events.out.tfevents.3.host".into(),
            bytes: Vec::new(),
            outcome: Clean,
        },
        // MLflow's file store.
        Case {
            name: "mlflow metric: NaN, 1e400, garbage, CRLF",
            path: "mlruns/1/abc/metrics/loss".into(),
            bytes: b"1700000000000 nan 0\r\n1700000001000 1e400 1\r\nnot a metric line\r\n1700000002000 0.5 2\r\n".to_vec(),
            outcome: Error("not `<timestamp ms> <value> <step>`", Some(3)),
        },
        Case {
            name: "mlflow meta.yaml: not YAML",
            path: "mlruns/1/abc/meta.yaml".into(),
            bytes: b"run_id: abc\nname: [unclosed\n\x00".to_vec(),
            outcome: Error("meta.yaml", None),
        },
        Case {
            name: "mlflow meta.yaml: 10,000-deep nesting",
            path: "mlruns/2/def/meta.yaml".into(),
            bytes: format!("run_id: def\nrun_name: {}\n", deep_json(10_000)).into_bytes(),
            outcome: Error("recursion limit", None),
        },
        // MLflow's SQLite store.
        Case {
            name: "mlflow.db: not a database",
            path: "mlflowdb/mlflow.db".into(),
            bytes: b"SQLite format 3\x00 but then nothing that makes sense".repeat(100),
            outcome: Error("not an MLflow SQLite store", None),
        },
        Case {
            name: "mlflow.db: empty",
            path: "mlflowdb2/mlflow.db".into(),
            bytes: Vec::new(),
            outcome: Clean,
        },
        // The experiment manager's registry.
        Case {
            name: "experiment_registry.json: truncated",
            path: "expmgr/experiment_registry.json".into(),
            bytes: br#"{"experiments": {"e1": {"name": "#.to_vec(),
            outcome: Error("not a whole experiment_registry.json", None),
        },
        Case {
            name: "experiment_registry.json: 10,000-deep nesting",
            path: "expmgr2/experiment_registry.json".into(),
            bytes: format!(r#"{{"experiments": {}}}"#, deep_json(10_000)).into_bytes(),
            outcome: Error("recursion limit", None),
        },
        Case {
            name: "experiment_registry.json: wrong types",
            path: "expmgr3/experiment_registry.json".into(),
            bytes: br#"{"experiments": [1, "two", null]}"#.to_vec(),
            outcome: Error("not an object", None),
        },
    ];
    cases.sort_by_key(|c| c.path.clone());
    cases
}

fn write(root: &Path, rel: &str, bytes: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

/// Writes `mb` MiB of one line (no NUL, no newline until the end), then a good metric line.
fn big_line(path: &Path, mb: usize) {
    use std::io::Write;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(f, r#"{{"kind":"run","name":"bigline"}}"#).unwrap();
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..mb {
        f.write_all(&chunk).unwrap();
    }
    writeln!(f).unwrap();
    writeln!(
        f,
        r#"{{"kind":"metrics","step":1,"values":{{"loss":0.5}}}}"#
    )
    .unwrap();
}

/// Everything committed is applied (the truncated file's partial last line keeps waiting for its rest, so
/// the intake's lag does not reach zero).
fn settled(d: &Daemon) -> bool {
    let (_, health) = d.get("/health");
    health["last_seq"] == health["log_seq"]
}

#[test]
fn every_malformed_input_gets_its_documented_outcome_and_nothing_else_suffers() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    // The good run that must come through untouched.
    let good = write_run(&inbox.join("good/good.jsonl"), "good", 5000, true);
    let cases = corpus();
    for c in &cases {
        write(&inbox, &c.path, &c.bytes);
    }
    let big_mb: usize = std::env::var("LABD_CORPUS_BIG_LINE_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    big_line(&inbox.join("big/bigline.jsonl"), big_mb);
    // A FIFO and a symlink loop in the watched folder.
    let fifo = inbox.join("special/pipe.jsonl");
    std::fs::create_dir_all(fifo.parent().unwrap()).unwrap();
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo on a path we own.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    std::os::unix::fs::symlink(inbox.join("special"), inbox.join("special/loop")).unwrap();

    // Lines of up to 4 MiB: the 100,000-key configs (1.4 MB lines) are read, the big line is not.
    let mut d = Daemon::start(
        &tmp.path().join("data"),
        &inbox,
        &["--max-line-bytes", "4194304"],
    );
    d.wait_for("the corpus read", 120, |d| {
        settled(d)
            && d.ls()
                .iter()
                .any(|r| r["name"] == "bigline" && r["points"] == 1)
            && d.ls()
                .iter()
                .any(|r| r["name"] == "good" && r["points"] == good)
    });
    // Let quiet files settle (a truncated last line is judged after 2 s of quiet), then read it all again.
    std::thread::sleep(std::time::Duration::from_secs(4));
    d.wait_for("settled", 60, settled);
    let errors = d.labctl_json(&["errors"]);
    let errors = errors.as_array().unwrap().clone();
    let for_file = |rel: &str| -> Vec<&Value> {
        errors
            .iter()
            .filter(|e| e["path"].as_str().is_some_and(|p| p.ends_with(rel)))
            .collect()
    };
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for c in &cases {
        let errs = for_file(&c.path);
        let shown: Vec<String> = errs
            .iter()
            .map(|e| format!("line {}: {}", e["line"], e["reason"].as_str().unwrap_or("")))
            .collect();
        let ok = match &c.outcome {
            Outcome::Clean => errs.is_empty(),
            Outcome::Error(text, line) => errs.iter().any(|e| {
                e["reason"].as_str().is_some_and(|r| r.contains(text))
                    && line.is_none_or(|l| e["line"] == l)
            }),
        };
        report.push(format!(
            "{:<70} {}",
            c.name,
            if shown.is_empty() {
                "kept, no error".into()
            } else {
                shown.join(" | ")
            }
        ));
        if !ok {
            failures.push(c.name);
        }
    }
    let big = for_file("big/bigline.jsonl");
    report.push(format!("1 GB single line: {big:?}"));
    assert!(
        big.iter()
            .any(|e| e["line"] == 2 && e["reason"].as_str().unwrap().contains("limit")),
        "{big:?}"
    );
    let fifo_errs = for_file("special/pipe.jsonl");
    assert!(
        fifo_errs
            .iter()
            .any(|e| e["reason"].as_str().unwrap().contains("FIFO")),
        "{fifo_errs:?}"
    );
    assert!(
        for_file("special/loop")
            .iter()
            .any(|e| e["reason"].as_str().unwrap().contains("symlink loop")),
        "{errors:?}"
    );
    eprintln!("{}", report.join("\n"));
    assert!(
        failures.is_empty(),
        "cases without their outcome: {failures:?}\n{}",
        report.join("\n")
    );

    // What the documented outcomes kept.
    let rows = d.ls();
    let points = |name: &str| {
        rows.iter()
            .find(|r| r["name"] == name)
            .map(|r| r["points"].as_u64().unwrap_or(0))
            .unwrap_or_else(|| panic!("no run {name}"))
    };
    for (name, n) in [
        ("rl_nan", 3),
        ("rl_range", 1),
        ("rl_utf8", 1),
        ("rl_bom", 1),
        ("rl_crlf", 2),
        ("rl_dup", 1),
        ("rl_keys", 1),
        ("rl_truncated", 1),
        ("hf_nan", 3),
        ("big", 3),
    ] {
        assert_eq!(points(name), n, "{name}");
    }
    let keys = rows.iter().find(|r| r["name"] == "rl_keys").unwrap();
    let (_, shown) = d.get(&format!("/experiments/{}", keys["id"].as_str().unwrap()));
    assert_eq!(shown["config"].as_object().map(|c| c.len()), Some(100_000));

    // The good run is whole, the daemon is healthy, and the big line did not come into memory.
    let rows = d.ls();
    let good_row = rows.iter().find(|r| r["name"] == "good").unwrap();
    assert_eq!(good_row["points"], good);
    assert_eq!(good_row["status"], "completed");
    assert_eq!(d.get("/health").1["status"], "ok");
    let peak = d.peak_rss_mib();
    eprintln!("peak RSS: {peak} MiB after a {big_mb} MiB line");
    assert!(peak < 512, "labd's peak memory was {peak} MiB");
    assert!(d.alive());
}
