//! A sweep definition → its trials: grid (Cartesian product) or random draws (seeded), repeats as seeds,
//! parameters written into the base config by dot path, deterministic trial ids, and the trial's command with
//! its placeholders filled in. Pure: no I/O.

use super::search::domain::Domain;
use super::search::qmc;
use super::search::rng::SplitMix64;
use labd_schemas::canonical::canonical_json;
use labd_schemas::sweep::{Distribution, Space, Strategy, SweepSpec, TrialPlan};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Most trials one sweep may plan.
pub const MAX_TRIALS: usize = 100_000;

/// Why a sweep cannot be planned or run, naming the key at fault.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlanError {
    #[error("sweep.{path}: {reason}")]
    Param { path: String, reason: String },
    #[error("{0}")]
    Spec(String),
    #[error("command: {0}")]
    Command(String),
}

/// Plans the trials of sweep `sweep_id`, in a stable order.
pub fn plan(sweep_id: &str, spec: &SweepSpec) -> Result<Vec<TrialPlan>, PlanError> {
    if spec.command.trim().is_empty() {
        return Err(PlanError::Command(
            "is empty: give the command of a trial".into(),
        ));
    }
    if !spec.base_config.is_object() {
        return Err(PlanError::Spec("base_config must be an object".into()));
    }
    if spec.population.is_some() && spec.strategy != Strategy::Nsga2 {
        return Err(PlanError::Spec(
            "population: only for strategy nsga2 (trials a generation)".into(),
        ));
    }
    if spec.constant_liar && spec.strategy != Strategy::Tpe {
        return Err(PlanError::Spec(
            "constant_liar: only for strategy tpe (it is how TPE chooses beside running trials)"
                .into(),
        ));
    }
    if !spec.objectives.is_empty() {
        if spec.objectives.len() < 2 {
            return Err(PlanError::Spec(
                "objectives: give two or more (one is `objective`)".into(),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for o in &spec.objectives {
            if o.metric.trim().is_empty() {
                return Err(PlanError::Spec("objectives: a metric is empty".into()));
            }
            if !seen.insert((o.metric.as_str(), o.reduce.as_str())) {
                return Err(PlanError::Spec(format!(
                    "objectives: {} ({}) is given twice",
                    o.metric,
                    o.reduce.as_str()
                )));
            }
        }
    }
    if spec.pruner.is_some() {
        if spec.objective.is_none() {
            return Err(PlanError::Spec(
                "a pruner needs an objective: {metric: <split/name>, direction: minimize|maximize}"
                    .into(),
            ));
        }
        if spec
            .slurm
            .as_ref()
            .and_then(|s| s.pack)
            .is_some_and(|p| p > 1)
        {
            return Err(PlanError::Spec(
                "a pruner stops trials one by one: on Slurm it needs one trial an array task (slurm.pack: 1)"
                    .into(),
            ));
        }
    }
    let combos: Vec<BTreeMap<String, Value>> = match spec.strategy {
        Strategy::Grid => grid(spec)?,
        Strategy::Random => random(spec)?,
        Strategy::QuasiRandom => quasi_random(spec)?,
        // Trials are chosen as results come in (`sweeps::adaptive`); what can be checked now is.
        Strategy::Tpe | Strategy::Nsga2 => {
            let name = spec.strategy.as_str();
            draws(spec, name)?;
            if spec.strategy == Strategy::Nsga2 {
                if spec.objectives.len() < 2 {
                    return Err(PlanError::Spec(
                        "strategy nsga2 needs two or more objectives: [{metric: ..., direction: ...}, ...]"
                            .into(),
                    ));
                }
                if spec.population.is_some_and(|p| p < 2) {
                    return Err(PlanError::Spec(
                        "population: at least 2 trials a generation".into(),
                    ));
                }
            } else if spec.objective.is_none() {
                return Err(PlanError::Spec(
                    "strategy tpe needs an objective: {metric: <split/name>, direction: minimize|maximize}"
                        .into(),
                ));
            }
            if spec.seeds.is_some() || spec.repeats.is_some() {
                return Err(PlanError::Spec(format!(
                    "strategy {name} takes no repeats or seeds: each trial is one point of the search"
                )));
            }
            let mut rng = SplitMix64(0);
            let sample: BTreeMap<String, Value> = spec
                .sweep
                .iter()
                .map(|(path, space)| (path.clone(), draw(space, &mut rng)))
                .collect();
            let first = chosen(sweep_id, spec, 0, sample)?;
            check_command(sweep_id, spec, &first)?;
            return Ok(Vec::new());
        }
    };
    let seeds: Vec<Value> = match (&spec.seeds, spec.repeats) {
        (Some(_), Some(_)) => {
            return Err(PlanError::Spec(
                "give seeds or repeats, not both (repeats: N is seeds: [0..N-1])".into(),
            ));
        }
        (Some(s), None) if s.is_empty() => {
            return Err(PlanError::Spec("seeds is empty".into()));
        }
        (Some(s), None) => s.clone(),
        (None, Some(0)) => return Err(PlanError::Spec("repeats must be at least 1".into())),
        // Checked before the seeds are made: a huge count must not become a huge list.
        (None, Some(n)) if (n as usize).saturating_mul(combos.len()) > MAX_TRIALS => {
            return Err(PlanError::Spec(format!(
                "{} trials is more than {MAX_TRIALS}; split the sweep",
                (n as u128) * combos.len() as u128
            )));
        }
        (None, Some(n)) => (0..n).map(Value::from).collect(),
        (None, None) => Vec::new(),
    };
    let seed_key = spec.seed_key.clone().unwrap_or_else(|| "seed".into());
    if !seeds.is_empty() && spec.sweep.contains_key(&seed_key) {
        return Err(PlanError::Param {
            path: seed_key,
            reason: "is swept and also the repeats' seed key: use one or the other".into(),
        });
    }
    let total = combos.len() * seeds.len().max(1);
    if total > MAX_TRIALS {
        return Err(PlanError::Spec(format!(
            "{total} trials is more than {MAX_TRIALS}; split the sweep"
        )));
    }
    let mut trials = Vec::with_capacity(total);
    let mut seen = std::collections::HashSet::new();
    for combo in combos {
        let repeats: Vec<(u32, Option<&Value>)> = if seeds.is_empty() {
            vec![(0, None)]
        } else {
            seeds
                .iter()
                .enumerate()
                .map(|(i, s)| (i as u32, Some(s)))
                .collect()
        };
        for (repeat, seed) in repeats {
            let mut params = combo.clone();
            if let Some(s) = seed {
                params.insert(seed_key.clone(), s.clone());
            }
            let mut config = spec.base_config.clone();
            for (path, v) in &params {
                set_path(&mut config, path, v.clone()).map_err(|reason| PlanError::Param {
                    path: path.clone(),
                    reason,
                })?;
            }
            let id = trial_id(sweep_id, &params);
            if seen.insert(id.clone()) {
                trials.push(TrialPlan {
                    id,
                    params,
                    repeat,
                    config,
                });
            }
        }
    }
    // The command's placeholders must all be known: check them on the first trial now, not at run time.
    if let Some(first) = trials.first() {
        check_command(sweep_id, spec, first)?;
    }
    Ok(trials)
}

fn check_command(sweep_id: &str, spec: &SweepSpec, trial: &TrialPlan) -> Result<(), PlanError> {
    expand(
        &spec.command,
        &Facts {
            config: "C",
            run_log: "R",
            trial_dir: "D",
            trial_id: &trial.id,
            sweep_id,
            params: &trial.params,
        },
    )?;
    Ok(())
}

/// The plan of trial `number` of a model-based sweep, whose parameters the search chose: its config, and an id
/// from the sweep, the number and the parameters (two choices of the same point are two trials).
pub fn chosen(
    sweep_id: &str,
    spec: &SweepSpec,
    number: u32,
    params: BTreeMap<String, Value>,
) -> Result<TrialPlan, PlanError> {
    let mut config = spec.base_config.clone();
    for (path, v) in &params {
        set_path(&mut config, path, v.clone()).map_err(|reason| PlanError::Param {
            path: path.clone(),
            reason,
        })?;
    }
    let id = trial_id(&format!("{sweep_id}#{number}"), &params);
    Ok(TrialPlan {
        id,
        params,
        repeat: 0,
        config,
    })
}

fn grid(spec: &SweepSpec) -> Result<Vec<BTreeMap<String, Value>>, PlanError> {
    let mut combos = vec![BTreeMap::new()];
    for (path, space) in &spec.sweep {
        let values = match space {
            Space::Values(v) | Space::Distribution(Distribution::Choice(v)) => v,
            Space::Distribution(_) => {
                return Err(PlanError::Param {
                    path: path.clone(),
                    reason: "a distribution needs strategy: random (grid takes lists)".into(),
                });
            }
        };
        if values.is_empty() {
            return Err(PlanError::Param {
                path: path.clone(),
                reason: "has no values".into(),
            });
        }
        if combos.len().saturating_mul(values.len()) > MAX_TRIALS {
            return Err(PlanError::Spec(format!(
                "the grid has more than {MAX_TRIALS} trials; split the sweep"
            )));
        }
        let mut next = Vec::with_capacity(combos.len() * values.len());
        for c in &combos {
            for v in values {
                let mut c = c.clone();
                c.insert(path.clone(), v.clone());
                next.push(c);
            }
            if next.len() > MAX_TRIALS {
                return Err(PlanError::Spec(format!(
                    "the grid has more than {MAX_TRIALS} trials; split the sweep"
                )));
            }
        }
        combos = next;
    }
    Ok(combos)
}

/// How many trials a drawing strategy plans, its spaces checked.
fn draws(spec: &SweepSpec, strategy: &str) -> Result<usize, PlanError> {
    let n = spec.trials.ok_or_else(|| {
        PlanError::Spec(format!(
            "strategy {strategy} needs trials: N (how many to draw)"
        ))
    })? as usize;
    if n == 0 || n > MAX_TRIALS {
        return Err(PlanError::Spec(format!(
            "trials must be between 1 and {MAX_TRIALS}"
        )));
    }
    for (path, space) in &spec.sweep {
        let bad = |reason: &str| PlanError::Param {
            path: path.clone(),
            reason: reason.into(),
        };
        match space {
            Space::Values(v) | Space::Distribution(Distribution::Choice(v)) if v.is_empty() => {
                return Err(bad("has no values"));
            }
            Space::Distribution(Distribution::Uniform([lo, hi])) if lo >= hi => {
                return Err(bad("uniform needs low < high"));
            }
            Space::Distribution(Distribution::LogUniform([lo, hi])) if *lo <= 0.0 || lo >= hi => {
                return Err(bad("log_uniform needs 0 < low < high"));
            }
            Space::Distribution(Distribution::Int([lo, hi])) if lo > hi => {
                return Err(bad("int needs low <= high"));
            }
            Space::Distribution(Distribution::LogInt([lo, hi])) if *lo < 1 || lo > hi => {
                return Err(bad("log_int needs 1 <= low <= high"));
            }
            _ => {}
        }
    }
    Ok(n)
}

fn random(spec: &SweepSpec) -> Result<Vec<BTreeMap<String, Value>>, PlanError> {
    let n = draws(spec, "random")?;
    let mut rng = SplitMix64(spec.seed.unwrap_or(0));
    Ok((0..n)
        .map(|_| {
            spec.sweep
                .iter()
                .map(|(path, space)| (path.clone(), draw(space, &mut rng)))
                .collect()
        })
        .collect())
}

fn quasi_random(spec: &SweepSpec) -> Result<Vec<BTreeMap<String, Value>>, PlanError> {
    let n = draws(spec, "quasi_random")?;
    let space: BTreeMap<String, Domain> = spec
        .sweep
        .iter()
        .map(|(path, s)| (path.clone(), Domain::of(s)))
        .collect();
    Ok((0..n as u64)
        .map(|i| qmc::suggest(&space, i, spec.seed.unwrap_or(0)))
        .collect())
}

fn draw(space: &Space, rng: &mut SplitMix64) -> Value {
    match space {
        Space::Values(v) | Space::Distribution(Distribution::Choice(v)) => {
            v[(rng.next_u64() % v.len() as u64) as usize].clone()
        }
        Space::Distribution(Distribution::Uniform([lo, hi])) => {
            Value::from(lo + (hi - lo) * rng.unit())
        }
        Space::Distribution(Distribution::LogUniform([lo, hi])) => {
            Value::from((lo.ln() + (hi.ln() - lo.ln()) * rng.unit()).exp())
        }
        Space::Distribution(Distribution::Int([lo, hi])) => {
            let span = (hi - lo) as u64 + 1;
            Value::from(lo + (rng.next_u64() % span) as i64)
        }
        Space::Distribution(Distribution::LogInt([lo, hi])) => {
            let (a, b) = ((*lo as f64).ln(), ((*hi + 1) as f64).ln());
            Value::from(((a + (b - a) * rng.unit()).exp().floor() as i64).clamp(*lo, *hi))
        }
    }
}

/// The trial id: `t_` and 12 hex digits of sha256 over the sweep id and the canonical JSON of the parameters.
pub fn trial_id(sweep_id: &str, params: &BTreeMap<String, Value>) -> String {
    let mut text = String::new();
    canonical_json(
        &Value::Object(params.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        &mut text,
    );
    let digest = Sha256::digest(format!("{sweep_id}\n{text}").as_bytes());
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("t_{hex}")
}

/// Writes `value` at a dot path: keys of objects (created when missing) and indices of lists (which must
/// exist). Answers why not, naming the segment.
pub fn set_path(config: &mut Value, path: &str, value: Value) -> Result<(), String> {
    let segments: Vec<&str> = path.split('.').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Err("an empty segment in the dot path".into());
    }
    let mut at = config;
    for (i, seg) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        let here = segments[..i].join(".");
        let name = if here.is_empty() {
            "the config".to_string()
        } else {
            here
        };
        at = match at {
            Value::Object(map) => {
                if last {
                    map.insert(seg.to_string(), value);
                    return Ok(());
                }
                map.entry(seg.to_string())
                    .or_insert_with(|| Value::Object(Default::default()))
            }
            Value::Array(list) => {
                let len = list.len();
                let idx: usize = seg
                    .parse()
                    .map_err(|_| format!("{name} is a list: {seg:?} is not an index"))?;
                let slot = list.get_mut(idx).ok_or_else(|| {
                    format!("{name} is a list of {len}: index {idx} is past its end")
                })?;
                if last {
                    *slot = value;
                    return Ok(());
                }
                slot
            }
            other => {
                return Err(format!(
                    "{name} is {}, not an object or list",
                    match other {
                        Value::Null => "null",
                        Value::Bool(_) => "a boolean",
                        Value::Number(_) => "a number",
                        _ => "a string",
                    }
                ));
            }
        };
    }
    Ok(())
}

/// What a trial's command can name.
pub struct Facts<'a> {
    pub config: &'a str,
    pub run_log: &'a str,
    pub trial_dir: &'a str,
    pub trial_id: &'a str,
    pub sweep_id: &'a str,
    pub params: &'a BTreeMap<String, Value>,
}

/// Fills in `{config}`, `{run_log}`, `{trial_dir}`, `{trial_id}`, `{sweep_id}` and `{param:<dot path>}`,
/// each quoted for `/bin/sh`; `{{` and `}}` are literal braces.
pub fn expand(command: &str, f: &Facts) -> Result<String, PlanError> {
    let mut out = String::with_capacity(command.len() + 64);
    let mut rest = command;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push_str(&tail[..1]);
            rest = &tail[2..];
            continue;
        }
        if tail.starts_with('}') {
            return Err(PlanError::Command(format!(
                "a lone '}}' at byte {}; write }}}} for a literal brace",
                command.len() - tail.len()
            )));
        }
        let end = tail.find('}').ok_or_else(|| {
            PlanError::Command(format!(
                "'{{' at byte {} is not closed; write {{{{ for a literal brace",
                command.len() - tail.len()
            ))
        })?;
        let name = &tail[1..end];
        let text = match name {
            "config" => f.config.to_string(),
            "run_log" => f.run_log.to_string(),
            "trial_dir" => f.trial_dir.to_string(),
            "trial_id" => f.trial_id.to_string(),
            "sweep_id" => f.sweep_id.to_string(),
            _ => match name.strip_prefix("param:") {
                Some(path) => match f.params.get(path) {
                    Some(Value::String(s)) => s.clone(),
                    Some(v) => v.to_string(),
                    None => {
                        return Err(PlanError::Command(format!(
                            "{{{name}}}: {path:?} is not a swept parameter (known: {})",
                            f.params.keys().cloned().collect::<Vec<_>>().join(", ")
                        )));
                    }
                },
                None => {
                    return Err(PlanError::Command(format!(
                        "unknown placeholder {{{name}}}: use {{config}}, {{run_log}}, {{trial_dir}}, {{trial_id}}, {{sweep_id}} or {{param:PATH}}"
                    )));
                }
            },
        };
        out.push_str(&shell_quote(&text));
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Quotes a word for `/bin/sh` (single quotes, with `'` written as `'\''`); plain words stay as they are.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=+,@%".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: Value) -> SweepSpec {
        serde_json::from_value(v).unwrap()
    }

    /// Regression (schemathesis): `repeats: 849864648` built the seeds' list before the cap was checked.
    #[test]
    fn huge_repeats_and_grids_are_refused_before_anything_is_built() {
        let mut s = spec(json!({"command": "x", "sweep": {}, "repeats": 849_864_648u64}));
        let t = std::time::Instant::now();
        assert!(plan("s", &s).unwrap_err().to_string().contains("more than"));
        s.repeats = None;
        let many: Vec<Value> = (0..400).map(Value::from).collect();
        s.sweep = ["a", "b", "c"]
            .iter()
            .map(|k| (k.to_string(), Space::Values(many.clone())))
            .collect();
        assert!(plan("s", &s).unwrap_err().to_string().contains("more than"));
        assert!(t.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn grid_is_the_cartesian_product_with_repeats_as_seeds() {
        let s = spec(json!({
            "base_config": {"optim": {"lr": 1}, "interventions": [{"parameters": {"rate": 0}}], "seed": 9},
            "sweep": {"optim.lr": [0.1, 0.01], "interventions.0.parameters.rate": [0.0, 0.5, 1.0]},
            "repeats": 2,
            "command": "python train.py --config {config} --lr {param:optim.lr}"
        }));
        let trials = plan("s1", &s).unwrap();
        assert_eq!(trials.len(), 2 * 3 * 2);
        let t = &trials[0];
        assert_eq!(
            t.config["interventions"][0]["parameters"]["rate"],
            json!(0.0)
        );
        assert_eq!(t.config["optim"]["lr"], json!(0.1));
        assert_eq!(t.config["seed"], json!(0));
        assert_eq!(trials[1].config["seed"], json!(1));
        assert_eq!(trials[1].repeat, 1);
        let ids: std::collections::HashSet<_> = trials.iter().map(|t| t.id.clone()).collect();
        assert_eq!(ids.len(), 12, "ids differ by parameters");
        assert_eq!(plan("s1", &s).unwrap(), trials, "deterministic");
        assert_ne!(
            plan("s2", &s).unwrap()[0].id,
            t.id,
            "ids depend on the sweep"
        );
        assert_eq!(t.id, trial_id("s1", &t.params));
        assert!(t.id.starts_with("t_") && t.id.len() == 14);
    }

    #[test]
    fn random_draws_are_seeded_and_in_range() {
        let s = spec(json!({
            "sweep": {"lr": {"log_uniform": [1e-5, 1e-1]}, "width": {"int": [1, 3]},
                      "act": ["relu", "gelu"], "drop": {"uniform": [0.0, 0.5]}},
            "strategy": "random", "trials": 50, "seed": 3,
            "command": "run {config}"
        }));
        let a = plan("r", &s).unwrap();
        assert_eq!(a, plan("r", &s).unwrap());
        assert!(a.len() >= 45, "few duplicates among 50 draws");
        for t in &a {
            let lr = t.params["lr"].as_f64().unwrap();
            assert!((1e-5..1e-1).contains(&lr));
            assert!((1..=3).contains(&t.params["width"].as_i64().unwrap()));
            assert!((0.0..0.5).contains(&t.params["drop"].as_f64().unwrap()));
        }
        let widths: std::collections::BTreeSet<i64> = a
            .iter()
            .map(|t| t.params["width"].as_i64().unwrap())
            .collect();
        assert_eq!(widths.len(), 3, "every integer drawn");
        let mut other = s.clone();
        other.seed = Some(4);
        assert_ne!(plan("r", &other).unwrap()[0].params, a[0].params);
    }

    #[test]
    fn quasi_random_points_are_seeded_in_range_and_spread() {
        let s = spec(json!({
            "sweep": {"lr": {"log_uniform": [1e-5, 1e-1]}, "width": {"log_int": [16, 512]},
                      "act": ["relu", "gelu"], "drop": {"uniform": [0.0, 0.5]}},
            "strategy": "quasi_random", "trials": 16, "seed": 3,
            "command": "run {config}"
        }));
        let a = plan("q", &s).unwrap();
        assert_eq!(a, plan("q", &s).unwrap());
        assert_eq!(a.len(), 16);
        for t in &a {
            assert!((1e-5..=1e-1).contains(&t.params["lr"].as_f64().unwrap()));
            assert!((16..=512).contains(&t.params["width"].as_i64().unwrap()));
            assert!((0.0..=0.5).contains(&t.params["drop"].as_f64().unwrap()));
        }
        // Each half of the dropout range (the second axis, base 3) holds half of the first 14 points, give or
        // take one; each activation half the points.
        let low = a[..14]
            .iter()
            .filter(|t| t.params["drop"].as_f64().unwrap() < 0.25)
            .count();
        assert!((6..=8).contains(&low), "{low}");
        let relu = a.iter().filter(|t| t.params["act"] == "relu").count();
        assert_eq!(relu, 8);
    }

    #[test]
    fn bad_definitions_name_what_is_wrong() {
        let err = |v: Value| plan("s", &spec(v)).unwrap_err().to_string();
        assert!(
            err(json!({"sweep": {"lr": {"uniform": [0, 1]}}, "command": "x"}))
                .contains("sweep.lr: a distribution needs strategy: random")
        );
        assert!(
            err(json!({"sweep": {"lr": []}, "command": "x"})).contains("sweep.lr: has no values")
        );
        assert!(
            err(
                json!({"base_config": {"layers": [1]}, "sweep": {"layers.3": [1]}, "command": "x"})
            )
            .contains("layers is a list of 1: index 3 is past its end")
        );
        assert!(
            err(json!({"base_config": {"lr": 1}, "sweep": {"lr.x": [1]}, "command": "x"}))
                .contains("lr is a number")
        );
        assert!(
            err(json!({"sweep": {"lr": [1]}, "command": "run {confg}"}))
                .contains("unknown placeholder {confg}")
        );
        assert!(
            err(json!({"sweep": {"lr": [1]}, "command": "run {param:wd}"}))
                .contains("\"wd\" is not a swept parameter")
        );
        assert!(
            err(json!({"sweep": {"lr": [1]}, "strategy": "random", "command": "x"}))
                .contains("needs trials")
        );
        assert!(err(json!({"sweep": {"lr": [1]}, "command": " "})).contains("command: is empty"));
    }

    #[test]
    fn objectives_and_the_constant_liar_are_checked() {
        let err = |v: Value| plan("s", &spec(v)).unwrap_err().to_string();
        let base = || json!({"command": "run {config}", "sweep": {"a": [1, 2]}});
        let mut one = base();
        one["objectives"] = json!([{"metric": "loss"}]);
        assert!(err(one).contains("two or more"));
        let mut twice = base();
        twice["objectives"] =
            json!([{"metric": "loss"}, {"metric": "loss", "direction": "maximize"}]);
        assert!(err(twice).contains("given twice"));
        let mut ok = base();
        ok["objectives"] =
            json!([{"metric": "loss"}, {"metric": "loss", "reduce": "min"}, {"metric": "cost"}]);
        assert_eq!(plan("s", &spec(ok)).unwrap().len(), 2);
        let mut liar = base();
        liar["constant_liar"] = json!(true);
        assert!(err(liar).contains("only for strategy tpe"));
        let mut nsga = base();
        nsga["sweep"] = json!({"a": {"uniform": [0.0, 1.0]}});
        nsga["strategy"] = json!("nsga2");
        nsga["trials"] = json!(20);
        assert!(err(nsga.clone()).contains("two or more objectives"));
        nsga["objectives"] = json!([{"metric": "loss"}, {"metric": "cost"}]);
        nsga["population"] = json!(1);
        assert!(err(nsga.clone()).contains("population"));
        nsga["population"] = json!(4);
        assert!(
            plan("s", &spec(nsga)).unwrap().is_empty(),
            "chosen as it runs"
        );
        let mut grid_pop = base();
        grid_pop["population"] = json!(4);
        assert!(err(grid_pop).contains("only for strategy nsga2"));
    }

    #[test]
    fn placeholders_are_quoted_for_the_shell() {
        let params: BTreeMap<String, Value> = [
            ("name".to_string(), json!("it's big")),
            ("lr".to_string(), json!(0.1)),
        ]
        .into();
        let f = Facts {
            config: "/d/t 1/config.json",
            run_log: "/d/run.jsonl",
            trial_dir: "/d",
            trial_id: "t_1",
            sweep_id: "s",
            params: &params,
        };
        assert_eq!(
            expand(
                "python x.py {config} --lr={param:lr} --name {param:name} {{x}} > {run_log}",
                &f
            )
            .unwrap(),
            "python x.py '/d/t 1/config.json' --lr=0.1 --name 'it'\\''s big' {x} > /d/run.jsonl"
        );
        assert!(expand("echo {", &f).is_err());
    }
}
