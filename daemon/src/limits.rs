//! Kernel-enforced limits on the processes labd starts (sweep trials, benchmark runners), so that one that
//! eats all memory or forks wildly fails alone: labd and the host go on.
//!
//! [`apply_in_child`] runs between `fork` and `exec`; it only makes system calls and allocates nothing.

use labd_schemas::sweep::Limits;
use std::io;
use std::os::unix::fs::MetadataExt;

/// What to set in a child, computed before it is started.
#[derive(Clone, Copy, Debug, Default)]
pub struct ChildLimits {
    /// `RLIMIT_DATA`, bytes.
    pub memory: Option<u64>,
    /// `RLIMIT_NPROC`: tasks of the user in all.
    pub tasks: Option<u64>,
}

impl ChildLimits {
    /// The limits of a trial: its memory, and its processes on top of those the user already runs.
    pub fn for_trial(limits: &Limits) -> ChildLimits {
        ChildLimits {
            memory: limits.memory,
            tasks: limits.processes.map(|n| user_tasks() + n),
        }
    }
}

/// Sets the limits in the calling process and makes it the OOM killer's first choice (before labd).
///
/// Meant for `pre_exec`: async-signal-safe (system calls only, no allocation).
pub fn apply_in_child(limits: ChildLimits) -> io::Result<()> {
    if let Some(bytes) = limits.memory {
        set(libc::RLIMIT_DATA, bytes)?;
    }
    if let Some(n) = limits.tasks {
        set(libc::RLIMIT_NPROC, n)?;
    }
    prefer_for_oom();
    // labd ignores SIGXFSZ (see `ignore_file_size_signal`); ignored signals survive exec, so the child gets
    // the default back.
    // SAFETY: signal() with a valid signal number and SIG_DFL is async-signal-safe.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_DFL) };
    Ok(())
}

/// Makes a write past the file-size limit (RLIMIT_FSIZE) fail with an error, which the event log reports
/// and recovers from, instead of killing labd with SIGXFSZ.
pub fn ignore_file_size_signal() {
    // SAFETY: signal() with a valid signal number and SIG_IGN, before any thread depends on the disposition.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
}

#[cfg(target_env = "gnu")]
type Resource = libc::__rlimit_resource_t;
#[cfg(not(target_env = "gnu"))]
type Resource = libc::c_int;

fn set(resource: Resource, value: u64) -> io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: value as libc::rlim_t,
        rlim_max: value as libc::rlim_t,
    };
    // SAFETY: `limit` is a valid rlimit for the duration of the call.
    if unsafe { libc::setrlimit(resource, &limit) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Raises the process's `oom_score_adj` (allowed without privileges), so that when memory runs out the kernel
/// kills it rather than labd. Best effort.
fn prefer_for_oom() {
    const PATH: &[u8] = b"/proc/self/oom_score_adj\0";
    const VALUE: &[u8] = b"500";
    // SAFETY: a NUL-terminated path and a valid buffer; the descriptor is closed before returning.
    unsafe {
        let fd = libc::open(PATH.as_ptr().cast(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd >= 0 {
            let _ = libc::write(fd, VALUE.as_ptr().cast(), VALUE.len());
            libc::close(fd);
        }
    }
}

/// Tasks (processes and threads) of this process's user now: what `RLIMIT_NPROC` counts.
fn user_tasks() -> u64 {
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        })
        .filter(|e| e.metadata().is_ok_and(|m| m.uid() == uid))
        .map(|e| {
            std::fs::read_to_string(e.path().join("status"))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("Threads:"))
                        .and_then(|v| v.trim().parse::<u64>().ok())
                })
                .unwrap_or(1)
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trials_task_limit_counts_what_the_user_runs_already() {
        let l = ChildLimits::for_trial(&Limits {
            memory: Some(1 << 30),
            processes: Some(10),
        });
        assert_eq!(l.memory, Some(1 << 30));
        // This test's own threads count.
        assert!(l.tasks.is_some_and(|t| t > 10), "{l:?}");
    }
}
