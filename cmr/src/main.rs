//! `labd-cmr`: runs a CMR benchmark and writes its measurements as benchmark lines of the labd run log.
//!
//! ```text
//! labd-cmr run --config bench.json --out events.jsonl [--bench ID]   # labd runs this as a job
//! labd-cmr check --config bench.json                                 # the invariants, on its device
//! labd-cmr defaults                                                   # the default configuration
//! labd-cmr weights-layout --config bench.json                         # names and shapes for a safetensors file
//! ```

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use labd_cmr::config::BenchConfig;
use labd_cmr::emit::Emitter;
use labd_cmr::measure::Bench;
use labd_cmr::model::{self, Model};
use serde_json::{Map, Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(name = "labd-cmr", version, about = "CMR benchmarks for labd")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs a benchmark.
    Run {
        /// The configuration (JSON); absent: the defaults.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Where to write the benchmark lines; `-` for standard output.
        #[arg(long, default_value = "-")]
        out: String,
        /// The benchmark's id; default: cmr-<time>.
        #[arg(long)]
        bench: Option<String>,
        /// Who runs it (`labd` when the daemon does).
        #[arg(long)]
        runner: Option<String>,
    },
    /// Checks the components' invariants on the configuration's device (CUDA included).
    Check {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Prints the default configuration.
    Defaults,
    /// Prints the weights' names and shapes for a configuration.
    WeightsLayout {
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

fn load(path: Option<&Path>) -> Result<BenchConfig> {
    let Some(path) = path else {
        return Ok(BenchConfig::default());
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    BenchConfig::from_json(&text).with_context(|| format!("{}", path.display()))
}

fn build_info(device: tch::Device, cfg: &BenchConfig) -> Map<String, Value> {
    let mut b = Map::new();
    b.insert("labd_cmr".into(), json!(env!("CARGO_PKG_VERSION")));
    b.insert(
        "libtorch".into(),
        json!(option_env!("LIBTORCH").unwrap_or("")),
    );
    b.insert("device".into(), json!(format!("{device:?}").to_lowercase()));
    b.insert("cuda".into(), json!(tch::Cuda::is_available()));
    b.insert("threads".into(), json!(tch::get_num_threads()));
    b.insert(
        "profile".into(),
        json!(if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }),
    );
    b.insert(
        "weights".into(),
        json!(
            cfg.model
                .weights
                .clone()
                .unwrap_or_else(|| format!("random, seed {}", cfg.model.seed))
        ),
    );
    b
}

fn run(
    config: Option<&Path>,
    out: &str,
    bench: Option<String>,
    runner: Option<String>,
) -> Result<()> {
    let cfg = load(config)?;
    let device = model::device(&cfg.run.device).map_err(anyhow::Error::msg)?;
    if cfg.run.threads > 0 {
        tch::set_num_threads(cfg.run.threads as i32);
    }
    let bench = bench.unwrap_or_else(|| {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        format!("cmr-{secs}")
    });
    if !labd_schemas::bench::valid_id(&bench) {
        bail!("--bench {bench:?} is not a valid id (letters, digits, '-', '_', '.')");
    }
    let sink: Box<dyn Write> = if out == "-" {
        Box::new(std::io::stdout())
    } else {
        Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(out)
                .with_context(|| format!("opening {out}"))?,
        )
    };
    let model = Model::new(&cfg.model, device)?;
    let config_value = serde_json::to_value(&cfg)?;
    let emitter = Emitter::start(
        sink,
        &bench,
        &cfg.name,
        config_value,
        build_info(device, &cfg),
        cfg.planned(),
        runner.as_deref(),
    )?;
    eprintln!(
        "labd-cmr: benchmark {bench} on {device:?}, {} measurements planned",
        cfg.planned()
    );
    let mut b = Bench {
        cfg: &cfg,
        model,
        device,
        out: emitter,
    };
    let result = b.run();
    let mut emitter = b.out;
    match result {
        Ok(()) => {
            emitter.end("completed", Some(&format!("{} measurements", emitter.done)))?;
            Ok(())
        }
        Err(e) => {
            let _ = emitter.end("failed", Some(&e.to_string()));
            Err(e.into())
        }
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            config,
            out,
            bench,
            runner,
        } => run(config.as_deref(), &out, bench, runner),
        Command::Check { config } => {
            let cfg = load(config.as_deref())?;
            let device = model::device(&cfg.run.device).map_err(anyhow::Error::msg)?;
            if cfg.run.threads > 0 {
                tch::set_num_threads(cfg.run.threads as i32);
            }
            println!("labd-cmr check on {device:?}");
            let outcomes = labd_cmr::check::run(&cfg, device)?;
            let failed = outcomes.iter().filter(|o| !o.ok).count();
            for o in &outcomes {
                println!(
                    "{} {}: {}",
                    if o.ok { "ok  " } else { "FAIL" },
                    o.name,
                    o.detail
                );
            }
            if failed > 0 {
                bail!("{failed} of {} checks failed", outcomes.len());
            }
            println!("all {} checks passed", outcomes.len());
            Ok(())
        }
        Command::Defaults => {
            println!("{}", serde_json::to_string_pretty(&BenchConfig::default())?);
            Ok(())
        }
        Command::WeightsLayout { config } => {
            let cfg = load(config.as_deref())?;
            let mut m = cfg.model.clone();
            m.weights = None;
            let model = Model::new(&m, tch::Device::Cpu)?;
            for (name, shape) in model.var_names() {
                println!("{name}\t{shape:?}");
            }
            Ok(())
        }
    }
}
