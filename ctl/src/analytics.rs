//! `labctl varying`, `curve`, `points` and `incomplete`: questions across runs, answered by labd's analytics
//! (`summary` has its own module).

use crate::client::Client;
use crate::flatten;
use crate::table::{self, print_json};
use anyhow::{Result, bail};
use clap::Args;
use serde_json::Value;
use std::path::PathBuf;

/// Arguments of `labctl varying`.
#[derive(Args)]
pub struct VaryingArgs {
    /// Answer as of a past sequence number or RFC 3339 time.
    #[arg(long)]
    as_of: Option<String>,
    #[arg(long = "where", value_name = "EXPR")]
    filter: Option<String>,
}

/// Arguments of `labctl curve`.
#[derive(Args)]
pub struct CurveArgs {
    /// Answer as of a past sequence number or RFC 3339 time.
    #[arg(long)]
    as_of: Option<String>,
    ids: Vec<String>,
    #[arg(long)]
    metric: String,
    /// step, epoch, wall_time, index or a custom axis.
    #[arg(long, default_value = "step")]
    x: String,
    /// At most this many points per curve, shape kept (0: all).
    #[arg(long, default_value_t = 500)]
    points: usize,
    /// Group the runs: `varying` or comma-separated keys.
    #[arg(long, num_args = 0..=1, default_missing_value = "varying")]
    group: Option<String>,
    #[arg(long = "where", value_name = "EXPR")]
    filter: Option<String>,
}

/// Arguments of `labctl points`.
#[derive(Args)]
pub struct PointsArgs {
    /// Answer as of a past sequence number or RFC 3339 time.
    #[arg(long)]
    as_of: Option<String>,
    /// Metric keys, comma-separated (default: every metric).
    #[arg(long)]
    metric: Option<String>,
    #[arg(long = "where", value_name = "EXPR")]
    filter: Option<String>,
    /// csv, parquet or json.
    #[arg(long, default_value = "csv")]
    format: String,
    /// Write to this file (required for parquet; default: standard output).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Arguments of `labctl incomplete`.
#[derive(Args)]
pub struct IncompleteArgs {
    /// Answer as of a past sequence number or RFC 3339 time.
    #[arg(long)]
    as_of: Option<String>,
    #[arg(long = "where", value_name = "EXPR")]
    filter: Option<String>,
    /// Only this metric.
    #[arg(long)]
    metric: Option<String>,
    /// Expected steps per run.
    #[arg(long)]
    expect_steps: Option<i64>,
    /// Expected epochs per run (default: the config's `epochs`).
    #[arg(long)]
    expect_epochs: Option<f64>,
}

/// `labctl varying`: the keys whose values differ across the selected runs, noise keys apart.
pub fn varying(c: &Client, args: VaryingArgs, json: bool) -> Result<i32> {
    let VaryingArgs { as_of, filter } = args;
    let mut q = Vec::new();
    q.extend(as_of.map(|a| ("as_of", a)));
    if let Some(f) = filter {
        q.push(("where", f));
    }
    let v: Value = c.get("/analytics/varying", &q)?;
    if json {
        print_json(&v)?;
    } else {
        let row = |k: &Value| {
            let values: Vec<String> = k["values"]
                .as_array()
                .map(|a| a.iter().map(|x| flatten::cell(Some(x))).collect())
                .unwrap_or_default();
            let missing = k["missing"].as_u64().unwrap_or(0);
            let mut text = values.join(", ");
            if missing > 0 {
                text.push_str(&format!("  (missing in {missing})"));
            }
            vec![k["key"].as_str().unwrap_or("").to_string(), text]
        };
        let varying: Vec<Vec<String>> = v["varying"]
            .as_array()
            .map(|a| a.iter().map(row).collect())
            .unwrap_or_default();
        println!("{} runs", v["runs"]);
        table::print(&["VARYING", "VALUES"], &varying);
        let noise: Vec<Vec<String>> = v["noise"]
            .as_array()
            .map(|a| a.iter().map(row).collect())
            .unwrap_or_default();
        if !noise.is_empty() {
            println!();
            table::print(&["NOISE (not grouped)", "VALUES"], &noise);
        }
        println!(
            "\n{} keys are the same in every run",
            v["constant"].as_object().map_or(0, |m| m.len())
        );
    }
    Ok(0)
}

/// `labctl curve`: the curves of a metric, one table per run, or per group of runs with `--group`.
pub fn curve(c: &Client, args: CurveArgs, json: bool) -> Result<i32> {
    let CurveArgs {
        ids,
        metric,
        x,
        points,
        group,
        filter,
        as_of,
    } = args;
    let mut q = vec![("metric", metric), ("x", x), ("points", points.to_string())];
    q.extend(as_of.map(|a| ("as_of", a)));
    if !ids.is_empty() {
        q.push(("ids", ids.join(",")));
    }
    q.extend(group.map(|g| ("group", g)));
    q.extend(filter.map(|f| ("where", f)));
    let answer: Value = c.get("/analytics/curves", &q)?;
    if json {
        print_json(&answer)?;
    } else {
        let x = answer["x"].as_str().unwrap_or("x").to_uppercase();
        for r in answer["runs"].as_array().into_iter().flatten() {
            print_run_curve(&x, r);
        }
        for g in answer["groups"].as_array().into_iter().flatten() {
            print_group_curve(&x, &answer["by"], g);
        }
    }
    Ok(0)
}

/// One run's curve: a line naming it, then its points (x, value).
fn print_run_curve(x: &str, r: &Value) {
    println!(
        "{} ({} of {} points)",
        r["id"].as_str().unwrap_or(""),
        r["points"].as_array().map_or(0, Vec::len),
        r["total"]
    );
    let rows: Vec<Vec<String>> = r["points"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            vec![
                table::num(p[0].as_f64()),
                p[1].as_f64().map_or("NaN".into(), |y| table::num(Some(y))),
            ]
        })
        .collect();
    table::print(&[x, "VALUE"], &rows);
    println!();
}

