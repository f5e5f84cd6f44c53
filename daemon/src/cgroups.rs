//! A cgroup for each trial that has limits, where labd may make one. `memory.max` and `pids.max` then bound the
//! trial and everything it starts, exactly (rlimits count per process, or per user), and the kernel's OOM killer
//! stays inside the group.
//!
//! cgroup v2 needs a subtree delegated to labd (systemd: `Delegate=yes`): labd moves itself into a leaf
//! `labd/` of its own group, enables the memory and pids controllers, and makes `trial-…/` groups beside it.
//! cgroup v1 (hybrid hosts, containers run as root) needs the memory or pids hierarchy writable: trial groups go
//! in `labd-trials/` under labd's own group of each. Anything else: no cgroups, and the rlimits of
//! [`crate::limits`] are all there is.

use std::ffi::CString;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

/// Where cgroup file systems are mounted.
const ROOT: &str = "/sys/fs/cgroup";

/// Where labd makes trial groups.
#[derive(Clone, Debug, PartialEq)]
pub enum Cgroups {
    /// v2: groups `trial-<name>` under `parent`, whose processes were moved to `parent/labd`.
    V2 { parent: PathBuf },
    /// v1: groups `<name>` under these folders of the memory and pids hierarchies.
    V1 {
        memory: Option<PathBuf>,
        pids: Option<PathBuf>,
    },
}

static DETECTED: OnceLock<Option<Cgroups>> = OnceLock::new();

/// Finds out once whether trials can have cgroups (and, for v2, moves labd into its leaf); says so in the log.
pub fn init() -> Option<&'static Cgroups> {
    DETECTED
        .get_or_init(|| match Cgroups::detect() {
            Ok(c) => {
                tracing::info!(
                    "sweeps: trials with limits get their own cgroup ({})",
                    c.describe()
                );
                Some(c)
            }
            Err(why) => {
                tracing::info!("sweeps: no cgroups for trials ({why}); limits are rlimits only");
                None
            }
        })
        .as_ref()
}

impl Cgroups {
    /// What this process may use, from `/proc/self/cgroup`.
    pub fn detect() -> Result<Cgroups, String> {
        let own = std::fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| format!("/proc/self/cgroup: {e}"))?;
        Cgroups::detect_in(Path::new(ROOT), &own, std::process::id())
    }

    /// [`Cgroups::detect`] with the mount point, the `/proc/self/cgroup` text and the pid given.
    fn detect_in(root: &Path, own: &str, pid: u32) -> Result<Cgroups, String> {
        if root.join("cgroup.controllers").exists() {
            return v2(root, own, pid);
        }
        let dir_of = |controller: &str| -> Option<PathBuf> {
            let path = own.lines().find_map(|l| {
                let mut parts = l.splitn(3, ':');
                let (_, names, path) = (parts.next()?, parts.next()?, parts.next()?);
                names.split(',').any(|n| n == controller).then_some(path)
            })?;
            let base = root
                .join(controller)
                .join(path.trim_start_matches('/'))
                .join("labd-trials");
            match std::fs::create_dir(&base) {
                Ok(()) => Some(base),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Some(base),
                Err(_) => None,
            }
        };
        let (memory, pids) = (dir_of("memory"), dir_of("pids"));
        if memory.is_none() && pids.is_none() {
            return Err("no cgroup v2 and no writable v1 memory or pids hierarchy".into());
        }
        let found = Cgroups::V1 { memory, pids };
        found.sweep_leftovers();
        Ok(found)
    }

    /// In words, for the log.
    pub fn describe(&self) -> String {
        match self {
            Cgroups::V2 { parent } => format!("cgroup v2 under {}", parent.display()),
            Cgroups::V1 { memory, pids } => {
                let list: Vec<String> = [("memory", memory), ("pids", pids)]
                    .iter()
                    .filter_map(|(n, d)| d.as_ref().map(|d| format!("{n} at {}", d.display())))
                    .collect();
                format!("cgroup v1: {}", list.join(", "))
            }
        }
    }

    /// Removes the empty trial groups a labd that is gone left behind (groups are named after the labd that
    /// made them, so several labd processes on one host, as in tests, keep apart).
    fn sweep_leftovers(&self) {
        let bases: Vec<&PathBuf> = match self {
            Cgroups::V2 { parent } => vec![parent],
            Cgroups::V1 { memory, pids } => memory.iter().chain(pids.iter()).collect(),
        };
        for base in bases {
            for e in std::fs::read_dir(base).into_iter().flatten().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let owner = name
                    .strip_prefix("trial-")
                    .unwrap_or(&name)
                    .strip_prefix("labd")
                    .and_then(|rest| rest.split('-').next())
                    .and_then(|pid| pid.parse::<u32>().ok());
                let gone = owner.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
                if gone && e.path().is_dir() {
                    let _ = std::fs::remove_dir(e.path());
                }
            }
        }
    }

    /// Makes the group(s) of one trial with its limits, named `labd<pid>-<name>`. `name` must be a safe file
    /// name.
    pub fn create(
        &self,
        name: &str,
        memory: Option<u64>,
        processes: Option<u64>,
    ) -> io::Result<Cgroup> {
        let name = &format!("labd{}-{name}", std::process::id());
        let mut group = Cgroup {
            v2: matches!(self, Cgroups::V2 { .. }),
            dirs: Vec::new(),
        };
        let made = (|| -> io::Result<()> {
            match self {
                Cgroups::V2 { parent } => {
                    let dir = fresh_dir(&parent.join(format!("trial-{name}")))?;
                    group.dirs.push(dir.clone());
                    if let Some(bytes) = memory {
                        write(&dir, "memory.max", &bytes.to_string())?;
                        // Best effort: swap accounting may be off.
                        let _ = write(&dir, "memory.swap.max", "0");
                    }
                    // One process out of memory takes the whole trial with it.
                    let _ = write(&dir, "memory.oom.group", "1");
                    if let Some(n) = processes {
                        write(&dir, "pids.max", &n.to_string())?;
                    }
                }
                Cgroups::V1 {
                    memory: mem_base,
                    pids: pids_base,
                } => {
                    if let (Some(base), Some(bytes)) = (mem_base, memory) {
                        let dir = fresh_dir(&base.join(name))?;
                        group.dirs.push(dir.clone());
                        write(&dir, "memory.limit_in_bytes", &bytes.to_string())?;
                        // Memory and swap together, where swap is accounted (best effort).
                        let _ = write(&dir, "memory.memsw.limit_in_bytes", &bytes.to_string());
                    }
                    if let (Some(base), Some(n)) = (pids_base, processes) {
                        let dir = fresh_dir(&base.join(name))?;
                        group.dirs.push(dir.clone());
                        write(&dir, "pids.max", &n.to_string())?;
                    }
                }
            }
            Ok(())
        })();
        match made {
            Ok(()) => Ok(group),
            Err(e) => {
                group.remove();
                Err(e)
            }
        }
    }
}

