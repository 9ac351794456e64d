//! The data plane: a client connection for `LOGIN@HOST` relayed to the target's `sshd`.
//!
//! On the first session channel the policy decides (and the log records) whether the user may
//! reach `LOGIN@HOST`; only then is an ephemeral key made, a certificate minted for that one
//! login, and the target connected with its host key checked against the pinned one. Each
//! client channel gets a target channel on that one upstream connection. Requests are
//! forwarded with `want_reply` and answered with the target's real reply.
//!
//! # Layout
//! - [`upstream`]: the SSH client leg (host key trust, certificate login).
//! - [`relay`]: the bounded pipes and tasks that carry bytes without deadlock.
//! - [`killable`]: sockets the kill switch can fail from outside russh.
//! - this file: [`DataPlane`] (what the data plane needs), [`ProxySession`] (one connection's
//!   upstream side and channels), and the session supervisor (expiry warning, deadline).

pub mod killable;
pub mod relay;
pub mod scan;
pub mod upstream;

use crate::broker::Broker;
use crate::recording::{self, ChannelSpec, RecEvent, Recorder, RecordingStore};
use crate::sessions::{LiveSession, SessionRegistry};
use bytes::Bytes;
use ca::{CertRequest, KeyId, Permissions, UserCa};
use chrono::Utc;
use policy::config::Role;
use policy::decision::AllowedBy;
use policy::session::{SessionEnded, SessionStart};
use policy::Event;
use recorder::manifest::{ChannelKind, Forward, Origin, RecordingName};
use relay::{Console, Flow, Pipe, ToClient};
use russh::client;
use russh::{ChannelId, ChannelWriteHalf};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Environment variables a client may pass to the target (`SendEnv`): locale and time zone
/// only. Anything else (`LD_PRELOAD`, `BASH_ENV`...) could change what runs.
pub fn env_allowed(name: &str) -> bool {
    name == "LANG" || name == "TZ" || name == "COLORTERM" || name.starts_with("LC_")
}

/// `LOGIN@HOST` from the SSH user name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSpec {
    pub login: String,
    pub host: String,
}

impl TargetSpec {
    /// `None` when the name has no `@` (a command session). The host is after the last `@`.
    pub fn parse(user: &str) -> Option<Result<TargetSpec, String>> {
        let (login, host) = user.rsplit_once('@')?;
        if login.is_empty() || host.is_empty() {
            return Some(Err(format!(
                "{user:?} is not LOGIN@HOST: connect with {} (for example root@web-01@bastion)",
                crate::hint::ssh_to("LOGIN", "HOST")
            )));
        }
        Some(Ok(TargetSpec {
            login: login.to_string(),
            host: host.to_string(),
        }))
    }
}

/// What the data plane needs from the broker; one per broker.
pub struct DataPlane {
    pub broker: Arc<Broker>,
    pub registry: Arc<SessionRegistry>,
    pub ca: Arc<UserCa>,
    pub client_config: Arc<client::Config>,
    pub recordings: Arc<RecordingStore>,
}

/// Shared between a connection's handler and the task that runs it, so the task can record
/// the session's end once russh has closed the client socket.
#[derive(Default)]
pub struct SessionSlot {
    live: Mutex<Option<Arc<LiveSession>>>,
    /// Last exit status the target sent on any channel.
    pub exit_status: Arc<Mutex<Option<u32>>>,
}

