//! `labctl bench`: start a CMR benchmark and follow it, list and show benchmarks, export their reports, compare
//! two, cancel one.

use crate::client::Client;
use crate::table;
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Subcommand)]
pub enum BenchCmd {
    /// Run a CMR benchmark on the daemon's host and follow its progress.
    Cmr {
        /// The configuration (YAML or JSON); absent: the defaults.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Name of the benchmark (overrides the configuration's).
        #[arg(long)]
        name: Option<String>,
        /// Start it and print its id; do not follow it.
        #[arg(long)]
        no_wait: bool,
    },
    /// List benchmarks, newest first.
    Ls,
    /// A benchmark's status, summary and recommendations.
    Show { id: String },
    /// Write performance_summary.csv, raw_measurements.csv (every repeat), charts/*.svg,
    /// performance_analysis_report.json and one results file per dataset.
    Export {
        id: String,
        /// The folder to write into (made if missing).
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
    /// Compare two benchmarks figure by figure (default: this one against the previous run of the same name).
    Compare {
        id: String,
        /// The benchmark to compare against (the "A" side).
        #[arg(long)]
        with: Option<String>,
    },
    /// Stop a running benchmark.
    Cancel { id: String },
}

fn read_config(path: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let is_json = path.extension().is_some_and(|e| e == "json");
    let v: Value = if is_json {
        serde_json::from_str(&text)
            .with_context(|| format!("{}: not valid JSON", path.display()))?
    } else {
        serde_saphyr::from_str(&text)
            .with_context(|| format!("{}: not valid YAML", path.display()))?
    };
    if !v.is_object() {
        bail!("{}: the configuration must be a mapping", path.display());
    }
    Ok(v)
}

fn status_line(b: &Value) -> String {
    let last = b["last"]
        .as_object()
        .map(|l| {
            let params: Vec<String> = l
                .get("params")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .map(|(k, v)| {
                    format!(
                        "{k}={}",
                        v.as_str().map(str::to_string).unwrap_or(v.to_string())
                    )
                })
                .collect();
            format!(
                "{} {}",
                l["analysis"].as_str().unwrap_or(""),
                params.join(" ")
            )
        })
        .unwrap_or_default();
    format!(
        "{} {} [{}/{}] {}",
        b["id"].as_str().unwrap_or(""),
        b["status"].as_str().unwrap_or(""),
        b["measured"],
        b["planned"].as_u64().map_or("?".into(), |p| p.to_string()),
        last
    )
}

fn print_report(c: &Client, id: &str) -> Result<()> {
    let r: Value = c.get(&format!("/benchmarks/{id}/report"), &[])?;
    println!("summary:");
    for (k, v) in r["summary"].as_object().into_iter().flatten() {
        println!("  {k}: {v}");
    }
    println!("recommendations:");
    for rec in r["recommendations"].as_array().into_iter().flatten() {
        println!("  - {}", rec.as_str().unwrap_or(""));
    }
    Ok(())
}

pub fn run(c: &Client, cmd: BenchCmd, json_out: bool) -> Result<i32> {
    match cmd {
        BenchCmd::Cmr {
            config,
            name,
            no_wait,
        } => {
            let config = config.as_deref().map(read_config).transpose()?;
            let started: Value = c
                .post("/benchmarks", &json!({"config": config, "name": name}))
                .context("starting the benchmark")?;
            let id = started["bench"].as_str().unwrap_or("").to_string();
            if no_wait {
                if json_out {
                    table::print_json(&started)?;
                } else {
                    println!("{id}");
                }
                return Ok(0);
            }
            eprintln!(
                "benchmark {id}: {} measurements planned (runner log: {}/runner.log)",
                started["planned"],
                started["dir"].as_str().unwrap_or("")
            );
            let mut last = String::new();
            let b = loop {
                let b: Value = c.get(&format!("/benchmarks/{id}"), &[])?;
                let line = status_line(&b);
                if line != last {
                    eprintln!("{line}");
                    last = line;
                }
                if b["status"].as_str().is_some_and(|s| s != "running") {
                    break b;
                }
                std::thread::sleep(Duration::from_millis(500));
            };
            let status = b["status"].as_str().unwrap_or("");
            if json_out {
                table::print_json(&c.get::<Value>(&format!("/benchmarks/{id}/report"), &[])?)?;
            } else if status == "completed" {
                print_report(c, &id)?;
            } else {
                eprintln!(
                    "benchmark {id} {status}: {}",
                    b["message"].as_str().unwrap_or("")
                );
            }
            Ok(if status == "completed" { 0 } else { 1 })
        }
        BenchCmd::Ls => {
            let v: Value = c.get("/benchmarks", &[])?;
            if json_out {
                return table::print_json(&v).map(|_| 0);
            }
            let rows: Vec<Vec<String>> = v["benchmarks"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|b| {
                    vec![
                        b["id"].as_str().unwrap_or("").to_string(),
                        b["name"].as_str().unwrap_or("").to_string(),
                        b["status"].as_str().unwrap_or("").to_string(),
                        format!(
                            "{}/{}",
                            b["measured"],
                            b["planned"].as_u64().map_or("?".into(), |p| p.to_string())
                        ),
                        b["device"].as_str().unwrap_or("").to_string(),
                        b["runner"].as_str().unwrap_or("external").to_string(),
                    ]
                })
                .collect();
            table::print(
                &["ID", "NAME", "STATUS", "MEASURED", "DEVICE", "RUNNER"],
                &rows,
            );
            Ok(0)
        }
        BenchCmd::Show { id } => {
            let b: Value = c.get(&format!("/benchmarks/{id}"), &[])?;
            if json_out {
                let report: Value = c.get(&format!("/benchmarks/{id}/report"), &[])?;
                return table::print_json(&report).map(|_| 0);
            }
            println!("{}", status_line(&b));
            if let Some(m) = b["message"].as_str() {
                println!("message: {m}");
            }
            print_report(c, &id)?;
            Ok(0)
        }
        BenchCmd::Export { id, out } => {
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let csv = c.get_text(&format!("/benchmarks/{id}/summary.csv"), &[])?;
            let report: Value = c.get(&format!("/benchmarks/{id}/report"), &[])?;
            let datasets: Value = c.get(&format!("/benchmarks/{id}/datasets"), &[])?;
            let mut written = Vec::new();
            let mut write = |name: String, bytes: Vec<u8>| -> Result<()> {
                let path = out.join(&name);
                std::fs::write(&path, bytes)
                    .with_context(|| format!("writing {}", path.display()))?;
                written.push(path.display().to_string());
                Ok(())
            };
            write("performance_summary.csv".into(), csv.into_bytes())?;
            let raw = c.get_text(&format!("/benchmarks/{id}/raw.csv"), &[])?;
            write("raw_measurements.csv".into(), raw.into_bytes())?;
            // The charts it has data for (labd answers 404 for the others).
            for chart in ["overhead", "memory", "scaling", "strategies", "utilization"] {
                if let Ok(svg) = c.get_text(&format!("/benchmarks/{id}/charts/{chart}.svg"), &[]) {
                    std::fs::create_dir_all(out.join("charts"))?;
                    write(format!("charts/{chart}.svg"), svg.into_bytes())?;
                }
            }
            write(
                "performance_analysis_report.json".into(),
                serde_json::to_vec_pretty(&report)?,
            )?;
            for (name, v) in datasets.as_object().into_iter().flatten() {
                // Dataset names come from the results; keep them to safe file names.
                let safe: String = name
                    .chars()
                    .map(|ch| {
                        if ch.is_ascii_alphanumeric() || ch == '_' || ch == '-' {
                            ch
                        } else {
                            '_'
                        }
                    })
                    .collect();
                write(
                    format!("dataset_{safe}_results.json"),
                    serde_json::to_vec_pretty(v)?,
                )?;
            }
            for w in &written {
                println!("{w}");
            }
            Ok(0)
        }
        BenchCmd::Compare { id, with } => {
            let q: Vec<(&str, String)> = with.into_iter().map(|w| ("with", w)).collect();
            let v: Value = c.get(&format!("/benchmarks/{id}/compare"), &q)?;
            if json_out {
                table::print_json(&v)?;
            } else {
                print!("{}", v["text"].as_str().unwrap_or(""));
            }
            Ok(0)
        }
        BenchCmd::Cancel { id } => {
            let v: Value = c.post(&format!("/benchmarks/{id}/cancel"), &json!({}))?;
            if json_out {
                table::print_json(&v)?;
            } else {
                println!("cancelling {id}");
            }
            Ok(0)
        }
    }
}
