//! `labctl summary`: runs grouped by their varying keys (or `--by`), a metric aggregated across each group's
//! seeds, as a table for people or CSV, JSON and Parquet for other tools.

use crate::client::Client;
use crate::flatten;
use crate::table::{self, print_json};
use anyhow::{Result, bail};
use clap::Args;
use serde_json::Value;
use std::path::PathBuf;

/// Arguments of `labctl summary`.
#[derive(Args)]
pub struct SummaryArgs {
    /// Answer as of a past sequence number or RFC 3339 time.
    #[arg(long)]
    as_of: Option<String>,
    /// Metric key, `<split>/<name>`.
    #[arg(long)]
    metric: String,
    /// last, min, max, points, at_step:N, at_epoch:E, mean_last:K or auc[:AXIS] (default: the metric's
    /// default reduction from the daemon's `[reductions]`, else last).
    #[arg(long)]
    reduce: Option<String>,
    /// A further column, `METRIC=REDUCE` or `METRIC` (its default reduction); repeat it or separate with
    /// commas. Each shows its mean and 95% interval over the same group's runs.
    #[arg(long, value_name = "METRIC=REDUCE")]
    also: Vec<String>,
    /// `varying`, or comma-separated dot keys (empty: one group).
    #[arg(long, default_value = "varying")]
    by: String,
    #[arg(long = "where", value_name = "EXPR")]
    filter: Option<String>,
    /// table, csv, json or parquet (`--json` is json).
    #[arg(long, default_value = "table")]
    format: String,
    /// Leave out runs whose curve of the metric is incomplete (see `incomplete`).
    #[arg(long)]
    complete_only: bool,
    /// Sort the groups by a figure (mean, count, median, ...) or a grouping key.
    #[arg(long)]
    sort: Option<String>,
    /// Sort descending.
    #[arg(long)]
    desc: bool,
    /// Write to this file (required for --format parquet).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Expected steps per run (for --complete-only).
    #[arg(long)]
    expect_steps: Option<i64>,
    /// Expected epochs per run (default: the config's `epochs`).
    #[arg(long)]
    expect_epochs: Option<f64>,
}

/// `labctl summary`: asks labd for the groups and writes them in the format asked for.
pub fn summary(c: &Client, args: SummaryArgs, json: bool) -> Result<i32> {
    let format = if json {
        "json".to_string()
    } else {
        args.format.clone()
    };
    let out = args.out.clone();
    let mut q = query(args);
    match (format.as_str(), out) {
        ("table", Some(_)) => bail!("--out needs --format csv, json or parquet"),
        ("table", None) => print_summary(&c.get("/analytics/summary", &q)?)?,
        ("json", None) => {
            let s: Value = c.get("/analytics/summary", &q)?;
            print_json(&s["groups"])?;
        }
        ("parquet", None) => bail!("--format parquet needs --out FILE"),
        ("csv" | "json" | "parquet", out) => {
            if format != "json" {
                q.push(("format", format.clone()));
            }
            match out {
                Some(path) => {
                    let n = c.download_to("/analytics/summary", &q, &path)?;
                    eprintln!("wrote {n} bytes to {}", path.display());
                }
                None => {
                    c.download("/analytics/summary", &q, &mut std::io::stdout().lock())?;
                }
            }
        }
        (other, _) => bail!("unknown format {other:?}: use table, csv, json or parquet"),
    }
    Ok(0)
}

/// The query of `/analytics/summary` for these arguments (all but the format and the output file).
fn query(args: SummaryArgs) -> Vec<(&'static str, String)> {
    let SummaryArgs {
        metric,
        reduce,
        also,
        by,
        filter,
        complete_only,
        expect_steps,
        expect_epochs,
        as_of,
        sort,
        desc,
        format: _,
        out: _,
    } = args;
    let mut q = vec![("metric", metric), ("by", by)];
    q.extend(reduce.map(|r| ("reduce", r)));
    if !also.is_empty() {
        q.push(("also", also.join(",")));
    }
    q.extend(as_of.map(|a| ("as_of", a)));
    q.extend(sort.map(|k| ("sort", k)));
    if desc {
        q.push(("desc", "true".into()));
    }
    if let Some(f) = filter {
        q.push(("where", f));
    }
    if complete_only {
        q.push(("complete_only", "true".into()));
    }
    q.extend(expect_steps.map(|n| ("expect_steps", n.to_string())));
    q.extend(expect_epochs.map(|n| ("expect_epochs", n.to_string())));
    q
}

/// Prints a summary as a table: the configured display names of keys and values, the figures of the metric,
/// then each further column's mean ± the half width of its 95% interval.
fn print_summary(s: &Value) -> Result<()> {
    let groups = s["groups"].as_array().cloned().unwrap_or_default();
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|k| k.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (by, also) = (strings(&s["by"]), strings(&s["also"]));
    let mut header: Vec<&str> = by
        .iter()
        .map(|k| s["names"][k].as_str().unwrap_or(k))
        .collect();
    header.extend(["N", "MEAN", "STD", "95% CI", "MEDIAN", "MIN", "MAX"]);
    header.extend(also.iter().map(String::as_str));
    let rows: Vec<Vec<String>> = groups.iter().map(|g| group_row(g, &by, &also)).collect();
    println!(
        "{} ({}) by {}",
        s["metric"].as_str().unwrap_or(""),
        s["reduce"].as_str().unwrap_or(""),
        if by.is_empty() {
            "nothing (one group)".to_string()
        } else {
            by.join(", ")
        }
    );
    table::print(&header, &rows);
    if let Some(missing) = s["missing"].as_array().filter(|m| !m.is_empty()) {
        println!(
            "left out ({} runs without a finite value): {}",
            missing.len(),
            missing
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

/// One group's row: its keys' display values, the metric's figures, then the further columns.
fn group_row(g: &Value, by: &[String], also: &[String]) -> Vec<String> {
    let mut row: Vec<String> = by
        .iter()
        .map(|k| {
            g["display"][k]
                .as_str()
                .map_or_else(|| flatten::cell(g.get(k)), String::from)
        })
        .collect();
    let n = |k: &str| table::num(g[k].as_f64());
    row.push(g["count"].to_string());
    row.extend([n("mean"), n("std")]);
    row.push(match (g["ci95_low"].as_f64(), g["ci95_high"].as_f64()) {
        (Some(lo), Some(hi)) => {
            format!("[{}, {}]", table::num(Some(lo)), table::num(Some(hi)))
        }
        _ => "-".into(),
    });
    row.extend([n("median"), n("min"), n("max")]);
    for label in also {
        let f = &g["also"][label];
        row.push(match (f["mean"].as_f64(), f["ci95_high"].as_f64()) {
            (Some(m), Some(hi)) => {
                format!("{} ±{}", table::num(Some(m)), table::num(Some(hi - m)))
            }
            (m, _) => table::num(m),
        });
    }
    row
}
