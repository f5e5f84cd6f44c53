//! Reading a line: JSON into a map (Python's bare `NaN`/`Infinity` rewritten only when the first parse fails),
//! then the map into a typed line, one function per kind, naming the field at fault in every error. Parts of a
//! line that are wrong but can be left out (one bad metric value) are reported as problems and the rest kept.

use super::{
    ArtifactLine, LineError, MessageLine, MetricsLine, Parsed, RunLine, RunLogLine, StatusLine,
    SummaryLine,
};
use crate::bench::{BenchEndLine, BenchLine, BenchResultLine};
use crate::time::TimeValue;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Parses one line (without its newline). Plain `metrics` lines are typed straight from the text ([`super::fast`]);
/// the rest go through serde_json into a map, and lines with Python's non-standard numbers are rewritten first.
pub fn parse_line(text: &str) -> Result<Parsed, LineError> {
    if let Some(m) = super::fast::metrics(text) {
        return Ok(Parsed {
            line: RunLogLine::Metrics(m),
            problems: Vec::new(),
        });
    }
    general(text)
}

/// The general parser, for every kind of line.
pub(super) fn general(text: &str) -> Result<Parsed, LineError> {
    let obj: Map<String, Value> = match serde_json::from_str(text) {
        Ok(obj) => obj,
        Err(first) => {
            let fixed = quote_non_finite(text).ok_or_else(|| json_error(&first))?;
            serde_json::from_str(&fixed).map_err(|e| json_error(&e))?
        }
    };
    from_object(obj)
}

fn json_error(e: &serde_json::Error) -> LineError {
    LineError(format!(
        "not a JSON object: {} (column {})",
        strip_position(e),
        e.column()
    ))
}

fn strip_position(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.find(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Converts a JSON object into a typed line, naming the field at fault when a field is wrong.
pub fn from_object(mut obj: Map<String, Value>) -> Result<Parsed, LineError> {
    let kind = match obj.remove("kind") {
        Some(Value::String(k)) => k,
        Some(other) => return Err(LineError(format!("\"kind\" must be a string, got {other}"))),
        None => {
            return Err(LineError(
                "missing \"kind\" (run, metrics, message, summary, artifact, status)".into(),
            ));
        }
    };
    let mut problems = Vec::new();
    let line = match kind.as_str() {
        "run" => RunLogLine::Run(run_line(obj)?),
        "metrics" => RunLogLine::Metrics(metrics_line(obj, &mut problems)?),
        "message" => RunLogLine::Message(message_line(obj)?),
        "summary" => RunLogLine::Summary(summary_line(obj)?),
        "artifact" => RunLogLine::Artifact(artifact_line(obj)?),
        "status" => RunLogLine::Status(status_line(obj)?),
        "bench" => RunLogLine::Bench(bench_line(obj)?),
        "bench_result" => RunLogLine::BenchResult(bench_result_line(obj, &mut problems)?),
        "bench_end" => RunLogLine::BenchEnd(bench_end_line(obj)?),
        other => {
            return Err(LineError(format!(
                "unknown kind {other:?} (expected run, metrics, message, summary, artifact, status, bench, bench_result or bench_end)"
            )));
        }
    };
    Ok(Parsed { line, problems })
}

fn run_line(mut obj: Map<String, Value>) -> Result<RunLine, LineError> {
    Ok(RunLine {
        name: opt_string(&mut obj, "name")?,
        config: opt_object(&mut obj, "config")?,
        tags: match obj.remove("tags") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|t| match t {
                    Value::String(s) => Ok(s),
                    other => Err(LineError(format!(
                        "\"tags\" must hold strings, got {}",
                        brief(&other)
                    ))),
                })
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(LineError(format!(
                    "\"tags\" must be an array, got {}",
                    brief(&other)
                )));
            }
        },
        description: opt_string(&mut obj, "description")?,
        time: opt_time(&mut obj, "time")?,
        extra: obj,
    })
}

fn metrics_line(
    mut obj: Map<String, Value>,
    problems: &mut Vec<String>,
) -> Result<MetricsLine, LineError> {
    let values = match obj.remove("values") {
        Some(Value::Object(m)) => numbers(m, "values", problems),
        Some(other) => {
            return Err(LineError(format!(
                "\"values\" must be an object, got {}",
                brief(&other)
            )));
        }
        None => return Err(LineError("metrics line without \"values\"".into())),
    };
    // Custom axes: a null is no value on that axis.
    let x = numbers(opt_object(&mut obj, "x")?, "x", problems)
        .into_iter()
        .filter_map(|(axis, v)| v.map(|v| (axis, v)))
        .collect();
    Ok(MetricsLine {
        split: opt_string(&mut obj, "split")?,
        step: opt_step(&mut obj)?,
        epoch: opt_number(&mut obj, "epoch")?,
        time: opt_time(&mut obj, "time")?,
        x,
        values,
        extra: obj,
    })
}

