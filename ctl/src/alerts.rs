//! `labctl alerts`: the firings (newest first, or followed as they come), the rules in force, and rules added
//! or removed.

use crate::client::{Client, enc};
use crate::table::{self, print_json};
use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use labd_schemas::EventKind;
use labd_schemas::alert::{AlertKind, AlertRule};
use labd_schemas::api::{AlertList, AlertRecord, AlertRuleInfo, AlertRules, EventRecord};

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AlertsArgs {
    #[command(subcommand)]
    cmd: Option<AlertsCmd>,
    /// Only firings whose episode is still open.
    #[arg(long)]
    open: bool,
    /// Only this rule's firings.
    #[arg(long)]
    rule: Option<String>,
    /// Only firings about this run.
    #[arg(long)]
    run: Option<String>,
    /// Only firings about this sweep (its trials included).
    #[arg(long)]
    sweep: Option<String>,
    /// At most this many (newest first).
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Then follow new firings as they are recorded (until interrupted).
    #[arg(long, short)]
    follow: bool,
}

#[derive(Subcommand)]
enum AlertsCmd {
    /// The rules in force and the sinks configured.
    Rules,
    /// Add a rule (or replace one added before under the same name).
    Add(AddArgs),
    /// Remove a rule added with `labctl alerts add` (the configuration file's are changed there).
    Rm { name: String },
}

#[derive(Args)]
struct AddArgs {
    /// The rule's name.
    name: String,
    /// nan, threshold, divergence, stall, failed or sweep_finished.
    #[arg(long)]
    kind: AlertKind,
    /// The metric (name or glob) for nan, threshold and divergence.
    #[arg(long)]
    metric: Option<String>,
    /// threshold: fire above this value.
    #[arg(long, allow_hyphen_values = true)]
    above: Option<f64>,
    /// threshold: fire below this value.
    #[arg(long, allow_hyphen_values = true)]
    below: Option<f64>,
    /// divergence: how far above the running minimum (2: twice it).
    #[arg(long)]
    factor: Option<f64>,
    /// divergence: for how many points in a row.
    #[arg(long)]
    points: Option<u32>,
    /// stall: silence before it fires (`90s`, `10m`, `1h`, or seconds).
    #[arg(long, value_parser = parse_duration)]
    after: Option<f64>,
    /// Only runs whose id or name matches this glob.
    #[arg(long)]
    runs: Option<String>,
    /// Only sweeps whose id matches this glob (failed trials, sweeps' ends).
    #[arg(long)]
    sweeps: Option<String>,
    /// Sinks to send to (comma-separated names; default every sink).
    #[arg(long, value_delimiter = ',')]
    sinks: Option<Vec<String>>,
    /// At most this many firings a minute to each webhook and command.
    #[arg(long)]
    max_per_minute: Option<u32>,
}

/// `90s`, `10m`, `1h`, `500ms` or plain seconds.
fn parse_duration(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let (num, unit) = t
        .find(|c: char| c.is_ascii_alphabetic())
        .map(|i| t.split_at(i))
        .unwrap_or((t, "s"));
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (e.g. 90s, 10m, 1h)"))?;
    let scale = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => return Err(format!("{other:?}: use ms, s, m or h")),
    };
    Ok(n * scale)
}

pub fn run(c: &Client, args: AlertsArgs, json: bool) -> Result<i32> {
    match args.cmd {
        Some(AlertsCmd::Rules) => rules(c, json),
        Some(AlertsCmd::Add(a)) => add(c, a, json),
        Some(AlertsCmd::Rm { name }) => {
            c.delete(&format!("/alerts/rules/{}", enc(&name)))?;
            if !json {
                println!("removed alert rule {name}");
            }
            Ok(0)
        }
        None => list(c, args, json),
    }
}

