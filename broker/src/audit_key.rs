//! The audit key: signs every recording's manifest (an SSH signature, `sshsig`), so an
//! auditor can check a recording with nothing but `ssh-keygen -Y verify`.
//!
//! A separate key from the user CA on purpose: the CA key lets whoever holds it log in to
//! targets; the audit key only vouches for recordings, and can be handed to a signing
//! service or rotated on its own schedule.

use crate::secret_file;
use russh::keys::ssh_key::{Algorithm, LineEnding, PrivateKey};
use std::path::{Path, PathBuf};

pub const FILE_NAME: &str = "audit_key";

/// The principal auditors name in their `allowed_signers` file.
pub const PRINCIPAL: &str = "latch-audit";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditKeyError {
    #[error(transparent)]
    File(#[from] secret_file::SecretFileError),
    #[error("{path} is not an OpenSSH private key ({error}); restore it from backup (recordings signed by it can only be checked with its public half)")]
    Parse {
        path: String,
        error: russh::keys::ssh_key::Error,
    },
    #[error("cannot generate the audit key: {0}")]
    Generate(russh::keys::ssh_key::Error),
}

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE_NAME)
}

/// Load the audit key, generating it (Ed25519) on first start.
pub fn load_or_generate(state_dir: &Path) -> Result<(PrivateKey, bool), AuditKeyError> {
    let p = path(state_dir);
    if p.exists() {
        let bytes = secret_file::read(&p)?;
        let key = PrivateKey::from_openssh(&bytes).map_err(|error| AuditKeyError::Parse {
            path: p.display().to_string(),
            error,
        })?;
        return Ok((key, false));
    }
    let key = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519)
        .map_err(AuditKeyError::Generate)?;
    let pem = key
        .to_openssh(LineEnding::LF)
        .map_err(AuditKeyError::Generate)?;
    secret_file::create(&p, pem.as_bytes())?;
    if let Ok(public) = key.public_key().to_openssh() {
        let _ = std::fs::write(p.with_extension("pub"), format!("{public}\n"));
    }
    Ok((key, true))
}
