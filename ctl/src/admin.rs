//! `labctl status`, `ingest`, `errors`, `tail` and `replay`: the daemon itself: its health, its ingestion and
//! its event log.

use crate::client::Client;
use crate::table::{self, print_json};
use anyhow::{Context, Result};
use clap::Args;
use labd_schemas::api::{
    ErrorRecord, EventRecord, Health, IngestReport, IngestState, ReplayReport,
};
use serde_json::{Value, json};
use std::path::PathBuf;

/// Arguments of `labctl ingest`.
#[derive(Args)]
pub struct IngestArgs {
    path: PathBuf,
    /// Read the files as this format (labd, drgen, tensorboard, lightning, hf) instead of judging each by
    /// its name.
    #[arg(long)]
    format: Option<String>,
}

/// Arguments of `labctl errors`.
#[derive(Args)]
pub struct ErrorsArgs {
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Only files whose path contains this.
    #[arg(long)]
    path: Option<String>,
}

/// Arguments of `labctl tail`.
#[derive(Args)]
pub struct TailArgs {
    /// Start at this sequence number (default: only new events).
    #[arg(long)]
    from: Option<u64>,
}

/// Arguments of `labctl replay`.
#[derive(Args)]
pub struct ReplayArgs {
    /// Sequence number or RFC 3339 time.
    #[arg(long)]
    as_of: Option<String>,
    /// Only check: rebuild the views from the whole log and compare them with the live ones (exit 1 when
    /// they differ).
    #[arg(long, conflicts_with = "as_of")]
    verify: bool,
}

/// Arguments of `labctl republish`.
#[derive(Args)]
pub struct RepublishArgs {
    /// The first sequence number of this labd's log to publish again.
    #[arg(long)]
    from: u64,
}

/// `labctl republish --from N`: the host publishes its log again from event N.
pub fn republish(c: &Client, args: RepublishArgs, json: bool) -> Result<i32> {
    let answer: Value = c.post("/federation/republish", &json!({ "from": args.from }))?;
    if json {
        print_json(&answer)?;
    } else {
        println!(
            "publishing again from event {} (published up to {} before); a hub skips what it has",
            args.from, answer["published_before"]
        );
    }
    Ok(0)
}

/// `labctl status`: the daemon's health and its ingestion in a few lines.
pub fn status(c: &Client, json: bool) -> Result<i32> {
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
        if let Some(f) = &health.federation {
            print_federation(f);
        }
    }
    Ok(0)
}

/// The federation's lines of `labctl status`.
fn print_federation(f: &labd_schemas::api::FederationHealth) {
    println!(
        "federation: {} as {} via {} ({})",
        f.host,
        f.role,
        f.url,
        if f.connected {
            "connected"
        } else {
            "not connected"
        }
    );
    if let Some(e) = &f.error {
        println!("  problem: {e}");
    }
    if let Some(p) = &f.publish {
        println!(
            "  published up to event {} of {}: lag {} events, {:.1}s",
            p.published, p.log_seq, p.lag_events, p.lag_s
        );
    }
    if let Some(h) = &f.hub {
        println!(
            "  hub: {} events received, {} duplicates skipped, {} kept unread (labctl errors)",
            h.received, h.duplicates, h.held
        );
        for (host, seq) in &h.hosts {
            println!("    {host}: up to event {seq}");
        }
    }
}

/// `labctl ingest`: asks labd to read a file or folder of its host now, and waits for the job.
pub fn ingest(c: &Client, args: IngestArgs, json: bool) -> Result<i32> {
    let IngestArgs { path, format } = args;
    let abs = std::fs::canonicalize(&path).with_context(|| format!("{}", path.display()))?;
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
    Ok(0)
}

/// `labctl errors`: the latest ingest problems, one line each.
pub fn errors(c: &Client, args: ErrorsArgs, json: bool) -> Result<i32> {
    let ErrorsArgs { limit, path } = args;
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
    Ok(0)
}

/// `labctl tail`: prints events as they are committed, as JSON lines or one described line each.
pub fn tail(c: &Client, args: TailArgs, json: bool) -> Result<i32> {
    c.tail(args.from, None, |data| {
        if json {
            println!("{data}");
        } else {
            let r: EventRecord = serde_json::from_str(data)?;
            println!("{}", describe(&r));
        }
        Ok(())
    })?;
    Ok(0)
}

/// `labctl replay`: rebuilds the views (or checks them with `--verify`: exit 1 when they differ), or shows
/// the registry as of a past point.
pub fn replay(c: &Client, args: ReplayArgs, json: bool) -> Result<i32> {
    let ReplayArgs { as_of, verify } = args;
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
    Ok(0)
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
        K::RunChanged(c) => {
            let mut parts = Vec::new();
            if let Some(n) = &c.name {
                parts.push(format!("renamed {n}"));
            }
            if !c.params.is_empty() {
                parts.push(format!("{} params", c.params.len()));
            }
            if !c.set_tags.is_empty() || !c.removed_tags.is_empty() {
                parts.push(format!(
                    "tags +{} -{}",
                    c.set_tags.len(),
                    c.removed_tags.len()
                ));
            }
            match c.deleted {
                Some(true) => parts.push("deleted".into()),
                Some(false) => parts.push("restored".into()),
                None => {}
            }
            if !c.inputs.is_empty() {
                parts.push(format!("{} inputs", c.inputs.len()));
            }
            format!("{} changed: {}", c.exp, parts.join(", "))
        }
        K::ProjectCreated(p) => format!("project {} created ({})", p.project, p.name),
        K::AlertRuleSet(r) => format!(
            "alert rule {} set ({}, from {})",
            r.rule.name,
            r.rule.kind.as_str(),
            r.from.as_str()
        ),
        K::AlertRuleRemoved(r) => format!("alert rule {} removed", r.name),
        K::AlertFired(f) => format!("ALERT {}: {}", f.rule, f.message),
        K::AlertDelivered(d) => format!(
            "alert #{} to {}: {} after {} tries{}",
            d.firing,
            d.sink,
            d.outcome.as_str(),
            d.attempts,
            d.error
                .as_ref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        ),
        K::TrialAdded(t) => format!(
            "sweep {} chose trial {} ({}): {}",
            t.sweep, t.number, t.trial.id, t.reason
        ),
        K::ProjectChanged(p) => format!(
            "project {} changed{}{}",
            p.project,
            p.name
                .as_ref()
                .map(|n| format!(": renamed {n}"))
                .unwrap_or_default(),
            match p.deleted {
                Some(true) => ", deleted",
                Some(false) => ", restored",
                None => "",
            }
        ),
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
