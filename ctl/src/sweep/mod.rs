//! `labctl sweep`: read a sweep file (YAML or JSON) and the command line into a sweep definition, submit it,
//! and follow, list, resume or cancel sweeps.

use crate::client::{self, Client};
use crate::table;
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;

mod spec;

// Parsed once per invocation: the size of the biggest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum SweepCmd {
    /// Run a sweep from a file, the command line, or both (the command line wins).
    Run {
        /// The sweep file (YAML or JSON).
        file: Option<PathBuf>,
        /// The sweep file, as the sweep system's `run_sweep.py --config` named it.
        #[arg(long = "config", value_name = "FILE", conflicts_with = "file")]
        config_file: Option<PathBuf>,
        /// Keep `plot_data.json` in the sweep's folder as trials finish.
        #[arg(long)]
        plot: bool,
        /// A parameter by dot path and its values: `--param optim.lr 0.1 0.01` (repeatable).
        #[arg(long, num_args = 2.., value_names = ["PATH", "VALUES"], action = clap::ArgAction::Append, value_parser = param_word)]
        param: Vec<Vec<String>>,
        /// The base config: a JSON or YAML file, or inline JSON.
        #[arg(long)]
        base: Option<String>,
        /// The command of a trial (placeholders {config}, {run_log}, {trial_id}, {param:PATH}).
        #[arg(long)]
        command: Option<String>,
        /// The sweep's id (default: from the file or made up).
        #[arg(long)]
        id: Option<String>,
        /// A number, or auto (70 % of RAM over a trial's memory, capped by cores and GPUs).
        #[arg(long)]
        parallel: Option<String>,
        /// The Jetson profile for `--parallel auto` (the file's `jetson_optimized: true`).
        #[arg(long)]
        jetson: bool,
        /// grid, random or quasi_random.
        #[arg(long)]
        strategy: Option<String>,
        /// Trials of the random and quasi-random strategies.
        #[arg(long)]
        trials: Option<u32>,
        /// Seed of the random and quasi-random strategies.
        #[arg(long)]
        seed: Option<u64>,
        /// Repeats of every configuration (seeds 0..N-1 at `seed`).
        #[arg(long)]
        repeats: Option<u32>,
        /// Seconds per trial before it is killed.
        #[arg(long)]
        timeout: Option<f64>,
        /// Further attempts of a failed trial.
        #[arg(long)]
        retries: Option<u32>,
        /// A tag of the sweep's runs (repeatable).
        #[arg(long)]
        tag: Vec<String>,
        /// CPU cores one trial needs.
        #[arg(long)]
        cpus: Option<f64>,
        /// RAM one trial needs (4G, 512M, bytes).
        #[arg(long)]
        ram: Option<String>,
        /// GPUs one trial needs (pinned with CUDA_VISIBLE_DEVICES).
        #[arg(long)]
        gpus: Option<u32>,
        /// Free memory each of its GPUs must have (shares a GPU between trials).
        #[arg(long)]
        gpu_memory: Option<String>,
        /// List the trials and an estimate of the time; run nothing.
        #[arg(long)]
        dry_run: bool,
        /// Follow the sweep until it ends, drawing its progress.
        #[arg(long)]
        wait: bool,
    },
    /// List sweeps.
    Ls,
    /// A sweep's progress (done, running, failed, ETA) and its trials.
    Status {
        id: String,
        /// Redraw until the sweep ends.
        #[arg(long)]
        watch: bool,
    },
    /// Run what is left of a sweep (cancelled or cut-off trials; failed ones with --retry-failed).
    Resume {
        id: String,
        #[arg(long)]
        retry_failed: bool,
    },
    /// Stop a sweep: no new trials; running ones are stopped and recorded as cancelled.
    Cancel { id: String },
    /// Pause a sweep: no new trials start (or are submitted to Slurm); running ones go on. `resume` continues.
    Pause { id: String },
    /// Compare a sweep's parameter values on a metric: tables per parameter, the best configuration over
    /// repeats, thresholds.
    #[command(alias = "report")]
    Analyze {
        id: String,
        /// Metric key, `<split>/<name>`, or a summary number (`final.test_f1`); default: the trials' primary
        /// metric (the one most of their runs have, validation and losses first).
        #[arg(long)]
        metric: Option<String>,
        /// How a run's curve becomes one number (default: the metric's configured default, else last).
        #[arg(long)]
        reduce: Option<String>,
        /// Only this parameter.
        #[arg(long)]
        param: Option<String>,
        /// min or max (default: min for losses, errors and times).
        #[arg(long)]
        goal: Option<String>,
        /// Relative change between adjacent values that counts as a threshold (0.5 = 50 %).
        #[arg(long)]
        threshold: Option<f64>,
        /// Absolute change that counts too.
        #[arg(long)]
        threshold_abs: Option<f64>,
        /// Two or more objectives for a Pareto front: `METRIC:min|max[:last|min|max]`, comma-separated
        /// (default: the sweep's `objectives`).
        #[arg(long)]
        objectives: Option<String>,
        /// `md`: print the Markdown report (the default output is that report too; --json for the data).
        #[arg(long)]
        report: Option<String>,
        /// Write the plot-ready series (JSON) to this file (`--plot` alone: `plot_data.json`).
        #[arg(long, num_args = 0..=1, default_missing_value = "plot_data.json")]
        plot: Option<PathBuf>,
        /// Also write the report to this file.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Run this script with the plot data file as its argument (`--plot` defaults to `plot_data.json`).
        #[arg(long)]
        viz_script: Option<PathBuf>,
    },
}

