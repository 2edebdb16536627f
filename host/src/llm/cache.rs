//! The response cache of configuration agents with `cache_responses`:
//! an LRU of answers keyed by a digest of everything that decides them
//! (agent, its version, provider, model and the whole request), each
//! served for a TTL.

use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::runtime::ChatResponse;

/// Answers by key, each with when it was stored.
type Entries = lru::LruCache<[u8; 32], (Instant, ChatResponse)>;

pub struct ResponseCache {
    entries: Option<Mutex<Entries>>,
    ttl: Duration,
}

impl ResponseCache {
    /// `capacity` 0 turns the cache off.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            entries: NonZeroUsize::new(capacity).map(|n| Mutex::new(lru::LruCache::new(n))),
            ttl,
        }
    }

    /// The key of a request: each part length-prefixed, so no two
    /// different requests can run together into one key.
    pub fn key(parts: &[&str]) -> [u8; 32] {
        let mut digest = Sha256::new();
        for part in parts {
            digest.update((part.len() as u64).to_le_bytes());
            digest.update(part.as_bytes());
        }
        digest.finalize().into()
    }

    pub fn get(&self, key: &[u8; 32]) -> Option<ChatResponse> {
        let mut entries = self.entries.as_ref()?.lock().expect("cache lock");
        match entries.get(key) {
            Some((stored, answer)) if stored.elapsed() < self.ttl => Some(answer.clone()),
            Some(_) => {
                entries.pop(key);
                None
            }
            None => None,
        }
    }

    pub fn put(&self, key: [u8; 32], answer: ChatResponse) {
        if let Some(entries) = &self.entries {
            entries
                .lock()
                .expect("cache lock")
                .put(key, (Instant::now(), answer));
        }
    }
}
