//! Finding and loading the config: an explicit file, `./latch.toml`, or the embedded default.
//!
//! The embedded default exists so a newcomer can run `latch serve` on a fresh checkout and
//! connect at once: it trusts the local user's `~/.ssh/*.pub` keys as an administrator and
//! says so loudly in the log. Anything more than trying latch out deserves `latch init`.

use crate::template::{self, FirstAdmin};
use policy::config::ConfigError;
use policy::Settings;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Where the settings came from, for the log and for `config check`.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    File(PathBuf),
    /// Built in memory from the template; trusts these key files.
    EmbeddedDefault {
        trusted_key_files: Vec<PathBuf>,
    },
}

/// A validated config and what it was loaded from.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub settings: Settings,
    pub source: ConfigSource,
    /// The text validated, hashed into the `broker_started` audit event.
    pub text: String,
    /// The state directory, resolved against the config file's directory.
    pub state_dir: PathBuf,
}

impl LoadedConfig {
    pub fn sha256(&self) -> String {
        hex::encode(Sha256::digest(self.text.as_bytes()))
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config {path} is invalid.\n{error}Fix the file and run `latch config check --config {path}`.")]
    Invalid { path: String, error: ConfigError },
}

/// The file used when `--config` is not given and it exists.
pub const DEFAULT_FILE: &str = "latch.toml";

/// Load `explicit`, else `./latch.toml` if present, else the embedded default.
pub fn load(explicit: Option<&Path>) -> Result<LoadedConfig, LoadError> {
    match explicit {
        Some(p) => load_file(p),
        None if Path::new(DEFAULT_FILE).exists() => load_file(Path::new(DEFAULT_FILE)),
        None => Ok(embedded_default()),
    }
}

pub fn load_file(path: &Path) -> Result<LoadedConfig, LoadError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: shown.clone(),
        source,
    })?;
    let settings =
        Settings::from_toml(&text).map_err(|error| LoadError::Invalid { path: shown, error })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let state_dir = resolve(&base, &settings.server.state_dir);
    Ok(LoadedConfig {
        settings,
        source: ConfigSource::File(path.to_path_buf()),
        text,
        state_dir,
    })
}

fn resolve(base: &Path, dir: &str) -> PathBuf {
    let p = Path::new(dir);
    if p.is_absolute() || base.as_os_str().is_empty() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// The local user as a first administrator: login name and `~/.ssh/*.pub` keys.
pub fn local_admin() -> (FirstAdmin, Vec<PathBuf>) {
    let login = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| valid_name(u))
        .unwrap_or_else(|| "admin".to_string());
    let mut keys = Vec::new();
    let mut files = Vec::new();
    if let Some(home) = std::env::var_os("HOME") {
        let ssh = Path::new(&home).join(".ssh");
        if let Ok(rd) = std::fs::read_dir(&ssh) {
            let mut paths: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
            paths.sort();
            for p in paths {
                let is_pub = p.extension().is_some_and(|e| e == "pub");
                let is_cert = p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().ends_with("-cert.pub"));
                if !is_pub || is_cert {
                    continue;
                }
                if let Ok(text) = std::fs::read_to_string(&p) {
                    let line = text.lines().next().unwrap_or("").trim().to_string();
                    // Only lines policy accepts, so one odd file cannot break the default.
                    if policy::config::UserKey::parse(&line).is_ok() {
                        keys.push(line);
                        files.push(p);
                    }
                }
            }
        }
    }
    (
        FirstAdmin {
            name: login.clone(),
            keys,
            login,
        },
        files,
    )
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// The embedded default: the `latch init` template for the local user, state in
/// `./latch-data`.
pub fn embedded_default() -> LoadedConfig {
    let (admin, files) = local_admin();
    let text = template::render(&admin, "127.0.0.1:2222", "./latch-data");
    let settings = match Settings::from_toml(&text) {
        Ok(s) => s,
        // The template is validated by a unit test; reaching this is a bug, but still no
        // panic: fall back to a config with no users (deny everything).
        Err(_) => Settings::from_toml("").expect("the empty config is valid"),
    };
    LoadedConfig {
        settings,
        source: ConfigSource::EmbeddedDefault {
            trusted_key_files: files,
        },
        text,
        state_dir: PathBuf::from("./latch-data"),
    }
}
