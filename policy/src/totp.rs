//! RFC 6238 TOTP (HMAC-SHA1, 6 digits, 30 s steps), for break-glass.

use chrono::{DateTime, Utc};

/// Decode an RFC 4648 base32 secret (case-insensitive, padding and spaces ignored).
pub fn decode_secret(base32: &str) -> Result<Vec<u8>, String> {
    todo!()
}

/// The 6-digit code for the 30-second step containing `now`.
pub fn code_at(secret: &[u8], now: DateTime<Utc>) -> String {
    todo!()
}

/// Accept the code for `now`'s step or one step either side (clock skew).
pub fn verify(secret: &[u8], code: &str, now: DateTime<Utc>) -> bool {
    todo!()
}
