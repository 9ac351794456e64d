//! Checking an OpenSSH certificate against the CA keys we trust.
//!
//! russh hands over a certificate as parsed, without asking whether its CA is one we trust, and
//! ssh-key's own `validate_at` checks only the signature, the signer and the time window (and
//! says one failure for all three). This module does the whole job, in an order that never
//! reports a field of a certificate whose signature has not been verified, and with errors that
//! say which check failed.

use chrono::{DateTime, SecondsFormat, Utc};
use russh::keys::ssh_key::certificate::CertType;
use russh::keys::ssh_key::{Certificate, HashAlg, PublicKey};

/// Why a certificate was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// The certificate was signed by a key that is not one of the trusted CAs.
    #[error("certificate is signed by CA {signer}, which is not trusted here (trusted: {}); sign it with a trusted CA or add that CA's public key to the trusted ones", list_or_none(.trusted, "none"))]
    UntrustedSigner {
        /// Fingerprint of the key that signed the certificate.
        signer: String,
        /// Fingerprints of the CAs that are trusted.
        trusted: Vec<String>,
    },

    /// The signature does not match the certificate's contents.
    #[error("certificate signature does not verify: it was altered or corrupted; issue a new certificate")]
    BadSignature,

    /// A host certificate was offered where a user certificate is needed, or the reverse.
    #[error("this is a {found} certificate but a {expected} certificate is needed; issue the right kind (`ssh-keygen -s` takes `-h` for host certificates)")]
    WrongType {
        /// The kind that is needed: `user` or `host`.
        expected: &'static str,
        /// The kind the certificate is.
        found: &'static str,
    },

    /// The certificate's validity window is empty, so it is never valid.
    #[error("certificate is never valid: it is valid from {} but only before {}; issue a new certificate", fmt_unix(*.valid_after), fmt_unix(*.valid_before))]
    NeverValid {
        /// Start of the window, Unix seconds.
        valid_after: u64,
        /// End of the window (exclusive), Unix seconds.
        valid_before: u64,
    },

    /// The certificate's validity window has not begun.
    #[error("certificate is not valid until {} (now {now}); check that both machines' clocks are right", fmt_unix(*.valid_after))]
    NotYetValid {
        /// Start of the window, Unix seconds.
        valid_after: u64,
        /// The time it was checked at (RFC 3339).
        now: String,
    },

    /// The certificate's validity window has ended.
    #[error("certificate expired at {} (now {now}); issue a new certificate", fmt_unix(*.valid_before))]
    Expired {
        /// End of the window (exclusive), Unix seconds.
        valid_before: u64,
        /// The time it was checked at (RFC 3339).
        now: String,
    },

    /// The certificate does not list the name it is being used for.
    #[error("certificate is not valid for {principal:?}: it lists {}; issue one for {principal:?}", list_or_none(.listed, "no principals"))]
    PrincipalNotListed {
        /// The login or host name it was presented for.
        principal: String,
        /// The principals the certificate lists.
        listed: Vec<String>,
    },

    /// The certificate carries a critical option this checker cannot enforce; OpenSSH refuses
    /// such certificates too, since ignoring a restriction would widen access.
    #[error("certificate carries critical option {name:?}, which is not understood here, so the certificate is refused; issue one without it")]
    UnsupportedCriticalOption {
        /// The option's name.
        name: String,
    },
}

/// Check a user certificate: signed by `trusted_ca`, a user certificate, valid at `now`, and
/// listing `principal`.
///
/// The only critical option accepted is `source-address`, which this function cannot enforce
/// because it does not know where the connection came from: a caller that accepts certificates
/// from the network must check the peer address against it (sshd does this on targets).
pub fn verify_user_cert(
    cert: &Certificate,
    trusted_ca: &PublicKey,
    principal: &str,
    now: DateTime<Utc>,
) -> Result<(), CertError> {
    check_cert(
        cert,
        CertType::User,
        std::slice::from_ref(trusted_ca),
        principal,
        now,
        &["source-address"],
    )
}

