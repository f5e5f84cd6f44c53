//! What Slurm says of the jobs: `squeue --json` (every version's shape: 22.05 writes plain numbers and strings,
//! 23.02 and later `{"set", "number"}` objects and state lists; 22.05 ignores `-j`, so the answer is filtered
//! here) and `sacct -P` where accounting is on (what each task used). Pure parsing, tested on the outputs of
//! real versions.

use super::Site;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

/// One array task (or one plain job, `task` 0) as Slurm reports it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Task {
    /// The array job's id (a plain job's own).
    pub job: String,
    pub task: u32,
    pub name: String,
    /// `PENDING`, `RUNNING`, `COMPLETED`, `FAILED`, `TIMEOUT`, `CANCELLED`, `OUT_OF_MEMORY`, `NODE_FAIL`,
    /// `PREEMPTED`, ...
    pub state: String,
    pub node: Option<String>,
    /// From the job's exit status, where it ended.
    pub code: Option<i32>,
    pub signal: Option<i32>,
    /// Seconds it ran, where it started and ended.
    pub secs: Option<f64>,
    /// Where accounting is on: the task's peak resident memory and CPU time.
    pub max_rss: Option<u64>,
    pub cpu_secs: Option<f64>,
    pub reason: Option<String>,
}

impl Task {
    /// Whether Slurm is done with it.
    pub fn ended(&self) -> bool {
        !matches!(
            self.state.as_str(),
            "PENDING"
                | "RUNNING"
                | "COMPLETING"
                | "CONFIGURING"
                | "REQUEUED"
                | "REQUEUE_HOLD"
                | "REQUEUE_FED"
                | "RESIZING"
                | "SIGNALING"
                | "STAGE_OUT"
                | "SUSPENDED"
                | "STOPPED"
                | "RESV_DEL_HOLD"
                | "SPECIAL_EXIT"
        )
    }

    pub fn running(&self) -> bool {
        matches!(self.state.as_str(), "RUNNING" | "COMPLETING")
    }
}

/// A number written plainly or as Slurm's `{"set": true, "number": n}` (23.02 and later).
fn number(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::Object(o) => {
            if o.get("set").and_then(Value::as_bool) == Some(false) {
                return None;
            }
            o.get("number").and_then(number)
        }
        _ => None,
    }
}

/// A state written as a string (22.05) or a list of flags whose first is the state (23.02 and later).
fn state(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .first()
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        _ => String::new(),
    }
}

/// Exit code and signal: 22.05 gives the raw wait status; later versions an object with `return_code` and
/// `signal.id`.
fn exit(v: &Value) -> (Option<i32>, Option<i32>) {
    match v {
        Value::Number(n) => match n.as_i64() {
            Some(status) => {
                let signal = (status & 0x7f) as i32;
                if signal != 0 {
                    (None, Some(signal))
                } else {
                    (Some(((status >> 8) & 0xff) as i32), None)
                }
            }
            None => (None, None),
        },
        Value::Object(o) => {
            let code = o.get("return_code").and_then(number).map(|c| c as i32);
            let signal = o
                .get("signal")
                .and_then(|s| s.get("id"))
                .and_then(number)
                .map(|s| s as i32)
                .filter(|s| *s != 0);
            (code, signal)
        }
        _ => (None, None),
    }
}

/// Expands an array's task list (`0-11%4`, `3,5-7`, `[0-3]`) into its indices (at most `limit`).
pub fn tasks_of(spec: &str, limit: usize) -> Vec<u32> {
    let spec = spec.trim().trim_start_matches('[').trim_end_matches(']');
    let spec = spec.split('%').next().unwrap_or_default();
    let mut out = Vec::new();
    for part in spec.split(',') {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse::<u32>(), b.trim().parse::<u32>()),
            None => (part.trim().parse::<u32>(), part.trim().parse::<u32>()),
        };
        if let (Ok(a), Ok(b)) = (a, b) {
            for i in a..=b {
                if out.len() >= limit {
                    return out;
                }
                out.push(i);
            }
        }
    }
    out
}

