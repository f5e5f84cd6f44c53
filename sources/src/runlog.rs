//! The labd run log source: JSONL lines → events. A line is complete at its newline; a partial last line waits.
//! Bad lines become ingest-error events naming file and line; good lines around them are kept.

use super::{Context, Output, error, source};
use crate::FileCursor;
use labd_schemas::bench::{BenchChanged, BenchMeasured, BenchStarted};
use labd_schemas::canonical::config_hash;
use labd_schemas::event::{
    ArtifactRecorded, ExperimentCreated, MessageLogged, MetricsLogged, StatusChanged,
    SummaryRecorded,
};
use labd_schemas::runlog::{MetricsRow, RunLine, RunLogLine, metrics_row, parse_line};
use labd_schemas::{Event, EventKind, ExperimentId, Source};
use serde_json::Value;

/// Reads complete lines from `data`, advancing `cursor` (line count, current run, skipping state).
pub fn read(cursor: &mut FileCursor, data: &[u8], ctx: &mut Context<'_>) -> Output {
    super::lines::read(
        cursor,
        data,
        ctx,
        |text| parse_line(text).is_ok(),
        |cursor, text, ctx, out| {
            // Most lines are plain metrics: read straight into the event's shape.
            if let Some(row) = metrics_row(text) {
                return apply_metrics(cursor, row, ctx, out);
            }
            match parse_line(text) {
                Err(e) => error(out, ctx, cursor.line, e.0),
                Ok(parsed) => {
                    for problem in parsed.problems {
                        error(
                            out,
                            ctx,
                            cursor.line,
                            format!("{problem}; the rest of the line was kept"),
                        );
                    }
                    apply_line(cursor, parsed.line, ctx, out);
                }
            }
        },
    )
}

/// A plain metrics line, as [`apply_line`] takes a parsed one.
fn apply_metrics(
    cursor: &mut FileCursor,
    row: MetricsRow,
    ctx: &mut Context<'_>,
    out: &mut Output,
) {
    let src = source(ctx, cursor.line);
    let exp = current_exp(cursor, ctx, out, &src);
    out.points += row.values.len() as u64;
    let kind = EventKind::MetricsLogged(MetricsLogged {
        exp,
        split: row.split,
        step: row.step,
        epoch: row.epoch,
        wall_time: row.time.and_then(|t| t.to_seconds().ok()),
        x: row.x,
        values: row.values,
        extra: row.extra,
    });
    out.events.push(Event::new(ctx.now, src, kind));
}

/// The file's current run; lines before any `run` line belong to an implicit run named after the file.
fn current_exp(
    cursor: &mut FileCursor,
    ctx: &mut Context<'_>,
    out: &mut Output,
    src: &Source,
) -> ExperimentId {
    if let Some(exp) = &cursor.current_exp {
        return exp.clone();
    }
    let (id, event) = create_experiment(RunLine::default(), ctx, src.clone());
    out.events.push(event);
    cursor.current_exp = Some(id.clone());
    cursor.runs += 1;
    id
}

/// Turns a `run` line into an `experiment_created` event and makes it the file's current run.
pub fn create_experiment(
    run: RunLine,
    ctx: &mut Context<'_>,
    src: Source,
) -> (ExperimentId, Event) {
    let name = run
        .name
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| ctx.default_name.to_string());
    let config = Value::Object(run.config);
    let hash = config_hash(&config);
    let started = run.time.and_then(|t| t.to_micros().ok()).unwrap_or(ctx.now);
    let id = (ctx.ids)(ExperimentId::new_on(ctx.id_clock, started, &name, &hash));
    let event = Event::new(
        ctx.now,
        src,
        EventKind::ExperimentCreated(Box::new(ExperimentCreated {
            exp: id.clone(),
            name,
            description: run.description,
            tags: run.tags,
            config,
            config_hash: hash,
            host: ctx.host.to_string(),
            started,
            extra: run.extra,
            project: None,
        })),
    );
    (id, event)
}

fn apply_line(cursor: &mut FileCursor, line: RunLogLine, ctx: &mut Context<'_>, out: &mut Output) {
    let src = source(ctx, cursor.line);
    let line = match line {
        RunLogLine::Bench(_) | RunLogLine::BenchResult(_) | RunLogLine::BenchEnd(_) => {
            if let Some(kind) = bench_fact(line, ctx) {
                out.events.push(Event::new(ctx.now, src, kind));
            }
            return;
        }
        RunLogLine::Run(run) => {
            let (id, event) = create_experiment(run, ctx, src);
            out.events.push(event);
            cursor.current_exp = Some(id);
            cursor.runs += 1;
            return;
        }
        other => other,
    };
    let exp = current_exp(cursor, ctx, out, &src);
    out.points += line_points(&line);
    if let Some(kind) = fact(exp, line) {
        out.events.push(Event::new(ctx.now, src, kind));
    }
}

