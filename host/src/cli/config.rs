//! `caxton config init|show|validate`: write a starting config from a
//! profile, print the configuration in effect, check a file.

use std::path::{Path, PathBuf};

use clap::Subcommand;

use crate::config::Config;

/// The profiles in `examples/config/`, built in so `config init` works
/// from an installed binary.
const PROFILES: &[(&str, &str)] = &[
    (
        "high-throughput",
        include_str!("../../../examples/config/high-throughput.toml"),
    ),
    (
        "low-latency",
        include_str!("../../../examples/config/low-latency.toml"),
    ),
    (
        "resource-constrained",
        include_str!("../../../examples/config/resource-constrained.toml"),
    ),
];

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Write a config file: every default, or a profile
    /// (high-throughput, low-latency, resource-constrained).
    Init {
        #[arg(long)]
        profile: Option<String>,
        /// Where to write it.
        #[arg(long, short, default_value = "caxton.toml")]
        output: PathBuf,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Print the configuration: the file with `CAXTON_<SECTION>__<KEY>`
    /// environment overrides applied and every default filled in.
    Show {
        #[arg(long, env = "CAXTON_CONFIG")]
        config: Option<PathBuf>,
        /// Every key, defaults included (the only form; kept for scripts
        /// written against the operators' guide).
        #[arg(long)]
        effective: bool,
    },
    /// Check a config file: unknown keys (with a suggestion), bad values,
    /// impossible combinations, each with its line.
    Validate { file: PathBuf },
}

/// The config file (if any) with environment overrides: what `serve` uses.
/// Without `--config`, `caxton.toml` in the platform config dir is read
/// when it exists.
pub fn load(file: Option<&Path>) -> anyhow::Result<Config> {
    let default = crate::config::default_config_file().filter(|path| path.is_file());
    Ok(Config::resolve(
        file.or(default.as_deref()),
        std::env::vars(),
    )?)
}

/// [`load`], with `--data-dir` (when given) in place of the configured one:
/// what the offline commands that find files in the data dir use.
pub fn load_with_data_dir(file: Option<&Path>, data_dir: Option<&Path>) -> anyhow::Result<Config> {
    let mut config = load(file)?;
    if let Some(dir) = data_dir {
        config.server.data_dir = Some(dir.to_owned());
    }
    Ok(config)
}

impl ConfigCommand {
    pub fn run(&self) -> anyhow::Result<()> {
        match self {
            ConfigCommand::Init {
                profile,
                output,
                force,
            } => {
                let text = match profile.as_deref() {
                    None => format!(
                        "# Caxton configuration: every key at its default.\n\n{}",
                        toml::to_string_pretty(&Config::default())?
                    ),
                    Some(name) => PROFILES
                        .iter()
                        .find(|(profile, _)| *profile == name)
                        .map(|(_, text)| (*text).to_owned())
                        .ok_or_else(|| {
                            let names: Vec<&str> = PROFILES.iter().map(|p| p.0).collect();
                            anyhow::anyhow!("no profile {name:?}; choose one of {names:?}")
                        })?,
                };
                if output.exists() && !force {
                    anyhow::bail!("{} exists; pass --force to replace it", output.display());
                }
                std::fs::write(output, text)?;
                eprintln!("wrote {}", output.display());
            }
            ConfigCommand::Show { config, .. } => {
                let config = load(config.as_deref())?;
                print!("{}", toml::to_string_pretty(&config)?);
            }
            ConfigCommand::Validate { file } => {
                Config::load(file)?;
                println!("{}: ok", file.display());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_profile_parses_and_validates() {
        for (name, text) in PROFILES {
            let config = Config::parse(text, Path::new(name))
                .unwrap_or_else(|e| panic!("profile {name}: {e}"));
            config
                .validate()
                .unwrap_or_else(|e| panic!("profile {name}: {e}"));
        }
    }

    #[test]
    fn the_defaults_round_trip_through_their_own_text() {
        let text = toml::to_string_pretty(&Config::default()).unwrap();
        let parsed = Config::parse(&text, Path::new("defaults.toml")).unwrap();
        assert_eq!(toml::to_string_pretty(&parsed).unwrap(), text);
    }
}
