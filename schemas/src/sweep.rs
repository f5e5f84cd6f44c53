//! Sweeps: the definition labd receives (from a sweep file or the command line, resolved by labctl) and the
//! facts it records about a sweep and its trials.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// A sweep as labd runs it: everything resolved (the base config loaded, paths absolute).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    /// The sweep's id; labd makes one (`sweep_<name>_<time>`) when it is not given. Submitting a sweep whose id
    /// exists resumes it: trials already completed (same resolved parameters, same trial id) are kept.
    #[serde(default)]
    pub sweep_id: Option<String>,
    /// A short name for ids and tables (default: the sweep file's stem).
    #[serde(default)]
    pub name: Option<String>,
    /// The config every trial starts from (nested JSON).
    #[serde(default = "empty_object")]
    pub base_config: Value,
    /// Dot path (nested keys and list indices, `interventions.0.parameters.rate`) → values or a distribution.
    /// (The sweep system's `sweep_params` is read as this.)
    #[serde(alias = "sweep_params")]
    pub sweep: BTreeMap<String, Space>,
    #[serde(default)]
    pub strategy: Strategy,
    /// Trials of the random strategy.
    #[serde(default)]
    pub trials: Option<u32>,
    /// Seed of the random strategy (the same seed draws the same trials).
    #[serde(default)]
    pub seed: Option<u64>,
    /// `strategy: tpe` with `parallel` above 1: the trials still running count as the worst results when the
    /// next is chosen (Optuna's constant liar), so parallel choices spread out instead of crowding one spot.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub constant_liar: bool,
    /// `strategy: nsga2`: trials a generation (default 50, as Optuna's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub population: Option<u32>,
    /// Repeats of every configuration: each gets its own seed, written at `seed_key`.
    #[serde(default)]
    pub seeds: Option<Vec<Value>>,
    /// `repeats: N` is `seeds: [0, 1, ..., N-1]`.
    #[serde(default)]
    pub repeats: Option<u32>,
    /// Where a repeat's seed goes in the config (default `seed`).
    #[serde(default)]
    pub seed_key: Option<String>,
    /// The command of a trial, run by `/bin/sh -c` in `workdir`, with placeholders `{config}`, `{run_log}`,
    /// `{trial_id}`, `{trial_dir}`, `{sweep_id}` and `{param:<dot path>}`.
    pub command: String,
    /// Working directory of the trials (labctl sets the sweep file's folder).
    #[serde(default)]
    pub workdir: Option<String>,
    /// Extra environment variables of the trials.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// (The sweep system's `parallel_jobs` is read as this.)
    #[serde(default, alias = "parallel_jobs")]
    pub parallel: Parallel,
    /// The seed's `jetson_optimized` (labctl's `--jetson`): `parallel: auto` uses the Jetson profile (unified
    /// memory: the seed's table of trials by RAM), also where the host is not recognised as a Jetson.
    #[serde(
        default,
        alias = "jetson_optimized",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub jetson: bool,
    /// Keep `plot_data.json` in the sweep's folder (the sweep system's `--plot`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub plot: bool,
    /// Seconds a trial may run before its process group is killed. (The sweep system's `timeout_seconds`.)
    #[serde(default, alias = "timeout_seconds")]
    pub timeout: Option<f64>,
    /// Further attempts of a failed or timed-out trial.
    #[serde(default)]
    pub max_retries: u32,
    /// Keep completed trials when the sweep is submitted again (the seed's `resume`); `false` runs all again.
    #[serde(default = "yes")]
    pub resume: bool,
    /// On resume, run trials that had failed (after their retries) again.
    #[serde(default)]
    pub retry_failed: bool,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub resources: Resources,
    /// Hard limits on each trial, enforced by the kernel (a trial over them fails, labd goes on).
    #[serde(default, skip_serializing_if = "Limits::is_none")]
    pub limits: Limits,
    /// A free-form description.
    #[serde(default)]
    pub description: Option<String>,
    /// Where the trials run: `local` (labd starts them on its host) or `slurm` (labd submits them to the
    /// cluster as job arrays and follows the jobs).
    #[serde(default, skip_serializing_if = "Executor::is_local")]
    pub executor: Executor,
    /// The Slurm options of the sweep's jobs (with `executor: slurm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm: Option<SlurmJob>,
    /// What `strategy: tpe` optimizes, and what a pruner reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objective: Option<Objective>,
    /// Two or more objectives, each with its direction and reduction: the sweep's analysis shows the
    /// configurations no other beats in all of them (the Pareto front).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objectives: Vec<Objective>,
    /// Stops trials early from the objective's intermediate values (needs `objective`; local executor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pruner: Option<Pruner>,
}

