//! What the process's allocator keeps after a large, short-lived job.

/// Hands the heap's free pages back to the system. Loading the model and
/// building the vector index allocate far more temporarily than they keep,
/// and glibc holds freed memory mapped; without this the resident size
/// stays near the start's peak (measured for the model: 172 MB before,
/// 74 MB after).
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free heap pages; no pointers change.
    unsafe {
        libc::malloc_trim(0);
    }
}
