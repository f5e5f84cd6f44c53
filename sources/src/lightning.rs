//! PyTorch Lightning's `CSVLogger`: `version_N/metrics.csv`, one row per logging call with `epoch`, `step` and
//! the metrics logged then (the others empty), and `hparams.yaml` beside it (the run's config). Lightning appends
//! rows, and when a new metric appears it rewrites the whole file under a wider header, the old rows first and
//! in order; so the file is read whole and the run keeps how many rows it has taken.
//!
//! Metric names: `split/name` keeps its split; `train_`, `val_`, `valid_`, `validation_`, `test_` and `eval_`
//! prefixes are read as splits too (`val_loss` → split `val`, metric `loss`); other names have no split.

use super::source;
use super::{Context, Output, problem};
use crate::FileCursor;
use labd_schemas::event::{MetricsLogged, Severity};
use labd_schemas::float_map::FloatMap;
use labd_schemas::runlog::RunLine;
use labd_schemas::{Event, EventKind};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::Path;

const SPLITS: [&str; 6] = ["train", "val", "valid", "validation", "test", "eval"];

/// A metric column's split and name.
pub fn split_name(column: &str) -> (Option<String>, String) {
    if let Some((s, n)) = column.split_once('/')
        && !s.is_empty()
        && !n.is_empty()
    {
        return (Some(s.to_string()), n.to_string());
    }
    for s in SPLITS {
        if let Some(n) = column.strip_prefix(s).and_then(|r| r.strip_prefix('_'))
            && !n.is_empty()
        {
            return (Some(s.to_string()), n.to_string());
        }
    }
    (None, column.to_string())
}

