//! `labctl export`: an experiment written to a folder: config, metrics history, summaries, artifacts list and
//! copies of its source logs.

use crate::client::{Client, enc, enc_key};
use crate::table::print_json;
use anyhow::{Context, Result, bail};
use clap::Args;
use labd_schemas::api::{Experiment, MetricPage};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// Arguments of `labctl export`.
#[derive(Args)]
pub struct ExportArgs {
    /// The experiment (the labd layout), or experiments (the manager layout; none: those --where selects, or all).
    ids: Vec<String>,
    #[arg(long)]
    to: PathBuf,
    /// `labd` (one experiment: config, every point with its axes, summaries, artifacts, source logs) or
    /// `manager`: the experiment manager's layout, one folder per experiment and `experiment_registry.json`
    /// beside them, which labd (or the manager) reads back.
    #[arg(long, default_value = "labd")]
    layout: String,
    /// With the manager layout: the experiments this filter selects.
    #[arg(long = "where", value_name = "EXPR")]
    filter: Option<String>,
}

/// What became of an experiment's source logs: the ones copied, and why the others were not.
struct Sources {
    copied: Vec<String>,
    missing: Vec<String>,
}

/// `labctl export`: writes the folder, then says what it holds; fails when no source log could be copied.
pub fn export(c: &Client, args: ExportArgs, json: bool) -> Result<i32> {
    let ExportArgs {
        ids,
        to,
        layout,
        filter,
    } = args;
    match layout.as_str() {
        "labd" => {}
        "manager" => return crate::export_manager::export(c, ids, filter, &to, json),
        other => bail!("--layout {other:?}: use labd or manager"),
    }
    let [id] = ids.as_slice() else {
        bail!(
            "the labd layout exports one experiment: give its id (the manager layout takes several)"
        );
    };
    let id = id.clone();
    let e: Experiment = c.get(&format!("/experiments/{}", enc(&id)), &[])?;
    let metrics_dir = to.join("metrics");
    std::fs::create_dir_all(&metrics_dir)
        .with_context(|| format!("creating {}", metrics_dir.display()))?;
    write_json(to.join("config.json"), &e.config)?;
    write_json(to.join("experiment.json"), &serde_json::to_value(&e)?)?;
    write_json(
        metrics_dir.join("training_history.json"),
        &history(c, &id, &e)?,
    )?;
    for (group, values) in &e.summaries {
        write_json(
            metrics_dir.join(format!("{}.json", safe_name(group))),
            values,
        )?;
    }
    write_json(
        to.join("artifacts.json"),
        &serde_json::to_value(&e.artifacts)?,
    )?;
    let Sources { copied, missing } = copy_sources(&e, &to.join("sources"))?;
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
    Ok(0)
}

fn write_json(path: PathBuf, v: &Value) -> Result<()> {
    std::fs::write(&path, serde_json::to_vec_pretty(v)?)
        .with_context(|| format!("writing {}", path.display()))
}

/// Every point of every metric of the experiment, by metric key, read page by page.
fn history(c: &Client, id: &str, e: &Experiment) -> Result<Value> {
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
    Ok(Value::Object(history))
}

/// A summary group's name as a file name: anything but letters, digits, `_` and `-` becomes `_`.
fn safe_name(group: &str) -> String {
    group
        .chars()
        .map(|ch| {
            if ch.is_ascii_alphanumeric() || ch == '_' || ch == '-' {
                ch
            } else {
                '_'
            }
        })
        .collect()
}

/// Copies the experiment's source logs (those with an absolute path: files on the daemon's host) into `dir`.
fn copy_sources(e: &Experiment, dir: &Path) -> Result<Sources> {
    let mut copied = Vec::new();
    let mut missing = Vec::new();
    for src in e.sources.iter().filter(|s| s.starts_with('/')) {
        std::fs::create_dir_all(dir)?;
        let name = Path::new(src)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "source".into());
        match std::fs::copy(src, dir.join(&name)) {
            Ok(_) => copied.push(src.clone()),
            Err(err) => missing.push(format!("{src}: {err}")),
        }
    }
    Ok(Sources { copied, missing })
}
