//! # latch-ca: the broker's SSH certificate authority and host-key trust
//!
//! Users never hold target credentials (DESIGN.md, principle 4). For each upstream connection
//! the broker generates an ephemeral key and asks this crate to mint a user certificate for
//! exactly one login, valid for minutes at most, backdated a little for clock skew, whose key id
//! names the grant and the session so the target's `sshd` log joins ours.
//!
//! The crate is pure: it opens no file or socket and never reads the clock. The current time is
//! always an argument (`now`), and writing the CA key to disk (mode 0600) is the broker's job.
//! The only ambient input is randomness, for new keys, certificate nonces and serials.
//!
//! # Layout
//! - [`user_ca`]: [`UserCa`], the internal user CA: generate, load and save its key, print the
//!   line targets trust, mint certificates.
//! - [`request`]: what a certificate is minted for ([`CertRequest`], [`Permissions`]) and the
//!   key id format ([`KeyId`]), validated before anything is signed.
//! - [`verify`]: checking a certificate against a trusted CA ([`verify_user_cert`]); russh does
//!   not check a certificate's CA for us.
//! - [`host_trust`]: [`HostKeyTrust`], whether a target's host key (or host certificate) is the
//!   one we pinned for it.
//! - [`error`]: [`CaError`] for the CA's own operations.
#![forbid(unsafe_code)]

pub mod error;
pub mod host_trust;
pub mod request;
pub mod user_ca;
pub mod verify;

#[cfg(test)]
mod test_support;

pub use error::CaError;
pub use host_trust::{HostKeyTrust, TrustError};
pub use request::{CertRequest, KeyId, Permissions, MAX_CERT_VALIDITY};
pub use user_ca::{random_serial, UserCa, DEFAULT_ALGORITHM};
pub use verify::{verify_user_cert, CertError};

/// The key and certificate types this crate speaks, re-exported so callers name the same
/// `ssh_key` version russh uses.
pub use russh::keys::ssh_key;

/// The wrapper [`UserCa::to_openssh`] returns, so callers need not depend on `zeroize`.
pub use zeroize::Zeroizing;

use russh::keys::ssh_key::{HashAlg, PublicKey};

/// The SHA-256 fingerprint of a public key, as `ssh-keygen -l` prints it (`SHA256:...`).
///
/// This is the form operators compare by eye, so every message naming a key uses it.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}
