//! Files that hold secrets (private keys): created 0600, refused when others can read them.
//!
//! OpenSSH refuses a private key readable by others; so do we, with a message saying the
//! exact `chmod` to run, because a bastion whose keys leak is worse than one that won't start.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretFileError {
    #[error("{path} is readable by other users (mode {mode:o}): run `chmod 600 {path}`")]
    TooOpen { path: String, mode: u32 },
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// Read a secret file, refusing it when group or others have any access.
pub fn read(path: &Path) -> Result<Vec<u8>, SecretFileError> {
    let shown = path.display().to_string();
    let meta = fs::metadata(path).map_err(|source| SecretFileError::Read {
        path: shown.clone(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretFileError::TooOpen { path: shown, mode });
    }
    fs::read(path).map_err(|source| SecretFileError::Read {
        path: shown,
        source,
    })
}

/// Create a new secret file with mode 0600 (fails if it exists: never overwrite a key).
/// The content is written to a temporary name and renamed, so a crash never leaves a
/// half-written key under the real name.
pub fn create(path: &Path, content: &[u8]) -> Result<(), SecretFileError> {
    let shown = path.display().to_string();
    let err = |source| SecretFileError::Write {
        path: shown.clone(),
        source,
    };
    if path.exists() {
        return Err(err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "file exists; not overwriting a key",
        )));
    }
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(err)?;
    f.write_all(content).map_err(err)?;
    f.sync_all().map_err(err)?;
    drop(f);
    fs::rename(&tmp, path).map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_files_are_private_and_readable() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key");
        create(&p, b"secret").unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(read(&p).unwrap(), b"secret");
        assert!(create(&p, b"again").is_err(), "must never overwrite a key");
    }

    #[test]
    fn group_readable_key_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key");
        create(&p, b"secret").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
        let e = read(&p).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
    }
}
