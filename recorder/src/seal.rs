//! Sealing: a manifest signed as an SSH signature, checkable with nothing but OpenSSH.
//!
//! A sealed recording is three files (see [`crate::manifest::RecordingName`]): the `.cast`,
//! the manifest's bytes (which carry the cast's SHA-256) and the signature over those bytes,
//! in OpenSSH's `sshsig` format under the namespace [`NAMESPACE`], by the audit key
//! `latch init` creates. An auditor with only OpenSSH checks one with
//!
//! ```text
//! ssh-keygen -Y verify -f allowed_signers -I latch-audit -n latch-recording@latch \
//!     -s s17-c0.manifest.json.sig < s17-c0.manifest.json
//! sha256sum s17-c0.cast    # compare with "cast": {"sha256": ...} in the manifest
//! ```
//!
//! where `allowed_signers` holds [`allowed_signers_line`]. [`verify_recording`] does both
//! steps at once, offline.

use crate::manifest::{CastHasher, CastRef, Manifest, ManifestError};
use russh::keys::ssh_key::{HashAlg, LineEnding, PrivateKey, PublicKey, SshSig};
use sha2::{Digest, Sha256};

#[cfg(test)]
mod tests;

/// The `sshsig` namespace of recording seals. A signature made for another purpose (a git
/// commit, a file signed with `-n file`) never verifies as a seal, and a seal never as
/// anything else. The `@domain` form is OpenSSH's convention for names it did not define.
pub const NAMESPACE: &str = "latch-recording@latch";

/// The principal latch names its audit key by in an `allowed_signers` file.
pub const AUDIT_PRINCIPAL: &str = "latch-audit";

/// The hash signed over the manifest: SHA-512, what `ssh-keygen -Y sign` uses by default.
pub const HASH: HashAlg = HashAlg::Sha512;

/// Why sealing or checking a seal failed. Each message says what was found and what it means.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The audit key could not sign (an unsupported or broken key).
    #[error("cannot sign the manifest with the audit key: {0}; check the key `latch init` wrote (an Ed25519 key works)")]
    Sign(#[source] russh::keys::ssh_key::Error),

    /// The signature file is not an SSH signature.
    #[error("the signature is not an SSH signature ({0}); pass the .manifest.json.sig file, which starts with -----BEGIN SSH SIGNATURE-----")]
    SignatureFormat(#[source] russh::keys::ssh_key::Error),

    /// The signature is a valid SSH signature, but for another purpose.
    #[error("the signature was made for namespace {found:?}, not {NAMESPACE:?}: it is not a latch recording seal")]
    Namespace {
        /// The namespace the signature carries.
        found: String,
    },

    /// The signature was made by a key other than the trusted audit key.
    #[error("the manifest was signed by {found}, not by the trusted audit key {trusted}; check that you trust the right key (`latch` prints it), or the recording was re-signed by someone else")]
    WrongKey {
        /// The signer's fingerprint.
        found: String,
        /// The trusted key's fingerprint.
        trusted: String,
    },

    /// The signature does not match the manifest's bytes.
    #[error("the manifest's signature does not verify: the manifest was altered after sealing, or signed by another key")]
    BadSignature,

    /// The signature verifies, but the bytes are not a manifest this version reads.
    #[error(transparent)]
    Manifest(#[from] ManifestError),

    /// The manifest names a cast, but none was given.
    #[error("the manifest vouches for {file}, which was not found; a sealed recording is the .cast, the .manifest.json and the .sig together")]
    CastMissing {
        /// The cast's file name, from the manifest.
        file: String,
    },

    /// A cast was given for a manifest that vouches for none (a metadata-only recording).
    #[error("a .cast was given, but this manifest records its channel as metadata only and vouches for no cast")]
    CastUnexpected,

    /// The cast's bytes are not the ones the manifest vouches for.
    #[error("the .cast does not match its manifest (sha256 {actual} of {actual_bytes} bytes != {expected} of {expected_bytes} bytes): it was altered after sealing")]
    CastMismatch {
        /// The SHA-256 the manifest records.
        expected: String,
        /// The length the manifest records.
        expected_bytes: u64,
        /// The SHA-256 of the bytes given.
        actual: String,
        /// Their length.
        actual_bytes: u64,
    },

    /// A key or signature could not be encoded (a fault in the key library, not in input).
    #[error("cannot encode {what}: {source}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// What the key library reported.
        #[source]
        source: russh::keys::ssh_key::Error,
    },
}

/// A manifest sealed: the three things the broker writes, and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The manifest's bytes, to write as `.manifest.json` exactly.
    pub manifest: Vec<u8>,
    /// The signature, to write as `.manifest.json.sig` (PEM, ends with a newline).
    pub signature: String,
    /// The SHA-256 of `manifest`, lowercase hex, for the `recording_sealed` event, so that
    /// the event log's hash chain vouches for the recording too.
    pub manifest_sha256: String,
}

/// Encode and sign a manifest.
pub fn seal(manifest: &Manifest, key: &PrivateKey) -> Result<Sealed, SealError> {
    let bytes = manifest.to_bytes()?;
    let signature = sign(&bytes, key)?;
    Ok(Sealed {
        manifest_sha256: hex::encode(Sha256::digest(&bytes)),
        manifest: bytes,
        signature,
    })
}

