//! The SSH server: accepts stock OpenSSH clients, authenticates them by public key, and
//! serves the command interface on session channels.
//!
//! One [`connection::Connection`] per client (the russh handler). The accept loop is ours,
//! not russh's `run_on_socket`, so the broker owns every connection task and can stop them
//! all on shutdown (and, for the data plane, cut one).

mod connection;

use crate::broker::Broker;
use russh::keys::ssh_key::PrivateKey;
use russh::server::Config;
use russh::MethodKind;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// Russh settings for the client-facing side.
pub fn config(host_key: PrivateKey) -> Config {
    Config {
        server_id: russh::SshId::Standard(
            concat!("SSH-2.0-latch_", env!("CARGO_PKG_VERSION")).into(),
        ),
        methods: (&[MethodKind::PublicKey][..]).into(),
        // Constant-time rejection hides which keys are known; OpenSSH's first `none` probe
        // must not pay it, or every login costs a second.
        auth_rejection_time: Duration::from_millis(300),
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: vec![host_key],
        nodelay: true,
        inactivity_timeout: Some(Duration::from_secs(3600)),
        keepalive_interval: Some(Duration::from_secs(30)),
        keepalive_max: 4,
        max_auth_attempts: 8,
        ..Default::default()
    }
}

/// Serve SSH on an already-bound listener until `shutdown` resolves. Tests bind port 0.
pub async fn serve(
    listener: TcpListener,
    broker: Arc<Broker>,
    config: Arc<Config>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    tokio::pin!(shutdown);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (socket, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = socket.set_nodelay(true);
                let handler = connection::Connection::new(Arc::clone(&broker), peer);
                let config = Arc::clone(&config);
                connections.spawn(async move {
                    match russh::server::run_stream(config, socket, handler).await {
                        Ok(session) => {
                            if let Err(e) = session.await {
                                tracing::debug!(%peer, error = %e, "connection ended with error");
                            }
                        }
                        Err(e) => tracing::debug!(%peer, error = %e, "connection setup failed"),
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = &mut shutdown => break,
        }
    }
    connections.shutdown().await;
    Ok(())
}
