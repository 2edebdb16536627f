//! The one wasmtime `Engine` and the epoch ticker that gives calls their
//! wall-clock deadlines. Every knob here says why it has its value.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::RuntimeError;
use crate::config::WasmRuntimeConfig;

/// Core instances one component may create. A Rust `wasm32-wasip2`
/// component has its module plus the WASI adapter and shim modules (~5).
const CORE_INSTANCES_PER_COMPONENT: u32 = 16;
/// Memories per component: the guest's own plus headroom for adapters.
const MEMORIES_PER_COMPONENT: u32 = 2;
/// Tables per component: the guest's and the shims' indirect-call tables.
const TABLES_PER_COMPONENT: u32 = 8;
/// Bytes of a released linear memory reset in place (see `build_engine`):
/// a Rust guest's shadow stack (1 MiB), data and the heap a call uses.
const MEMORY_KEEP_RESIDENT: usize = 2 << 20;
/// Bytes of a released table reset in place.
const TABLE_KEEP_RESIDENT: usize = 64 << 10;
/// Host stack for each call's fiber: guest wasm stack plus host frames.
const ASYNC_STACK_EXTRA: usize = 512 * 1024;

/// Builds the engine: pooled instances sized from config, fuel metering and
/// epoch interruption for limits, and a memory reservation equal to the
/// per-instance cap instead of 4 GiB per slot.
pub fn build_engine(config: &WasmRuntimeConfig) -> Result<Engine, RuntimeError> {
    let slots = config.pool_size;
    let max_memory = u64::from(config.max_memory_per_instance_mb) << 20;
    let max_wasm_stack = config.max_wasm_stack_kb as usize * 1024;

    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(slots)
        .total_core_instances(slots * CORE_INSTANCES_PER_COMPONENT)
        .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
        .total_memories(slots * MEMORIES_PER_COMPONENT)
        .max_memories_per_component(MEMORIES_PER_COMPONENT)
        .total_tables(slots * TABLES_PER_COMPONENT)
        .max_tables_per_component(TABLES_PER_COMPONENT)
        // One fiber stack per concurrently running call.
        .total_stacks(slots)
        .max_memory_size(max_memory as usize)
        // A released slot is reset in place, not handed back to the OS and
        // faulted in again at the next call: the madvise that drops a
        // memory's pages costs an IPI to every core to flush their TLBs,
        // per call. PAGEMAP_SCAN (Linux 6.7+) finds the pages the call
        // dirtied and only those are restored, by memset, up to this much
        // per memory (past it, and on older kernels past the first this many
        // bytes, madvise as before). Idle RSS grows by what the warm slots'
        // calls touched: at most this per memory of each slot.
        .linear_memory_keep_resident(MEMORY_KEEP_RESIDENT)
        .table_keep_resident(TABLE_KEEP_RESIDENT)
        .pagemap_scan(wasmtime::Enabled::Auto);

    let mut wasm = Config::new();
    wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .consume_fuel(true)
        .epoch_interruption(true)
        // The cap is the reservation: slots cost address space equal to
        // what they may use, and growth past it is a bounds-checked failure.
        .memory_reservation(max_memory)
        .memory_reservation_for_growth(0)
        .max_wasm_stack(max_wasm_stack)
        .async_stack_size(max_wasm_stack + ASYNC_STACK_EXTRA)
        .cranelift_opt_level(wasmtime::OptLevel::Speed);

    Engine::new(&wasm).map_err(|e| RuntimeError::Engine(format!("{e:#}")))
}

/// Advances the engine's epoch every `tick` so that deadlines, counted in
/// ticks, fire. Stops when dropped.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub fn start(engine: Engine, tick: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("caxton-epoch".into())
            .spawn({
                let stop = stop.clone();
                move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(tick);
                        engine.increment_epoch();
                    }
                }
            })
            .expect("spawning the epoch ticker thread");
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