/// The fact a benchmark line states; `None` for the other lines.
pub fn bench_fact(line: RunLogLine, ctx: &Context<'_>) -> Option<EventKind> {
    Some(match line {
        RunLogLine::Bench(b) => EventKind::BenchStarted(Box::new(BenchStarted {
            name: b
                .name
                .filter(|n| !n.trim().is_empty())
                .unwrap_or_else(|| b.bench.clone()),
            bench: b.bench,
            suite: b.suite.unwrap_or_else(|| "cmr".into()),
            config: b.config,
            build: b.build,
            host: ctx.host.to_string(),
            planned: b.planned,
            started: b.time.and_then(|t| t.to_micros().ok()).unwrap_or(ctx.now),
            runner: b.runner,
        })),
        RunLogLine::BenchResult(r) => EventKind::BenchMeasured(BenchMeasured {
            bench: r.bench,
            analysis: r.analysis,
            params: r.params,
            values: r
                .values
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k, v)))
                .collect(),
            samples: r.samples,
        }),
        RunLogLine::BenchEnd(e) => EventKind::BenchChanged(BenchChanged {
            bench: e.bench,
            status: e.status,
            message: e.message,
        }),
        _ => return None,
    })
}

/// Metric points a line carries.
pub fn line_points(line: &RunLogLine) -> u64 {
    match line {
        RunLogLine::Metrics(m) => m.values.values().filter(|v| v.is_some()).count() as u64,
        _ => 0,
    }
}

