//! SSH channel requests as a manifest records them: with their time and answer, and
//! without their secrets.

use super::{millis, text, MAX_COMMAND, MAX_SHORT_TEXT};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Environment variables whose values are recorded. Any other variable is recorded by name
/// only: clients forward whatever `SendEnv` matches, and values can hold secrets.
fn env_value_is_recorded(name: &str) -> bool {
    matches!(name, "LANG" | "LANGUAGE" | "TZ" | "TERM" | "COLORTERM") || name.starts_with("LC_")
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
    pub(crate) fn text_len(&self) -> usize {
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
