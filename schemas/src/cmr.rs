//! A CMR benchmark's configuration: the model, the CMR components, what to measure and on what. Every field has
//! a default, so `{}` is a valid configuration; unknown fields are errors that name the field. Shared by labd
//! (which checks a configuration when it is submitted) and the `labd-cmr` runner (which runs it).

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BenchConfig {
    /// Human name of the benchmark.
    pub name: String,
    pub model: ModelConfig,
    pub cmr: CmrConfig,
    pub run: RunConfig,
    pub datasets: DatasetConfig,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            name: "cmr".into(),
            model: ModelConfig::default(),
            cmr: CmrConfig::default(),
            run: RunConfig::default(),
            datasets: DatasetConfig::default(),
        }
    }
}

/// The decoder-only transformer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    pub layers: usize,
    pub d_model: usize,
    pub heads: usize,
    pub vocab: usize,
    pub max_seq_len: usize,
    /// Width of the feed-forward layer as a multiple of `d_model`.
    pub mlp_ratio: usize,
    /// Seed of the random weights.
    pub seed: u64,
    /// A safetensors file to load the weights from instead (names as `Model::var_names` lists them).
    pub weights: Option<String>,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            layers: 4,
            d_model: 128,
            heads: 4,
            vocab: 4096,
            max_seq_len: 2048,
            mlp_ratio: 4,
            seed: 0,
            weights: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CmrConfig {
    /// Layers (0-based) whose output states are scored, stored, and reweaved with retrieved memories.
    pub hook_layers: Vec<usize>,
    pub scorer: ScorerConfig,
    pub buffer: BufferConfig,
    pub retrieval: RetrievalConfig,
    pub reconstruction: ReconstructionConfig,
}