/// The checks shared by user and host certificates.
pub(crate) fn check_cert(
    cert: &Certificate,
    expected: CertType,
    trusted: &[PublicKey],
    principal: &str,
    now: DateTime<Utc>,
    understood_critical_options: &[&str],
) -> Result<(), CertError> {
    let signer = trusted
        .iter()
        .find(|ca| ca.key_data() == cert.signature_key())
        .ok_or_else(|| CertError::UntrustedSigner {
            signer: cert
                .signature_key()
                .fingerprint(HashAlg::Sha256)
                .to_string(),
            trusted: trusted.iter().map(crate::fingerprint).collect(),
        })?;
    let signer_fp = [signer.fingerprint(HashAlg::Sha256)];

    // Verify the signature before reading any other field, so a forged certificate is
    // reported as forged rather than as, say, expired. `validate_at` checks signature, signer
    // and window together; at `valid_after` the window holds whenever it is non-empty.
    if cert.valid_after() >= cert.valid_before() {
        return Err(CertError::NeverValid {
            valid_after: cert.valid_after(),
            valid_before: cert.valid_before(),
        });
    }
    cert.validate_at(cert.valid_after(), &signer_fp)
        .map_err(|_| CertError::BadSignature)?;

    if cert.cert_type() != expected {
        return Err(CertError::WrongType {
            expected: type_name(expected),
            found: type_name(cert.cert_type()),
        });
    }

    let now_text = now.to_rfc3339_opts(SecondsFormat::Secs, true);
    // Before 1970 nothing we issue is valid yet.
    let now_secs = u64::try_from(now.timestamp()).unwrap_or(0);
    if now_secs < cert.valid_after() {
        return Err(CertError::NotYetValid {
            valid_after: cert.valid_after(),
            now: now_text,
        });
    }
    if now_secs >= cert.valid_before() {
        return Err(CertError::Expired {
            valid_before: cert.valid_before(),
            now: now_text,
        });
    }

    // An empty list means "any principal" to OpenSSH; we never accept that.
    if !cert.valid_principals().iter().any(|p| p == principal) {
        return Err(CertError::PrincipalNotListed {
            principal: principal.to_owned(),
            listed: cert.valid_principals().to_vec(),
        });
    }

    if let Some(name) = cert
        .critical_options()
        .keys()
        .find(|name| !understood_critical_options.contains(&name.as_str()))
    {
        return Err(CertError::UnsupportedCriticalOption { name: name.clone() });
    }

    // The library's own complete check has the last word; every failure it could report has
    // been diagnosed above, so reaching this error means the two disagree, and we refuse.
    cert.validate_at(now_secs, &signer_fp)
        .map_err(|_| CertError::BadSignature)
}

fn type_name(t: CertType) -> &'static str {
    if t.is_host() {
        "host"
    } else {
        "user"
    }
}

/// Certificate times are Unix seconds, and OpenSSH uses `u64::MAX` for "forever".
fn fmt_unix(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| DateTime::<Utc>::from_timestamp(s, 0))
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_else(|| "forever".to_owned())
}

fn list_or_none(listed: &[String], none: &str) -> String {
    if listed.is_empty() {
        none.to_owned()
    } else {
        listed.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{ephemeral_key, request, t0};
    use crate::UserCa;
    use chrono::TimeDelta;

    fn minted() -> (UserCa, Certificate) {
        let ca = UserCa::generate(crate::DEFAULT_ALGORITHM).unwrap();
        let key = ephemeral_key();
        let cert = ca.mint_user_cert(&request(&key), t0()).unwrap();
        (ca, cert)
    }

    #[test]
    fn good_cert_is_accepted_through_its_whole_window() {
        let (ca, cert) = minted();
        for at in [
            t0() - TimeDelta::seconds(60),
            t0(),
            t0() + TimeDelta::minutes(5) - TimeDelta::seconds(1),
        ] {
            verify_user_cert(&cert, ca.public_key(), "postgres", at).unwrap();
        }
    }

    #[test]
    fn cert_from_another_ca_is_refused_naming_both() {
        let (_, cert) = minted();
        let other = UserCa::generate(crate::DEFAULT_ALGORITHM).unwrap();
        let err = verify_user_cert(&cert, other.public_key(), "postgres", t0()).unwrap_err();
        assert!(matches!(err, CertError::UntrustedSigner { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains(&other.fingerprint()), "{msg}");
        assert!(msg.contains(&crate::fingerprint(&PublicKey::new(
            cert.signature_key().clone(),
            ""
        ))));
    }

    #[test]
    fn cert_for_another_login_is_refused() {
        let (ca, cert) = minted();
        let err = verify_user_cert(&cert, ca.public_key(), "root", t0()).unwrap_err();
        assert!(matches!(err, CertError::PrincipalNotListed { .. }), "{err}");
        assert!(err.to_string().contains("postgres"), "{err}");
    }

    #[test]
    fn expired_cert_is_refused() {
        let (ca, cert) = minted();
        let at = t0() + TimeDelta::minutes(5);
        let err = verify_user_cert(&cert, ca.public_key(), "postgres", at).unwrap_err();
        assert!(matches!(err, CertError::Expired { .. }), "{err}");
    }

    #[test]
    fn cert_before_its_window_is_refused() {
        let (ca, cert) = minted();
        let at = t0() - TimeDelta::seconds(61);
        let err = verify_user_cert(&cert, ca.public_key(), "postgres", at).unwrap_err();
        assert!(matches!(err, CertError::NotYetValid { .. }), "{err}");
        assert!(err.to_string().contains("clocks"), "{err}");
    }

    #[test]
    fn altered_cert_is_reported_as_altered() {
        let (ca, cert) = minted();
        // Swap the certified key: same CA, same signature, different contents.
        let mut bytes = cert.to_bytes().unwrap();
        let victim = ephemeral_key();
        let old = cert.public_key().ed25519().unwrap().0;
        let new = victim.key_data().ed25519().unwrap().0;
        let at = bytes.windows(old.len()).position(|w| w == old).unwrap();
        bytes[at..at + new.len()].copy_from_slice(&new);
        let forged = Certificate::from_bytes(&bytes).unwrap();
        let err = verify_user_cert(&forged, ca.public_key(), "postgres", t0()).unwrap_err();
        assert_eq!(err, CertError::BadSignature);
    }
}
