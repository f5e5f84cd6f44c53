//! `labctl sweep`: read a sweep file (YAML or JSON) and the command line into a sweep definition, submit it,
//! and follow, list, resume or cancel sweeps.

use crate::client::Client;
use crate::table;
use anyhow::{Context, Result, bail};
use clap::Subcommand;
#[cfg(test)]
use labd_schemas::sweep::Space;
use labd_schemas::sweep::{Parallel, SweepSpec};
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;

// Parsed once per invocation: the size of the biggest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum SweepCmd {
    /// Run a sweep from a file, the command line, or both (the command line wins).
    Run {
        /// The sweep file (YAML or JSON).
        file: Option<PathBuf>,
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
        /// A number, or auto.
        #[arg(long)]
        parallel: Option<String>,
        /// grid or random.
        #[arg(long)]
        strategy: Option<String>,
        /// Trials of the random strategy.
        #[arg(long)]
        trials: Option<u32>,
        /// Seed of the random strategy.
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
    /// Compare a sweep's parameter values on a metric: tables per parameter, the best configuration over
    /// repeats, thresholds.
    Analyze {
        id: String,
        /// Metric key, `<split>/<name>`.
        #[arg(long)]
        metric: String,
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
        /// `md`: print the Markdown report (the default output is that report too; --json for the data).
        #[arg(long)]
        report: Option<String>,
        /// Write the plot-ready series (JSON) to this file.
        #[arg(long)]
        plot: Option<PathBuf>,
    },
}

/// One word of `--param` (clap gathers them; `main` regroups them by occurrence).
fn param_word(s: &str) -> Result<Vec<String>, String> {
    Ok(vec![s.to_string()])
}

/// Reads a config or sweep file: YAML (`.yaml`, `.yml`) or JSON.
fn read_doc(path: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let yaml = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    );
    if yaml {
        serde_saphyr::from_str::<Value>(&text)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    } else {
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))
    }
}

/// A value from the command line: JSON when it parses (numbers, booleans, null, lists), else the text.
fn cli_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

/// The sweep file → a definition labd can run: `base_config` given as a path is loaded (relative to the file),
/// the trials' working directory is the file's folder, and the name is the file's stem.
pub fn load_file(path: &Path) -> Result<Map<String, Value>> {
    let doc = read_doc(path)?;
    let Value::Object(mut map) = doc else {
        bail!("{}: a sweep file is a mapping of keys", path.display());
    };
    let dir = std::fs::canonicalize(path)
        .with_context(|| format!("{}", path.display()))?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    if let Some(Value::String(base)) = map.get("base_config").cloned() {
        let p = dir.join(&base);
        map.insert(
            "base_config".into(),
            read_doc(&p).with_context(|| format!("base_config {base:?}"))?,
        );
    }
    map.entry("workdir")
        .or_insert_with(|| Value::String(dir.to_string_lossy().into_owned()));
    if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
        map.entry("name")
            .or_insert_with(|| Value::String(stem.into()));
    }
    Ok(map)
}

