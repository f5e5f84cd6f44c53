//! Line framing shared by the line-based sources: a line is complete at its newline and a partial last line
//! waits; a byte order mark, over-long lines (skipped up to their newline), invalid UTF-8 and blank lines are
//! handled here once, so each source only turns one line's text into events.

use super::{Context, Output};
use crate::FileCursor;

/// Reads the complete lines of `data`, handing each one's trimmed text to `on_line` (with `cursor.line` set to
/// its 1-based number). `whole` says whether an unterminated tail is a whole line (taken only when the file is
/// finished or quiet).
pub fn read(
    cursor: &mut FileCursor,
    data: &[u8],
    ctx: &mut Context<'_>,
    whole: impl Fn(&str) -> bool,
    mut on_line: impl FnMut(&mut FileCursor, &str, &mut Context<'_>, &mut Output),
) -> Output {
    let mut out = Output::default();
    // Most lines make one event: room for them up front (and for the file's `file_ingested` the caller adds),
    // not grown (and copied) as they come.
    out.events
        .reserve(memchr::memchr_iter(b'\n', data).count() + 2);
    let mut pos = 0usize;
    if cursor.line == 0 && data.starts_with(b"\xEF\xBB\xBF") {
        // A UTF-8 byte order mark (Windows tools write one) is not part of the first line.
        pos = 3;
    }
    if std::mem::take(&mut cursor.after_unterminated) && data.first() == Some(&b'\n') {
        pos = 1;
    }
    while pos < data.len() {
        let rest = &data[pos..];
        if cursor.skipping {
            match memchr::memchr(b'\n', rest) {
                Some(i) => {
                    pos += i + 1;
                    cursor.skipping = false;
                }
                None => pos = data.len(),
            }
            continue;
        }
        let (line, next) = match memchr::memchr(b'\n', rest) {
            Some(i) => (&rest[..i], pos + i + 1),
            None => {
                if rest.len() > ctx.max_line {
                    cursor.line += 1;
                    super::error(
                        &mut out,
                        ctx,
                        cursor.line,
                        format!(
                            "line is longer than the limit of {} bytes (LABD_MAX_LINE_BYTES); skipped",
                            ctx.max_line
                        ),
                    );
                    cursor.skipping = true;
                    pos = data.len();
                    continue;
                }
                let complete = std::str::from_utf8(rest)
                    .ok()
                    .map(str::trim)
                    .is_some_and(|t| !t.is_empty() && whole(t));
                if ctx.take_unterminated && complete {
                    cursor.after_unterminated = true;
                    (rest, data.len())
                } else {
                    break;
                }
            }
        };
        cursor.line += 1;
        pos = next;
        if line.len() > ctx.max_line {
            super::error(
                &mut out,
                ctx,
                cursor.line,
                format!(
                    "line is {} bytes, over the limit of {} bytes (LABD_MAX_LINE_BYTES); skipped",
                    line.len(),
                    ctx.max_line
                ),
            );
            continue;
        }
        let Ok(text) = std::str::from_utf8(line) else {
            super::error(&mut out, ctx, cursor.line, "line is not valid UTF-8".into());
            continue;
        };
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        on_line(cursor, text, ctx, &mut out);
    }
    out.consumed = pos as u64;
    out
}
