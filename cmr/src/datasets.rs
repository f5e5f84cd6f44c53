//! Generated datasets of the five kinds, with planted facts, so that retrieval quality means something even with
//! random weights. A sample is a sequence of segments fed to the model one forward pass at a time (memory
//! persists between them); facts (a key token and its value tokens) are planted in early segments, and the last
//! segment asks for some of them by repeating their key. Retrieval is right when, during the last segment, it
//! brings back a state stored from a fact's span. Everything is deterministic in the seed.
//!
//! Token ids: 0..16 are markers, 16..48 code structure, 48..256 fact keys (never used elsewhere), 256.. filler.
//! The context draws its filler from the first three quarters of the vocabulary and the question from the last
//! quarter, as a question brings new words: the key is the only token the question shares with the context, so
//! what is measured is whether the scorer kept the fact and the retriever finds it among everything stored.

use crate::config::DatasetKind;

pub const BOS: i64 = 1;
pub const SPEAKER_A: i64 = 2;
pub const SPEAKER_B: i64 = 3;
pub const QUESTION: i64 = 4;
pub const SEP: i64 = 6;
pub const DEF: i64 = 7;
pub const CALL: i64 = 8;
const STRUCTURE: (i64, i64) = (16, 48);
const KEYS: (i64, i64) = (48, 256);
const FILLER_FROM: i64 = 256;

/// A planted fact: `key` followed by value tokens at `span` of segment `segment`.
#[derive(Clone, Debug, PartialEq)]
pub struct Fact {
    pub key: i64,
    pub segment: usize,
    pub span: std::ops::Range<usize>,
    /// Where the last segment repeats the key, when the fact is asked.
    pub asked_at: Option<usize>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub segments: Vec<Vec<i64>>,
    pub facts: Vec<Fact>,
}

impl Sample {
    pub fn tokens(&self) -> usize {
        self.segments.iter().map(Vec::len).sum()
    }
    /// The facts the last segment asks for.
    pub fn asked(&self) -> impl Iterator<Item = &Fact> {
        self.facts.iter().filter(|f| f.asked_at.is_some())
    }
}

/// SplitMix64: tiny, and the same numbers in every version.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next_u64() % (hi - lo).max(1) as u64) as i64
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// Shape of one kind: segments, their length, facts planted and asked.
struct Shape {
    segments: usize,
    len: usize,
    facts: usize,
    asked: usize,
}

fn shape(kind: DatasetKind) -> Shape {
    match kind {
        DatasetKind::Conversation => Shape {
            segments: 6,
            len: 48,
            facts: 1,
            asked: 1,
        },
        DatasetKind::LongContext => Shape {
            segments: 12,
            len: 128,
            facts: 1,
            asked: 1,
        },
        DatasetKind::QuestionAnswering => Shape {
            segments: 4,
            len: 96,
            facts: 3,
            asked: 1,
        },
        DatasetKind::Summarization => Shape {
            segments: 8,
            len: 96,
            facts: 4,
            asked: 4,
        },
        DatasetKind::CodeGeneration => Shape {
            segments: 6,
            len: 64,
            facts: 2,
            asked: 1,
        },
    }
}

/// `n` samples of a kind, for a vocabulary of `vocab` tokens (at least 512).
pub fn generate(kind: DatasetKind, n: usize, vocab: usize, seed: u64) -> Vec<Sample> {
    let mut rng = Rng::new(seed.wrapping_mul(31).wrapping_add(kind as u64 + 1));
    (0..n)
        .map(|_| sample(kind, vocab as i64, &mut rng))
        .collect()
}

fn filler(kind: DatasetKind, vocab: i64, question: bool, rng: &mut Rng) -> i64 {
    let fresh = FILLER_FROM + (vocab - FILLER_FROM) * 3 / 4;
    if question {
        rng.range(fresh, vocab)
    } else if kind == DatasetKind::CodeGeneration && rng.below(2) == 0 {
        rng.range(STRUCTURE.0, STRUCTURE.1)
    } else {
        rng.range(FILLER_FROM, fresh)
    }
}

