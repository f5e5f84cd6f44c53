//! `labctl`: ask labd. Readable tables by default, `--json` for machines. Exit codes: 0 done, 1 the answer
//! is "problems found" (`validate`), 2 could not do what was asked.
//!
//! Layout: `cli` (the command line), `client` (labd's HTTP API), `table` and `flatten` (output), then one
//! module per group of commands:
//! - `runs`: `ls`, `show`, `metric`, `compare`; `export`: `export`
//! - `analytics`: `varying`, `curve`, `points`, `incomplete`; `summary`: `summary`
//! - `admin`: `status`, `ingest`, `errors`, `tail`, `replay`; `validate`: `validate`
//! - `alerts`: `alerts` (firings, `--follow`), `alerts rules`, `alerts add`, `alerts rm`
//! - `sweep` and `bench`: their subcommands

mod admin;
mod alerts;
mod analytics;
mod bench;
mod cli;
mod client;
mod export;
mod export_manager;
mod flatten;
mod runs;
mod summary;
mod sweep;
mod table;
mod validate;

use anyhow::Result;
use cli::{Cli, Cmd};
use client::Client;

fn main() {
    // Like other Unix tools, end quietly when the reader of our output goes away (`labctl tail | head`)
    // instead of panicking on a broken pipe.
    // SAFETY: setting the default disposition of SIGPIPE before any thread starts.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let cli = cli::parse();
    match run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("labctl: {e:#}");
            std::process::exit(2);
        }
    }
}

/// Runs the command; answers the exit code.
fn run(cli: Cli) -> Result<i32> {
    let c = Client::new(&cli.addr, cli.token.clone());
    let json = cli.json;
    match cli.command {
        Cmd::Status => admin::status(&c, json),
        Cmd::Ls(args) => runs::ls(&c, args, json),
        Cmd::Show(args) => runs::show(&c, args, json),
        Cmd::Bench { cmd } => bench::run(&c, cmd, json),
        Cmd::Sweep { cmd } => sweep::run(&c, cmd, json),
        Cmd::Compare(args) => runs::compare(&c, args, json),
        Cmd::Export(args) => export::export(&c, args, json),
        Cmd::Metric(args) => runs::metric(&c, args, json),
        Cmd::Ingest(args) => admin::ingest(&c, args, json),
        Cmd::Errors(args) => admin::errors(&c, args, json),
        Cmd::Tail(args) => admin::tail(&c, args, json),
        Cmd::Alerts(args) => alerts::run(&c, args, json),
        Cmd::Replay(args) => admin::replay(&c, args, json),
        Cmd::Validate(args) => validate::run(&c, args, json),
        Cmd::Varying(args) => analytics::varying(&c, args, json),
        Cmd::Summary(args) => summary::summary(&c, args, json),
        Cmd::Curve(args) => analytics::curve(&c, args, json),
        Cmd::Points(args) => analytics::points(&c, args),
        Cmd::Incomplete(args) => analytics::incomplete(&c, args, json),
        Cmd::Republish(args) => admin::republish(&c, args, json),
        Cmd::Mentions(args) => analytics::mentions(&c, args, json),
        Cmd::Table(args) => analytics::table(&c, args),
        Cmd::Report(args) => sweep::run(&c, args.into_analyze(), json),
    }
}