/// The tasks of `squeue --json` whose array job id and name `keep` accepts. A pending array's tasks not yet
/// split from it come as one record listing them; each is returned as its own pending task.
pub fn parse_squeue(text: &str, keep: impl Fn(&str, &str) -> bool) -> Result<Vec<Task>, String> {
    let v: Value =
        serde_json::from_str(text).map_err(|e| format!("squeue --json gave no JSON: {e}"))?;
    let Some(list) = v.get("jobs").and_then(Value::as_array) else {
        let errors = v.get("errors").map(Value::to_string).unwrap_or_default();
        return Err(format!("squeue --json gave no job list {errors}"));
    };
    let mut out = Vec::new();
    for j in list {
        let id = number(&j["job_id"]).unwrap_or(0);
        let array = number(&j["array_job_id"]).filter(|a| *a != 0);
        let job = array.unwrap_or(id).to_string();
        if !keep(&job, j["name"].as_str().unwrap_or_default()) {
            continue;
        }
        let start = number(&j["start_time"]).filter(|t| *t > 0);
        let end = number(&j["end_time"]).filter(|t| *t > 0);
        let (code, signal) = exit(&j["exit_code"]);
        let base = Task {
            job,
            task: 0,
            name: j["name"].as_str().unwrap_or_default().to_string(),
            state: state(&j["job_state"]),
            node: j["nodes"]
                .as_str()
                .filter(|n| !n.is_empty())
                .map(String::from),
            code,
            signal,
            secs: None,
            max_rss: None,
            cpu_secs: None,
            reason: j["state_reason"]
                .as_str()
                .filter(|r| !r.is_empty() && *r != "None")
                .map(String::from),
        };
        match number(&j["array_task_id"]) {
            Some(task) if array.is_some() => {
                let ended = base.ended();
                out.push(Task {
                    task: task as u32,
                    secs: match (start, end) {
                        (Some(s), Some(e)) if ended => Some((e - s).max(0) as f64),
                        _ => None,
                    },
                    ..base
                });
            }
            _ => match j["array_task_string"].as_str().filter(|s| !s.is_empty()) {
                // The tasks still pending as one record.
                Some(spec) => out.extend(tasks_of(spec, 1_000_000).into_iter().map(|t| Task {
                    task: t,
                    ..base.clone()
                })),
                None => out.push(base),
            },
        }
    }
    Ok(out)
}