/// Arguments of `labctl report`: a sweep's report, as `analyze_sweep.py <sweep_id>` printed it.
#[derive(clap::Args)]
pub struct ReportArgs {
    id: String,
    /// Default: the trials' primary metric.
    #[arg(long)]
    metric: Option<String>,
    /// Also write the report to this file.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Write the plot-ready series (JSON) to this file (`--plot` alone: `plot_data.json`).
    #[arg(long, num_args = 0..=1, default_missing_value = "plot_data.json")]
    plot: Option<PathBuf>,
    /// Run this script with the plot data file as its argument.
    #[arg(long)]
    viz_script: Option<PathBuf>,
}

impl ReportArgs {
    /// The same as `sweep analyze`.
    pub fn into_analyze(self) -> SweepCmd {
        SweepCmd::Analyze {
            id: self.id,
            metric: self.metric,
            reduce: None,
            param: None,
            goal: None,
            threshold: None,
            threshold_abs: None,
            objectives: None,
            report: None,
            plot: self.plot,
            output: self.output,
            viz_script: self.viz_script,
        }
    }
}

/// One word of `--param` (clap gathers them; `cli::parse` regroups them by occurrence).
fn param_word(s: &str) -> Result<Vec<String>, String> {
    Ok(vec![s.to_string()])
}

fn secs(s: Option<f64>) -> String {
    match s {
        None => "unknown".into(),
        Some(s) if s < 90.0 => format!("{s:.0}s"),
        Some(s) if s < 5400.0 => format!("{:.0}m", s / 60.0),
        Some(s) => format!("{:.1}h", s / 3600.0),
    }
}

