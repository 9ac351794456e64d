//! What a sealed recording vouches for: the manifest of one channel.
//!
//! A manifest names the session, the channel within its connection, who connected under
//! which grant, every SSH request on the channel with its time and the target's answer, how
//! the channel ended, its byte counts, the SHA-256 of its `.cast` (for shells and exec
//! commands) or its file operations (for sftp). [`crate::seal`] signs its bytes.
//!
//! # Bytes on disk
//! [`Manifest::to_bytes`] is the one encoding: pretty-printed JSON (two-space indent, fields
//! in the order they are declared here, every field present, `null` when absent) followed by
//! one newline. The signature covers exactly those bytes, stored as the `.manifest.json` file;
//! nothing ever re-serializes a manifest to check it, so a reader may parse it with any JSON
//! library. Times are RFC 3339 UTC to the millisecond, like the event log.
//!
//! # Bounded by construction
//! Everything recorded here comes from the network, so the builder keeps at most
//! [`MAX_REQUESTS`] requests and [`MAX_SFTP_OPS`] file operations (and a byte budget for
//! each), counting what it had to leave out in `requests_omitted` and `sftp_omitted`, and
//! clips each string at a length no real SSH client sends.

use crate::sftp::SftpOp;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// The `format` of every manifest this crate writes; readers refuse others.
pub const FORMAT: &str = "latch-recording/1";

/// The most requests one manifest keeps; more are counted in `requests_omitted`.
pub const MAX_REQUESTS: usize = 10_000;

/// The most sftp operations one manifest keeps; more are counted in `sftp_omitted`.
pub const MAX_SFTP_OPS: usize = 100_000;

/// The most text (commands, names, paths) the requests of one manifest keep, in bytes.
const REQUEST_TEXT_BUDGET: usize = 4 << 20;

/// The most text (paths, flags) the sftp operations of one manifest keep, in bytes.
const SFTP_TEXT_BUDGET: usize = 16 << 20;

/// An exec command longer than this is clipped: longer than any SSH packet OpenSSH sends.
const MAX_COMMAND: usize = 256 << 10;

/// Any other string from the network (terminal type, names, signal) is clipped here.
const MAX_SHORT_TEXT: usize = 4 << 10;

/// Environment variables whose values are recorded. Any other variable is recorded by name
/// only: clients forward whatever `SendEnv` matches, and values can hold secrets.
fn env_value_is_recorded(name: &str) -> bool {
    matches!(name, "LANG" | "LANGUAGE" | "TZ" | "TERM" | "COLORTERM") || name.starts_with("LC_")
}

