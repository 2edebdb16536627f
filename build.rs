//! Puts the built-in prompt agent (`plugins/prompt-agent`, built for
//! wasm32-wasip2 by `scripts/setup`) where `include_bytes!` finds it, so
//! the binary carries it. Without a build of it (a bare `cargo build` on a
//! fresh checkout) an empty file stands in and configuration agents are
//! refused at deploy time with the command that fixes it.

use std::path::Path;

fn main() {
    let built = Path::new("plugins/target/wasm32-wasip2/release/prompt_agent.wasm");
    println!("cargo:rerun-if-changed={}", built.display());
    let out =
        Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("prompt_agent.wasm");
    match std::fs::read(built) {
        Ok(bytes) => std::fs::write(&out, bytes).expect("writing OUT_DIR"),
        Err(_) => {
            println!(
                "cargo:warning=the prompt agent is not built ({}); configuration agents will be refused. Run ./scripts/setup first.",
                built.display()
            );
            std::fs::write(&out, []).expect("writing OUT_DIR");
        }
    }
}
