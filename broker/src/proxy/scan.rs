//! `latch hosts scan`: fetch a target's host key so an admin can pin it.
//!
//! Trust on first use is exactly what pinning avoids, so this only *shows* the key and its
//! fingerprint; the admin compares it with the host's own before putting it in the config.

use russh::client;
use russh::keys::ssh_key::PublicKey;
use russh::keys::PublicKeyOrCertificate;
use std::sync::{Arc, Mutex};

struct Capture(Arc<Mutex<Option<PublicKey>>>);

impl client::Handler for Capture {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let k = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.clone(),
            PublicKeyOrCertificate::Certificate(c) => c.public_key().clone().into(),
        };
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(k);
        }
        // Refuse: we only wanted the key, not a session.
        Ok(false)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("cannot reach {0}: {1}")]
    Connect(String, String),
    #[error("{0} did not present a host key")]
    NoKey(String),
}

pub async fn host_key(address: &str) -> Result<PublicKey, ScanError> {
    let slot = Arc::new(Mutex::new(None));
    let config = Arc::new(client::Config::default());
    let attempt = client::connect(config, address, Capture(Arc::clone(&slot)));
    match tokio::time::timeout(std::time::Duration::from_secs(10), attempt).await {
        Err(_) => {
            return Err(ScanError::Connect(
                address.into(),
                "no answer within 10s".into(),
            ))
        }
        Ok(Err(e)) if slot.lock().ok().and_then(|s| s.clone()).is_none() => {
            return Err(ScanError::Connect(address.into(), e.to_string()))
        }
        _ => {}
    }
    let key = slot.lock().ok().and_then(|mut s| s.take());
    key.ok_or_else(|| ScanError::NoKey(address.into()))
}