impl SessionSlot {
    fn set(&self, live: Arc<LiveSession>) {
        *self.live.lock().unwrap_or_else(|p| p.into_inner()) = Some(live);
    }
    pub fn take(&self) -> Option<Arc<LiveSession>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// One client channel relayed to a target channel.
pub struct ProxiedChannel {
    up: ChannelWriteHalf<client::Msg>,
    /// The target's replies to our `want_reply` requests, in order.
    replies: mpsc::Receiver<bool>,
    /// Set by a successful pty-req: latch's lines then go on the terminal.
    pty: Arc<std::sync::atomic::AtomicBool>,
    /// This channel's recorder.
    rec: Recorder,
    /// The queue toward the client, so latch can end the channel itself.
    pipe: Arc<Pipe>,
    /// Stops this channel's target reader (a child of the session's stop).
    halt: CancellationToken,
    reader: Option<tokio::task::JoinHandle<()>>,
    /// Latch refused something on this channel: client input is no longer relayed.
    refused: bool,
}

/// The upstream side of one client connection.
pub struct ProxySession {
    pub live: Arc<LiveSession>,
    upstream: client::Handle<upstream::TargetHandler>,
    role: Role,
    channels: HashMap<ChannelId, ProxiedChannel>,
    /// Notices (expiry warnings) for every channel's terminal or stderr.
    notices: broadcast::Sender<String>,
    exit_status: Arc<Mutex<Option<u32>>>,
    /// The client writers, so a cut can wait for its message to be handed over.
    writers: TaskTracker,
    recordings: Arc<RecordingStore>,
    broker: Arc<Broker>,
    /// Who, where, under what, with which certificate: the same for every recording.
    origin: Origin,
    /// Channels opened so far; numbers recordings `s17-c0`, `s17-c1`, ...
    next_channel: u32,
    /// Earlier recordings of this connection, linked from later ones.
    recorded: Vec<RecordingName>,
    /// `[recordings] enabled`.
    recording_enabled: bool,
}

/// A channel request forwarded to the target with `want_reply`.
enum Request<'a> {
    Pty {
        term: &'a str,
        cols: u32,
        rows: u32,
        pw: u32,
        ph: u32,
        modes: &'a [(russh::Pty, u32)],
    },
    Shell,
    Exec(&'a [u8]),
    Subsystem(&'a str),
    Env(&'a str, &'a str),
    Agent,
    X11 {
        single: bool,
        protocol: &'a str,
        cookie: &'a str,
        screen: u32,
    },
}

impl Request<'_> {
    /// The request as the recording's manifest keeps it (never an X11 cookie).
    fn for_recording(&self) -> recorder::manifest::Request {
        use recorder::manifest::Request as R;
        match self {
            Request::Pty {
                term, cols, rows, ..
            } => R::pty(term.as_bytes(), *cols, *rows),
            Request::Shell => R::Shell,
            Request::Exec(command) => R::exec(command),
            Request::Subsystem(name) => R::subsystem(name.as_bytes()),
            Request::Env(name, value) => R::env(name.as_bytes(), value.as_bytes()),
            Request::Agent => R::AuthAgent,
            Request::X11 {
                single,
                protocol,
                screen,
                ..
            } => R::x11(*single, protocol.as_bytes(), *screen),
        }
    }
}

/// Why a proxied connection cannot proceed, as the one line the user sees.
pub type Refusal = String;

impl DataPlane {
    /// Decide, record, mint, connect: everything before the first channel is relayed.
    pub async fn open(
        self: &Arc<Self>,
        user: &str,
        target: &TargetSpec,
        peer: SocketAddr,
        kill: CancellationToken,
        slot: &SessionSlot,
        client: russh::server::Handle,
    ) -> Result<ProxySession, Refusal> {
        let (u, l, h, src) = (
            user.to_string(),
            target.login.clone(),
            target.host.clone(),
            peer.to_string(),
        );
        let decided = Arc::new(Mutex::new(None));
        let d2 = Arc::clone(&decided);
        let committed = self
            .broker
            .execute(user.to_string(), move |state, settings, now| {
                let (outcome, start) = state.start_session(settings, &u, &l, &h, &src, now);
                *d2.lock().unwrap_or_else(|p| p.into_inner()) = Some(start);
                Ok(outcome)
            })
            .await;
        if let Err(e) = committed {
            tracing::error!(error = %e, "could not record a session start");
            return Err("latch could not record this session in its audit log, so it is refused. Tell your latch administrator.".into());
        }
        let start = decided.lock().unwrap_or_else(|p| p.into_inner()).take();
        let started = match start {
            Some(SessionStart::Allowed(s)) => s,
            Some(SessionStart::Denied {
                reason,
                could_request,
            }) => return Err(denial_message(&reason, &could_request, &target.host)),
            None => return Err("latch could not decide on this session.".into()),
        };
        let live = Arc::new(LiveSession::new(
            started.id,
            user.to_string(),
            target.login.clone(),
            target.host.clone(),
            started.by.clone(),
            started.role.clone(),
            Utc::now(),
            peer,
            started.until,
        ));
        // From here on the session exists in the log: whatever happens, its end is recorded.
        slot.set(Arc::clone(&live));

        let (host, role) = self.broker.read(|_, settings| {
            (
                settings.host(&target.host).cloned(),
                settings.role(&started.role).cloned(),
            )
        });
        let (Some(host), Some(role)) = (host, role) else {
            live.cut("closed", String::new());
            return Err(format!(
                "host {} or role {} is no longer configured.",
                target.host, started.role
            ));
        };
        let host_keys: Vec<String> = host.host_keys.iter().map(|k| k.canonical()).collect();
        let host_cas: Vec<String> = host.host_cas.iter().map(|k| k.canonical()).collect();
        let grant_ref = match &started.by {
            AllowedBy::Grant(id) => id.to_string(),
            AllowedBy::StandingRole(r) => format!("role:{r}"),
        };
        let serial = ca::random_serial();
        let now = Utc::now();
        let permissions = Permissions {
            pty: true,
            port_forwarding: role.port_forwarding,
            agent_forwarding: role.agent_forwarding,
            x11_forwarding: role.x11_forwarding,
        };
        let bridge = upstream::Bridge {
            client,
            stop: live.stop.clone(),
            agent: role.agent_forwarding,
            x11: role.x11_forwarding,
        };
        let target_desc = upstream::Target {
            host: &host.name,
            address: &host.address,
            host_keys: &host_keys,
            host_cas: &host_cas,
            login: &target.login,
        };
        let session_id = started.id.to_string();
        let (cert_validity, source_address) = self.broker.read(|_, settings| {
            let addrs = &settings.server.cert_source_addresses;
            (
                settings.server.cert_validity,
                (!addrs.is_empty()).then(|| addrs.clone()),
            )
        });
        let connect = upstream::connect(
            Arc::clone(&self.client_config),
            &target_desc,
            &self.ca,
            |key| CertRequest {
                public_key: key,
                principal: target.login.clone(),
                grant: grant_ref.clone(),
                user: user.to_string(),
                session: session_id.clone(),
                validity: cert_validity,
                not_after_cap: started.until,
                permissions,
                source_address: source_address.clone(),
                serial,
            },
            now,
            kill.clone(),
            bridge,
        );
        let connected = tokio::select! {
            c = connect => c,
            _ = live.stop.cancelled() => return Err(live.cut_reason().map(|c| c.message).unwrap_or_default()),
        };
        let connected = match connected {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(session = %started.id, host = %host.name, error = %e, "upstream connection failed");
                live.cut(e.kind(), e.to_string());
                return Err(e.to_string());
            }
        };
        let key_id = KeyId::new(&grant_ref, user, &session_id)
            .map(|k| k.to_string())
            .unwrap_or_default();
        let origin = Origin {
            session: session_id.clone(),
            grant: live.grant().map(|g| g.to_string()),
            role: started.role.clone(),
            user: user.to_string(),
            login: target.login.clone(),
            host: target.host.clone(),
            source: peer.to_string(),
            cert_serial: serial,
            key_id: key_id.clone(),
        };
        let _ = self
            .broker
            .audit(
                user.to_string(),
                Event::SessionConnected {
                    id: started.id,
                    address: host.address.clone(),
                    cert_serial: serial,
                    key_id,
                },
            )
            .await;
        self.registry.register(Arc::clone(&live));
        let (notices, _) = broadcast::channel(8);
        let session = ProxySession {
            live: Arc::clone(&live),
            upstream: connected.handle,
            role,
            channels: HashMap::new(),
            notices,
            exit_status: Arc::clone(&slot.exit_status),
            writers: TaskTracker::new(),
            recordings: Arc::clone(&self.recordings),
            broker: Arc::clone(&self.broker),
            origin,
            next_channel: 0,
            recorded: Vec::new(),
            recording_enabled: self.broker.settings().recordings.enabled,
        };
        tokio::spawn(supervise(
            Arc::clone(&self.broker),
            Arc::clone(&live),
            session.notices.clone(),
            session.writers.clone(),
            kill,
        ));
        Ok(session)
    }