fn message_line(mut obj: Map<String, Value>) -> Result<MessageLine, LineError> {
    Ok(MessageLine {
        level: opt_string(&mut obj, "level")?,
        text: match obj.remove("text") {
            Some(Value::String(s)) => s,
            Some(Value::Null) | None => {
                return Err(LineError("message line without \"text\"".into()));
            }
            Some(other) => other.to_string(),
        },
        time: opt_time(&mut obj, "time")?,
        extra: obj,
    })
}

fn summary_line(mut obj: Map<String, Value>) -> Result<SummaryLine, LineError> {
    Ok(SummaryLine {
        group: opt_string(&mut obj, "group")?,
        values: match obj.remove("values") {
            Some(v) => v,
            None => return Err(LineError("summary line without \"values\"".into())),
        },
        extra: obj,
    })
}

fn artifact_line(mut obj: Map<String, Value>) -> Result<ArtifactLine, LineError> {
    Ok(ArtifactLine {
        role: opt_string(&mut obj, "role")?,
        path: match opt_string(&mut obj, "path")? {
            Some(p) if !p.is_empty() => p,
            _ => return Err(LineError("artifact line without \"path\"".into())),
        },
        sha256: opt_string(&mut obj, "sha256")?,
        size: opt_whole(&mut obj, "size")?,
        extra: obj,
    })
}

fn status_line(mut obj: Map<String, Value>) -> Result<StatusLine, LineError> {
    Ok(StatusLine {
        status: match opt_string(&mut obj, "status")? {
            Some(s) => s.parse().map_err(LineError)?,
            None => return Err(LineError("status line without \"status\"".into())),
        },
        notes: opt_string(&mut obj, "notes")?,
        extra: obj,
    })
}

fn bench_line(mut obj: Map<String, Value>) -> Result<BenchLine, LineError> {
    Ok(BenchLine {
        bench: bench_id(&mut obj)?,
        suite: opt_string(&mut obj, "suite")?,
        name: opt_string(&mut obj, "name")?,
        config: obj.remove("config").unwrap_or(Value::Null),
        build: opt_object(&mut obj, "build")?,
        planned: opt_whole(&mut obj, "planned")?,
        time: opt_time(&mut obj, "time")?,
        runner: opt_string(&mut obj, "runner")?,
    })
}

fn bench_result_line(
    mut obj: Map<String, Value>,
    problems: &mut Vec<String>,
) -> Result<BenchResultLine, LineError> {
    let bench = bench_id(&mut obj)?;
    let analysis = match opt_string(&mut obj, "analysis")? {
        Some(a) if !a.trim().is_empty() => a,
        _ => return Err(LineError("bench_result line without \"analysis\"".into())),
    };
    let params = opt_object(&mut obj, "params")?;
    let values = match obj.remove("values") {
        Some(Value::Object(m)) => numbers(m, "values", problems),
        Some(other) => {
            return Err(LineError(format!(
                "\"values\" must be an object, got {}",
                brief(&other)
            )));
        }
        None => return Err(LineError("bench_result line without \"values\"".into())),
    };
    let mut samples = BTreeMap::new();
    for (name, v) in opt_object(&mut obj, "samples")? {
        let list: Option<Vec<f64>> = match &v {
            Value::Array(items) => items.iter().map(|x| number(x).flatten()).collect(),
            _ => None,
        };
        match list {
            Some(n) => {
                samples.insert(name, n);
            }
            None => problems.push(format!(
                "samples.{name}: expected an array of numbers, got {}",
                brief(&v)
            )),
        }
    }
    Ok(BenchResultLine {
        bench,
        analysis,
        params,
        values,
        samples,
    })
}

fn bench_end_line(mut obj: Map<String, Value>) -> Result<BenchEndLine, LineError> {
    Ok(BenchEndLine {
        bench: bench_id(&mut obj)?,
        status: match opt_string(&mut obj, "status")? {
            Some(s) => s.parse().map_err(LineError)?,
            None => return Err(LineError("bench_end line without \"status\"".into())),
        },
        message: opt_string(&mut obj, "message")?,
    })
}

/// A map's values as numbers (`None` for null); entries that are not numbers are left out, each reported as a
/// problem under `prefix`.
fn numbers(
    map: Map<String, Value>,
    prefix: &str,
    problems: &mut Vec<String>,
) -> BTreeMap<String, Option<f64>> {
    let mut out = BTreeMap::new();
    for (name, v) in map {
        match number(&v) {
            Some(n) => {
                out.insert(name, n);
            }
            None => problems.push(format!(
                "{prefix}.{name}: expected a number, got {}",
                brief(&v)
            )),
        }
    }
    out
}

