//! What a channel carried, and where a forwarded one went.

use super::{clip, MAX_SHORT_TEXT};
use serde::{Deserialize, Serialize};
use std::fmt;

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
