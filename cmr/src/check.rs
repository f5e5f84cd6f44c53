//! `labd-cmr check`: the components' invariants on a chosen device (the unit tests run them on CPU; this runs
//! them where the benchmark will run, CUDA included), each reported as passed or failed with what was seen.

use crate::config::{BenchConfig, BufferConfig, CmrConfig, DatasetKind, Method, Strategy};
use crate::datasets::{self, Rng};
use crate::measure::evaluate;
use crate::model::Model;
use crate::reweave::Cmr;
use tch::{Device, Tensor};

/// One invariant: its name, whether it held, and what was seen.
pub struct Outcome {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

fn tokens(rng: &mut Rng, vocab: usize, b: usize, t: usize, device: Device) -> Tensor {
    let v: Vec<i64> = (0..b * t).map(|_| rng.range(256, vocab as i64)).collect();
    Tensor::from_slice(&v)
        .view([b as i64, t as i64])
        .to_device(device)
}

/// Runs every invariant on `device` with the configuration's model.
pub fn run(cfg: &BenchConfig, device: Device) -> Result<Vec<Outcome>, crate::model::ModelError> {
    let model = Model::new(&cfg.model, device)?;
    let mut rng = Rng::new(7);
    let mut out = Vec::new();
    let len = cfg.run.focus_sequence_length.min(cfg.model.max_seq_len);
    let x = tokens(&mut rng, cfg.model.vocab, 2, len, device);

    let off = CmrConfig {
        hook_layers: vec![],
        ..cfg.cmr.clone()
    };
    let mut cmr = Cmr::new(&off, &cfg.model, device);
    let same = (0..3).all(|_| cmr.forward(&model, &x).equal(&model.forward(&x)));
    out.push(Outcome {
        name: "CMR off equals the plain model bit for bit",
        ok: same,
        detail: format!("3 passes of [2, {len}]"),
    });

    let mut closed = cfg.cmr.clone();
    closed.reconstruction.gate = 0.0;
    let mut cmr = Cmr::new(&closed, &cfg.model, device);
    let mut equal = true;
    for _ in 0..3 {
        let (a, b) = (cmr.forward(&model, &x), model.forward(&x));
        equal &= a.eq_tensor(&b).all().int64_value(&[]) == 1;
    }
    out.push(Outcome {
        name: "a closed gate changes no output while CMR stores and retrieves",
        ok: equal && !cmr.buffer.is_empty() && cmr.requests > 0,
        detail: format!(
            "{} entries stored, {} retrievals",
            cmr.buffer.len(),
            cmr.requests
        ),
    });

    let mut small = cfg.cmr.clone();
    small.buffer = BufferConfig {
        per_layer: 24,
        total: 24 * small.hook_layers.len().max(1) - 8,
        ..small.buffer.clone()
    };
    small.retrieval.budget = 5;
    small.reconstruction.max_memory_tokens = 3;
    let mut cmr = Cmr::new(&small, &cfg.model, device);
    cmr.capture = true;
    let (mut caps, mut budget, mut shapes) = (true, true, true);
    for _ in 0..8 {
        let logits = cmr.forward(&model, &tokens(&mut rng, cfg.model.vocab, 2, len, device));
        shapes &= logits.size() == [2, len as i64, cfg.model.vocab as i64];
        caps &= cmr.buffer.len() <= small.buffer.total
            && small
                .hook_layers
                .iter()
                .all(|&l| cmr.buffer.layer_len(l) <= small.buffer.per_layer);
        for c in &cmr.captured {
            budget &= c.retrieved.slots.len() <= 5;
            if let Some(r) = &c.reconstruction {
                shapes &= r.size() == [len as i64, cfg.model.d_model as i64];
            }
        }
    }
    out.push(Outcome {
        name: "the buffer never exceeds its caps",
        ok: caps && cmr.buffer.evictions > 0,
        detail: format!(
            "{} entries of {} after 8 passes, {} evictions",
            cmr.buffer.len(),
            small.buffer.total,
            cmr.buffer.evictions
        ),
    });
    out.push(Outcome {
        name: "retrieval keeps to its budget; outputs have their shapes",
        ok: budget && shapes,
        detail: "budget 5, logits [B, T, vocab], reconstructions [T, D]".into(),
    });

    for method in Method::ALL {
        let mut c = cfg.cmr.clone();
        c.reconstruction.method = method;
        let mut cmr = Cmr::new(&c, &cfg.model, device);
        cmr.capture = true;
        let _ = cmr.forward(&model, &x);
        let _ = cmr.forward(&model, &x);
        let ok = cmr.captured.iter().all(|cap| {
            cap.reconstruction.as_ref().is_some_and(|r| {
                r.size() == [len as i64, cfg.model.d_model as i64]
                    && bool::try_from(r.isfinite().all()).unwrap_or(false)
            })
        }) && !cmr.captured.is_empty();
        out.push(Outcome {
            name: "every reconstruction method gives finite states of the right shape",
            ok,
            detail: method.as_str().into(),
        });
    }

    for strategy in Strategy::ALL {
        let mut c = cfg.cmr.clone();
        c.retrieval.strategy = strategy;
        let samples = datasets::generate(DatasetKind::QuestionAnswering, 6, cfg.model.vocab, 3);
        let s = evaluate(&model, &c, &samples, device);
        out.push(Outcome {
            name: "planted facts are retrieved well above chance",
            ok: s.accuracy >= 2.0 * s.chance && s.accuracy > 0.0,
            detail: format!(
                "{}: accuracy {:.2}, chance {:.2}",
                strategy.as_str(),
                s.accuracy,
                s.chance
            ),
        });
    }
    Ok(out)
}
