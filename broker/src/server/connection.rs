//! One client connection: authentication, then either the command interface or a proxied
//! session to `LOGIN@HOST`.
//!
//! The russh handler is kept thin. In command mode it hands each command to a task of its
//! own; in proxy mode it forwards every channel event to the [`ProxySession`], which owns the
//! upstream connection and the relay tasks.

use crate::commands::{self, Invocation};
use crate::proxy::{self, DataPlane, ProxySession, SessionSlot, TargetSpec};
use policy::Event;
use russh::keys::ssh_key::{HashAlg, PublicKey};
use russh::server::{Auth, Handle, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, ChannelOpenFailure};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error(transparent)]
    Ssh(#[from] russh::Error),
}

/// What we know about one command-mode session channel.
#[derive(Debug, Default, Clone)]
struct ChannelInfo {
    /// A pty was requested: output needs CRLF line endings.
    pty: bool,
    /// A shell, exec or subsystem was already started: a second one is refused.
    started: bool,
}

/// The proxy side of a connection for `LOGIN@HOST`.
enum Proxy {
    /// Not decided yet (no channel opened).
    Pending(TargetSpec),
    /// Relaying.
    Open(Box<ProxySession>),
    /// Refused: every channel gets this line and exit status 1.
    Refused(String),
}

pub struct Connection {
    plane: Arc<DataPlane>,
    peer: SocketAddr,
    /// The latch user, once authenticated.
    user: Option<String>,
    /// The SSH login name as sent; `LOGIN@HOST` selects a target.
    login: String,
    /// Fingerprints of unknown keys already audited on this connection, so a client
    /// offering the same key twice writes one event, not two.
    audited_rejections: HashSet<String>,
    channels: HashMap<ChannelId, ChannelInfo>,
    proxy: Option<Proxy>,
    /// Fails both sockets of this connection (see `proxy::killable`).
    kill: CancellationToken,
    slot: Arc<SessionSlot>,
}

impl Connection {
    pub fn new(
        plane: Arc<DataPlane>,
        peer: SocketAddr,
        kill: CancellationToken,
        slot: Arc<SessionSlot>,
    ) -> Connection {
        Connection {
            plane,
            peer,
            user: None,
            login: String::new(),
            audited_rejections: HashSet::new(),
            channels: HashMap::new(),
            proxy: None,
            kill,
            slot,
        }
    }

    fn user_for(&self, key: &PublicKey) -> Option<String> {
        let canonical = key.to_openssh().ok()?;
        // `to_openssh` includes the key's comment, which is not part of identity.
        let canonical = canonical.split(' ').take(2).collect::<Vec<_>>().join(" ");
        self.plane
            .broker
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
            .plane
            .broker
            .audit(policy::state::SYSTEM_ACTOR.to_string(), event)
            .await
        {
            tracing::error!(error = %e, "could not audit a refused key");
        }
    }

    /// Start `line` (a command, or empty for the dashboard) on a command-mode channel.
    fn start_command(
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
        let plane = Arc::clone(&self.plane);
        let invocation = Invocation {
            user,
            line,
            login: self.login.clone(),
            peer: self.peer,
        };
        tokio::spawn(async move {
            let output = commands::run(&plane, invocation).await;
            reply(&handle, channel, pty, output).await;
        });
        Ok(())
    }

    /// Decide and connect on the first channel of a proxied connection.
    async fn ensure_proxy(&mut self, client: Handle) {
        let Some(Proxy::Pending(target)) = &self.proxy else {
            return;
        };
        let target = target.clone();
        let Some(user) = self.user.clone() else {
            return;
        };
        let opened = self
            .plane
            .open(
                &user,
                &target,
                self.peer,
                self.kill.clone(),
                &self.slot,
                client,
            )
            .await;
        self.proxy = Some(match opened {
            Ok(s) => Proxy::Open(Box::new(s)),
            Err(line) => Proxy::Refused(line),
        });
    }

