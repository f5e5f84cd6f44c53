//! A sweep definition from a sweep file (YAML or JSON) and the command line of `labctl sweep run`.

use super::SweepCmd;
use anyhow::{Context, Result, bail};
use labd_schemas::sweep::{Parallel, SweepSpec};
use serde_json::{Map, Value, json};
use std::path::Path;

/// Reads a config or sweep file: YAML (`.yaml`, `.yml`) or JSON.
fn read_doc(path: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let yaml = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    );
    if yaml {
        serde_saphyr::from_str::<Value>(&text)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    } else {
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))
    }
}

/// A value from the command line: JSON when it parses (numbers, booleans, null, lists), else the text.
fn cli_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

/// The sweep file → a definition labd can run: `base_config` given as a path is loaded (relative to the file),
/// the trials' working directory is the file's folder, and the name is the file's stem.
fn load_file(path: &Path) -> Result<Map<String, Value>> {
    let doc = read_doc(path)?;
    let Value::Object(mut map) = doc else {
        bail!("{}: a sweep file is a mapping of keys", path.display());
    };
    let dir = std::fs::canonicalize(path)
        .with_context(|| format!("{}", path.display()))?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    if let Some(Value::String(base)) = map.get("base_config").cloned() {
        let p = dir.join(&base);
        map.insert(
            "base_config".into(),
            read_doc(&p).with_context(|| format!("base_config {base:?}"))?,
        );
    }
    map.entry("workdir")
        .or_insert_with(|| Value::String(dir.to_string_lossy().into_owned()));
    if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
        map.entry("name")
            .or_insert_with(|| Value::String(stem.into()));
    }
    Ok(map)
}