    /// Record a session's end. Called once the client socket is closed.
    pub async fn record_end(&self, live: &LiveSession, exit_status: Option<u32>) {
        self.registry.remove(&live.id);
        let cut = live.cut_reason();
        let (cause, detail, cut_ms) = match &cut {
            Some(c) if c.cause != "closed" => (
                c.cause.to_string(),
                Some(c.message.clone()).filter(|m| !m.is_empty()),
                Some(c.decided.elapsed().as_millis() as u64),
            ),
            _ => ("closed".to_string(), None, None),
        };
        let ended = SessionEnded {
            id: live.id,
            cause,
            detail,
            duration_ms: (Utc::now() - live.started_at).num_milliseconds().max(0) as u64,
            bytes_in: live.flow.bytes_in.load(Ordering::Relaxed),
            bytes_out: live.flow.bytes_out.load(Ordering::Relaxed),
            exit_status,
            cut_ms,
        };
        if let Err(e) = self
            .broker
            .audit(
                policy::state::SYSTEM_ACTOR.to_string(),
                Event::SessionEnded(ended),
            )
            .await
        {
            tracing::error!(session = %live.id, error = %e, "could not record a session end");
        }
    }
}

/// The deny line: why, and the exact request that would help.
fn denial_message(
    reason: &str,
    could_request: &[policy::decision::Requestable],
    host: &str,
) -> String {
    let mut m = format!("access denied: {reason}.");
    if could_request.is_empty() {
        m.push_str(" You cannot request a role that covers this host; ask a latch admin.");
    } else {
        for r in could_request {
            m.push_str(&format!(
                "\nRequest access with:\n  {} request --role {} --hosts '{}' --reason 'why you need it'",
                crate::hint::ssh(),
                r.role,
                if r.hosts.is_empty() { host } else { &r.hosts }
            ));
        }
    }
    m
}

