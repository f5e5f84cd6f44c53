//! Input formats: bytes in, events out. Each source is pure: it is handed the file's new bytes and its cursor
//! and returns events; it does no I/O of its own. [`Format`] picks the source for a path. This crate is the
//! first stage of labd (source → log → views → answers) and knows nothing above it: the daemon's ingest loop
//! feeds it, the event log stores what it makes, and the fuzz targets link it without the rest of labd.

pub mod cursor;
pub mod drgen;
pub mod expmgr;
pub mod hf;
pub mod lightning;
pub mod lines;
pub mod mlflow;
pub mod mlflow_sqlite;
pub mod runlog;
pub mod tensorboard;

pub use cursor::FileCursor;
use labd_schemas::event::{IngestError, Severity};
use labd_schemas::{Event, EventKind, ExperimentId, Source};
use std::collections::{BTreeSet, HashMap};
use std::path::Path;

/// Parses JSON as Python's `json` module writes it: a leading byte order mark is skipped, and the bare `NaN`,
/// `Infinity` and `-Infinity` it writes for non-finite floats are read as the strings `"NaN"`, ... (which
/// [`number`] reads back as floats). Other errors are serde_json's, at their place in the original text.
pub fn python_json<T: serde::de::DeserializeOwned>(data: &[u8]) -> Result<T, serde_json::Error> {
    let data = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);
    match serde_json::from_slice(data) {
        Ok(v) => Ok(v),
        Err(e) => match std::str::from_utf8(data)
            .ok()
            .and_then(labd_schemas::runlog::quote_non_finite)
        {
            Some(fixed) => serde_json::from_str(&fixed).map_err(|_| e),
            None => Err(e),
        },
    }
}

/// A metric value: a number, or the spellings `NaN`, `Infinity`, `-Infinity`.
pub fn number(v: &serde_json::Value) -> Option<f64> {
    match v {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => labd_schemas::floats::parse_special(s),
        _ => None,
    }
}

/// Prefix of the stored cursors that belong to runs rather than files.
pub const RUN_PREFIX: &str = "run\u{0}";

/// State kept per run across files, for runs that span several files (the Trainer's checkpoints, a
/// TensorBoard folder): the run's experiment and what of it was read. Stored like file cursors, under
/// [`RUN_PREFIX`] and the run's key, and moved in the same batch as the events read.
#[derive(Debug, Default)]
pub struct Runs {
    /// Stored key → state.
    pub map: HashMap<String, FileCursor>,
    /// Keys changed since the last batch.
    pub touched: BTreeSet<String>,
}

impl Runs {
    /// The state of run `key` (created empty), marked as changed.
    pub fn get(&mut self, key: &str) -> &mut FileCursor {
        let stored = format!("{RUN_PREFIX}{key}");
        self.touched.insert(stored.clone());
        self.map.entry(stored).or_default()
    }
}

/// The formats labd reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Format {
    /// The labd run log (`*.jsonl`, `*.ndjson`).
    RunLog,
    /// dr_gen's JSONL logs: `json_out.jsonl`, or a `.jsonl` file whose first line is dr_gen's.
    DrGen,
    /// The Hugging Face Trainer's `trainer_state.json` (rewritten whole at every save).
    HfTrainerState,
    /// TensorBoard event files (`*tfevents*`).
    TensorBoard,
    /// PyTorch Lightning's CSVLogger: `metrics.csv` (with `hparams.yaml` beside it).
    LightningCsv,
    /// MLflow's file store: a run's metric file, `mlruns/<experiment>/<run>/metrics/<key>`.
    MlflowMetric,
    /// MLflow's file store: a run's `meta.yaml` (its name, times, status).
    MlflowRun,
    /// MLflow's SQLite tracking store (`mlflow.db`).
    MlflowSqlite,
    /// The experiment manager's `experiment_registry.json` and the folders it lists.
    ExpManager,
}