/// Builds the definition from the file (if any) and the command line.
pub fn build(cmd: &SweepCmd) -> Result<SweepSpec> {
    let SweepCmd::Run {
        file,
        config_file,
        plot,
        param,
        base,
        command,
        id,
        parallel,
        jetson,
        strategy,
        trials,
        seed,
        repeats,
        timeout,
        retries,
        tag,
        cpus,
        ram,
        gpus,
        gpu_memory,
        ..
    } = cmd
    else {
        bail!("not a run");
    };
    let mut map = match file.as_ref().or(config_file.as_ref()) {
        Some(f) => load_file(f)?,
        None => Map::new(),
    };
    // The sweep system's names of labd's keys.
    for (old, new) in [
        ("sweep_params", "sweep"),
        ("parallel_jobs", "parallel"),
        ("timeout_seconds", "timeout"),
        ("jetson_optimized", "jetson"),
    ] {
        if let Some(v) = map.remove(old) {
            if map.contains_key(new) {
                bail!(
                    "the sweep file has both `{old}` (the sweep system's name) and `{new}`: keep one"
                );
            }
            map.insert(new.into(), v);
        }
    }
    if let Some(b) = base {
        let v = if Path::new(b).exists() {
            read_doc(Path::new(b))?
        } else {
            serde_json::from_str(b)
                .with_context(|| format!("--base {b:?}: neither a file nor inline JSON"))?
        };
        map.insert("base_config".into(), v);
    }
    if !param.is_empty() {
        let sweep = map
            .entry("sweep")
            .or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(sweep) = sweep else {
            bail!("the sweep file's `sweep` is not a mapping");
        };
        for p in param {
            let (path, values) = p.split_first().context("--param PATH VALUES...")?;
            sweep.insert(
                path.clone(),
                Value::Array(values.iter().map(|v| cli_value(v)).collect()),
            );
        }
    }
    // The sweep system's keys whose meaning labd does differently.
    for (old, new) in [
        (
            "output_dir",
            "labd keeps each sweep's folder (its files, sweep_results.json included) under its data folder, or [slurm] dir for Slurm sweeps; `labctl sweep status <id>` names it",
        ),
        (
            "db_path",
            "labd records every run in its own event log; no database path is needed",
        ),
    ] {
        if map.contains_key(old) {
            bail!("`{old}` is the sweep system's key: {new}; remove it");
        }
    }
    if *plot {
        map.insert("plot".into(), Value::Bool(true));
    }
    if *jetson {
        map.remove("jetson_optimized");
        map.insert("jetson".into(), Value::Bool(true));
    }
    let mut set = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            map.insert(k.into(), v);
        }
    };
    set("command", command.clone().map(Value::String));
    set("sweep_id", id.clone().map(Value::String));
    if let Some(p) = parallel {
        let p: Parallel = p.parse().map_err(anyhow::Error::msg)?;
        set("parallel", Some(serde_json::to_value(p)?));
    }
    set("strategy", strategy.clone().map(Value::String));
    set("trials", trials.map(Value::from));
    set("seed", seed.map(Value::from));
    set("repeats", repeats.map(Value::from));
    set("timeout", timeout.map(Value::from));
    set("max_retries", retries.map(Value::from));
    if !tag.is_empty() {
        set("tags", Some(json!(tag)));
    }
    if cpus.is_some() || ram.is_some() || gpus.is_some() || gpu_memory.is_some() {
        let r = map
            .entry("resources")
            .or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(r) = r else {
            bail!("the sweep file's `resources` is not a mapping");
        };
        for (k, v) in [
            ("cpus", cpus.map(Value::from)),
            ("ram", ram.clone().map(Value::String)),
            ("gpus", gpus.map(Value::from)),
            ("gpu_memory", gpu_memory.clone().map(Value::String)),
        ] {
            if let Some(v) = v {
                r.insert(k.into(), v);
            }
        }
    }
    if !map.contains_key("workdir") {
        let here = std::env::current_dir()?;
        map.insert(
            "workdir".into(),
            Value::String(here.to_string_lossy().into()),
        );
    }
    if !map.contains_key("sweep") {
        bail!("no parameters: give a sweep file or --param PATH VALUES...");
    }
    if !map.contains_key("command") {
        bail!("no command: give `command:` in the sweep file or --command");
    }
    let origin = file.as_ref().map_or_else(
        || "the command line".to_string(),
        |f| f.display().to_string(),
    );
    serde_json::from_value(Value::Object(map))
        .with_context(|| format!("{origin}: not a sweep definition"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use labd_schemas::sweep::Space;
    use std::path::PathBuf;

    #[test]
    fn a_yaml_sweep_file_loads_with_its_base_config() {
        let dir = tempfile_dir();
        std::fs::write(
            dir.join("base.json"),
            r#"{"optim": {"lr": 1}, "epochs": 3}"#,
        )
        .unwrap();
        let file = dir.join("lr.yaml");
        std::fs::write(
            &file,
            "sweep_id: lr-test\nbase_config: base.json\nsweep:\n  optim.lr: [0.1, 0.01]\n  interventions.0.rate: {uniform: [0, 1]}\nstrategy: random\ntrials: 4\nparallel: 2\ntimeout: 60\nmax_retries: 1\nresume: true\ntags: [a, b]\ncommand: python train.py --config {config}\nresources:\n  ram: 2G\n",
        )
        .unwrap();
        let cmd = run_file(file, vec![vec!["epochs".into(), "5".into(), "10".into()]]);
        let s = build(&cmd).unwrap();
        assert_eq!(s.sweep_id.as_deref(), Some("lr-test"));
        assert_eq!(s.name.as_deref(), Some("lr"));
        assert_eq!(s.base_config["epochs"], 3);
        assert_eq!(s.sweep["epochs"], Space::Values(vec![json!(5), json!(10)]));
        assert_eq!(s.parallel, Parallel::Fixed(2));
        assert_eq!(s.resources.ram, Some(2 << 30));
        assert_eq!(
            s.workdir.as_deref(),
            Some(std::fs::canonicalize(&dir).unwrap().to_str().unwrap())
        );
        std::fs::write(
            dir.join("bad.yaml"),
            "sweep: {lr: [1]}\ncommand: x\nparalel: 2\n",
        )
        .unwrap();
        let bad = run_file(dir.join("bad.yaml"), vec![]);
        let e = format!("{:#}", build(&bad).unwrap_err());
        assert!(e.contains("paralel"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn run_file(file: PathBuf, param: Vec<Vec<String>>) -> SweepCmd {
        SweepCmd::Run {
            file: Some(file),
            config_file: None,
            plot: false,
            param,
            base: None,
            command: None,
            id: None,
            parallel: None,
            jetson: false,
            strategy: None,
            trials: None,
            seed: None,
            repeats: None,
            timeout: None,
            retries: None,
            tag: vec![],
            cpus: None,
            ram: None,
            gpus: None,
            gpu_memory: None,
            dry_run: false,
            wait: false,
        }
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("labctl-sweep-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