/// One group's curve: a line naming its keys' values, then its points (x, mean, std, min, max, n).
fn print_group_curve(x: &str, by: &Value, g: &Value) {
    let by: Vec<String> = by
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|k| format!("{k}={}", flatten::cell(g.get(k))))
        .collect();
    println!(
        "{} ({} runs)",
        if by.is_empty() {
            "all".to_string()
        } else {
            by.join(" ")
        },
        g["runs"].as_array().map_or(0, Vec::len)
    );
    let rows: Vec<Vec<String>> = g["points"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            ["x", "mean", "std", "min", "max"]
                .iter()
                .map(|k| table::num(p[*k].as_f64()))
                .chain([p["n"].to_string()])
                .collect()
        })
        .collect();
    table::print(&[x, "MEAN", "STD", "MIN", "MAX", "N"], &rows);
    println!();
}

/// `labctl points`: the long table of metric points, streamed to standard output or a file (`--format`
/// chooses how it is written; `--json` plays no part).
pub fn points(c: &Client, args: PointsArgs) -> Result<i32> {
    let PointsArgs {
        metric,
        filter,
        format,
        out,
        as_of,
    } = args;
    if format == "parquet" && out.is_none() {
        bail!("--format parquet needs --out FILE");
    }
    let mut q = vec![("format", format)];
    q.extend(as_of.map(|a| ("as_of", a)));
    q.extend(metric.map(|m| ("metric", m)));
    q.extend(filter.map(|f| ("where", f)));
    download("/analytics/points", &q, c, out)
}

/// Streams a table download to `out`, or to standard output.
fn download(path: &str, q: &[(&str, String)], c: &Client, out: Option<PathBuf>) -> Result<i32> {
    match out {
        Some(file) => {
            let n = c.download_to(path, q, &file)?;
            eprintln!("wrote {n} bytes to {}", file.display());
        }
        None => {
            c.download(path, q, &mut std::io::stdout().lock())?;
        }
    }
    Ok(0)
}

