//! The SSH server: accepts stock OpenSSH clients, authenticates them by public key, and
//! serves the command interface on session channels.
//!
//! One [`connection::Connection`] per client (the russh handler). The accept loop is ours,
//! not russh's `run_on_socket`, so the broker owns every connection task and can stop them
//! all on shutdown (and, for the data plane, cut one).

mod connection;

use crate::proxy::killable::Killable;
use crate::proxy::{DataPlane, SessionSlot};
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
        preferred: crate::transport::preferred(),
        ..Default::default()
    }
}

/// Serve SSH on an already-bound listener until `shutdown` resolves. Tests bind port 0.
pub async fn serve(
    listener: TcpListener,
    plane: Arc<DataPlane>,
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
                // One token fails both sockets of this connection (client and, when
                // proxying, target): the kill switch and the end of the connection use it.
                let kill = tokio_util::sync::CancellationToken::new();
                let slot = Arc::new(SessionSlot::default());
                let handler = connection::Connection::new(Arc::clone(&plane), peer, kill.clone(), Arc::clone(&slot));
                let config = Arc::clone(&config);
                let plane = Arc::clone(&plane);
                connections.spawn(async move {
                    let stream = Killable::new(socket, kill.clone());
                    match russh::server::run_stream(config, stream, handler).await {
                        Ok(session) => {
                            if let Err(e) = session.await {
                                tracing::debug!(%peer, error = %e, "connection ended with error");
                            }
                        }
                        Err(e) => tracing::debug!(%peer, error = %e, "connection setup failed"),
                    }
                    // The client socket is closed; make sure the target's is too, then
                    // record how the session ended.
                    kill.cancel();
                    if let Some(live) = slot.take() {
                        let exit = slot.exit_status.lock().ok().and_then(|e| *e);
                        plane.record_end(&live, exit).await;
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = &mut shutdown => break,
        }
    }
    // Cut proxied sessions with a line saying why, give connections a moment to record
    // their ends, then stop whatever is left.
    plane.registry.cut_where(
        |_| true,
        "broker_shutdown",
        |_| "the latch broker is shutting down. This session is closed.".to_string(),
    );
    let drain = async { while connections.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
    connections.shutdown().await;
    plane.registry.connections_gone();
    Ok(())
}
