//! Trust in target host keys: is the host the broker connected to the one we configured?
//!
//! The broker connects to targets on the user's behalf, so a wrong host key is not a prompt to
//! click through: it is a refusal, with both fingerprints in the message so an operator can
//! tell a legitimate re-key from an interception.

use crate::verify::{check_cert, CertError};
use chrono::{DateTime, Utc};
use russh::keys::ssh_key::certificate::CertType;
use russh::keys::ssh_key::{Certificate, PublicKey};
use russh::keys::PublicKeyOrCertificate;

/// Why a host key was not trusted, or a trust configuration was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// A configured key line is not an OpenSSH public key.
    #[error("{list} entry {number} ({line:?}) is not an OpenSSH public key ({reason}); give the line from the host's /etc/ssh/ssh_host_*_key.pub, or `ssh-keyscan` output without the host name in front")]
    BadKeyLine {
        /// Which list: `host_keys` or `host_cas`.
        list: &'static str,
        /// 1-based position in that list.
        number: usize,
        /// The line as given (shortened if long).
        line: String,
        /// What the parser reported.
        reason: String,
    },

    /// Neither a pinned key nor a host CA was given, so no host could ever be authenticated.
    #[error("no host key is pinned and no host CA is trusted, so the host cannot be authenticated; add its host_keys (for example from `ssh-keyscan -t ed25519 HOST`)")]
    NoTrustAnchor,

    /// The host presented a key other than the pinned one(s).
    #[error("host {host} presented host key {presented}, which is not pinned for it (pinned: {}); this may be an interception, so the connection is refused. If the host was legitimately re-keyed, update its host_keys in the config; the new key's fingerprint is {presented}", .pinned.join(", "))]
    Mismatch {
        /// The configured host name.
        host: String,
        /// Fingerprint of the key the host presented.
        presented: String,
        /// Fingerprints of the pinned keys.
        pinned: Vec<String>,
    },

    /// The host presented a plain key, but it is trusted only through a host CA.
    #[error("host {host} presented a plain host key {presented}, but it is trusted only through a host CA ({}); configure HostCertificate in the host's sshd_config, or pin this key in its host_keys if it is the host's own", .cas.join(", "))]
    CertificateRequired {
        /// The configured host name.
        host: String,
        /// Fingerprint of the key the host presented.
        presented: String,
        /// Fingerprints of the trusted host CAs.
        cas: Vec<String>,
    },

    /// The host presented a host certificate that was refused.
    #[error("host {host} presented a host certificate that is refused: {source}")]
    HostCertificate {
        /// The configured host name.
        host: String,
        /// Why the certificate was refused.
        #[source]
        source: CertError,
    },
}

/// The keys and host CAs a target's host key is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostKeyTrust {
    pinned: Vec<PublicKey>,
    host_cas: Vec<PublicKey>,
}

/// Long enough to recognise a line in an error, short enough not to drown the message.
const LINE_SHOWN: usize = 60;

impl HostKeyTrust {
    /// Build from the host's pinned OpenSSH public key lines (`ssh-ed25519 AAAA... [comment]`)
    /// and the public key lines of host CAs trusted to certify it. At least one of the two
    /// must be non-empty.
    pub fn new(host_keys: &[String], host_cas: &[String]) -> Result<HostKeyTrust, TrustError> {
        let pinned = parse_lines("host_keys", host_keys)?;
        let host_cas = parse_lines("host_cas", host_cas)?;
        if pinned.is_empty() && host_cas.is_empty() {
            return Err(TrustError::NoTrustAnchor);
        }
        Ok(HostKeyTrust { pinned, host_cas })
    }

    /// The pinned host keys.
    pub fn pinned(&self) -> &[PublicKey] {
        &self.pinned
    }

    /// The trusted host CAs.
    pub fn host_cas(&self) -> &[PublicKey] {
        &self.host_cas
    }

    /// Check a plain host key the host presented: it must be one of the pinned keys.
    /// Comments are ignored; only the key itself counts.
    pub fn check(&self, host_name: &str, presented: &PublicKey) -> Result<(), TrustError> {
        if self.is_pinned(presented) {
            return Ok(());
        }
        let presented = crate::fingerprint(presented);
        if self.pinned.is_empty() {
            return Err(TrustError::CertificateRequired {
                host: host_name.to_owned(),
                presented,
                cas: self.host_cas.iter().map(crate::fingerprint).collect(),
            });
        }
        Err(TrustError::Mismatch {
            host: host_name.to_owned(),
            presented,
            pinned: self.pinned.iter().map(crate::fingerprint).collect(),
        })
    }