/// Why a manifest could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The bytes are not a manifest: not JSON, or a field is missing or of the wrong type.
    #[error("this is not a latch recording manifest ({0}); pass the .manifest.json file written next to the .cast")]
    Parse(#[source] serde_json::Error),

    /// The manifest is of a format this version does not read.
    #[error("the manifest's format is {found:?}, but this latch reads only {FORMAT:?}; verify it with the latch version that wrote it, or with `ssh-keygen -Y verify`")]
    Format {
        /// The `format` the manifest declares.
        found: String,
    },

    /// The manifest could not be encoded as JSON (a fault in this crate, not in the input).
    #[error("cannot encode the manifest as JSON: {0}; this is a bug in latch, please report it")]
    Encode(#[source] serde_json::Error),
}

/// The manifest of one recorded channel. See the module documentation for its encoding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// The session (one client connection to one target), e.g. `s17`.
    pub session: String,
    /// The channel's number within the connection, from 0 in the order channels opened.
    pub channel: u32,
    /// What the channel was: `shell`, `exec`, `subsystem:sftp`, `direct-tcpip`, ...
    pub kind: ChannelKind,
    /// The grant that allowed the session, e.g. `g3`; `null` under a standing role.
    pub grant: Option<String>,
    /// The role that allowed the session.
    pub role: String,
    /// The latch user.
    pub user: String,
    /// The login on the target.
    pub login: String,
    /// The target host, as named in the config.
    pub host: String,
    /// The client's address.
    pub source: String,
    /// The serial of the certificate minted for the upstream connection.
    pub cert_serial: u64,
    /// The key id of that certificate (which the target's `sshd` logs).
    pub key_id: String,
    /// When the channel opened.
    #[serde(with = "millis")]
    pub started_at: DateTime<Utc>,
    /// When the channel closed, or for an incomplete recording the last time known.
    #[serde(with = "millis")]
    pub ended_at: DateTime<Utc>,
    /// `false` when the recording was sealed after a crash with whatever had been written.
    pub complete: bool,
    /// Why it ended: `closed`, `revoked`, `expired`, `killed`, `locked`, `broker_restart`, ...
    pub end_cause: String,
    /// For a forwarded port: where it went.
    pub forward: Option<Forward>,
    /// Every SSH request on the channel, in order, up to [`MAX_REQUESTS`].
    pub requests: Vec<RequestRecord>,
    /// Requests left out of `requests` to keep the manifest bounded.
    pub requests_omitted: u64,
    /// The exit status the target sent, if any.
    pub exit_status: Option<u32>,
    /// The signal that ended the remote command, if the target said so (`TERM`, `KILL`...).
    pub exit_signal: Option<String>,
    /// Bytes from the client to the target.
    pub bytes_in: u64,
    /// Bytes from the target to the client.
    pub bytes_out: u64,
    /// The terminal recording; `null` for channels recorded as metadata only.
    pub cast: Option<CastRef>,
    /// For an sftp channel, its file operations in request order.
    pub sftp: Vec<SftpOp>,
    /// File operations left out of `sftp` to keep the manifest bounded.
    pub sftp_omitted: u64,
    /// The other recordings of the same connection known when this one was sealed, by
    /// recording name (`s17-c1`).
    pub linked: Vec<String>,
}

impl Manifest {
    /// The exact bytes to sign and store: see the module documentation.
    pub fn to_bytes(&self) -> Result<Vec<u8>, ManifestError> {
        let mut bytes = serde_json::to_vec_pretty(self).map_err(ManifestError::Encode)?;
        bytes.push(b'\n');
        Ok(bytes)
    }

    /// Parse a manifest's bytes, refusing other formats. This does not check a signature:
    /// use [`crate::seal::verify_recording`] for anything read from disk.
    pub fn from_bytes(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        #[derive(Deserialize)]
        struct Probe {
            format: serde_json::Value,
        }
        // Check the format first, so a future manifest is refused for its version rather
        // than for whichever new field the parse trips over.
        if let Ok(probe) = serde_json::from_slice::<Probe>(bytes) {
            if probe.format != FORMAT {
                let found = match probe.format {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                return Err(ManifestError::Format { found });
            }
        }
        serde_json::from_slice(bytes).map_err(ManifestError::Parse)
    }

    /// This recording's name: its file names derive from it.
    pub fn name(&self) -> RecordingName {
        RecordingName::new(&self.session, self.channel)
    }

    /// Mark a manifest recovered after a crash (the snapshot the broker kept while the channel
    /// ran, see [`ManifestBuilder::snapshot`]) as sealed incomplete, with the cast as found.
    pub fn into_incomplete(
        mut self,
        ended_at: DateTime<Utc>,
        end_cause: &str,
        cast: Option<CastRef>,
    ) -> Manifest {
        self.ended_at = ended_at;
        self.end_cause = clip(end_cause, MAX_SHORT_TEXT);
        self.complete = false;
        if cast.is_some() {
            self.cast = cast;
        }
        self
    }
}

/// A recording's name, `s17-c0` for channel 0 of session `s17`, and the files that carry it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecordingName(String);

impl RecordingName {
    /// The name of channel `channel` of session `session`.
    pub fn new(session: &str, channel: u32) -> RecordingName {
        RecordingName(format!("{session}-c{channel}"))
    }