/// Splits a CSV line into fields (Lightning writes plain values; quoted fields are handled too).
fn fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// Reads the whole `metrics.csv`; rows after those the run has taken become metrics.
pub fn read(_cursor: &mut FileCursor, data: &[u8], ctx: &mut Context<'_>) -> Output {
    let mut out = Output::default();
    let Ok(text) = std::str::from_utf8(data) else {
        out.consumed = data.len() as u64;
        out.events.push(problem(
            ctx,
            Some(1),
            Severity::Error,
            "not UTF-8 text: not a metrics.csv".into(),
        ));
        return out;
    };
    // Complete lines only; a last line without newline waits unless the file is quiet or finished.
    let mut lines: Vec<&str> = text.split('\n').collect();
    let tail = lines.pop().unwrap_or_default();
    if !tail.trim().is_empty() && ctx.take_unterminated {
        lines.push(tail);
    }
    out.consumed = data.len() as u64;
    let lines: Vec<&str> = lines
        .into_iter()
        .map(|l| l.trim_end_matches('\r'))
        .collect();
    let Some(header) = lines.first() else {
        return out;
    };
    let header = fields(header.trim_start_matches('\u{feff}'));
    let col = |name: &str| header.iter().position(|h| h == name);
    let (epoch_col, step_col) = (col("epoch"), col("step"));
    let dir = Path::new(ctx.path).parent().unwrap_or(Path::new("/"));
    let key = format!("lightning:{}", dir.display());
    let exp = match ctx.runs.get(&key).current_exp.clone() {
        Some(e) => e,
        None => {
            let mut config = Map::new();
            let mut bad = None;
            if let Some((_, yaml)) = ctx.sidecars.iter().find(|(n, _)| *n == "hparams.yaml") {
                match serde_saphyr::from_str::<Value>(yaml) {
                    Ok(Value::Object(m)) => config = m,
                    Ok(Value::Null) => {}
                    Ok(_) => {
                        bad =
                            Some("hparams.yaml is not a mapping; the run has no config".to_string())
                    }
                    Err(e) => bad = Some(format!("hparams.yaml: {e}; the run has no config")),
                }
            }
            if let Some(reason) = bad {
                out.events
                    .push(problem(ctx, Some(0), Severity::Error, reason));
            }
            let version = dir
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("version");
            let parent = dir
                .parent()
                .and_then(|p| p.file_name())
                .and_then(|n| n.to_str())
                .unwrap_or("lightning_logs");
            let mut extra = Map::new();
            extra.insert("source_format".into(), "lightning_csv".into());
            super::begin_run(
                ctx,
                &key,
                RunLine {
                    name: Some(format!("{parent}-{version}")),
                    config,
                    extra,
                    ..Default::default()
                },
                source(ctx, 1),
                &mut out,
            )
        }
    };
    let taken = ctx
        .runs
        .get(&key)
        .counters
        .get("rows")
        .copied()
        .unwrap_or(0) as usize;
    let rows: Vec<(usize, &str)> = lines
        .iter()
        .enumerate()
        .skip(1)
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (i, *l))
        .collect();
    for (i, line) in rows.iter().skip(taken) {
        let number = *i as u64 + 1;
        let cells = fields(line);
        let cell = |c: Option<usize>| {
            c.and_then(|c| cells.get(c))
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
        };
        let step = cell(step_col).and_then(|s| s.parse::<i64>().ok());
        let epoch = cell(epoch_col).and_then(|s| s.parse::<f64>().ok());
        let mut by_split: BTreeMap<Option<String>, BTreeMap<String, f64>> = BTreeMap::new();
        let mut bad = Vec::new();
        for (c, name) in header.iter().enumerate() {
            if Some(c) == epoch_col || Some(c) == step_col {
                continue;
            }
            let Some(text) = cell(Some(c)) else { continue };
            match text
                .parse::<f64>()
                .ok()
                .or_else(|| labd_schemas::floats::parse_special(text))
            {
                Some(v) => {
                    let (split, metric) = split_name(name);
                    by_split.entry(split).or_default().insert(metric, v);
                }
                None => bad.push(format!("{name} = {text:?}")),
            }
        }
        if !bad.is_empty() {
            out.events.push(problem(
                ctx,
                Some(number),
                Severity::Error,
                format!(
                    "{} not a number; the rest of the row was kept",
                    bad.join(", ")
                ),
            ));
        }
        for (split, values) in by_split {
            out.points += values.len() as u64;
            out.events.push(Event::new(
                ctx.now,
                source(ctx, number),
                EventKind::MetricsLogged(MetricsLogged {
                    exp: exp.clone(),
                    split,
                    step,
                    epoch,
                    wall_time: None,
                    x: FloatMap::new(),
                    values: values.into(),
                    extra: Map::new(),
                }),
            ));
        }
    }
    if rows.len() > taken {
        ctx.runs
            .get(&key)
            .counters
            .insert("rows".into(), rows.len() as u64);
    }
    out.lines = rows.len().saturating_sub(taken) as u64;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Runs;

    fn fixture(rel: &str) -> Vec<u8> {
        std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../tests/fixtures/formats/lightning")
                .join(rel),
        )
        .unwrap()
    }

    fn read_as(
        path: &str,
        data: &[u8],
        runs: &mut Runs,
        sidecars: &[(String, String)],
        quiet: bool,
    ) -> Output {
        let format = crate::Format::LightningCsv;
        crate::testing::read_as(format, path, data, runs, sidecars, quiet).1
    }

    fn rows(out: &Output) -> Vec<&MetricsLogged> {
        out.events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::MetricsLogged(m) => Some(m),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn lightnings_own_csv_with_its_hparams() {
        let mut runs = Runs::default();
        let yaml = String::from_utf8(fixture("lightning_logs/version_0/hparams.yaml")).unwrap();
        let out = read_as(
            "/l/lightning_logs/version_0/metrics.csv",
            &fixture("lightning_logs/version_0/metrics.csv"),
            &mut runs,
            &[("hparams.yaml".to_string(), yaml)],
            false,
        );
        let EventKind::ExperimentCreated(c) = &out.events[0].kind else {
            panic!()
        };
        assert_eq!(c.name, "lightning_logs-version_0");
        assert_eq!(c.config["lr"], 0.001);
        assert_eq!(c.config["optimizer"], "adam");
        let r = rows(&out);
        assert_eq!(r.len(), 15);
        let val = r
            .iter()
            .find(|m| m.split.as_deref() == Some("val") && m.step == Some(3))
            .unwrap();
        assert_eq!(val.values["acc"], 0.6000000238418579);
        assert_eq!(val.epoch, Some(0.0));
        assert_eq!(
            split_name("train/loss"),
            (Some("train".into()), "loss".into())
        );
        assert_eq!(split_name("lr-Adam"), (None, "lr-Adam".into()));
    }

    #[test]
    fn a_rewrite_under_a_wider_header_adds_only_the_new_rows() {
        let mut runs = Runs::default();
        let path = "/l/lightning_logs/version_1/metrics.csv";
        let before = fixture("rewrite_snapshot/version_1.before_rewrite.csv");
        let first = rows(&read_as(path, &before, &mut runs, &[], false)).len();
        assert_eq!(first, 5);
        let after = fixture("lightning_logs/version_1/metrics.csv");
        let out = read_as(path, &after, &mut runs, &[], false);
        let r = rows(&out);
        assert!(
            r.iter().all(|m| m.step >= Some(4)),
            "only rows after the first five"
        );
        let acc = r
            .iter()
            .find(|m| m.step == Some(5) && m.split.as_deref() == Some("train"))
            .unwrap();
        assert_eq!(acc.values["acc"], 0.625);
        assert!(
            out.events
                .iter()
                .all(|e| e.kind.tag() != "experiment_created"),
            "the same run"
        );
    }

    #[test]
    fn a_broken_csv_reports_its_bad_value_and_its_cut_line_waits() {
        let mut runs = Runs::default();
        let data = fixture("broken/metrics.csv");
        let out = read_as("/l/broken/metrics.csv", &data, &mut runs, &[], false);
        assert!(out.events.iter().any(
            |e| matches!(&e.kind, EventKind::IngestError(i) if i.reason.contains("\"oops\""))
        ));
        let n = rows(&out).len();
        let out = read_as("/l/broken/metrics.csv", &data, &mut runs, &[], true);
        assert!(
            rows(&out).len() <= 1,
            "the cut line is taken once quiet, nothing else again ({n} before)"
        );
    }
}