/// Warn before expiry, and cut at the deadline even if the log could not record the expiry.
async fn supervise(
    broker: Arc<Broker>,
    live: Arc<LiveSession>,
    notices: broadcast::Sender<String>,
    writers: TaskTracker,
    kill: CancellationToken,
) {
    let mut deadline_rx = live.deadline.subscribe();
    let warning = broker.settings().jit.expiry_warning;
    let grant = live.grant();
    let mut warned_for = None;
    loop {
        let deadline = *deadline_rx.borrow_and_update();
        let until = |t: chrono::DateTime<Utc>| (t - Utc::now()).to_std().unwrap_or_default();
        let warn_at = deadline
            .filter(|d| warned_for != Some(*d))
            .map(|d| until(d - warning));
        tokio::select! {
            _ = live.stop.cancelled() => break,
            _ = kill.cancelled() => return,
            r = deadline_rx.changed() => {
                if r.is_err() {
                    return;
                }
                // An approved extension: say so on the terminal (and in the recordings).
                let moved = *deadline_rx.borrow();
                if let (Some(old), Some(new)) = (deadline, moved) {
                    if new > old {
                        let id = grant.map(|g| g.to_string()).unwrap_or_default();
                        let _ = notices.send(format!("grant {id} was extended until {}.", new.format("%H:%M:%SZ")));
                    }
                }
                continue;
            }
            _ = tokio::time::sleep(warn_at.unwrap_or_default()), if warn_at.is_some() => {
                let d = deadline.unwrap_or_else(Utc::now);
                warned_for = Some(d);
                let id = grant.map(|g| g.to_string()).unwrap_or_default();
                let left = policy::duration::format(chrono::TimeDelta::seconds((d - Utc::now()).num_seconds().max(1)));
                let _ = notices.send(format!(
                    "grant {id} expires in {left} (at {}). To keep working: {} extend {id} --duration 30m --reason '...'",
                    d.format("%H:%M:%SZ"),
                    crate::hint::ssh()
                ));
            }
            _ = tokio::time::sleep(deadline.map(until).unwrap_or_default()), if deadline.is_some() => {
                let id = grant.map(|g| g.to_string()).unwrap_or_default();
                live.cut("expired", format!("grant {id} expired. This session is closed; request access again to continue."));
                break;
            }
        }
    }
    // Cut: the writers hand over the line saying why (bounded by the grace period), russh
    // gets a moment to put it on the wire, then both sockets fail.
    writers.close();
    let _ = tokio::time::timeout(relay::CUT_MESSAGE_GRACE, writers.wait()).await;
    tokio::time::sleep(relay::CUT_FLUSH).await;
    kill.cancel();
}

