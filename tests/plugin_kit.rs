//! The plugin authoring kit as a plugin author meets it: `caxton agents
//! new` in a directory outside this repository, the language's own build
//! (cargo, componentize-py, componentize-js through npm, each installed
//! and pinned by `./scripts/setup`), `caxton agents validate`, `caxton
//! agents deploy` to a running server, and the reply. Then what goes
//! wrong: an exception in Python or JavaScript, and an import the manifest
//! does not grant.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::support::{AgentsDir, Server, caxton_command};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A scratch directory outside the repository, so nothing the project
/// needs can come from a path back into it.
fn outside_the_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    assert!(!dir.path().starts_with(repo()), "{}", dir.path().display());
    dir
}

/// `caxton agents new NAME ARGS...` in `parent`; the project's directory.
fn new_project(parent: &Path, name: &str, args: &[&str]) -> PathBuf {
    let output = caxton_command()
        .current_dir(parent)
        .args(["agents", "new", name])
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let dir = parent.join(name);
    for file in files_under(&dir) {
        let content = std::fs::read_to_string(&file).unwrap_or_default();
        assert!(
            !content.contains(repo().to_str().unwrap()) && !content.contains("plugins/target"),
            "{} points back into the repository",
            file.display()
        );
    }
    dir
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

fn text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs a build step in the project; panics with its output on failure.
fn build(dir: &Path, program: &str, args: &[&str]) {
    let path = format!(
        "{}:{}",
        repo().join("target/pyenv/bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = Command::new(program)
        .current_dir(dir)
        .args(args)
        .env("PATH", path)
        // The project's own target dir and settings, as its author has.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed:\n{}",
        text(&output)
    );
}

/// `caxton agents ARGS...` in `dir`, against `server`.
fn agents(server: &Server, dir: &Path, args: &[&str]) -> std::process::Output {
    caxton_command()
        .current_dir(dir)
        .arg("agents")
        .args(args)
        .args(["--server", &server.base])
        .args(["--token", server.token.as_deref().unwrap()])
        .output()
        .unwrap()
}

fn validate(dir: &Path) -> std::process::Output {
    validate_file(&dir.join("manifest.toml"))
}

/// Validates a built project, then deploys it as written to a new server.
fn validated_and_deployed(dir: &Path) -> Server {
    let checked = validate(dir);
    assert!(checked.status.success(), "{}", text(&checked));
    let server = Server::start(&AgentsDir::new());
    let deployed = agents(&server, dir, &["deploy", "manifest.toml"]);
    assert!(deployed.status.success(), "{}", text(&deployed));
    server
}

/// Replaces `from` with `to` in `file`, as the plugin's author would edit
/// it; `from` must be there.
fn edit(file: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(file).unwrap();
    assert!(text.contains(from), "{} lacks {from:?}", file.display());
    std::fs::write(file, text.replace(from, to)).unwrap();
}

/// What the template agents do in every language: store a note, find it.
async fn the_notes_agent_answers(server: &Server, name: &str) {
    let stored = server
        .send(
            name,
            &json!({"content": {"remember": "the boiler was serviced in May"}}),
        )
        .await;
    assert_eq!(stored.status, 200, "{}", stored.body);
    assert_eq!(
        stored.body["reply"]["content"],
        json!({"stored": "the boiler was serviced in May"})
    );
    assert_eq!(stored.body["reply"]["performative"], "inform");
    let recalled = server
        .send(name, &json!({"content": {"recall": "boiler"}}))
        .await;
    assert_eq!(recalled.status, 200, "{}", recalled.body);
    assert_eq!(
        recalled.body["reply"]["content"]["notes"],
        json!(["the boiler was serviced in May"]),
        "{}",
        recalled.body
    );
}

/// Calls a deployed tool over MCP, as the operator.
async fn call_tool(server: &Server, tool: &str, input: Value) -> Value {
    let request = crate::mcp::rpc("tools/call", json!({"name": tool, "arguments": input}));
    crate::mcp::call(
        &server.client(),
        &server.url("/mcp"),
        server.token.as_deref().unwrap(),
        request,
    )
    .await
}

#[tokio::test]
async fn a_rust_agent_made_by_caxton_agents_new_builds_deploys_and_answers() {
    let parent = outside_the_repo();
    let dir = new_project(parent.path(), "note-keeper", &["--lang", "rust"]);
    build(&dir, "./build.sh", &[]);
    let server = validated_and_deployed(&dir);
    the_notes_agent_answers(&server, "note-keeper").await;
    // The SDK recorded the WIT version the plugin targets.
    let shown = server.get_json("/api/v1/agents/note-keeper").await;
    assert_eq!(shown["wit_version"], "0.2.0", "{shown}");
}

#[tokio::test]
async fn a_python_agent_builds_with_componentize_py_and_its_exceptions_are_traps_with_the_message()
{
    let parent = outside_the_repo();
    let dir = new_project(parent.path(), "py-notes", &["--lang", "python"]);
    build(&dir, "./build.sh", &[]);
    let server = validated_and_deployed(&dir);
    the_notes_agent_answers(&server, "py-notes").await;

    // An exception the code does not turn into an `Err`, and an interface
    // imported without its grant.
    edit(
        &dir.join("app.py"),
        "        if isinstance(request, dict) and \"remember\" in request:",
        "        if request == \"boom\":\n            raise ValueError(\"boom from python\")\n        if isinstance(request, dict) and \"remember\" in request:",
    );
    edit(
        &dir.join("wit/world.wit"),
        "    import caxton:agent/memory@0.2.0;\n",
        "    import caxton:agent/memory@0.2.0;\n    import caxton:agent/llm@0.2.0;\n",
    );
    build(&dir, "./build.sh", &[]);
    let refused = agents(&server, &dir, &["deploy", "manifest.toml", "--replace"]);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("caxton:agent/llm@0.2.0") && text(&refused).contains("grants"),
        "{}",
        text(&refused)
    );

    edit(
        &dir.join("manifest.toml"),
        r#"grants = ["log", "memory"]"#,
        r#"grants = ["log", "memory", "llm"]"#,
    );
    let deployed = agents(&server, &dir, &["deploy", "manifest.toml", "--replace"]);
    assert!(deployed.status.success(), "{}", text(&deployed));
    let trapped = server.send("py-notes", &json!({"content": "boom"})).await;
    trapped.assert_error(422, "plugin_trap");
    let message = trapped.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("ValueError: boom from python"),
        "{message}"
    );
    // The host keeps serving it.
    the_notes_agent_answers(&server, "py-notes").await;
}