    /// `s17-c0.cast`: the asciicast.
    pub fn cast_file(&self) -> String {
        format!("{}.cast", self.0)
    }

    /// `s17-c0.manifest.json`: the manifest's bytes, exactly as signed.
    pub fn manifest_file(&self) -> String {
        format!("{}.manifest.json", self.0)
    }

    /// `s17-c0.manifest.json.sig`: the SSH signature, where `ssh-keygen -Y sign` would put it.
    pub fn signature_file(&self) -> String {
        format!("{}.manifest.json.sig", self.0)
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RecordingName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a channel carried. Serialized as one string: `session`, `shell`, `exec`,
/// `subsystem:NAME`, `direct-tcpip`, `forwarded-tcpip`, `x11`, `auth-agent@openssh.com`, or
/// the channel type as the client named it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChannelKind {
    /// A session channel before (or without) a shell, exec or subsystem request.
    Session,
    /// An interactive shell.
    Shell,
    /// A command (`ssh host COMMAND`, and scp and rsync, which run as commands).
    Exec,
    /// A subsystem, `sftp` above all.
    Subsystem(String),
    /// A local port forward (`ssh -L`).
    DirectTcpip,
    /// A remote port forward (`ssh -R`).
    ForwardedTcpip,
    /// An X11 connection the target opened back.
    X11,
    /// An agent connection the target opened back.
    AuthAgent,
    /// Any other channel type, by its name.
    Other(String),
}

impl ChannelKind {
    /// The kind for a subsystem channel, e.g. `subsystem:sftp`.
    pub fn subsystem(name: &str) -> ChannelKind {
        ChannelKind::Subsystem(clip(name, MAX_SHORT_TEXT))
    }

    /// Whether this is an sftp channel, whose client bytes [`crate::sftp::SftpObserver`] reads.
    pub fn is_sftp(&self) -> bool {
        matches!(self, ChannelKind::Subsystem(name) if name == "sftp")
    }
}

impl fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChannelKind::Session => f.write_str("session"),
            ChannelKind::Shell => f.write_str("shell"),
            ChannelKind::Exec => f.write_str("exec"),
            ChannelKind::Subsystem(name) => write!(f, "subsystem:{name}"),
            ChannelKind::DirectTcpip => f.write_str("direct-tcpip"),
            ChannelKind::ForwardedTcpip => f.write_str("forwarded-tcpip"),
            ChannelKind::X11 => f.write_str("x11"),
            ChannelKind::AuthAgent => f.write_str("auth-agent@openssh.com"),
            ChannelKind::Other(name) => f.write_str(name),
        }
    }
}

impl From<&str> for ChannelKind {
    fn from(s: &str) -> ChannelKind {
        match s {
            "session" => ChannelKind::Session,
            "shell" => ChannelKind::Shell,
            "exec" => ChannelKind::Exec,
            "direct-tcpip" => ChannelKind::DirectTcpip,
            "forwarded-tcpip" => ChannelKind::ForwardedTcpip,
            "x11" => ChannelKind::X11,
            "auth-agent@openssh.com" => ChannelKind::AuthAgent,
            _ => match s.strip_prefix("subsystem:") {
                Some(name) => ChannelKind::subsystem(name),
                None => ChannelKind::Other(clip(s, MAX_SHORT_TEXT)),
            },
        }
    }
}

impl Serialize for ChannelKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ChannelKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ChannelKind, D::Error> {
        let s = String::deserialize(d)?;
        Ok(ChannelKind::from(s.as_str()))
    }
}

