//! Test-only agent that misbehaves on request, to prove the host survives
//! runaway plugins. Content `{"fault": "<kind>"}` selects the fault:
//! `loop` (never returns), `alloc` (allocates without bound), `panic`,
//! `recurse` (overflows the stack), `flood` (1 MiB of stderr), `huge_reply`
//! (a 6 MiB reply), `sleep` (waits `ms` milliseconds, default 100, without
//! using fuel: a slow agent),
//! `escape` (tries to read a host file, the environment and the network,
//! and reports what happened). Anything else is answered normally.

use std::hint::black_box;

use caxton_agent::{Agent, Error, Message};

struct Faults;

fn spin_forever() -> ! {
    let mut counter: u64 = 0;
    loop {
        counter = black_box(counter.wrapping_add(1));
    }
}

fn allocate_without_bound() -> usize {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        // Touch every page so the memory is really used, not just reserved.
        hoard.push(vec![0xA5; 1 << 20]);
        black_box(&hoard);
    }
}

/// Recursion whose frames live on the wasm stack (no locals in linear
/// memory), so it exhausts the engine's stack limit rather than the guest's
/// shadow stack.
fn recurse(depth: u64) -> u64 {
    if black_box(depth) == u64::MAX {
        return depth;
    }
    recurse(depth + 1).wrapping_add(black_box(depth))
}

/// Tries each way out of the sandbox and says what each attempt got.
fn try_to_escape() -> String {
    let file = match std::fs::read_to_string("/etc/passwd") {
        Ok(text) => format!("READ {} bytes", text.len()),
        Err(error) => format!("denied: {error}"),
    };
    let env: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
    let args: Vec<String> = std::env::args().collect();
    let network = match std::net::TcpStream::connect("127.0.0.1:22") {
        Ok(_) => "CONNECTED".to_owned(),
        Err(error) => format!("denied: {error}"),
    };
    let dns = match std::net::ToSocketAddrs::to_socket_addrs("localhost:80") {
        Ok(addresses) => format!("RESOLVED {}", addresses.count()),
        Err(error) => format!("denied: {error}"),
    };
    serde_json::json!({"file": file, "env": env, "args": args, "network": network, "dns": dns})
        .to_string()
}

impl Agent for Faults {
    fn handle(message: Message) -> Result<Option<Message>, Error> {
        let request: serde_json::Value =
            serde_json::from_str(&message.content).unwrap_or(serde_json::Value::Null);
        match request.get("fault").and_then(|f| f.as_str()) {
            Some("loop") => spin_forever(),
            Some("alloc") => {
                allocate_without_bound();
            }
            Some("panic") => panic!("fault plugin asked to panic"),
            Some("recurse") => {
                recurse(0);
            }
            Some("escape") => {
                return Ok(Some(message.reply(try_to_escape())));
            }
            Some("flood") => {
                // 1 MiB of stderr, far past what the host keeps.
                for _ in 0..1024 {
                    eprintln!("{}", "x".repeat(1023));
                }
            }
            Some("handles") => {
                // Leak WASI handles: each pollable stays in the host's
                // resource table until the call ends.
                for _ in 0..2_000_000u32 {
                    std::mem::forget(wasip2::clocks::monotonic_clock::subscribe_duration(1));
                }
            }
            Some("sleep") => {
                // Waits without burning fuel: a slow agent, not a runaway.
                let ms = request.get("ms").and_then(|m| m.as_u64()).unwrap_or(100);
                wasip2::clocks::monotonic_clock::subscribe_duration(ms * 1_000_000).block();
            }
            Some("huge_reply") => {
                let blob = "y".repeat(6 << 20);
                let content = serde_json::json!({ "blob": blob }).to_string();
                return Ok(Some(message.reply(content)));
            }
            _ => {}
        }
        Ok(Some(message.reply(r#"{"ok":true}"#)))
    }
}

caxton_agent::export_agent!(Faults);
