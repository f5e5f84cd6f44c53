//! The command line: the options every command takes and the list of commands. Each command's own arguments
//! sit beside its code, in the module that runs it.

use crate::admin::{ErrorsArgs, IngestArgs, ReplayArgs, RepublishArgs, TailArgs};
use crate::analytics::{CurveArgs, IncompleteArgs, PointsArgs, VaryingArgs};
use crate::export::ExportArgs;
use crate::runs::{CompareArgs, LsArgs, MetricArgs, ShowArgs};
use crate::summary::SummaryArgs;
use crate::validate::ValidateArgs;
use crate::{bench, sweep};
use clap::{ArgMatches, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "labctl", version, about = "Ask labd about experiments")]
pub struct Cli {
    /// Address of labd's HTTP API.
    #[arg(
        long,
        env = "LABD_ADDR",
        default_value = "http://127.0.0.1:7420",
        global = true
    )]
    pub addr: String,
    /// Bearer token (needed off loopback, and for changes when the daemon has one).
    #[arg(long, env = "LABD_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Cmd,
}

/// The commands, in the order `labctl --help` lists them.
#[derive(Subcommand)]
pub enum Cmd {
    /// Health of the daemon and of ingestion.
    Status,
    /// List experiments (`runs` is the same command).
    #[command(alias = "runs")]
    Ls(LsArgs),
    /// Show one experiment.
    Show(ShowArgs),
    /// Benchmarks: run a CMR benchmark, ls, show, export, compare, cancel.
    Bench {
        #[command(subcommand)]
        cmd: bench::BenchCmd,
    },
    /// Parameter sweeps: run, ls, status, resume, cancel.
    Sweep {
        #[command(subcommand)]
        cmd: sweep::SweepCmd,
    },
    /// Compare experiments: configs side by side (differences marked), summaries, final metric values.
    Compare(CompareArgs),
    /// Export an experiment to a folder: config, metrics history, summaries, artifacts, source logs.
    Export(ExportArgs),
    /// Points of one metric (`split/name`).
    Metric(MetricArgs),
    /// Ingest a file or folder on the daemon's host now.
    Ingest(IngestArgs),
    /// Ingest problems, newest last.
    Errors(ErrorsArgs),
    /// Follow events as they are committed.
    Tail(TailArgs),
    /// Alerts: firings (newest first; --follow for new ones), `rules`, `add`, `rm`.
    Alerts(crate::alerts::AlertsArgs),
    /// Rebuild the views from the log, or show the registry as of a past point.
    Replay(ReplayArgs),
    /// Check a run log against the format; prints each problem with its line.
    Validate(ValidateArgs),
    /// Which hyperparameters vary across the selected runs (noise keys such as seeds listed apart).
    Varying(VaryingArgs),
    /// Group runs (by the varying keys, or --by) and aggregate a metric across seeds.
    Summary(SummaryArgs),
    /// Curves of a metric for runs (IDs, or those --where selects), or of groups of runs (--group: mean and band).
    Curve(CurveArgs),
    /// The long table of metric points (run, metric, step, epoch, wall_time, value) as CSV, Parquet or JSON.
    Points(PointsArgs),
    /// Runs whose curves stop short of the expected length, have gaps, or restart.
    Incomplete(IncompleteArgs),
    /// A sweep's report (as the sweep system's analyze_sweep.py): `sweep analyze` with its primary metric by default.
    Report(crate::sweep::ReportArgs),
    /// The wide runs table: a column per config key, metric (last value) and summary number, as CSV or Parquet.
    Table(crate::analytics::TableArgs),
    /// How often runs' messages mention a keyword (or regex), per value of a hyperparameter, and its trend.
    Mentions(crate::analytics::MentionsArgs),
    /// Federation: publish this host's log again from an event (when the NATS stream lost some; a hub skips
    /// what it has).
    Republish(RepublishArgs),
}

/// Parses the command line; on a mistake, prints clap's message and exits (code 2).
pub fn parse() -> Cli {
    let matches = <Cli as clap::CommandFactory>::command().get_matches();
    let mut cli = match <Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    regroup_params(&mut cli.command, &matches);
    cli
}

/// `--param PATH V1 V2 ...` may repeat: keep each occurrence's values together.
fn regroup_params(command: &mut Cmd, matches: &ArgMatches) {
    if let Cmd::Sweep {
        cmd: sweep::SweepCmd::Run { param, .. },
    } = command
        && let Some(run) = matches
            .subcommand_matches("sweep")
            .and_then(|m| m.subcommand_matches("run"))
        && let Ok(Some(groups)) = run.try_get_occurrences::<Vec<String>>("param")
    {
        *param = groups
            .map(|g| g.flat_map(|words| words.iter().cloned()).collect())
            .collect();
    }
}
