//! `labctl validate FILE`: checks a run log line by line with the daemon's own parser.

use labd_schemas::runlog::{RunLogLine, parse_line};

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