/// An early-stopping rule over the objective's intermediate values (its steps are the resource).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case", deny_unknown_fields)]
pub enum Pruner {
    /// Stop a trial whose best value so far is worse than the completed trials' median at the same step.
    Median {
        #[serde(default = "five")]
        n_startup: usize,
        #[serde(default)]
        warmup_steps: i64,
    },
    /// Asynchronous successive halving: rungs at `min_resource · reduction_factor^k` steps; a trial goes on
    /// past a rung only among the best `1/reduction_factor` of those that reached it.
    Asha {
        min_resource: i64,
        #[serde(default = "three")]
        reduction_factor: u32,
        #[serde(default)]
        min_early_stopping_rate: u32,
        /// No rung at or beyond this step.
        #[serde(default)]
        max_resource: Option<i64>,
    },
    /// Hyperband: brackets of ASHA with growing first rungs, each trial in one.
    Hyperband {
        min_resource: i64,
        max_resource: i64,
        #[serde(default = "three")]
        reduction_factor: u32,
    },
}

fn five() -> usize {
    5
}

fn three() -> u32 {
    3
}

/// Where a sweep's trials run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Executor {
    /// labd starts each trial as a child process, within this host's resources.
    #[default]
    Local,
    /// labd submits the trials to Slurm as job arrays; Slurm decides where and when.
    Slurm,
}

impl Executor {
    pub fn is_local(&self) -> bool {
        *self == Executor::Local
    }
}

/// What a sweep asks of Slurm for each of its jobs (`sbatch` options; what belongs to the site, such as where
/// the commands are, is in labd's own configuration).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmJob {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qos: Option<String>,
    /// The time limit of each array task, as Slurm reads it (`30`, `1:30:00`, `2-0`). Without it, the sweep's
    /// `timeout` (rounded up to a minute) is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// Generic resources of each array task, e.g. `gpu:1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gres: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus_per_task: Option<u32>,
    /// Memory of each array task, as Slurm reads it (`4G`, `512M`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraint: Option<String>,
    /// Array tasks running at once (the `%N` of `--array`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub array_parallelism: Option<u32>,
    /// Trials run side by side in one array task (sharing its allocation, e.g. one GPU): small trials need not
    /// each hold a whole GPU. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pack: Option<u32>,
    /// Memory of one GPU of the nodes the sweep runs on (`"80G"`; what `gres` and `constraint` select). With
    /// the trials' `resources.gpu_memory` and no `pack`, as many trials share each array task as fit in it.
    #[serde(default, with = "bytes", skip_serializing_if = "Option::is_none")]
    pub node_gpu_memory: Option<u64>,
    /// Further `sbatch` arguments, passed as given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_args: Vec<String>,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

fn yes() -> bool {
    true
}

/// The values a parameter takes: a list (grid, or random choice), or a distribution (random only).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Space {
    Values(Vec<Value>),
    Distribution(Distribution),
}

/// A distribution to draw a parameter from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Distribution {
    /// One of these values, each as likely.
    Choice(Vec<Value>),
    /// Uniform in `[low, high)`.
    Uniform([f64; 2]),
    /// Log-uniform in `[low, high)` (both > 0).
    LogUniform([f64; 2]),
    /// An integer in `[low, high]`.
    Int([i64; 2]),
    /// An integer in `[low, high]` (both ≥ 1), drawn evenly on a log scale (layer widths, batch sizes).
    LogInt([i64; 2]),
}