fn sample(kind: DatasetKind, vocab: i64, rng: &mut Rng) -> Sample {
    let s = shape(kind);
    let mut segments: Vec<Vec<i64>> = (0..s.segments)
        .map(|i| {
            let question = i == s.segments - 1;
            let mut seg: Vec<i64> = (0..s.len)
                .map(|_| filler(kind, vocab, question, rng))
                .collect();
            match kind {
                DatasetKind::Conversation => {
                    seg[0] = if i % 2 == 0 { SPEAKER_A } else { SPEAKER_B }
                }
                _ if i == 0 => seg[0] = BOS,
                _ => {}
            }
            seg
        })
        .collect();
    // Distinct keys; facts go into the segments before the last, never at position 0.
    let mut keys: Vec<i64> = Vec::new();
    while keys.len() < s.facts {
        let k = rng.range(KEYS.0, KEYS.1);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let value_len = 3;
    let mut facts = Vec::new();
    for (i, &key) in keys.iter().enumerate() {
        let segment = match kind {
            // Far from the question: the first segment.
            DatasetKind::LongContext => 0,
            _ => (i * (s.segments - 1) / s.facts.max(1)).min(s.segments - 2),
        };
        let seg = &mut segments[segment];
        // Facts in one segment must not overlap: give each its own slot.
        let slots = (s.len - 2) / (value_len + 2);
        let slots = slots.max(1);
        let mut slot = rng.below(slots);
        let taken = |slot: usize, facts: &[Fact]| {
            facts
                .iter()
                .any(|f| f.segment == segment && f.span.start == 2 + slot * (value_len + 2))
        };
        while taken(slot, &facts) {
            slot = (slot + 1) % slots;
        }
        let start = 1 + slot * (value_len + 2);
        if kind == DatasetKind::CodeGeneration {
            seg[start] = DEF;
        } else {
            seg[start] = SEP;
        }
        seg[start + 1] = key;
        for v in 0..value_len {
            seg[start + 2 + v] = rng.range(FILLER_FROM, vocab);
        }
        facts.push(Fact {
            key,
            segment,
            span: start + 1..start + 2 + value_len,
            asked_at: None,
        });
    }
    // The last segment asks: marker then key, spread over its second half.
    let last = segments.len() - 1;
    let len = s.len;
    for (n, fact) in facts.iter_mut().take(s.asked).enumerate() {
        let pos = len / 2 + n * (len / 2 - 2) / s.asked.max(1);
        let pos = pos.min(len - 2);
        segments[last][pos] = if kind == DatasetKind::CodeGeneration {
            CALL
        } else {
            QUESTION
        };
        segments[last][pos + 1] = fact.key;
        fact.asked_at = Some(pos + 1);
    }
    Sample { segments, facts }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datasets_are_deterministic_and_facts_sit_where_they_say() {
        for kind in DatasetKind::ALL {
            let a = generate(kind, 4, 4096, 7);
            assert_eq!(a, generate(kind, 4, 4096, 7), "{kind:?}");
            assert_ne!(a, generate(kind, 4, 4096, 8), "{kind:?}");
            for s in &a {
                assert!(s.asked().count() >= 1);
                let last = s.segments.last().unwrap();
                for f in &s.facts {
                    assert!(f.segment < s.segments.len() - 1);
                    assert_eq!(s.segments[f.segment][f.span.start], f.key);
                    // A key appears nowhere else but where it is asked.
                    let uses: usize = s
                        .segments
                        .iter()
                        .map(|seg| seg.iter().filter(|&&t| t == f.key).count())
                        .sum();
                    assert_eq!(uses, 1 + usize::from(f.asked_at.is_some()), "{kind:?}");
                    if let Some(at) = f.asked_at {
                        assert_eq!(last[at], f.key);
                    }
                }
                assert!(s.segments.iter().flatten().all(|&t| (0..4096).contains(&t)));
            }
        }
    }
}