/// Builds the definition from the file (if any) and the command line.
fn spec(cmd: &SweepCmd) -> Result<SweepSpec> {
    let SweepCmd::Run {
        file,
        param,
        base,
        command,
        id,
        parallel,
        strategy,
        trials,
        seed,
        repeats,
        timeout,
        retries,
        tag,
        cpus,
        ram,
        gpus,
        gpu_memory,
        ..
    } = cmd
    else {
        bail!("not a run");
    };
    let mut map = match file {
        Some(f) => load_file(f)?,
        None => Map::new(),
    };
    if let Some(b) = base {
        let v = if Path::new(b).exists() {
            read_doc(Path::new(b))?
        } else {
            serde_json::from_str(b)
                .with_context(|| format!("--base {b:?}: neither a file nor inline JSON"))?
        };
        map.insert("base_config".into(), v);
    }
    if !param.is_empty() {
        let sweep = map
            .entry("sweep")
            .or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(sweep) = sweep else {
            bail!("the sweep file's `sweep` is not a mapping");
        };
        for p in param {
            let (path, values) = p.split_first().context("--param PATH VALUES...")?;
            sweep.insert(
                path.clone(),
                Value::Array(values.iter().map(|v| cli_value(v)).collect()),
            );
        }
    }
    let mut set = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            map.insert(k.into(), v);
        }
    };
    set("command", command.clone().map(Value::String));
    set("sweep_id", id.clone().map(Value::String));
    if let Some(p) = parallel {
        let p: Parallel = p.parse().map_err(anyhow::Error::msg)?;
        set("parallel", Some(serde_json::to_value(p)?));
    }
    set("strategy", strategy.clone().map(Value::String));
    set("trials", trials.map(Value::from));
    set("seed", seed.map(Value::from));
    set("repeats", repeats.map(Value::from));
    set("timeout", timeout.map(Value::from));
    set("max_retries", retries.map(Value::from));
    if !tag.is_empty() {
        set("tags", Some(json!(tag)));
    }
    if cpus.is_some() || ram.is_some() || gpus.is_some() || gpu_memory.is_some() {
        let r = map
            .entry("resources")
            .or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(r) = r else {
            bail!("the sweep file's `resources` is not a mapping");
        };
        for (k, v) in [
            ("cpus", cpus.map(Value::from)),
            ("ram", ram.clone().map(Value::String)),
            ("gpus", gpus.map(Value::from)),
            ("gpu_memory", gpu_memory.clone().map(Value::String)),
        ] {
            if let Some(v) = v {
                r.insert(k.into(), v);
            }
        }
    }
    if !map.contains_key("workdir") {
        let here = std::env::current_dir()?;
        map.insert(
            "workdir".into(),
            Value::String(here.to_string_lossy().into()),
        );
    }
    if !map.contains_key("sweep") {
        bail!("no parameters: give a sweep file or --param PATH VALUES...");
    }
    if !map.contains_key("command") {
        bail!("no command: give `command:` in the sweep file or --command");
    }
    let origin = file.as_ref().map_or_else(
        || "the command line".to_string(),
        |f| f.display().to_string(),
    );
    serde_json::from_value(Value::Object(map))
        .with_context(|| format!("{origin}: not a sweep definition"))
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
            &format!("/sweeps/{}", crate::enc(id)),
            &[("brief", "true".into())],
        )?;
        let line = progress_line(&s);
        if line != last {
            eprintln!("{line}");
            last = line;
        }
        if s["state"] != "running" {
            return c.get(&format!("/sweeps/{}", crate::enc(id)), &[]);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn print_status(s: &Value) {
    println!("{}", progress_line(s));
    if let Some(r) = s["reason"].as_str() {
        println!("state: {r}");
    }
    let rows: Vec<Vec<String>> = s["trials"]
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
    table::print(
        &[
            "TRIAL",
            "STATUS",
            "ATTEMPTS",
            "EXIT",
            "SECS",
            "EXPERIMENT",
            "PARAMS",
        ],
        &rows,
    );
}

pub fn run(c: &Client, cmd: SweepCmd, json: bool) -> Result<i32> {
    match &cmd {
        SweepCmd::Run { dry_run, wait, .. } => {
            let spec = spec(&cmd)?;
            let answer: Value = c.post("/sweeps", &json!({"spec": spec, "dry_run": dry_run}))?;
            if *dry_run {
                if json {
                    crate::print_json(&answer)?;
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
                    crate::print_json(&answer)?;
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
                crate::print_json(&s)?;
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
                crate::print_json(&list)?;
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
                c.get(&format!("/sweeps/{}", crate::enc(id)), &[])?
            };
            if json {
                crate::print_json(&s)?;
            } else {
                print_status(&s);
            }
            Ok(0)
        }
        SweepCmd::Resume { id, retry_failed } => {
            let path = format!(
                "/sweeps/{}/resume{}",
                crate::enc(id),
                if *retry_failed {
                    "?retry_failed=true"
                } else {
                    ""
                }
            );
            let a: Value = c.post(&path, &json!({}))?;
            if json {
                crate::print_json(&a)?;
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
            report,
            plot,
        } => {
            if report
                .as_deref()
                .is_some_and(|r| r != "md" && r != "markdown")
            {
                bail!("--report {:?}: use md", report.as_deref().unwrap_or(""));
            }
            let mut q = vec![("metric", metric.clone())];
            q.extend(reduce.clone().map(|r| ("reduce", r)));
            q.extend(param.clone().map(|p| ("param", p)));
            q.extend(goal.clone().map(|g| ("goal", g)));
            q.extend(threshold.map(|t| ("threshold", t.to_string())));
            q.extend(threshold_abs.map(|t| ("threshold_abs", t.to_string())));
            let path = format!("/sweeps/{}/analysis", crate::enc(id));
            if let Some(file) = plot {
                let a: Value = c.get(&path, &q)?;
                std::fs::write(file, serde_json::to_vec_pretty(&a["plot"])?)
                    .with_context(|| format!("writing {}", file.display()))?;
                eprintln!("wrote the plot series to {}", file.display());
            }
            if json {
                let a: Value = c.get(&path, &q)?;
                crate::print_json(&a)?;
            } else {
                q.push(("format", "md".into()));
                let text = c.get_text(&path, &q)?;
                print!("{text}");
            }
            Ok(0)
        }
        SweepCmd::Cancel { id } => {
            let a: Value = c.post(&format!("/sweeps/{}/cancel", crate::enc(id)), &json!({}))?;
            if json {
                crate::print_json(&a)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_yaml_sweep_file_loads_with_its_base_config() {
        let dir = tempfile_dir();
        std::fs::write(
            dir.join("base.json"),
            r#"{"optim": {"lr": 1}, "epochs": 3}"#,
        )
        .unwrap();
        let file = dir.join("lr.yaml");
        std::fs::write(
            &file,
            "sweep_id: lr-test\nbase_config: base.json\nsweep:\n  optim.lr: [0.1, 0.01]\n  interventions.0.rate: {uniform: [0, 1]}\nstrategy: random\ntrials: 4\nparallel: 2\ntimeout: 60\nmax_retries: 1\nresume: true\ntags: [a, b]\ncommand: python train.py --config {config}\nresources:\n  ram: 2G\n",
        )
        .unwrap();
        let cmd = run_file(file, vec![vec!["epochs".into(), "5".into(), "10".into()]]);
        let s = spec(&cmd).unwrap();
        assert_eq!(s.sweep_id.as_deref(), Some("lr-test"));
        assert_eq!(s.name.as_deref(), Some("lr"));
        assert_eq!(s.base_config["epochs"], 3);
        assert_eq!(s.sweep["epochs"], Space::Values(vec![json!(5), json!(10)]));
        assert_eq!(s.parallel, Parallel::Fixed(2));
        assert_eq!(s.resources.ram, Some(2 << 30));
        assert_eq!(
            s.workdir.as_deref(),
            Some(std::fs::canonicalize(&dir).unwrap().to_str().unwrap())
        );
        std::fs::write(
            dir.join("bad.yaml"),
            "sweep: {lr: [1]}\ncommand: x\nparalel: 2\n",
        )
        .unwrap();
        let bad = run_file(dir.join("bad.yaml"), vec![]);
        let e = format!("{:#}", spec(&bad).unwrap_err());
        assert!(e.contains("paralel"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn run_file(file: PathBuf, param: Vec<Vec<String>>) -> SweepCmd {
        SweepCmd::Run {
            file: Some(file),
            param,
            base: None,
            command: None,
            id: None,
            parallel: None,
            strategy: None,
            trials: None,
            seed: None,
            repeats: None,
            timeout: None,
            retries: None,
            tag: vec![],
            cpus: None,
            ram: None,
            gpus: None,
            gpu_memory: None,
            dry_run: false,
            wait: false,
        }
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("labctl-sweep-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
