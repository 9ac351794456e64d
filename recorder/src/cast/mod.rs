//! The asciicast v2 format: header, events, the streaming writer and the reader.
//!
//! A recording is one JSON header line, then one JSON array per event:
//!
//! ```text
//! {"version":2,"width":80,"height":24,"timestamp":1700000000,"title":"alice as root on db-01","env":{"SHELL":"/bin/bash","TERM":"xterm-256color"}}
//! [0.012345,"o","$ "]
//! [1.500000,"r","100x30"]
//! [9.000000,"m","exit status 0"]
//! ```
//!
//! Event codes: `o` output, `i` input, `r` resize (`COLSxROWS`), `m` marker (a label).
//! Times are seconds since the header's timestamp, written with microsecond precision.
//!
//! The `asciicast` crate models the header but only the `o` and `i` events, so events are
//! ours ([`EventKind`]). Its header type falls short of what a recording we sign needs:
//! its `env` is a `HashMap` (the key order of the line would change from run to run), it
//! turns a malformed timestamp into "no timestamp" silently, and it panics on an
//! out-of-range one (chrono's `from_timestamp`), which a crafted file must not be able to
//! cause. So [`Header`] is written and read here, and converts into
//! [`asciicast::Header`] for code that uses that crate.

mod read;
mod write;

pub use read::{parse, ParseError};
pub use write::{CastWriter, Coalescing, Keystrokes};

use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

/// The asciicast version this module writes and reads.
pub const VERSION: u8 = 2;

/// The latest time an event may have: about 31 years, far past any session, and small
/// enough that seconds with microseconds stay exact in an `f64`. The writer clamps to it
/// (a clock that jumps centuries ahead must not make a file the reader refuses) and the
/// reader refuses more.
pub const MAX_EVENT_TIME: Duration = Duration::from_secs(1_000_000_000);

/// What the first line of a recording says about the session.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// Terminal columns at the start, from the pty request.
    pub width: u32,
    /// Terminal rows at the start, from the pty request.
    pub height: u32,
    /// When the recording started. Event times count from this instant at full precision;
    /// the header line carries it in whole seconds, as asciicast v2 specifies.
    pub timestamp: DateTime<Utc>,
    /// A hint for players: shorten pauses longer than this.
    pub idle_time_limit: Option<Duration>,
    /// The command of an exec channel; `None` for an interactive shell.
    pub command: Option<String>,
    /// Names who did this where, like `alice as root on prod-db-01`.
    pub title: Option<String>,
    /// The client's `TERM`, from the pty request.
    pub term: Option<String>,
    /// The login shell on the target, when known.
    pub shell: Option<String>,
}

impl Header {
    /// Appends the header as one JSON line, ending in `\n`.
    pub fn write_line(&self, out: &mut String) {
        // Field order as asciinema writes it, so the line reads the same as theirs.
        #[derive(serde::Serialize)]
        struct Line<'a> {
            version: u8,
            width: u32,
            height: u32,
            timestamp: i64,
            #[serde(skip_serializing_if = "Option::is_none")]
            idle_time_limit: Option<f64>,
            #[serde(skip_serializing_if = "Option::is_none")]
            command: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            title: Option<&'a str>,
            #[serde(skip_serializing_if = "Env::is_empty")]
            env: Env<'a>,
        }
        #[derive(serde::Serialize)]
        struct Env<'a> {
            #[serde(rename = "SHELL", skip_serializing_if = "Option::is_none")]
            shell: Option<&'a str>,
            #[serde(rename = "TERM", skip_serializing_if = "Option::is_none")]
            term: Option<&'a str>,
        }
        impl Env<'_> {
            fn is_empty(&self) -> bool {
                self.shell.is_none() && self.term.is_none()
            }
        }
        let line = Line {
            version: VERSION,
            width: self.width,
            height: self.height,
            timestamp: self.timestamp.timestamp(),
            idle_time_limit: self
                .idle_time_limit
                .map(|limit| limit.min(MAX_EVENT_TIME).as_secs_f64()),
            command: self.command.as_deref(),
            title: self.title.as_deref(),
            env: Env {
                shell: self.shell.as_deref(),
                term: self.term.as_deref(),
            },
        };
        // Serializing plain strings and numbers into a String cannot fail.
        if let Ok(json) = serde_json::to_string(&line) {
            out.push_str(&json);
        }
        out.push('\n');
    }
}

impl From<&Header> for asciicast::Header {
    fn from(header: &Header) -> Self {
        let env: HashMap<String, String> = [("SHELL", &header.shell), ("TERM", &header.term)]
            .into_iter()
            .filter_map(|(key, value)| Some((key.to_owned(), value.clone()?)))
            .collect();
        asciicast::Header {
            version: VERSION,
            width: header.width,
            height: header.height,
            timestamp: Some(header.timestamp),
            duration: None,
            idle_time_limit: header.idle_time_limit.map(|limit| limit.as_secs_f64()),
            command: header.command.clone(),
            title: header.title.clone(),
            env: (!env.is_empty()).then_some(env),
        }
    }
}

/// One thing that happened in the session, at a time since the start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Since [`Header::timestamp`]; microsecond precision.
    pub time: Duration,
    /// What happened.
    pub kind: EventKind,
}

/// The kinds of asciicast v2 events, with their data.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventKind {
    /// `o`: what the session printed to the terminal.
    Output(String),
    /// `i`: what the user typed (recorded only where the role asks for it: passwords).
    Input(String),
    /// `r`: the terminal was resized (a `window-change` request).
    Resize {
        /// New width in columns.
        cols: u32,
        /// New height in rows.
        rows: u32,
    },
    /// `m`: a labelled point in time: an expiry warning, an extension, a revocation, a
    /// kill, the exit status.
    Marker(String),
}

impl EventKind {
    /// The one-letter code asciicast v2 gives this kind.
    pub fn code(&self) -> &'static str {
        match self {
            EventKind::Output(_) => "o",
            EventKind::Input(_) => "i",
            EventKind::Resize { .. } => "r",
            EventKind::Marker(_) => "m",
        }
    }
}

impl Event {
    /// Appends the event as one JSON line, ending in `\n`.
    pub fn write_line(&self, out: &mut String) {
        let code = self.kind.code();
        match &self.kind {
            EventKind::Output(text) | EventKind::Input(text) | EventKind::Marker(text) => {
                write::write_text_event(out, self.time, code, text);
            }
            EventKind::Resize { cols, rows } => {
                write::open_line(out, self.time, code);
                // Writing into a String cannot fail.
                let _ = write!(out, "{cols}x{rows}");
                write::close_line(out);
            }
        }
    }
}

/// A recording read back: its header and events.
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    /// The first line.
    pub header: Header,
    /// Every event, in file order.
    pub events: Vec<Event>,
    /// The last line was cut short (the writer stopped mid-line, as in a crash) and was
    /// left out. Everything before it is intact.
    pub truncated: bool,
}

impl Recording {
    /// How long the session ran, as far as its events tell: the time of the latest one.
    pub fn duration(&self) -> Duration {
        self.events
            .iter()
            .map(|event| event.time)
            .max()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests;