impl ProxySession {
    pub fn role(&self) -> &Role {
        &self.role
    }

    /// Relay a new client channel: open the target's channel, start the relay tasks.
    pub async fn open_channel(
        &mut self,
        client: russh::Channel<russh::server::Msg>,
        handle: russh::server::Handle,
        forward: Option<(String, u32, String, u32)>,
    ) -> Result<(), russh::Error> {
        let opened = match &forward {
            None => self.upstream.channel_open_session().await,
            Some((host, port, orig, oport)) => {
                self.upstream
                    .channel_open_direct_tcpip(host.clone(), *port, orig.clone(), *oport)
                    .await
            }
        };
        let id = client.id();
        let number = self.next_channel;
        self.next_channel += 1;
        let spec = ChannelSpec {
            origin: self.origin.clone(),
            channel: number,
            kind: if forward.is_some() {
                ChannelKind::DirectTcpip
            } else {
                ChannelKind::Session
            },
            forward: forward
                .as_ref()
                .map(|(h, p, o, op)| Forward::new(h, *p, o, *op)),
            record_input: self.role.record_input,
            linked: self.recorded.clone(),
        };
        // Fail closed: a channel that cannot be recorded is not opened, and the session ends.
        let rec = match recording::start(
            &self.recordings,
            &self.broker,
            &self.live,
            spec,
            self.recording_enabled,
        ) {
            Ok(r) => r,
            Err(why) => {
                tracing::error!(session = %self.live.id, error = %why, "cannot record; cutting the session");
                self.live.cut(
                    "recording_failed",
                    "latch cannot record this session, so it is closed (fail closed). Tell your latch administrator.".into(),
                );
                return Err(russh::Error::Disconnect);
            }
        };
        self.recorded
            .push(RecordingName::new(&self.origin.session, number));
        let up = opened?;
        let (client_rx, client_tx) = client.split();
        // The handler callbacks see every client message; the read half would only queue
        // copies that nobody reads, stalling the connection.
        drop(client_rx);
        let (up_rx, up_tx) = up.split();
        let flow: Arc<Flow> = Arc::clone(&self.live.flow);
        let pipe = Arc::new(Pipe::new(Arc::clone(&flow)));
        let (replies_tx, replies_rx) = mpsc::channel(8);
        let stop = self.live.stop.clone();
        let halt = stop.child_token();
        let live = Arc::clone(&self.live);
        let reader = tokio::spawn(relay::read_target(
            up_rx,
            Arc::clone(&pipe),
            replies_tx,
            halt.clone(),
            move || {
                live.cut(
                "relay_overflow",
                "the client sent faster than it read, past latch's relay limit. This session is closed.".into(),
            );
            },
        ));
        let pty = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let pty2 = Arc::clone(&pty);
        let live = Arc::clone(&self.live);
        self.writers.spawn(relay::write_client(
            Arc::clone(&pipe),
            client_tx,
            handle,
            flow,
            stop,
            move || {
                if pty2.load(Ordering::Relaxed) {
                    Console::Terminal
                } else {
                    Console::Stderr
                }
            },
            self.notices.subscribe(),
            move || {
                live.cut_reason()
                    .map(|c| c.message)
                    .filter(|m| !m.is_empty())
            },
            Arc::clone(&self.exit_status),
            rec.clone(),
        ));
        self.channels.insert(
            id,
            ProxiedChannel {
                up: up_tx,
                replies: replies_rx,
                pty,
                rec,
                pipe,
                halt,
                reader: Some(reader),
                refused: false,
            },
        );
        Ok(())
    }