#[tokio::test]
async fn a_javascript_tool_builds_with_componentize_js_and_its_throws_are_traps_with_the_message() {
    let parent = outside_the_repo();
    let dir = new_project(
        parent.path(),
        "word_count",
        &["--lang", "js", "--kind", "tool"],
    );
    // npm's cache holds the pinned toolchain (scripts/js-toolchain).
    build(
        &dir,
        "npm",
        &["ci", "--prefer-offline", "--no-audit", "--no-fund"],
    );
    build(&dir, "npm", &["run", "build"]);
    let server = validated_and_deployed(&dir);
    let answer = call_tool(&server, "word_count", json!({"text": "hello small world"})).await;
    assert_eq!(
        answer["result"]["structuredContent"],
        json!({"words": 3, "characters": 17}),
        "{answer}"
    );
    let refused = call_tool(&server, "word_count", json!({"words": 1})).await;
    assert_eq!(refused["result"]["isError"], true, "{refused}");
    assert!(refused.to_string().contains("invalid-input"), "{refused}");

    // A tool may import only `log`: memory is refused at load, by name.
    let world = dir.join("wit/world.wit");
    let log_only = "    import caxton:agent/log@0.2.0;\n";
    let with_memory = "    import caxton:agent/log@0.2.0;\n    import caxton:agent/memory@0.2.0;\n";
    edit(&world, log_only, with_memory);
    build(&dir, "npm", &["run", "build"]);
    let refused = validate(&dir);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("caxton:agent/memory@0.2.0"),
        "{}",
        text(&refused)
    );
    edit(&world, with_memory, log_only);

    // A throw that is not an error case traps, with the message.
    edit(
        &dir.join("app.js"),
        "  const words =",
        "  if (request.text === 'boom') throw new Error('boom from js');\n  const words =",
    );
    build(&dir, "npm", &["run", "build"]);
    let deployed = agents(&server, &dir, &["deploy", "manifest.toml", "--replace"]);
    assert!(deployed.status.success(), "{}", text(&deployed));
    let trapped = call_tool(&server, "word_count", json!({"text": "boom"})).await;
    assert_eq!(trapped["result"]["isError"], true, "{trapped}");
    let message = trapped.to_string();
    assert!(
        message.contains("plugin trapped") && message.contains("boom from js"),
        "{message}"
    );
    // And the tool keeps answering.
    let answer = call_tool(&server, "word_count", json!({"text": "still here"})).await;
    assert_eq!(
        answer["result"]["structuredContent"]["words"], 2,
        "{answer}"
    );
}

