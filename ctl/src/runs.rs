//! `labctl ls`, `show`, `metric` and `compare`: the experiments labd knows, one at a time or side by side.

use crate::client::{Client, enc, enc_key};
use crate::flatten;
use crate::table::{self, print_json};
use anyhow::Result;
use clap::Args;
use labd_schemas::api::{Experiment, ExperimentRow, MetricPage};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// Arguments of `labctl ls`.
#[derive(Args)]
pub struct LsArgs {
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
}

/// Arguments of `labctl show`.
#[derive(Args)]
pub struct ShowArgs {
    id: String,
}

/// Arguments of `labctl compare`.
#[derive(Args)]
pub struct CompareArgs {
    #[arg(required = true, num_args = 2..)]
    ids: Vec<String>,
    /// Only rows that differ.
    #[arg(long)]
    diff: bool,
}

/// Arguments of `labctl metric`.
#[derive(Args)]
pub struct MetricArgs {
    id: String,
    key: String,
    #[arg(long, default_value_t = 0)]
    offset: u64,
    #[arg(long)]
    limit: Option<u64>,
}

/// `labctl ls`: a table of the experiments the filters select.
pub fn ls(c: &Client, args: LsArgs, json: bool) -> Result<i32> {
    let LsArgs {
        filter,
        status,
        tag,
        name,
    } = args;
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
        // Runs of several hosts (a federation's hub): which host each was recorded on.
        let hosts = rows
            .iter()
            .map(|r| r.host.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                let mut row = vec![r.id.to_string(), r.name.clone(), r.status.as_str().into()];
                if hosts > 1 {
                    row.push(r.host.clone());
                }
                row.extend([
                    r.metrics.to_string(),
                    r.points.to_string(),
                    r.tags.join(","),
                ]);
                row
            })
            .collect();
        let header: &[&str] = if hosts > 1 {
            &["ID", "NAME", "STATUS", "HOST", "METRICS", "POINTS", "TAGS"]
        } else {
            &["ID", "NAME", "STATUS", "METRICS", "POINTS", "TAGS"]
        };
        table::print(header, &cells);
    }
    Ok(0)
}

/// `labctl show`: one experiment.
pub fn show(c: &Client, args: ShowArgs, json: bool) -> Result<i32> {
    let e: Experiment = c.get(&format!("/experiments/{}", enc(&args.id)), &[])?;
    if json {
        print_json(&e)?;
    } else {
        print_experiment(&e);
    }
    Ok(0)
}

/// `labctl metric`: one page of the points of one metric.
pub fn metric(c: &Client, args: MetricArgs, json: bool) -> Result<i32> {
    let MetricArgs {
        id,
        key,
        offset,
        limit,
    } = args;
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
    Ok(0)
}

