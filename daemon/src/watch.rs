//! File watching: notify (recursive, on every watched folder) is only a trigger; it reports "these paths
//! changed" to the ingest loop, which decides what to read. A periodic rescan there catches what notify missed.

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;

/// What the watcher tells the ingest loop.
pub enum Changed {
    Paths(Vec<PathBuf>),
}

/// Keeps the watches alive; dropping it stops them.
pub struct Watch {
    watcher: Option<RecommendedWatcher>,
    watched: Vec<PathBuf>,
}

impl Watch {
    /// Starts watching `roots` (those that exist; the others are retried by [`Watch::retry_missing`]).
    pub fn start<T: From<Changed> + Send + 'static>(roots: &[PathBuf], tx: Sender<T>) -> Watch {
        let watcher =
            notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
                Ok(event) => {
                    if matches!(event.kind, notify::EventKind::Access(_)) {
                        return;
                    }
                    let _ = tx.send(T::from(Changed::Paths(event.paths)));
                }
                Err(e) => tracing::warn!("file watcher: {e}"),
            });
        let watcher = match watcher {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!("file watching unavailable ({e}); relying on the periodic rescan");
                None
            }
        };
        let mut w = Watch {
            watcher,
            watched: Vec::new(),
        };
        w.retry_missing(roots);
        w
    }

    /// Watches the roots not watched yet (created since, or missing before).
    pub fn retry_missing(&mut self, roots: &[PathBuf]) {
        let Some(watcher) = self.watcher.as_mut() else {
            return;
        };
        for root in roots {
            if self.watched.iter().any(|w| w == root) {
                continue;
            }
            if !Path::new(root).is_dir() {
                continue;
            }
            match watcher.watch(root, RecursiveMode::Recursive) {
                Ok(()) => {
                    tracing::info!("watching {}", root.display());
                    self.watched.push(root.clone());
                }
                Err(e) => tracing::warn!(
                    "cannot watch {}: {e}; the periodic rescan still covers it",
                    root.display()
                ),
            }
        }
    }
}
