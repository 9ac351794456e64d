//! SSH transport preferences for the two legs of a proxied session.
//!
//! russh's default cipher list leaves out `aes128-gcm@openssh.com`. OpenSSH offers it, and
//! some organisations pin `Ciphers aes128-gcm@openssh.com` (it is the FIPS-friendly choice),
//! so without it those clients cannot reach the bastion at all ("no matching cipher").
//! Everything else is russh's default: no CBC, no 3DES, no SHA-1 MACs.

use russh::{cipher, Preferred};
use std::borrow::Cow;

/// Offered to clients (and to targets, where latch is the client). On the client-facing leg
/// the client's order decides; on the broker→target leg latch's order does. AES-GCM leads
/// there: on CPUs with AES instructions it costs the broker far less than ChaCha20-Poly1305
/// (see BENCHMARKING.md), and sshd on the target supports both.
const CIPHERS: &[cipher::Name] = &[
    cipher::AES_256_GCM,
    cipher::AES_128_GCM,
    cipher::CHACHA20_POLY1305,
    cipher::AES_256_CTR,
    cipher::AES_192_CTR,
    cipher::AES_128_CTR,
];

/// The algorithm preferences both legs use.
pub fn preferred() -> Preferred {
    Preferred {
        cipher: Cow::Borrowed(CIPHERS),
        ..Preferred::DEFAULT
    }
}