/// cgroup v2: labd's group must hold labd alone (a group delegated to it), with memory and pids available.
fn v2(root: &Path, own: &str, pid: u32) -> Result<Cgroups, String> {
    let path = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or("cgroup v2 without a 0:: line in /proc/self/cgroup")?;
    let parent = root.join(path.trim().trim_start_matches('/'));
    let leaf = parent.join("labd");
    // Already moved (a second detection in this process)?
    if path.trim().ends_with("/labd") {
        let up = parent
            .parent()
            .ok_or("cgroup v2: labd's group has no parent")?;
        return Ok(Cgroups::V2 {
            parent: up.to_path_buf(),
        });
    }
    let read = |f: &str| {
        std::fs::read_to_string(parent.join(f))
            .map_err(|e| format!("{}: {e}", parent.join(f).display()))
    };
    let controllers = read("cgroup.controllers")?;
    for c in ["memory", "pids"] {
        if !controllers.split_whitespace().any(|x| x == c) {
            return Err(format!(
                "the {c} controller is not available in {} (systemd: Delegate=yes)",
                parent.display()
            ));
        }
    }
    let others = read("cgroup.procs")?
        .split_whitespace()
        .any(|p| p != pid.to_string());
    if others {
        return Err(format!(
            "{} holds other processes than labd: not delegated to labd (systemd: Delegate=yes)",
            parent.display()
        ));
    }
    let fail = |what: &str, e: io::Error| format!("cgroup v2 {what}: {e}");
    match std::fs::create_dir(&leaf) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(fail(&leaf.display().to_string(), e)),
    }
    write(&leaf, "cgroup.procs", &pid.to_string()).map_err(|e| fail("moving labd", e))?;
    write(&parent, "cgroup.subtree_control", "+memory +pids")
        .map_err(|e| fail("enabling memory and pids", e))?;
    let found = Cgroups::V2 { parent };
    found.sweep_leftovers();
    Ok(found)
}

/// `dir`, made new (a leftover of the same name is removed first).
fn fresh_dir(dir: &Path) -> io::Result<PathBuf> {
    if dir.exists() {
        let _ = std::fs::remove_dir(dir);
    }
    std::fs::create_dir(dir)?;
    Ok(dir.to_path_buf())
}

fn write(dir: &Path, file: &str, value: &str) -> io::Result<()> {
    std::fs::write(dir.join(file), value)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.join(file).display())))
}

/// The group(s) of one trial.
#[derive(Debug)]
pub struct Cgroup {
    v2: bool,
    dirs: Vec<PathBuf>,
}

impl Cgroup {
    /// The `cgroup.procs` files to write in the child, made before it is forked.
    pub fn procs_files(&self) -> Vec<CString> {
        use std::os::unix::ffi::OsStrExt;
        self.dirs
            .iter()
            .filter_map(|d| CString::new(d.join("cgroup.procs").as_os_str().as_bytes()).ok())
            .collect()
    }