    pub fn has_channel(&self, id: ChannelId) -> bool {
        self.channels.contains_key(&id)
    }

    /// Forward a request with `want_reply` and wait for the target's answer. While waiting,
    /// the relay keeps draining the target (see [`relay`]).
    async fn ask(&mut self, id: ChannelId, request: Request<'_>) -> bool {
        let Some(ch) = self.channels.get_mut(&id) else {
            return false;
        };
        let _waiting = self.live.flow.waiting();
        let record = request.for_recording();
        let up = &ch.up;
        let sent = match request {
            Request::Pty {
                term,
                cols,
                rows,
                pw,
                ph,
                modes,
            } => up.request_pty(true, term, cols, rows, pw, ph, modes).await,
            Request::Shell => up.request_shell(true).await,
            Request::Exec(command) => up.exec(true, command.to_vec()).await,
            Request::Subsystem(name) => up.request_subsystem(true, name).await,
            Request::Env(name, value) => up.set_env(true, name, value).await,
            Request::Agent => up.agent_forward(true).await,
            Request::X11 {
                single,
                protocol,
                cookie,
                screen,
            } => up.request_x11(true, single, protocol, cookie, screen).await,
        };
        let ok = if sent.is_err() {
            false
        } else {
            tokio::select! {
                r = ch.replies.recv() => r.unwrap_or(false),
                _ = self.live.stop.cancelled() => false,
            }
        };
        ch.rec
            .send(RecEvent::Request {
                at: Utc::now(),
                request: record,
                accepted: Some(ok),
            })
            .await;
        ok
    }

    /// End a channel on latch's own account (a request the role does not allow): stop
    /// relaying the target, then send the user one line on stderr, exit status 1, EOF and
    /// close, in that order, through the channel's own writer.
    pub async fn refuse(&mut self, id: ChannelId, line: &str) {
        let Some(ch) = self.channels.get_mut(&id) else {
            return;
        };
        ch.refused = true;
        ch.halt.cancel();
        if let Some(reader) = ch.reader.take() {
            let _ = reader.await;
        }
        let _ = ch.up.close().await;
        let console = if ch.pty.load(Ordering::Relaxed) {
            Console::Terminal
        } else {
            Console::Stderr
        };
        let item = match relay::latch_line(console, line) {
            (Some(ext), b) => ToClient::ExtendedData(ext, b),
            (None, b) => ToClient::Data(b),
        };
        for item in [
            item,
            ToClient::ExitStatus(1),
            ToClient::Eof,
            ToClient::Close,
        ] {
            let _ = ch.pipe.push(item).await;
        }
    }

