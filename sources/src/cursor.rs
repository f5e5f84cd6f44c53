//! Where ingestion stands in one file (or one run spanning files): the state a source carries from one read to
//! the next. The event log stores it in the same transaction as the events read, so ingestion is exactly-once.

use serde::{Deserialize, Serialize};

/// Where ingestion stands in one file; stored in the same transaction as the events read from it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FileCursor {
    /// Bytes consumed (the start of the next unread line).
    pub offset: u64,
    /// Lines consumed.
    pub line: u64,
    /// Identity of the file read: device and inode.
    pub dev: u64,
    pub inode: u64,
    /// sha256 prefix of the first `head_len` bytes, to notice a file rewritten in place.
    pub head_hash: u64,
    pub head_len: u64,
    /// Size when last read.
    pub size: u64,
    /// The run the next lines belong to (set by the last `run` line).
    pub current_exp: Option<labd_schemas::ExperimentId>,
    /// Runs begun in this file.
    pub runs: u32,
    /// A too-long line is being skipped up to its newline.
    pub skipping: bool,
    /// Why the file is skipped for good (binary, unreadable), if it is.
    pub dead: Option<String>,
    pub errors: u64,
    /// When the cursor was last committed (Unix microseconds).
    pub updated: i64,
    /// What reads this file (`runlog`, ...).
    #[serde(default)]
    pub format: String,
    /// The last line was taken without its newline; a newline arriving next ends it, not a new line.
    #[serde(default)]
    pub after_unterminated: bool,
    /// A source's own counters that must survive between reads (e.g. rows seen per split).
    #[serde(default)]
    pub counters: std::collections::BTreeMap<String, u64>,
    /// Modification time (Unix nanoseconds) when last read whole: an unchanged file is not read again.
    #[serde(default)]
    pub mtime: i64,
}
