//! Finding the files to read: walking the watched folders (following symlinks, noticing loops, stat'ing only
//! folders, symlinks and files of a known format), and the files read with a file (its sidecars).

use super::Ingestor;
use labd_schemas::event::Severity;
use labd_sources::Format;
use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

impl Ingestor {
    /// Walks `root` (following symlinks, noticing loops) and collects files of known formats with their
    /// metadata; only folders, symlinks and files of a known format are stat'ed.
    pub(super) fn discover(
        &mut self,
        root: &Path,
        out: &mut Vec<(PathBuf, Format, std::fs::Metadata)>,
    ) {
        if let Ok(m) = std::fs::metadata(root)
            && m.is_file()
        {
            match self.format_of(root) {
                Some(f) => out.push((root.to_path_buf(), f, m)),
                None => {
                    let reason =
                        "not a file labd reads (run logs end in .jsonl or .ndjson)".to_string();
                    let _ = self.problem(root, reason, Severity::Warning);
                }
            }
            return;
        }
        let mut visited = HashSet::new();
        let mut stack = vec![root.to_path_buf()];
        let mut problems = Vec::new();
        while let Some(dir) = stack.pop() {
            let meta = match std::fs::metadata(&dir) {
                Ok(m) => m,
                Err(e) => {
                    if dir != root || root.exists() {
                        problems.push((dir.clone(), format!("cannot read folder: {e}")));
                    }
                    continue;
                }
            };
            if !visited.insert((meta.dev(), meta.ino())) {
                problems.push((
                    dir.clone(),
                    "symlink loop: this folder was already visited; not followed".into(),
                ));
                continue;
            }
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) => {
                    problems.push((dir.clone(), format!("cannot list folder: {e}")));
                    continue;
                }
            };
            let mut children: Vec<(PathBuf, Option<std::fs::FileType>)> = entries
                .filter_map(|e| e.ok().map(|e| (e.path(), e.file_type().ok())))
                .collect();
            children.sort_by(|a, b| a.0.cmp(&b.0));
            for (path, file_type) in children.into_iter().rev() {
                let format = self.format_of(&path);
                if file_type.is_some_and(|t| t.is_file()) && format.is_none() {
                    continue;
                }
                match std::fs::metadata(&path) {
                    Ok(m) if m.is_dir() => stack.push(path),
                    Ok(m) if m.is_file() => {
                        if let Some(f) = format {
                            out.push((path, f, m));
                        }
                    }
                    Ok(m) => {
                        // FIFOs, sockets and devices: opening one could block the intake forever.
                        if format.is_some() {
                            let kind = file_kind(&m);
                            problems.push((path, format!("{kind}, not a regular file; not read")));
                        }
                    }
                    Err(e) => {
                        if format.is_some() {
                            problems.push((path, format!("cannot read: {e}")));
                        }
                    }
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        for (path, reason) in problems {
            let _ = self.problem(&path, reason, Severity::Warning);
        }
    }
}

/// What kind of file system entry `m` is, in words.
fn file_kind(m: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = m.file_type();
    if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() || t.is_char_device() {
        "a device"
    } else {
        "a special file"
    }
}

/// The files read with `path` (see [`Format::sidecars`]): name → content; missing ones are left out.
pub(super) fn sidecars(format: Format, path: &Path) -> Vec<(String, String)> {
    if format == Format::ExpManager {
        return experiment_folders(path);
    }
    if format == Format::TensorBoard {
        // The names of the folder's event files (the run is known by the first).
        let Some(Ok(entries)) = path.parent().map(std::fs::read_dir) else {
            return Vec::new();
        };
        return entries
            .flatten()
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                labd_sources::tensorboard::is_event_file(&n)
                    .then(|| (format!("tfevents:{n}"), String::new()))
            })
            .collect();
    }
    let base = match format {
        Format::MlflowMetric | Format::MlflowRun => labd_sources::mlflow::run_dir(path),
        _ => path.parent().map(Path::to_path_buf),
    };
    let Some(base) = base else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for name in format.sidecars() {
        if let Some(folder) = name.strip_suffix('/') {
            let Ok(entries) = std::fs::read_dir(base.join(folder)) else {
                continue;
            };
            let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            files.sort();
            for f in files.into_iter().filter(|f| f.is_file()) {
                if let (Some(n), Ok(text)) = (f.file_name(), std::fs::read_to_string(&f)) {
                    out.push((format!("{name}{}", n.to_string_lossy()), text));
                }
            }
        } else if let Ok(text) = std::fs::read_to_string(base.join(name)) {
            out.push((name.to_string(), text));
        }
    }
    out
}

/// The experiment manager's folders beside its registry: each one's known files, and its checkpoints' names
/// (as `<folder>/checkpoints/<name>` with no content).
fn experiment_folders(registry: &Path) -> Vec<(String, String)> {
    let Some(base) = registry.parent() else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(base) else {
        return Vec::new();
    };
    let mut folders: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    folders.sort();
    let mut out = Vec::new();
    for dir in folders {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for file in labd_sources::expmgr::FILES {
            if let Ok(text) = std::fs::read_to_string(dir.join(file)) {
                out.push((format!("{name}/{file}"), text));
            }
        }
        if let Ok(ckpts) = std::fs::read_dir(dir.join("checkpoints")) {
            let mut names: Vec<String> = ckpts
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            out.extend(
                names
                    .into_iter()
                    .map(|c| (format!("{name}/checkpoints/{c}"), String::new())),
            );
        }
    }
    out
}
