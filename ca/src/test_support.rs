//! Fixtures shared by the crate's unit tests.

use crate::request::{CertRequest, Permissions};
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use russh::keys::ssh_key::{Algorithm, PrivateKey, PublicKey};

/// A fixed instant, so expected certificate times can be written down.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 2, 3, 4, 5).unwrap()
}

/// A fresh key standing in for the broker's ephemeral per-connection key.
pub fn ephemeral_key() -> PublicKey {
    PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519)
        .unwrap()
        .public_key()
        .clone()
}

/// A request for `postgres` under grant `g17`, five minutes, terminal only.
pub fn request(key: &PublicKey) -> CertRequest<'_> {
    CertRequest {
        public_key: key,
        principal: "postgres".to_owned(),
        grant: "g17".to_owned(),
        user: "alice".to_owned(),
        session: "s42".to_owned(),
        validity: TimeDelta::minutes(5),
        not_after_cap: None,
        permissions: Permissions {
            pty: true,
            ..Permissions::NONE
        },
        source_address: None,
        serial: 7,
    }
}
