//! Reading everything back: over HTTP (points, config, summaries, the web view's curves), through `labctl export`
//! and `labctl points` in each format, comparing bits.

use crate::formats::{Expected, Want};
use labd_e2e::Daemon;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// Bits of a JSON number (`None` for null or absent).
fn bits(v: &Value) -> Option<u64> {
    v.as_f64().map(f64::to_bits)
}

/// JSON values equal with numbers compared strictly: integers as integers, doubles bit for bit.
pub fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if x.is_f64() || y.is_f64() {
                x.is_f64()
                    && y.is_f64()
                    && x.as_f64().map(f64::to_bits) == y.as_f64().map(f64::to_bits)
            } else {
                x.as_i64() == y.as_i64() && x.as_u64() == y.as_u64()
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_json(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, a)| y.get(k).is_some_and(|b| same_json(a, b)))
        }
        _ => a == b,
    }
}

/// Points as labd answers them (`value`, `epoch`, `wall_time`, `x`), as bits.
fn wants_of(points: &Value) -> Vec<Want> {
    points
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|p| Want {
            value: bits(&p["value"]).unwrap_or(u64::MAX),
            epoch: bits(&p["epoch"]),
            wall: bits(&p["wall_time"]),
            tokens: bits(&p["x"]["tokens"]),
        })
        .collect()
}

/// The id of the run named `name`, once it has `points` points (None while it has not).
pub fn run_id(runs: &[Value], name: &str, points: usize) -> Option<String> {
    runs.iter()
        .find(|r| r["name"] == name && r["points"].as_u64() == Some(points as u64))
        .and_then(|r| r["id"].as_str())
        .map(String::from)
}

/// Checks every run over `GET /experiments/{id}` and `/metrics/{key}`: points, config and summary bit for bit.
pub fn check_http(
    d: &Daemon,
    ids: &BTreeMap<String, String>,
    runs: &[Expected],
) -> Result<(), String> {
    for e in runs {
        let id = &ids[&e.name];
        for (key, wants) in &e.metrics {
            let (status, page) = d.get(&format!("/experiments/{id}/metrics/{key}"));
            if status != 200 {
                return Err(format!("{} {key}: {status} {page}", e.name));
            }
            let got = wants_of(&page["points"]);
            if &got != wants {
                return Err(format!(
                    "{} {key} over HTTP:\n got  {got:?}\n want {wants:?}",
                    e.name
                ));
            }
        }
        check_curves(d, id, e)?;
        let (_, show) = d.get(&format!("/experiments/{id}"));
        if let Some(config) = &e.config
            && !same_json(&show["config"], config)
        {
            return Err(format!(
                "{} config: got {} want {config}",
                e.name, show["config"]
            ));
        }
        if let Some((group, values)) = &e.summary
            && !same_json(&show["summaries"][group], values)
        {
            return Err(format!(
                "{} summary {group}: got {} want {values}",
                e.name, show["summaries"][group]
            ));
        }
    }
    Ok(())
}

/// Checks the curves the web view draws (`/analytics/curves`, every point) on each x-axis a run has.
fn check_curves(d: &Daemon, id: &str, e: &Expected) -> Result<(), String> {
    type Axis = fn(&Want) -> Option<u64>;
    let axes: [(&str, Axis); 3] = [
        ("epoch", |w| w.epoch),
        ("wall_time", |w| w.wall),
        ("tokens", |w| w.tokens),
    ];
    for (key, wants) in &e.metrics {
        for (axis, of) in axes {
            let want: Vec<(u64, u64)> = wants
                .iter()
                .filter_map(|w| of(w).map(|x| (x, w.value)))
                .collect();
            let (status, answer) = d.get(&format!(
                "/analytics/curves?metric={key}&ids={id}&x={axis}&points=0"
            ));
            if status != 200 {
                return Err(format!("{} curves on {axis}: {status} {answer}", e.name));
            }
            let got: Vec<(u64, u64)> = answer["runs"][0]["points"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|p| {
                    (
                        bits(&p[0]).unwrap_or(u64::MAX),
                        bits(&p[1]).unwrap_or(u64::MAX),
                    )
                })
                .collect();
            if got != want {
                return Err(format!(
                    "{} {key} curve on {axis}:\n got  {got:?}\n want {want:?}",
                    e.name
                ));
            }
        }
    }
    Ok(())
}