impl Format {
    /// The format of a file, judged by its name; `None` for files labd does not read (hidden files, editors'
    /// temporary files, other extensions).
    pub fn detect(path: &Path) -> Option<Format> {
        let name = path.file_name()?.to_str()?;
        if name.starts_with('.') || name.ends_with('~') {
            return None;
        }
        if name == "json_out.jsonl" {
            return Some(Format::DrGen);
        }
        if name == "trainer_state.json" {
            return Some(Format::HfTrainerState);
        }
        if tensorboard::is_event_file(name) {
            return Some(Format::TensorBoard);
        }
        if name == "metrics.csv" {
            return Some(Format::LightningCsv);
        }
        if name == "experiment_registry.json" {
            return Some(Format::ExpManager);
        }
        if name == "mlflow.db" {
            return Some(Format::MlflowSqlite);
        }
        if let Some(kind) = mlflow::kind(path) {
            return Some(kind);
        }
        if name.ends_with(".jsonl") || name.ends_with(".ndjson") {
            return Some(Format::RunLog);
        }
        None
    }

    /// Refines the format by the file's first bytes (a `.jsonl` file whose first line is dr_gen's is dr_gen's).
    pub fn sniff(self, head: &[u8]) -> Format {
        let first = head.split(|b| *b == b'\n').next().unwrap_or_default();
        match (self, std::str::from_utf8(first)) {
            (Format::RunLog, Ok(line)) if drgen::sniff(line.trim_start_matches('\u{feff}')) => {
                Format::DrGen
            }
            (f, _) => f,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::RunLog => "runlog",
            Format::DrGen => "drgen",
            Format::HfTrainerState => "hf_trainer_state",
            Format::TensorBoard => "tensorboard",
            Format::LightningCsv => "lightning_csv",
            Format::MlflowMetric => "mlflow_metric",
            Format::MlflowRun => "mlflow_run",
            Format::MlflowSqlite => "mlflow_sqlite",
            Format::ExpManager => "experiment_manager",
        }
    }

    /// Files read with a file of this format (their content goes to the source as sidecars): names relative to
    /// the file's folder, or, for MLflow, to the run's folder; a name ending in `/` is every file in that folder.
    pub fn sidecars(self) -> &'static [&'static str] {
        match self {
            Format::LightningCsv => &["hparams.yaml"],
            Format::MlflowMetric | Format::MlflowRun => {
                &["meta.yaml", "../meta.yaml", "params/", "tags/"]
            }
            _ => &[],
        }
    }

    /// Whether files of this format are binary (a NUL byte is data, not a sign of damage).
    pub fn binary(self) -> bool {
        matches!(self, Format::TensorBoard | Format::MlflowSqlite)
    }

    /// Whether files of this format are rewritten whole (read whole each time they change) rather than
    /// appended to (read from where the last read stopped).
    pub fn whole_file(self) -> bool {
        matches!(
            self,
            Format::HfTrainerState
                | Format::LightningCsv
                | Format::MlflowRun
                | Format::MlflowSqlite
                | Format::ExpManager
        )
    }

    /// The format a user names (`labd`, `runlog`, `drgen`, `tensorboard`, `lightning`, `hf`, ...).
    pub fn from_user(name: &str) -> Option<Format> {
        Format::from_name(name).or(match name {
            "labd" | "jsonl" => Some(Format::RunLog),
            "dr_gen" => Some(Format::DrGen),
            "hf" | "huggingface" | "trainer_state" | "transformers" => Some(Format::HfTrainerState),
            "tb" | "tfevents" => Some(Format::TensorBoard),
            "lightning" | "csv" => Some(Format::LightningCsv),
            "mlflow" | "sqlite" => Some(Format::MlflowSqlite),
            "expmgr" | "experiments" => Some(Format::ExpManager),
            _ => None,
        })
    }

    /// The names [`Format::from_user`] takes, for messages.
    pub const USER_NAMES: &'static str = "auto, labd, drgen, tensorboard, lightning, hf (trainer_state.json), mlflow (SQLite store), expmgr (experiment_registry.json)";

    /// Whether a file of this name can be read as this format when a folder's format is fixed.
    pub fn accepts(self, path: &Path) -> bool {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            return false;
        };
        if name.starts_with('.') || name.ends_with('~') {
            return false;
        }
        match self {
            Format::RunLog | Format::DrGen => name.ends_with(".jsonl") || name.ends_with(".ndjson"),
            Format::HfTrainerState => name.ends_with(".json"),
            Format::TensorBoard => tensorboard::is_event_file(name),
            Format::LightningCsv => name.ends_with(".csv"),
            Format::MlflowMetric | Format::MlflowRun => mlflow::kind(path) == Some(self),
            Format::MlflowSqlite => name.ends_with(".db") || name.ends_with(".sqlite"),
            Format::ExpManager => name.ends_with(".json"),
        }
    }

    /// The format a stored cursor names.
    pub fn from_name(name: &str) -> Option<Format> {
        match name {
            "runlog" => Some(Format::RunLog),
            "drgen" => Some(Format::DrGen),
            "hf_trainer_state" => Some(Format::HfTrainerState),
            "tensorboard" => Some(Format::TensorBoard),
            "lightning_csv" => Some(Format::LightningCsv),
            "mlflow_metric" => Some(Format::MlflowMetric),
            "mlflow_run" => Some(Format::MlflowRun),
            "mlflow_sqlite" => Some(Format::MlflowSqlite),
            "experiment_manager" => Some(Format::ExpManager),
            _ => None,
        }
    }
}

