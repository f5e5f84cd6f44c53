//! `labctl`: ask labd. Readable tables by default, `--json` for machines. Exit codes: 0 done, 1 the answer
//! is "problems found" (`validate`), 2 could not do what was asked.

mod bench;
mod client;
mod flatten;
mod sweep;
mod table;
mod validate;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use client::Client;
use labd_schemas::api::{
    ErrorRecord, EventRecord, Experiment, ExperimentRow, Health, IngestReport, IngestState,
    MetricPage, ReplayReport,
};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(name = "labctl", version, about = "Ask labd about experiments")]
struct Cli {
    /// Address of labd's HTTP API.
    #[arg(
        long,
        env = "LABD_ADDR",
        default_value = "http://127.0.0.1:7420",
        global = true
    )]
    addr: String,
    /// Bearer token (needed off loopback, and for changes when the daemon has one).
    #[arg(long, env = "LABD_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Health of the daemon and of ingestion.
    Status,
    /// List experiments (`runs` is the same command).
    #[command(alias = "runs")]
    Ls {
        /// Filter expression, e.g. `optim.lr < 1e-3 and tag == "bert" and metric.val/acc > 0.9`.
        #[arg(long = "where", value_name = "EXPR")]
        filter: Option<String>,
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        tag: Option<String>,
        /// Substring of the name, or a glob with * and ?.
        #[arg(long)]
        name: Option<String>,
    },
    /// Show one experiment.
    Show { id: String },
    /// Benchmarks: run a CMR benchmark, ls, show, export, compare, cancel.
    Bench {
        #[command(subcommand)]
        cmd: bench::BenchCmd,
    },
    /// Parameter sweeps: run, ls, status, resume, cancel.
    Sweep {
        #[command(subcommand)]
        cmd: sweep::SweepCmd,
    },
    /// Compare experiments: configs side by side (differences marked), summaries, final metric values.
    Compare {
        #[arg(required = true, num_args = 2..)]
        ids: Vec<String>,
        /// Only rows that differ.
        #[arg(long)]
        diff: bool,
    },
    /// Export an experiment to a folder: config, metrics history, summaries, artifacts, source logs.
    Export {
        id: String,
        #[arg(long)]
        to: PathBuf,
    },
    /// Points of one metric (`split/name`).
    Metric {
        id: String,
        key: String,
        #[arg(long, default_value_t = 0)]
        offset: u64,
        #[arg(long)]
        limit: Option<u64>,
    },
    /// Ingest a file or folder on the daemon's host now.
    Ingest {
        path: PathBuf,
        /// Read the files as this format (labd, drgen, tensorboard, lightning, hf) instead of judging each by
        /// its name.
        #[arg(long)]
        format: Option<String>,
    },
    /// Ingest problems, newest last.
    Errors {
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Only files whose path contains this.
        #[arg(long)]
        path: Option<String>,
    },
    /// Follow events as they are committed.
    Tail {
        /// Start at this sequence number (default: only new events).
        #[arg(long)]
        from: Option<u64>,
    },
    /// Rebuild the views from the log, or show the registry as of a past point.
    Replay {
        /// Sequence number or RFC 3339 time.
        #[arg(long)]
        as_of: Option<String>,
        /// Only check: rebuild the views from the whole log and compare them with the live ones (exit 1 when
        /// they differ).
        #[arg(long, conflicts_with = "as_of")]
        verify: bool,
    },
    /// Check a run log against the format; prints each problem with its line.
    Validate { file: PathBuf },
    /// Which hyperparameters vary across the selected runs (noise keys such as seeds listed apart).
    Varying {
        /// Answer as of a past sequence number or RFC 3339 time.
        #[arg(long)]
        as_of: Option<String>,
        #[arg(long = "where", value_name = "EXPR")]
        filter: Option<String>,
    },
    /// Group runs (by the varying keys, or --by) and aggregate a metric across seeds.
    Summary {
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
    },
    /// Curves of a metric for runs (IDs, or those --where selects), or of groups of runs (--group: mean and band).
    Curve {
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
    },
    /// The long table of metric points (run, metric, step, epoch, wall_time, value) as CSV, Parquet or JSON.
    Points {
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
    },
    /// Runs whose curves stop short of the expected length, have gaps, or restart.
    Incomplete {
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
    },
}