/// Sign a manifest's bytes: the PEM text (`-----BEGIN SSH SIGNATURE-----`) that
/// `ssh-keygen -Y sign -n latch-recording@latch` would have written.
pub fn sign(manifest_bytes: &[u8], key: &PrivateKey) -> Result<String, SealError> {
    let sig = key
        .sign(NAMESPACE, HASH, manifest_bytes)
        .map_err(SealError::Sign)?;
    let mut pem = sig
        .to_pem(LineEnding::LF)
        .map_err(|source| SealError::Encode {
            what: "the signature",
            source,
        })?;
    if !pem.ends_with('\n') {
        pem.push('\n');
    }
    Ok(pem)
}

/// Check that `signature_pem` is the audit key's seal over exactly `manifest_bytes`.
pub fn verify(
    manifest_bytes: &[u8],
    signature_pem: &str,
    trusted_key: &PublicKey,
) -> Result<(), SealError> {
    let sig = SshSig::from_pem(signature_pem.trim()).map_err(SealError::SignatureFormat)?;
    if sig.namespace() != NAMESPACE {
        return Err(SealError::Namespace {
            found: sig.namespace().to_owned(),
        });
    }
    if sig.public_key() != trusted_key.key_data() {
        return Err(SealError::WrongKey {
            found: sig.public_key().fingerprint(HashAlg::Sha256).to_string(),
            trusted: trusted_key.fingerprint(HashAlg::Sha256).to_string(),
        });
    }
    trusted_key
        .verify(NAMESPACE, manifest_bytes, &sig)
        .map_err(|_| SealError::BadSignature)
}

/// A manifest whose seal verified. Only [`verify_manifest`] and [`verify_recording`] make one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedManifest {
    manifest: Manifest,
}

impl VerifiedManifest {
    /// The manifest the seal vouches for.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The manifest, owned.
    pub fn into_manifest(self) -> Manifest {
        self.manifest
    }

    /// Check a cast hashed as it was read (with [`CastHasher`]) against this manifest, for
    /// casts too big to hold in memory. `None` means no cast file was found.
    pub fn check_cast(&self, cast: Option<&CastRef>) -> Result<(), SealError> {
        match (&self.manifest.cast, cast) {
            (None, None) => Ok(()),
            (None, Some(_)) => Err(SealError::CastUnexpected),
            (Some(expected), None) => Err(SealError::CastMissing {
                file: expected.file.clone(),
            }),
            (Some(expected), Some(actual)) => {
                if expected.sha256.eq_ignore_ascii_case(&actual.sha256)
                    && expected.bytes == actual.bytes
                {
                    Ok(())
                } else {
                    Err(SealError::CastMismatch {
                        expected: expected.sha256.clone(),
                        expected_bytes: expected.bytes,
                        actual: actual.sha256.clone(),
                        actual_bytes: actual.bytes,
                    })
                }
            }
        }
    }
}

/// Verify the seal and parse the manifest it covers; the cast is checked separately with
/// [`VerifiedManifest::check_cast`].
pub fn verify_manifest(
    manifest_bytes: &[u8],
    signature_pem: &str,
    trusted_key: &PublicKey,
) -> Result<VerifiedManifest, SealError> {
    verify(manifest_bytes, signature_pem, trusted_key)?;
    Ok(VerifiedManifest {
        manifest: Manifest::from_bytes(manifest_bytes)?,
    })
}

/// Everything `latch recordings verify` checks of one recording: the seal over the
/// manifest, the manifest's format, and that the cast (`None` if there is no cast file) is
/// byte for byte the one the manifest vouches for.
pub fn verify_recording(
    manifest_bytes: &[u8],
    signature_pem: &str,
    cast_bytes: Option<&[u8]>,
    trusted_key: &PublicKey,
) -> Result<VerifiedManifest, SealError> {
    let verified = verify_manifest(manifest_bytes, signature_pem, trusted_key)?;
    let actual = cast_bytes.map(|bytes| {
        let mut hasher = CastHasher::new();
        hasher.update(bytes);
        let file = verified
            .manifest
            .cast
            .as_ref()
            .map_or("", |c| c.file.as_str());
        hasher.finish(file)
    });
    verified.check_cast(actual.as_ref())?;
    Ok(verified)
}

/// The line of an OpenSSH `allowed_signers` file that trusts `key` as `principal` for
/// recording seals only: `latch-audit namespaces="latch-recording@latch" ssh-ed25519 AAAA...`
/// (no comment, no trailing newline).
pub fn allowed_signers_line(principal: &str, key: &PublicKey) -> Result<String, SealError> {
    let mut key = key.clone();
    key.set_comment("");
    let key = key.to_openssh().map_err(|source| SealError::Encode {
        what: "the audit public key",
        source,
    })?;
    Ok(format!("{principal} namespaces=\"{NAMESPACE}\" {key}"))
}

/// The command an auditor runs to check one seal with OpenSSH alone, given the file names.
pub fn ssh_keygen_verify_command(
    allowed_signers: &str,
    manifest_file: &str,
    signature_file: &str,
) -> String {
    format!(
        "ssh-keygen -Y verify -f {} -I {AUDIT_PRINCIPAL} -n {NAMESPACE} -s {} < {}",
        shell_quote(allowed_signers),
        shell_quote(signature_file),
        shell_quote(manifest_file),
    )
}

/// A word for a POSIX shell: as is when it is plainly safe, single-quoted otherwise.
fn shell_quote(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_./-+:@%,=".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}