/// The fact a line states about run `exp`; `None` for a `run` line (see [`create_experiment`]).
pub fn fact(exp: ExperimentId, line: RunLogLine) -> Option<EventKind> {
    Some(match line {
        RunLogLine::Run(_)
        | RunLogLine::Bench(_)
        | RunLogLine::BenchResult(_)
        | RunLogLine::BenchEnd(_) => return None,
        RunLogLine::Metrics(m) => EventKind::MetricsLogged(MetricsLogged {
            exp,
            split: m.split,
            step: m.step,
            epoch: m.epoch,
            wall_time: m.time.and_then(|t| t.to_seconds().ok()),
            x: m.x.into(),
            values: m
                .values
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k, v)))
                .collect(),
            extra: m.extra,
        }),
        RunLogLine::Message(m) => EventKind::MessageLogged(MessageLogged {
            exp,
            level: m.level.unwrap_or_else(|| "info".into()),
            text: m.text,
            extra: m.extra,
        }),
        RunLogLine::Summary(s) => EventKind::SummaryRecorded(SummaryRecorded {
            exp,
            group: s.group.unwrap_or_else(|| "final".into()),
            values: s.values,
            extra: s.extra,
        }),
        RunLogLine::Artifact(a) => EventKind::ArtifactRecorded(ArtifactRecorded {
            exp,
            role: a.role.unwrap_or_else(|| "artifact".into()),
            path: a.path,
            size: a.size,
            sha256: a.sha256,
            extra: a.extra,
        }),
        RunLogLine::Status(s) => EventKind::StatusChanged(StatusChanged {
            exp,
            status: s.status,
            notes: s.notes,
            extra: s.extra,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx_read(cursor: &mut FileCursor, data: &[u8], take_unterminated: bool) -> Output {
        let mut ids = |id: ExperimentId| id;
        let mut ctx = Context {
            path: "/in/a.jsonl",
            default_name: "a",
            host: "h",
            now: 1_700_000_000_000_000,
            max_line: 200,
            take_unterminated,
            ids: &mut ids,
            id_clock: Default::default(),
            runs: &mut crate::Runs::default(),
            sidecars: &[],
        };
        read(cursor, data, &mut ctx)
    }

    fn kinds(out: &Output) -> Vec<&'static str> {
        out.events.iter().map(|e| e.kind.tag()).collect()
    }

    #[test]
    fn a_partial_last_line_waits_for_the_rest() {
        let mut cursor = FileCursor::default();
        let first = b"{\"kind\":\"run\",\"name\":\"r\",\"time\":1734359452}\n{\"kind\":\"metrics\",\"step\":1,\"val";
        let out = ctx_read(&mut cursor, first, false);
        assert_eq!(kinds(&out), ["experiment_created"]);
        let consumed = out.consumed as usize;
        let mut rest = first[consumed..].to_vec();
        rest.extend_from_slice(b"ues\":{\"loss\":1.5}}\n");
        let out = ctx_read(&mut cursor, &rest, false);
        assert_eq!(kinds(&out), ["metrics_logged"]);
        assert_eq!(out.consumed as usize, rest.len());
        assert_eq!(cursor.line, 2);
        let EventKind::MetricsLogged(m) = &out.events[0].kind else {
            panic!()
        };
        assert_eq!(
            m.exp.as_str(),
            cursor.current_exp.as_ref().unwrap().as_str()
        );
        assert!(m.exp.as_str().starts_with("20241216_143052_r_"));
    }

    #[test]
    fn unterminated_complete_line_is_taken_only_when_allowed() {
        let data = b"{\"kind\":\"metrics\",\"values\":{\"a\":1}}";
        assert_eq!(
            ctx_read(&mut FileCursor::default(), data, false).consumed,
            0
        );
        let out = ctx_read(&mut FileCursor::default(), data, true);
        assert_eq!(out.consumed as usize, data.len());
        assert_eq!(
            kinds(&out),
            ["experiment_created", "metrics_logged"],
            "implicit run, then the metrics"
        );
    }

    #[test]
    fn bad_lines_are_reported_with_their_line_and_good_ones_kept() {
        let data = b"{\"kind\":\"run\"}\nnot json\n\n{\"kind\":\"metrics\",\"values\":{\"a\":1,\"b\":\"x\"}}\n\xff\xfe\n";
        let mut cursor = FileCursor::default();
        let out = ctx_read(&mut cursor, data, false);
        assert_eq!(
            kinds(&out),
            [
                "experiment_created",
                "ingest_error",
                "ingest_error",
                "metrics_logged",
                "ingest_error"
            ]
        );
        let lines: Vec<Option<u64>> = out
            .events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::IngestError(err) => Some(err.line),
                _ => None,
            })
            .collect();
        assert_eq!(lines, [Some(2), Some(4), Some(5)]);
        assert_eq!(out.points, 1);
    }

    #[test]
    fn a_newline_after_a_taken_unterminated_line_is_not_a_new_line() {
        let mut cursor = FileCursor::default();
        let out = ctx_read(
            &mut cursor,
            b"\xEF\xBB\xBF{\"kind\":\"run\",\"name\":\"b\"}",
            true,
        );
        assert_eq!(
            kinds(&out),
            ["experiment_created"],
            "the byte order mark is skipped"
        );
        assert_eq!(cursor.line, 1);
        let out = ctx_read(&mut cursor, b"\nnope\n", false);
        assert_eq!(cursor.line, 2);
        let EventKind::IngestError(e) = &out.events[0].kind else {
            panic!()
        };
        assert_eq!(e.line, Some(2));
    }

    #[test]
    fn overlong_lines_are_skipped_up_to_their_newline() {
        let mut cursor = FileCursor::default();
        let long = vec![b'x'; 300];
        let out = ctx_read(&mut cursor, &long, false);
        assert_eq!(kinds(&out), ["ingest_error"]);
        assert!(cursor.skipping);
        let out = ctx_read(&mut cursor, b"xxxx\n{\"kind\":\"run\"}\n", false);
        assert_eq!(kinds(&out), ["experiment_created"]);
        assert_eq!(cursor.line, 2);
    }

    #[test]
    fn a_second_run_line_starts_a_second_run() {
        let data = b"{\"kind\":\"run\",\"name\":\"a\"}\n{\"kind\":\"status\",\"status\":\"completed\"}\n{\"kind\":\"run\",\"name\":\"b\"}\n{\"kind\":\"metrics\",\"values\":{\"a\":1}}\n";
        let mut cursor = FileCursor::default();
        let out = ctx_read(&mut cursor, data, false);
        let exps: Vec<String> = out
            .events
            .iter()
            .filter_map(|e| e.experiment().map(|x| x.0.clone()))
            .collect();
        assert_eq!(exps.len(), 4);
        assert_eq!(exps[0], exps[1]);
        assert_ne!(exps[1], exps[2]);
        assert_eq!(exps[2], exps[3]);
        assert_eq!(cursor.runs, 2);
    }
}
