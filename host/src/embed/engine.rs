//! The embedding service: an LRU cache in front of a queue that worker
//! threads drain in micro-batches. Inference never runs on the async
//! runtime's threads.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use lru::LruCache;
use tokio::sync::oneshot;

use super::EmbedError;
use super::model::{Embedded, Encoder, ModelSpec};
use super::queue::{FairQueue, Queued, Refused};
use crate::config::EmbeddingConfig;

/// Texts waiting for a worker, in all; past this, callers get `Busy`
/// (backpressure). Four of the largest requests the API accepts.
const MAX_QUEUED_TEXTS: usize = 8192;
/// Texts one caller may have waiting: a quarter, so a flooding agent
/// leaves room (and, by taking turns, time) for everyone else.
const MAX_QUEUED_TEXTS_PER_CALLER: usize = MAX_QUEUED_TEXTS / 4;

/// The caller behind work that names none (the host's own, benchmarks).
pub const ANONYMOUS: &str = "";

struct Job {
    texts: Vec<String>,
    reply: oneshot::Sender<Result<Vec<Embedded>, EmbedError>>,
}

impl Queued for Job {
    fn texts(&self) -> usize {
        self.texts.len()
    }

    /// The caller stopped waiting (a request that timed out or hung up).
    fn abandoned(&self) -> bool {
        self.reply.is_closed()
    }
}

/// Cache counters, for metrics and the benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub entries: usize,
}

impl CacheStats {
    /// Hits over lookups, once there has been a lookup.
    pub fn hit_rate(&self) -> Option<f64> {
        let total = self.hits + self.misses;
        (total > 0).then(|| self.hits as f64 / total as f64)
    }
}

pub struct EmbeddingEngine {
    spec: ModelSpec,
    queue: Arc<FairQueue<Job>>,
    cache: Option<Mutex<LruCache<String, Arc<Embedded>>>>,
    hits: AtomicU64,
    misses: AtomicU64,
    /// Set once the model has loaded (or failed to); until then jobs queue.
    loaded: Arc<OnceLock<Result<Duration, EmbedError>>>,
}

impl EmbeddingEngine {
    /// Checks the model files now (a missing or corrupt model is an error
    /// here, at startup) and loads the model on a background thread, so the
    /// server can answer other requests while tract optimises the graph.
    /// The model's files are in `dir` (see `Config::model_dir`); a binary
    /// built with `bundled-model` writes its copy there first if needed.
    pub fn start(config: &EmbeddingConfig, dir: &Path) -> Result<Arc<Self>, EmbedError> {
        if !config.enabled {
            return Err(EmbedError::Disabled);
        }
        let spec = ModelSpec::named(&config.model)?;
        let dir = dir.to_owned();
        match super::install::install_bundled(&spec, &dir) {
            Ok(true) => tracing::info!(dir = %dir.display(), "wrote the bundled embedding model"),
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, "cannot write the bundled embedding model"),
        }
        spec.verify(&dir)?;

        let queue = Arc::new(FairQueue::new(
            MAX_QUEUED_TEXTS,
            MAX_QUEUED_TEXTS_PER_CALLER,
        ));
        let jobs = queue.clone();
        let loaded = Arc::new(OnceLock::new());
        let settings = WorkerSettings {
            batch_size: config.batch_size.max(1),
            batch_window: config.batch_window,
        };
        let threads = config.thread_count.max(1);
        let inference_threads = config.inference_threads;
        let max_sequence_length = config.max_sequence_length;
        let precision = config.precision;
        let batch_sizes = Encoder::plan_batch_sizes(settings.batch_size, inference_threads);
        std::thread::Builder::new()
            .name("caxton-embed-load".into())
            .spawn({
                let spec = spec.clone();
                let loaded = loaded.clone();
                move || {
                    let started = Instant::now();
                    match Encoder::load(&spec, &dir, max_sequence_length, &batch_sizes, precision)
                        .map(|encoder| encoder.with_inference_threads(inference_threads))
                    {
                        Ok(encoder) => {
                            let elapsed = started.elapsed();
                            tracing::info!(
                                model = %spec.name,
                                load_ms = elapsed.as_millis() as u64,
                                threads,
                                inference_threads = encoder.inference_threads(),
                                precision = encoder.precision(),
                                "embedding model loaded"
                            );
                            let _ = loaded.set(Ok(elapsed));
                            let encoder = Arc::new(encoder);
                            for i in 0..threads {
                                let (encoder, jobs) = (encoder.clone(), jobs.clone());
                                std::thread::Builder::new()
                                    .name(format!("caxton-embed-{i}"))
                                    .spawn(move || work(&encoder, &jobs, settings))
                                    .expect("spawning an embedding worker");
                            }
                        }
                        Err(error) => {
                            tracing::error!(%error, "embedding model failed to load");
                            let _ = loaded.set(Err(error.clone()));
                            // Answer whoever queued; later callers see the error first.
                            jobs.close();
                            while let Some(job) = jobs.pop() {
                                let _ = job.reply.send(Err(error.clone()));
                            }
                        }
                    }
                }
            })
            .expect("spawning the embedding loader");