/// How trials are chosen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Every combination of the listed values (Cartesian product).
    #[default]
    Grid,
    /// `trials` draws, seeded by `seed`.
    Random,
    /// `trials` quasi-random points (a scrambled Halton sequence seeded by `seed`): spread over the space more
    /// evenly than random draws.
    QuasiRandom,
    /// `trials` chosen one after another from the results so far by the tree-structured Parzen estimator
    /// (Optuna's default sampler), toward the sweep's `objective`; the first ten at random. Seeded by `seed`.
    Tpe,
    /// `trials` chosen generation by generation by NSGA-II (Optuna's `NSGAIISampler`) toward the sweep's
    /// `objectives`: `population` trials a generation, the first at random, each later one bred from the elite
    /// of those before it. Seeded by `seed`.
    Nsga2,
}

impl Strategy {
    /// Whether trials are chosen as the sweep runs, from the results so far (none are planned up front).
    pub fn is_adaptive(self) -> bool {
        matches!(self, Strategy::Tpe | Strategy::Nsga2)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Grid => "grid",
            Strategy::Random => "random",
            Strategy::QuasiRandom => "quasi_random",
            Strategy::Tpe => "tpe",
            Strategy::Nsga2 => "nsga2",
        }
    }
}

/// What a model-based search (`strategy: tpe`) makes small or large: a metric of each trial's run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Objective {
    /// The metric's key in the trial's run (`split/name`, e.g. `val/loss`).
    pub metric: String,
    #[serde(default)]
    pub direction: Direction,
    /// Which value of the metric's curve counts.
    #[serde(default)]
    pub reduce: Reduce,
}

/// Whether an objective is made small or large.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    #[default]
    Minimize,
    Maximize,
}

impl Direction {
    /// `value` as a loss (smaller is better).
    pub fn loss(self, value: f64) -> f64 {
        match self {
            Direction::Minimize => value,
            Direction::Maximize => -value,
        }
    }
}

/// Which value of a metric's curve an objective takes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reduce {
    /// The last finite value.
    #[default]
    Last,
    Min,
    Max,
}

impl Reduce {
    pub fn as_str(self) -> &'static str {
        match self {
            Reduce::Last => "last",
            Reduce::Min => "min",
            Reduce::Max => "max",
        }
    }
}

/// A model-based sweep chose its next trial (`strategy: tpe`): the plan, its number in the sweep, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrialAdded {
    pub sweep: String,
    pub trial: TrialPlan,
    /// 0, 1, 2, ...: the decision's number (with the sweep's seed, what makes it repeatable).
    pub number: u32,
    /// `tpe: 14 finished trials, 2 good` or `tpe: at random (3 of 10 startup trials)`.
    pub reason: String,
}

/// What `parallel: auto` allows a sweep on this host now, and the figures it comes from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ParallelBudget {
    pub parallel: u32,
    /// `70 % of 62.8 GiB RAM / 8 GiB a trial = 5; 12 cores / 4 a trial = 3; ...`
    pub why: String,
}

/// How many trials run at once: a number, or `auto` (from free CPU, RAM and GPU memory).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Parallel {
    #[default]
    Auto,
    Fixed(u32),
}

impl Serialize for Parallel {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Parallel::Auto => s.serialize_str("auto"),
            Parallel::Fixed(n) => s.serialize_u32(*n),
        }
    }
}

impl<'de> Deserialize<'de> for Parallel {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(0) => Err(serde::de::Error::custom("parallel must be at least 1")),
            Raw::N(n) => Ok(Parallel::Fixed(n.min(u32::MAX as u64) as u32)),
            Raw::S(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl std::str::FromStr for Parallel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "auto" => Ok(Parallel::Auto),
            n => match n.parse::<u32>() {
                Ok(0) | Err(_) => Err(format!(
                    "parallel {s:?}: use a number of at least 1, or auto"
                )),
                Ok(n) => Ok(Parallel::Fixed(n)),
            },
        }
    }
}

