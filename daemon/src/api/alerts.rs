//! Alerts over HTTP: the firings (`GET /api/v1/alerts`), the rules in force and the sinks
//! (`GET /api/v1/alerts/rules`), rules set (`POST`) and removed (`DELETE /api/v1/alerts/rules/{name}`) as
//! events. A rule of the configuration file is changed there, not here.

use super::{Error, Result};
use crate::state::AppState;
use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use labd_schemas::EventKind;
use labd_schemas::alert::{AlertRule, AlertRuleRemoved, AlertRuleSet, RuleFrom};
use labd_schemas::api::{AlertList, AlertRecord, AlertRuleInfo, AlertRules};
use labd_schemas::time::micros_to_rfc3339;
use serde::Deserialize;
use std::sync::Arc;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsQuery {
    /// Only firings whose episode is open.
    #[serde(default)]
    open: bool,
    /// Only this rule's.
    rule: Option<String>,
    /// Only those about this run (id).
    run: Option<String>,
    /// Only those about this sweep.
    sweep: Option<String>,
    /// Only firings after this sequence number.
    after: Option<u64>,
    /// At most this many, newest first (default 100).
    limit: Option<usize>,
}

pub async fn list(
    State(s): State<Arc<AppState>>,
    q: std::result::Result<Query<AlertsQuery>, QueryRejection>,
) -> Result<Json<AlertList>> {
    let Query(q) = q?;
    let v = s.views();
    let a = &v.alerts;
    let alerts = a
        .firings
        .iter()
        .rev()
        .filter(|f| {
            (!q.open || f.open)
                && q.rule.as_ref().is_none_or(|r| &f.fired.rule == r)
                && q.run
                    .as_ref()
                    .is_none_or(|r| f.fired.subject.run.as_ref().is_some_and(|x| &x.0 == r))
                && q.sweep
                    .as_ref()
                    .is_none_or(|sw| f.fired.subject.sweep.as_ref() == Some(sw))
                && q.after.is_none_or(|after| f.seq > after)
        })
        .take(q.limit.unwrap_or(100))
        .map(|f| AlertRecord {
            seq: f.seq,
            time: micros_to_rfc3339(f.time),
            fired: f.fired.clone(),
            open: f.open,
            host: f.host.clone(),
            deliveries: f.deliveries.values().cloned().collect(),
        })
        .collect();
    Ok(Json(AlertList {
        fired: a.fired,
        open: a.open(),
        pending: a.pending.len(),
        alerts,
    }))
}

pub async fn rules(State(s): State<Arc<AppState>>) -> Json<AlertRules> {
    let v = s.views();
    Json(AlertRules {
        rules: v
            .alerts
            .rules
            .values()
            .map(|r| AlertRuleInfo {
                rule: r.rule.clone(),
                from: r.from.as_str().into(),
                since: micros_to_rfc3339(r.since),
                fired: r.fired,
            })
            .collect(),
        sinks: s.config.alerts.sinks(),
    })
}

/// Sets a rule (a new one, or one set over the API before under the same name).
pub async fn set(
    State(s): State<Arc<AppState>>,
    body: std::result::Result<Json<AlertRule>, JsonRejection>,
) -> Result<(StatusCode, Json<AlertRuleInfo>)> {
    let Json(rule) = body?;
    s.config.alerts.check_rule(&rule).map_err(Error::bad)?;
    from_api(&s, &rule.name, false)?;
    let name = rule.name.clone();
    let kind = EventKind::AlertRuleSet(Box::new(AlertRuleSet {
        rule,
        from: RuleFrom::Api,
    }));
    super::sweeps::append(&s, vec![kind], "POST /api/v1/alerts/rules").await?;
    let v = s.views();
    let r = v
        .alerts
        .rules
        .get(&name)
        .ok_or_else(|| Error::internal("the rule was recorded but is not in the view"))?;
    Ok((
        StatusCode::CREATED,
        Json(AlertRuleInfo {
            rule: r.rule.clone(),
            from: r.from.as_str().into(),
            since: micros_to_rfc3339(r.since),
            fired: r.fired,
        }),
    ))
}

pub async fn remove(
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<StatusCode> {
    from_api(&s, &name, true)?;
    let kind = EventKind::AlertRuleRemoved(AlertRuleRemoved {
        name: name.clone(),
        from: RuleFrom::Api,
    });
    super::sweeps::append(
        &s,
        vec![kind],
        &format!("DELETE /api/v1/alerts/rules/{name}"),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Refuses to touch a rule of the configuration file (409), and, with `must_exist`, a rule there is none of
/// (404).
fn from_api(s: &AppState, name: &str, must_exist: bool) -> Result<()> {
    let v = s.views();
    match v.alerts.rules.get(name) {
        Some(r) if r.from == RuleFrom::Config => Err(Error(
            StatusCode::CONFLICT,
            format!(
                "rule {name:?} comes from the configuration file ([[alerts.rules]]); change it there and restart labd"
            ),
        )),
        None if must_exist => Err(Error::not_found(format!("no alert rule {name:?}"))),
        _ => Ok(()),
    }
}
