//! Writes a benchmark as lines of the labd run log (`bench`, `bench_result`, `bench_end`; see
//! `labd_schemas::bench`), flushed line by line so that labd ingests them as they come, and reports progress on
//! standard error.

use serde_json::{Map, Value, json};
use std::io::Write;

pub struct Emitter<W: Write> {
    out: W,
    bench: String,
    pub planned: u64,
    pub done: u64,
}

/// A number as the run log takes it: NaN and infinities as the strings labd reads back.
pub fn number(x: f64) -> Value {
    if x.is_nan() {
        json!("NaN")
    } else if x == f64::INFINITY {
        json!("Infinity")
    } else if x == f64::NEG_INFINITY {
        json!("-Infinity")
    } else {
        json!(x)
    }
}

impl<W: Write> Emitter<W> {
    /// Writes the `bench` line.
    pub fn start(
        mut out: W,
        bench: &str,
        name: &str,
        config: Value,
        build: Map<String, Value>,
        planned: u64,
        runner: Option<&str>,
    ) -> std::io::Result<Self> {
        let mut line = json!({
            "kind": "bench", "bench": bench, "suite": "cmr", "name": name, "config": config,
            "build": build, "planned": planned, "time": now(),
        });
        if let Some(r) = runner {
            line["runner"] = json!(r);
        }
        writeln!(out, "{line}")?;
        out.flush()?;
        Ok(Emitter {
            out,
            bench: bench.to_string(),
            planned,
            done: 0,
        })
    }

    /// Writes one measurement.
    pub fn result(
        &mut self,
        analysis: &str,
        params: Value,
        values: &[(&str, f64)],
        samples: &[(&str, &[f64])],
    ) -> std::io::Result<()> {
        let values: Map<String, Value> = values
            .iter()
            .map(|(k, v)| (k.to_string(), number(*v)))
            .collect();
        let samples: Map<String, Value> = samples
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    Value::Array(v.iter().map(|x| number(*x)).collect()),
                )
            })
            .collect();
        let line = json!({
            "kind": "bench_result", "bench": self.bench, "analysis": analysis, "params": params,
            "values": values, "samples": samples,
        });
        writeln!(self.out, "{line}")?;
        self.out.flush()?;
        self.done += 1;
        let where_: Vec<String> = line["params"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| {
                format!(
                    "{k}={}",
                    v.as_str().map(str::to_string).unwrap_or(v.to_string())
                )
            })
            .collect();
        eprintln!(
            "labd-cmr: [{}/{}] {analysis} {}",
            self.done,
            self.planned,
            where_.join(" ")
        );
        Ok(())
    }

    /// Writes the `bench_end` line.
    pub fn end(&mut self, status: &str, message: Option<&str>) -> std::io::Result<()> {
        let line =
            json!({"kind": "bench_end", "bench": self.bench, "status": status, "message": message});
        writeln!(self.out, "{line}")?;
        self.out.flush()
    }
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Median, 25th and 75th percentiles (linear interpolation); NaN for no samples.
pub fn quartiles(samples: &[f64]) -> (f64, f64, f64) {
    let mut v: Vec<f64> = samples.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    v.sort_by(f64::total_cmp);
    let q = |p: f64| {
        let pos = p * (v.len() - 1) as f64;
        let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
        v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
    };
    (q(0.5), q(0.25), q(0.75))
}

#[cfg(test)]
mod tests {
    use super::*;
    use labd_schemas::runlog::{RunLogLine, parse_line};

    #[test]
    fn lines_are_what_the_run_log_parser_reads() {
        let mut buf = Vec::new();
        let mut e = Emitter::start(
            &mut buf,
            "b-1",
            "n",
            json!({"a": 1}),
            Map::new(),
            2,
            Some("labd"),
        )
        .unwrap();
        e.result(
            "overhead",
            json!({"sequence_length": 64}),
            &[("baseline_time", 0.5), ("hit_rate", f64::NAN)],
            &[("baseline_time", &[0.4, 0.6])],
        )
        .unwrap();
        e.end("completed", None).unwrap();
        let text = String::from_utf8(buf).unwrap();
        let lines: Vec<RunLogLine> = text.lines().map(|l| parse_line(l).unwrap().line).collect();
        assert!(matches!(&lines[0], RunLogLine::Bench(b) if b.planned == Some(2)));
        let RunLogLine::BenchResult(r) = &lines[1] else {
            panic!()
        };
        assert!(r.values["hit_rate"].unwrap().is_nan());
        assert_eq!(r.samples["baseline_time"], [0.4, 0.6]);
        assert!(matches!(&lines[2], RunLogLine::BenchEnd(_)));
    }

    #[test]
    fn quartiles_interpolate() {
        assert_eq!(quartiles(&[4.0, 1.0, 3.0, 2.0, 5.0]), (3.0, 2.0, 4.0));
        assert!(quartiles(&[]).0.is_nan());
    }
}
