//! Errors from the CA's own operations: loading or creating its key, and minting certificates.
//!
//! Every message says what to do next, because most of them end up in front of an operator
//! (a bad CA key file) or in the broker's log next to a refused connection (a bad request).

use russh::keys::ssh_key;

/// Why the CA could not do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    /// The random source or the key library failed to produce a new CA key.
    #[error("cannot generate a CA key: {0}; this is a fault in the platform's random source or key library, not in the config")]
    Generate(#[source] ssh_key::Error),

    /// The CA key is of a type that cannot sign certificates targets accept.
    #[error("CA key algorithm {algorithm} is not supported; use an Ed25519 key (`ssh-keygen -t ed25519`) or ECDSA")]
    UnsupportedAlgorithm {
        /// The algorithm the key has.
        algorithm: String,
    },

    /// The bytes given as the CA key are not an OpenSSH private key.
    #[error("the CA key is not an OpenSSH private key ({0}); if it is in PEM or PKCS#8 form, convert it with `ssh-keygen -p -f FILE`, otherwise generate a new one with `latch init`")]
    Parse(#[source] ssh_key::Error),

    /// The CA key is protected by a passphrase, which the broker has no way to type.
    #[error("the CA key is encrypted with a passphrase; the broker must load it unattended, so remove the passphrase with `ssh-keygen -p -N '' -f FILE` and keep the file mode 0600")]
    Encrypted,

    /// The CA key or a certificate could not be serialized.
    #[error("cannot encode {what}: {source}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// What the key library reported.
        #[source]
        source: ssh_key::Error,
    },

    /// The requested lifetime is zero, negative or longer than the CA allows.
    #[error("certificate validity of {requested_secs}s is not allowed; ask for more than 0s and at most {max_secs}s (certificates are per connection, not per grant)")]
    Validity {
        /// The lifetime asked for, in seconds.
        requested_secs: i64,
        /// The longest lifetime the CA mints, in seconds.
        max_secs: i64,
    },

    /// The grant the certificate would be minted under has already ended.
    #[error("the grant ended at {cap} (now {now}); a certificate cannot outlive its grant, so request access again")]
    GrantEnded {
        /// When the grant ended (RFC 3339).
        cap: String,
        /// The time the certificate was asked for (RFC 3339).
        now: String,
    },

    /// `now` cannot be written as an SSH certificate time (before 1970 or absurdly far ahead).
    #[error(
        "time {0} cannot be written in an SSH certificate; check the clock the broker passes in"
    )]
    Time(String),

    /// The login the certificate would be valid for is not a plain user name.
    #[error("login principal {principal:?} is not allowed: {reason}; a certificate names exactly one plain login")]
    Principal {
        /// The principal as given.
        principal: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A component of the key id (grant, user, session) would make the key id ambiguous or
    /// unprintable in the target's log.
    #[error("{field} {value:?} cannot go in a certificate key id: {reason}")]
    KeyIdPart {
        /// Which component: `grant`, `user` or `session`.
        field: &'static str,
        /// The value as given.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// An entry for the `source-address` critical option is not an address or CIDR block.
    #[error("source address {value:?} is not allowed: {reason}; give IP addresses or CIDR blocks such as 10.0.0.0/8, or no source restriction at all")]
    SourceAddress {
        /// The entry as given (empty when the list itself was empty).
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// Signing the certificate failed.
    #[error("cannot sign the certificate: {0}; the CA key may be damaged, check it with `ssh-keygen -y -f FILE`")]
    Sign(#[source] ssh_key::Error),
}
