//! Reading a recording back: strict about what is there, tolerant of a cut-off end.
//!
//! Recordings are read by auditors long after the fact and may come from anywhere, so
//! nothing in a file can make the reader panic: every problem is a [`ParseError`] that
//! names the line. The one thing tolerated is an incomplete last line, which is what a
//! writer that stopped mid-line (a crash, a full disk) leaves; [`Recording::truncated`]
//! says it happened.

use super::{Event, EventKind, Header, Recording, MAX_EVENT_TIME, VERSION};
use chrono::DateTime;
use std::time::Duration;

/// Why a recording could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// There is no header line at all.
    #[error(
        "the recording is empty: an asciicast v2 file starts with a JSON header line; \
         check that this is the right file"
    )]
    Empty,
    /// The first line is not an asciicast v2 header.
    #[error("line 1 is not an asciicast v2 header: {reason}; check that this is a .cast file")]
    Header {
        /// What is wrong with it.
        reason: String,
    },
    /// The header is for another version of the format.
    #[error(
        "line 1: this is asciicast version {version}, and only version 2 can be read; \
         convert the recording to asciicast v2 first"
    )]
    Version {
        /// The version the header names, as written.
        version: String,
    },
    /// An event line (any line after the first) is malformed.
    #[error(
        "line {line}: {reason}; the recording is damaged at this line (every event \
         before it was read)"
    )]
    Event {
        /// The 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
}

/// [`MAX_EVENT_TIME`] in seconds, for checking what a file says.
const MAX_EVENT_SECONDS: f64 = MAX_EVENT_TIME.as_secs() as f64;

/// Reads a whole asciicast v2 recording.
///
/// Lines end in `\n` (a `\r` before it is ignored). A last line without `\n` that does
/// not parse is left out and reported as [`Recording::truncated`]; any other malformed
/// line is an error naming it.
pub fn parse(text: &str) -> Result<Recording, ParseError> {
    let mut lines = text.split_inclusive('\n').enumerate().map(|(index, line)| {
        let (line, ended) = match line.strip_suffix('\n') {
            Some(line) => (line, true),
            None => (line, false),
        };
        (index + 1, line.strip_suffix('\r').unwrap_or(line), ended)
    });
    let (_, header_line, _) = lines.next().ok_or(ParseError::Empty)?;
    let header = parse_header(header_line)?;
    let mut events = Vec::new();
    let mut truncated = false;
    for (number, line, ended) in lines {
        match parse_event(line) {
            Ok(event) => events.push(event),
            Err(_) if !ended => truncated = true,
            Err(reason) => {
                return Err(ParseError::Event {
                    line: number,
                    reason,
                })
            }
        }
    }
    Ok(Recording {
        header,
        events,
        truncated,
    })
}

/// The header as written, before its values are checked.
#[derive(serde::Deserialize)]
struct RawHeader {
    width: u32,
    height: u32,
    timestamp: Option<f64>,
    idle_time_limit: Option<f64>,
    command: Option<String>,
    title: Option<String>,
    env: Option<serde_json::Map<String, serde_json::Value>>,
}

fn parse_header(line: &str) -> Result<Header, ParseError> {
    let invalid = |reason: String| ParseError::Header { reason };
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|error| invalid(json_reason(&error)))?;
    let version = value
        .get("version")
        .ok_or_else(|| invalid("it has no \"version\"".to_owned()))?;
    if version.as_f64() != Some(f64::from(VERSION)) {
        return Err(ParseError::Version {
            version: version.to_string(),
        });
    }
    // Parsed again from the text, so that an error has a column to point at.
    let raw: RawHeader =
        serde_json::from_str(line).map_err(|error| invalid(json_reason(&error)))?;
    let seconds = raw
        .timestamp
        .ok_or_else(|| invalid("it has no \"timestamp\" (unix seconds)".to_owned()))?;
    let timestamp = timestamp_from_seconds(seconds).ok_or_else(|| {
        invalid(format!(
            "timestamp {seconds} is not a time: it must be unix seconds"
        ))
    })?;
    let idle_time_limit = match raw.idle_time_limit {
        None => None,
        Some(limit) if limit.is_finite() && (0.0..=MAX_EVENT_SECONDS).contains(&limit) => {
            Some(Duration::from_secs_f64(limit))
        }
        Some(limit) => {
            return Err(invalid(format!(
                "idle_time_limit {limit} is not a number of seconds"
            )))
        }
    };
    let env_var = |name: &str| {
        raw.env
            .as_ref()
            .and_then(|env| env.get(name))
            .and_then(|value| value.as_str())
            .map(str::to_owned)
    };
    Ok(Header {
        width: raw.width,
        height: raw.height,
        timestamp,
        idle_time_limit,
        command: raw.command,
        title: raw.title,
        term: env_var("TERM"),
        shell: env_var("SHELL"),
    })
}

/// Unix seconds, whole or fractional, as an instant; `None` outside chrono's range.
fn timestamp_from_seconds(seconds: f64) -> Option<DateTime<chrono::Utc>> {
    // Past ±2^53 an f64 no longer holds whole seconds exactly, and far past any real
    // recording; the bound also keeps the conversions below in range.
    if !seconds.is_finite() || seconds.abs() > 9.0e15 {
        return None;
    }
    let whole = seconds.floor();
    let nanos = ((seconds - whole) * 1e9).round().min(999_999_999.0) as u32;
    DateTime::from_timestamp(whole as i64, nanos)
}

/// One event line, or why it is not one.
fn parse_event(line: &str) -> Result<Event, String> {
    let (seconds, code, data): (f64, String, String) =
        serde_json::from_str(line).map_err(|error| {
            format!(
                "expected an event [seconds, \"code\", \"data\"]: {}",
                json_reason(&error)
            )
        })?;
    if !seconds.is_finite() || !(0.0..=MAX_EVENT_SECONDS).contains(&seconds) {
        return Err(format!(
            "event time {seconds} is not a number of seconds since the start"
        ));
    }
    // The format carries microseconds; rounding makes 1.234567 exactly 1.234567 s.
    let time = Duration::from_micros((seconds * 1e6).round() as u64);
    let kind = match code.as_str() {
        "o" => EventKind::Output(data),
        "i" => EventKind::Input(data),
        "m" => EventKind::Marker(data),
        "r" => parse_size(&data)
            .map(|(cols, rows)| EventKind::Resize { cols, rows })
            .ok_or_else(|| {
                format!("resize {data:?} is not a terminal size: it must be COLSxROWS, like 80x24")
            })?,
        other => {
            return Err(format!(
            "unknown event code {other:?}: asciicast v2 events are \"o\", \"i\", \"r\" and \"m\""
        ))
        }
    };
    Ok(Event { time, kind })
}

/// `COLSxROWS`, like `80x24`.
fn parse_size(data: &str) -> Option<(u32, u32)> {
    let (cols, rows) = data.split_once('x')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(cols) || !digits(rows) {
        return None;
    }
    Some((cols.parse().ok()?, rows.parse().ok()?))
}

/// A JSON error without serde_json's "at line 1 column N" (each line is parsed alone, so
/// its line number is always 1): the column is kept.
fn json_reason(error: &serde_json::Error) -> String {
    let message = error.to_string();
    let message = match message.rfind(" at line ") {
        Some(at) => &message[..at],
        None => &message,
    };
    if error.column() > 0 {
        format!("{message} (column {})", error.column())
    } else {
        message.to_owned()
    }
}