/// Begins the run `key` (of a run that spans files): its `experiment_created` event goes to `out`, and the run
/// remembers its experiment.
pub fn begin_run(
    ctx: &mut Context<'_>,
    key: &str,
    run: labd_schemas::runlog::RunLine,
    src: labd_schemas::Source,
    out: &mut Output,
) -> ExperimentId {
    let (id, event) = runlog::create_experiment(run, ctx, src);
    out.events.push(event);
    let state = ctx.runs.get(key);
    state.current_exp = Some(id.clone());
    state.runs += 1;
    id
}

/// An ingest problem in the file being read: at `line` (a line, a row or a record), or of the whole file.
pub fn problem(ctx: &Context<'_>, line: Option<u64>, severity: Severity, reason: String) -> Event {
    Event::new(
        ctx.now,
        source(ctx, line.unwrap_or(0)),
        labd_schemas::EventKind::IngestError(labd_schemas::event::IngestError {
            path: ctx.path.to_string(),
            line,
            severity,
            reason,
            held: None,
        }),
    )
}

/// Where a line of the file being read came from.
pub fn source(ctx: &Context<'_>, line: u64) -> Source {
    Source::File {
        path: ctx.path.to_string(),
        first_line: line,
        last_line: line,
    }
}

/// Records an ingest error about line `line` of the file being read.
pub fn error(out: &mut Output, ctx: &Context<'_>, line: u64, reason: String) {
    out.events.push(Event::new(
        ctx.now,
        source(ctx, line),
        EventKind::IngestError(IngestError {
            path: ctx.path.to_string(),
            line: Some(line),
            severity: Severity::Error,
            reason,
            held: None,
        }),
    ));
}

/// What a source needs to know besides the bytes.
pub struct Context<'a> {
    /// The file's path as stored in events.
    pub path: &'a str,
    /// Name for runs that do not name themselves (the file's stem).
    pub default_name: &'a str,
    pub host: &'a str,
    /// Ingest time (Unix microseconds), stamped on every event.
    pub now: i64,
    /// Longest line accepted, in bytes.
    pub max_line: usize,
    /// Take a last line without its newline if it parses (the file is finished or has been quiet).
    pub take_unterminated: bool,
    /// Makes a proposed experiment id unique.
    pub ids: &'a mut dyn FnMut(ExperimentId) -> ExperimentId,
    /// The clock new ids' times are read on.
    pub id_clock: labd_schemas::ids::IdClock,
    /// State of runs that span files.
    pub runs: &'a mut Runs,
    /// Files beside this one that the format reads with it, as the ingestor found them: name (relative to
    /// the file's folder, or to the run's for MLflow) → content.
    pub sidecars: &'a [(String, String)],
}