/// An optional object (`{}` when absent or null).
fn opt_object(obj: &mut Map<String, Value>, key: &str) -> Result<Map<String, Value>, LineError> {
    match obj.remove(key) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m),
        Some(other) => Err(LineError(format!(
            "{key:?} must be an object, got {}",
            brief(&other)
        ))),
    }
}

/// An optional non-negative integer.
fn opt_whole(obj: &mut Map<String, Value>, key: &str) -> Result<Option<u64>, LineError> {
    match obj.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => Ok(Some(whole_number(&v).ok_or_else(|| {
            LineError(format!(
                "{key:?} must be a non-negative integer, got {}",
                brief(&v)
            ))
        })?)),
    }
}

/// A number, or `Some(None)` for null; `None` when the value is not a number. Accepts the strings
/// `NaN`, `Infinity`, `-Infinity` (what [`quote_non_finite`] makes of Python's bare tokens).
fn number(v: &Value) -> Option<Option<f64>> {
    match v {
        Value::Number(n) => n.as_f64().map(Some),
        Value::Null => Some(None),
        Value::String(s) => match s.as_str() {
            "NaN" | "nan" => Some(Some(f64::NAN)),
            "Infinity" | "inf" => Some(Some(f64::INFINITY)),
            "-Infinity" | "-inf" => Some(Some(f64::NEG_INFINITY)),
            _ => None,
        },
        _ => None,
    }
}

fn bench_id(obj: &mut Map<String, Value>) -> Result<String, LineError> {
    match opt_string(obj, "bench")? {
        Some(id) if crate::bench::valid_id(&id) => Ok(id),
        Some(id) => Err(LineError(format!(
            "\"bench\" {id:?} is not a valid id (letters, digits, '-', '_', '.'; at most 128)"
        ))),
        None => Err(LineError("missing \"bench\" (the benchmark's id)".into())),
    }
}

fn opt_string(obj: &mut Map<String, Value>, key: &str) -> Result<Option<String>, LineError> {
    match obj.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(LineError(format!(
            "{key:?} must be a string, got {}",
            brief(&other)
        ))),
    }
}

fn opt_number(obj: &mut Map<String, Value>, key: &str) -> Result<Option<f64>, LineError> {
    match obj.remove(key) {
        None => Ok(None),
        Some(v) => match number(&v) {
            Some(n) => Ok(n),
            None => Err(LineError(format!(
                "{key:?} must be a number, got {}",
                brief(&v)
            ))),
        },
    }
}

fn opt_step(obj: &mut Map<String, Value>) -> Result<Option<i64>, LineError> {
    match obj.remove("step") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(i) => Ok(Some(i)),
            None => match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(Some(f as i64)),
                _ => Err(LineError(format!("\"step\" must be an integer, got {n}"))),
            },
        },
        Some(other) => Err(LineError(format!(
            "\"step\" must be an integer, got {}",
            brief(&other)
        ))),
    }
}

fn opt_time(obj: &mut Map<String, Value>, key: &str) -> Result<Option<TimeValue>, LineError> {
    let t = match obj.remove(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => TimeValue::Seconds(n.as_f64().unwrap_or(f64::NAN)),
        Some(Value::String(s)) => TimeValue::Rfc3339(s),
        Some(other) => {
            return Err(LineError(format!(
                "{key:?} must be RFC 3339 text or Unix seconds, got {}",
                brief(&other)
            )));
        }
    };
    t.to_micros()
        .map_err(|e| LineError(format!("{key:?}: {e}")))?;
    Ok(Some(t))
}

/// A short rendering of a value for error messages.
fn brief(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 40 {
        let cut = (0..=40).rev().find(|i| s.is_char_boundary(*i)).unwrap_or(0);
        format!("{}...", &s[..cut])
    } else {
        s
    }
}

/// A non-negative integer, also when written as a float with no fraction (`5.0`, as JSON Schema counts it).
fn whole_number(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| *f >= 0.0 && f.fract() == 0.0 && *f <= 9_007_199_254_740_992.0)
            .map(|f| f as u64)
    })
}

/// Rewrites bare `NaN`, `Infinity` and `-Infinity` outside strings into quoted strings; `None` when there were
/// none (so the original error stands).
pub fn quote_non_finite(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len() + 16);
    let mut in_string = false;
    let mut escaped = false;
    let mut changed = false;
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            i += 1;
            continue;
        }
        if b == b'"' {
            in_string = true;
            i += 1;
            continue;
        }
        let token = ["-Infinity", "Infinity", "NaN"]
            .into_iter()
            .find(|t| bytes[i..].starts_with(t.as_bytes()));
        if let Some(t) = token {
            out.push_str(&text[copied..i]);
            out.push('"');
            out.push_str(t);
            out.push('"');
            i += t.len();
            copied = i;
            changed = true;
            continue;
        }
        i += 1;
    }
    if !changed {
        return None;
    }
    out.push_str(&text[copied..]);
    Some(out)
}
