//! What the host has and what trials use: CPU cores and RAM through sysinfo, NVIDIA GPUs through NVML
//! (nvml-wrapper). Without GPUs or without NVML it says so once and schedules on CPU and RAM. The
//! [`Ledger`] holds what running trials reserved; a trial starts only when its needs fit beside them.

use labd_schemas::sweep::{GpuUsage, Resources, Usage};
use std::collections::{HashMap, HashSet};

/// Whether the machine under `root` is an NVIDIA Jetson: L4T's release file, or a Tegra in the device tree.
pub fn is_jetson(root: &std::path::Path) -> bool {
    root.join("etc/nv_tegra_release").is_file()
        || std::fs::read(root.join("proc/device-tree/compatible"))
            .is_ok_and(|c| c.windows(12).any(|w| w == b"nvidia,tegra"))
}

/// The share of RAM `parallel: auto` plans trials into (the sweep system's 70 %).
const AUTO_RAM_SHARE: f64 = 0.7;

/// What `parallel: auto` allows, as the sweep system computed it: 70 % of the RAM divided by a trial's memory
/// (`resources.ram`, else `limits.memory`), capped by the cores (by `resources.cpus` a trial) and the GPUs (by
/// `resources.gpus` a trial); on a Jetson, also the seed's table (trials of up to 2 GiB: 4 at once, 4 GiB: 3,
/// 8 GiB: 2, more: 1). At least 1.
pub fn auto_budget(
    cores: f64,
    ram_total: u64,
    gpus: usize,
    jetson: bool,
    spec: &labd_schemas::sweep::SweepSpec,
) -> labd_schemas::sweep::ParallelBudget {
    const GIB: f64 = (1u64 << 30) as f64;
    let res = &spec.resources;
    let mut caps: Vec<(u64, String)> = Vec::new();
    let trial_ram = res.ram.or(spec.limits.memory);
    if let Some(r) = trial_ram.filter(|r| *r > 0 && ram_total > 0) {
        let n = (AUTO_RAM_SHARE * ram_total as f64 / r as f64).floor() as u64;
        caps.push((
            n,
            format!(
                "70 % of {:.1} GiB RAM / {:.1} GiB a trial = {n}",
                ram_total as f64 / GIB,
                r as f64 / GIB
            ),
        ));
    }
    let cpus = if res.cpus > 0.0 { res.cpus } else { 1.0 };
    let n = (cores / cpus).floor() as u64;
    caps.push((n, format!("{cores} cores / {cpus} a trial = {n}")));
    if res.gpus > 0 {
        let n = gpus as u64 / u64::from(res.gpus);
        caps.push((n, format!("{gpus} GPUs / {} a trial = {n}", res.gpus)));
    }
    if jetson || spec.jetson {
        let gib = trial_ram.map_or(0.0, |r| r as f64 / GIB);
        let n = match gib {
            g if g <= 2.0 => 4,
            g if g <= 4.0 => 3,
            g if g <= 8.0 => 2,
            _ => 1,
        };
        caps.push((n, format!("Jetson profile for {gib:.1} GiB a trial = {n}")));
    }
    let parallel = caps.iter().map(|c| c.0).min().unwrap_or(1).max(1);
    labd_schemas::sweep::ParallelBudget {
        parallel: u32::try_from(parallel).unwrap_or(u32::MAX),
        why: caps.into_iter().map(|c| c.1).collect::<Vec<_>>().join("; "),
    }
}

/// One GPU as NVML reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct Gpu {
    pub index: u32,
    pub name: String,
    pub memory_total: u64,
    pub memory_free: u64,
}

/// The host: its cores, RAM and GPUs, and a sampler of what processes use.
pub struct Host {
    sys: Option<sysinfo::System>,
    nvml: Option<nvml_wrapper::Nvml>,
    pub cores: f64,
    pub ram_total: u64,
    /// An NVIDIA Jetson (unified memory: its GPU allocates from the RAM).
    pub jetson: bool,
}

