//! Where a firing goes: the journal (labd's own log, at once), webhooks (an HTTP POST of the firing as JSON,
//! tried again with growing waits) and commands (run with the firing on standard input and in `LABD_ALERT_*`
//! variables). Each webhook or command delivery ends as an `alert_delivered` event, recorded by the worker.

use crate::config::{CommandSink, Webhook};
use labd_schemas::alert::{AlertFired, Delivery};
use labd_schemas::time::micros_to_rfc3339;
use serde::Serialize;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// The firing as sinks receive it (the webhook's body, the command's standard input).
#[derive(Clone, Debug, Serialize)]
pub struct Payload {
    /// The `alert_fired` event's sequence number: a receiver that sees one twice (a retry after a restart)
    /// knows it.
    pub seq: u64,
    pub time: String,
    /// The labd that fired it.
    pub host: String,
    #[serde(flatten)]
    pub fired: AlertFired,
}

impl Payload {
    pub fn new(seq: u64, time: i64, host: &str, fired: &AlertFired) -> Payload {
        Payload {
            seq,
            time: micros_to_rfc3339(time),
            host: host.to_string(),
            fired: fired.clone(),
        }
    }
}

/// How a delivery ended: the outcome, the tries made, the last error.
pub type Outcome = (Delivery, u32, Option<String>);

/// The wait before try `n` (from 1): 0.5 s, 1 s, 2 s, ... at most a minute.
fn backoff(n: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << (n - 1).min(7))).min(Duration::from_secs(60))
}

/// Writes the firing to labd's log (the journal under systemd).
pub fn journal(p: &Payload) {
    tracing::warn!(
        target: "labd::alert",
        rule = %p.fired.rule,
        kind = p.fired.kind.as_str(),
        seq = p.seq,
        "alert: {}",
        p.fired.message
    );
}

/// POSTs the firing until the webhook answers 2xx or the tries run out.
pub async fn webhook(hook: &Webhook, p: &Payload) -> Outcome {
    let body = match serde_json::to_vec(p) {
        Ok(b) => b,
        Err(e) => return (Delivery::Failed, 0, Some(e.to_string())),
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(hook.timeout))
        .http_status_as_error(false)
        .build()
        .into();
    let mut last = None;
    for n in 0..=hook.retries {
        if n > 0 {
            tokio::time::sleep(backoff(n)).await;
        }
        let (agent, hook2, body) = (agent.clone(), hook.clone(), body.clone());
        let tried = tokio::task::spawn_blocking(move || {
            let mut req = agent
                .post(&hook2.url)
                .header("content-type", "application/json")
                .header("user-agent", concat!("labd/", env!("CARGO_PKG_VERSION")));
            for (k, v) in &hook2.headers {
                req = req.header(k, v);
            }
            match req.send(&body[..]) {
                Ok(r) if r.status().is_success() => Ok(()),
                Ok(r) => Err(format!("HTTP {}", r.status())),
                Err(e) => Err(e.to_string()),
            }
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        match tried {
            Ok(()) => return (Delivery::Delivered, n + 1, None),
            Err(e) => {
                tracing::debug!("alert webhook {}: try {} failed: {e}", hook.name, n + 1);
                last = Some(e);
            }
        }
    }
    (Delivery::Failed, hook.retries + 1, last)
}

/// Runs the command until it exits 0 or the tries run out; each try is killed at the timeout.
pub async fn command(sink: &CommandSink, p: &Payload) -> Outcome {
    let input = serde_json::to_vec_pretty(p).unwrap_or_default();
    let mut last = None;
    for n in 0..=sink.retries {
        if n > 0 {
            tokio::time::sleep(backoff(n)).await;
        }
        match run_once(sink, p, &input).await {
            Ok(()) => return (Delivery::Delivered, n + 1, None),
            Err(e) => {
                tracing::debug!("alert command {}: try {} failed: {e}", sink.name, n + 1);
                last = Some(e);
            }
        }
    }
    (Delivery::Failed, sink.retries + 1, last)
}

async fn run_once(sink: &CommandSink, p: &Payload, input: &[u8]) -> Result<(), String> {
    let f = &p.fired;
    let opt = |v: Option<String>| v.unwrap_or_default();
    let mut child = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(&sink.command)
        .env("LABD_ALERT_SEQ", p.seq.to_string())
        .env("LABD_ALERT_RULE", &f.rule)
        .env("LABD_ALERT_KIND", f.kind.as_str())
        .env("LABD_ALERT_MESSAGE", &f.message)
        .env(
            "LABD_ALERT_RUN",
            opt(f.subject.run.as_ref().map(|r| r.0.clone())),
        )
        .env("LABD_ALERT_METRIC", opt(f.subject.metric.clone()))
        .env("LABD_ALERT_SWEEP", opt(f.subject.sweep.clone()))
        .env("LABD_ALERT_TRIAL", opt(f.subject.trial.clone()))
        .env("LABD_ALERT_STEP", opt(f.step.map(|s| s.to_string())))
        .env(
            "LABD_ALERT_VALUE",
            opt(f.value.map(|v| {
                labd_schemas::floats::spell(v)
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string())
            })),
        )
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start /bin/sh: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A command that does not read its input is fine.
        let _ = stdin.write_all(input).await;
    }
    match tokio::time::timeout(sink.timeout, child.wait_with_output()).await {
        Err(_) => Err(format!("still running after {:?}: killed", sink.timeout)),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(out)) if out.status.success() => Ok(()),
        Ok(Ok(out)) => {
            let err = String::from_utf8_lossy(&out.stderr);
            let err = err.trim();
            Err(format!(
                "{}{}",
                out.status,
                if err.is_empty() {
                    String::new()
                } else {
                    format!(": {}", err.chars().take(500).collect::<String>())
                }
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_minute() {
        let waits: Vec<u64> = (1..=9).map(|n| backoff(n).as_millis() as u64).collect();
        assert_eq!(
            waits,
            [500, 1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000]
        );
    }
}