/// Checks `labctl export ID --to DIR` for every run: its `metrics/training_history.json` and `config.json`.
pub fn check_export(
    d: &Daemon,
    ids: &BTreeMap<String, String>,
    runs: &[Expected],
    dir: &Path,
) -> Result<(), String> {
    for e in runs {
        let to = dir.join(format!("export-{}", e.name));
        let out = d.labctl(&[
            "export",
            &ids[&e.name],
            "--to",
            to.to_str().unwrap_or_default(),
        ]);
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        let read = |p: &str| -> Result<Value, String> {
            let text = std::fs::read(to.join(p)).map_err(|err| format!("{p}: {err}"))?;
            serde_json::from_slice(&text).map_err(|err| format!("{p}: {err}"))
        };
        let history = read("metrics/training_history.json")?;
        for (key, wants) in &e.metrics {
            let got = wants_of(&history[key]);
            if &got != wants {
                return Err(format!(
                    "{} {key} in labctl export:\n got  {got:?}\n want {wants:?}",
                    e.name
                ));
            }
        }
        if let Some(config) = &e.config {
            let got = read("config.json")?;
            if !same_json(&got, config) {
                return Err(format!(
                    "{} exported config: got {got} want {config}",
                    e.name
                ));
            }
        }
    }
    Ok(())
}

/// One row of the long table: run, metric, and the bits of epoch, wall time and value.
type Row = (String, String, Option<u64>, Option<u64>, u64);
/// The bits of epoch, wall time and value of one point.
type Point = (Option<u64>, Option<u64>, u64);

/// Checks `labctl points` in `format` against every run's points (value, epoch, wall time) bit for bit.
pub fn check_points(
    d: &Daemon,
    ids: &BTreeMap<String, String>,
    runs: &[Expected],
    format: &str,
    dir: &Path,
) -> Result<(), String> {
    let rows: Vec<Row> = match format {
        "json" => {
            let out = d.labctl(&["points", "--format", "json"]);
            let all: Vec<Value> = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
            all.iter()
                .map(|r| {
                    (
                        r["run"].as_str().unwrap_or_default().to_string(),
                        r["metric"].as_str().unwrap_or_default().to_string(),
                        bits(&r["epoch"]),
                        bits(&r["wall_time"]),
                        bits(&r["value"]).unwrap_or(u64::MAX),
                    )
                })
                .collect()
        }
        "csv" => {
            let out = d.labctl(&["points", "--format", "csv"]);
            let text = String::from_utf8(out.stdout).map_err(|e| e.to_string())?;
            let num = |s: &str| (!s.is_empty()).then(|| s.parse::<f64>().map(f64::to_bits));
            text.lines()
                .skip(1)
                .map(|l| {
                    let c: Vec<&str> = l.split(',').collect();
                    let epoch = num(c[3]).transpose().map_err(|e| format!("{l}: {e}"))?;
                    let wall = num(c[4]).transpose().map_err(|e| format!("{l}: {e}"))?;
                    let value = c[5]
                        .parse::<f64>()
                        .map_err(|e| format!("{l}: {e}"))?
                        .to_bits();
                    Ok((c[0].to_string(), c[1].to_string(), epoch, wall, value))
                })
                .collect::<Result<_, String>>()?
        }
        _ => {
            let file = dir.join("points.parquet");
            let out = d.labctl(&[
                "points",
                "--format",
                "parquet",
                "--out",
                file.to_str().unwrap_or_default(),
            ]);
            if !out.status.success() {
                return Err(String::from_utf8_lossy(&out.stderr).into_owned());
            }
            use polars::prelude::*;
            let df = ParquetReader::new(std::fs::File::open(&file).map_err(|e| e.to_string())?)
                .finish()
                .map_err(|e| e.to_string())?;
            let s = |n: &str| -> Result<Vec<Option<String>>, String> {
                Ok(df
                    .column(n)
                    .and_then(|c| c.str().cloned())
                    .map_err(|e| e.to_string())?
                    .iter()
                    .map(|x| x.map(String::from))
                    .collect())
            };
            let g = |n: &str| -> Result<Vec<Option<f64>>, String> {
                Ok(df
                    .column(n)
                    .and_then(|c| c.f64().cloned())
                    .map_err(|e| e.to_string())?
                    .iter()
                    .collect())
            };
            let (run, metric, epoch, wall, value) = (
                s("run")?,
                s("metric")?,
                g("epoch")?,
                g("wall_time")?,
                g("value")?,
            );
            (0..df.height())
                .map(|i| {
                    (
                        run[i].clone().unwrap_or_default(),
                        metric[i].clone().unwrap_or_default(),
                        epoch[i].map(f64::to_bits),
                        wall[i].map(f64::to_bits),
                        value[i].map_or(u64::MAX, f64::to_bits),
                    )
                })
                .collect()
        }
    };
    let mut by_series: BTreeMap<(String, String), Vec<Point>> = BTreeMap::new();
    for (run, metric, epoch, wall, value) in rows {
        by_series
            .entry((run, metric))
            .or_default()
            .push((epoch, wall, value));
    }
    for e in runs {
        for (key, wants) in &e.metrics {
            let got = by_series
                .get(&(ids[&e.name].clone(), key.clone()))
                .cloned()
                .unwrap_or_default();
            let want: Vec<Point> = wants.iter().map(|w| (w.epoch, w.wall, w.value)).collect();
            if got != want {
                return Err(format!(
                    "{} {key} in labctl points --format {format}:\n got  {got:?}\n want {want:?}",
                    e.name
                ));
            }
        }
    }
    Ok(())
}
