//! The layered memory buffer: stored hidden states per hooked layer, with caps per layer and in total, and
//! eviction by recency of use (LRU), by relevance, or both. States live in one preallocated tensor per layer on
//! the model's device; what is known about each entry lives here in Rust.

use crate::config::{BufferConfig, Eviction};
use std::collections::{BTreeMap, HashMap};
use tch::{Device, Kind, Tensor};

/// What is known about one stored state.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub layer: usize,
    /// The sequence of the batch it came from.
    pub row: usize,
    /// The forward pass that stored it.
    pub step: u64,
    /// Its position in that pass's sequence.
    pub position: usize,
    pub relevance: f32,
    /// Clock of its last store or retrieval.
    pub last_used: u64,
}

struct LayerStore {
    states: Tensor,
    slots: Vec<Option<Entry>>,
}

impl LayerStore {
    fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }
}

/// A state to store: its row in the batch, position, relevance.
#[derive(Clone, Copy, Debug)]
pub struct Item {
    pub row: usize,
    pub position: usize,
    pub relevance: f32,
}

pub struct MemoryBuffer {
    cfg: BufferConfig,
    layers: BTreeMap<usize, LayerStore>,
    len: usize,
    clock: u64,
    pub evictions: u64,
    pub stored: u64,
}

impl MemoryBuffer {
    /// An empty buffer for `layers`, states of width `d` on `device`.
    pub fn new(cfg: &BufferConfig, layers: &[usize], d: usize, device: Device) -> MemoryBuffer {
        let per_layer = cfg.per_layer.min(cfg.total);
        let layers = layers
            .iter()
            .map(|&l| {
                (
                    l,
                    LayerStore {
                        states: Tensor::zeros([per_layer as i64, d as i64], (Kind::Float, device)),
                        slots: vec![None; per_layer],
                    },
                )
            })
            .collect();
        MemoryBuffer {
            cfg: cfg.clone(),
            layers,
            len: 0,
            clock: 0,
            evictions: 0,
            stored: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn layer_len(&self, layer: usize) -> usize {
        self.layers.get(&layer).map_or(0, LayerStore::len)
    }

    /// Entries over the total cap.
    pub fn utilization(&self) -> f64 {
        self.len as f64 / self.cfg.total as f64
    }

    /// Bytes the live entries hold: their states and what is known about them.
    pub fn bytes(&self) -> u64 {
        let width = self
            .layers
            .values()
            .next()
            .map_or(0, |s| s.states.size()[1] as u64);
        self.len as u64 * (width * 4 + std::mem::size_of::<Entry>() as u64)
    }

    /// Bytes reserved for states, used or not.
    pub fn capacity_bytes(&self) -> u64 {
        self.layers
            .values()
            .map(|s| (s.states.numel() * 4) as u64)
            .sum()
    }

    pub fn entries(&self, layer: usize) -> impl Iterator<Item = (usize, &Entry)> {
        self.layers
            .get(&layer)
            .into_iter()
            .flat_map(|s| s.slots.iter().enumerate())
            .filter_map(|(i, e)| e.as_ref().map(|e| (i, e)))
    }

    pub fn entry(&self, layer: usize, slot: usize) -> Option<&Entry> {
        self.layers.get(&layer)?.slots.get(slot)?.as_ref()
    }

    /// States of `slots` of `layer`, `[n, d]`.
    pub fn states(&self, layer: usize, slots: &[usize]) -> Option<Tensor> {
        let store = self.layers.get(&layer)?;
        let index = Tensor::from_slice(&slots.iter().map(|&s| s as i64).collect::<Vec<_>>())
            .to_device(store.states.device());
        Some(store.states.index_select(0, &index))
    }

    /// Marks entries as just used (a retrieval).
    pub fn touch(&mut self, layer: usize, slots: &[usize]) {
        self.clock += 1;
        let clock = self.clock;
        if let Some(store) = self.layers.get_mut(&layer) {
            for &s in slots {
                if let Some(Some(e)) = store.slots.get_mut(s) {
                    e.last_used = clock;
                }
            }
        }
    }

    /// Stores `states[i]` (`[n, d]`, one per item) into `layer` at pass `step`, evicting as the caps require.
    pub fn insert(&mut self, layer: usize, step: u64, states: &Tensor, items: &[Item]) {
        if !self.layers.contains_key(&layer) || items.is_empty() {
            return;
        }
        self.clock += 1;
        let clock = self.clock;
        // slot → index into `states`; a slot reused within this call keeps only its last item.
        let mut writes: HashMap<usize, usize> = HashMap::new();
        for (i, item) in items.iter().enumerate() {
            let Some(slot) = self.free_slot(layer) else {
                continue;
            };
            let entry = Entry {
                layer,
                row: item.row,
                step,
                position: item.position,
                relevance: item.relevance,
                last_used: clock,
            };
            if let Some(store) = self.layers.get_mut(&layer) {
                store.slots[slot] = Some(entry);
                self.len += 1;
                self.stored += 1;
                writes.insert(slot, i);
            }
        }
        if writes.is_empty() {
            return;
        }
        let (slots, sources): (Vec<i64>, Vec<i64>) = writes
            .into_iter()
            .map(|(s, i)| (s as i64, i as i64))
            .unzip();
        if let Some(store) = self.layers.get_mut(&layer) {
            let device = store.states.device();
            let slots = Tensor::from_slice(&slots).to_device(device);
            let sources = Tensor::from_slice(&sources).to_device(device);
            let rows = states.to_kind(Kind::Float).index_select(0, &sources);
            let _ = store.states.index_copy_(0, &slots, &rows);
        }
    }

    /// A free slot of `layer`, evicting first when the layer or the whole buffer is full.
    fn free_slot(&mut self, layer: usize) -> Option<usize> {
        let layer_full = self.layers.get(&layer)?.slots.iter().all(Option::is_some);
        if layer_full {
            let victim = self.victim(Some(layer))?;
            self.evict(victim);
        } else if self.len >= self.cfg.total {
            let victim = self.victim(None)?;
            self.evict(victim);
        }
        self.layers
            .get(&layer)?
            .slots
            .iter()
            .position(Option::is_none)
    }

    fn evict(&mut self, (layer, slot): (usize, usize)) {
        if let Some(store) = self.layers.get_mut(&layer)
            && store.slots[slot].take().is_some()
        {
            self.len -= 1;
            self.evictions += 1;
        }
    }

    /// The entry to evict, within `layer` or from all layers.
    fn victim(&self, layer: Option<usize>) -> Option<(usize, usize)> {
        let candidates = self
            .layers
            .iter()
            .filter(|(l, _)| layer.is_none_or(|want| **l == want))
            .flat_map(|(l, s)| {
                s.slots
                    .iter()
                    .enumerate()
                    .filter_map(move |(i, e)| e.as_ref().map(|e| (*l, i, e)))
            });
        let (min_used, max_used) = self
            .layers
            .values()
            .flat_map(|s| s.slots.iter().flatten())
            .fold((u64::MAX, 0), |(lo, hi), e| {
                (lo.min(e.last_used), hi.max(e.last_used))
            });
        let span = (max_used.saturating_sub(min_used)).max(1) as f64;
        let score = |e: &Entry| -> f64 {
            match self.cfg.eviction {
                Eviction::Lru => e.last_used as f64,
                Eviction::Relevance => e.relevance as f64,
                Eviction::Hybrid => {
                    0.5 * e.relevance as f64 + 0.5 * (e.last_used - min_used) as f64 / span
                }
            }
        };
        candidates
            .min_by(|a, b| {
                score(a.2)
                    .total_cmp(&score(b.2))
                    // Ties: the oldest entry first.
                    .then(a.2.last_used.cmp(&b.2.last_used))
                    .then(a.2.step.cmp(&b.2.step))
                    .then(a.2.position.cmp(&b.2.position))
            })
            .map(|(l, i, _)| (l, i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(n: usize, relevance: impl Fn(usize) -> f32) -> Vec<Item> {
        (0..n)
            .map(|i| Item {
                row: 0,
                position: i,
                relevance: relevance(i),
            })
            .collect()
    }

    fn states(n: usize, base: f64) -> Tensor {
        Tensor::arange(n as i64, (Kind::Float, Device::Cpu))
            .unsqueeze(1)
            .repeat([1, 4])
            + base
    }

    #[test]
    fn never_exceeds_its_caps() {
        let cfg = BufferConfig {
            per_layer: 5,
            total: 8,
            eviction: Eviction::Lru,
        };
        let mut b = MemoryBuffer::new(&cfg, &[0, 1], 4, Device::Cpu);
        for step in 0..10u64 {
            for layer in [0, 1] {
                b.insert(layer, step, &states(3, 0.0), &items(3, |_| 0.5));
                assert!(b.layer_len(layer) <= 5);
                assert!(b.len() <= 8);
                assert_eq!(b.len(), b.layer_len(0) + b.layer_len(1));
            }
        }
        assert_eq!(b.len(), 8);
        assert_eq!(b.stored, 60);
        assert_eq!(b.evictions, 60 - 8);
        assert!((b.utilization() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn lru_evicts_the_least_recently_used_and_keeps_what_was_retrieved() {
        let cfg = BufferConfig {
            per_layer: 3,
            total: 3,
            eviction: Eviction::Lru,
        };
        let mut b = MemoryBuffer::new(&cfg, &[0], 4, Device::Cpu);
        for step in 0..3 {
            b.insert(0, step, &states(1, step as f64), &items(1, |_| 0.5));
        }
        // Retrieving the oldest makes it the most recently used.
        let oldest = b.entries(0).find(|(_, e)| e.step == 0).unwrap().0;
        b.touch(0, &[oldest]);
        b.insert(0, 3, &states(1, 3.0), &items(1, |_| 0.5));
        let steps: Vec<u64> = {
            let mut s: Vec<u64> = b.entries(0).map(|(_, e)| e.step).collect();
            s.sort();
            s
        };
        assert_eq!(steps, [0, 2, 3], "step 1 was the least recently used");
        // The stored state is the one given.
        let slot = b.entries(0).find(|(_, e)| e.step == 3).unwrap().0;
        let got = b.states(0, &[slot]).unwrap();
        assert_eq!(Vec::<f32>::try_from(got.flatten(0, -1)).unwrap(), [3.0; 4]);
    }

    #[test]
    fn relevance_eviction_drops_the_least_relevant() {
        let cfg = BufferConfig {
            per_layer: 4,
            total: 4,
            eviction: Eviction::Relevance,
        };
        let mut b = MemoryBuffer::new(&cfg, &[2], 4, Device::Cpu);
        let rel = [0.9, 0.1, 0.8, 0.3];
        b.insert(2, 0, &states(4, 0.0), &items(4, |i| rel[i]));
        b.insert(2, 1, &states(2, 10.0), &items(2, |_| 0.95));
        let mut kept: Vec<(u64, usize)> = b.entries(2).map(|(_, e)| (e.step, e.position)).collect();
        kept.sort();
        assert_eq!(
            kept,
            [(0, 0), (0, 2), (1, 0), (1, 1)],
            "0.1 and 0.3 went first"
        );
        assert_eq!(b.evictions, 2);
    }

    #[test]
    fn the_total_cap_evicts_across_layers() {
        let cfg = BufferConfig {
            per_layer: 4,
            total: 4,
            eviction: Eviction::Lru,
        };
        let mut b = MemoryBuffer::new(&cfg, &[0, 1], 4, Device::Cpu);
        b.insert(0, 0, &states(4, 0.0), &items(4, |_| 0.5));
        b.insert(1, 1, &states(2, 0.0), &items(2, |_| 0.5));
        assert_eq!((b.layer_len(0), b.layer_len(1)), (2, 2));
        assert_eq!(b.bytes(), 4 * (16 + std::mem::size_of::<Entry>() as u64));
    }
}