impl Host {
    /// Looks at the host once; logs what it found (GPUs, or why none).
    pub fn probe() -> Host {
        let mut sys = match sysinfo::System::new() {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(
                    "sweeps: cannot read CPU and memory figures ({e}); scheduling by the parallel limit only"
                );
                None
            }
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let ram_total = sys.as_mut().map_or(0, |s| {
            s.refresh_memory();
            s.total_memory()
        });
        let nvml = match nvml_wrapper::Nvml::init() {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::info!("sweeps: no NVIDIA GPUs ({e}); scheduling trials on CPU and RAM");
                None
            }
        };
        let jetson = is_jetson(std::path::Path::new("/"));
        if jetson {
            tracing::info!(
                "sweeps: this host is an NVIDIA Jetson: parallel: auto uses the Jetson profile"
            );
        }
        let host = Host {
            sys,
            nvml,
            cores,
            ram_total,
            jetson,
        };
        let gpus = host.gpus();
        if host.nvml.is_some() {
            if gpus.is_empty() {
                tracing::info!("sweeps: NVML found no GPU; scheduling trials on CPU and RAM");
            }
            for g in &gpus {
                tracing::info!(
                    "sweeps: GPU {} {} ({:.1} GiB, {:.1} GiB free)",
                    g.index,
                    g.name,
                    g.memory_total as f64 / (1u64 << 30) as f64,
                    g.memory_free as f64 / (1u64 << 30) as f64
                );
            }
        }
        tracing::info!(
            "sweeps: {} cores, {:.1} GiB RAM, {} GPUs",
            cores,
            ram_total as f64 / (1u64 << 30) as f64,
            gpus.len()
        );
        host
    }

    /// The GPUs now, with their free memory.
    pub fn gpus(&self) -> Vec<Gpu> {
        let Some(nvml) = &self.nvml else {
            return Vec::new();
        };
        let n = nvml.device_count().unwrap_or(0);
        (0..n)
            .filter_map(|i| {
                let d = nvml.device_by_index(i).ok()?;
                let m = d.memory_info().ok()?;
                Some(Gpu {
                    index: i,
                    name: d.name().unwrap_or_else(|_| "GPU".into()),
                    memory_total: m.total,
                    memory_free: m.free,
                })
            })
            .collect()
    }

    /// RAM available now (0 when unknown).
    pub fn ram_available(&mut self) -> u64 {
        self.sys.as_mut().map_or(0, |s| {
            s.refresh_memory();
            s.available_memory()
        })
    }

    /// What each trial (its root pid and GPUs) uses now: the CPU and RSS of its process tree, the host's CPU
    /// and RAM, and its GPUs' utilization and memory.
    pub fn sample(&mut self, trials: &[(u32, Vec<u32>)]) -> Vec<Usage> {
        let Some(sys) = self.sys.as_mut() else {
            return vec![Usage::default(); trials.len()];
        };
        sys.refresh_memory();
        sys.refresh_cpu_usage();
        sys.refresh_processes_specifics(
            sysinfo::ProcessesToUpdate::All,
            true,
            sysinfo::ProcessRefreshKind::nothing()
                .with_memory()
                .with_cpu(),
        );
        let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
        for (pid, p) in sys.processes() {
            if let Some(parent) = p.parent() {
                children
                    .entry(parent.as_u32())
                    .or_default()
                    .push(pid.as_u32());
            }
        }
        let host_cpu = sys.global_cpu_usage() as f64 / 100.0;
        let (used, total) = (sys.used_memory(), sys.total_memory());
        let gpu_now: HashMap<u32, GpuUsage> = self
            .nvml
            .as_ref()
            .map(|nvml| {
                (0..nvml.device_count().unwrap_or(0))
                    .filter_map(|i| {
                        let d = nvml.device_by_index(i).ok()?;
                        let m = d.memory_info().ok()?;
                        let u = d.utilization_rates().ok();
                        Some((
                            i,
                            GpuUsage {
                                index: i,
                                util: u.map_or(0.0, |u| u.gpu as f64 / 100.0),
                                memory_used: m.used,
                                memory_total: m.total,
                            },
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        trials
            .iter()
            .map(|(root, gpus)| {
                let mut tree = vec![*root];
                let mut seen = HashSet::new();
                let (mut cpu, mut rss, mut n) = (0.0, 0, 0);
                while let Some(pid) = tree.pop() {
                    if !seen.insert(pid) {
                        continue;
                    }
                    if let Some(p) = sys.process(sysinfo::Pid::from_u32(pid)) {
                        cpu += p.cpu_usage() as f64 / 100.0;
                        rss += p.memory();
                        n += 1;
                    }
                    tree.extend(children.get(&pid).into_iter().flatten());
                }
                Usage {
                    cpu,
                    rss,
                    processes: n,
                    host_cpu,
                    host_ram_used: used,
                    host_ram_total: total,
                    gpus: gpus
                        .iter()
                        .filter_map(|g| gpu_now.get(g).cloned())
                        .collect(),
                }
            })
            .collect()
    }
}

/// What running trials reserved.
#[derive(Debug, Default)]
pub struct Ledger {
    pub cpus: f64,
    pub ram: u64,
    /// GPUs held whole (trials that gave no `gpu_memory`).
    pub gpus_whole: HashSet<u32>,
    /// GPU memory reserved per GPU by trials that gave `gpu_memory`.
    pub gpu_memory: HashMap<u32, u64>,
}

/// The GPUs a trial was given, and what it reserved (to release when it ends).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Grant {
    pub cpus: f64,
    pub ram: u64,
    pub gpus: Vec<u32>,
    pub gpu_memory: Option<u64>,
}

impl Ledger {
    /// Reserves `need` if it fits beside what is reserved, on a host with `cores`, `ram_total` and `gpus`;
    /// `running` says whether anything runs now (a trial that needs more than the whole host still runs
    /// alone, rather than never).
    pub fn reserve(
        &mut self,
        need: &Resources,
        cores: f64,
        ram_total: u64,
        gpus: &[Gpu],
        running: bool,
    ) -> Option<Grant> {
        let cpus = need.cpus.max(0.0);
        if running && self.cpus + cpus > cores + 1e-9 {
            return None;
        }
        let ram = need.ram.unwrap_or(0);
        if running && ram > 0 && ram_total > 0 && self.ram + ram > ram_total {
            return None;
        }
        let mut chosen = Vec::new();
        if need.gpus > 0 {
            for g in gpus {
                if chosen.len() == need.gpus as usize {
                    break;
                }
                if self.gpus_whole.contains(&g.index) {
                    continue;
                }
                let fits = match need.gpu_memory {
                    // Shared GPUs: what others reserved plus this must fit in what was free.
                    Some(m) => {
                        self.gpu_memory.get(&g.index).copied().unwrap_or(0) + m <= g.memory_free
                    }
                    None => !self.gpu_memory.contains_key(&g.index),
                };
                if fits {
                    chosen.push(g.index);
                }
            }
            if chosen.len() < need.gpus as usize {
                return None;
            }
        }
        self.cpus += cpus;
        self.ram += ram;
        for g in &chosen {
            match need.gpu_memory {
                Some(m) => *self.gpu_memory.entry(*g).or_insert(0) += m,
                None => {
                    self.gpus_whole.insert(*g);
                }
            }
        }
        Some(Grant {
            cpus,
            ram,
            gpus: chosen,
            gpu_memory: need.gpu_memory,
        })
    }

    /// Gives back what a trial reserved.
    pub fn release(&mut self, g: &Grant) {
        self.cpus = (self.cpus - g.cpus).max(0.0);
        self.ram = self.ram.saturating_sub(g.ram);
        for i in &g.gpus {
            match g.gpu_memory {
                Some(m) => {
                    if let Some(r) = self.gpu_memory.get_mut(i) {
                        *r = r.saturating_sub(m);
                        if *r == 0 {
                            self.gpu_memory.remove(i);
                        }
                    }
                }
                None => {
                    self.gpus_whole.remove(i);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu(index: u32, free_gib: u64) -> Gpu {
        Gpu {
            index,
            name: "test".into(),
            memory_total: 80 << 30,
            memory_free: free_gib << 30,
        }
    }

    #[test]
    fn trials_start_only_when_their_needs_fit() {
        let mut l = Ledger::default();
        let need = Resources {
            cpus: 2.0,
            ram: Some(4 << 30),
            gpus: 0,
            gpu_memory: None,
        };
        let a = l.reserve(&need, 4.0, 16 << 30, &[], false).unwrap();
        let b = l.reserve(&need, 4.0, 16 << 30, &[], true).unwrap();
        assert!(
            l.reserve(&need, 4.0, 16 << 30, &[], true).is_none(),
            "cores used up"
        );
        l.release(&a);
        let big = Resources {
            ram: Some(13 << 30),
            ..need.clone()
        };
        assert!(
            l.reserve(&big, 8.0, 16 << 30, &[], true).is_none(),
            "RAM used up"
        );
        l.release(&b);
        let huge = Resources {
            cpus: 64.0,
            ..need.clone()
        };
        assert!(
            l.reserve(&huge, 4.0, 16 << 30, &[], false).is_some(),
            "alone, it runs anyway"
        );
    }

    #[test]
    fn gpus_are_given_whole_or_shared_by_memory() {
        let gpus = [gpu(0, 80), gpu(1, 10)];
        let mut l = Ledger::default();
        let whole = Resources {
            cpus: 0.0,
            ram: None,
            gpus: 1,
            gpu_memory: None,
        };
        let a = l.reserve(&whole, 8.0, 0, &gpus, false).unwrap();
        assert_eq!(a.gpus, [0]);
        let b = l.reserve(&whole, 8.0, 0, &gpus, true).unwrap();
        assert_eq!(b.gpus, [1]);
        assert!(l.reserve(&whole, 8.0, 0, &gpus, true).is_none());
        l.release(&a);
        l.release(&b);
        let shared = Resources {
            gpu_memory: Some(30 << 30),
            ..whole.clone()
        };
        let c = l.reserve(&shared, 8.0, 0, &gpus, false).unwrap();
        let d = l.reserve(&shared, 8.0, 0, &gpus, true).unwrap();
        assert_eq!(
            (c.gpus.clone(), d.gpus.clone()),
            (vec![0], vec![0]),
            "two fit in GPU 0's 80 GiB"
        );
        assert!(
            l.reserve(&shared, 8.0, 0, &gpus, true).is_none(),
            "a third does not; GPU 1 has 10 GiB"
        );
        assert!(
            l.reserve(&whole, 8.0, 0, &gpus[..1], true).is_none(),
            "a shared GPU is not given whole"
        );
        l.release(&c);
        l.release(&d);
        assert!(l.gpu_memory.is_empty());
    }

    fn sweep(extra: serde_json::Value) -> labd_schemas::sweep::SweepSpec {
        let mut v = serde_json::json!({"sweep": {"lr": [1, 2]}, "command": "true"});
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        serde_json::from_value(v).unwrap()
    }

    /// The sweep system's `--parallel auto` (seed 003): 70 % of RAM over a trial's memory, capped by cores
    /// and GPUs; on a Jetson its table.
    #[test]
    fn auto_parallelism_is_the_sweep_systems() {
        const GIB: u64 = 1 << 30;
        // 64 GiB, 12 cores, 8 GiB a trial: 0.7 × 64 / 8 = 5.6 → 5; 12 cores → 12.
        let s = sweep(serde_json::json!({"resources": {"ram": "8G"}}));
        let b = auto_budget(12.0, 64 * GIB, 0, false, &s);
        assert_eq!(b.parallel, 5, "{}", b.why);
        assert!(
            b.why.contains("70 % of 64.0 GiB RAM / 8.0 GiB a trial = 5"),
            "{}",
            b.why
        );
        // Cores per trial, GPUs per trial.
        let s = sweep(serde_json::json!({"resources": {"ram": "1G", "cpus": 4, "gpus": 1}}));
        assert_eq!(auto_budget(12.0, 64 * GIB, 8, false, &s).parallel, 3);
        assert_eq!(auto_budget(32.0, 64 * GIB, 2, false, &s).parallel, 2);
        // No memory given: cores alone; limits.memory counts when resources.ram is not given.
        assert_eq!(
            auto_budget(6.0, 64 * GIB, 0, false, &sweep(serde_json::json!({}))).parallel,
            6
        );
        let s = sweep(serde_json::json!({"limits": {"memory": "16G"}}));
        assert_eq!(auto_budget(64.0, 64 * GIB, 0, false, &s).parallel, 2);
        // The Jetson table (64 GB Orin): 2 GB a trial → 4, 4 GB → 3, 8 GB → 2; `jetson_optimized` forces it.
        for (ram, want) in [("2G", 4), ("3.5G", 3), ("8G", 2), ("12G", 1)] {
            let s = sweep(serde_json::json!({"resources": {"ram": ram}}));
            assert_eq!(
                auto_budget(12.0, 64 * GIB, 1, true, &s).parallel,
                want,
                "{ram}"
            );
        }
        let s = sweep(serde_json::json!({"resources": {"ram": "2G"}, "jetson_optimized": true}));
        assert!(s.jetson);
        assert_eq!(auto_budget(12.0, 64 * GIB, 0, false, &s).parallel, 4);
        // Never below one.
        let s = sweep(serde_json::json!({"resources": {"ram": "128G"}}));
        assert_eq!(auto_budget(2.0, 16 * GIB, 0, false, &s).parallel, 1);
    }

    #[test]
    fn a_jetson_is_known_by_its_release_file_or_device_tree() {
        let root = tempfile::tempdir().unwrap();
        assert!(!is_jetson(root.path()));
        std::fs::create_dir_all(root.path().join("proc/device-tree")).unwrap();
        std::fs::write(
            root.path().join("proc/device-tree/compatible"),
            b"nvidia,p3737-0000+p3701-0005\0nvidia,tegra234\0",
        )
        .unwrap();
        assert!(is_jetson(root.path()));
        let other = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(other.path().join("etc")).unwrap();
        std::fs::write(other.path().join("etc/nv_tegra_release"), "# R36 (release)").unwrap();
        assert!(is_jetson(other.path()));
    }
}
