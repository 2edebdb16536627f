//! Puts the built-in plugins (`plugins/prompt-agent`, `plugins/http-client`
//! and the example plugins the bundled manifests name as `builtin:NAME`,
//! built for wasm32-wasip2 by `scripts/setup`) where
//! `include_bytes!` finds them, so the binary carries them. Without a build
//! of one (a bare `cargo build` on a fresh checkout) an empty file stands
//! in: configuration agents are then refused at deploy time with the
//! command that fixes it, and the `http_client` tool is not offered.
//!
//! It also lists the files `caxton agents new` writes (the templates, the
//! guest SDK and the WIT packages) as `include_bytes!`, so the binary
//! carries them and a change to any of them rebuilds it.

use std::path::{Path, PathBuf};

/// What `caxton agents new` copies from the repository into a project.
const PROJECT_SOURCES: [&str; 4] = [
    "templates",
    "sdk/caxton-agent/src",
    "sdk/caxton-agent/Cargo.toml",
    "wit",
];

fn main() {
    embed_plugins();
    embed_project_sources();
    embed_example_agents();
    embed_model();
}

/// The example manifests (`examples/agents/*.toml`), written into a new
/// user's agents dir on first start.
fn embed_example_agents() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let dir = root.join("examples/agents");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("reading examples/agents")
        .map(|e| {
            e.expect("a directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(".toml"))
        .collect();
    names.sort();
    let mut table = String::from("pub static EXAMPLE_AGENTS: &[(&str, &str)] = &[\n");
    for name in names {
        let path = dir.join(&name);
        println!("cargo:rerun-if-changed={}", path.display());
        table.push_str(&format!(
            "    ({name:?}, include_str!({:?})),\n",
            path.display().to_string()
        ));
    }
    table.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("example_agents.rs"), table).expect("writing OUT_DIR");
}

/// With the `bundled-model` feature, the embedding model's files (fetched
/// into `models/` by `./scripts/setup`) for boxes that cannot fetch it.
fn embed_model() {
    const MODEL: &str = "all-MiniLM-L6-v2";
    const FILES: [&str; 2] = ["model.onnx", "tokenizer.json"];
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let mut table = String::from("pub static BUNDLED_MODEL: Option<(&str, ModelFiles)> = ");
    if std::env::var_os("CARGO_FEATURE_BUNDLED_MODEL").is_some() {
        table.push_str(&format!("Some(({MODEL:?}, &[\n"));
        for file in FILES {
            let path = root.join("models").join(MODEL).join(file);
            println!("cargo:rerun-if-changed={}", path.display());
            assert!(
                path.is_file(),
                "the bundled-model feature needs {}; fetch it with python3 models/fetch.py (or ./scripts/setup)",
                path.display()
            );
            table.push_str(&format!(
                "    ({file:?}, include_bytes!({:?})),\n",
                path.display().to_string()
            ));
        }
        table.push_str("]));\n");
    } else {
        table.push_str("None;\n");
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("bundled_model.rs"), table).expect("writing OUT_DIR");
}

fn embed_project_sources() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let mut files = Vec::new();
    for source in PROJECT_SOURCES {
        println!("cargo:rerun-if-changed={source}");
        collect(&root, &root.join(source), &mut files);
    }
    files.sort();
    let mut table = String::from(
        "/// Files `caxton agents new` draws on, by path in the repository.\npub static PROJECT_FILES: &[(&str, &[u8])] = &[\n",
    );
    for relative in &files {
        let absolute = root.join(relative);
        table.push_str(&format!(
            "    ({relative:?}, include_bytes!({:?})),\n",
            absolute.display().to_string()
        ));
    }
    table.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("project_files.rs"), table).expect("writing OUT_DIR");
}

/// Build output a template directory may hold after someone tried it in
/// place; never part of a project.
const NOT_SOURCES: [&str; 4] = ["node_modules", "__pycache__", "target", "wit_world"];

/// Every file under `path`, as paths relative to `root` with `/`
/// separators, leaving out build output.
fn collect(root: &Path, path: &Path, files: &mut Vec<String>) {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    if NOT_SOURCES.contains(&name) || name.ends_with(".wasm") {
        return;
    }
    if path.is_dir() {
        println!("cargo:rerun-if-changed={}", path.display());
        let mut entries: Vec<_> = std::fs::read_dir(path)
            .expect("reading a project source directory")
            .map(|e| e.expect("a directory entry").path())
            .collect();
        entries.sort();
        for entry in entries {
            collect(root, &entry, files);
        }
    } else if path.is_file() {
        let relative = path.strip_prefix(root).expect("under the repository");
        let parts: Vec<_> = relative
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        files.push(parts.join("/"));
    }
}

fn embed_plugins() {
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    for (file, without) in [
        ("prompt_agent.wasm", "configuration agents will be refused"),
        ("http_client.wasm", "the http_client tool will be missing"),
        ("echo.wasm", "`builtin:echo` will be refused"),
        ("csv_parser.wasm", "`builtin:csv_parser` will be refused"),
        ("analyst.wasm", "`builtin:analyst` will be refused"),
        ("recall.wasm", "`builtin:recall` will be refused"),
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
