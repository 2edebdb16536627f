//! The embedding service: an LRU cache in front of a queue that worker
//! threads drain in micro-batches. Inference never runs on the async
//! runtime's threads.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use lru::LruCache;
use tokio::sync::oneshot;

use super::EmbedError;
use super::model::{Embedded, Encoder, ModelSpec};
use crate::config::EmbeddingConfig;

/// Jobs waiting for a worker; past this, callers get `Busy` (backpressure).
const QUEUE_CAPACITY: usize = 1024;

struct Job {
    texts: Vec<String>,
    reply: oneshot::Sender<Result<Vec<Embedded>, EmbedError>>,
}

/// Cache counters, for metrics and the benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub entries: usize,
}

pub struct EmbeddingEngine {
    spec: ModelSpec,
    queue: Sender<Job>,
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
    pub fn start(config: &EmbeddingConfig) -> Result<Arc<Self>, EmbedError> {
        if !config.enabled {
            return Err(EmbedError::Disabled);
        }
        let spec = ModelSpec::named(&config.model)?;
        let dir = config.model_dir();
        spec.verify(&dir)?;

        let (queue, jobs) = crossbeam_channel::bounded(QUEUE_CAPACITY);
        let loaded = Arc::new(OnceLock::new());
        let settings = WorkerSettings {
            batch_size: config.batch_size.max(1),
            batch_window: config.batch_window,
        };
        let threads = config.thread_count.max(1);
        let max_sequence_length = config.max_sequence_length;
        let batch_sizes = plan_batch_sizes(settings.batch_size);
        std::thread::Builder::new()
            .name("caxton-embed-load".into())
            .spawn({
                let spec = spec.clone();
                let loaded = loaded.clone();
                move || {
                    let started = Instant::now();
                    match Encoder::load(&spec, &dir, max_sequence_length, &batch_sizes) {
                        Ok(encoder) => {
                            let elapsed = started.elapsed();
                            tracing::info!(
                                model = %spec.name,
                                load_ms = elapsed.as_millis() as u64,
                                threads,
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
                            // Answer whoever queued, and everyone after.
                            for job in jobs.iter() {
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
        if let Some(Err(error)) = self.loaded.get() {
            return Err(error.clone());
        }
        let mut results: Vec<Option<Arc<Embedded>>> = vec![None; texts.len()];
        let mut missing: Vec<String> = Vec::new();
        if let Some(cache) = &self.cache {
            let mut cache = cache.lock().expect("cache lock");
            for (slot, text) in results.iter_mut().zip(texts) {
                *slot = cache.get(text).cloned();
            }
        }
        for (slot, text) in results.iter().zip(texts) {
            if slot.is_none() && !missing.contains(text) {
                missing.push(text.clone());
            }
        }
        let hits = results.iter().filter(|r| r.is_some()).count() as u64;
        self.hits.fetch_add(hits, Ordering::Relaxed);
        self.misses
            .fetch_add(texts.len() as u64 - hits, Ordering::Relaxed);

        if !missing.is_empty() {
            let (reply, answer) = oneshot::channel();
            let job = Job {
                texts: missing.clone(),
                reply,
            };
            self.queue.try_send(job).map_err(|e| match e {
                TrySendError::Full(_) => EmbedError::Busy,
                TrySendError::Disconnected(_) => EmbedError::Stopped,
            })?;
            let computed = answer.await.map_err(|_| EmbedError::Stopped)??;
            let computed: Vec<Arc<Embedded>> = computed.into_iter().map(Arc::new).collect();
            if let Some(cache) = &self.cache {
                let mut cache = cache.lock().expect("cache lock");
                for (text, embedded) in missing.iter().zip(&computed) {
                    cache.put(text.clone(), embedded.clone());
                }
            }
            for (slot, text) in results.iter_mut().zip(texts) {
                if slot.is_none() {
                    let at = missing.iter().position(|m| m == text).expect("queued");
                    *slot = Some(computed[at].clone());
                }
            }
        }
        Ok(results.into_iter().map(|r| r.expect("filled")).collect())
    }
}

#[derive(Clone, Copy)]
struct WorkerSettings {
    batch_size: usize,
    batch_window: Duration,
}

/// Plans for powers of two up to the configured batch size (and that size):
/// a short batch pads to the next plan, wasting at most half its rows.
fn plan_batch_sizes(batch_size: usize) -> Vec<usize> {
    let mut sizes: Vec<usize> = std::iter::successors(Some(1usize), |s| Some(s * 2))
        .take_while(|&s| s < batch_size)
        .collect();
    sizes.push(batch_size);
    sizes
}

/// One worker: take a job, gather more for up to `batch_window` (or until
/// `batch_size` texts), run them as one inference, answer each job.
fn work(encoder: &Encoder, jobs: &Receiver<Job>, settings: WorkerSettings) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        let mut count = batch[0].texts.len();
        let deadline = Instant::now() + settings.batch_window;
        while count < settings.batch_size {
            match jobs.recv_deadline(deadline) {
                Ok(job) => {
                    count += job.texts.len();
                    batch.push(job);
                }
                Err(_) => break,
            }
        }
        let texts: Vec<&str> = batch
            .iter()
            .flat_map(|job| job.texts.iter().map(String::as_str))
            .collect();
        match encoder.embed(&texts) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_cover_powers_of_two_up_to_the_batch_size() {
        assert_eq!(plan_batch_sizes(1), vec![1]);
        assert_eq!(plan_batch_sizes(16), vec![1, 2, 4, 8, 16]);
        assert_eq!(plan_batch_sizes(24), vec![1, 2, 4, 8, 16, 24]);
    }
}
