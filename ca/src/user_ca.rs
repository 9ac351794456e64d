//! The internal SSH user CA: the key targets trust through `sshd`'s `TrustedUserCAKeys`, and
//! the minting of one short-lived certificate per upstream connection.

use crate::error::CaError;
use crate::request::{
    check_principal, source_address_option, CertRequest, KeyId, CLOCK_SKEW_BACKDATE,
    MAX_CERT_VALIDITY,
};
use chrono::{DateTime, SecondsFormat, Utc};
use russh::keys::ssh_key::certificate::{Builder, CertType};
use russh::keys::ssh_key::{Algorithm, Certificate, LineEnding, PrivateKey, PublicKey};
use std::fmt;
use zeroize::Zeroizing;

#[cfg(test)]
mod tests;

/// The algorithm `latch init` generates: small keys, fast signatures, and accepted by every
/// `sshd` that supports certificates at all (OpenSSH 6.5 and later).
pub const DEFAULT_ALGORITHM: Algorithm = Algorithm::Ed25519;

/// The comment on the CA's public key line, so an operator reading a target's
/// `TrustedUserCAKeys` file can tell where the line came from.
const PUBLIC_KEY_COMMENT: &str = "latch-user-ca";

/// The broker's SSH user certificate authority.
///
/// Holds the private key in memory only; loading it from and saving it to disk is the broker's
/// job. `Debug` prints the fingerprint, never the key.
#[derive(Clone)]
pub struct UserCa {
    key: PrivateKey,
    /// Rendered once at construction, so printing it cannot fail later.
    public_key_line: String,
}

impl UserCa {
    /// Generate a new CA key. Use [`DEFAULT_ALGORITHM`] unless targets need otherwise.
    pub fn generate(algorithm: Algorithm) -> Result<UserCa, CaError> {
        check_algorithm(&algorithm)?;
        let key = PrivateKey::random(&mut rand::rng(), algorithm).map_err(CaError::Generate)?;
        UserCa::from_key(key)
    }

    /// Load a CA key from its OpenSSH private key file contents.
    ///
    /// A passphrase-protected key is refused: the broker starts unattended, and the file's
    /// protection is its mode (0600), which the broker checks.
    pub fn from_openssh(pem: &[u8]) -> Result<UserCa, CaError> {
        let key = PrivateKey::from_openssh(pem).map_err(CaError::Parse)?;
        if key.is_encrypted() {
            return Err(CaError::Encrypted);
        }
        check_algorithm(&key.algorithm())?;
        UserCa::from_key(key)
    }

    fn from_key(mut key: PrivateKey) -> Result<UserCa, CaError> {
        key.set_comment(PUBLIC_KEY_COMMENT);
        let mut public = key.public_key().clone();
        public.set_comment(PUBLIC_KEY_COMMENT);
        let public_key_line = public.to_openssh().map_err(|source| CaError::Encode {
            what: "the CA public key",
            source,
        })?;
        Ok(UserCa {
            key,
            public_key_line,
        })
    }

    /// The private key in OpenSSH format, for the broker to write to a 0600 file. Wiped from
    /// memory when dropped.
    pub fn to_openssh(&self) -> Result<Zeroizing<String>, CaError> {
        self.key
            .to_openssh(LineEnding::LF)
            .map_err(|source| CaError::Encode {
                what: "the CA private key",
                source,
            })
    }

    /// The CA's public key.
    pub fn public_key(&self) -> &PublicKey {
        self.key.public_key()
    }

    /// The line targets put in the file named by `sshd`'s `TrustedUserCAKeys`
    /// (`ssh-ed25519 AAAA... latch-user-ca`), without a trailing newline.
    pub fn public_key_line(&self) -> String {
        self.public_key_line.clone()
    }

    /// The CA's SHA-256 fingerprint, as `ssh-keygen -l` and `sshd`'s log print it.
    pub fn fingerprint(&self) -> String {
        crate::fingerprint(self.public_key())
    }