    /// Record a request latch answered itself (refused by policy, or one that takes no
    /// reply).
    pub async fn note(
        &mut self,
        id: ChannelId,
        request: recorder::manifest::Request,
        accepted: Option<bool>,
    ) {
        if let Some(ch) = self.channels.get(&id) {
            ch.rec
                .send(RecEvent::Request {
                    at: Utc::now(),
                    request,
                    accepted,
                })
                .await;
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn pty(
        &mut self,
        id: ChannelId,
        term: &str,
        cols: u32,
        rows: u32,
        pw: u32,
        ph: u32,
        modes: &[(russh::Pty, u32)],
    ) -> bool {
        let ok = self
            .ask(
                id,
                Request::Pty {
                    term,
                    cols,
                    rows,
                    pw,
                    ph,
                    modes,
                },
            )
            .await;
        if ok {
            if let Some(ch) = self.channels.get(&id) {
                ch.pty.store(true, Ordering::Relaxed);
            }
        }
        ok
    }

    pub async fn shell(&mut self, id: ChannelId) -> bool {
        self.ask(id, Request::Shell).await
    }

    pub async fn exec(&mut self, id: ChannelId, command: &[u8]) -> bool {
        self.ask(id, Request::Exec(command)).await
    }

    pub async fn subsystem(&mut self, id: ChannelId, name: &str) -> bool {
        self.ask(id, Request::Subsystem(name)).await
    }

    pub async fn env(&mut self, id: ChannelId, name: &str, value: &str) -> bool {
        self.ask(id, Request::Env(name, value)).await
    }

    /// Agent forwarding, only where the role allows it (the caller checks).
    pub async fn agent(&mut self, id: ChannelId) -> bool {
        let ok = self.ask(id, Request::Agent).await;
        tracing::info!(session = %self.live.id, ok, "agent forwarding requested");
        ok
    }

    /// X11 forwarding, only where the role allows it (the caller checks).
    pub async fn x11(
        &mut self,
        id: ChannelId,
        single: bool,
        protocol: &str,
        cookie: &str,
        screen: u32,
    ) -> bool {
        let ok = self
            .ask(
                id,
                Request::X11 {
                    single,
                    protocol,
                    cookie,
                    screen,
                },
            )
            .await;
        tracing::info!(session = %self.live.id, ok, "X11 forwarding requested");
        ok
    }

    pub async fn window_change(&mut self, id: ChannelId, cols: u32, rows: u32, pw: u32, ph: u32) {
        if let Some(ch) = self.channels.get(&id) {
            let request = recorder::manifest::Request::window_change(cols, rows);
            ch.rec
                .send(RecEvent::Request {
                    at: Utc::now(),
                    request,
                    accepted: None,
                })
                .await;
            let _ = ch.up.window_change(cols, rows, pw, ph).await;
        }
    }

    pub async fn signal(&mut self, id: ChannelId, sig: russh::Sig) {
        if let Some(ch) = self.channels.get(&id) {
            let request = recorder::manifest::Request::signal(format!("{sig:?}").as_bytes());
            ch.rec
                .send(RecEvent::Request {
                    at: Utc::now(),
                    request,
                    accepted: None,
                })
                .await;
            let _ = ch.up.signal(sig).await;
        }
    }

    /// Client input for the target. Awaiting the target's window is the backpressure that
    /// keeps a fast client from filling the broker's memory.
    pub async fn data(&mut self, id: ChannelId, data: &[u8]) {
        let Some(ch) = self.channels.get(&id) else {
            return;
        };
        if self.live.stop.is_cancelled() || ch.refused {
            return;
        }
        self.live
            .flow
            .bytes_in
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        let bytes = Bytes::copy_from_slice(data);
        ch.rec
            .send(RecEvent::Input {
                at: Utc::now(),
                bytes: bytes.clone(),
            })
            .await;
        let _waiting = self.live.flow.waiting();
        tokio::select! {
            _ = ch.up.data_bytes(bytes) => {}
            _ = self.live.stop.cancelled() => {}
        }
    }

    pub async fn eof(&mut self, id: ChannelId) {
        if let Some(ch) = self.channels.get(&id) {
            let _ = ch.up.eof().await;
        }
    }

    pub async fn close(&mut self, id: ChannelId) {
        if let Some(ch) = self.channels.remove(&id) {
            let _ = ch.up.close().await;
        }
    }
}
