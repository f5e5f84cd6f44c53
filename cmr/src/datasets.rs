//! The datasets of the five kinds, with planted facts, so that retrieval quality means something even with
//! random weights. A sample is a sequence of segments fed to the model one forward pass at a time (memory
//! persists between them); facts (a key token and its value) are planted in early segments, and the last
//! segment asks for some of them by repeating their key. Retrieval is right when, during the last segment, it
//! brings back a state stored from a fact's span. Everything is deterministic in the seed.
//!
//! The words around the facts are real text ([`Words::Text`]: the shipped corpus of public-domain prose and
//! source code, or the user's files, read on from a random place) or synthetic ids ([`Words::Synthetic`]). In
//! text a fact reads `the code of <key> is 4821 .` and its question `of <key> ?` (code: `fn <key>() -> u32
//! { 4821 }` and `= <key>()`), so the question shares its common words with the context as real text does.
//!
//! Token ids: 0..16 are markers, 16..48 code structure, 48..256 fact keys (never used elsewhere, like a name
//! seen once), 256.. words ([`token`]: a hash of the word). Synthetic filler draws the context from the first
//! three quarters of the word ids and the question from the last quarter: the key is then the only token the
//! question shares with the context, so what is measured is whether the scorer kept the fact and the retriever
//! finds it among everything stored.

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

/// Facts planted and asked by a kind.
fn facts_of(kind: DatasetKind) -> (usize, usize) {
    match kind {
        DatasetKind::Conversation => (1, 1),
        DatasetKind::LongContext => (1, 1),
        DatasetKind::QuestionAnswering => (3, 1),
        DatasetKind::Summarization => (4, 4),
        DatasetKind::CodeGeneration => (2, 1),
    }
}

/// Where the words of the samples come from.
#[derive(Clone, Debug, PartialEq)]
pub enum Words {
    /// Token ids drawn so that a fact's key is the only token a question shares with its context: the context
    /// draws its filler from the first three quarters of the vocabulary, the question from the last quarter.
    Synthetic,
    /// Real text, tokenized by [`tokenize`]: prose for four kinds, source code for `code_generation`.
    Text(Text),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Text {
    pub prose: Vec<i64>,
    pub code: Vec<i64>,
}

/// The text shipped with the runner: public-domain prose (`data/corpus.txt`) and this crate's own source.
const CORPUS: &str = include_str!("../data/corpus.txt");
const CODE: [&str; 3] = [
    include_str!("buffer.rs"),
    include_str!("retriever.rs"),
    include_str!("reweave.rs"),
];

/// What is wrong with a text source.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    #[error("datasets.text {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("datasets.text {path} line {line}: {reason}")]
    Line {
        path: String,
        line: usize,
        reason: String,
    },
    #[error(
        "datasets.text {0}: no text found (expected .txt, .md, .jsonl with a \"text\" field, or source files)"
    )]
    Empty(String),
}

/// A word's token: 64-bit FNV-1a of its lower case, into the filler ids. The same word is the same token in
/// every run and every version; no vocabulary file is needed.
pub fn token(word: &str, vocab: usize) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in word.bytes() {
        h ^= u64::from(b.to_ascii_lowercase());
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    FILLER_FROM + (h % (vocab as u64 - FILLER_FROM as u64)) as i64
}

/// Words (runs of letters, digits, `_` and `'`) and single punctuation marks, as tokens.
pub fn tokenize(text: &str, vocab: usize, out: &mut Vec<i64>) {
    let mut word = String::new();
    for c in text.chars() {
        if c.is_alphanumeric() || c == '_' || c == '\'' {
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            out.push(token(&word, vocab));
            word.clear();
        }
        if !c.is_whitespace() {
            out.push(token(c.encode_utf8(&mut [0; 4]), vocab));
        }
    }
    if !word.is_empty() {
        out.push(token(&word, vocab));
    }
}

fn prose_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().filter(|l| !l.trim_start().starts_with('#'))
}