    /// Mint a user certificate for one upstream connection.
    ///
    /// Valid from `now` minus a minute (clock skew) until `now + validity` or the grant's end,
    /// whichever is first; for exactly one login; with the extensions `permissions` allow and
    /// never `permit-user-rc`; key id `latch:<grant>:<user>:<session>`.
    pub fn mint_user_cert(
        &self,
        req: &CertRequest<'_>,
        now: DateTime<Utc>,
    ) -> Result<Certificate, CaError> {
        if req.validity <= chrono::TimeDelta::zero() || req.validity > MAX_CERT_VALIDITY {
            return Err(CaError::Validity {
                requested_secs: req.validity.num_seconds(),
                max_secs: MAX_CERT_VALIDITY.num_seconds(),
            });
        }
        check_principal(&req.principal)?;
        let key_id = KeyId::new(&req.grant, &req.user, &req.session)?;
        let source_address = req
            .source_address
            .as_deref()
            .map(source_address_option)
            .transpose()?;

        let now_secs = unix_secs(now)?;
        let end = now
            .checked_add_signed(req.validity)
            .ok_or_else(|| CaError::Time(rfc3339(now)))?;
        let mut valid_before = unix_secs(end)?;
        if let Some(cap) = req.not_after_cap {
            // Flooring the cap to whole seconds errs towards ending early, never late.
            let cap_secs = u64::try_from(cap.timestamp()).unwrap_or(0);
            if cap_secs <= now_secs {
                return Err(CaError::GrantEnded {
                    cap: rfc3339(cap),
                    now: rfc3339(now),
                });
            }
            valid_before = valid_before.min(cap_secs);
        }
        if valid_before <= now_secs {
            // Only a sub-second validity gets here: it rounds down to nothing.
            return Err(CaError::Validity {
                requested_secs: req.validity.num_seconds(),
                max_secs: MAX_CERT_VALIDITY.num_seconds(),
            });
        }
        let backdate = CLOCK_SKEW_BACKDATE.num_seconds().unsigned_abs();
        let valid_after = now_secs.saturating_sub(backdate);

        let mut builder = Builder::new_with_random_nonce(
            &mut rand::rng(),
            req.public_key.key_data().clone(),
            valid_after,
            valid_before,
        )
        .map_err(CaError::Sign)?;
        builder.serial(req.serial).map_err(CaError::Sign)?;
        builder.cert_type(CertType::User).map_err(CaError::Sign)?;
        builder.key_id(key_id.to_string()).map_err(CaError::Sign)?;
        builder
            .valid_principal(req.principal.clone())
            .map_err(CaError::Sign)?;
        for name in req.permissions.extensions() {
            builder.extension(name, "").map_err(CaError::Sign)?;
        }
        if let Some(list) = source_address {
            builder
                .critical_option("source-address", list)
                .map_err(CaError::Sign)?;
        }
        builder.comment(key_id.to_string()).map_err(CaError::Sign)?;
        builder.sign(&self.key).map_err(CaError::Sign)
    }
}

impl fmt::Debug for UserCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserCa")
            .field("algorithm", &self.key.algorithm().as_str())
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

/// A fresh random certificate serial, for callers that do not keep a counter.
///
/// Serials only need to be distinct enough for `sshd`'s `RevokedKeys` and for log searches;
/// 64 random bits make a collision between two live certificates negligible.
pub fn random_serial() -> u64 {
    rand::random()
}

/// Only algorithms every certificate-capable `sshd` accepts and this build can sign with.
/// (RSA would sign with SHA-1 on old targets, and the workspace builds russh without it.)
fn check_algorithm(algorithm: &Algorithm) -> Result<(), CaError> {
    match algorithm {
        Algorithm::Ed25519 | Algorithm::Ecdsa { .. } => Ok(()),
        other => Err(CaError::UnsupportedAlgorithm {
            algorithm: other.as_str().to_owned(),
        }),
    }
}

fn unix_secs(t: DateTime<Utc>) -> Result<u64, CaError> {
    u64::try_from(t.timestamp()).map_err(|_| CaError::Time(rfc3339(t)))
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}