fn list(c: &Client, args: AlertsArgs, json: bool) -> Result<i32> {
    let mut q = vec![("limit", args.limit.to_string())];
    if args.open {
        q.push(("open", "true".into()));
    }
    for (k, v) in [
        ("rule", &args.rule),
        ("run", &args.run),
        ("sweep", &args.sweep),
    ] {
        if let Some(v) = v {
            q.push((k, v.clone()));
        }
    }
    let answer: AlertList = c.get("/alerts", &q)?;
    if json && !args.follow {
        print_json(&answer)?;
    } else if json {
        for a in answer.alerts.iter().rev() {
            println!("{}", serde_json::to_string(a)?);
        }
    } else {
        let rows: Vec<Vec<String>> = answer.alerts.iter().map(row).collect();
        table::print(
            &["SEQ", "TIME", "RULE", "KIND", "OPEN", "WHAT", "SENT"],
            &rows,
        );
        println!(
            "{} fired in all, {} open{}",
            answer.fired,
            answer.open,
            if answer.pending > 0 {
                format!(", {} being recorded", answer.pending)
            } else {
                String::new()
            }
        );
    }
    if !args.follow {
        return Ok(0);
    }
    // Follow: the firings committed from now on (the SSE tail, alert_fired only), filtered as asked.
    c.tail(None, Some("alert_fired"), |data| {
        let r: EventRecord = serde_json::from_str(data)?;
        let EventKind::AlertFired(f) = r.event.kind else {
            return Ok(());
        };
        let keep = args.rule.as_ref().is_none_or(|x| &f.rule == x)
            && args
                .run
                .as_ref()
                .is_none_or(|x| f.subject.run.as_ref().is_some_and(|r| &r.0 == x))
            && args
                .sweep
                .as_ref()
                .is_none_or(|x| f.subject.sweep.as_ref() == Some(x));
        if !keep {
            return Ok(());
        }
        if json {
            println!("{data}");
        } else {
            println!(
                "{}  #{}  {} ({}): {}",
                labd_schemas::time::micros_to_rfc3339(r.event.time),
                r.seq,
                f.rule,
                f.kind.as_str(),
                f.message
            );
        }
        Ok(())
    })?;
    Ok(0)
}

fn row(a: &AlertRecord) -> Vec<String> {
    let sent = a
        .deliveries
        .iter()
        .map(|d| format!("{}:{}", d.sink, d.outcome.as_str()))
        .collect::<Vec<_>>()
        .join(" ");
    vec![
        a.seq.to_string(),
        a.time.clone(),
        a.fired.rule.clone(),
        a.fired.kind.as_str().into(),
        if a.open { "yes" } else { "" }.into(),
        match &a.host {
            Some(h) => format!("[{h}] {}", a.fired.message),
            None => a.fired.message.clone(),
        },
        sent,
    ]
}

fn rules(c: &Client, json: bool) -> Result<i32> {
    let answer: AlertRules = c.get("/alerts/rules", &[])?;
    if json {
        print_json(&answer)?;
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = answer.rules.iter().map(rule_row).collect();
    table::print(
        &["NAME", "KIND", "CONDITION", "SCOPE", "FROM", "FIRED"],
        &rows,
    );
    println!(
        "sinks: {}",
        if answer.sinks.is_empty() {
            "none".to_string()
        } else {
            answer.sinks.join(", ")
        }
    );
    Ok(0)
}

fn rule_row(i: &AlertRuleInfo) -> Vec<String> {
    let r = &i.rule;
    let metric = r.metric.as_deref().unwrap_or("");
    let condition = match r.kind {
        AlertKind::Nan => format!("{metric} is NaN or ±inf"),
        AlertKind::Threshold => {
            let mut parts = Vec::new();
            if let Some(a) = r.above {
                parts.push(format!("{metric} > {a}"));
            }
            if let Some(b) = r.below {
                parts.push(format!("{metric} < {b}"));
            }
            parts.join(" or ")
        }
        AlertKind::Divergence => format!(
            "{metric} > {} × min for {} points",
            r.factor.unwrap_or(2.0),
            r.points.unwrap_or(1)
        ),
        AlertKind::Stall => format!("silent {} s", r.after.unwrap_or(0.0)),
        AlertKind::Failed => "a run or trial fails".into(),
        AlertKind::SweepFinished => "a sweep ends".into(),
    };
    let scope = [
        r.runs.as_ref().map(|g| format!("runs {g}")),
        r.sweeps.as_ref().map(|g| format!("sweeps {g}")),
        r.sinks.as_ref().map(|s| format!("to {}", s.join(","))),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join("; ");
    vec![
        r.name.clone(),
        r.kind.as_str().into(),
        condition,
        scope,
        i.from.clone(),
        i.fired.to_string(),
    ]
}

fn add(c: &Client, a: AddArgs, json: bool) -> Result<i32> {
    let rule = AlertRule {
        name: a.name,
        kind: a.kind,
        metric: a.metric,
        above: a.above,
        below: a.below,
        factor: a.factor,
        points: a.points,
        after: a.after,
        runs: a.runs,
        sweeps: a.sweeps,
        sinks: a.sinks,
        max_per_minute: a.max_per_minute,
    };
    // Checked here first, so the message names the flag's field before a round trip.
    if let Err(e) = rule.check() {
        bail!("{e}");
    }
    let set: AlertRuleInfo = c.post("/alerts/rules", &rule)?;
    if json {
        print_json(&set)?;
    } else {
        println!(
            "alert rule {} set ({})",
            set.rule.name,
            set.rule.kind.as_str()
        );
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(90.0));
        assert_eq!(parse_duration("10m"), Ok(600.0));
        assert_eq!(parse_duration("1.5h"), Ok(5400.0));
        assert_eq!(parse_duration("250ms"), Ok(0.25));
        assert_eq!(parse_duration("42"), Ok(42.0));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3d").is_err());
    }
}
