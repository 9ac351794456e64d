//! The broker's SSH client leg: connect to a target's stock `sshd`, verify its host key
//! against what the config pinned, and log in with a certificate minted for this one
//! connection.

use ca::{CertRequest, HostKeyTrust, TrustError, UserCa};
use chrono::{DateTime, Utc};
use russh::client;
use russh::keys::ssh_key::{Algorithm, Certificate, PrivateKey, PublicKey};
use russh::keys::PublicKeyOrCertificate;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use super::killable::Killable;

/// How long a target may take to accept TCP, finish key exchange and authenticate.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamError {
    /// The target presented a host key the config does not pin: possibly a
    /// man-in-the-middle, possibly a re-keyed host.
    #[error("{0}")]
    HostKey(TrustError),
    #[error("host {host} has no usable host_keys in the config ({source}); an admin must pin its key (latch hosts scan) before anyone can connect")]
    NoTrust { host: String, source: TrustError },
    #[error("cannot reach {host} at {address}: {reason}")]
    Connect {
        host: String,
        address: String,
        reason: String,
    },
    #[error("{host} refused latch's certificate for login {login:?}: does its sshd trust the latch CA (TrustedUserCAKeys) and does user {login:?} exist there?")]
    AuthRefused { host: String, login: String },
    #[error("could not mint a certificate: {0}")]
    Mint(#[from] ca::CaError),
    #[error("could not create a connection key: {0}")]
    Key(String),
}

impl UpstreamError {
    /// A short tag for the audit log.
    pub fn kind(&self) -> &'static str {
        match self {
            UpstreamError::HostKey(_) => "host_key_mismatch",
            UpstreamError::NoTrust { .. } => "host_key_not_pinned",
            UpstreamError::Connect { .. } => "unreachable",
            UpstreamError::AuthRefused { .. } => "target_refused_certificate",
            UpstreamError::Mint(_) | UpstreamError::Key(_) => "certificate",
        }
    }
}

/// Where channels the target opens back to us go: agent and X11 channels are bridged to the
/// client when the role allows them; everything else a target might open is refused.
pub struct Bridge {
    /// The client connection, to open the matching channel on.
    pub client: russh::server::Handle,
    /// The session's stop token: bridges end with the session.
    pub stop: CancellationToken,
    pub agent: bool,
    pub x11: bool,
}

/// The russh client handler: verifies the target's host key, and bridges the channels the
/// target opens back (agent, X11) when the role allows them.
pub struct TargetHandler {
    host: String,
    trust: HostKeyTrust,
    bridge: Bridge,
    /// Why the host key was refused, so the user's message can say so (russh itself reports
    /// only that the key was not accepted).
    refusal: Arc<Mutex<Option<TrustError>>>,
}

/// Copy both ways between a target-opened channel and its client-side twin until either
/// ends or the session stops.
fn splice(
    up: russh::Channel<client::Msg>,
    down: impl std::future::Future<Output = Result<russh::Channel<russh::server::Msg>, russh::Error>>
        + Send
        + 'static,
    stop: CancellationToken,
) {
    tokio::spawn(async move {
        let Ok(down) = down.await else {
            let _ = up.close().await;
            return;
        };
        let mut up = up.into_stream();
        let mut down = down.into_stream();
        tokio::select! {
            _ = tokio::io::copy_bidirectional(&mut up, &mut down) => {}
            _ = stop.cancelled() => {}
        }
    });
}

const PROHIBITED: russh::ChannelOpenFailure = russh::ChannelOpenFailure::AdministrativelyProhibited;