fn main() {
    // Like other Unix tools, end quietly when the reader of our output goes away (`labctl tail | head`)
    // instead of panicking on a broken pipe.
    // SAFETY: setting the default disposition of SIGPIPE before any thread starts.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let matches = <Cli as clap::CommandFactory>::command().get_matches();
    let mut cli = match <Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    // `--param PATH V1 V2 ...` may repeat: keep each occurrence's values together.
    if let Cmd::Sweep {
        cmd: sweep::SweepCmd::Run { param, .. },
    } = &mut cli.command
        && let Some(run) = matches
            .subcommand_matches("sweep")
            .and_then(|m| m.subcommand_matches("run"))
        && let Ok(Some(groups)) = run.try_get_occurrences::<Vec<String>>("param")
    {
        *param = groups
            .map(|g| g.flat_map(|words| words.iter().cloned()).collect())
            .collect();
    }
    match run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("labctl: {e:#}");
            std::process::exit(2);
        }
    }
}

pub(crate) fn print_json(v: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn run(cli: Cli) -> Result<i32> {
    let c = Client::new(&cli.addr, cli.token.clone());
    let json = cli.json;
    match cli.command {
        Cmd::Sweep { cmd } => return sweep::run(&c, cmd, json),
        Cmd::Bench { cmd } => return bench::run(&c, cmd, json),
        Cmd::Status => {
            let health: Health = c.get("/health", &[])?;
            let ingest: IngestState = c.get("/ingest", &[])?;
            if json {
                print_json(&json!({ "health": health, "ingest": ingest }))?;
            } else {
                println!(
                    "labd {} up {:.0}s: {} experiments, {} events",
                    health.version, health.uptime_s, health.experiments, health.last_seq
                );
                println!("watching: {}", ingest.watched.join(", "));
                let dead = ingest.files.iter().filter(|f| f.dead.is_some()).count();
                println!(
                    "files: {} ({} skipped), lag {} bytes, {} ingest problems",
                    ingest.files.len(),
                    dead,
                    ingest.lag_bytes,
                    ingest.errors
                );
            }
        }
        Cmd::Ls {
            filter,
            status,
            tag,
            name,
        } => {
            let mut q = Vec::new();
            for (k, v) in [
                ("status", status),
                ("tag", tag),
                ("name", name),
                ("where", filter),
            ] {
                if let Some(v) = v {
                    q.push((k, v));
                }
            }
            let rows: Vec<ExperimentRow> = c.get("/experiments", &q)?;
            if json {
                print_json(&rows)?;
            } else {
                let cells: Vec<Vec<String>> = rows
                    .iter()
                    .map(|r| {
                        vec![
                            r.id.to_string(),
                            r.name.clone(),
                            r.status.as_str().into(),
                            r.metrics.to_string(),
                            r.points.to_string(),
                            r.tags.join(","),
                        ]
                    })
                    .collect();
                table::print(
                    &["ID", "NAME", "STATUS", "METRICS", "POINTS", "TAGS"],
                    &cells,
                );
            }
        }
        Cmd::Show { id } => {
            let e: Experiment = c.get(&format!("/experiments/{}", enc(&id)), &[])?;
            if json {
                print_json(&e)?;
            } else {
                show(&e);
            }
        }
        Cmd::Compare { ids, diff } => compare(&c, &ids, diff, json)?,
        Cmd::Export { id, to } => export(&c, &id, &to, json)?,
        Cmd::Metric {
            id,
            key,
            offset,
            limit,
        } => {
            let mut q = vec![("offset", offset.to_string())];
            if let Some(l) = limit {
                q.push(("limit", l.to_string()));
            }
            let page: MetricPage = c.get(
                &format!("/experiments/{}/metrics/{}", enc(&id), enc_key(&key)),
                &q,
            )?;
            if json {
                print_json(&page)?;
            } else {
                let rows: Vec<Vec<String>> = page
                    .points
                    .iter()
                    .map(|p| {
                        vec![
                            p.step.map_or("-".into(), |s| s.to_string()),
                            table::num(p.epoch),
                            table::num(p.wall_time),
                            p.repr.clone().unwrap_or_else(|| table::num(p.value)),
                        ]
                    })
                    .collect();
                table::print(&["STEP", "EPOCH", "TIME", &page.metric], &rows);
                eprintln!(
                    "{} of {} points from offset {}",
                    page.points.len(),
                    page.total,
                    page.offset
                );
            }
        }
        Cmd::Ingest { path, format } => {
            let abs =
                std::fs::canonicalize(&path).with_context(|| format!("{}", path.display()))?;
            let started: Value = c.post("/ingest", &json!({ "path": abs, "format": format }))?;
            let job = started["job"].as_u64().context("labd answered no job id")?;
            let result = c.wait_job(job, json)?;
            let report: IngestReport = serde_json::from_value(result)?;
            if json {
                print_json(&report)?;
            } else {
                println!(
                    "ingested {} files: {} lines, {} events, {} points, {} problems",
                    report.files, report.lines, report.events, report.points, report.errors
                );
                if report.errors > 0 {
                    println!("see: labctl errors --path {}", abs.display());
                }
            }
        }
        Cmd::Errors { limit, path } => {
            let mut q = vec![("limit", limit.to_string())];
            if let Some(p) = path {
                q.push(("path", p));
            }
            let errors: Vec<ErrorRecord> = c.get("/ingest/errors", &q)?;
            if json {
                print_json(&errors)?;
            } else {
                for e in &errors {
                    let at = e.line.map_or(e.path.clone(), |l| format!("{}:{l}", e.path));
                    println!(
                        "{at}: {}: {}",
                        if matches!(e.severity, labd_schemas::event::Severity::Error) {
                            "error"
                        } else {
                            "warning"
                        },
                        e.reason
                    );
                }
                if errors.is_empty() {
                    println!("no ingest problems");
                }
            }
        }
        Cmd::Tail { from } => {
            c.tail(from, |data| {
                if json {
                    println!("{data}");
                } else {
                    let r: EventRecord = serde_json::from_str(data)?;
                    println!("{}", describe(&r));
                }
                Ok(())
            })?;
        }
        Cmd::Replay { as_of, verify } => {
            let started: Value = c.post("/replay", &json!({ "as_of": as_of, "verify": verify }))?;
            let job = started["job"].as_u64().context("labd answered no job id")?;
            let report: ReplayReport = serde_json::from_value(c.wait_job(job, json)?)?;
            if json {
                print_json(&report)?;
            } else {
                println!("{report}");
                if !report.live && report.differing.is_none() {
                    let cells: Vec<Vec<String>> = report
                        .experiments
                        .iter()
                        .map(|r| {
                            vec![
                                r.id.to_string(),
                                r.status.as_str().into(),
                                r.points.to_string(),
                            ]
                        })
                        .collect();
                    table::print(&["ID", "STATUS", "POINTS"], &cells);
                }
            }
            if report.differing.as_ref().is_some_and(|d| !d.is_empty()) {
                return Ok(1);
            }
        }
        Cmd::Varying { filter, as_of } => {
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
        }
        Cmd::Summary {
            metric,
            reduce,
            also,
            by,
            filter,
            format,
            complete_only,
            expect_steps,
            expect_epochs,
            as_of,
            sort,
            desc,
            out,
        } => {
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
            let format = if json { "json".to_string() } else { format };
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
                            let n = download_to(&c, "/analytics/summary", &q, &path)?;
                            eprintln!("wrote {n} bytes to {}", path.display());
                        }
                        None => {
                            c.download("/analytics/summary", &q, &mut std::io::stdout().lock())?;
                        }
                    }
                }
                (other, _) => bail!("unknown format {other:?}: use table, csv, json or parquet"),
            }
        }
        Cmd::Curve {
            ids,
            metric,
            x,
            points,
            group,
            filter,
            as_of,
        } => {
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
                    table::print(&[&x, "VALUE"], &rows);
                    println!();
                }
                for g in answer["groups"].as_array().into_iter().flatten() {
                    let by: Vec<String> = answer["by"]
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
                    table::print(&[&x, "MEAN", "STD", "MIN", "MAX", "N"], &rows);
                    println!();
                }
            }
        }
        Cmd::Points {
            metric,
            filter,
            format,
            out,
            as_of,
        } => {
            if format == "parquet" && out.is_none() {
                bail!("--format parquet needs --out FILE");
            }
            let mut q = vec![("format", format)];
            q.extend(as_of.map(|a| ("as_of", a)));
            q.extend(metric.map(|m| ("metric", m)));
            q.extend(filter.map(|f| ("where", f)));
            match out {
                Some(path) => {
                    let n = download_to(&c, "/analytics/points", &q, &path)?;
                    eprintln!("wrote {n} bytes to {}", path.display());
                }
                None => {
                    c.download("/analytics/points", &q, &mut std::io::stdout().lock())?;
                }
            }
        }
        Cmd::Incomplete {
            filter,
            metric,
            expect_steps,
            expect_epochs,
            as_of,
        } => {
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
        }
        Cmd::Validate { file } => {
            let bytes = std::fs::read(&file).with_context(|| format!("{}", file.display()))?;
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            // A few folders of the path go along: some formats are known by them (`mlruns/<exp>/<run>/...`).
            let tail: Vec<String> = std::fs::canonicalize(&file)
                .unwrap_or_else(|_| file.clone())
                .iter()
                .rev()
                .take(6)
                .map(|p| p.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .filter(|p| p != "/")
                .collect();
            // labd checks every format with its own sources; a run log is checked here when labd is not up.
            let run_log =
                (name.ends_with(".jsonl") || name.ends_with(".ndjson")) && name != "json_out.jsonl";
            let (problems, runs, points, format) = if run_log && !c.reachable() {
                let (p, r, n) = validate::check(&bytes);
                (p, r, n, "runlog".to_string())
            } else {
                let v: Value = c.post_bytes("/validate", &[("name", tail.join("/"))], &bytes)?;
                let problems = v["problems"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|p| {
                                (
                                    p["line"].as_u64().unwrap_or(0),
                                    p["problem"].as_str().unwrap_or("").to_string(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                (
                    problems,
                    v["runs"].as_u64().unwrap_or(0),
                    v["points"].as_u64().unwrap_or(0),
                    v["format"].as_str().unwrap_or("").to_string(),
                )
            };
            if json {
                let list: Vec<Value> = problems
                    .iter()
                    .map(|(l, m)| json!({ "line": l, "problem": m }))
                    .collect();
                print_json(
                    &json!({ "file": file, "format": format, "runs": runs, "points": points, "problems": list }),
                )?;
            } else {
                for (line, msg) in &problems {
                    println!("{}:{line}: {msg}", file.display());
                }
                println!(
                    "{} ({format}): {runs} runs, {points} points, {} problems",
                    file.display(),
                    problems.len()
                );
            }
            return Ok(if problems.is_empty() { 0 } else { 1 });
        }
    }
    Ok(0)
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
    let rows: Vec<Vec<String>> = groups
        .iter()
        .map(|g| {
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
            for label in &also {
                let f = &g["also"][label];
                row.push(match (f["mean"].as_f64(), f["ci95_high"].as_f64()) {
                    (Some(m), Some(hi)) => {
                        format!("{} ±{}", table::num(Some(m)), table::num(Some(hi - m)))
                    }
                    (m, _) => table::num(m),
                });
            }
            row
        })
        .collect();
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

/// Downloads an export into `path`: written beside it first and renamed when complete, so an interrupted
/// export never leaves a file that looks whole.
fn download_to(c: &client::Client, api: &str, q: &[(&str, String)], path: &Path) -> Result<u64> {
    let name = path
        .file_name()
        .map_or_else(|| "export".into(), |n| n.to_string_lossy().into_owned());
    let partial = path.with_file_name(format!(".{name}.partial"));
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(&partial)
            .with_context(|| format!("creating {}", partial.display()))?,
    );
    let n = c.download(api, q, &mut file).and_then(|n| {
        std::io::Write::flush(&mut file)?;
        Ok(n)
    });
    drop(file);
    match n {
        Ok(n) => {
            std::fs::rename(&partial, path)
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(n)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

/// Percent-encodes a metric key for a URL path, keeping its `/`.
fn enc_key(key: &str) -> String {
    key.split('/').map(enc).collect::<Vec<_>>().join("/")
}

/// Percent-encodes an id for a URL path segment.
pub(crate) fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn show(e: &Experiment) {
    println!("{}  {}", e.id, e.name);
    if let Some(d) = &e.description {
        println!("  {d}");
    }
    println!(
        "status:   {}{}",
        e.status.as_str(),
        e.status_notes
            .as_ref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default()
    );
    println!(
        "started:  {}   last activity: {}{}",
        e.started,
        e.last_activity,
        e.ended
            .as_ref()
            .map(|t| format!("   ended: {t}"))
            .unwrap_or_default()
    );
    println!(
        "host:     {}   config hash: {}",
        e.host,
        &e.config_hash[..e.config_hash.len().min(16)]
    );
    if !e.tags.is_empty() {
        println!("tags:     {}", e.tags.join(", "));
    }
    println!("sources:  {}", e.sources.join(", "));
    println!("config:");
    for (k, v) in flatten::flatten(&e.config) {
        println!("  {k} = {}", flatten::cell(Some(&v)));
    }
    if !e.metrics.is_empty() {
        println!("metrics:");
        let rows: Vec<Vec<String>> = e
            .metrics
            .iter()
            .map(|(k, m)| {
                vec![
                    format!("  {k}"),
                    m.points.to_string(),
                    m.last_step.map_or("-".into(), |s| s.to_string()),
                    table::num(m.last),
                    table::num(m.min),
                    table::num(m.max),
                ]
            })
            .collect();
        table::print(
            &["  METRIC", "POINTS", "LAST STEP", "LAST", "MIN", "MAX"],
            &rows,
        );
    }
    for (group, values) in &e.summaries {
        println!("summary {group}:");
        for (k, v) in flatten::flatten(values) {
            println!("  {k} = {}", flatten::cell(Some(&v)));
        }
    }
    for a in &e.artifacts {
        println!(
            "artifact {}: {}{}",
            a.role,
            a.path,
            a.size.map(|s| format!(" ({s} bytes)")).unwrap_or_default()
        );
    }
    println!("messages: {}", e.messages);
}

fn compare(c: &Client, ids: &[String], only_diff: bool, json: bool) -> Result<()> {
    let exps: Vec<Experiment> = ids
        .iter()
        .map(|id| c.get(&format!("/experiments/{}", enc(id)), &[]))
        .collect::<Result<_>>()?;
    let configs: Vec<_> = exps.iter().map(|e| flatten::flatten(&e.config)).collect();
    let summaries: Vec<_> = exps
        .iter()
        .map(|e| {
            let mut all = std::collections::BTreeMap::new();
            for (g, v) in &e.summaries {
                for (k, x) in flatten::flatten(v) {
                    all.insert(format!("{g}.{k}"), x);
                }
            }
            all
        })
        .collect();
    let finals: Vec<_> = exps
        .iter()
        .map(|e| {
            e.metrics
                .iter()
                .map(|(k, m)| (k.clone(), m.last.map_or(Value::Null, |v| json!(v))))
                .collect::<std::collections::BTreeMap<_, _>>()
        })
        .collect();
    let section = |maps: &[std::collections::BTreeMap<String, Value>]| -> Vec<(String, bool, Vec<Option<Value>>)> {
        let keys: BTreeSet<&String> = maps.iter().flat_map(|m| m.keys()).collect();
        keys.into_iter()
            .map(|k| {
                let vals: Vec<Option<Value>> = maps.iter().map(|m| m.get(k).cloned()).collect();
                let differs = vals.iter().any(|v| v != &vals[0]);
                (k.clone(), differs, vals)
            })
            .filter(|(_, d, _)| !only_diff || *d)
            .collect()
    };
    let sections = [
        ("config", section(&configs)),
        ("summary", section(&summaries)),
        ("final metric", section(&finals)),
    ];
    if json {
        let out: Value = sections
            .iter()
            .map(|(name, rows)| {
                let rows: Vec<Value> = rows
                    .iter()
                    .map(|(k, d, vals)| json!({ "key": k, "differs": d, "values": vals }))
                    .collect();
                (name.to_string(), Value::Array(rows))
            })
            .collect::<serde_json::Map<_, _>>()
            .into();
        return print_json(&json!({ "experiments": ids, "sections": out }));
    }
    let mut header = vec!["", "KEY"];
    let id_heads: Vec<String> = exps.iter().map(|e| e.id.to_string()).collect();
    header.extend(id_heads.iter().map(String::as_str));
    for (name, rows) in sections {
        if rows.is_empty() {
            continue;
        }
        println!("== {name} ==");
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|(k, d, vals)| {
                let mut row = vec![
                    if *d { "*".to_string() } else { " ".to_string() },
                    k.clone(),
                ];
                row.extend(vals.iter().map(|v| flatten::cell(v.as_ref())));
                row
            })
            .collect();
        table::print(&header, &cells);
    }
    println!("(* marks values that differ)");
    Ok(())
}

fn export(c: &Client, id: &str, to: &Path, json: bool) -> Result<()> {
    let e: Experiment = c.get(&format!("/experiments/{}", enc(id)), &[])?;
    let metrics_dir = to.join("metrics");
    std::fs::create_dir_all(&metrics_dir)
        .with_context(|| format!("creating {}", metrics_dir.display()))?;
    let write = |path: PathBuf, v: &Value| -> Result<()> {
        std::fs::write(&path, serde_json::to_vec_pretty(v)?)
            .with_context(|| format!("writing {}", path.display()))
    };
    write(to.join("config.json"), &e.config)?;
    write(to.join("experiment.json"), &serde_json::to_value(&e)?)?;
    let mut history = serde_json::Map::new();
    for key in e.metrics.keys() {
        let mut points = Vec::new();
        let mut offset = 0u64;
        loop {
            let page: MetricPage = c.get(
                &format!("/experiments/{}/metrics/{}", enc(id), enc_key(key)),
                &[("offset", offset.to_string()), ("limit", "100000".into())],
            )?;
            let n = page.points.len() as u64;
            points.extend(page.points);
            offset += n;
            if n == 0 || offset >= page.total {
                break;
            }
        }
        history.insert(key.clone(), serde_json::to_value(points)?);
    }
    write(
        metrics_dir.join("training_history.json"),
        &Value::Object(history),
    )?;
    for (group, values) in &e.summaries {
        let safe: String = group
            .chars()
            .map(|ch| {
                if ch.is_ascii_alphanumeric() || ch == '_' || ch == '-' {
                    ch
                } else {
                    '_'
                }
            })
            .collect();
        write(metrics_dir.join(format!("{safe}.json")), values)?;
    }
    write(
        to.join("artifacts.json"),
        &serde_json::to_value(&e.artifacts)?,
    )?;
    let sources_dir = to.join("sources");
    let mut copied = Vec::new();
    let mut missing = Vec::new();
    for src in e.sources.iter().filter(|s| s.starts_with('/')) {
        std::fs::create_dir_all(&sources_dir)?;
        let name = Path::new(src)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "source".into());
        match std::fs::copy(src, sources_dir.join(&name)) {
            Ok(_) => copied.push(src.clone()),
            Err(err) => missing.push(format!("{src}: {err}")),
        }
    }
    if json {
        print_json(
            &json!({ "exported": e.id, "to": to, "metrics": e.metrics.len(), "sources_copied": copied, "sources_missing": missing }),
        )?;
    } else {
        println!(
            "exported {} to {}: config, {} metrics, {} summaries, {} artifacts, {} source logs",
            e.id,
            to.display(),
            e.metrics.len(),
            e.summaries.len(),
            e.artifacts.len(),
            copied.len()
        );
        for m in &missing {
            eprintln!("labctl: could not copy source log {m}");
        }
    }
    if !missing.is_empty() && copied.is_empty() && e.sources.iter().any(|s| s.starts_with('/')) {
        bail!("no source log could be copied (is labctl on the daemon's host?)");
    }
    Ok(())
}

/// One line describing an event, for `labctl tail`.
fn describe(r: &EventRecord) -> String {
    use labd_schemas::EventKind as K;
    let t = labd_schemas::time::micros_to_rfc3339(r.event.time);
    let what = match &r.event.kind {
        K::ExperimentCreated(e) => format!("{} created ({})", e.exp, e.name),
        K::MetricsLogged(m) => format!(
            "{} {}step {}: {}",
            m.exp,
            m.split
                .as_ref()
                .map(|s| format!("{s} "))
                .unwrap_or_default(),
            m.step.map_or("-".into(), |s| s.to_string()),
            m.values
                .iter()
                .map(|(k, v)| format!("{k}={}", table::num(Some(*v))))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        K::MessageLogged(m) => format!("{} [{}] {}", m.exp, m.level, m.text),
        K::SummaryRecorded(s) => format!("{} summary {}", s.exp, s.group),
        K::ArtifactRecorded(a) => format!("{} artifact {} {}", a.exp, a.role, a.path),
        K::StatusChanged(s) => format!("{} status {}", s.exp, s.status.as_str()),
        K::FileIngested(f) => format!(
            "file {} bytes {}..{} ({} lines)",
            f.path, f.from, f.to, f.lines
        ),
        K::IngestError(e) => format!(
            "problem {}{}: {}",
            e.path,
            e.line.map(|l| format!(":{l}")).unwrap_or_default(),
            e.reason
        ),
        K::SweepCreated(c) => format!("sweep {} planned: {} trials", c.sweep, c.trials.len()),
        K::SweepChanged(c) => format!(
            "sweep {} {}{}",
            c.sweep,
            c.state.as_str(),
            c.reason
                .as_ref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        ),
        K::TrialChanged(c) => format!(
            "trial {}/{} attempt {}: {}",
            c.sweep,
            c.trial,
            c.attempt,
            serde_json::to_value(&c.state)
                .ok()
                .and_then(|v| v["state"].as_str().map(String::from))
                .unwrap_or_default()
        ),
        K::BenchStarted(b) => format!(
            "benchmark {} ({}) started: {} measurements planned",
            b.bench,
            b.name,
            b.planned.map_or("?".into(), |p| p.to_string())
        ),
        K::BenchMeasured(m) => format!(
            "benchmark {}: {} {}",
            m.bench,
            m.analysis,
            Value::Object(m.params.clone())
        ),
        K::BenchChanged(c) => format!(
            "benchmark {} {}{}",
            c.bench,
            c.status.as_str(),
            c.message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        ),
    };
    format!("{:>8} {t} {what}", r.seq)
}
