//! `labctl export --layout manager`: experiments written in the experiment manager's layout (its design document:
//! one folder per experiment with `config.json`, `metrics/training_history.json` as per-metric lists,
//! `metrics/final_summary.json`, `metrics/bias_metrics.json`, `metrics/xai_metrics.json`, `checkpoints/`; and
//! `experiment_registry.json` beside them). labd reads the folder back as the same experiments: same ids, names,
//! descriptions, tags, configs, statuses and notes, summaries, checkpoints, and every metric's values in order,
//! bit for bit (the lists keep no steps: the manager's history is one list per metric).

use crate::client::{Client, enc, enc_key};
use crate::table::print_json;
use anyhow::{Context, Result, bail};
use labd_schemas::api::{Experiment, ExperimentRow, MetricPage};
use serde_json::{Value, json};
use sha2::Digest;
use std::fmt::Write as _;
use std::path::Path;

/// The manager's file of each summary group labd knows it by.
const SUMMARY_FILES: [(&str, &str); 3] = [
    ("final", "final_summary.json"),
    ("bias", "bias_metrics.json"),
    ("xai", "xai_metrics.json"),
];

pub fn export(
    c: &Client,
    ids: Vec<String>,
    filter: Option<String>,
    to: &Path,
    json: bool,
) -> Result<i32> {
    let ids = if ids.is_empty() {
        let q: Vec<(&str, String)> = filter.into_iter().map(|f| ("where", f)).collect();
        let rows: Vec<ExperimentRow> = c.get("/experiments", &q)?;
        rows.into_iter().map(|r| r.id.0).collect()
    } else {
        ids
    };
    if ids.is_empty() {
        bail!("no experiment to export");
    }
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    // An existing registry keeps its other entries.
    let registry_path = to.join("experiment_registry.json");
    let mut entries: Vec<Value> = match std::fs::read(&registry_path) {
        Ok(bytes) => serde_json::from_slice::<Value>(&bytes)
            .with_context(|| format!("{} is not JSON", registry_path.display()))?
            .get("experiments")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    entries.retain(|e| {
        e.get("experiment_id")
            .and_then(Value::as_str)
            .is_none_or(|id| !ids.iter().any(|x| x == id))
    });
    let mut checkpoints = 0usize;
    for id in &ids {
        let e: Experiment = c.get(&format!("/experiments/{}", enc(id)), &[])?;
        let dir = to.join(e.id.as_str());
        let metrics = dir.join("metrics");
        std::fs::create_dir_all(&metrics)
            .with_context(|| format!("creating {}", metrics.display()))?;
        write(&dir.join("config.json"), &pretty(&e.config)?)?;
        write(&metrics.join("training_history.json"), &history(c, id, &e)?)?;
        for (group, values) in &e.summaries {
            let file = SUMMARY_FILES
                .iter()
                .find(|(g, _)| g == group)
                .map_or_else(|| format!("{group}.json"), |(_, f)| f.to_string());
            write(&metrics.join(file), &pretty(values)?)?;
        }
        checkpoints += copy_checkpoints(&e, &dir.join("checkpoints"))?;
        entries.push(json!({
            "experiment_id": e.id,
            "timestamp": e.started,
            "status": e.status.as_str(),
            "custom_name": e.name,
            "description": e.description,
            "tags": e.tags,
            "config": e.config,
            "directory": format!("./{}", e.id),
            "completed_at": e.ended,
            "notes": e.status_notes,
        }));
    }
    write(&registry_path, &pretty(&json!({ "experiments": entries }))?)?;
    if json {
        print_json(&json!({"exported": ids, "to": to, "checkpoints": checkpoints}))?;
    } else {
        println!(
            "exported {} experiments to {} in the experiment manager's layout ({checkpoints} checkpoints); labd reads the folder back",
            ids.len(),
            to.display()
        );
    }
    Ok(0)
}

fn pretty(v: &Value) -> Result<String> {
    Ok(serde_json::to_string_pretty(v)?)
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// `{"train/loss": [v0, v1, ...], ...}`: every value of each metric in order, written as Python's json.dumps
/// writes them (NaN and ±Infinity bare), the shortest text that reads back to the same double.
fn history(c: &Client, id: &str, e: &Experiment) -> Result<String> {
    let mut out = String::from("{");
    for (i, key) in e.metrics.keys().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "\n  {}: [", serde_json::to_string(key)?);
        let mut offset = 0u64;
        let mut first = true;
        loop {
            let page: MetricPage = c.get(
                &format!("/experiments/{}/metrics/{}", enc(id), enc_key(key)),
                &[("offset", offset.to_string()), ("limit", "100000".into())],
            )?;
            let n = page.points.len() as u64;
            for p in &page.points {
                if !first {
                    out.push_str(", ");
                }
                first = false;
                match (p.value, p.repr.as_deref()) {
                    (Some(v), _) => out.push_str(&serde_json::to_string(&v)?),
                    (None, Some(r)) => out.push_str(r),
                    (None, None) => out.push_str("null"),
                }
            }
            offset += n;
            if n == 0 || offset >= page.total {
                break;
            }
        }
        out.push(']');
    }
    out.push_str("\n}\n");
    Ok(out)
}

/// The run's checkpoint artifacts (role `checkpoint`, or a path in a `checkpoints` folder) into `dir`, hard
/// linked where they can be, else copied; each checked against its recorded sha256.
fn copy_checkpoints(e: &Experiment, dir: &Path) -> Result<usize> {
    let mut n = 0;
    for a in &e.artifacts {
        let is_checkpoint = a.role == "checkpoint" || a.path.contains("checkpoints/");
        if !is_checkpoint {
            continue;
        }
        // A relative path is relative to the folder of the run log that recorded it.
        let src = if a.path.starts_with('/') {
            std::path::PathBuf::from(&a.path)
        } else {
            match e
                .sources
                .iter()
                .find(|s| s.starts_with('/'))
                .and_then(|s| Path::new(s).parent())
            {
                Some(folder) => folder.join(&a.path),
                None => continue,
            }
        };
        let src = src.as_path();
        let Some(name) = src.file_name() else {
            continue;
        };
        std::fs::create_dir_all(dir)?;
        let dst = dir.join(name);
        let _ = std::fs::remove_file(&dst);
        if std::fs::hard_link(src, &dst).is_err() {
            std::fs::copy(src, &dst).with_context(|| {
                format!(
                    "copying checkpoint {} of {} (is labctl on the daemon's host?)",
                    a.path, e.id
                )
            })?;
        }
        if let Some(want) = &a.sha256 {
            let bytes =
                std::fs::read(&dst).with_context(|| format!("reading {}", dst.display()))?;
            let got = sha2::Sha256::digest(&bytes)
                .iter()
                .fold(String::new(), |mut s, b| {
                    let _ = write!(s, "{b:02x}");
                    s
                });
            if &got != want {
                bail!(
                    "checkpoint {} of {} has sha256 {got}, not the recorded {want}: it changed since it was recorded",
                    a.path,
                    e.id
                );
            }
        }
        n += 1;
    }
    Ok(n)
}