/// What one trial needs; the scheduler starts a trial only when this much is free.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// CPU cores.
    #[serde(default = "one")]
    pub cpus: f64,
    /// Bytes of RAM (`"4G"`, `"512M"` or a number).
    #[serde(default, with = "bytes")]
    pub ram: Option<u64>,
    /// Whole GPUs, pinned with `CUDA_VISIBLE_DEVICES`.
    #[serde(default)]
    pub gpus: u32,
    /// Free memory each of its GPUs must have.
    #[serde(default, with = "bytes")]
    pub gpu_memory: Option<u64>,
}

/// Hard limits on a trial's processes, so that a runaway trial fails alone instead of taking the host, and
/// labd with it, down. Whatever the limits, every trial is the kernel's first choice when memory runs out
/// (its `oom_score_adj` is raised), and its whole process group is killed at its timeout.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Memory each of the trial's processes may allocate (`"8G"`, `RLIMIT_DATA`): allocations beyond fail
    /// (Python raises `MemoryError`). GPU memory is not counted. Where labd makes the trial a cgroup (see
    /// `cgroups.rs` in the daemon), also the memory of the whole trial (`memory.max`): the kernel kills it beyond.
    #[serde(default, with = "bytes")]
    pub memory: Option<u64>,
    /// Processes (and threads) the trial may start beyond those its user already runs (`RLIMIT_NPROC`, which
    /// counts per user; the kernel does not apply it to root). In a cgroup, exactly the trial's own (`pids.max`).
    #[serde(default)]
    pub processes: Option<u64>,
}

impl Limits {
    pub fn is_none(&self) -> bool {
        self.memory.is_none() && self.processes.is_none()
    }
}

fn one() -> f64 {
    1.0
}

impl Default for Resources {
    fn default() -> Self {
        Resources {
            cpus: 1.0,
            ram: None,
            gpus: 0,
            gpu_memory: None,
        }
    }
}

/// Parses a size: a number of bytes, or a number with `K`, `M`, `G` or `T` (powers of 1024, optional `B`/`iB`).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let upper = t.to_ascii_uppercase();
    let body = upper
        .trim_end_matches("IB")
        .trim_end_matches('B')
        .trim_end();
    let (num, scale) = match body.chars().last() {
        Some('K') => (&body[..body.len() - 1], 1u64 << 10),
        Some('M') => (&body[..body.len() - 1], 1 << 20),
        Some('G') => (&body[..body.len() - 1], 1 << 30),
        Some('T') => (&body[..body.len() - 1], 1 << 40),
        _ => (body, 1),
    };
    num.trim()
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n >= 0.0)
        .map(|n| (n * scale as f64) as u64)
        .ok_or_else(|| format!("{text:?} is not a size (e.g. 4G, 512M, 1073741824)"))
}

mod bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(n) => s.serialize_u64(*n),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            F(f64),
            S(String),
        }
        match Option::<Raw>::deserialize(d)? {
            None => Ok(None),
            Some(Raw::N(n)) => Ok(Some(n)),
            Some(Raw::F(f)) if f.is_finite() && f >= 0.0 => Ok(Some(f as u64)),
            Some(Raw::F(f)) => Err(serde::de::Error::custom(format!("{f} is not a size"))),
            Some(Raw::S(s)) => super::parse_bytes(&s)
                .map(Some)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// One planned trial: its parameters and the config it runs with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrialPlan {
    /// Deterministic from the sweep id and the resolved parameters.
    pub id: String,
    /// Dot path → value, the repeat's seed included (under `seed_key`) when there are repeats.
    pub params: BTreeMap<String, Value>,
    /// Which repeat (0-based) this is.
    #[serde(default)]
    pub repeat: u32,
    /// The base config with the parameters written in.
    pub config: Value,
}

/// A sweep was submitted (or submitted again: the new plan replaces the old one; trials with the same id keep
/// their history).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepCreated {
    pub sweep: String,
    pub spec: SweepSpec,
    pub trials: Vec<TrialPlan>,
    /// Where the trials' folders are.
    pub dir: String,
}