/// Longest wait for one of Slurm's commands (the controller answers within its `MessageTimeout`, 10 s by
/// default).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs one of Slurm's commands; its standard output, or why it failed (its own message).
async fn run(program: &Path, args: &[String]) -> Result<String, String> {
    let out = tokio::time::timeout(
        COMMAND_TIMEOUT,
        tokio::process::Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output(),
    )
    .await
    .map_err(|_| {
        format!(
            "{} did not answer in {}s",
            program.display(),
            COMMAND_TIMEOUT.as_secs()
        )
    })?
    .map_err(|e| format!("{}: {e}", program.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} {}: {}",
            program.display(),
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether accounting answers (`sacct` fails where slurmdbd is not configured).
pub async fn accounting(site: &Site) -> bool {
    let args = ["-n", "-P", "-X", "--format=JobID", "-j", "1"].map(String::from);
    run(&site.sacct, &args).await.is_ok()
}

/// One `squeue` for the jobs in flight: tasks of `jobs`, and with `names`, of jobs whose name is `labd-...`
/// (batches whose job id is not recorded yet). Finished tasks stay listed while Slurm keeps them (`MinJobAge`).
pub async fn squeue(
    site: &Site,
    jobs: &BTreeSet<String>,
    names: bool,
) -> Result<Vec<Task>, String> {
    let mut args = vec!["--json".to_string(), "--states=all".to_string()];
    if !names && !jobs.is_empty() {
        // Newer versions answer for these only; 22.05 answers for all, and the answer is filtered below.
        args.push(format!(
            "--jobs={}",
            jobs.iter().cloned().collect::<Vec<_>>().join(",")
        ));
    }
    let text = run(&site.squeue, &args).await?;
    parse_squeue(&text, |job, name| {
        jobs.contains(job) || (names && name.starts_with("labd-"))
    })
}

/// One `sacct` for `jobs`: their tasks' final states and what they used.
pub async fn sacct(site: &Site, jobs: &BTreeSet<String>) -> Result<Vec<Task>, String> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let args = vec![
        "-P".to_string(),
        "-n".to_string(),
        format!("--format={SACCT_FORMAT}"),
        format!(
            "--jobs={}",
            jobs.iter().cloned().collect::<Vec<_>>().join(",")
        ),
    ];
    Ok(parse_sacct(&run(&site.sacct, &args).await?))
}

/// Seconds of a Slurm duration: `[DD-][HH:]MM:SS[.mmm]`.
fn duration(text: &str) -> Option<f64> {
    let (days, rest) = match text.split_once('-') {
        Some((d, r)) => (d.parse::<f64>().ok()?, r),
        None => (0.0, text),
    };
    let parts: Vec<f64> = rest
        .split(':')
        .map(|p| p.parse::<f64>().ok())
        .collect::<Option<_>>()?;
    let secs = match parts.as_slice() {
        [s] => *s,
        [m, s] => m * 60.0 + s,
        [h, m, s] => h * 3600.0 + m * 60.0 + s,
        _ => return None,
    };
    Some(days * 86_400.0 + secs)
}

/// Bytes of a Slurm size (`1234K`, `5.5M`, `2G`, or a plain number of bytes).
fn size(text: &str) -> Option<u64> {
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    let (num, scale) = match t.chars().last()? {
        'K' | 'k' => (&t[..t.len() - 1], 1u64 << 10),
        'M' | 'm' => (&t[..t.len() - 1], 1 << 20),
        'G' | 'g' => (&t[..t.len() - 1], 1 << 30),
        'T' | 't' => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    num.parse::<f64>().ok().map(|n| (n * scale as f64) as u64)
}

/// The fields `sacct` is asked for, in order.
pub const SACCT_FORMAT: &str = "JobID,JobName,State,ExitCode,ElapsedRaw,MaxRSS,TotalCPU,NodeList";

/// The tasks of `sacct -P -n --format=SACCT_FORMAT`: the allocation's line gives the state, exit code and
/// time; its steps' lines (`.batch`, `.extern`, `.0`) the largest memory and the CPU time.
pub fn parse_sacct(text: &str) -> Vec<Task> {
    let mut tasks: BTreeMap<(String, u32), Task> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split('|').collect();
        if f.len() < 8 {
            continue;
        }
        let (id, step) = match f[0].split_once('.') {
            Some((id, step)) => (id, Some(step)),
            None => (f[0], None),
        };
        let (job, task) = match id.split_once('_') {
            Some((j, t)) => match t.parse::<u32>() {
                Ok(t) => (j.to_string(), t),
                // `123_[0-9]`: tasks not started yet; they have no line of their own.
                Err(_) => continue,
            },
            None => (id.to_string(), 0),
        };
        let entry = tasks.entry((job.clone(), task)).or_insert_with(|| Task {
            job,
            task,
            ..Default::default()
        });
        match step {
            None => {
                entry.name = f[1].to_string();
                // `CANCELLED by 1000`
                entry.state = f[2]
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string();
                if let Some((code, signal)) = f[3].split_once(':') {
                    entry.code = code.parse().ok();
                    entry.signal = signal.parse().ok().filter(|s: &i32| *s != 0);
                }
                entry.secs = f[4].parse::<f64>().ok();
                entry.node =
                    Some(f[7].to_string()).filter(|n| !n.is_empty() && n != "None assigned");
                if let Some(cpu) = duration(f[6]) {
                    entry.cpu_secs = Some(entry.cpu_secs.unwrap_or(0.0).max(cpu));
                }
            }
            Some(_) => {
                if let Some(rss) = size(f[5]) {
                    entry.max_rss = Some(entry.max_rss.unwrap_or(0).max(rss));
                }
                if let Some(cpu) = duration(f[6]) {
                    entry.cpu_secs = Some(entry.cpu_secs.unwrap_or(0.0).max(cpu));
                }
            }
        }
    }
    tasks
        .into_values()
        .filter(|t| !t.state.is_empty())
        .collect()
}

/// The job id in `sbatch --parsable`'s answer (`123` or `123;cluster`).
pub fn parse_sbatch(text: &str) -> Option<String> {
    let id = text.trim().split(';').next()?.trim();
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())).then(|| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jobs(ids: &[&str]) -> impl Fn(&str, &str) -> bool {
        let ids: BTreeSet<String> = ids.iter().map(|s| s.to_string()).collect();
        move |job, _| ids.contains(job)
    }

    /// What 22.05.8 (`openapi/v0.0.38`) writes: plain numbers, the raw wait status, a pending array's tasks
    /// in one record; and other users' jobs, which `-j` did not leave out.
    #[test]
    fn squeue_22_05_json_with_a_split_and_a_pending_array() {
        let text = r#"{"meta":{"Slurm":{"version":{"major":22,"micro":8,"minor":5}}},"errors":[],"jobs":[
          {"job_id":8,"array_job_id":7,"array_task_id":1,"array_task_string":"","name":"labd-b1","job_state":"RUNNING",
           "nodes":"localhost","exit_code":0,"start_time":1765000000,"end_time":1765003600,"state_reason":"None"},
          {"job_id":9,"array_job_id":7,"array_task_id":0,"name":"labd-b1","job_state":"FAILED",
           "nodes":"localhost","exit_code":768,"start_time":1765000000,"end_time":1765000012,"state_reason":"NonZeroExitCode"},
          {"job_id":10,"array_job_id":7,"array_task_id":2,"name":"labd-b1","job_state":"CANCELLED",
           "nodes":"localhost","exit_code":15,"start_time":1765000000,"end_time":1765000001},
          {"job_id":7,"array_job_id":7,"array_task_id":null,"array_task_string":"3-5%2","name":"labd-b1",
           "job_state":"PENDING","nodes":"","exit_code":0,"start_time":0,"end_time":0,"state_reason":"JobArrayTaskLimit"},
          {"job_id":11,"array_job_id":0,"name":"other","job_state":"RUNNING","nodes":"localhost","exit_code":0}
        ]}"#;
        let t = parse_squeue(text, jobs(&["7"])).unwrap();
        assert_eq!(t.len(), 6, "{t:?}");
        let by = |task: u32| t.iter().find(|x| x.task == task).unwrap();
        assert!(
            by(1).running() && by(1).secs.is_none(),
            "no time while running"
        );
        assert_eq!(
            (by(0).state.as_str(), by(0).code, by(0).secs),
            ("FAILED", Some(3), Some(12.0))
        );
        assert_eq!((by(2).code, by(2).signal), (None, Some(15)));
        for task in 3..=5 {
            assert_eq!(by(task).state, "PENDING");
            assert_eq!(by(task).reason.as_deref(), Some("JobArrayTaskLimit"));
        }
        assert!(
            t.iter().all(|x| x.job == "7"),
            "another user's job is left out"
        );
    }

    /// What 23.02 and later write: `{"set","number"}` numbers, state lists, exit codes as objects.
    #[test]
    fn squeue_json_of_later_versions() {
        let text = r#"{"jobs":[{"job_id":41,"array_job_id":{"set":true,"number":40},
          "array_task_id":{"set":true,"number":2},"name":"labd-b2","job_state":["TIMEOUT"],"nodes":"n3",
          "exit_code":{"status":["SIGNALED"],"return_code":{"set":true,"number":0},"signal":{"id":{"set":true,"number":9},"name":"KILL"}},
          "start_time":{"set":true,"number":100},"end_time":{"set":true,"number":160}}]}"#;
        let t = parse_squeue(text, jobs(&["40"])).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(
            (
                t[0].task,
                t[0].state.as_str(),
                t[0].signal,
                t[0].secs,
                t[0].node.as_deref()
            ),
            (2, "TIMEOUT", Some(9), Some(60.0), Some("n3"))
        );
        assert!(t[0].ended());
        assert!(parse_squeue("squeue: error", jobs(&["1"])).is_err());
    }

    #[test]
    fn sacct_lines_give_state_exit_time_memory_and_cpu() {
        let text = "\
12_0|labd-b1|COMPLETED|0:0|7|||localhost
12_0.batch|batch|COMPLETED|0:0|7|10240K|00:03.500|localhost
12_0.extern|extern|COMPLETED|0:0|7|1024K|00:00.001|localhost
12_1|labd-b1|CANCELLED by 0|0:15|2||00:00:00|localhost
12_[2-3]|labd-b1|PENDING|0:0|0|||None assigned
13|labd-b2|TIMEOUT|0:0|61||1:02.000|n2
";
        let t = parse_sacct(text);
        assert_eq!(t.len(), 3, "{t:?}");
        assert_eq!(
            (
                t[0].state.as_str(),
                t[0].code,
                t[0].secs,
                t[0].max_rss,
                t[0].cpu_secs
            ),
            ("COMPLETED", Some(0), Some(7.0), Some(10 << 20), Some(3.5))
        );
        assert_eq!((t[1].state.as_str(), t[1].signal), ("CANCELLED", Some(15)));
        assert_eq!(
            (t[2].job.as_str(), t[2].task, t[2].cpu_secs),
            ("13", 0, Some(62.0))
        );
        assert_eq!(duration("1-02:03:04"), Some(93_784.0));
        assert_eq!(size("5.5M"), Some(5_767_168));
    }

    #[test]
    fn task_lists_and_sbatch_answers() {
        assert_eq!(tasks_of("0-3%2", 100), [0, 1, 2, 3]);
        assert_eq!(tasks_of("[1,4-5]", 100), [1, 4, 5]);
        assert_eq!(tasks_of("0-999999", 3), [0, 1, 2]);
        assert_eq!(parse_sbatch("4242\n"), Some("4242".into()));
        assert_eq!(parse_sbatch("4242;cluster"), Some("4242".into()));
        assert_eq!(parse_sbatch("sbatch: error"), None);
    }
}