    fn open_session(&mut self) -> Option<&mut ProxySession> {
        match self.proxy.as_mut() {
            Some(Proxy::Open(s)) => Some(s),
            _ => None,
        }
    }

    fn refusal(&self) -> Option<String> {
        match &self.proxy {
            Some(Proxy::Refused(line)) => Some(line.clone()),
            _ => None,
        }
    }

    fn is_proxy(&self) -> bool {
        self.proxy.is_some()
    }

    /// Answer a shell/exec/subsystem on a refused proxied channel: say why, exit 1.
    fn refuse_channel(
        &mut self,
        channel: ChannelId,
        line: String,
        session: &mut Session,
    ) -> Result<(), ConnectionError> {
        session.channel_success(channel)?;
        let handle = session.handle();
        let pty = self.channels.get(&channel).is_some_and(|c| c.pty);
        tokio::spawn(async move {
            let output = commands::Output {
                stdout: String::new(),
                stderr: format!("latch: {line}\n"),
                status: 1,
                ..Default::default()
            };
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
    for (delay, bytes) in output.playback {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if handle.data(channel, bytes).await.is_err() {
            return;
        }
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
                self.proxy = match TargetSpec::parse(user) {
                    None => None,
                    Some(Ok(t)) => Some(Proxy::Pending(t)),
                    Some(Err(line)) => Some(Proxy::Refused(line)),
                };
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
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.insert(channel.id(), ChannelInfo::default());
        if !self.is_proxy() {
            // Commands read no input; dropping the channel object means unread client data
            // can never fill its queue and stall the connection.
            drop(channel);
            reply.accept().await;
            return Ok(());
        }
        let handle = session.handle();
        self.ensure_proxy(handle.clone()).await;
        match self.open_session() {
            Some(p) => match p.open_channel(channel, handle, None).await {
                Ok(()) => reply.accept().await,
                Err(e) => {
                    tracing::info!(error = %e, "target refused a channel");
                    reply.reject(ChannelOpenFailure::ConnectFailed).await;
                }
            },
            None => {
                drop(channel);
                reply.accept().await;
            }
        }
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host_to_connect: &str,
        port_to_connect: u32,
        originator_address: &str,
        originator_port: u32,
        reply: russh::server::ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if !self.is_proxy() {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        }
        let handle = session.handle();
        self.ensure_proxy(handle.clone()).await;
        let Some(p) = self.open_session() else {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        if !p.role().port_forwarding {
            tracing::info!(session = %p.live.id, to = %format!("{host_to_connect}:{port_to_connect}"), "port forwarding refused by role");
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        }
        let fwd = Some((
            host_to_connect.to_string(),
            port_to_connect,
            originator_address.to_string(),
            originator_port,
        ));
        match p.open_channel(channel, handle, fwd).await {
            Ok(()) => reply.accept().await,
            Err(_) => reply.reject(ChannelOpenFailure::ConnectFailed).await,
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn pty_request(
        &mut self,
        channel: ChannelId,
        term: &str,
        col_width: u32,
        row_height: u32,
        pix_width: u32,
        pix_height: u32,
        modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.entry(channel).or_default().pty = true;
        let ok = match self.open_session() {
            Some(p) if p.has_channel(channel) => {
                p.pty(
                    channel, term, col_width, row_height, pix_width, pix_height, modes,
                )
                .await
            }
            _ => true,
        };
        if ok {
            session.channel_success(channel)?;
        } else {
            session.channel_failure(channel)?;
        }
        Ok(())
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let ok = match self.open_session() {
            Some(p) if proxy::env_allowed(name) => p.env(channel, name, value).await,
            _ => false,
        };
        if ok {
            session.channel_success(channel)?;
        } else {
            session.channel_failure(channel)?;
        }
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if !self.is_proxy() {
            return self.start_command(channel, String::new(), session);
        }
        if let Some(line) = self.refusal() {
            return self.refuse_channel(channel, line, session);
        }
        let ok = match self.open_session() {
            Some(p) => p.shell(channel).await,
            None => false,
        };
        answer(session, channel, ok)
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if !self.is_proxy() {
            return self.start_command(
                channel,
                String::from_utf8_lossy(data).into_owned(),
                session,
            );
        }
        if let Some(line) = self.refusal() {
            return self.refuse_channel(channel, line, session);
        }
        let ok = match self.open_session() {
            Some(p) => {
                // `sftp = false` covers every file-transfer tool, not only the sftp
                // subsystem: scp and rsync run as commands.
                let command = String::from_utf8_lossy(data);
                match recorder::manifest::file_transfer_tool(&command) {
                    Some(tool) if !p.role().sftp => {
                        let line = format!(
                            "file transfer ({tool}) is not allowed by role {}; it needs a role with sftp = true.",
                            p.role().name
                        );
                        p.note(
                            channel,
                            recorder::manifest::Request::exec(data),
                            Some(false),
                        )
                        .await;
                        session.channel_success(channel)?;
                        p.refuse(channel, &line).await;
                        return Ok(());
                    }
                    _ => p.exec(channel, data).await,
                }
            }
            None => false,
        };
        answer(session, channel, ok)
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if !self.is_proxy() {
            session.channel_failure(channel)?;
            return Ok(());
        }
        if let Some(line) = self.refusal() {
            return self.refuse_channel(channel, line, session);
        }
        let ok = match self.open_session() {
            Some(p) if name == "sftp" && !p.role().sftp => {
                // Accept the request so the client reads what follows, then say why on
                // stderr and end the channel with status 1 (a plain failure reply makes
                // OpenSSH exit before it prints anything the server sent).
                let line = format!("sftp is not allowed by role {}.", p.role().name);
                p.note(
                    channel,
                    recorder::manifest::Request::subsystem(name.as_bytes()),
                    Some(false),
                )
                .await;
                session.channel_success(channel)?;
                p.refuse(channel, &line).await;
                return Ok(());
            }
            Some(p) => p.subsystem(channel, name).await,
            None => false,
        };
        answer(session, channel, ok)
    }

    #[allow(clippy::too_many_arguments)]
    async fn window_change_request(
        &mut self,
        channel: ChannelId,
        col_width: u32,
        row_height: u32,
        pix_width: u32,
        pix_height: u32,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(p) = self.open_session() {
            p.window_change(channel, col_width, row_height, pix_width, pix_height)
                .await;
        }
        Ok(())
    }

    async fn signal(
        &mut self,
        channel: ChannelId,
        signal: russh::Sig,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(p) = self.open_session() {
            p.signal(channel, signal).await;
        }
        Ok(())
    }

    async fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(p) = self.open_session() {
            p.data(channel, data).await;
        }
        Ok(())
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(p) = self.open_session() {
            p.eof(channel).await;
        }
        Ok(())
    }

    async fn agent_request(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        // A forwarded agent on a target is a credential handed to everyone with root there:
        // only roles with agent_forwarding = true get it. russh answers `false` with a
        // failure reply.
        match self.open_session() {
            Some(p) if p.role().agent_forwarding => Ok(p.agent(channel).await),
            _ => Ok(false),
        }
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        single_connection: bool,
        protocol: &str,
        cookie: &str,
        screen: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // X11 windows of a target on the user's display: only for roles that allow it.
        let ok = match self.open_session() {
            Some(p) if p.role().x11_forwarding => {
                p.x11(channel, single_connection, protocol, cookie, screen)
                    .await
            }
            _ => false,
        };
        answer(session, channel, ok)
    }

    async fn tcpip_forward(
        &mut self,
        _address: &str,
        _port: &mut u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        // Remote forwarding (-R) would open a listener on the target on the user's behalf;
        // refused.
        Ok(false)
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.remove(&channel);
        if let Some(p) = self.open_session() {
            p.close(channel).await;
        }
        Ok(())
    }
}

fn answer(session: &mut Session, channel: ChannelId, ok: bool) -> Result<(), ConnectionError> {
    if ok {
        session.channel_success(channel)?;
    } else {
        session.channel_failure(channel)?;
    }
    Ok(())
}