fn params_text(p: &Value) -> String {
    p.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    format!(
                        "{k}={}",
                        v.as_str().map_or_else(|| v.to_string(), String::from)
                    )
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

fn progress_line(s: &Value) -> String {
    let p = &s["progress"];
    format!(
        "{} {}: {}/{} done, {} running, {} failed, {} waiting, {} cancelled, ETA {}",
        s["id"].as_str().unwrap_or(""),
        s["state"].as_str().unwrap_or(""),
        p["completed"],
        p["total"],
        p["running"],
        p["failed"],
        p["waiting"],
        p["cancelled"],
        if s["state"] == "running" {
            secs(p["eta_secs"].as_f64())
        } else {
            "-".into()
        }
    )
}

/// Polls a sweep until it is no longer running, one progress line each time it changes.
fn follow(c: &Client, id: &str) -> Result<Value> {
    let mut last = String::new();
    loop {
        let s: Value = c.get(
            &format!("/sweeps/{}", client::enc(id)),
            &[("brief", "true".into())],
        )?;
        let line = progress_line(&s);
        if line != last {
            eprintln!("{line}");
            last = line;
        }
        if s["state"] != "running" {
            return c.get(&format!("/sweeps/{}", client::enc(id)), &[]);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn print_status(s: &Value) {
    println!("{}", progress_line(s));
    if let Some(r) = s["reason"].as_str() {
        println!("state: {r}");
    }
    if let Some(b) = s["parallel_budget"].as_object() {
        println!(
            "parallel: auto → {} ({})",
            b.get("parallel").unwrap_or(&Value::Null),
            b.get("why").and_then(Value::as_str).unwrap_or("")
        );
    }
    let mut rows: Vec<Vec<String>> = s["trials"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|t| {
                    vec![
                        t["id"].as_str().unwrap_or("").into(),
                        t["status"].as_str().unwrap_or("").into(),
                        t["attempts"].to_string(),
                        match &t["exit_code"] {
                            Value::Null => "-".into(),
                            v => v.to_string(),
                        },
                        t["secs"].as_f64().map_or("-".into(), |s| format!("{s:.1}")),
                        t["experiment_id"].as_str().unwrap_or("-").into(),
                        match t["peak_rss"].as_u64() {
                            Some(b) if b > 0 => format!(
                                "{:.0} MB, {:.1} cores",
                                b as f64 / 1e6,
                                t["peak_cpu"].as_f64().unwrap_or(0.0)
                            ),
                            _ => "-".into(),
                        },
                        params_text(&t["params"]),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    let mut header = vec![
        "TRIAL",
        "STATUS",
        "ATTEMPTS",
        "EXIT",
        "SECS",
        "EXPERIMENT",
        "USAGE",
        "PARAMS",
    ];
    let trials = s["trials"].as_array().cloned().unwrap_or_default();
    if trials
        .iter()
        .any(|t| t["jobs"].as_array().is_some_and(|j| !j.is_empty()))
    {
        // Slurm: every attempt's array job and task, and the node of the latest.
        header.insert(7, "SLURM JOBS");
        for (row, t) in rows.iter_mut().zip(&trials) {
            row.insert(7, slurm_jobs(&t["jobs"]));
        }
    }
    table::print(&header, &rows);
}

/// A trial's Slurm attempts: `JOB_TASK` each, the latest with its node (`12_3,15_0@gpu07`).
fn slurm_jobs(jobs: &Value) -> String {
    let list = jobs.as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        return "-".into();
    }
    let ids: Vec<String> = list
        .iter()
        .map(|j| format!("{}_{}", j["job"].as_str().unwrap_or("?"), j["task"]))
        .collect();
    match list.last().and_then(|j| j["node"].as_str()) {
        Some(node) if !node.is_empty() => format!("{}@{node}", ids.join(",")),
        _ => ids.join(","),
    }
}

pub fn run(c: &Client, cmd: SweepCmd, json: bool) -> Result<i32> {
    match &cmd {
        SweepCmd::Run { dry_run, wait, .. } => {
            let spec = spec::build(&cmd)?;
            let answer: Value = c.post("/sweeps", &json!({"spec": spec, "dry_run": dry_run}))?;
            if *dry_run {
                if json {
                    table::print_json(&answer)?;
                } else {
                    let rows: Vec<Vec<String>> = answer["trials"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .map(|t| {
                                    vec![
                                        t["id"].as_str().unwrap_or("").into(),
                                        if t["kept"] == true {
                                            "kept (completed)"
                                        } else {
                                            "to run"
                                        }
                                        .into(),
                                        params_text(&t["params"]),
                                    ]
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    table::print(&["TRIAL", "", "PARAMS"], &rows);
                    println!(
                        "sweep {}: {} trials, {} to run, parallel {}, estimated {}",
                        answer["sweep_id"].as_str().unwrap_or(""),
                        answer["total"],
                        answer["to_run"],
                        answer["parallel"],
                        secs(answer["estimate_secs"].as_f64())
                    );
                }
                return Ok(0);
            }
            let id = answer["sweep_id"].as_str().unwrap_or("").to_string();
            if !*wait {
                if json {
                    table::print_json(&answer)?;
                } else {
                    println!(
                        "sweep {id}: {} trials, {} scheduled, {} kept (follow it: labctl sweep status {id} --watch)",
                        answer["total"], answer["scheduled"], answer["kept"]
                    );
                }
                return Ok(0);
            }
            let s = follow(c, &id)?;
            if json {
                table::print_json(&s)?;
            } else {
                print_status(&s);
            }
            Ok(if s["progress"]["failed"].as_u64().unwrap_or(0) > 0 {
                1
            } else {
                0
            })
        }
        SweepCmd::Ls => {
            let list: Vec<Value> = c.get("/sweeps", &[])?;
            if json {
                table::print_json(&list)?;
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|s| {
                        let p = &s["progress"];
                        vec![
                            s["id"].as_str().unwrap_or("").into(),
                            s["state"].as_str().unwrap_or("").into(),
                            format!("{}/{}", p["completed"], p["total"]),
                            p["running"].to_string(),
                            p["failed"].to_string(),
                            s["command"].as_str().unwrap_or("").into(),
                        ]
                    })
                    .collect();
                table::print(
                    &["SWEEP", "STATE", "DONE", "RUNNING", "FAILED", "COMMAND"],
                    &rows,
                );
            }
            Ok(0)
        }
        SweepCmd::Status { id, watch } => {
            let s = if *watch {
                follow(c, id)?
            } else {
                c.get(&format!("/sweeps/{}", client::enc(id)), &[])?
            };
            if json {
                table::print_json(&s)?;
            } else {
                print_status(&s);
            }
            Ok(0)
        }
        SweepCmd::Resume { id, retry_failed } => {
            let path = format!(
                "/sweeps/{}/resume{}",
                client::enc(id),
                if *retry_failed {
                    "?retry_failed=true"
                } else {
                    ""
                }
            );
            let a: Value = c.post(&path, &json!({}))?;
            if json {
                table::print_json(&a)?;
            } else {
                println!("sweep {id} resumed: {} trials queued again", a["requeued"]);
            }
            Ok(0)
        }
        SweepCmd::Analyze {
            id,
            metric,
            reduce,
            param,
            goal,
            threshold,
            threshold_abs,
            objectives,
            report,
            plot,
            output,
            viz_script,
        } => {
            let plot = match (plot, viz_script) {
                (None, Some(_)) => Some(PathBuf::from("plot_data.json")),
                (p, _) => p.clone(),
            };
            if report
                .as_deref()
                .is_some_and(|r| r != "md" && r != "markdown")
            {
                bail!("--report {:?}: use md", report.as_deref().unwrap_or(""));
            }
            let mut q: Vec<(&str, String)> =
                metric.clone().map(|m| ("metric", m)).into_iter().collect();
            q.extend(reduce.clone().map(|r| ("reduce", r)));
            q.extend(param.clone().map(|p| ("param", p)));
            q.extend(goal.clone().map(|g| ("goal", g)));
            q.extend(threshold.map(|t| ("threshold", t.to_string())));
            q.extend(threshold_abs.map(|t| ("threshold_abs", t.to_string())));
            q.extend(objectives.clone().map(|o| ("objectives", o)));
            let path = format!("/sweeps/{}/analysis", client::enc(id));
            if let Some(file) = &plot {
                let a: Value = c.get(&path, &q)?;
                std::fs::write(file, serde_json::to_vec_pretty(&a["plot"])?)
                    .with_context(|| format!("writing {}", file.display()))?;
                eprintln!("wrote the plot series to {}", file.display());
            }
            if json {
                let a: Value = c.get(&path, &q)?;
                table::print_json(&a)?;
            } else {
                q.push(("format", "md".into()));
                let text = c.get_text(&path, &q)?;
                print!("{text}");
                if let Some(out) = output {
                    std::fs::write(out, &text)
                        .with_context(|| format!("writing {}", out.display()))?;
                    eprintln!("wrote the report to {}", out.display());
                }
            }
            if let (Some(script), Some(file)) = (viz_script, &plot) {
                let status = std::process::Command::new(script)
                    .arg(file)
                    .status()
                    .with_context(|| format!("running {}", script.display()))?;
                if !status.success() {
                    bail!(
                        "{} {} exited with {status}",
                        script.display(),
                        file.display()
                    );
                }
            }
            Ok(0)
        }
        SweepCmd::Pause { id } => {
            let a: Value = c.post(&format!("/sweeps/{}/pause", client::enc(id)), &json!({}))?;
            if json {
                table::print_json(&a)?;
            } else {
                println!(
                    "sweep {id} paused: no new trials start; running ones go on (resume: labctl sweep resume {id})"
                );
            }
            Ok(0)
        }
        SweepCmd::Cancel { id } => {
            let a: Value = c.post(&format!("/sweeps/{}/cancel", client::enc(id)), &json!({}))?;
            if json {
                table::print_json(&a)?;
            } else {
                println!(
                    "sweep {id} cancelled: stopping {} running trials",
                    a["stopping"]
                );
            }
            Ok(0)
        }
    }
}
