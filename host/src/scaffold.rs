//! Plugin projects (`caxton agents new`, and `caxton benchmark plugins`,
//! which measures what it makes): writes a project that builds with its
//! language's own tools and deploys as written. The templates, the guest
//! SDK and the WIT are compiled into the binary (see `build.rs`), so a
//! project never points back into this repository.

use std::path::{Path, PathBuf};

use clap::ValueEnum;

include!(concat!(env!("OUT_DIR"), "/project_files.rs"));

/// The WIT package version new projects target.
const WIT_VERSION: &str = "0.2.0";

/// What an agent's manifest can grant, and the WIT interface each one is.
const AGENT_GRANTS: [&str; 5] = ["log", "memory", "tools", "messaging", "llm"];
/// What the templates' agents use, granted unless asked otherwise.
const TEMPLATE_AGENT_GRANTS: [&str; 2] = ["log", "memory"];

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
}

impl Lang {
    /// The language's name in `templates/` and in figures.
    pub fn as_str(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Js => "js",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    Agent,
    Tool,
}

impl Kind {
    /// The kind's name, as the WIT world and `templates/` call it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Agent => "agent",
            Kind::Tool => "tool",
        }
    }
}

/// Names a Rust project cannot take: its package would clash with a
/// dependency (the SDK, serde, wit-bindgen) or with a crate of the
/// standard library.
const RESERVED_RUST_NAMES: [&str; 9] = [
    "caxton_agent",
    "serde",
    "serde_json",
    "serde_derive",
    "wit_bindgen",
    "std",
    "core",
    "alloc",
    "test",
];

/// One `caxton agents new` request.
pub struct NewProject<'a> {
    pub name: &'a str,
    pub lang: Lang,
    pub kind: Kind,
    pub grants: &'a [String],
    pub dir: &'a Path,
}