impl Default for CmrConfig {
    fn default() -> Self {
        CmrConfig {
            hook_layers: vec![1, 2],
            scorer: ScorerConfig::default(),
            buffer: BufferConfig::default(),
            retrieval: RetrievalConfig::default(),
            reconstruction: ReconstructionConfig::default(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScorerKind {
    /// Attention a token receives, averaged over heads and the queries that can see it.
    Attention,
    /// Variance of the token's state across its features.
    Variance,
    /// A weighted mix of both (z-scored).
    Hybrid,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScorerConfig {
    pub kind: ScorerKind,
    /// Relevance (0..1, a sigmoid of the z-scored score) a state needs to be stored.
    pub threshold: f64,
    /// Weight of attention in `hybrid` (the rest is variance).
    pub hybrid_weight: f64,
    /// Most states stored per layer, sequence and forward pass (the most relevant first).
    pub max_per_step: usize,
}

impl Default for ScorerConfig {
    fn default() -> Self {
        ScorerConfig {
            kind: ScorerKind::Hybrid,
            threshold: 0.3,
            hybrid_weight: 0.5,
            max_per_step: 64,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Eviction {
    /// Least recently stored or retrieved first.
    Lru,
    /// Least relevant first.
    Relevance,
    /// Lowest of relevance and recency, half each.
    Hybrid,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BufferConfig {
    /// Entries per hooked layer.
    pub per_layer: usize,
    /// Entries in all.
    pub total: usize,
    pub eviction: Eviction,
}

impl Default for BufferConfig {
    fn default() -> Self {
        BufferConfig {
            per_layer: 1024,
            total: 2048,
            eviction: Eviction::Lru,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Cosine similarity to the closest current state.
    Semantic,
    /// Similarity to the mean of the current states, weighted by stored relevance.
    Contextual,
    /// Weighted relevance, similarity and recency, with diversity by maximal marginal relevance.
    MultiCriteria,
    /// Reciprocal-rank fusion of the three above.
    Hybrid,
}

impl Strategy {
    pub const ALL: [Strategy; 4] = [
        Strategy::Semantic,
        Strategy::Contextual,
        Strategy::MultiCriteria,
        Strategy::Hybrid,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Semantic => "semantic",
            Strategy::Contextual => "contextual",
            Strategy::MultiCriteria => "multi_criteria",
            Strategy::Hybrid => "hybrid",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Weights {
    pub relevance: f64,
    pub similarity: f64,
    pub recency: f64,
    pub diversity: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            relevance: 0.2,
            similarity: 0.5,
            recency: 0.2,
            diversity: 0.1,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetrievalConfig {
    pub strategy: Strategy,
    /// Most memories brought back per layer, sequence and forward pass.
    pub budget: usize,
    pub weights: Weights,
    /// Age (in forward passes) at which recency halves.
    pub recency_half_life: f64,
    /// A retrieval is a hit when its best memory is at least this similar (cosine).
    pub hit_similarity: f64,
}

impl Default for RetrievalConfig {
    fn default() -> Self {
        RetrievalConfig {
            strategy: Strategy::Semantic,
            budget: 8,
            weights: Weights::default(),
            recency_half_life: 8.0,
            hit_similarity: 0.5,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Attention within groups of memories from the same pass, then across the groups.
    Hierarchical,
    /// Each state attends to the memories.
    Attention,
    /// A feed-forward layer over the state and the memories' mean.
    Mlp,
}

impl Method {
    pub const ALL: [Method; 3] = [Method::Hierarchical, Method::Attention, Method::Mlp];
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Hierarchical => "hierarchical",
            Method::Attention => "attention",
            Method::Mlp => "mlp",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReconstructionConfig {
    pub method: Method,
    /// Most memories reweaved per layer and forward pass.
    pub max_memory_tokens: usize,
    /// How much of the reconstruction is blended into the states (0 leaves them unchanged).
    pub gate: f64,
    /// Sharpness of the attention over memories (cosine × temperature).
    pub temperature: f64,
}

impl Default for ReconstructionConfig {
    fn default() -> Self {
        ReconstructionConfig {
            method: Method::Attention,
            max_memory_tokens: 8,
            gate: 0.1,
            temperature: 10.0,
        }
    }
}

/// What to measure, where, and how often.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    /// `auto` (CUDA when present), `cpu` or `cuda`.
    pub device: String,
    /// CPU threads for libtorch; 0 keeps its default.
    pub threads: usize,
    /// Untimed passes before each measurement.
    pub warmup: usize,
    /// Timed passes per measurement.
    pub repeats: usize,
    pub sequence_lengths: Vec<usize>,
    pub batch_sizes: Vec<usize>,
    /// Sequence length of the layer, strategy, method, component and buffer analyses.
    pub focus_sequence_length: usize,
    /// Forward passes in the buffer analysis.
    pub buffer_steps: usize,
    /// Analyses to run: overhead, memory, layer, retrieval, reconstruction, buffer, components, dataset.
    pub analyses: Vec<String>,
}

pub const ANALYSES: [&str; 8] = [
    "overhead",
    "memory",
    "layer",
    "retrieval",
    "reconstruction",
    "buffer",
    "components",
    "dataset",
];

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            device: "auto".into(),
            threads: 0,
            warmup: 2,
            repeats: 5,
            sequence_lengths: vec![64, 128, 256, 512, 1024, 2048],
            batch_sizes: vec![1, 4],
            focus_sequence_length: 256,
            buffer_steps: 24,
            analyses: ANALYSES.iter().map(|s| s.to_string()).collect(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DatasetKind {
    Conversation,
    LongContext,
    QuestionAnswering,
    Summarization,
    CodeGeneration,
}

impl DatasetKind {
    pub const ALL: [DatasetKind; 5] = [
        DatasetKind::Conversation,
        DatasetKind::LongContext,
        DatasetKind::QuestionAnswering,
        DatasetKind::Summarization,
        DatasetKind::CodeGeneration,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            DatasetKind::Conversation => "conversation",
            DatasetKind::LongContext => "long_context",
            DatasetKind::QuestionAnswering => "question_answering",
            DatasetKind::Summarization => "summarization",
            DatasetKind::CodeGeneration => "code_generation",
        }
    }
}

/// The dataset tests. `kinds` with the options beside it make one test per kind; `tests` (the predecessor's
/// `dataset_configs` list, each entry in its shape) replaces them, each entry taking the options it leaves out
/// from here.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatasetConfig {
    pub kinds: Vec<DatasetKind>,
    /// Samples per dataset (the predecessor's `max_samples`).
    #[serde(alias = "max_samples")]
    pub samples: usize,
    pub seed: u64,
    /// Tokens of a sample at most, over all its segments (each segment is one forward pass).
    pub max_length: usize,
    /// Samples run side by side in one forward pass (each with its own memory).
    pub batch_size: usize,
    /// CMR on (store, retrieve, reweave) or the plain model, for a baseline.
    pub enable_memory: bool,
    /// Blend the retrieved memories into the states; off: store and retrieve only.
    pub enable_reconstruction: bool,
    /// The words: `corpus` (public-domain prose and source code shipped in the runner), `synthetic` (token
    /// ids drawn so that a fact's key is the only word a question shares with its context), or the path of a
    /// text file or folder (`.txt`, `.md`, `.jsonl` with a `text` field; source files for `code_generation`).
    pub text: String,
    #[serde(alias = "dataset_configs")]
    pub tests: Vec<DatasetTest>,
}

impl Default for DatasetConfig {
    fn default() -> Self {
        DatasetConfig {
            kinds: DatasetKind::ALL.to_vec(),
            samples: 8,
            seed: 0,
            max_length: 512,
            batch_size: 4,
            enable_memory: true,
            enable_reconstruction: true,
            text: "corpus".into(),
            tests: Vec::new(),
        }
    }
}

/// One dataset test as the predecessor wrote it: `{name, type, max_length, max_samples, batch_size,
/// test_config: {enable_memory, enable_reconstruction}}`, plus `text`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatasetTest {
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<DatasetKind>,
    pub max_length: Option<usize>,
    #[serde(alias = "samples")]
    pub max_samples: Option<usize>,
    pub batch_size: Option<usize>,
    pub test_config: Option<TestToggles>,
    pub text: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TestToggles {
    pub enable_memory: bool,
    pub enable_reconstruction: bool,
}

impl Default for TestToggles {
    fn default() -> Self {
        TestToggles {
            enable_memory: true,
            enable_reconstruction: true,
        }
    }
}

/// A dataset test with every option settled.
#[derive(Clone, Debug, PartialEq)]
pub struct DatasetRun {
    pub name: String,
    pub kind: DatasetKind,
    pub max_length: usize,
    pub samples: usize,
    pub batch_size: usize,
    pub memory: bool,
    pub reconstruction: bool,
    pub text: String,
    pub seed: u64,
}

impl DatasetKind {
    /// Segments of a sample, and their length before `max_length` shortens them.
    pub fn shape(self) -> (usize, usize) {
        match self {
            DatasetKind::Conversation => (6, 48),
            DatasetKind::LongContext => (12, 128),
            DatasetKind::QuestionAnswering => (4, 96),
            DatasetKind::Summarization => (8, 96),
            DatasetKind::CodeGeneration => (6, 64),
        }
    }

    /// The shortest segment that holds the facts and the questions (summarization asks four at once).
    pub fn min_segment_len(self) -> usize {
        match self {
            DatasetKind::Summarization => 32,
            _ => 16,
        }
    }
}

impl DatasetRun {
    /// Tokens per segment: the kind's length, shortened so that the sample fits `max_length`.
    pub fn segment_len(&self) -> usize {
        let (segments, len) = self.kind.shape();
        len.min(self.max_length / segments)
    }
}

impl DatasetConfig {
    /// The tests to run, in order.
    pub fn runs(&self) -> Vec<DatasetRun> {
        let base = |kind: DatasetKind| DatasetRun {
            name: kind.as_str().to_string(),
            kind,
            max_length: self.max_length,
            samples: self.samples,
            batch_size: self.batch_size,
            memory: self.enable_memory,
            reconstruction: self.enable_reconstruction,
            text: self.text.clone(),
            seed: self.seed,
        };
        if self.tests.is_empty() {
            return self.kinds.iter().map(|&k| base(k)).collect();
        }
        self.tests
            .iter()
            .map(|t| {
                let mut r = base(t.kind.unwrap_or(DatasetKind::Conversation));
                if let Some(n) = &t.name {
                    r.name.clone_from(n);
                }
                r.max_length = t.max_length.unwrap_or(r.max_length);
                r.samples = t.max_samples.unwrap_or(r.samples);
                r.batch_size = t.batch_size.unwrap_or(r.batch_size);
                if let Some(tc) = &t.test_config {
                    r.memory = tc.enable_memory;
                    r.reconstruction = tc.enable_reconstruction;
                }
                if let Some(text) = &t.text {
                    r.text.clone_from(text);
                }
                r
            })
            .collect()
    }
}

/// What is wrong with a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Parse(String),
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

impl BenchConfig {
    /// Parses JSON text (YAML is converted to JSON by the caller) and checks it.
    pub fn from_json(text: &str) -> Result<BenchConfig, ConfigError> {
        let c: BenchConfig =
            serde_json::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        c.check()?;
        Ok(c)
    }

    /// Checks what the types cannot.
    pub fn check(&self) -> Result<(), ConfigError> {
        let bad = |field, reason: String| Err(ConfigError::Invalid { field, reason });
        let m = &self.model;
        if m.layers == 0 || m.d_model == 0 || m.heads == 0 || m.vocab < 512 || m.max_seq_len == 0 {
            return bad(
                "model",
                "layers, d_model, heads and max_seq_len must be positive and vocab at least 512"
                    .into(),
            );
        }
        if !m.d_model.is_multiple_of(m.heads) {
            return bad(
                "model.heads",
                format!(
                    "d_model {} is not a multiple of heads {}",
                    m.d_model, m.heads
                ),
            );
        }
        if m.layers > 64 || m.d_model > 8192 || m.vocab > 1 << 20 || m.max_seq_len > 1 << 16 {
            return bad("model", "too large for a benchmark model".into());
        }
        if let Some(&l) = self.cmr.hook_layers.iter().find(|&&l| l >= m.layers) {
            return bad(
                "cmr.hook_layers",
                format!(
                    "layer {l} does not exist (the model has {} layers)",
                    m.layers
                ),
            );
        }
        let b = &self.cmr.buffer;
        if b.per_layer == 0 || b.total == 0 {
            return bad("cmr.buffer", "per_layer and total must be positive".into());
        }
        if !(0.0..=1.0).contains(&self.cmr.scorer.threshold) {
            return bad("cmr.scorer.threshold", "must be between 0 and 1".into());
        }
        if !(0.0..=1.0).contains(&self.cmr.reconstruction.gate) {
            return bad("cmr.reconstruction.gate", "must be between 0 and 1".into());
        }
        if self.cmr.retrieval.budget == 0 || self.cmr.reconstruction.max_memory_tokens == 0 {
            return bad(
                "cmr",
                "retrieval.budget and reconstruction.max_memory_tokens must be positive".into(),
            );
        }
        let r = &self.run;
        if !matches!(r.device.as_str(), "auto" | "cpu" | "cuda") {
            return bad(
                "run.device",
                format!("{:?}: expected auto, cpu or cuda", r.device),
            );
        }
        if r.repeats == 0 {
            return bad("run.repeats", "must be at least 1".into());
        }
        if let Some(&n) = r
            .sequence_lengths
            .iter()
            .chain([&r.focus_sequence_length])
            .find(|&&n| n < 16 || n > m.max_seq_len)
        {
            return bad(
                "run.sequence_lengths",
                format!("{n} is outside 16..={} (model.max_seq_len)", m.max_seq_len),
            );
        }
        if r.batch_sizes.iter().any(|&b| b == 0 || b > 256) {
            return bad("run.batch_sizes", "each must be in 1..=256".into());
        }
        if let Some(a) = r.analyses.iter().find(|a| !ANALYSES.contains(&a.as_str())) {
            return bad(
                "run.analyses",
                format!("unknown analysis {a:?} (expected {})", ANALYSES.join(", ")),
            );
        }
        self.check_datasets()
    }

    fn check_datasets(&self) -> Result<(), ConfigError> {
        let bad = |field, reason: String| Err(ConfigError::Invalid { field, reason });
        if let Some(i) = self.datasets.tests.iter().position(|t| t.kind.is_none()) {
            return bad(
                "datasets.tests",
                format!(
                    "entry {i} has no type (expected one of {})",
                    DatasetKind::ALL.map(DatasetKind::as_str).join(", ")
                ),
            );
        }
        for run in self.datasets.runs() {
            let (segments, _) = run.kind.shape();
            let min = run.kind.min_segment_len();
            if run.segment_len() < min {
                return bad(
                    "datasets.max_length",
                    format!(
                        "{}: {} tokens over the {segments} segments of {} leave {} a segment; at least {} are needed",
                        run.name,
                        run.max_length,
                        run.kind.as_str(),
                        run.max_length / segments,
                        min * segments
                    ),
                );
            }
            if run.samples == 0 || run.samples > 100_000 {
                return bad(
                    "datasets.samples",
                    format!("{}: {} is outside 1..=100000", run.name, run.samples),
                );
            }
            if run.batch_size == 0 || run.batch_size > 256 {
                return bad(
                    "datasets.batch_size",
                    format!("{}: {} is outside 1..=256", run.name, run.batch_size),
                );
            }
            if run.text.trim().is_empty() {
                return bad(
                    "datasets.text",
                    format!("{}: expected corpus, synthetic or a path", run.name),
                );
            }
        }
        Ok(())
    }

    pub fn wants(&self, analysis: &str) -> bool {
        self.run.analyses.iter().any(|a| a == analysis)
    }

    /// Measurements the configuration plans, for progress.
    pub fn planned(&self) -> u64 {
        let r = &self.run;
        let grid = (r.sequence_lengths.len() * r.batch_sizes.len()) as u64;
        r.analyses
            .iter()
            .map(|a| match a.as_str() {
                "overhead" | "memory" => grid,
                "layer" => self.cmr.hook_layers.len() as u64,
                "retrieval" => Strategy::ALL.len() as u64,
                "reconstruction" => Method::ALL.len() as u64,
                "buffer" => r.buffer_steps as u64,
                "components" => r.sequence_lengths.len() as u64,
                "dataset" => self.datasets.runs().len() as u64,
                _ => 0,
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_object_is_the_default_and_valid() {
        let c = BenchConfig::from_json("{}").unwrap();
        assert_eq!(c, BenchConfig::default());
    }

    #[test]
    fn errors_name_the_field() {
        for (text, says) in [
            (r#"{"model":{"layerz":3}}"#, "layerz"),
            (r#"{"cmr":{"hook_layers":[9]}}"#, "cmr.hook_layers"),
            (r#"{"model":{"d_model":100,"heads":3}}"#, "model.heads"),
            (
                r#"{"run":{"sequence_lengths":[4096]}}"#,
                "run.sequence_lengths",
            ),
            (r#"{"run":{"analyses":["speed"]}}"#, "unknown analysis"),
            (r#"{"cmr":{"retrieval":{"strategy":"psychic"}}}"#, "psychic"),
            (r#"{"datasets":{"max_length":40}}"#, "datasets.max_length"),
            (r#"{"datasets":{"batch_size":0}}"#, "datasets.batch_size"),
            (
                r#"{"datasets":{"dataset_configs":[{"name":"x"}]}}"#,
                "entry 0 has no type",
            ),
            (
                r#"{"datasets":{"tests":[{"type":"conversation","toggles":{}}]}}"#,
                "toggles",
            ),
        ] {
            let err = BenchConfig::from_json(text).unwrap_err().to_string();
            assert!(err.contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn the_predecessors_dataset_configs_are_taken_as_written() {
        let c = BenchConfig::from_json(
            r#"{"datasets":{"batch_size":2,"dataset_configs":[
                {"name":"conversation_test","type":"conversation","max_length":512,"max_samples":50,
                 "batch_size":4,"test_config":{"enable_memory":true,"enable_reconstruction":false}},
                {"name":"qa","type":"question_answering","test_config":{"enable_memory":false}}]}}"#,
        )
        .unwrap();
        let runs = c.datasets.runs();
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0].name, "conversation_test");
        assert_eq!(
            (runs[0].samples, runs[0].batch_size, runs[0].max_length),
            (50, 4, 512)
        );
        assert!(runs[0].memory && !runs[0].reconstruction);
        assert_eq!(runs[1].kind, DatasetKind::QuestionAnswering);
        assert_eq!(
            (runs[1].samples, runs[1].batch_size),
            (8, 2),
            "from datasets"
        );
        assert!(!runs[1].memory && runs[1].reconstruction);
        assert_eq!(runs[1].text, "corpus");
        // max_length shortens segments: 512 over the 12 of a long context.
        let long = BenchConfig::default()
            .datasets
            .runs()
            .into_iter()
            .find(|r| r.kind == DatasetKind::LongContext)
            .unwrap();
        assert_eq!(long.segment_len(), 42);
    }
}