/// A sweep's own state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SweepState {
    /// Trials are being run (or will be, once labd is up).
    Running,
    /// Every trial ended (completed, or failed after its retries).
    Finished,
    /// Stopped by `sweep cancel`; `sweep resume` runs what is left.
    Cancelled,
    /// No new trials start (or are submitted); those running go on; `sweep resume` continues.
    Paused,
    /// Could not run at all: Slurm refused its jobs (a bad partition, account or gres), with Slurm's message.
    Failed,
}

impl SweepState {
    pub fn as_str(self) -> &'static str {
        match self {
            SweepState::Running => "running",
            SweepState::Finished => "finished",
            SweepState::Cancelled => "cancelled",
            SweepState::Paused => "paused",
            SweepState::Failed => "failed",
        }
    }
}

/// The sweep's state changed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepChanged {
    pub sweep: String,
    pub state: SweepState,
    #[serde(default)]
    pub reason: Option<String>,
}

/// What a trial used, sampled while it ran.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Usage {
    /// CPU of the trial's processes, in cores (1.0 = one core busy).
    pub cpu: f64,
    /// Resident memory of the trial's processes.
    pub rss: u64,
    /// Processes in the trial.
    pub processes: u32,
    /// Host CPU busy, 0..1 of all cores.
    pub host_cpu: f64,
    /// Host memory in use.
    pub host_ram_used: u64,
    pub host_ram_total: u64,
    /// The trial's GPUs.
    #[serde(default)]
    pub gpus: Vec<GpuUsage>,
}

/// One GPU, sampled through NVML.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GpuUsage {
    pub index: u32,
    /// Utilization, 0..1.
    pub util: f64,
    pub memory_used: u64,
    pub memory_total: u64,
}

/// A trial's state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum TrialState {
    /// Queued to run.
    Scheduled,
    /// Its process started.
    Started {
        pid: u32,
        /// The process's start time in clock ticks after boot (`/proc/PID/stat`), to tell it from a later
        /// process with the same pid.
        #[serde(default)]
        start_ticks: u64,
        /// GPUs it was pinned to.
        #[serde(default)]
        gpus: Vec<u32>,
        /// Its run log (watched by labd).
        run_log: String,
    },
    /// Still running; what it uses.
    Heartbeat { usage: Usage },
    /// Its process exited: code 0 is success; `signal` when a signal ended it.
    Exited {
        #[serde(default)]
        code: Option<i32>,
        #[serde(default)]
        signal: Option<i32>,
        secs: f64,
        /// Found from the exit file after labd restarted (the trial ended while labd was down).
        #[serde(default)]
        recovered: bool,
        /// Processes of the trial the kernel killed for lack of memory (counted by its cgroup, where it has one).
        #[serde(default, skip_serializing_if = "is_zero")]
        oom_kills: u64,
    },
    /// Its process could not start.
    StartFailed { reason: String },
    /// Killed after running past the timeout.
    TimedOut { secs: f64 },
    /// A failed attempt will be tried again.
    Retrying { reason: String },
    /// Stopped by `sweep cancel`.
    Cancelled,
    /// It was running when labd stopped or died; it will be run again.
    Interrupted { reason: String },
    /// About to be handed to Slurm in the array job named `labd-<batch>` (recorded before `sbatch`, so a
    /// restarted labd finds the job by its name instead of submitting it twice).
    Submitting { batch: String },
    /// Handed to Slurm: task `task` of array job `job`.
    Submitted { job: String, task: u32 },
    /// Slurm started it on `node`.
    SlurmStarted {
        job: String,
        task: u32,
        node: String,
        /// The GPUs Slurm gave it (`SLURM_JOB_GPUS` or `CUDA_VISIBLE_DEVICES` on the node).
        #[serde(default)]
        gpus: Vec<String>,
        run_log: String,
    },
    /// Slurm's account of how it ended (beside `exited`, `timed_out` or `cancelled`): the job state, and where
    /// accounting is on, what it used.
    SlurmEnded {
        job: String,
        task: u32,
        /// `COMPLETED`, `FAILED`, `TIMEOUT`, `CANCELLED`, `OUT_OF_MEMORY`, `NODE_FAIL`, `PREEMPTED`, ...
        slurm_state: String,
        #[serde(default)]
        code: Option<i32>,
        #[serde(default)]
        signal: Option<i32>,
        #[serde(default)]
        secs: Option<f64>,
        #[serde(default)]
        max_rss: Option<u64>,
        #[serde(default)]
        cpu_secs: Option<f64>,
    },
    /// Preempted, or its node failed: it runs again without spending a retry.
    Requeued { reason: String },
    /// It reached a rung of its sweep's pruner (ASHA, Hyperband): its objective there, as a loss (smaller is
    /// better). The rungs' values, in log order, are the pruner's state.
    RungReached {
        bracket: u32,
        rung: u32,
        step: i64,
        value: f64,
    },
    /// Stopped early by its sweep's pruner, and why: the rule, the rung, its value and the threshold it had to
    /// reach (as losses), how many it was compared with. Its process group is ended; it does not run again.
    Pruned {
        rule: String,
        #[serde(default)]
        rung: Option<u32>,
        step: i64,
        value: f64,
        threshold: f64,
        compared: u32,
    },
}