/// The file-transfer tool an exec command runs on the target, if it is one: `scp`, `rsync`
/// or `sftp` (a client asking for `sftp-server` by path). Such channels carry file contents,
/// not a terminal, so the broker records them as metadata rather than as a cast.
pub fn file_transfer_tool(command: &str) -> Option<&'static str> {
    let mut words = command.split_ascii_whitespace();
    let program = words.next()?;
    let base = program.rsplit('/').next().unwrap_or(program);
    match base {
        "scp" => Some("scp"),
        "rsync" if words.any(|w| w == "--server") => Some("rsync"),
        "sftp-server" => Some("sftp"),
        _ => None,
    }
}

/// Where a forwarded port's channel went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forward {
    /// The host the connection was made to (`direct-tcpip`) or accepted on (`forwarded-tcpip`).
    pub host: String,
    /// Its port.
    pub port: u32,
    /// The address of the other end, as the SSH peer reported it.
    pub originator: String,
    /// Its port.
    pub originator_port: u32,
}

impl Forward {
    /// A forward, with the peer's strings clipped to a sane length.
    pub fn new(host: &str, port: u32, originator: &str, originator_port: u32) -> Forward {
        Forward {
            host: clip(host, MAX_SHORT_TEXT),
            port,
            originator: clip(originator, MAX_SHORT_TEXT),
            originator_port,
        }
    }
}

/// One SSH request on the channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// When the client sent it.
    #[serde(with = "millis")]
    pub at: DateTime<Utc>,
    /// The request: `kind` and the fields of that kind.
    #[serde(flatten)]
    pub request: Request,
    /// The target's answer (`true`: success); `null` when the client asked for no reply.
    pub accepted: Option<bool>,
}

/// An SSH channel request, as recorded: never a secret (no X11 cookie, no environment value
/// outside the locale and timezone, no terminal modes). Build them with the constructors,
/// which take the raw bytes from the wire and clip them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind")]
#[non_exhaustive]
pub enum Request {
    /// `pty-req`: a terminal.
    #[serde(rename = "pty-req")]
    Pty {
        /// `TERM`, e.g. `xterm-256color`.
        term: String,
        /// Columns.
        cols: u32,
        /// Rows.
        rows: u32,
    },
    /// `shell`.
    #[serde(rename = "shell")]
    Shell,
    /// `exec`: a command.
    #[serde(rename = "exec")]
    Exec {
        /// The command line, as UTF-8 (invalid bytes replaced).
        command: String,
    },
    /// `subsystem`, e.g. `sftp`.
    #[serde(rename = "subsystem")]
    Subsystem {
        /// The subsystem's name.
        name: String,
    },
    /// `env`: an environment variable.
    #[serde(rename = "env")]
    Env {
        /// The variable's name.
        name: String,
        /// Its value, only for locale and timezone variables; `null` otherwise.
        value: Option<String>,
    },
    /// `window-change`: the terminal was resized.
    #[serde(rename = "window-change")]
    WindowChange {
        /// Columns.
        cols: u32,
        /// Rows.
        rows: u32,
    },
    /// `signal`: the client asked to signal the remote process.
    #[serde(rename = "signal")]
    Signal {
        /// The signal's name without `SIG`, e.g. `INT`.
        signal: String,
    },
    /// `break`: a serial break (RFC 4335).
    #[serde(rename = "break")]
    Break {
        /// Its length in milliseconds.
        ms: u32,
    },
    /// `x11-req`: X11 forwarding (never the cookie).
    #[serde(rename = "x11-req")]
    X11 {
        /// Whether only one X11 connection may be forwarded.
        single_connection: bool,
        /// The authentication protocol, e.g. `MIT-MAGIC-COOKIE-1`.
        protocol: String,
        /// The X11 screen number.
        screen: u32,
    },
    /// `auth-agent-req@openssh.com`: agent forwarding.
    #[serde(rename = "auth-agent-req@openssh.com")]
    AuthAgent,
    /// Any other request, by name.
    #[serde(rename = "other")]
    Other {
        /// The request's name as sent.
        name: String,
    },
}

