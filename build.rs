//! Puts the built-in plugins (`plugins/prompt-agent` and
//! `plugins/http-client`, built for wasm32-wasip2 by `scripts/setup`) where
//! `include_bytes!` finds them, so the binary carries them. Without a build
//! of one (a bare `cargo build` on a fresh checkout) an empty file stands
//! in: configuration agents are then refused at deploy time with the
//! command that fixes it, and the `http_client` tool is not offered.

use std::path::Path;

fn main() {
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    for (file, without) in [
        ("prompt_agent.wasm", "configuration agents will be refused"),
        ("http_client.wasm", "the http_client tool will be missing"),
    ] {
        let built = Path::new("plugins/target/wasm32-wasip2/release").join(file);
        println!("cargo:rerun-if-changed={}", built.display());
        let copy = Path::new(&out).join(file);
        match std::fs::read(&built) {
            Ok(bytes) => std::fs::write(&copy, bytes).expect("writing OUT_DIR"),
            Err(_) => {
                println!(
                    "cargo:warning={} is not built; {without}. Run ./scripts/setup first.",
                    built.display()
                );
                std::fs::write(&copy, []).expect("writing OUT_DIR");
            }
        }
    }
}