/// A trial's state changed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrialChanged {
    pub sweep: String,
    pub trial: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    #[serde(flatten)]
    pub state: TrialState,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn specs_read_lists_distributions_sizes_and_parallel() {
        let spec: SweepSpec = serde_json::from_value(json!({
            "sweep": {"optim.lr": [0.1, 0.01], "model.width": {"int": [64, 256]},
                      "wd": {"log_uniform": [1e-5, 1e-2]}},
            "command": "python train.py {config}",
            "parallel": "auto",
            "resources": {"cpus": 2, "ram": "4G", "gpu_memory": "512M"}
        }))
        .unwrap();
        assert_eq!(
            spec.sweep["optim.lr"],
            Space::Values(vec![json!(0.1), json!(0.01)])
        );
        assert_eq!(
            spec.sweep["model.width"],
            Space::Distribution(Distribution::Int([64, 256]))
        );
        assert_eq!(spec.parallel, Parallel::Auto);
        assert_eq!(spec.resources.ram, Some(4 << 30));
        assert_eq!(spec.resources.gpu_memory, Some(512 << 20));
        assert!(spec.resume, "resume by default");
        let three: Parallel = serde_json::from_value(json!(3)).unwrap();
        assert_eq!(three, Parallel::Fixed(3));
        assert!(serde_json::from_value::<Parallel>(json!(0)).is_err());
        assert!(serde_json::from_value::<Parallel>(json!("lots")).is_err());
        assert_eq!(parse_bytes("1.5 GiB").unwrap(), 3 << 29);
        assert!(parse_bytes("huge").is_err());
        let slurm: SweepSpec = serde_json::from_value(json!({
            "sweep": {}, "command": "x", "executor": "slurm",
            "slurm": {"partition": "gpu", "gres": "gpu:1", "node_gpu_memory": "80G", "extra_args": ["-v"]}
        }))
        .unwrap();
        assert_eq!(slurm.executor, Executor::Slurm);
        let opts = slurm.slurm.as_ref().unwrap();
        assert_eq!(opts.node_gpu_memory, Some(80 << 30));
        let back: SweepSpec =
            serde_json::from_value(serde_json::to_value(&slurm).unwrap()).unwrap();
        assert_eq!(
            back, slurm,
            "the spec a sweep_created event keeps reads back the same"
        );
        let bad =
            serde_json::from_value::<SweepSpec>(json!({"sweep": {}, "command": "x", "paralel": 2}));
        assert!(bad.unwrap_err().to_string().contains("paralel"));
    }

    #[test]
    fn trial_states_are_tagged_and_flat() {
        let e = TrialChanged {
            sweep: "s".into(),
            trial: "t".into(),
            attempt: 2,
            state: TrialState::Exited {
                code: Some(3),
                signal: None,
                secs: 1.5,
                recovered: false,
                oom_kills: 0,
            },
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["state"], "exited");
        assert_eq!(v["code"], 3);
        assert_eq!(serde_json::from_value::<TrialChanged>(v).unwrap(), e);
    }
}