impl Request {
    /// `pty-req` with the terminal type as sent.
    pub fn pty(term: &[u8], cols: u32, rows: u32) -> Request {
        Request::Pty {
            term: text(term, MAX_SHORT_TEXT),
            cols,
            rows,
        }
    }

    /// `exec` with the command bytes as sent.
    pub fn exec(command: &[u8]) -> Request {
        Request::Exec {
            command: text(command, MAX_COMMAND),
        }
    }

    /// `subsystem` with the name as sent.
    pub fn subsystem(name: &[u8]) -> Request {
        Request::Subsystem {
            name: text(name, MAX_SHORT_TEXT),
        }
    }

    /// `env`; the value is kept only for `LANG`, `LANGUAGE`, `LC_*`, `TZ`, `TERM` and
    /// `COLORTERM`, because anything else a client forwards may be a secret.
    pub fn env(name: &[u8], value: &[u8]) -> Request {
        let name = text(name, MAX_SHORT_TEXT);
        let value = env_value_is_recorded(&name).then(|| text(value, MAX_SHORT_TEXT));
        Request::Env { name, value }
    }

    /// `window-change`.
    pub fn window_change(cols: u32, rows: u32) -> Request {
        Request::WindowChange { cols, rows }
    }

    /// `signal` with the name as sent.
    pub fn signal(name: &[u8]) -> Request {
        Request::Signal {
            signal: text(name, MAX_SHORT_TEXT),
        }
    }

    /// `x11-req`; the cookie is not taken, so it cannot be recorded.
    pub fn x11(single_connection: bool, protocol: &[u8], screen: u32) -> Request {
        Request::X11 {
            single_connection,
            protocol: text(protocol, MAX_SHORT_TEXT),
            screen,
        }
    }

    /// Any request this enum has no variant for.
    pub fn other(name: &[u8]) -> Request {
        Request::Other {
            name: text(name, MAX_SHORT_TEXT),
        }
    }

    /// How much text this request holds, for the builder's budget.
    fn text_len(&self) -> usize {
        match self {
            Request::Pty { term: s, .. }
            | Request::Exec { command: s }
            | Request::Subsystem { name: s }
            | Request::Signal { signal: s }
            | Request::X11 { protocol: s, .. }
            | Request::Other { name: s } => s.len(),
            Request::Env { name, value } => name.len() + value.as_ref().map_or(0, String::len),
            Request::Shell
            | Request::WindowChange { .. }
            | Request::Break { .. }
            | Request::AuthAgent => 0,
        }
    }
}

/// The `.cast` a manifest vouches for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CastRef {
    /// Its file name, relative to the manifest's directory (`s17-c0.cast`).
    pub file: String,
    /// The SHA-256 of its bytes, lowercase hex.
    pub sha256: String,
    /// Its length in bytes.
    pub bytes: u64,
}

impl CastRef {
    /// Hash a whole cast held in memory. For one written as it goes, use [`CastHasher`].
    pub fn of(file: &str, cast: &[u8]) -> CastRef {
        let mut hasher = CastHasher::new();
        hasher.update(cast);
        hasher.finish(file)
    }
}

/// The SHA-256 and length of a cast, fed with its bytes as they are written (or read back).
#[derive(Debug, Clone, Default)]
pub struct CastHasher {
    sha256: Sha256,
    bytes: u64,
}

impl CastHasher {
    /// A hasher that has seen nothing.
    pub fn new() -> CastHasher {
        CastHasher::default()
    }

    /// Feed the next bytes of the file.
    pub fn update(&mut self, bytes: &[u8]) {
        self.sha256.update(bytes);
        self.bytes = self.bytes.saturating_add(bytes.len() as u64);
    }

    /// The reference to put in the manifest for the file named `file`.
    pub fn finish(self, file: &str) -> CastRef {
        CastRef {
            file: file.to_owned(),
            sha256: hex::encode(self.sha256.finalize()),
            bytes: self.bytes,
        }
    }
}