    /// Check a host certificate the host presented: a host certificate, signed by a trusted
    /// host CA, listing `host_name` as a principal, valid at `now`, with no critical options.
    ///
    /// `host_name` is whatever name the host's certificate is expected to list; OpenSSH would
    /// use the name the user typed. A certificate for a key that is pinned is accepted on the
    /// strength of the pin, as `ssh` does with a `known_hosts` entry.
    pub fn check_cert(
        &self,
        host_name: &str,
        cert: &Certificate,
        now: DateTime<Utc>,
    ) -> Result<(), TrustError> {
        if self
            .pinned
            .iter()
            .any(|k| k.key_data() == cert.public_key())
        {
            return Ok(());
        }
        check_cert(cert, CertType::Host, &self.host_cas, host_name, now, &[]).map_err(|source| {
            TrustError::HostCertificate {
                host: host_name.to_owned(),
                source,
            }
        })
    }

    /// Check whatever the host presented, as russh's client `check_server_key` hands it over:
    /// a plain key goes through [`check`](Self::check), a certificate through
    /// [`check_cert`](Self::check_cert).
    pub fn check_presented(
        &self,
        host_name: &str,
        presented: &PublicKeyOrCertificate,
        now: DateTime<Utc>,
    ) -> Result<(), TrustError> {
        match presented {
            PublicKeyOrCertificate::PublicKey { key, .. } => self.check(host_name, key),
            PublicKeyOrCertificate::Certificate(cert) => self.check_cert(host_name, cert, now),
        }
    }

    fn is_pinned(&self, key: &PublicKey) -> bool {
        self.pinned.iter().any(|k| k.key_data() == key.key_data())
    }
}

fn parse_lines(list: &'static str, lines: &[String]) -> Result<Vec<PublicKey>, TrustError> {
    lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            PublicKey::from_openssh(line.trim()).map_err(|e| TrustError::BadKeyLine {
                list,
                number: i + 1,
                line: shorten(line),
                reason: e.to_string(),
            })
        })
        .collect()
}

