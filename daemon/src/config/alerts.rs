//! `[alerts]`: the rules of the configuration file and the sinks firings go to (the journal, webhooks,
//! commands).

use super::ConfigError;
use labd_schemas::alert::AlertRule;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// `[alerts]` in the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AlertsFile {
    /// Write every firing to labd's log (the journal under systemd); default true.
    journal: Option<bool>,
    #[serde(default)]
    rules: Vec<AlertRule>,
    #[serde(default)]
    webhooks: Vec<WebhookFile>,
    #[serde(default)]
    commands: Vec<CommandFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookFile {
    name: String,
    url: String,
    /// Tries after the first failed one (default 5), waiting 0.5 s, 1 s, 2 s, ... (at most 60 s) between.
    retries: Option<u32>,
    /// Seconds each try may take (default 5).
    timeout: Option<f64>,
    /// Extra request headers (e.g. `Authorization`).
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandFile {
    name: String,
    /// Run with `/bin/sh -c`, the firing as JSON on its standard input and in `LABD_ALERT_*` variables.
    command: String,
    /// Seconds it may run (default 30); then it is killed and the try failed.
    timeout: Option<f64>,
    /// Tries after the first failed one (default 2).
    retries: Option<u32>,
}

/// Where firings go, and the rules of the file.
#[derive(Clone, Debug, Default)]
pub struct Alerts {
    pub journal: bool,
    pub rules: Vec<AlertRule>,
    pub webhooks: Vec<Webhook>,
    pub commands: Vec<CommandSink>,
}

#[derive(Clone, Debug)]
pub struct Webhook {
    pub name: String,
    pub url: String,
    pub retries: u32,
    pub timeout: Duration,
    pub headers: Vec<(String, String)>,
}

#[derive(Clone, Debug)]
pub struct CommandSink {
    pub name: String,
    pub command: String,
    pub timeout: Duration,
    pub retries: u32,
}

impl Alerts {
    /// The names of every sink (`journal` first when on).
    pub fn sinks(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.journal {
            out.push("journal".to_string());
        }
        out.extend(self.webhooks.iter().map(|w| w.name.clone()));
        out.extend(self.commands.iter().map(|c| c.name.clone()));
        out
    }

    /// A rule's problems, its sinks included (they must be configured).
    pub fn check_rule(&self, rule: &AlertRule) -> Result<(), String> {
        rule.check()?;
        if let Some(sinks) = &rule.sinks {
            let known = self.sinks();
            if let Some(bad) = sinks.iter().find(|s| !known.contains(s)) {
                return Err(format!(
                    "rule {:?}: sinks: no sink {bad:?} is configured (configured: {})",
                    rule.name,
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ));
            }
        }
        Ok(())
    }
}

fn invalid(reason: String) -> ConfigError {
    ConfigError::Invalid {
        setting: "alerts",
        reason,
    }
}

fn secs(what: &str, s: Option<f64>, default: f64) -> Result<Duration, ConfigError> {
    let s = s.unwrap_or(default);
    Duration::try_from_secs_f64(s)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| invalid(format!("{what}: {s} is not a positive number of seconds")))
}

/// Validates `[alerts]`: rules (each field, unique names, known sinks), sinks (unique names, not `journal`,
/// webhooks with an http(s) URL).
pub(super) fn resolve(file: AlertsFile) -> Result<Alerts, ConfigError> {
    let mut names = BTreeSet::new();
    let mut out = Alerts {
        journal: file.journal.unwrap_or(true),
        ..Default::default()
    };
    let mut sink_name = |name: &str, what: &str| {
        if name.is_empty() || name == "journal" || !names.insert(name.to_string()) {
            Err(invalid(format!(
                "{what} {name:?}: a sink needs a name of its own (not empty, not \"journal\", not another sink's)"
            )))
        } else {
            Ok(())
        }
    };
    for w in file.webhooks {
        sink_name(&w.name, "webhook")?;
        if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
            return Err(invalid(format!(
                "webhook {:?}: url {:?} must start with http:// or https://",
                w.name, w.url
            )));
        }
        out.webhooks.push(Webhook {
            timeout: secs(&format!("webhook {:?}: timeout", w.name), w.timeout, 5.0)?,
            retries: w.retries.unwrap_or(5),
            headers: w.headers.into_iter().collect(),
            name: w.name,
            url: w.url,
        });
    }
    for c in file.commands {
        sink_name(&c.name, "command")?;
        if c.command.trim().is_empty() {
            return Err(invalid(format!("command {:?}: command is empty", c.name)));
        }
        out.commands.push(CommandSink {
            timeout: secs(&format!("command {:?}: timeout", c.name), c.timeout, 30.0)?,
            retries: c.retries.unwrap_or(2),
            name: c.name,
            command: c.command,
        });
    }
    let mut rule_names = BTreeSet::new();
    for rule in file.rules {
        out.check_rule(&rule).map_err(invalid)?;
        if !rule_names.insert(rule.name.clone()) {
            return Err(invalid(format!("two rules are named {:?}", rule.name)));
        }
        out.rules.push(rule);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Alerts, String> {
        let file: AlertsFile = toml::from_str(text).map_err(|e| e.to_string())?;
        resolve(file).map_err(|e| e.to_string())
    }

    #[test]
    fn rules_and_sinks_are_checked() {
        let a = parse(
            r#"
            [[rules]]
            name = "nan"
            kind = "nan"
            metric = "loss*"
            sinks = ["ops", "journal"]
            [[webhooks]]
            name = "ops"
            url = "http://127.0.0.1:9/hook"
            headers = { Authorization = "Bearer x" }
            "#,
        )
        .unwrap();
        assert_eq!(a.sinks(), ["journal", "ops"]);
        assert_eq!(a.webhooks[0].retries, 5);
        let e =
            parse("[[rules]]\nname = \"n\"\nkind = \"nan\"\nmetric = \"l\"\nsinks = [\"pager\"]")
                .unwrap_err();
        assert!(e.contains("no sink \"pager\""), "{e}");
        let e = parse("[[webhooks]]\nname = \"journal\"\nurl = \"http://x\"").unwrap_err();
        assert!(e.contains("journal"), "{e}");
        let e = parse("[[webhooks]]\nname = \"w\"\nurl = \"ftp://x\"").unwrap_err();
        assert!(e.contains("http://"), "{e}");
        let e = parse("[[rules]]\nname = \"s\"\nkind = \"stall\"").unwrap_err();
        assert!(e.contains("after"), "{e}");
        let e = parse(
            "[[rules]]\nname = \"f\"\nkind = \"failed\"\n[[rules]]\nname = \"f\"\nkind = \"failed\"",
        )
        .unwrap_err();
        assert!(e.contains("two rules"), "{e}");
    }
}