/// The shipped text.
pub fn corpus(vocab: usize) -> Text {
    let mut prose = Vec::new();
    for line in prose_lines(CORPUS) {
        tokenize(line, vocab, &mut prose);
    }
    let mut code = Vec::new();
    for file in CODE {
        tokenize(file, vocab, &mut code);
    }
    Text { prose, code }
}

const CODE_EXTENSIONS: [&str; 12] = [
    "rs", "py", "c", "cc", "cpp", "h", "hpp", "js", "ts", "go", "java", "jl",
];

/// Text from a file or a folder (read in name order, not recursing into hidden folders): `.txt` and `.md` as
/// prose, `.jsonl` lines' `text` fields as prose, source files as code. Without source files, code samples
/// read the prose.
pub fn from_path(path: &std::path::Path, vocab: usize) -> Result<Text, TextError> {
    let shown = path.display().to_string();
    let mut files = Vec::new();
    collect(path, &mut files).map_err(|source| TextError::Read {
        path: shown.clone(),
        source,
    })?;
    let (mut prose, mut code) = (Vec::new(), Vec::new());
    for file in files {
        let ext = file
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        let is_code = CODE_EXTENSIONS.contains(&ext.as_str());
        if !(is_code || matches!(ext.as_str(), "txt" | "md" | "jsonl")) {
            continue;
        }
        let name = file.display().to_string();
        let bytes = std::fs::read(&file).map_err(|source| TextError::Read {
            path: name.clone(),
            source,
        })?;
        let text = String::from_utf8_lossy(&bytes);
        if ext == "jsonl" {
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let bad = |reason: String| TextError::Line {
                    path: name.clone(),
                    line: i + 1,
                    reason,
                };
                let v: serde_json::Value =
                    serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
                let t = v
                    .get("text")
                    .and_then(|t| t.as_str())
                    .ok_or_else(|| bad("no \"text\" string".into()))?;
                tokenize(t, vocab, &mut prose);
            }
        } else if is_code {
            tokenize(&text, vocab, &mut code);
        } else {
            tokenize(&text, vocab, &mut prose);
        }
    }
    if prose.is_empty() && code.is_empty() {
        return Err(TextError::Empty(shown));
    }
    if prose.is_empty() {
        prose.clone_from(&code);
    }
    if code.is_empty() {
        code.clone_from(&prose);
    }
    Ok(Text { prose, code })
}

fn collect(path: &std::path::Path, files: &mut Vec<std::path::PathBuf>) -> std::io::Result<()> {
    if !std::fs::metadata(path)?.is_dir() {
        files.push(path.to_path_buf());
        return Ok(());
    }
    let mut entries: Vec<_> = std::fs::read_dir(path)?
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !n.starts_with('.'))
        })
        .collect();
    entries.sort();
    for e in entries {
        collect(&e, files)?;
    }
    Ok(())
}

/// The words a run names: `synthetic`, `corpus`, or a path.
pub fn words(text: &str, vocab: usize) -> Result<Words, TextError> {
    Ok(match text {
        "synthetic" => Words::Synthetic,
        "corpus" => Words::Text(corpus(vocab)),
        path => Words::Text(from_path(std::path::Path::new(path), vocab)?),
    })
}

/// `n` synthetic samples of a kind in its own shape, for a vocabulary of `vocab` tokens (at least 512).
pub fn generate(kind: DatasetKind, n: usize, vocab: usize, seed: u64) -> Vec<Sample> {
    let (_, len) = kind.shape();
    samples(kind, len, n, vocab, seed, &Words::Synthetic)
}

/// `n` samples of a kind with segments of `len` tokens, from `words`. Deterministic in the seed.
pub fn samples(
    kind: DatasetKind,
    len: usize,
    n: usize,
    vocab: usize,
    seed: u64,
    words: &Words,
) -> Vec<Sample> {
    let mut rng = Rng::new(seed.wrapping_mul(31).wrapping_add(kind as u64 + 1));
    (0..n)
        .map(|_| sample(kind, len, vocab as i64, words, &mut rng))
        .collect()
}

/// The tokens of a planted fact and of its question, and where the key sits in each.
struct Template {
    fact: Vec<i64>,
    key_in_fact: usize,
    /// The span of the fact's key and value, from the key.
    span_len: usize,
    question: Vec<i64>,
    key_in_question: usize,
}