    /// Times the kernel killed a process of the group for lack of memory.
    pub fn oom_kills(&self) -> u64 {
        let file = if self.v2 {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        self.dirs
            .iter()
            .filter_map(|d| std::fs::read_to_string(d.join(file)).ok())
            .flat_map(|text| {
                text.lines()
                    .filter_map(|l| l.strip_prefix("oom_kill "))
                    .filter_map(|n| n.trim().parse::<u64>().ok())
                    .collect::<Vec<_>>()
            })
            .sum()
    }

    /// Kills what is left in the group and removes it (best effort; a leftover is removed at the next start).
    /// Dropping the group does the same.
    pub fn remove(self) {
        drop(self);
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        for dir in &self.dirs {
            for _ in 0..100 {
                match std::fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(_) => {
                        kill_members(dir, self.v2);
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            }
        }
    }
}

/// SIGKILL to every process still in the group.
fn kill_members(dir: &Path, v2: bool) {
    if v2 && std::fs::write(dir.join("cgroup.kill"), "1").is_ok() {
        return;
    }
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    for pid in procs
        .split_whitespace()
        .filter_map(|p| p.parse::<i32>().ok())
    {
        // SAFETY: kill with a pid read from the group and a valid signal.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// Moves the calling process into the groups whose `cgroup.procs` files are given. For `pre_exec`: system
/// calls only, no allocation.
pub fn join_in_child(procs: &[CString]) -> io::Result<()> {
    const ME: &[u8] = b"0";
    for file in procs {
        // SAFETY: a NUL-terminated path and a valid buffer; the descriptor is closed before the next step.
        let ok = unsafe {
            let fd = libc::open(file.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                false
            } else {
                let n = libc::write(fd, ME.as_ptr().cast(), ME.len());
                libc::close(fd);
                n == ME.len() as isize
            }
        };
        if !ok {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_groups_go_under_labds_own_memory_and_pids_groups() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("memory/jobs/a")).unwrap();
        std::fs::create_dir_all(root.join("pids")).unwrap();
        let own = "9:name=systemd:/\n8:pids:/\n4:memory:/jobs/a\n1:cpu,cpuacct:/\n0::/\n";
        let c = Cgroups::detect_in(root, own, 42).unwrap();
        assert_eq!(
            c,
            Cgroups::V1 {
                memory: Some(root.join("memory/jobs/a/labd-trials")),
                pids: Some(root.join("pids/labd-trials")),
            }
        );
        let g = c.create("s-t-1", Some(1 << 28), Some(64)).unwrap();
        let me = format!("labd{}-s-t-1", std::process::id());
        let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
        assert_eq!(
            read(&format!(
                "memory/jobs/a/labd-trials/{me}/memory.limit_in_bytes"
            )),
            "268435456"
        );
        assert_eq!(read(&format!("pids/labd-trials/{me}/pids.max")), "64");
        assert_eq!(g.procs_files().len(), 2);
        // Only what has a limit gets a group.
        let only = c.create("s-t-2", None, Some(8)).unwrap();
        assert_eq!(only.procs_files().len(), 1);
    }

    #[test]
    fn v2_needs_a_group_of_its_own_with_memory_and_pids() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let svc = root.join("system.slice/labd.service");
        std::fs::create_dir_all(&svc).unwrap();
        std::fs::write(root.join("cgroup.controllers"), "cpu memory pids").unwrap();
        std::fs::write(svc.join("cgroup.controllers"), "cpu memory pids").unwrap();
        std::fs::write(svc.join("cgroup.procs"), "42\n77\n").unwrap();
        let own = "0::/system.slice/labd.service\n";
        let e = Cgroups::detect_in(root, own, 42).unwrap_err();
        assert!(e.contains("other processes"), "{e}");
        std::fs::write(svc.join("cgroup.procs"), "42\n").unwrap();
        let c = Cgroups::detect_in(root, own, 42).unwrap();
        assert_eq!(
            c,
            Cgroups::V2 {
                parent: svc.clone()
            }
        );
        assert_eq!(
            std::fs::read_to_string(svc.join("labd/cgroup.procs")).unwrap(),
            "42"
        );
        assert_eq!(
            std::fs::read_to_string(svc.join("cgroup.subtree_control")).unwrap(),
            "+memory +pids"
        );
        c.create("s-t-1", Some(1 << 20), None).unwrap();
        let me = format!("trial-labd{}-s-t-1", std::process::id());
        assert_eq!(
            std::fs::read_to_string(svc.join(me).join("memory.max")).unwrap(),
            "1048576"
        );
        std::fs::write(svc.join("cgroup.controllers"), "cpu").unwrap();
        std::fs::write(svc.join("cgroup.procs"), "42\n").unwrap();
        let e = Cgroups::detect_in(root, own, 42).unwrap_err();
        assert!(e.contains("memory controller"), "{e}");
    }
}
