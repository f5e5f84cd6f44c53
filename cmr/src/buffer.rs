//! The layered memory buffer: stored hidden states per hooked layer, with caps per layer and in total, and
//! eviction by recency of use (LRU), by relevance, or both. States live in one preallocated tensor per layer on
//! the model's device; what is known about each entry lives here in Rust.

use crate::config::{BufferConfig, Eviction};
use std::collections::BTreeMap;
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
    /// The victims of one call are chosen together, in one pass over the entries; when more items come than
    /// the layer holds, the most relevant are kept.
    pub fn insert(&mut self, layer: usize, step: u64, states: &Tensor, items: &[Item]) {
        let Some(per_layer) = self.layers.get(&layer).map(|s| s.slots.len()) else {
            return;
        };
        if items.is_empty() {
            return;
        }
        self.clock += 1;
        let clock = self.clock;
        let mut items: Vec<(usize, Item)> = items.iter().copied().enumerate().collect();
        let room = per_layer.min(self.cfg.total);
        if items.len() > room {
            items.sort_by(|a, b| b.1.relevance.total_cmp(&a.1.relevance).then(a.0.cmp(&b.0)));
            items.truncate(room);
        }
        let k = items.len();
        let over_layer = (self.layer_len(layer) + k).saturating_sub(per_layer);
        self.evict_n(Some(layer), over_layer);
        let over_total = (self.len + k).saturating_sub(self.cfg.total);
        self.evict_n(None, over_total);
        let Some(store) = self.layers.get_mut(&layer) else {
            return;
        };
        let free: Vec<usize> = store
            .slots
            .iter()
            .enumerate()
            .filter(|(_, e)| e.is_none())
            .map(|(i, _)| i)
            .take(k)
            .collect();
        let mut slots = Vec::with_capacity(k);
        let mut sources = Vec::with_capacity(k);
        for (&slot, (i, item)) in free.iter().zip(&items) {
            store.slots[slot] = Some(Entry {
                layer,
                row: item.row,
                step,
                position: item.position,
                relevance: item.relevance,
                last_used: clock,
            });
            slots.push(slot as i64);
            sources.push(*i as i64);
        }
        self.len += slots.len();
        self.stored += items.len() as u64;
        if slots.is_empty() {
            return;
        }
        let device = store.states.device();
        let slots = Tensor::from_slice(&slots).to_device(device);
        let sources = Tensor::from_slice(&sources).to_device(device);
        let rows = states.to_kind(Kind::Float).index_select(0, &sources);
        let _ = store.states.index_copy_(0, &slots, &rows);
    }

    /// Evicts the `n` entries the policy ranks lowest, within `layer` or from all layers.
    fn evict_n(&mut self, layer: Option<usize>, n: usize) {
        if n == 0 {
            return;
        }
        let (min_used, max_used) = self
            .layers
            .values()
            .flat_map(|s| s.slots.iter().flatten())
            .fold((u64::MAX, 0), |(lo, hi), e| {
                (lo.min(e.last_used), hi.max(e.last_used))
            });
        let span = (max_used.saturating_sub(min_used)).max(1) as f64;
        let eviction = self.cfg.eviction;
        let score = |e: &Entry| -> f64 {
            match eviction {
                Eviction::Lru => e.last_used as f64,
                Eviction::Relevance => e.relevance as f64,
                Eviction::Hybrid => {
                    0.5 * e.relevance as f64 + 0.5 * (e.last_used - min_used) as f64 / span
                }
            }
        };
        // (score, last used, step, position, layer, slot): ties go to the oldest entry.
        let mut ranked: Vec<(f64, u64, u64, usize, usize, usize)> = self
            .layers
            .iter()
            .filter(|(l, _)| layer.is_none_or(|want| **l == want))
            .flat_map(|(l, s)| {
                s.slots.iter().enumerate().filter_map(move |(i, e)| {
                    e.as_ref()
                        .map(|e| (score(e), e.last_used, e.step, e.position, *l, i))
                })
            })
            .collect();
        let n = n.min(ranked.len());
        if n == 0 {
            return;
        }
        let order = |a: &(f64, u64, u64, usize, usize, usize),
                     b: &(f64, u64, u64, usize, usize, usize)| {
            a.0.total_cmp(&b.0)
                .then(a.1.cmp(&b.1))
                .then(a.2.cmp(&b.2))
                .then(a.3.cmp(&b.3))
                .then(a.4.cmp(&b.4))
                .then(a.5.cmp(&b.5))
        };
        if n < ranked.len() {
            ranked.select_nth_unstable_by(n - 1, order);
        }
        for &(_, _, _, _, l, slot) in &ranked[..n] {
            if let Some(store) = self.layers.get_mut(&l)
                && store.slots[slot].take().is_some()
            {
                self.len -= 1;
                self.evictions += 1;
            }
        }
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
