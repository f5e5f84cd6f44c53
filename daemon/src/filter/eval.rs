//! Evaluating a filter against a registry record: params and summaries walked in the nested JSON (numbers
//! compared by exact value), metric statistics, tags, status with `stale` derived, times.

use super::{Field, Filter, Lit, MetricStat, Op, glob_match};
use crate::views::registry::Record;
use labd_schemas::number::Num;
use labd_schemas::time::parse_rfc3339_micros;
use serde_json::Value;
use std::cmp::Ordering;

/// A field's value in one run.
#[derive(Debug, Clone, PartialEq)]
enum Val<'a> {
    Num(Num),
    Str(std::borrow::Cow<'a, str>),
    Bool(bool),
    Null,
    /// Unix microseconds.
    Time(i64),
    /// Several values (tags): a test holds when it holds for one.
    Many(Vec<Val<'a>>),
    Other,
}

/// What evaluation needs besides the run: the time now and the stale threshold (for `status`).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub now: i64,
    pub stale_after: i64,
}

impl Filter {
    /// Whether the run matches.
    pub fn matches(&self, r: &Record, clock: Clock) -> bool {
        match self {
            Filter::Or(a, b) => a.matches(r, clock) || b.matches(r, clock),
            Filter::And(a, b) => a.matches(r, clock) && b.matches(r, clock),
            Filter::Not(a) => !a.matches(r, clock),
            Filter::Exists(f) => lookup(f, r, clock).is_some_and(|v| v != Val::Null),
            Filter::Compare(f, op, lit) => match lookup(f, r, clock) {
                None => *op == Op::Eq && *lit == Lit::Null,
                Some(v) => any(&v, &|x| compare(x, *op, lit)),
            },
            Filter::In(f, items) => lookup(f, r, clock)
                .is_some_and(|v| any(&v, &|x| items.iter().any(|l| compare(x, Op::Eq, l)))),
            Filter::Regex(f, re) => lookup(f, r, clock)
                .is_some_and(|v| any(&v, &|x| text(x).is_some_and(|t| re.0.is_match(&t)))),
            Filter::Like(f, glob) => lookup(f, r, clock)
                .is_some_and(|v| any(&v, &|x| text(x).is_some_and(|t| glob_match(glob, &t)))),
        }
    }
}

fn any(v: &Val<'_>, test: &dyn Fn(&Val<'_>) -> bool) -> bool {
    match v {
        Val::Many(items) => items.iter().any(test),
        one => test(one),
    }
}

fn text<'a>(v: &'a Val<'a>) -> Option<std::borrow::Cow<'a, str>> {
    match v {
        Val::Str(s) => Some(std::borrow::Cow::Borrowed(s.as_ref())),
        Val::Num(n) => Some(std::borrow::Cow::Owned(n.to_string())),
        Val::Bool(b) => Some(std::borrow::Cow::Owned(b.to_string())),
        _ => None,
    }
}

fn json_val(v: &Value) -> Val<'_> {
    match v {
        Value::Null => Val::Null,
        Value::Bool(b) => Val::Bool(*b),
        Value::Number(n) => Val::Num(Num::of_json(n)),
        Value::String(s) => Val::Str(std::borrow::Cow::Borrowed(s)),
        _ => Val::Other,
    }
}

/// Walks `path` into nested JSON (object keys, list indices).
pub fn walk<'a>(mut v: &'a Value, path: &[String]) -> Option<&'a Value> {
    for part in path {
        v = match v {
            Value::Object(m) => m.get(part)?,
            Value::Array(items) => items.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(v)
}

fn lookup<'a>(f: &Field, r: &'a Record, clock: Clock) -> Option<Val<'a>> {
    use std::borrow::Cow::{Borrowed, Owned};
    Some(match f {
        Field::Id => Val::Str(Borrowed(r.id.as_str())),
        Field::Name => Val::Str(Borrowed(&r.name)),
        Field::Status => Val::Str(Owned(
            r.shown_status(clock.now, clock.stale_after)
                .as_str()
                .to_string(),
        )),
        Field::Host => Val::Str(Borrowed(&r.host)),
        Field::Project => Val::Str(Borrowed(r.project.as_deref()?)),
        Field::Description => Val::Str(Borrowed(r.description.as_deref()?)),
        Field::ConfigHash => Val::Str(Borrowed(&r.config_hash)),
        Field::Tag => Val::Many(r.tags.iter().map(|t| Val::Str(Borrowed(t))).collect()),
        Field::Started => Val::Time(r.started),
        Field::Ended => Val::Time(r.ended?),
        Field::LastActivity => Val::Time(r.last_activity),
        Field::Param(path) => json_val(walk(&r.config, path)?),
        Field::Summary(group, path) => json_val(walk(r.summary_group(group)?, path)?),
        // A glob (`metric.val/* > 0.9`): true when any matching metric is.
        Field::Metric(stat, key) if key.contains(['*', '?']) => Val::Many(
            r.metrics
                .iter()
                .filter(|(k, _)| super::glob_match(key, k))
                .filter_map(|(_, m)| stat_val(*stat, m))
                .collect(),
        ),
        Field::Metric(stat, key) => match r.metrics.get(key) {
            Some(m) => stat_val(*stat, m)?,
            // A final summary's number filters like a metric with one point.
            None => {
                let v = r.summary_value(key)?;
                match stat {
                    MetricStat::Points => Val::Num(Num::Int(1)),
                    _ => Val::Num(Num::Float(v)),
                }
            }
        },
    })
}

/// One statistic of a metric as a value.
fn stat_val(stat: MetricStat, m: &labd_schemas::api::MetricStats) -> Option<Val<'static>> {
    Some(match stat {
        MetricStat::Last => Val::Num(Num::Float(m.last?)),
        MetricStat::Min => Val::Num(Num::Float(m.min?)),
        MetricStat::Max => Val::Num(Num::Float(m.max?)),
        MetricStat::Points => Val::Num(Num::Int(i128::from(m.points))),
    })
}

/// A literal as a time: RFC 3339, a date, or Unix seconds.
fn lit_time(l: &Lit) -> Option<i64> {
    match l {
        Lit::Num(s) => Some((s.as_f64() * 1e6).round() as i64),
        Lit::Str(s) => parse_rfc3339_micros(s).ok().or_else(|| {
            chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc().timestamp_micros())
        }),
        _ => None,
    }
}

fn compare(v: &Val<'_>, op: Op, lit: &Lit) -> bool {
    let ord: Option<Ordering> = match (v, lit) {
        (Val::Null, Lit::Null) => Some(Ordering::Equal),
        (_, Lit::Null) | (Val::Null, _) => return op == Op::Ne,
        (Val::Num(a), Lit::Num(b)) => a.exact_cmp(b),
        (Val::Str(a), Lit::Str(b)) => Some(a.as_ref().cmp(b.as_str())),
        (Val::Bool(a), Lit::Bool(b)) => Some(a.cmp(b)),
        (Val::Time(t), l) => lit_time(l).map(|x| t.cmp(&x)),
        // Numbers written as text in a config ("0.001") still compare as numbers.
        (Val::Str(a), Lit::Num(b)) => Num::parse(a).and_then(|a| a.exact_cmp(b)),
        _ => None,
    };
    let Some(ord) = ord else { return false };
    match op {
        Op::Eq => ord == Ordering::Equal,
        Op::Ne => ord != Ordering::Equal,
        Op::Lt => ord == Ordering::Less,
        Op::Le => ord != Ordering::Greater,
        Op::Gt => ord == Ordering::Greater,
        Op::Ge => ord != Ordering::Less,
    }
}