/// Who connected where, under what: the same for every channel of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The session id, e.g. `s17`.
    pub session: String,
    /// The grant, e.g. `g3`; `None` under a standing role.
    pub grant: Option<String>,
    /// The role that allowed the session.
    pub role: String,
    /// The latch user.
    pub user: String,
    /// The login on the target.
    pub login: String,
    /// The target host.
    pub host: String,
    /// The client's address.
    pub source: String,
    /// The upstream certificate's serial.
    pub cert_serial: u64,
    /// The upstream certificate's key id.
    pub key_id: String,
}

/// A manifest being filled while its channel runs. Requests and file operations beyond the
/// bounds (see the module documentation) are counted, not kept.
#[derive(Debug, Clone)]
pub struct ManifestBuilder {
    manifest: Manifest,
    /// Text kept so far in `requests`, against `REQUEST_TEXT_BUDGET`.
    request_text: usize,
    /// Text kept so far in `sftp`, against `SFTP_TEXT_BUDGET`.
    sftp_text: usize,
}

impl ManifestBuilder {
    /// Start the manifest of channel `channel` (numbered from 0 per connection), opened at
    /// `started_at`. A session channel starts as [`ChannelKind::Session`] and becomes a
    /// shell, exec or subsystem when the target accepts such a request.
    pub fn new(
        origin: Origin,
        channel: u32,
        kind: ChannelKind,
        started_at: DateTime<Utc>,
    ) -> ManifestBuilder {
        let Origin {
            session,
            grant,
            role,
            user,
            login,
            host,
            source,
            cert_serial,
            key_id,
        } = origin;
        ManifestBuilder {
            manifest: Manifest {
                format: FORMAT.to_owned(),
                session,
                channel,
                kind,
                grant,
                role,
                user,
                login,
                host,
                source,
                cert_serial,
                key_id,
                started_at,
                ended_at: started_at,
                complete: false,
                end_cause: String::new(),
                forward: None,
                requests: Vec::new(),
                requests_omitted: 0,
                exit_status: None,
                exit_signal: None,
                bytes_in: 0,
                bytes_out: 0,
                cast: None,
                sftp: Vec::new(),
                sftp_omitted: 0,
                linked: Vec::new(),
            },
            request_text: 0,
            sftp_text: 0,
        }
    }

    /// This recording's name (`s17-c0`).
    pub fn name(&self) -> RecordingName {
        self.manifest.name()
    }

    /// The channel's kind so far.
    pub fn kind(&self) -> &ChannelKind {
        &self.manifest.kind
    }

    /// Record where a forwarded port's channel went.
    pub fn forward(&mut self, forward: Forward) {
        self.manifest.forward = Some(forward);
    }

    /// Record a request sent at `at` and the target's answer (`None` if no reply was asked).
    /// An accepted `shell`, `exec` or `subsystem` on a session channel sets its kind.
    pub fn request(&mut self, at: DateTime<Utc>, request: Request, accepted: Option<bool>) {
        if accepted == Some(true) && self.manifest.kind == ChannelKind::Session {
            match &request {
                Request::Shell => self.manifest.kind = ChannelKind::Shell,
                Request::Exec { .. } => self.manifest.kind = ChannelKind::Exec,
                Request::Subsystem { name } => {
                    self.manifest.kind = ChannelKind::Subsystem(name.clone())
                }
                _ => {}
            }
        }
        let len = request.text_len();
        if self.manifest.requests.len() >= MAX_REQUESTS
            || self.request_text.saturating_add(len) > REQUEST_TEXT_BUDGET
        {
            self.manifest.requests_omitted = self.manifest.requests_omitted.saturating_add(1);
            return;
        }
        self.request_text += len;
        self.manifest.requests.push(RequestRecord {
            at,
            request,
            accepted,
        });
    }

    /// Record the exit status the target sent.
    pub fn exit_status(&mut self, status: u32) {
        self.manifest.exit_status = Some(status);
    }