impl NewProject<'_> {
    /// Writes the project and returns the files written, relative to its
    /// directory. Refuses a bad name or grant, and a directory that is
    /// there and not empty, before writing anything.
    pub fn create(&self) -> anyhow::Result<Vec<String>> {
        let grants = self.grants()?;
        self.check_name()?;
        if self.dir.exists()
            && std::fs::read_dir(self.dir)
                .map(|mut d| d.next().is_some())
                .unwrap_or(true)
        {
            anyhow::bail!(
                "{} already exists and is not empty; pick another NAME or --dir",
                self.dir.display()
            );
        }
        let files = self.files(&grants);
        for (relative, bytes) in &files {
            let path = self.dir.join(relative);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", parent.display()))?;
            }
            std::fs::write(&path, bytes)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
            if relative.ends_with(".sh") {
                make_executable(&path)?;
            }
        }
        Ok(files.into_iter().map(|(relative, _)| relative).collect())
    }

    fn check_name(&self) -> anyhow::Result<()> {
        let ok = match self.kind {
            Kind::Agent => crate::agents::is_agent_name(self.name),
            Kind::Tool => crate::agents::is_tool_name(self.name),
        };
        if !ok {
            let rule = match self.kind {
                Kind::Agent => {
                    "an agent's name is kebab-case, 3-64 characters: lowercase letters and digits in words joined by `-`, starting with a letter (e.g. `note-keeper`)"
                }
                Kind::Tool => {
                    "a tool's name is 2-64 lowercase letters, digits, `_` or `-`, starting with a letter (e.g. `word_count`)"
                }
            };
            anyhow::bail!("`{}` is not a valid name: {rule}", self.name);
        }
        if self.lang == Lang::Rust
            && RESERVED_RUST_NAMES.contains(&self.name.replace('-', "_").as_str())
        {
            anyhow::bail!(
                "`{}` would clash with a crate a Rust plugin builds with; pick another name (e.g. `my-{}`)",
                self.name,
                self.name
            );
        }
        Ok(())
    }

    /// The manifest's grants: the template's own needs plus `--grant`.
    fn grants(&self) -> anyhow::Result<Vec<String>> {
        let (allowed, base): (&[&str], &[&str]) = match self.kind {
            Kind::Agent => (&AGENT_GRANTS, &TEMPLATE_AGENT_GRANTS),
            Kind::Tool => (&["http"], &[]),
        };
        let mut grants: Vec<String> = base.iter().map(|g| g.to_string()).collect();
        for grant in self
            .grants
            .iter()
            .flat_map(|g| g.split(','))
            .map(str::trim)
            .filter(|g| !g.is_empty())
        {
            if !allowed.contains(&grant) {
                anyhow::bail!(
                    "--grant {grant}: {} can be granted {}",
                    match self.kind {
                        Kind::Agent => "an agent",
                        Kind::Tool => "a tool",
                    },
                    allowed.join(", ")
                );
            }
            if self.kind == Kind::Tool && self.lang != Lang::Rust {
                anyhow::bail!(
                    "--grant http: outgoing HTTP from a {} tool is not supported yet; write the tool in Rust (--lang rust) or use the built-in http_client tool from an agent",
                    match self.lang {
                        Lang::Python => "Python",
                        _ => "JavaScript",
                    }
                );
            }
            if !grants.iter().any(|g| g == grant) {
                grants.push(grant.to_owned());
            }
        }
        Ok(grants)
    }

    /// Every file of the project, rendered.
    fn files(&self, grants: &[String]) -> Vec<(String, Vec<u8>)> {
        let lang = self.lang.as_str();
        let kind = self.kind.as_str();
        let crate_name = self.name.replace('-', "_");
        let budget = self.budget();
        let grants_toml = format!(
            "[{}]",
            grants
                .iter()
                .map(|g| format!("{g:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let values = [
            ("name", self.name.to_owned()),
            ("crate", crate_name),
            ("kind", kind.to_owned()),
            ("grants", grants_toml),
            ("wit_version", WIT_VERSION.to_owned()),
            ("component", self.component_path()),
            ("build", self.build_command().to_owned()),
            ("example", self.example().to_owned()),
            ("fuel", budget.fuel.to_owned()),
            ("memory_mb", budget.memory_mb.to_string()),
        ];
        let render = |bytes: &[u8]| -> Vec<u8> {
            let mut text = String::from_utf8_lossy(bytes).into_owned();
            for (key, value) in &values {
                text = text.replace(&format!("{{{{{key}}}}}"), value);
            }
            text.into_bytes()
        };

        let mut files = Vec::new();
        let wit = format!("wit/v{WIT_VERSION}/");
        for (path, bytes) in PROJECT_FILES {
            let target = if let Some(rest) = path
                .strip_prefix(&format!("templates/{lang}/common/"))
                .or_else(|| path.strip_prefix(&format!("templates/{lang}/{kind}/")))
            {
                Some((rest.to_owned(), render(bytes)))
            } else if *path == format!("templates/manifest-{kind}.toml") {
                Some(("manifest.toml".to_owned(), render(bytes)))
            } else if *path == format!("templates/README-{lang}.md") {
                Some(("README.md".to_owned(), render(bytes)))
            } else if self.lang == Lang::Rust {
                path.strip_prefix("sdk/")
                    .map(|rest| (rest.to_owned(), bytes.to_vec()))
                    .or_else(|| {
                        path.strip_prefix(&wit)
                            .map(|rest| (format!("caxton-agent/wit/{rest}"), bytes.to_vec()))
                    })
            } else {
                path.strip_prefix(&wit)
                    .map(|rest| (format!("wit/deps/caxton-agent/{rest}"), bytes.to_vec()))
            };
            files.extend(target);
        }
        if self.lang != Lang::Rust {
            files.push(("wit/world.wit".to_owned(), self.world(grants).into_bytes()));
        }
        files.sort();
        files
    }

    /// The command that builds the component.
    fn build_command(&self) -> &'static str {
        match self.lang {
            Lang::Rust | Lang::Python => "./build.sh",
            Lang::Js => "npm run build",
        }
    }

    /// What to type next, for the user who just made the project.
    pub fn next_steps(&self) -> String {
        let setup = match self.lang {
            Lang::Rust => "",
            Lang::Python => "  pip install -r requirements.txt\n",
            Lang::Js => "  npm install\n",
        };
        format!(
            "  cd {}\n{setup}  {}\n  caxton agents run manifest.toml --message '{}'\n  caxton agents deploy manifest.toml",
            self.dir.display(),
            self.build_command(),
            self.example()
        )
    }

    /// A message (or tool input) the template answers.
    fn example(&self) -> &'static str {
        match self.kind {
            Kind::Agent => r#"{"remember": "the boiler was serviced in May"}"#,
            Kind::Tool => r#"{"text": "hello small world"}"#,
        }
    }

    /// The template's budgets: at least several times what one call
    /// measured (`caxton agents run`), so the template's own work and a
    /// first change to it fit. An interpreter carries its heap and runs its
    /// bytecode on fuel, so Python and JavaScript need more memory, and
    /// more fuel than their templates use leaves room for real work.
    fn budget(&self) -> Budget {
        match self.lang {
            Lang::Rust => Budget {
                fuel: "20_000_000",
                memory_mb: 16,
            },
            // One message measured ~0.5M fuel (a traceback 1.3M) and
            // 12.4 MiB: CPython's heap is snapshotted into the component.
            Lang::Python => Budget {
                fuel: "20_000_000",
                memory_mb: 32,
            },
            // One message measured ~2.6M fuel and 9.1 MiB: the engine's heap is
            // snapshotted into the component.
            Lang::Js => Budget {
                fuel: "20_000_000",
                memory_mb: 32,
            },
        }
    }

    /// Where the built component lands, relative to the manifest.
    pub fn component_path(&self) -> String {
        match self.lang {
            Lang::Rust => format!(
                "target/wasm32-wasip2/release/{}.wasm",
                self.name.replace('-', "_")
            ),
            Lang::Python | Lang::Js => format!("{}.wasm", self.name),
        }
    }

    /// The project's own world: the `caxton:agent` world of its kind,
    /// narrowed to the interfaces its manifest grants. Python and
    /// JavaScript components import every interface of their world
    /// whether the code uses it or not, and the host refuses an import
    /// the manifest does not grant.
    fn world(&self, grants: &[String]) -> String {
        let version = WIT_VERSION;
        let mut wit = format!(
            "// The world this plugin is built against: caxton:agent's `{kind}` world\n\
             // with only the interfaces its manifest grants. Granting another\n\
             // interface (say `llm`) means adding it in both places:\n\
             //   manifest.toml: grants = [..., \"llm\"]\n\
             //   here:          import caxton:agent/llm@{WIT_VERSION};\n\
             package local:plugin;\n\n",
            kind = self.kind.as_str()
        );
        match self.kind {
            Kind::Agent => {
                wit.push_str("world agent {\n");
                wit.push_str(&format!(
                    "    use caxton:agent/types@{version}.{{message, error}};\n\n"
                ));
                wit.push_str(&format!("    import caxton:agent/context@{version};\n"));
                for grant in AGENT_GRANTS
                    .iter()
                    .filter(|g| grants.iter().any(|x| x == *g))
                {
                    wit.push_str(&format!("    import caxton:agent/{grant}@{version};\n"));
                }
                wit.push_str(
                    "\n    /// Handle one message. `none` means no reply; an `error` reaches\n    \
                     /// the caller as that typed error (`plugin_error`).\n    \
                     export handle: func(message: message) -> result<option<message>, error>;\n}\n",
                );
            }
            Kind::Tool => {
                wit.push_str("world tool {\n");
                wit.push_str(&format!(
                    "    use caxton:agent/types@{version}.{{tool-description, error}};\n\n"
                ));
                wit.push_str(&format!("    import caxton:agent/log@{version};\n"));
                wit.push_str(
                    "\n    /// Describe the tool: its name, purpose and input schema.\n    \
                     export describe: func() -> tool-description;\n    \
                     /// Run the tool on JSON `input` and return JSON output.\n    \
                     export invoke: func(input: string) -> result<string, error>;\n}\n",
                );
            }
        }
        wit
    }
}