impl client::Handler for TargetHandler {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        match self.trust.check_presented(&self.host, key, Utc::now()) {
            Ok(()) => Ok(true),
            Err(e) => {
                if let Ok(mut r) = self.refusal.lock() {
                    *r = Some(e);
                }
                Ok(false)
            }
        }
    }

    async fn server_channel_open_agent_forward(
        &mut self,
        channel: russh::Channel<client::Msg>,
        reply: client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        if !self.bridge.agent {
            reply.reject(PROHIBITED).await;
            return Ok(());
        }
        reply.accept().await;
        let client = self.bridge.client.clone();
        splice(
            channel,
            async move { client.channel_open_agent().await },
            self.bridge.stop.clone(),
        );
        Ok(())
    }

    async fn server_channel_open_x11(
        &mut self,
        channel: russh::Channel<client::Msg>,
        originator_address: &str,
        originator_port: u32,
        reply: client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        if !self.bridge.x11 {
            reply.reject(PROHIBITED).await;
            return Ok(());
        }
        reply.accept().await;
        let client = self.bridge.client.clone();
        let origin = originator_address.to_string();
        splice(
            channel,
            async move { client.channel_open_x11(origin, originator_port).await },
            self.bridge.stop.clone(),
        );
        Ok(())
    }

    // Nothing else a target opens toward us is wanted: russh's defaults would accept and
    // silently drop these.

    #[allow(clippy::too_many_arguments)]
    async fn server_channel_open_forwarded_tcpip(
        &mut self,
        _channel: russh::Channel<client::Msg>,
        _connected_address: &str,
        _connected_port: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        reply.reject(PROHIBITED).await;
        Ok(())
    }

    async fn server_channel_open_forwarded_streamlocal(
        &mut self,
        _channel: russh::Channel<client::Msg>,
        _socket_path: &str,
        reply: client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        reply.reject(PROHIBITED).await;
        Ok(())
    }

    async fn server_channel_open_session(
        &mut self,
        _channel: russh::Channel<client::Msg>,
        reply: client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        reply.reject(PROHIBITED).await;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn server_channel_open_direct_tcpip(
        &mut self,
        _channel: russh::Channel<client::Msg>,
        _host_to_connect: &str,
        _port_to_connect: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        reply.reject(PROHIBITED).await;
        Ok(())
    }
}

/// What one upstream connection is for.
pub struct Target<'a> {
    pub host: &'a str,
    pub address: &'a str,
    pub host_keys: &'a [String],
    pub host_cas: &'a [String],
    pub login: &'a str,
}

/// An authenticated connection to a target.
pub struct Connected {
    pub handle: client::Handle<TargetHandler>,
    pub cert: Certificate,
}

pub fn client_config() -> client::Config {
    client::Config {
        nodelay: true,
        // No inactivity timeout: the client side decides when a session is dead, and an idle
        // but live shell must not be dropped by the broker.
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(60)),
        preferred: crate::transport::preferred(),
        ..Default::default()
    }
}

/// Connect, verify the host key, mint a certificate for a fresh key, authenticate.
pub async fn connect(
    config: Arc<client::Config>,
    target: &Target<'_>,
    user_ca: &UserCa,
    cert_for: impl FnOnce(&PublicKey) -> CertRequest<'_>,
    now: DateTime<Utc>,
    kill: CancellationToken,
    bridge: Bridge,
) -> Result<Connected, UpstreamError> {
    let trust = HostKeyTrust::new(target.host_keys, target.host_cas).map_err(|source| {
        UpstreamError::NoTrust {
            host: target.host.to_string(),
            source,
        }
    })?;
    // A fresh key per upstream connection: nothing a target sees is reusable elsewhere.
    let key = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519)
        .map_err(|e| UpstreamError::Key(e.to_string()))?;
    let cert = user_ca.mint_user_cert(&cert_for(key.public_key()), now)?;

    let refusal = Arc::new(Mutex::new(None));
    let handler = TargetHandler {
        host: target.host.to_string(),
        trust,
        bridge,
        refusal: Arc::clone(&refusal),
    };
    let connect_err = |reason: String| UpstreamError::Connect {
        host: target.host.to_string(),
        address: target.address.to_string(),
        reason,
    };
    let attempt = async {
        let socket = tokio::net::TcpStream::connect(target.address)
            .await
            .map_err(|e| connect_err(e.to_string()))?;
        let _ = socket.set_nodelay(true);
        let socket = Killable::new(socket, kill);
        let mut handle = match client::connect_stream(config, socket, handler).await {
            Ok(h) => h,
            Err(e) => {
                if let Some(t) = refusal.lock().ok().and_then(|mut r| r.take()) {
                    return Err(UpstreamError::HostKey(t));
                }
                return Err(connect_err(e.to_string()));
            }
        };
        let auth = handle
            .authenticate_openssh_cert(target.login, Arc::new(key), cert.clone())
            .await
            .map_err(|e| connect_err(e.to_string()))?;
        match auth {
            client::AuthResult::Success => Ok(Connected { handle, cert }),
            _ => Err(UpstreamError::AuthRefused {
                host: target.host.to_string(),
                login: target.login.to_string(),
            }),
        }
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
        Ok(r) => r,
        Err(_) => Err(connect_err(format!(
            "no answer within {}s",
            CONNECT_TIMEOUT.as_secs()
        ))),
    }
}
