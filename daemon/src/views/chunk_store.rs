//! Where the curve store's closed chunks live: an append-only file beside the log's database (the live daemon),
//! or memory (tests, views as of a past point). A chunk is written once and read by where it starts; memory
//! holds only the bytes not yet written out, so the points of a long history cost the page cache, not the
//! daemon's memory (Prometheus keeps its full head chunks the same way). Each chunk is stored after a CRC-32C of
//! its bytes, checked when it is read back.
//!
//! The file is named for its store (`curves-<id>.chunks`); the curve store's checkpoint names it and how many
//! of its bytes were synced, so a restart truncates what came after and writes on. Files no checkpoint names
//! (a crash, a replaced store) are removed at start.

use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// Bytes gathered in memory before they are written to the file (one write to the page cache).
const WRITE_AT: usize = 1 << 20;
const PREFIX: &str = "curves-";
const SUFFIX: &str = ".chunks";

/// Where a chunk's bytes are in its store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    /// Offset of its record (the CRC, then the bytes).
    pub at: u64,
    pub len: u32,
}

/// A store of chunks. Clones share it (a snapshot of the views reads the same chunks).
#[derive(Clone, Debug, Default)]
pub struct ChunkStore(Arc<RwLock<Inner>>);

#[derive(Default)]
struct Inner {
    file: Option<OnDisk>,
    /// Bytes past `written`: in memory, everything.
    pending: Vec<u8>,
    written: u64,
    /// The last write that failed (kept in memory meanwhile), told once.
    failing: bool,
    /// Bytes of chunks no longer read (a sealed tail read back into its series to go on).
    unused: u64,
}

#[derive(Debug)]
struct OnDisk {
    file: Arc<File>,
    path: PathBuf,
    /// Whether a saved checkpoint names this file (else it is removed when the store goes).
    saved: bool,
}

/// The store as a checkpoint names it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Saved {
    /// The file (by name, in the log's directory), how many of its bytes belong to the checkpoint, and how
    /// many of those are no longer read.
    File {
        name: String,
        len: u64,
        #[serde(default)]
        unused: u64,
    },
    /// A store in memory, its bytes inline (tests).
    Memory(#[serde(with = "serde_bytes")] Vec<u8>),
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkStore")
            .field("file", &self.file.as_ref().map(|d| &d.path))
            .field("written", &self.written)
            .field("pending", &self.pending.len())
            .finish()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(d) = &self.file
            && !d.saved
        {
            let _ = std::fs::remove_file(&d.path);
        }
    }
}

impl ChunkStore {
    /// A new store in a file of its own in `dir`.
    pub fn create(dir: &Path) -> io::Result<ChunkStore> {
        let (file, path) = loop {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let path = dir.join(format!("{PREFIX}{nanos:x}{SUFFIX}"));
            match File::options()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(f) => {
                    // The new name made durable, so a checkpoint naming the file finds it after a power cut
                    // (if this fails, such a checkpoint is refused at start and the store rebuilt).
                    if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
                        tracing::warn!("syncing {}: {e}", dir.display());
                    }
                    break (f, path);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        };
        Ok(ChunkStore::with_file(file, path, 0, false))
    }

    /// A new store like this one: in a new file beside its file, or in memory.
    pub fn like(&self) -> io::Result<ChunkStore> {
        match self.path() {
            Some(p) => ChunkStore::create(p.parent().unwrap_or(Path::new("."))),
            None => Ok(ChunkStore::default()),
        }
    }

    fn with_file(file: File, path: PathBuf, written: u64, saved: bool) -> ChunkStore {
        ChunkStore(Arc::new(RwLock::new(Inner {
            file: Some(OnDisk {
                file: Arc::new(file),
                path,
                saved,
            }),
            pending: Vec::new(),
            written,
            failing: false,
            unused: 0,
        })))
    }