#[tokio::test]
async fn the_bundled_example_manifests_run_wherever_they_are_copied() {
    // Copied away from the repository, next to no build output: the
    // plugins they name are carried in the binary.
    let agents = AgentsDir::new();
    for example in ["echo", "csv_parser", "analyst", "recall"] {
        let text = std::fs::read_to_string(repo().join(format!("examples/agents/{example}.toml")))
            .unwrap();
        assert!(text.contains("builtin:"), "{example}: {text}");
        std::fs::write(agents.path().join(format!("{example}.toml")), text).unwrap();
    }
    let server = Server::start(&agents);
    let echoed = server
        .send("echo", &json!({"content": {"text": "hi"}}))
        .await;
    assert_eq!(echoed.status, 200, "{}", echoed.body);
    assert_eq!(echoed.body["reply"]["content"], json!({"text": "hi"}));
    let analysed = server
        .send("analyst", &json!({"content": {"csv": "a,b\n1,2\n"}}))
        .await;
    assert_eq!(analysed.status, 200, "{}", analysed.body);
    assert_eq!(analysed.body["reply"]["content"]["row_count"], 1);
    let told = server
        .send(
            "recall",
            &json!({"performative": "inform", "content": {"about": "pump", "facts": ["the pump hums"]}}),
        )
        .await;
    assert_eq!(told.status, 200, "{}", told.body);
    let asked = server
        .send(
            "recall",
            &json!({"performative": "query", "content": {"question": "pump"}}),
        )
        .await;
    assert_eq!(
        asked.body["reply"]["content"]["answers"][0]["observation"], "the pump hums",
        "{}",
        asked.body
    );

    // A name the binary does not carry is refused with the ones it does.
    let unknown = agents.path().join("ghost.toml");
    std::fs::write(
        &unknown,
        "name = \"ghost\"\nversion = \"0.1.0\"\ncomponent = \"builtin:ghost\"\n",
    )
    .unwrap();
    let refused = validate_file(&unknown);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains(
            "builtin:ghost is not a plugin this binary carries; the built-ins are echo, csv_parser"
        ),
        "{}",
        text(&refused)
    );
}

fn validate_file(manifest: &Path) -> std::process::Output {
    caxton_command()
        .args(["agents", "validate"])
        .arg(manifest)
        .output()
        .unwrap()
}