/// A template's `[resource_limits]`.
struct Budget {
    fuel: &'static str,
    memory_mb: u32,
}

#[cfg(unix)]
fn make_executable(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| anyhow::anyhow!("cannot make {} executable: {e}", path.display()))
}

#[cfg(not(unix))]
fn make_executable(_path: &Path) -> anyhow::Result<()> {
    Ok(())
}

/// The directory a project goes to: `--dir`, or `./NAME`.
pub fn project_dir(name: &str, dir: Option<&Path>) -> PathBuf {
    dir.map(Path::to_owned)
        .unwrap_or_else(|| PathBuf::from(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The version written into projects, the SDK's, and the WIT the SDK
    /// links to are one version.
    #[test]
    fn projects_the_sdk_and_its_wit_target_one_version() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let linked = std::fs::canonicalize(root.join("sdk/caxton-agent/wit")).unwrap();
        assert_eq!(
            linked,
            std::fs::canonicalize(root.join(format!("wit/v{WIT_VERSION}"))).unwrap()
        );
        let sdk = std::fs::read_to_string(root.join("sdk/caxton-agent/src/lib.rs")).unwrap();
        assert!(sdk.contains(&format!("pub const WIT_VERSION: &str = \"{WIT_VERSION}\";")));
        assert!(sdk.contains(&format!("\"caxton:agent/types@{WIT_VERSION}\"")));
        let cargo = std::fs::read_to_string(root.join("sdk/caxton-agent/Cargo.toml")).unwrap();
        assert!(
            cargo.contains(&format!("version = \"{WIT_VERSION}\"")),
            "{cargo}"
        );
        assert!(
            PROJECT_FILES
                .iter()
                .any(|(path, _)| *path == format!("wit/v{WIT_VERSION}/worlds.wit"))
        );
    }

    #[test]
    fn a_python_world_imports_context_and_exactly_the_grants() {
        let grants: Vec<String> = ["log", "memory", "llm"]
            .iter()
            .map(|g| g.to_string())
            .collect();
        let project = NewProject {
            name: "asker",
            lang: Lang::Python,
            kind: Kind::Agent,
            grants: &[],
            dir: Path::new("unused"),
        };
        let world = project.world(&grants);
        for interface in ["context", "log", "memory", "llm"] {
            assert!(
                world.contains(&format!("import caxton:agent/{interface}@{WIT_VERSION};")),
                "{world}"
            );
        }
        for interface in ["tools", "messaging"] {
            assert!(
                !world.contains(&format!("caxton:agent/{interface}@")),
                "{world}"
            );
        }
    }

    #[test]
    fn rust_names_that_clash_with_a_dependency_are_refused() {
        for name in ["caxton-agent", "serde-json", "core"] {
            let project = NewProject {
                name,
                lang: Lang::Rust,
                kind: Kind::Agent,
                grants: &[],
                dir: Path::new("unused"),
            };
            let error = project.create().unwrap_err().to_string();
            assert!(error.contains("would clash"), "{name}: {error}");
        }
    }
}