    /// The store a checkpoint names: its file opened (in `dir`) and cut to the length saved, bytes written
    /// after the checkpoint dropped (the warm-up writes their points again).
    pub fn open(saved: Saved, dir: &Path) -> Result<ChunkStore, String> {
        match saved {
            Saved::Memory(bytes) => Ok(ChunkStore(Arc::new(RwLock::new(Inner {
                file: None,
                pending: bytes,
                written: 0,
                failing: false,
                unused: 0,
            })))),
            Saved::File { name, len, unused } => {
                if !(name.starts_with(PREFIX) && name.ends_with(SUFFIX)) || name.contains('/') {
                    return Err(format!("names {name:?}, not a chunk file"));
                }
                let path = dir.join(&name);
                let file = File::options()
                    .read(true)
                    .write(true)
                    .open(&path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                let have = file
                    .metadata()
                    .map_err(|e| format!("{}: {e}", path.display()))?
                    .len();
                if have < len {
                    return Err(format!(
                        "{} holds {have} bytes, the checkpoint needs {len}",
                        path.display()
                    ));
                }
                file.set_len(len)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                let store = ChunkStore::with_file(file, path, len, true);
                store.inner_mut().unused = unused.min(len);
                Ok(store)
            }
        }
    }

    /// Removes the chunk files in `dir` other than `keep` (left by a crash or by a store that was replaced).
    pub fn remove_others(dir: &Path, keep: Option<&Path>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            let path = e.path();
            if name.starts_with(PREFIX) && name.ends_with(SUFFIX) && Some(path.as_path()) != keep {
                match std::fs::remove_file(&path) {
                    Ok(()) => tracing::info!("removed {} (no checkpoint names it)", path.display()),
                    Err(e) => tracing::warn!("could not remove {}: {e}", path.display()),
                }
            }
        }
    }

    fn inner(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.0.read().unwrap_or_else(|p| p.into_inner())
    }

