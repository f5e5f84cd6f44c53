//! The labd run log: JSONL, one run per file or several runs each begun by its own `run` line.
//!
//! ```text
//! {"kind":"run","name":"baseline","config":{"optim":{"lr":0.001}},"tags":["a"],"description":"...","time":T}
//! {"kind":"metrics","split":"train","step":120,"epoch":1,"time":T,"x":{"tokens":61440},"values":{"loss":0.52}}
//! {"kind":"message","level":"info","text":"..."}
//! {"kind":"summary","group":"final","values":{...any JSON...}}
//! {"kind":"artifact","role":"checkpoint","path":"checkpoints/best","sha256":"..."}
//! {"kind":"status","status":"completed","notes":"..."}
//! ```
//! `T` is RFC 3339 text or Unix seconds. Unknown fields are kept. Python's `NaN`, `Infinity` and `-Infinity`
//! are accepted as values; `null` is a missing value. [`parse_line`] is the one parser everybody uses (the
//! daemon's ingestion, `labctl validate`); the types here also generate the JSON Schema in `schemas/json/`.

use crate::time::TimeValue;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// One line of a run log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RunLogLine {
    Run(RunLine),
    Metrics(MetricsLine),
    Message(MessageLine),
    Summary(SummaryLine),
    Artifact(ArtifactLine),
    Status(StatusLine),
    /// Begins a benchmark (see [`crate::bench`]); does not touch the current run.
    Bench(crate::bench::BenchLine),
    /// One measurement of a benchmark.
    BenchResult(crate::bench::BenchResultLine),
    /// A benchmark's final status.
    BenchEnd(crate::bench::BenchEndLine),
}