    /// Record the signal the target said ended the command (name without `SIG`).
    pub fn exit_signal(&mut self, signal: &[u8]) {
        self.manifest.exit_signal = Some(text(signal, MAX_SHORT_TEXT));
    }

    /// Count bytes from the client to the target.
    pub fn bytes_in(&mut self, n: u64) {
        self.manifest.bytes_in = self.manifest.bytes_in.saturating_add(n);
    }

    /// Count bytes from the target to the client.
    pub fn bytes_out(&mut self, n: u64) {
        self.manifest.bytes_out = self.manifest.bytes_out.saturating_add(n);
    }

    /// Record file operations (from [`crate::sftp::SftpObserver`]).
    pub fn sftp(&mut self, ops: impl IntoIterator<Item = SftpOp>) {
        for op in ops {
            let len = op.text_len();
            if self.manifest.sftp.len() >= MAX_SFTP_OPS
                || self.sftp_text.saturating_add(len) > SFTP_TEXT_BUDGET
            {
                self.manifest.sftp_omitted = self.manifest.sftp_omitted.saturating_add(1);
                continue;
            }
            self.sftp_text += len;
            self.manifest.sftp.push(op);
        }
    }

    /// Name another recording of the same connection (once each).
    pub fn link(&mut self, other: &RecordingName) {
        let other = other.as_str();
        if other != self.manifest.name().as_str()
            && !self.manifest.linked.iter().any(|l| l == other)
            && self.manifest.linked.len() < MAX_REQUESTS
        {
            self.manifest.linked.push(other.to_owned());
        }
    }

    /// The manifest as it stands, marked incomplete with cause `unsealed` and ending `at`.
    /// The broker may keep this next to an open recording, so that after a crash it can seal
    /// what was known with [`Manifest::into_incomplete`].
    pub fn snapshot(&self, at: DateTime<Utc>) -> Manifest {
        self.clone().end(at, "unsealed", None, false)
    }

    /// The channel closed normally (`end_cause` e.g. `closed`, `revoked`, `killed`): the
    /// complete manifest, with the cast's reference if it was recorded as one.
    pub fn finish(
        self,
        ended_at: DateTime<Utc>,
        end_cause: &str,
        cast: Option<CastRef>,
    ) -> Manifest {
        self.end(ended_at, end_cause, cast, true)
    }

    /// The channel's recording could not be followed to its end (a crash): the manifest of
    /// what there is, marked `complete: false`.
    pub fn finish_incomplete(
        self,
        ended_at: DateTime<Utc>,
        end_cause: &str,
        cast: Option<CastRef>,
    ) -> Manifest {
        self.end(ended_at, end_cause, cast, false)
    }

    fn end(
        self,
        ended_at: DateTime<Utc>,
        end_cause: &str,
        cast: Option<CastRef>,
        complete: bool,
    ) -> Manifest {
        let mut m = self.manifest;
        m.ended_at = ended_at;
        m.end_cause = clip(end_cause, MAX_SHORT_TEXT);
        m.cast = cast;
        m.complete = complete;
        m
    }
}

/// Bytes from the wire as text: invalid UTF-8 replaced, clipped at `max` bytes.
pub(crate) fn text(bytes: &[u8], max: usize) -> String {
    clip(&String::from_utf8_lossy(bytes), max)
}

/// `s` clipped at `max` bytes (on a character boundary), saying how long it was.
pub(crate) fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[clipped: {} bytes in all]", &s[..end], s.len())
}

/// Times as RFC 3339 UTC to the millisecond (`2025-01-02T03:04:05.678Z`), as the event log
/// writes them. Use with `#[serde(with = "crate::manifest::millis")]`.
pub(crate) mod millis {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| serde::de::Error::custom(format!("{s:?} is not an RFC 3339 time: {e}")))
    }
}

#[cfg(test)]
mod tests;
