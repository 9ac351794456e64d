//! The broker's own SSH host key: what clients pin in `known_hosts`.
//!
//! Generated once (Ed25519) in the state directory, mode 0600, with the public half beside it
//! so an operator can hand it to clients. Loaded on every start; a key file others can read
//! is refused.

use crate::secret_file;
use russh::keys::ssh_key::{self, Algorithm, LineEnding, PrivateKey};
use std::path::{Path, PathBuf};

pub const FILE_NAME: &str = "ssh_host_ed25519_key";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostKeyError {
    #[error(transparent)]
    File(#[from] secret_file::SecretFileError),
    #[error("{path} is not an OpenSSH private key ({source}); move it away and restart to generate a new one")]
    Parse {
        path: String,
        source: ssh_key::Error,
    },
    #[error("cannot generate a host key: {0}")]
    Generate(ssh_key::Error),
}

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE_NAME)
}

/// Load the host key, generating it on first start. Returns the key and whether it is new.
pub fn load_or_generate(state_dir: &Path) -> Result<(PrivateKey, bool), HostKeyError> {
    let p = path(state_dir);
    if p.exists() {
        let bytes = secret_file::read(&p)?;
        let key = PrivateKey::from_openssh(&bytes).map_err(|source| HostKeyError::Parse {
            path: p.display().to_string(),
            source,
        })?;
        return Ok((key, false));
    }
    let key =
        PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).map_err(HostKeyError::Generate)?;
    let pem = key
        .to_openssh(LineEnding::LF)
        .map_err(HostKeyError::Generate)?;
    secret_file::create(&p, pem.as_bytes())?;
    let public = key
        .public_key()
        .to_openssh()
        .map_err(HostKeyError::Generate)?;
    // The public half is not secret; a failure to write it is not worth refusing to start.
    let _ = std::fs::write(p.with_extension("pub"), format!("{public}\n"));
    Ok((key, true))
}
