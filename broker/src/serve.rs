//! `latch serve`: open the state, start the timer and the SSH server on a bound listener.
//!
//! Takes an already-bound listener and a shutdown future (as mini-redis does), so tests
//! and the binary share one path and tests never fight over fixed ports.

use crate::audit_key::{self, AuditKeyError};
use crate::broker::{Broker, BrokerError, ReplayReport};
use crate::ca_key::{self, CaKeyError};
use crate::config_file::LoadedConfig;
use crate::host_key::{self, HostKeyError};
use crate::proxy::{upstream, DataPlane};
use crate::recording::{self, RecordingStore};
use crate::sessions::{self, SessionRegistry};
use crate::{server, timers};
use policy::session::SessionEnded;
use policy::Event;
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
    #[error("user CA: {0}")]
    CaKey(#[from] CaKeyError),
    #[error("audit key: {0}")]
    AuditKey(#[from] AuditKeyError),
    #[error("ssh server: {0}")]
    Io(#[from] std::io::Error),
}

/// A broker opened and ready to serve.
pub struct Prepared {
    pub broker: Arc<Broker>,
    pub replay: ReplayReport,
    pub host_key: russh::keys::ssh_key::PrivateKey,
    pub host_key_generated: bool,
    pub user_ca: ca::UserCa,
    pub user_ca_generated: bool,
    /// Sessions the log said were open at start (a crash or kill -9): closed in the log.
    pub sessions_closed: usize,
    pub recordings: Arc<RecordingStore>,
    pub audit_key_generated: bool,
}

/// Open state and keys (everything that can fail before accepting connections).
pub fn prepare(config: &LoadedConfig) -> Result<Prepared, ServeError> {
    let (broker, replay) = Broker::open(config)?;
    let (host_key, host_key_generated) = host_key::load_or_generate(&config.state_dir)?;
    let (user_ca, user_ca_generated) = ca_key::load_or_generate(&config.state_dir)?;
    let sessions_closed = close_orphaned_sessions(&broker)?;
    let (audit_key, audit_key_generated) = audit_key::load_or_generate(&config.state_dir)?;
    let recordings = Arc::new(RecordingStore::open(&config.state_dir, audit_key).map_err(
        |source| {
            BrokerError::StateDir {
                path: config
                    .state_dir
                    .join(RecordingStore::DIR)
                    .display()
                    .to_string(),
                source,
            }
        },
    )?);
    Ok(Prepared {
        broker,
        replay,
        host_key,
        host_key_generated,
        user_ca,
        user_ca_generated,
        sessions_closed,
        recordings,
        audit_key_generated,
    })
}

/// Sessions the log shows open belonged to a broker that stopped without recording their
/// end; their sockets died with it. Record that, so the audit trail has no dangling session.
fn close_orphaned_sessions(broker: &Broker) -> Result<usize, BrokerError> {
    let outcome = broker.execute_blocking(policy::state::SYSTEM_ACTOR, |state, _, now| {
        let events = state
            .open_sessions()
            .map(|s| {
                Event::SessionEnded(SessionEnded {
                    id: s.id,
                    cause: "broker_restart".into(),
                    detail: Some(
                        "the broker stopped without closing this session; found open at start"
                            .into(),
                    ),
                    duration_ms: (now - s.started_at).num_milliseconds().max(0) as u64,
                    bytes_in: 0,
                    bytes_out: 0,
                    exit_status: None,
                    cut_ms: None,
                })
            })
            .collect();
        Ok(policy::state::Outcome {
            events,
            notes: vec![],
        })
    })?;
    Ok(outcome.events.len())
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
    if let Ok(addr) = listener.local_addr() {
        crate::hint::set_port(addr.port());
    }
    let config = Arc::new(server::config(prepared.host_key));
    let recordings = Arc::clone(&prepared.recordings);
    let registry = Arc::new(SessionRegistry::new(Arc::clone(recordings.cuts())));
    let leftovers = recording::recover::seal_leftovers(&recordings, &prepared.broker).await;
    if leftovers > 0 {
        tracing::warn!(
            recordings = leftovers,
            "sealed recordings a crash left open, marked incomplete"
        );
    }
    let retention_stop = tokio_util::sync::CancellationToken::new();
    let retention = tokio::spawn(recording::retention::run(
        Arc::clone(&recordings),
        Arc::clone(&prepared.broker),
        retention_stop.clone(),
    ));
    let plane = Arc::new(DataPlane {
        broker: Arc::clone(&prepared.broker),
        registry: Arc::clone(&registry),
        ca: Arc::new(prepared.user_ca),
        client_config: Arc::new(upstream::client_config()),
        recordings: Arc::clone(&recordings),
    });
    let severing_stop = tokio_util::sync::CancellationToken::new();
    let severing = tokio::spawn(sessions::run_severing(
        Arc::clone(&prepared.broker),
        Arc::clone(&registry),
        severing_stop.clone(),
    ));
    let result = server::serve(listener, plane, config, async {
        shutdown.await;
        let _ = stop_tx.send(true);
    })
    .await;
    let _ = stop_tx.send(true);
    let _ = timer.await;
    severing_stop.cancel();
    let _ = severing.await;
    // Sessions were cut at shutdown; give their recorders a moment to seal.
    recordings.drain(std::time::Duration::from_secs(3)).await;
    retention_stop.cancel();
    let _ = retention.await;
    result.map_err(ServeError::from)
}
