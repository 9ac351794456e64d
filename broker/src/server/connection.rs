//! One client connection: authentication, then session channels running commands.
//!
//! The russh handler is kept thin: it authenticates, records per-channel facts (pty or
//! not), and hands each command to a task of its own that answers through the session
//! handle, so a slow command never stalls the connection's other channels.

use crate::broker::Broker;
use crate::commands::{self, Invocation};
use policy::Event;
use russh::keys::ssh_key::{HashAlg, PublicKey};
use russh::server::{Auth, Handle, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, ChannelOpenFailure};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error(transparent)]
    Ssh(#[from] russh::Error),
}

/// What we know about one session channel.
#[derive(Debug, Default, Clone)]
struct ChannelInfo {
    /// A pty was requested: output needs CRLF line endings.
    pty: bool,
    /// A shell, exec or subsystem was already started: a second one is refused.
    started: bool,
}

pub struct Connection {
    broker: Arc<Broker>,
    peer: SocketAddr,
    /// The latch user, once authenticated.
    user: Option<String>,
    /// The SSH login name as sent; `LOGIN@HOST` selects a target (data plane).
    login: String,
    /// Fingerprints of unknown keys already audited on this connection, so a client
    /// offering the same key twice writes one event, not two.
    audited_rejections: HashSet<String>,
    channels: HashMap<ChannelId, ChannelInfo>,
}

impl Connection {
    pub fn new(broker: Arc<Broker>, peer: SocketAddr) -> Connection {
        Connection {
            broker,
            peer,
            user: None,
            login: String::new(),
            audited_rejections: HashSet::new(),
            channels: HashMap::new(),
        }
    }

    fn user_for(&self, key: &PublicKey) -> Option<String> {
        let canonical = key.to_openssh().ok()?;
        // `to_openssh` includes the key's comment, which is not part of identity.
        let canonical = canonical.split(' ').take(2).collect::<Vec<_>>().join(" ");
        self.broker
            .settings()
            .user_by_key(&canonical)
            .map(|u| u.name.clone())
    }

    async fn audit_rejection(&mut self, user: &str, key: &PublicKey) {
        let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
        if !self.audited_rejections.insert(fingerprint.clone()) {
            return;
        }
        tracing::info!(peer = %self.peer, %fingerprint, login = user, "refused unknown key");
        let event = Event::AuthRejected {
            fingerprint,
            source: self.peer.to_string(),
            login: user.to_string(),
        };
        if let Err(e) = self
            .broker
            .audit(policy::state::SYSTEM_ACTOR.to_string(), event)
            .await
        {
            tracing::error!(error = %e, "could not audit a refused key");
        }
    }

    /// Start `line` (a command, or empty for the dashboard) on `channel`.
    fn start(
        &mut self,
        channel: ChannelId,
        line: String,
        session: &mut Session,
    ) -> Result<(), ConnectionError> {
        let Some(user) = self.user.clone() else {
            session.channel_failure(channel)?;
            return Ok(());
        };
        let info = self.channels.entry(channel).or_default();
        if info.started {
            session.channel_failure(channel)?;
            return Ok(());
        }
        info.started = true;
        let pty = info.pty;
        session.channel_success(channel)?;
        let handle = session.handle();
        let broker = Arc::clone(&self.broker);
        let invocation = Invocation {
            user,
            line,
            login: self.login.clone(),
            peer: self.peer,
        };
        tokio::spawn(async move {
            let output = commands::run(&broker, invocation).await;
            reply(&handle, channel, pty, output).await;
        });
        Ok(())
    }
}

/// Write a command's output, exit status, EOF and close. Errors mean the client went away.
async fn reply(handle: &Handle, channel: ChannelId, pty: bool, output: commands::Output) {
    let fix = |s: String| {
        if pty {
            s.replace("\r\n", "\n").replace('\n', "\r\n")
        } else {
            s
        }
    };
    if !output.stdout.is_empty() {
        let _ = handle.data(channel, fix(output.stdout).into_bytes()).await;
    }
    if !output.stderr.is_empty() {
        let _ = handle
            .extended_data(channel, 1, fix(output.stderr).into_bytes())
            .await;
    }
    let _ = handle.exit_status_request(channel, output.status).await;
    let _ = handle.eof(channel).await;
    let _ = handle.close(channel).await;
}

impl russh::server::Handler for Connection {
    type Error = ConnectionError;

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        if self.user_for(offer.public_key).is_some() {
            Ok(Auth::Accept)
        } else {
            self.audit_rejection(user, offer.public_key).await;
            Ok(Auth::reject())
        }
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        match self.user_for(key.public_key) {
            Some(name) => {
                tracing::info!(peer = %self.peer, user = %name, login = user, "authenticated");
                self.user = Some(name);
                self.login = user.to_string();
                Ok(Auth::Accept)
            }
            None => {
                self.audit_rejection(user, key.public_key).await;
                Ok(Auth::reject())
            }
        }
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Commands read no input; the channel object is dropped so unread client data can
        // never fill its queue and stall the connection.
        self.channels.insert(channel.id(), ChannelInfo::default());
        drop(channel);
        reply.accept().await;
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        _channel: Channel<Msg>,
        _host_to_connect: &str,
        _port_to_connect: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        reply
            .reject(ChannelOpenFailure::AdministrativelyProhibited)
            .await;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.entry(channel).or_default().pty = true;
        session.channel_success(channel)?;
        Ok(())
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        _name: &str,
        _value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // The command interface takes no environment; say so rather than pretend.
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.start(channel, String::new(), session)
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.start(channel, String::from_utf8_lossy(data).into_owned(), session)
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        _name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn agent_request(
        &mut self,
        _channel: ChannelId,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        // russh answers `false` with a failure reply.
        Ok(false)
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single_connection: bool,
        _protocol: &str,
        _cookie: &str,
        _screen: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.remove(&channel);
        Ok(())
    }
}