    fn inner_mut(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.0.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The file, when the store is on disk.
    pub fn path(&self) -> Option<PathBuf> {
        self.inner().file.as_ref().map(|d| d.path.clone())
    }

    /// Stores a chunk's bytes.
    pub fn append(&self, bytes: &[u8]) -> ChunkRef {
        let mut inner = self.inner_mut();
        let at = inner.written + inner.pending.len() as u64;
        inner
            .pending
            .extend_from_slice(&crc32c::crc32c(bytes).to_le_bytes());
        inner.pending.extend_from_slice(bytes);
        if inner.file.is_some() && inner.pending.len() >= WRITE_AT {
            // A failed write keeps the bytes in memory and is tried again with the next.
            let _ = inner.write_out();
        }
        ChunkRef {
            at,
            len: bytes.len() as u32,
        }
    }

    /// A chunk's bytes, checked against their CRC.
    pub fn read(&self, r: ChunkRef) -> Result<Vec<u8>, String> {
        let total = r.len as usize + 4;
        let mut record = vec![0u8; total];
        let file = {
            let inner = self.inner();
            if r.at >= inner.written {
                let from = (r.at - inner.written) as usize;
                let Some(bytes) = inner.pending.get(from..from + total) else {
                    return Err(format!("chunk at {} is past the store's end", r.at));
                };
                record.copy_from_slice(bytes);
                None
            } else {
                inner.file.as_ref().map(|d| Arc::clone(&d.file))
            }
        };
        if let Some(file) = file {
            file.read_exact_at(&mut record, r.at)
                .map_err(|e| format!("chunk at {}: {e}", r.at))?;
        }
        let (crc, bytes) = record.split_at(4);
        let crc = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
        if crc32c::crc32c(bytes) != crc {
            return Err(format!("chunk at {} fails its CRC", r.at));
        }
        record.drain(..4);
        Ok(record)
    }

    /// Whether `r` lies within the store.
    pub fn holds(&self, r: ChunkRef) -> bool {
        let inner = self.inner();
        r.at + r.len as u64 + 4 <= inner.written + inner.pending.len() as u64
    }

    /// Writes out what is pending and names the store for a checkpoint; the file (to sync before the
    /// checkpoint is committed) comes with it.
    pub fn save(&self) -> io::Result<(Saved, Option<Arc<File>>)> {
        let mut inner = self.inner_mut();
        let Some(d) = &inner.file else {
            return Ok((Saved::Memory(inner.pending.clone()), None));
        };
        let name = d
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let file = Arc::clone(&d.file);
        inner.write_out()?;
        Ok((
            Saved::File {
                name,
                len: inner.written,
                unused: inner.unused,
            },
            Some(file),
        ))
    }

    /// Notes that a committed checkpoint names this store's file (it stays when the store goes).
    pub fn mark_saved(&self) {
        if let Some(d) = &mut self.inner_mut().file {
            d.saved = true;
        }
    }

    /// Notes that the chunk at `r` is no longer read (its bytes stay in the file until a rebuild).
    pub fn release(&self, r: ChunkRef) {
        self.inner_mut().unused += u64::from(r.len) + 4;
    }

    /// Bytes stored that are no longer read.
    pub fn unused(&self) -> u64 {
        self.inner().unused
    }

    /// Bytes held in memory, and stored in all.
    pub fn bytes(&self) -> (usize, u64) {
        let inner = self.inner();
        (
            inner.pending.capacity(),
            inner.written + inner.pending.len() as u64,
        )
    }
}

impl Inner {
    fn write_out(&mut self) -> io::Result<()> {
        let Some(d) = &self.file else {
            return Ok(());
        };
        if self.pending.is_empty() {
            return Ok(());
        }
        match d.file.write_all_at(&self.pending, self.written) {
            Ok(()) => {
                self.written += self.pending.len() as u64;
                self.pending.clear();
                if self.failing {
                    self.failing = false;
                    tracing::info!("curve store: writing {} again", d.path.display());
                }
                Ok(())
            }
            Err(e) => {
                if !self.failing {
                    self.failing = true;
                    tracing::error!(
                        "curve store: writing {} failed ({e}); its chunks stay in memory until a write succeeds",
                        d.path.display()
                    );
                }
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_read_back_from_memory_and_file_and_damage_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let mem = ChunkStore::default();
        let disk = ChunkStore::create(dir.path()).unwrap();
        let path = disk.path().unwrap();
        let chunks: Vec<Vec<u8>> = (0..5000u32)
            .map(|i| (0..(i % 700)).map(|b| (b ^ i) as u8).collect())
            .collect();
        let refs: Vec<(ChunkRef, ChunkRef)> = chunks
            .iter()
            .map(|c| (mem.append(c), disk.append(c)))
            .collect();
        // Past a megabyte the disk store wrote most of them out; the rest wait in memory.
        assert!(disk.bytes().0 <= WRITE_AT * 2 && disk.bytes().1 > WRITE_AT as u64);
        for (c, (m, d)) in chunks.iter().zip(&refs) {
            assert_eq!(&mem.read(*m).unwrap(), c);
            assert_eq!(&disk.read(*d).unwrap(), c);
        }
        // Saved, then more appended (a crash after the checkpoint): opening cuts them off.
        let (saved, file) = disk.save().unwrap();
        file.unwrap().sync_data().unwrap();
        disk.mark_saved();
        let after = disk.append(b"after the checkpoint");
        assert!(disk.holds(after));
        disk.save().unwrap();
        drop(disk);
        assert!(path.exists(), "a saved store's file stays");
        let back = ChunkStore::open(saved.clone(), dir.path()).unwrap();
        assert!(!back.holds(after));
        assert_eq!(back.read(refs[4999].1).unwrap(), chunks[4999]);
        // A flipped byte fails the CRC, with where.
        let f = File::options().write(true).open(&path).unwrap();
        f.write_all_at(&[0xff], refs[5].1.at + 6).unwrap();
        let err = back.read(refs[5].1).unwrap_err();
        assert!(
            err.contains("CRC") && err.contains(&refs[5].1.at.to_string()),
            "{err}"
        );
        // A checkpoint naming more than the file holds, or another file, is refused.
        let Saved::File { name, len, .. } = saved else {
            panic!("a file")
        };
        let err = ChunkStore::open(
            Saved::File {
                name: name.clone(),
                len: len + 1,
                unused: 0,
            },
            dir.path(),
        )
        .unwrap_err();
        assert!(err.contains("needs"), "{err}");
        assert!(
            ChunkStore::open(
                Saved::File {
                    name: "../labd.redb".into(),
                    len: 0,
                    unused: 0,
                },
                dir.path()
            )
            .is_err()
        );
        // A store never saved takes its file with it; others are removed at start.
        let gone = ChunkStore::create(dir.path()).unwrap();
        let gone_path = gone.path().unwrap();
        drop(gone);
        assert!(!gone_path.exists());
        let stray = ChunkStore::create(dir.path()).unwrap();
        stray.mark_saved();
        let stray_path = stray.path().unwrap();
        drop(stray);
        ChunkStore::remove_others(dir.path(), Some(&path));
        assert!(path.exists() && !stray_path.exists());
    }
}