fn shorten(line: &str) -> String {
    match line.char_indices().nth(LINE_SHOWN) {
        Some((cut, _)) => format!("{}...", &line[..cut]),
        None => line.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::t0;
    use chrono::TimeDelta;
    use russh::keys::ssh_key::certificate::Builder;
    use russh::keys::ssh_key::{Algorithm, PrivateKey};

    fn key() -> PrivateKey {
        PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).unwrap()
    }

    fn line(key: &PrivateKey) -> String {
        key.public_key().to_openssh().unwrap()
    }

    fn host_cert(
        ca: &PrivateKey,
        host: &PrivateKey,
        principal: &str,
        kind: CertType,
    ) -> Certificate {
        let start = t0().timestamp() as u64 - 3600;
        let mut b = Builder::new_with_random_nonce(
            &mut rand::rng(),
            host.public_key().key_data().clone(),
            start,
            start + 7200,
        )
        .unwrap();
        b.cert_type(kind).unwrap();
        b.key_id("host").unwrap();
        b.valid_principal(principal).unwrap();
        b.sign(ca).unwrap()
    }

    #[test]
    fn pinned_key_is_accepted_whatever_its_comment() {
        let host = key();
        let trust = HostKeyTrust::new(&[format!("{} root@db-01", line(&host))], &[]).unwrap();
        let mut presented = host.public_key().clone();
        presented.set_comment("something else");
        trust.check("db-01", &presented).unwrap();
    }

    #[test]
    fn other_key_is_refused_with_both_fingerprints_and_what_to_do() {
        let (host, other, also_pinned) = (key(), key(), key());
        let trust = HostKeyTrust::new(&[line(&host), line(&also_pinned)], &[]).unwrap();
        let err = trust.check("db-01", other.public_key()).unwrap_err();
        assert!(matches!(err, TrustError::Mismatch { .. }), "{err}");
        let msg = err.to_string();
        let presented = crate::fingerprint(other.public_key());
        assert!(msg.contains("db-01"), "{msg}");
        assert!(
            msg.contains(&crate::fingerprint(host.public_key())),
            "{msg}"
        );
        assert!(
            msg.contains(&crate::fingerprint(also_pinned.public_key())),
            "{msg}"
        );
        assert!(
            msg.contains(&format!(
                "update its host_keys in the config; the new key's fingerprint is {presented}"
            )),
            "{msg}"
        );
    }

    #[test]
    fn bad_line_is_named_by_its_position() {
        let good = line(&key());
        let err = HostKeyTrust::new(&[good, "ssh-ed25519 not-base64".to_owned()], &[]).unwrap_err();
        assert!(
            matches!(
                err,
                TrustError::BadKeyLine {
                    list: "host_keys",
                    number: 2,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("not-base64"), "{err}");
        let err = HostKeyTrust::new(&[], &["garbage".to_owned()]).unwrap_err();
        assert!(matches!(
            err,
            TrustError::BadKeyLine {
                list: "host_cas",
                number: 1,
                ..
            }
        ));
    }

    #[test]
    fn no_pin_and_no_ca_trusts_nothing() {
        assert_eq!(HostKeyTrust::new(&[], &[]), Err(TrustError::NoTrustAnchor));
    }

    #[test]
    fn host_cert_from_trusted_ca_is_accepted_for_its_host_only() {
        let (ca, host) = (key(), key());
        let trust = HostKeyTrust::new(&[], &[line(&ca)]).unwrap();
        let cert = host_cert(&ca, &host, "db-01", CertType::Host);
        trust.check_cert("db-01", &cert, t0()).unwrap();

        let err = trust.check_cert("db-02", &cert, t0()).unwrap_err();
        assert!(matches!(
            err,
            TrustError::HostCertificate {
                source: CertError::PrincipalNotListed { .. },
                ..
            }
        ));
        let err = trust
            .check_cert("db-01", &cert, t0() + TimeDelta::hours(2))
            .unwrap_err();
        assert!(matches!(
            err,
            TrustError::HostCertificate {
                source: CertError::Expired { .. },
                ..
            }
        ));
        // The plain key alone is not enough when only the CA is trusted.
        let err = trust.check("db-01", host.public_key()).unwrap_err();
        assert!(
            matches!(err, TrustError::CertificateRequired { .. }),
            "{err}"
        );
    }

    #[test]
    fn user_cert_or_untrusted_ca_is_not_a_host_cert() {
        let (ca, other_ca, host) = (key(), key(), key());
        let trust = HostKeyTrust::new(&[], &[line(&ca)]).unwrap();
        let user = host_cert(&ca, &host, "db-01", CertType::User);
        assert!(matches!(
            trust.check_cert("db-01", &user, t0()),
            Err(TrustError::HostCertificate {
                source: CertError::WrongType { .. },
                ..
            })
        ));
        let foreign = host_cert(&other_ca, &host, "db-01", CertType::Host);
        assert!(matches!(
            trust.check_cert("db-01", &foreign, t0()),
            Err(TrustError::HostCertificate {
                source: CertError::UntrustedSigner { .. },
                ..
            })
        ));
    }

    #[test]
    fn what_russh_presents_is_dispatched_to_the_right_check() {
        let (ca, host, other) = (key(), key(), key());
        let trust = HostKeyTrust::new(&[line(&host)], &[line(&ca)]).unwrap();
        let plain = PublicKeyOrCertificate::from(host.public_key().clone());
        trust.check_presented("db-01", &plain, t0()).unwrap();
        let wrong = PublicKeyOrCertificate::from(other.public_key().clone());
        assert!(trust.check_presented("db-01", &wrong, t0()).is_err());
        let cert = PublicKeyOrCertificate::from(host_cert(&ca, &other, "db-01", CertType::Host));
        trust.check_presented("db-01", &cert, t0()).unwrap();
    }

    #[test]
    fn cert_for_a_pinned_key_is_accepted_on_the_pin() {
        let (other_ca, host) = (key(), key());
        let trust = HostKeyTrust::new(&[line(&host)], &[]).unwrap();
        let cert = host_cert(&other_ca, &host, "anything", CertType::Host);
        trust.check_cert("db-01", &cert, t0()).unwrap();
    }
}
