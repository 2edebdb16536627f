//! Token buckets: one per client address and one for the whole server.
//! A request takes a token from its client's bucket before authentication
//! and from the server's once authenticated; when either is empty the
//! answer is 429 with the seconds until a token is back.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use crate::config::RateLimitConfig;

/// Client buckets kept at most; idle full buckets are dropped first, so a
/// flood of spoofed addresses cannot grow memory without bound.
const MAX_CLIENTS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    fn full(burst: u32, now: Instant) -> Self {
        Self {
            tokens: burst as f64,
            updated: now,
        }
    }

    fn refill(&mut self, rate: u32, burst: u32, now: Instant) {
        let elapsed = now.duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate as f64).min(burst as f64);
        self.updated = now;
    }

    /// Seconds until one token is available (0 when one is there now).
    fn wait(&self, rate: u32) -> f64 {
        ((1.0 - self.tokens) / rate as f64).max(0.0)
    }
}

pub struct RateLimiter {
    config: RateLimitConfig,
    state: Mutex<State>,
}

struct State {
    global: Bucket,
    clients: HashMap<IpAddr, Bucket>,
}

impl RateLimiter {
    pub fn new(config: RateLimitConfig) -> Self {
        let now = Instant::now();
        Self {
            state: Mutex::new(State {
                global: Bucket::full(config.global_burst, now),
                clients: HashMap::new(),
            }),
            config,
        }
    }

    /// Takes a token from `client`'s bucket; on refusal, the whole
    /// seconds to wait. Checked before authentication: it costs a
    /// stranger only their own bucket.
    pub fn check_client(&self, client: IpAddr) -> Result<(), u32> {
        self.check_client_at(super::per_client::client_key(client), Instant::now())
    }

    /// Takes a token from the server-wide bucket. Only authenticated
    /// requests are charged, so strangers cannot starve the real clients.
    pub fn check_global(&self) -> Result<(), u32> {
        self.check_global_at(Instant::now())
    }

    fn check_client_at(&self, client: IpAddr, now: Instant) -> Result<(), u32> {
        let c = &self.config;
        let mut state = self.state.lock().expect("rate limiter lock");
        if state.clients.len() >= MAX_CLIENTS && !state.clients.contains_key(&client) {
            let (rate, burst) = (c.per_client_rps, c.per_client_burst);
            state.clients.retain(|_, bucket| {
                bucket.refill(rate, burst, now);
                bucket.tokens < burst as f64
            });
        }
        let bucket = state
            .clients
            .entry(client)
            .or_insert_with(|| Bucket::full(c.per_client_burst, now));
        take(bucket, c.per_client_rps, c.per_client_burst, now)
    }

    fn check_global_at(&self, now: Instant) -> Result<(), u32> {
        let c = &self.config;
        let mut state = self.state.lock().expect("rate limiter lock");
        take(&mut state.global, c.global_rps, c.global_burst, now)
    }
}

/// Takes one token from `bucket`, or says how many whole seconds until
/// one is back.
fn take(bucket: &mut Bucket, rate: u32, burst: u32, now: Instant) -> Result<(), u32> {
    bucket.refill(rate, burst, now);
    if bucket.tokens < 1.0 {
        return Err(bucket.wait(rate).ceil().max(1.0) as u32);
    }
    bucket.tokens -= 1.0;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn limiter(per_client: u32, global: u32) -> RateLimiter {
        RateLimiter::new(RateLimitConfig {
            enabled: true,
            per_client_rps: per_client,
            per_client_burst: per_client,
            global_rps: global,
            global_burst: global,
        })
    }

    #[test]
    fn a_client_gets_its_burst_then_waits_then_recovers() {
        let limiter = limiter(2, 100);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let start = Instant::now();
        assert!(limiter.check_client_at(a, start).is_ok());
        assert!(limiter.check_client_at(a, start).is_ok());
        assert_eq!(limiter.check_client_at(a, start), Err(1));
        // Another client is not affected.
        assert!(limiter.check_client_at(b, start).is_ok());
        // Half a second refills one token at 2/s.
        assert!(
            limiter
                .check_client_at(a, start + Duration::from_millis(500))
                .is_ok()
        );
    }

    #[test]
    fn the_global_bucket_caps_all_clients_together() {
        let limiter = limiter(10, 3);
        let now = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check_global_at(now).is_ok());
        }
        assert!(limiter.check_global_at(now).is_err());
        assert!(
            limiter
                .check_client_at("10.0.0.9".parse().unwrap(), now)
                .is_ok()
        );
    }
}
