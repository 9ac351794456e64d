//! `latch serve`: open the state, start the timer and the SSH server on a bound listener.
//!
//! Takes an already-bound listener and a shutdown future (as mini-redis does), so tests
//! and the binary share one path and tests never fight over fixed ports.

use crate::broker::{Broker, BrokerError, ReplayReport};
use crate::config_file::LoadedConfig;
use crate::host_key::{self, HostKeyError};
use crate::{server, timers};
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error("host key: {0}")]
    HostKey(#[from] HostKeyError),
    #[error("ssh server: {0}")]
    Io(#[from] std::io::Error),
}

/// A broker opened and ready to serve.
pub struct Prepared {
    pub broker: Arc<Broker>,
    pub replay: ReplayReport,
    pub host_key: russh::keys::ssh_key::PrivateKey,
    pub host_key_generated: bool,
}

/// Open state and keys (everything that can fail before accepting connections).
pub fn prepare(config: &LoadedConfig) -> Result<Prepared, ServeError> {
    let (broker, replay) = Broker::open(config)?;
    let (host_key, host_key_generated) = host_key::load_or_generate(&config.state_dir)?;
    Ok(Prepared {
        broker,
        replay,
        host_key,
        host_key_generated,
    })
}

/// Serve until `shutdown` resolves.
pub async fn run(
    prepared: Prepared,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let timer = tokio::spawn(timers::run(
        Arc::clone(&prepared.broker),
        stopped(stop_rx.clone()),
    ));
    let config = Arc::new(server::config(prepared.host_key));
    let result = server::serve(listener, prepared.broker, config, async {
        shutdown.await;
        let _ = stop_tx.send(true);
    })
    .await;
    let _ = stop_tx.send(true);
    let _ = timer.await;
    result.map_err(ServeError::from)
}
