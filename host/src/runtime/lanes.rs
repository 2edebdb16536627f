//! Two lanes for plugin calls, so that a runaway plugin cannot take the
//! CPU from short calls and the HTTP front (a multilevel feedback queue in
//! its simplest form).
//!
//! Every call starts on the caller's threads, at normal priority. A call
//! whose wasm has run for longer than `long_call_after` (time spent being
//! polled, not time spent waiting) moves at its next fuel yield to the
//! low-priority lane: a few threads at the lowest scheduling priority (nice
//! 19), so a loop burning its fuel only gets the CPU that everything else
//! leaves over. A plugin whose last fault (trap, fuel, memory cap, or a
//! deadline missed at normal priority) is recent starts its calls in the
//! low-priority lane: it is on probation.
//!
//! Moving a call is safe because wasmtime's call futures are `Send`: the
//! fuel yield leaves the guest suspended on its fiber, and the next poll
//! resumes it on whichever thread polls.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::task::Poll;
use std::time::{Duration, Instant};

use super::RuntimeError;

/// Why a call ran in the low-priority lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Demotion {
    /// It ran longer than `long_call_after`.
    Long,
    /// Its plugin faulted recently.
    Probation,
}

impl Demotion {
    pub fn label(self) -> &'static str {
        match self {
            Demotion::Long => "long",
            Demotion::Probation => "probation",
        }
    }
}

/// The low-priority lane and the rule for entering it.
pub struct Lanes {
    /// `Option` only so `Drop` can shut it down without blocking.
    low: Option<tokio::runtime::Runtime>,
    long_call_after: Duration,
}

impl Lanes {
    pub fn new(threads: usize, long_call_after: Duration) -> Result<Self, RuntimeError> {
        let low = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .max_blocking_threads(4)
            .thread_name("caxton-low-priority")
            .on_thread_start(lower_this_threads_priority)
            .enable_all()
            .build()
            .map_err(|e| RuntimeError::Engine(format!("starting the low-priority lane: {e}")))?;
        Ok(Self {
            low: Some(low),
            long_call_after,
        })
    }

    /// Runs `call` to completion: on the caller's thread while it is short,
    /// then (or from the start, on probation) in the low-priority lane.
    /// `None` only when the host is shutting down under the call.
    pub async fn drive<F>(&self, call: F, probation: bool) -> (Option<F::Output>, Option<Demotion>)
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let mut call: Pin<Box<F>> = Box::pin(call);
        let demotion = if probation {
            Demotion::Probation
        } else {
            let mut busy = Duration::ZERO;
            let finished = std::future::poll_fn(|cx| {
                let polled_at = Instant::now();
                let poll = call.as_mut().poll(cx);
                busy += polled_at.elapsed();
                match poll {
                    Poll::Ready(output) => Poll::Ready(Some(output)),
                    Poll::Pending if busy >= self.long_call_after => Poll::Ready(None),
                    Poll::Pending => Poll::Pending,
                }
            })
            .await;
            if let Some(output) = finished {
                return (Some(output), None);
            }
            Demotion::Long
        };
        let Some(low) = &self.low else {
            return (None, Some(demotion));
        };
        let mut task = AbortOnDrop(low.spawn(call));
        match (&mut task.0).await {
            Ok(output) => (Some(output), Some(demotion)),
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            Err(_cancelled) => (None, Some(demotion)),
        }
    }
}

impl Drop for Lanes {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which async code must not do.
        if let Some(low) = self.low.take() {
            low.shutdown_background();
        }
    }
}

/// Aborts the low-priority task when the caller stops waiting for it (its
/// own deadline, a dropped request), so nobody runs a call no one wants.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Nice 19 for the calling thread (Linux keeps a nice value per thread).
/// Raising one's own nice value needs no privilege; if it fails anyway the
/// lane still separates long calls, just without the priority.
fn lower_this_threads_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid and setpriority take plain integers and touch no memory.
    unsafe {
        let tid = libc::gettid();
        if libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19) != 0 {
            tracing::warn!(
                error = %std::io::Error::last_os_error(),
                "could not lower the priority of a low-priority lane thread"
            );
        }
    }
}

