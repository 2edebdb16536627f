//! Per-call resource limits and the limiter that enforces the memory cap
//! while recording the peak, so every call can report what it used.

use std::time::Duration;

/// What one call may consume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallLimits {
    /// Fuel units (about one per wasm instruction).
    pub fuel: u64,
    /// Wall-clock limit, including time spent in host calls (tools, memory).
    pub timeout: Duration,
    /// Cap on the instance's total linear memory, in bytes.
    pub memory_bytes: u64,
}

/// What one call consumed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CallUsage {
    /// Fuel burned by the guest.
    pub fuel_consumed: u64,
    /// Wall time from taking a pool slot to the result, in microseconds.
    pub wall_time_us: u64,
    /// Largest total linear memory the instance reached, in bytes.
    pub peak_memory_bytes: u64,
}

/// The error the limiter raises when a guest asks for memory past its cap.
/// It is not a wasm `Trap`, so callers classify `Trap` first, then this.
#[derive(Debug, thiserror::Error)]
#[error("linear memory limit of {limit_bytes} bytes exceeded (asked for {requested_bytes})")]
pub struct MemoryLimitExceeded {
    pub limit_bytes: u64,
    pub requested_bytes: u64,
}

/// Maximum table elements per instance; tables hold function references and
/// a well-behaved component needs a few thousand at most.
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// Enforces a memory cap across all of an instance's memories and records
/// the peak. Growing past the cap traps the call (instead of letting
/// `memory.grow` return -1, which most guests turn into an opaque abort).
#[derive(Debug)]
pub struct MemoryLimiter {
    limit_bytes: u64,
    current_bytes: u64,
    peak_bytes: u64,
}

impl MemoryLimiter {
    pub fn new(limit_bytes: u64) -> Self {
        Self {
            limit_bytes,
            current_bytes: 0,
            peak_bytes: 0,
        }
    }

    pub fn peak_bytes(&self) -> u64 {
        self.peak_bytes
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let growth = (desired - current) as u64;
        let total = self.current_bytes + growth;
        if total > self.limit_bytes {
            return Err(MemoryLimitExceeded {
                limit_bytes: self.limit_bytes,
                requested_bytes: total,
            }
            .into());
        }
        self.current_bytes = total;
        self.peak_bytes = self.peak_bytes.max(total);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn growth_within_the_cap_is_allowed_and_tracked_across_memories() {
        let mut limiter = MemoryLimiter::new(10 << 20);
        assert!(limiter.memory_growing(0, 2 << 20, None).unwrap());
        assert!(limiter.memory_growing(0, 3 << 20, None).unwrap());
        assert!(limiter.memory_growing(2 << 20, 4 << 20, None).unwrap());
        assert_eq!(limiter.peak_bytes(), 7 << 20);
    }

    #[test]
    fn growth_past_the_cap_is_an_error_that_names_the_limit() {
        let mut limiter = MemoryLimiter::new(1 << 20);
        let err = limiter.memory_growing(0, 2 << 20, None).unwrap_err();
        let exceeded = err.downcast_ref::<MemoryLimitExceeded>().unwrap();
        assert_eq!(exceeded.limit_bytes, 1 << 20);
        assert_eq!(limiter.peak_bytes(), 0);
    }
}
