//! The API's bearer token: generated once into the data dir (mode 0600),
//! read by the server at start and by the CLI on the same machine.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The token's file name inside the data dir.
pub const TOKEN_FILE: &str = "auth-token";

/// The token in effect, and whether this start created it (the server
/// prints a new token once, so the operator can copy it).
pub struct Token {
    pub value: String,
    pub path: PathBuf,
    pub created: bool,
}

/// Reads the token from `path`, creating it if it does not exist.
pub fn load_or_create(path: &Path) -> anyhow::Result<Token> {
    match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => Ok(Token {
            value: text.trim().to_owned(),
            path: path.to_owned(),
            created: false,
        }),
        Ok(_) => anyhow::bail!(
            "the token file {} is empty; delete it to have a new token generated, or run `caxton auth token --rotate`",
            path.display()
        ),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let value = write_new(path)?;
            Ok(Token {
                value,
                path: path.to_owned(),
                created: true,
            })
        }
        Err(error) => anyhow::bail!("cannot read the token file {}: {error}", path.display()),
    }
}

/// Writes a fresh token to `path` (replacing any) and returns it. Written
/// to a private temporary file and renamed, so readers see the old token or
/// the new one, never half of one.
pub fn write_new(path: &Path) -> anyhow::Result<String> {
    let value = generate()?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let partial = path.with_extension("partial");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&partial)
        .map_err(|e| anyhow::anyhow!("cannot write the token file {}: {e}", partial.display()))?;
    writeln!(file, "{value}")?;
    file.sync_all()?;
    std::fs::rename(&partial, path)?;
    Ok(value)
}

/// 32 random bytes, hex, with a prefix that makes a leaked token easy to
/// recognise in logs and secret scanners.
fn generate() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| anyhow::anyhow!("no randomness for the API token: {e}"))?;
    Ok(format!("caxton_{}", hex::encode(bytes)))
}

/// The token a running server accepts. It follows the file, so `caxton auth
/// token --rotate` takes effect within a couple of seconds, without a restart.
pub struct LiveToken {
    current: std::sync::RwLock<String>,
}

impl LiveToken {
    pub fn matches(&self, presented: &str) -> bool {
        token_matches(&self.current.read().expect("token lock"), presented)
    }

    /// Starts following `token.path`; the task ends with the runtime.
    pub fn follow(token: Token) -> std::sync::Arc<Self> {
        let live = std::sync::Arc::new(Self {
            current: std::sync::RwLock::new(token.value),
        });
        let watched = live.clone();
        tokio::spawn(async move {
            // The file's contents, not its mtime, say whether it changed:
            // a rotation within the clock's resolution, or a copy that
            // kept the old mtime, would otherwise go unnoticed.
            let mut ticks = tokio::time::interval(std::time::Duration::from_secs(2));
            let mut warned = false;
            loop {
                ticks.tick().await;
                match std::fs::read_to_string(&token.path) {
                    Ok(text) if !text.trim().is_empty() => {
                        warned = false;
                        let text = text.trim();
                        if *watched.current.read().expect("token lock") == text {
                            continue;
                        }
                        *watched.current.write().expect("token lock") = text.to_owned();
                        tracing::info!(path = %token.path.display(), "API token changed; the new one is in effect");
                    }
                    // A missing or empty file keeps the old token: never open up.
                    _ if !warned => {
                        warned = true;
                        tracing::warn!(path = %token.path.display(), "token file unreadable; keeping the previous token")
                    }
                    _ => {}
                }
            }
        });
        live
    }
}

/// Compares in time independent of where the inputs differ.
pub fn token_matches(expected: &str, presented: &str) -> bool {
    let (a, b) = (expected.as_bytes(), presented.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(TOKEN_FILE);
        let first = load_or_create(&path).unwrap();
        assert!(first.created);
        assert!(first.value.starts_with("caxton_") && first.value.len() == 71);
        let again = load_or_create(&path).unwrap();
        assert!(!again.created);
        assert_eq!(again.value, first.value);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let rotated = write_new(&path).unwrap();
        assert_ne!(rotated, first.value);
        assert_eq!(load_or_create(&path).unwrap().value, rotated);
    }

    #[test]
    fn comparison_needs_the_whole_token() {
        assert!(token_matches("caxton_ab", "caxton_ab"));
        assert!(!token_matches("caxton_ab", "caxton_a"));
        assert!(!token_matches("caxton_ab", "caxton_ac"));
    }
}