/// How a plugin has behaved lately: when it last faulted.
#[derive(Debug, Default)]
pub struct Standing {
    /// Milliseconds since the first use of the last fault, plus one (0 = never).
    last_fault_ms: AtomicU64,
    /// Pool slots this plugin's calls hold right now.
    slots: Arc<AtomicUsize>,
}

/// One pool slot counted against its plugin; given back on drop.
pub struct PluginSlot(Arc<AtomicUsize>);

impl Drop for PluginSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn milliseconds_since_start() -> u64 {
    static START: LazyLock<Instant> = LazyLock::new(Instant::now);
    START.elapsed().as_millis() as u64 + 1
}

impl Standing {
    /// Counts a slot for this plugin, unless it already holds `limit`.
    pub fn take_slot(&self, limit: usize) -> Option<PluginSlot> {
        self.slots
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                (held < limit).then_some(held + 1)
            })
            .ok()
            .map(|_| PluginSlot(self.slots.clone()))
    }

    pub fn faulted(&self) {
        self.last_fault_ms
            .store(milliseconds_since_start(), Ordering::Relaxed);
    }

    /// Whether the last fault is less than `probation` ago.
    pub fn on_probation(&self, probation: Duration) -> bool {
        match self.last_fault_ms.load(Ordering::Relaxed) {
            0 => false,
            at => milliseconds_since_start().saturating_sub(at) < probation.as_millis() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A future that is busy for `slice` on every poll, `polls` times.
    async fn busy(polls: u32, slice: Duration) -> String {
        for _ in 0..polls {
            let until = Instant::now() + slice;
            while Instant::now() < until {}
            tokio::task::yield_now().await;
        }
        std::thread::current().name().unwrap_or("").to_owned()
    }

    #[tokio::test]
    async fn a_short_call_stays_on_the_callers_thread() {
        let lanes = Lanes::new(1, Duration::from_millis(50)).unwrap();
        let (thread, demotion) = lanes.drive(busy(3, Duration::from_millis(1)), false).await;
        assert_eq!(demotion, None);
        assert_ne!(thread.unwrap(), "caxton-low-priority");
    }

    #[tokio::test]
    async fn a_long_call_finishes_in_the_low_priority_lane() {
        let lanes = Lanes::new(1, Duration::from_millis(5)).unwrap();
        let (thread, demotion) = lanes.drive(busy(20, Duration::from_millis(1)), false).await;
        assert_eq!(demotion, Some(Demotion::Long));
        assert_eq!(thread.unwrap(), "caxton-low-priority");
    }

    #[tokio::test]
    async fn a_call_on_probation_starts_in_the_low_priority_lane() {
        let lanes = Lanes::new(1, Duration::from_secs(60)).unwrap();
        let (thread, demotion) = lanes.drive(busy(1, Duration::ZERO), true).await;
        assert_eq!(demotion, Some(Demotion::Probation));
        assert_eq!(thread.unwrap(), "caxton-low-priority");
    }

    #[test]
    fn probation_lasts_as_long_as_configured_after_a_fault() {
        let standing = Standing::default();
        assert!(!standing.on_probation(Duration::from_secs(10)));
        standing.faulted();
        assert!(standing.on_probation(Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(20));
        assert!(!standing.on_probation(Duration::from_millis(10)));
    }

    #[test]
    fn lane_threads_run_at_the_lowest_priority() {
        let lanes = Lanes::new(1, Duration::ZERO).unwrap();
        let nice = lanes.low.as_ref().unwrap().block_on(async {
            tokio::spawn(async {
                // SAFETY: reads this thread's nice value.
                unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
            })
            .await
            .unwrap()
        });
        assert_eq!(nice, 19);
    }
}