/// Prints an experiment for people: its header, config, metrics, summaries and artifacts.
fn print_experiment(e: &Experiment) {
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

/// One row of a comparison: the key, whether the experiments' values differ, and each one's value.
type CompareRow = (String, bool, Vec<Option<Value>>);

/// `labctl compare`: configs, summaries and final metric values of experiments side by side.
pub fn compare(c: &Client, args: CompareArgs, json: bool) -> Result<i32> {
    let CompareArgs { ids, diff } = args;
    let exps: Vec<Experiment> = ids
        .iter()
        .map(|id| c.get(&format!("/experiments/{}", enc(id)), &[]))
        .collect::<Result<_>>()?;
    let configs: Vec<_> = exps.iter().map(|e| flatten::flatten(&e.config)).collect();
    let summaries: Vec<_> = exps.iter().map(flat_summaries).collect();
    let finals: Vec<_> = exps.iter().map(final_values).collect();
    let sections = [
        ("config", compare_section(&configs, diff)),
        ("summary", compare_section(&summaries, diff)),
        ("final metric", compare_section(&finals, diff)),
    ];
    // Display names as the daemon is configured (`[display]`); a daemon without the endpoint has none.
    let display: Display = c.get("/display", &[]).unwrap_or_default();
    if json {
        print_comparison_json(&ids, &sections, &display)?;
    } else {
        print_comparison(&exps, sections, &display);
    }
    Ok(0)
}

/// The daemon's `[display]` names and value remaps.
#[derive(Debug, Default, serde::Deserialize)]
struct Display {
    #[serde(default)]
    names: BTreeMap<String, String>,
    #[serde(default)]
    values: BTreeMap<String, BTreeMap<String, String>>,
}

impl Display {
    /// The key as shown: `Name (key)` where a name is configured.
    fn key(&self, key: &str) -> String {
        match self.names.get(key) {
            Some(n) if n != key => format!("{n} ({key})"),
            _ => key.to_string(),
        }
    }
    /// A value's remapped text, where one is configured.
    fn value(&self, key: &str, v: Option<&Value>) -> Option<String> {
        let map = self.values.get(key)?;
        let v = v?;
        let text = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        map.get(&text)
            .or_else(|| if v.is_null() { map.get("None") } else { None })
            .cloned()
    }
}

/// Every summary value of an experiment under `group.key`.
fn flat_summaries(e: &Experiment) -> BTreeMap<String, Value> {
    let mut all = BTreeMap::new();
    for (g, v) in &e.summaries {
        for (k, x) in flatten::flatten(v) {
            all.insert(format!("{g}.{k}"), x);
        }
    }
    all
}

/// The last value of each metric of an experiment (null where it has none).
fn final_values(e: &Experiment) -> BTreeMap<String, Value> {
    e.metrics
        .iter()
        .map(|(k, m)| (k.clone(), m.last.map_or(Value::Null, |v| json!(v))))
        .collect()
}

/// One section of a comparison: a row per key any experiment has (only those that differ with `only_diff`).
fn compare_section(maps: &[BTreeMap<String, Value>], only_diff: bool) -> Vec<CompareRow> {
    let keys: BTreeSet<&String> = maps.iter().flat_map(|m| m.keys()).collect();
    keys.into_iter()
        .map(|k| {
            let vals: Vec<Option<Value>> = maps.iter().map(|m| m.get(k).cloned()).collect();
            let differs = vals.iter().any(|v| v != &vals[0]);
            (k.clone(), differs, vals)
        })
        .filter(|(_, d, _)| !only_diff || *d)
        .collect()
}

fn print_comparison_json(
    ids: &[String],
    sections: &[(&str, Vec<CompareRow>)],
    display: &Display,
) -> Result<()> {
    let out: Value = sections
        .iter()
        .map(|(name, rows)| {
            let rows: Vec<Value> = rows
                .iter()
                .map(|(k, d, vals)| {
                    let mut row = json!({ "key": k, "differs": d, "values": vals });
                    if let Some(n) = display.names.get(k) {
                        row["name"] = json!(n);
                    }
                    if display.values.contains_key(k) {
                        let shown: Vec<Option<String>> =
                            vals.iter().map(|v| display.value(k, v.as_ref())).collect();
                        row["shown"] = json!(shown);
                    }
                    row
                })
                .collect();
            (name.to_string(), Value::Array(rows))
        })
        .collect::<serde_json::Map<_, _>>()
        .into();
    print_json(&json!({ "experiments": ids, "sections": out }))
}

/// Prints each non-empty section as a table, a column per experiment, differing rows marked with `*`.
fn print_comparison(
    exps: &[Experiment],
    sections: [(&str, Vec<CompareRow>); 3],
    display: &Display,
) {
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
                    display.key(k),
                ];
                row.extend(vals.iter().map(|v| {
                    display
                        .value(k, v.as_ref())
                        .unwrap_or_else(|| flatten::cell(v.as_ref()))
                }));
                row
            })
            .collect();
        table::print(&header, &cells);
    }
    println!("(* marks values that differ)");
}