        let cache = NonZeroUsize::new(config.cache_size).map(|n| Mutex::new(LruCache::new(n)));
        Ok(Arc::new(Self {
            spec,
            queue,
            cache,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            loaded,
        }))
    }

    pub fn model_name(&self) -> &str {
        &self.spec.name
    }

    pub fn dims(&self) -> usize {
        self.spec.dims
    }

    /// `Some(load time)` once the model is ready.
    pub fn load_time(&self) -> Option<Duration> {
        self.loaded.get().and_then(|r| r.as_ref().ok().copied())
    }

    pub fn cache_stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries: self
                .cache
                .as_ref()
                .map_or(0, |c| c.lock().expect("cache lock").len()),
        }
    }

    /// Embeds `texts` in order, from the cache where possible.
    pub async fn embed(&self, texts: &[String]) -> Result<Vec<Arc<Embedded>>, EmbedError> {
        self.embed_as(ANONYMOUS, texts).await
    }

    /// [`Self::embed`] on behalf of `caller` (an agent's name, say): each
    /// caller's work waits its turn with the others' and within its share
    /// of the queue.
    pub async fn embed_as(
        &self,
        caller: &str,
        texts: &[String],
    ) -> Result<Vec<Arc<Embedded>>, EmbedError> {
        if let Some(Err(error)) = self.loaded.get() {
            return Err(error.clone());
        }
        let mut results: Vec<Option<Arc<Embedded>>> = vec![None; texts.len()];
        if let Some(cache) = &self.cache {
            let mut cache = cache.lock().expect("cache lock");
            for (slot, text) in results.iter_mut().zip(texts) {
                *slot = cache.get(text).cloned();
            }
        }
        let hits = results.iter().filter(|r| r.is_some()).count() as u64;
        self.hits.fetch_add(hits, Ordering::Relaxed);
        self.misses
            .fetch_add(texts.len() as u64 - hits, Ordering::Relaxed);

        // Each distinct missing text is computed once.
        let mut missing: Vec<String> = Vec::new();
        let mut position: HashMap<&str, usize> = HashMap::new();
        for (slot, text) in results.iter().zip(texts) {
            if slot.is_none() && !position.contains_key(text.as_str()) {
                position.insert(text, missing.len());
                missing.push(text.clone());
            }
        }
        if !missing.is_empty() {
            let computed = self.compute(caller, missing.clone()).await?;
            if let Some(cache) = &self.cache {
                let mut cache = cache.lock().expect("cache lock");
                for (text, embedded) in missing.into_iter().zip(&computed) {
                    cache.put(text, embedded.clone());
                }
            }
            for (slot, text) in results.iter_mut().zip(texts) {
                if slot.is_none() {
                    *slot = Some(computed[position[text.as_str()]].clone());
                }
            }
        }
        Ok(results.into_iter().map(|r| r.expect("filled")).collect())
    }

    /// Queues texts for the workers and waits for their vectors.
    async fn compute(
        &self,
        caller: &str,
        texts: Vec<String>,
    ) -> Result<Vec<Arc<Embedded>>, EmbedError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .push(caller, Job { texts, reply })
            .map_err(|refused| match refused {
                Refused::Full => EmbedError::Busy,
                Refused::Closed => EmbedError::Stopped,
            })?;
        let computed = answer.await.map_err(|_| EmbedError::Stopped)??;
        Ok(computed.into_iter().map(Arc::new).collect())
    }
}

impl Drop for EmbeddingEngine {
    /// The workers finish what is queued and stop, freeing the model.
    fn drop(&mut self) {
        self.queue.close();
    }
}

#[derive(Clone, Copy)]
struct WorkerSettings {
    batch_size: usize,
    batch_window: Duration,
}

/// One worker: take a job, add whatever else is already queued, then wait
/// up to `batch_window` for more (if configured) until `batch_size` texts;
/// run them as one inference and answer each job. With no window a lone
/// request pays no batching delay, and requests that arrive while the
/// worker is busy are batched anyway.
fn work(encoder: &Encoder, jobs: &FairQueue<Job>, settings: WorkerSettings) {
    while let Some(first) = jobs.pop() {
        let mut count = first.texts.len();
        let mut batch = vec![first];
        // With no window, only what is already queued joins the batch.
        let deadline = Instant::now() + settings.batch_window;
        while count < settings.batch_size {
            match jobs.pop_until(deadline) {
                Some(job) => {
                    count += job.texts.len();
                    batch.push(job);
                }
                None => break,
            }
        }
        let texts: Vec<&str> = batch
            .iter()
            .flat_map(|job| job.texts.iter().map(String::as_str))
            .collect();
        let started = Instant::now();
        let embedded = encoder.embed(&texts);
        let metrics = crate::metrics::metrics();
        metrics
            .embedding_batch_duration
            .observe(started.elapsed().as_secs_f64());
        metrics.embedding_batch_texts.observe(texts.len() as f64);
        match embedded {
            Ok(mut vectors) => {
                for job in batch.into_iter().rev() {
                    let theirs = vectors.split_off(vectors.len() - job.texts.len());
                    let _ = job.reply.send(Ok(theirs));
                }
            }
            Err(error) => {
                for job in batch {
                    let _ = job.reply.send(Err(error.clone()));
                }
            }
        }
    }
}
