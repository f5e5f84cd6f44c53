//! `labctl validate FILE`: asks labd to check a file in any format it reads, or, when labd is not up, checks a
//! run log line by line here with the daemon's own parser.

use crate::client::Client;
use crate::table::print_json;
use anyhow::{Context, Result};
use clap::Args;
use labd_schemas::runlog::{RunLogLine, parse_line};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// Arguments of `labctl validate`.
#[derive(Args)]
pub struct ValidateArgs {
    file: PathBuf,
}

/// What a check found: the problems, the runs and metric points seen, and the format the file was read as.
struct Checked {
    problems: Vec<Problem>,
    runs: u64,
    points: u64,
    format: String,
}

/// `labctl validate`: prints each problem with its line, then a count; exit 1 when there are problems.
pub fn run(c: &Client, args: ValidateArgs, json: bool) -> Result<i32> {
    let file = args.file;
    let bytes = std::fs::read(&file).with_context(|| format!("{}", file.display()))?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tail = path_tail(&file);
    // labd checks every format with its own sources; a run log is checked here when labd is not up.
    let run_log =
        (name.ends_with(".jsonl") || name.ends_with(".ndjson")) && name != "json_out.jsonl";
    let Checked {
        problems,
        runs,
        points,
        format,
    } = if run_log && !c.reachable() {
        let (problems, runs, points) = check(&bytes);
        Checked {
            problems,
            runs,
            points,
            format: "runlog".to_string(),
        }
    } else {
        ask_labd(c, &tail, &bytes)?
    };
    if json {
        let list: Vec<Value> = problems
            .iter()
            .map(|(l, m)| json!({ "line": l, "problem": m }))
            .collect();
        print_json(
            &json!({ "file": file, "format": format, "runs": runs, "points": points, "problems": list }),
        )?;
    } else {
        for (line, msg) in &problems {
            println!("{}:{line}: {msg}", file.display());
        }
        println!(
            "{} ({format}): {runs} runs, {points} points, {} problems",
            file.display(),
            problems.len()
        );
    }
    Ok(if problems.is_empty() { 0 } else { 1 })
}

/// The file's name with a few of its folders: some formats are known by them (`mlruns/<exp>/<run>/...`).
fn path_tail(file: &Path) -> String {
    let tail: Vec<String> = std::fs::canonicalize(file)
        .unwrap_or_else(|_| file.to_path_buf())
        .iter()
        .rev()
        .take(6)
        .map(|p| p.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .filter(|p| p != "/")
        .collect();
    tail.join("/")
}

/// Has labd check the bytes as the file `name` (its path's tail) would be read.
fn ask_labd(c: &Client, name: &str, bytes: &[u8]) -> Result<Checked> {
    let v: Value = c.post_bytes("/validate", &[("name", name.to_string())], bytes)?;
    let problems = v["problems"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    (
                        p["line"].as_u64().unwrap_or(0),
                        p["problem"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Checked {
        problems,
        runs: v["runs"].as_u64().unwrap_or(0),
        points: v["points"].as_u64().unwrap_or(0),
        format: v["format"].as_str().unwrap_or("").to_string(),
    })
}

/// A problem in a file: line (0 for the whole file) and what is wrong.
pub type Problem = (u64, String);

/// Checks the text of a run log; answers the problems and the number of runs and metric points seen.
pub fn check(bytes: &[u8]) -> (Vec<Problem>, u64, u64) {
    let mut problems = Vec::new();
    let (mut runs, mut points) = (0u64, 0u64);
    if let Some(at) = memchr_nul(bytes) {
        problems.push((
            0,
            format!("binary file (NUL byte at byte {at}); labd would skip it"),
        ));
        return (problems, 0, 0);
    }
    let mut seen_run = false;
    let ends_with_newline = bytes.last().is_none_or(|b| *b == b'\n');
    let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    let count = lines.len();
    for (i, raw) in lines.into_iter().enumerate() {
        let n = i as u64 + 1;
        if i + 1 == count && raw.is_empty() {
            break;
        }
        let Ok(text) = std::str::from_utf8(raw) else {
            problems.push((n, "line is not valid UTF-8".into()));
            continue;
        };
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        match parse_line(text) {
            Err(e) => problems.push((n, e.0)),
            Ok(p) => {
                for problem in p.problems {
                    problems.push((n, problem));
                }
                match p.line {
                    RunLogLine::Run(_) => {
                        runs += 1;
                        seen_run = true;
                    }
                    RunLogLine::Metrics(m) => {
                        points += m.values.values().filter(|v| v.is_some()).count() as u64;
                        if !seen_run {
                            problems.push((n, "metrics before any \"run\" line: labd files them under an implicit run named after the file".into()));
                            seen_run = true;
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    if !ends_with_newline {
        problems.push((
            count as u64,
            "last line has no newline: labd waits for it until the file has been quiet for a while"
                .into(),
        ));
    }
    (problems, runs, points)
}

fn memchr_nul(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|b| *b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_each_problem_with_its_line() {
        let text = b"{\"kind\":\"run\",\"name\":\"a\"}\n{\"kind\":\"metrics\",\"values\":{\"x\":1}}\nnope\n{\"kind\":\"status\",\"status\":\"ok\"}";
        let (problems, runs, points) = check(text);
        assert_eq!((runs, points), (1, 1));
        let lines: Vec<u64> = problems.iter().map(|p| p.0).collect();
        assert_eq!(lines, vec![3, 4, 4]);
        assert!(problems[1].1.contains("unknown status"));
    }
}