/// `labctl incomplete`: a row per problem of each run whose curves are incomplete.
pub fn incomplete(c: &Client, args: IncompleteArgs, json: bool) -> Result<i32> {
    let IncompleteArgs {
        filter,
        metric,
        expect_steps,
        expect_epochs,
        as_of,
    } = args;
    let mut q = Vec::new();
    q.extend(as_of.map(|a| ("as_of", a)));
    q.extend(filter.map(|f| ("where", f)));
    q.extend(metric.map(|m| ("metric", m)));
    q.extend(expect_steps.map(|n| ("expect_steps", n.to_string())));
    q.extend(expect_epochs.map(|n| ("expect_epochs", n.to_string())));
    let runs: Value = c.get("/analytics/incomplete", &q)?;
    if json {
        print_json(&runs)?;
    } else {
        let mut rows = Vec::new();
        for r in runs.as_array().into_iter().flatten() {
            for p in r["problems"].as_array().into_iter().flatten() {
                rows.push(vec![
                    r["id"].as_str().unwrap_or("").to_string(),
                    r["status"].as_str().unwrap_or("").to_string(),
                    p["metric"].as_str().unwrap_or("").to_string(),
                    p["kind"].as_str().unwrap_or("").to_string(),
                    p["detail"].as_str().unwrap_or("").to_string(),
                ]);
            }
        }
        if rows.is_empty() {
            println!("every selected run's curves are complete");
        } else {
            table::print(&["ID", "STATUS", "METRIC", "PROBLEM", "DETAIL"], &rows);
        }
    }
    Ok(0)
}

/// Arguments of `labctl mentions`.
#[derive(Args)]
pub struct MentionsArgs {
    /// A keyword (case-insensitive), or with --regex a regular expression.
    pattern: String,
    #[arg(long)]
    regex: bool,
    /// The dot key to group runs by (e.g. interventions.0.parameters.corruption_rate).
    #[arg(long)]
    by: Option<String>,
    #[arg(long = "where", value_name = "EXPR")]
    filter: Option<String>,
    /// Parts of the run the trend is counted in.
    #[arg(long, default_value_t = 5)]
    buckets: usize,
    /// Only messages of this level.
    #[arg(long)]
    level: Option<String>,
}

/// `labctl mentions`: how often runs' messages mention a keyword, per value of a hyperparameter, and whether
/// that grows or falls over the runs (the sweep system's belief evolution).
pub fn mentions(c: &Client, args: MentionsArgs, json: bool) -> Result<i32> {
    let MentionsArgs {
        pattern,
        regex,
        by,
        filter,
        buckets,
        level,
    } = args;
    let mut q = vec![
        ("pattern", pattern.clone()),
        ("regex", regex.to_string()),
        ("buckets", buckets.to_string()),
    ];
    q.extend(by.clone().map(|b| ("by", b)));
    q.extend(filter.map(|f| ("where", f)));
    q.extend(level.map(|l| ("level", l)));
    let answer: Value = c.get("/analytics/messages", &q)?;
    if json {
        print_json(&answer)?;
        return Ok(0);
    }
    let pct = |v: &Value| {
        v.as_f64()
            .map_or("-".to_string(), |r| format!("{:.1}%", r * 100.0))
    };
    let rows: Vec<Vec<String>> = answer["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|g| {
            let trend: Vec<String> = g["trend"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| pct(&t["rate"]))
                .collect();
            vec![
                g["key"].to_string(),
                g["runs"].to_string(),
                g["messages"].to_string(),
                g["matches"].to_string(),
                pct(&g["rate"]),
                trend.join(" → "),
                g["change"]
                    .as_f64()
                    .map_or("-".into(), |c| format!("{:+.1} pts", c * 100.0)),
            ]
        })
        .collect();
    let key = by.unwrap_or_else(|| "(all)".into());
    println!(
        "{pattern:?} in the messages of {} runs, by {key}",
        answer["runs"]
    );
    table::print(
        &[
            &key.to_uppercase(),
            "RUNS",
            "MESSAGES",
            "MENTIONS",
            "RATE",
            "TREND",
            "CHANGE",
        ],
        &rows,
    );
    Ok(0)
}

/// Arguments of `labctl table`.
#[derive(Args)]
pub struct TableArgs {
    /// Answer as of a past sequence number or RFC 3339 time.
    #[arg(long)]
    as_of: Option<String>,
    #[arg(long = "where", value_name = "EXPR")]
    filter: Option<String>,
    /// csv or parquet.
    #[arg(long, default_value = "csv")]
    format: String,
    /// Write to this file (required for parquet; default: standard output).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// `labctl table`: the wide runs table (a column per config key, metric and summary number) as CSV or Parquet.
pub fn table(c: &Client, args: TableArgs) -> Result<i32> {
    let TableArgs {
        as_of,
        filter,
        format,
        out,
    } = args;
    if format == "parquet" && out.is_none() {
        bail!("--format parquet needs --out FILE");
    }
    let mut q = vec![("format", format)];
    q.extend(as_of.map(|a| ("as_of", a)));
    q.extend(filter.map(|f| ("where", f)));
    download("/analytics/runs", &q, c, out)
}