/// What a source made of some bytes.
#[derive(Debug, Default)]
pub struct Output {
    pub events: Vec<Event>,
    /// Bytes consumed (complete lines, or skipped bytes); the rest waits for more data.
    pub consumed: u64,
    /// Lines consumed.
    pub lines: u64,
    pub points: u64,
    /// Bytes the source needs from the start of `data` to go on (a record longer than what it was given).
    pub wants: Option<u64>,
}

/// Runs the source of `format` over `data` (the file's bytes from `cursor.offset`).
pub fn read(format: Format, cursor: &mut FileCursor, data: &[u8], ctx: &mut Context<'_>) -> Output {
    match format {
        Format::RunLog => runlog::read(cursor, data, ctx),
        Format::DrGen => drgen::read(cursor, data, ctx),
        Format::HfTrainerState => hf::read(cursor, data, ctx),
        Format::TensorBoard => tensorboard::read(cursor, data, ctx),
        Format::LightningCsv => lightning::read(cursor, data, ctx),
        Format::MlflowMetric => mlflow::read_metric(cursor, data, ctx),
        Format::MlflowRun => mlflow::read_run(cursor, data, ctx),
        Format::MlflowSqlite => mlflow_sqlite::read(cursor, data, ctx),
        Format::ExpManager => expmgr::read(cursor, data, ctx),
    }
}

/// Reads `data` as the ingestor reads a file written in two goes: first its first `split` bytes while the
/// writer is still at it, then (from where the source stopped) the rest of the file, now finished. Checks
/// what must hold whatever the bytes: the source consumes no more than it was given, and every event it
/// makes can be stored and read back. For the fuzz targets (`fuzz/`) and tests.
pub fn read_in_two(format: Format, data: &[u8], split: usize) -> Vec<Event> {
    let mut runs = Runs::default();
    let mut ids = |id: ExperimentId| id;
    let mut cursor = FileCursor {
        format: format.name().into(),
        ..Default::default()
    };
    let mut events = Vec::new();
    let split = split.min(data.len());
    let whole = format.whole_file();
    let mut offset = 0usize;
    for (end, finished) in [(split, false), (data.len(), true)] {
        // A whole-file format reads the file from its start each time; the others go on from the cursor.
        let part = &data[if whole { 0 } else { offset }..end];
        let mut ctx = Context {
            path: "fuzz/file",
            default_name: "file",
            host: "h",
            now: 1,
            max_line: 1 << 16,
            take_unterminated: finished,
            ids: &mut ids,
            id_clock: Default::default(),
            runs: &mut runs,
            sidecars: &[],
        };
        let out = read(format, &mut cursor, part, &mut ctx);
        assert!(
            out.consumed <= part.len() as u64,
            "{}: consumed {} of {} bytes",
            format.name(),
            out.consumed,
            part.len()
        );
        if !whole {
            offset += out.consumed as usize;
            cursor.offset = offset as u64;
        }
        events.extend(out.events);
    }
    // As the event log stores them: msgpack with named fields.
    let bytes = rmp_serde::to_vec_named(&events).expect("events encode");
    let back: Vec<Event> = rmp_serde::from_slice(&bytes).expect("events decode");
    assert_eq!(back.len(), events.len());
    events
}

/// Running a source the way the ingestor does, for the sources' tests.
#[cfg(test)]
pub mod testing {
    use super::*;

    /// Runs `format`'s source over `data`, the content of a fresh file at `path`; answers the file's cursor and
    /// what the source made. `quiet`: the file is finished (a last line without newline is taken).
    pub fn read_as(
        format: Format,
        path: &str,
        data: &[u8],
        runs: &mut Runs,
        sidecars: &[(String, String)],
        quiet: bool,
    ) -> (FileCursor, Output) {
        let mut ids = |id: ExperimentId| id;
        let stem = Path::new(path)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("file")
            .to_string();
        let mut ctx = Context {
            path,
            default_name: &stem,
            host: "h",
            now: 1,
            max_line: 1 << 20,
            take_unterminated: quiet,
            ids: &mut ids,
            id_clock: Default::default(),
            runs,
            sidecars,
        };
        let mut cursor = FileCursor::default();
        let out = read(format, &mut cursor, data, &mut ctx);
        (cursor, out)
    }
}
