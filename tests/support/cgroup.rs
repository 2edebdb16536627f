//! A memory cgroup the tests create, for running a server under a hard
//! memory limit as a small board would (cgroup v2, or v1's memory
//! hierarchy). Creating one needs write access to the cgroup filesystem;
//! where the machine gives none, `create` says why and the test skips.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct MemoryCgroup {
    dir: PathBuf,
    v2: bool,
}

impl MemoryCgroup {
    /// A new cgroup limited to `limit_bytes` of memory, swap included.
    pub fn create(limit_bytes: u64) -> Result<Self, String> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "caxton-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let unified = PathBuf::from("/sys/fs/cgroup");
        let controllers =
            std::fs::read_to_string(unified.join("cgroup.subtree_control")).unwrap_or_default();
        let (dir, v2) = if controllers.split_whitespace().any(|c| c == "memory") {
            (unified.join(name), true)
        } else if unified.join("memory/memory.limit_in_bytes").exists() {
            (unified.join("memory").join(name), false)
        } else {
            return Err("no writable memory cgroup controller (v2 or v1) here".into());
        };
        std::fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let cgroup = Self { dir, v2 };
        let limit = limit_bytes.to_string();
        let settings: &[(&str, &str)] = if v2 {
            &[("memory.max", &limit), ("memory.swap.max", "0")]
        } else {
            &[
                ("memory.limit_in_bytes", &limit),
                ("memory.memsw.limit_in_bytes", &limit),
            ]
        };
        for (file, value) in settings {
            let path = cgroup.dir.join(file);
            // Swap accounting may be compiled out; the memory limit may not.
            if !path.exists() && file.contains("sw") {
                continue;
            }
            std::fs::write(&path, value)
                .map_err(|e| format!("cannot set {}: {e}", path.display()))?;
        }
        // Creating is not joining (delegation can allow one, not the
        // other): a process must be able to move itself in.
        let joined = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("echo 0 > '{}'", cgroup.procs().display()))
            .status()
            .map_err(|e| format!("cannot run sh: {e}"))?;
        if !joined.success() {
            return Err(format!("cannot join {}", cgroup.dir.display()));
        }
        Ok(cgroup)
    }

    /// The file a process writes its pid to to join.
    pub fn procs(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }

    /// The most memory the cgroup has used, where the kernel records it.
    pub fn peak_bytes(&self) -> Option<u64> {
        let file = if self.v2 {
            "memory.peak"
        } else {
            "memory.max_usage_in_bytes"
        };
        std::fs::read_to_string(self.dir.join(file))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// How many processes the kernel's OOM killer killed in the cgroup.
    pub fn oom_kills(&self) -> u64 {
        let file = if self.v2 {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        std::fs::read_to_string(self.dir.join(file))
            .unwrap_or_default()
            .lines()
            .find_map(|line| line.strip_prefix("oom_kill "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for MemoryCgroup {
    fn drop(&mut self) {
        // Removable once its processes have exited, which takes a moment
        // after a kill.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}