#[test]
fn agents_new_refuses_bad_names_grants_and_a_directory_in_use_before_writing() {
    let parent = outside_the_repo();
    let attempt = |args: &[&str]| {
        let output = caxton_command()
            .current_dir(parent.path())
            .args(["agents", "new"])
            .args(args)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{args:?} succeeded");
        text(&output)
    };
    let said = attempt(&["Note_Keeper"]);
    assert!(
        said.contains("kebab-case") && said.contains("note-keeper"),
        "{said}"
    );
    let said = attempt(&["helper", "--grant", "http"]);
    assert!(
        said.contains("--grant http") && said.contains("log, memory, tools, messaging, llm"),
        "{said}"
    );
    let said = attempt(&[
        "fetcher", "--kind", "tool", "--lang", "python", "--grant", "http",
    ]);
    assert!(
        said.contains("Python") && said.contains("--lang rust"),
        "{said}"
    );
    assert_eq!(
        std::fs::read_dir(parent.path()).unwrap().count(),
        0,
        "nothing is written"
    );

    std::fs::create_dir(parent.path().join("taken")).unwrap();
    std::fs::write(parent.path().join("taken/notes.txt"), "mine").unwrap();
    let said = attempt(&["taken", "--lang", "js"]);
    assert!(said.contains("already exists and is not empty"), "{said}");
    assert_eq!(
        std::fs::read_to_string(parent.path().join("taken/notes.txt")).unwrap(),
        "mine"
    );

    // A grant beyond the template's reaches both the manifest and the
    // world a Python or JavaScript component is built against.
    let made = caxton_command()
        .current_dir(parent.path())
        .args([
            "agents",
            "new",
            "asker",
            "--lang",
            "python",
            "--grant",
            "llm,tools",
        ])
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", text(&made));
    let manifest = std::fs::read_to_string(parent.path().join("asker/manifest.toml")).unwrap();
    assert!(
        manifest.contains(r#"grants = ["log", "memory", "llm", "tools"]"#),
        "{manifest}"
    );
    let world = std::fs::read_to_string(parent.path().join("asker/wit/world.wit")).unwrap();
    for interface in ["context", "log", "memory", "tools", "llm"] {
        assert!(
            world.contains(&format!("import caxton:agent/{interface}@0.2.0;")),
            "{interface}: {world}"
        );
    }
    assert!(!world.contains("messaging"), "{world}");
    let checked = caxton_command()
        .args(["agents", "validate"])
        .arg(parent.path().join("asker/manifest.toml"))
        .output()
        .unwrap();
    // Not built yet: the one problem is the missing component, with the fix.
    assert!(
        text(&checked).contains("asker.wasm does not exist; build the plugin"),
        "{}",
        text(&checked)
    );
}

#[test]
fn agents_run_answers_one_message_in_a_throwaway_host_and_touches_nothing_else() {
    let scratch = outside_the_repo();
    // A config whose store and token live elsewhere: a throwaway run must
    // not open or create either.
    let store = scratch.path().join("real/memory.db");
    let token = scratch.path().join("real/auth-token");
    let config = scratch.path().join("caxton.toml");
    std::fs::write(
        &config,
        format!(
            "[memory]\ndatabase_path = {:?}\n[memory.embedding_config]\nenabled = false\n[auth]\ntoken_file = {:?}\n",
            store.display().to_string(),
            token.display().to_string()
        ),
    )
    .unwrap();
    let run = |manifest: &str, message: &str| {
        caxton_command()
            .args([
                "agents",
                "run",
                manifest,
                "--message",
                message,
                "--output",
                "json",
            ])
            .arg("--config")
            .arg(&config)
            .current_dir(repo())
            .output()
            .unwrap()
    };
    let echoed = run("examples/agents/echo.toml", r#"{"text": "hi"}"#);
    assert!(echoed.status.success(), "{}", text(&echoed));
    let answer: Value = serde_json::from_slice(&echoed.stdout).unwrap();
    assert_eq!(answer["answer"], json!({"text": "hi"}), "{answer}");
    assert!(
        answer["usage"]["fuel_consumed"].as_u64().unwrap() > 0,
        "{answer}"
    );
    assert!(
        !store.exists() && !token.exists(),
        "the run touched the real host's files"
    );

    let parsed = run(
        "examples/agents/csv_parser.toml",
        r#"{"csv": "a,b\n1,2\n"}"#,
    );
    assert!(parsed.status.success(), "{}", text(&parsed));
    let answer: Value = serde_json::from_slice(&parsed.stdout).unwrap();
    assert_eq!(answer["answer"]["row_count"], 1, "{answer}");

    let refused = run("examples/agents/csv_parser.toml", r#"{"tsv": 1}"#);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    let answer: Value = serde_json::from_slice(&refused.stdout).unwrap();
    assert_eq!(answer["error"]["kind"], "invalid-input", "{answer}");

    let not_json = run("examples/agents/echo.toml", "{text: hi}");
    assert!(!not_json.status.success());
    assert!(
        text(&not_json).contains("--message is not JSON"),
        "{}",
        text(&not_json)
    );
}

#[tokio::test]
async fn a_built_in_component_deployed_over_the_api_needs_no_upload_and_survives_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let agents = AgentsDir::new();
    let server = Server::start_with(&agents, data.path(), Some(crate::support::NO_EMBEDDINGS));
    let manifest = "name = \"echo-two\"\nversion = \"0.1.0\"\ncapabilities = [\"echo\"]\ncomponent = \"builtin:echo\"\ngrants = [\"log\"]\n";
    let deployed = server
        .post("/api/v1/agents", json!({ "manifest": manifest }))
        .await;
    assert_eq!(deployed.status, 201, "{}", deployed.body);
    let checked = server
        .post("/api/v1/agents/validate", json!({ "manifest": manifest }))
        .await;
    assert_eq!(checked.body["warnings"], json!([]), "{}", checked.body);
    drop(server);

    let server = Server::start_with(&agents, data.path(), Some(crate::support::NO_EMBEDDINGS));
    let echoed = server.send("echo-two", &json!({"content": "again"})).await;
    assert_eq!(echoed.status, 200, "{}", echoed.body);
    assert_eq!(echoed.body["reply"]["content"], "again");
}

/// The templates the other tests do not deploy: each builds and answers
/// through `caxton agents run`.
#[test]
fn the_rust_tool_python_tool_and_javascript_agent_templates_build_and_answer() {
    let parent = outside_the_repo();
    let run = |dir: &Path, message: &str| -> Value {
        let output = caxton_command()
            .current_dir(dir)
            .args([
                "agents",
                "run",
                "manifest.toml",
                "--output",
                "json",
                "--message",
                message,
            ])
            .env("CAXTON_MEMORY__EMBEDDING_CONFIG__ENABLED", "false")
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", text(&output));
        serde_json::from_slice(&output.stdout).unwrap()
    };
    let counted = json!({"words": 3, "characters": 17});

    let rust = new_project(parent.path(), "rs_count", &["--kind", "tool"]);
    build(&rust, "./build.sh", &[]);
    assert_eq!(
        run(&rust, r#"{"text": "hello small world"}"#)["answer"],
        counted
    );

    let python = new_project(
        parent.path(),
        "py_count",
        &["--kind", "tool", "--lang", "python"],
    );
    build(&python, "./build.sh", &[]);
    assert_eq!(
        run(&python, r#"{"text": "hello small world"}"#)["answer"],
        counted
    );

    let js = new_project(parent.path(), "js-notes", &["--lang", "js"]);
    build(
        &js,
        "npm",
        &["ci", "--prefer-offline", "--no-audit", "--no-fund"],
    );
    build(&js, "npm", &["run", "build"]);
    assert_eq!(
        run(&js, r#"{"remember": "the boiler was serviced in May"}"#)["answer"],
        json!({"stored": "the boiler was serviced in May"})
    );
}