fn template(kind: DatasetKind, key: i64, vocab: i64, words: &Words, rng: &mut Rng) -> Template {
    let code = kind == DatasetKind::CodeGeneration;
    match words {
        Words::Synthetic => {
            let values: Vec<i64> = (0..3).map(|_| rng.range(FILLER_FROM, vocab)).collect();
            let mut fact = vec![if code { DEF } else { SEP }, key];
            fact.extend(values);
            Template {
                fact,
                key_in_fact: 1,
                span_len: 4,
                question: vec![if code { CALL } else { QUESTION }, key],
                key_in_question: 1,
            }
        }
        Words::Text(_) => {
            let v = vocab as usize;
            let w = |s: &str| token(s, v);
            let number = rng.range(1000, 10_000).to_string();
            if code {
                // fn <key>() -> u32 { <number> }   and later   <key>()
                let mut fact = vec![w("fn"), key, w("("), w(")"), w("-"), w(">"), w("u32")];
                fact.extend([w("{"), w(&number), w("}")]);
                Template {
                    fact,
                    key_in_fact: 1,
                    span_len: 9,
                    question: vec![w("="), key, w("("), w(")")],
                    key_in_question: 1,
                }
            } else {
                // the code of <key> is <number> .   and later   code of <key> ?
                let fact = vec![
                    w("the"),
                    w("code"),
                    w("of"),
                    key,
                    w("is"),
                    w(&number),
                    w("."),
                ];
                Template {
                    fact,
                    key_in_fact: 3,
                    span_len: 3,
                    question: vec![w("of"), key, w("?")],
                    key_in_question: 1,
                }
            }
        }
    }
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

fn sample(kind: DatasetKind, len: usize, vocab: i64, words: &Words, rng: &mut Rng) -> Sample {
    let (segment_count, _) = kind.shape();
    let (fact_count, asked) = facts_of(kind);
    // Real text reads on from a random place in the text, segment after segment.
    let stream: &[i64] = match words {
        Words::Synthetic => &[],
        Words::Text(t) if kind == DatasetKind::CodeGeneration => &t.code,
        Words::Text(t) => &t.prose,
    };
    let mut cursor = rng.below(stream.len().max(1));
    let mut segments: Vec<Vec<i64>> = (0..segment_count)
        .map(|i| {
            let question = i == segment_count - 1;
            let mut seg: Vec<i64> = (0..len)
                .map(|_| {
                    if stream.is_empty() {
                        filler(kind, vocab, question, rng)
                    } else {
                        cursor = (cursor + 1) % stream.len();
                        stream[cursor]
                    }
                })
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
    while keys.len() < fact_count {
        let k = rng.range(KEYS.0, KEYS.1);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let mut facts = Vec::new();
    let mut questions = Vec::new();
    for (i, &key) in keys.iter().enumerate() {
        let segment = match kind {
            // Far from the question: the first segment.
            DatasetKind::LongContext => 0,
            _ => (i * (segment_count - 1) / fact_count.max(1)).min(segment_count - 2),
        };
        let t = template(kind, key, vocab, words, rng);
        // Facts in one segment must not overlap: give each its own slot.
        let width = t.fact.len() + 1;
        let slots = ((len - 1) / width).max(1);
        let mut slot = rng.below(slots);
        let taken = |slot: usize, facts: &[Fact]| {
            facts
                .iter()
                .any(|f| f.segment == segment && f.span.start == 1 + slot * width + t.key_in_fact)
        };
        while taken(slot, &facts) {
            slot = (slot + 1) % slots;
        }
        let start = 1 + slot * width;
        let seg = &mut segments[segment];
        let end = (start + t.fact.len()).min(len);
        seg[start..end].copy_from_slice(&t.fact[..end - start]);
        let key_at = start + t.key_in_fact;
        facts.push(Fact {
            key,
            segment,
            span: key_at..(key_at + t.span_len).min(len),
            asked_at: None,
        });
        questions.push((t.question, t.key_in_question));
    }
    // The last segment asks, spread over its second half.
    let last = segments.len() - 1;
    let spacing = (len - len / 2) / asked.max(1);
    for (n, (fact, (question, key_in))) in facts.iter_mut().zip(questions).take(asked).enumerate() {
        let pos = (len / 2 + n * spacing).min(len - question.len());
        segments[last][pos..pos + question.len()].copy_from_slice(&question);
        fact.asked_at = Some(pos + key_in);
    }
    Sample { segments, facts }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datasets_are_deterministic_and_facts_sit_where_they_say() {
        let corpus = Words::Text(corpus(4096));
        for words in [Words::Synthetic, corpus] {
            for kind in DatasetKind::ALL {
                for len in [kind.min_segment_len(), kind.shape().1] {
                    let a = samples(kind, len, 4, 4096, 7, &words);
                    assert_eq!(a, samples(kind, len, 4, 4096, 7, &words), "{kind:?}");
                    assert_ne!(a, samples(kind, len, 4, 4096, 8, &words), "{kind:?}");
                    for s in &a {
                        assert!(s.segments.iter().all(|seg| seg.len() == len));
                        assert!(s.asked().count() >= 1);
                        let last = s.segments.last().unwrap();
                        for f in &s.facts {
                            assert!(f.segment < s.segments.len() - 1);
                            assert_eq!(
                                s.segments[f.segment][f.span.start], f.key,
                                "{kind:?} {len}"
                            );
                            // A key appears nowhere else but where it is asked.
                            let uses: usize = s
                                .segments
                                .iter()
                                .map(|seg| seg.iter().filter(|&&t| t == f.key).count())
                                .sum();
                            assert_eq!(
                                uses,
                                1 + usize::from(f.asked_at.is_some()),
                                "{kind:?} {len}"
                            );
                            if let Some(at) = f.asked_at {
                                assert_eq!(last[at], f.key);
                            }
                        }
                        assert!(s.segments.iter().flatten().all(|&t| (0..4096).contains(&t)));
                    }
                }
            }
        }
    }

    #[test]
    fn text_reads_as_words_of_the_corpus() {
        let words = Words::Text(corpus(4096));
        let Words::Text(t) = &words else {
            unreachable!()
        };
        assert!(t.prose.len() > 2000 && t.code.len() > 2000);
        let s = &samples(DatasetKind::Conversation, 48, 1, 4096, 3, &words)[0];
        // Apart from the markers and the fact, every token is a word of the corpus, in the corpus's order.
        let seg = &s.segments[1];
        let window = &seg[1..8];
        assert!(
            t.prose.windows(7).any(|w| w == window),
            "a run of seven words of the text"
        );
        assert_eq!(token("Alice", 4096), token("alice", 4096));
        let mut out = Vec::new();
        tokenize("It was the best of times, it was", 4096, &mut out);
        assert_eq!(out.len(), 9);
        assert_eq!(out[0], out[7]);
        assert_eq!(out[6], token(",", 4096));
    }

    #[test]
    fn text_from_files_and_errors_that_name_them() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), "Call me Ishmael. Some years ago").unwrap();
        std::fs::write(
            dir.path().join("b.jsonl"),
            "{\"text\": \"never mind how long precisely\"}\n\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("c.py"), "def f(x):\n    return x + 1\n").unwrap();
        std::fs::write(dir.path().join("d.bin"), [0u8, 159, 146, 150]).unwrap();
        let t = from_path(dir.path(), 4096).unwrap();
        assert_eq!(t.prose.len(), 7 + 5);
        assert_eq!(t.code.len(), 10);
        std::fs::write(dir.path().join("e.jsonl"), "{\"text\": 1}\n").unwrap();
        let err = from_path(dir.path(), 4096).unwrap_err().to_string();
        assert!(err.contains("e.jsonl line 1"), "{err}");
        let err = words("/nonexistent/text", 4096).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/text"), "{err}");
        let empty = tempfile::tempdir().unwrap();
        let err = from_path(empty.path(), 4096).unwrap_err().to_string();
        assert!(err.contains("no text found"), "{err}");
    }
}