/// Begins a run; the lines after it belong to it until the next `run` line.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RunLine {
    /// Human name of the run; defaults to the file's name.
    #[serde(default)]
    pub name: Option<String>,
    /// Nested configuration (hyperparameters); `{}` when absent.
    #[serde(default)]
    pub config: Map<String, Value>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// Start time; defaults to the time labd reads the line.
    #[serde(default)]
    pub time: Option<TimeValue>,
    /// Fields labd does not know, kept as given.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Metric values at one position of the x-axes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MetricsLine {
    /// `train`, `val`, `eval`, ...; absent for metrics without a split.
    #[serde(default)]
    pub split: Option<String>,
    #[serde(default)]
    pub step: Option<i64>,
    #[serde(default)]
    pub epoch: Option<f64>,
    #[serde(default)]
    pub time: Option<TimeValue>,
    /// Custom x-axes (name → number), e.g. `{"tokens": 61440}`.
    #[serde(default)]
    pub x: BTreeMap<String, f64>,
    /// Metric name → number (`NaN`, `Infinity`, `-Infinity` allowed; `null` means missing).
    pub values: BTreeMap<String, Option<f64>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MessageLine {
    /// `debug`, `info`, `warning`, `error`; defaults to `info`.
    #[serde(default)]
    pub level: Option<String>,
    pub text: String,
    #[serde(default)]
    pub time: Option<TimeValue>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SummaryLine {
    /// Name of the group, e.g. `final`, `test`, `bias`, `xai`; defaults to `final`.
    #[serde(default)]
    pub group: Option<String>,
    /// Any JSON.
    pub values: Value,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ArtifactLine {
    /// What the file is, e.g. `checkpoint`, `predictions`; defaults to `artifact`.
    #[serde(default)]
    pub role: Option<String>,
    /// Absolute, or relative to the run log's folder.
    pub path: String,
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StatusLine {
    /// `running`, `completed`, `failed` or `interrupted`.
    pub status: crate::RunStatus,
    #[serde(default)]
    pub notes: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A parsed line and the problems found in parts of it that were left out (the rest is kept).
#[derive(Debug, PartialEq)]
pub struct Parsed {
    pub line: RunLogLine,
    pub problems: Vec<String>,
}

/// Why a whole line could not be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct LineError(pub String);

/// Parses one line (without its newline). Fast path: plain serde_json into a map; lines with Python's
/// non-standard numbers are rewritten first.
pub fn parse_line(text: &str) -> Result<Parsed, LineError> {
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
    let mut problems = Vec::new();
    let kind = match obj.remove("kind") {
        Some(Value::String(k)) => k,
        Some(other) => return Err(LineError(format!("\"kind\" must be a string, got {other}"))),
        None => {
            return Err(LineError(
                "missing \"kind\" (run, metrics, message, summary, artifact, status)".into(),
            ));
        }
    };
    let line = match kind.as_str() {
        "run" => RunLogLine::Run(RunLine {
            name: opt_string(&mut obj, "name")?,
            config: match obj.remove("config") {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(m)) => m,
                Some(other) => {
                    return Err(LineError(format!(
                        "\"config\" must be an object, got {}",
                        brief(&other)
                    )));
                }
            },
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
        }),
        "metrics" => {
            let values = match obj.remove("values") {
                Some(Value::Object(m)) => m,
                Some(other) => {
                    return Err(LineError(format!(
                        "\"values\" must be an object, got {}",
                        brief(&other)
                    )));
                }
                None => return Err(LineError("metrics line without \"values\"".into())),
            };
            let mut typed = BTreeMap::new();
            for (name, v) in values {
                match number(&v) {
                    Some(n) => {
                        typed.insert(name, n);
                    }
                    None => problems.push(format!(
                        "values.{name}: expected a number, got {}",
                        brief(&v)
                    )),
                }
            }
            let mut x = BTreeMap::new();
            match obj.remove("x") {
                None | Some(Value::Null) => {}
                Some(Value::Object(m)) => {
                    for (axis, v) in m {
                        match number(&v) {
                            Some(Some(n)) => {
                                x.insert(axis, n);
                            }
                            Some(None) => {}
                            None => problems
                                .push(format!("x.{axis}: expected a number, got {}", brief(&v))),
                        }
                    }
                }
                Some(other) => {
                    return Err(LineError(format!(
                        "\"x\" must be an object, got {}",
                        brief(&other)
                    )));
                }
            }
            RunLogLine::Metrics(MetricsLine {
                split: opt_string(&mut obj, "split")?,
                step: opt_step(&mut obj)?,
                epoch: opt_number(&mut obj, "epoch")?,
                time: opt_time(&mut obj, "time")?,
                x,
                values: typed,
                extra: obj,
            })
        }
        "message" => RunLogLine::Message(MessageLine {
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
        }),
        "summary" => RunLogLine::Summary(SummaryLine {
            group: opt_string(&mut obj, "group")?,
            values: match obj.remove("values") {
                Some(v) => v,
                None => return Err(LineError("summary line without \"values\"".into())),
            },
            extra: obj,
        }),
        "artifact" => RunLogLine::Artifact(ArtifactLine {
            role: opt_string(&mut obj, "role")?,
            path: match opt_string(&mut obj, "path")? {
                Some(p) if !p.is_empty() => p,
                _ => return Err(LineError("artifact line without \"path\"".into())),
            },
            sha256: opt_string(&mut obj, "sha256")?,
            size: match obj.remove("size") {
                None | Some(Value::Null) => None,
                Some(v) => Some(whole_number(&v).ok_or_else(|| {
                    LineError(format!(
                        "\"size\" must be a non-negative integer, got {}",
                        brief(&v)
                    ))
                })?),
            },
            extra: obj,
        }),
        "status" => RunLogLine::Status(StatusLine {
            status: match opt_string(&mut obj, "status")? {
                Some(s) => s.parse().map_err(LineError)?,
                None => return Err(LineError("status line without \"status\"".into())),
            },
            notes: opt_string(&mut obj, "notes")?,
            extra: obj,
        }),
        "bench" => RunLogLine::Bench(crate::bench::BenchLine {
            bench: bench_id(&mut obj)?,
            suite: opt_string(&mut obj, "suite")?,
            name: opt_string(&mut obj, "name")?,
            config: obj.remove("config").unwrap_or(Value::Null),
            build: match obj.remove("build") {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(m)) => m,
                Some(other) => {
                    return Err(LineError(format!(
                        "\"build\" must be an object, got {}",
                        brief(&other)
                    )));
                }
            },
            planned: match obj.remove("planned") {
                None | Some(Value::Null) => None,
                Some(v) => Some(whole_number(&v).ok_or_else(|| {
                    LineError(format!(
                        "\"planned\" must be a non-negative integer, got {}",
                        brief(&v)
                    ))
                })?),
            },
            time: opt_time(&mut obj, "time")?,
            runner: opt_string(&mut obj, "runner")?,
        }),
        "bench_result" => {
            let bench = bench_id(&mut obj)?;
            let analysis = match opt_string(&mut obj, "analysis")? {
                Some(a) if !a.trim().is_empty() => a,
                _ => return Err(LineError("bench_result line without \"analysis\"".into())),
            };
            let params = match obj.remove("params") {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(m)) => m,
                Some(other) => {
                    return Err(LineError(format!(
                        "\"params\" must be an object, got {}",
                        brief(&other)
                    )));
                }
            };
            let mut values = BTreeMap::new();
            match obj.remove("values") {
                Some(Value::Object(m)) => {
                    for (name, v) in m {
                        match number(&v) {
                            Some(n) => {
                                values.insert(name, n);
                            }
                            None => problems.push(format!(
                                "values.{name}: expected a number, got {}",
                                brief(&v)
                            )),
                        }
                    }
                }
                Some(other) => {
                    return Err(LineError(format!(
                        "\"values\" must be an object, got {}",
                        brief(&other)
                    )));
                }
                None => return Err(LineError("bench_result line without \"values\"".into())),
            }
            let mut samples = BTreeMap::new();
            match obj.remove("samples") {
                None | Some(Value::Null) => {}
                Some(Value::Object(m)) => {
                    for (name, v) in m {
                        let numbers: Option<Vec<f64>> = match &v {
                            Value::Array(items) => {
                                items.iter().map(|x| number(x).flatten()).collect()
                            }
                            _ => None,
                        };
                        match numbers {
                            Some(n) => {
                                samples.insert(name, n);
                            }
                            None => problems.push(format!(
                                "samples.{name}: expected an array of numbers, got {}",
                                brief(&v)
                            )),
                        }
                    }
                }
                Some(other) => {
                    return Err(LineError(format!(
                        "\"samples\" must be an object, got {}",
                        brief(&other)
                    )));
                }
            }
            RunLogLine::BenchResult(crate::bench::BenchResultLine {
                bench,
                analysis,
                params,
                values,
                samples,
            })
        }
        "bench_end" => RunLogLine::BenchEnd(crate::bench::BenchEndLine {
            bench: bench_id(&mut obj)?,
            status: match opt_string(&mut obj, "status")? {
                Some(s) => s.parse().map_err(LineError)?,
                None => return Err(LineError("bench_end line without \"status\"".into())),
            },
            message: opt_string(&mut obj, "message")?,
        }),
        other => {
            return Err(LineError(format!(
                "unknown kind {other:?} (expected run, metrics, message, summary, artifact, status, bench, bench_result or bench_end)"
            )));
        }
    };
    Ok(Parsed { line, problems })
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

/// The JSON Schema of one run-log line, as shipped in `schemas/json/runlog-line.schema.json`.
pub fn json_schema() -> Value {
    let schema = schemars::schema_for!(RunLogLine);
    serde_json::to_value(schema).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests;
