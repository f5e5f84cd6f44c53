//! The process groups of the children labd starts (trials, benchmark runners). Each child is started in a group
//! of its own (`process_group(0)`), so one signal reaches everything it started; this is the one place that
//! sends those signals.

/// Sends `signal` to the process group `pgid`. Groups that cannot be a child's own are refused: 0 (a child
/// whose pid is not known yet: `killpg(0)` would signal labd's own group) and 1 (init), and ids beyond the
/// kernel's range. Answers whether the signal was sent.
pub fn kill(pgid: u32, signal: i32) -> bool {
    let Ok(group) = libc::pid_t::try_from(pgid) else {
        return false;
    };
    if group <= 1 {
        return false;
    }
    // SAFETY: killpg has no memory effects; the group is a child's own (process_group(0) at spawn).
    unsafe { libc::killpg(group, signal) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labds_own_group_and_init_are_never_signalled() {
        assert!(!kill(0, 0));
        assert!(!kill(1, 0));
        assert!(!kill(u32::MAX, 0));
    }

    #[test]
    fn a_childs_group_gets_the_signal() {
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .expect("sleep");
        assert!(kill(child.id(), libc::SIGKILL));
        let status = child.wait().expect("wait");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }
}
