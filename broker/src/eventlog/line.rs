//! The line format: how one record is written, and how one line is checked against the chain.
//!
//! A line is `{"seq":N,"prev":"<hex>","time":"<RFC 3339>","actor":"..","event":<json>,"hash":"<hex>"}`
//! and its hash is SHA-256 over the bytes before `,"hash":"`. The hash is always the last field
//! and always exactly 64 lowercase hex digits, so the hashed prefix sits at a fixed distance from
//! the end of the line: checking it needs no second parse and no re-serialization.

use std::borrow::Cow;
use std::fmt;
use std::io::Write as _;

use chrono::{DateTime, Utc};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `prev` of the first record: no record comes before it.
pub const GENESIS_PREV: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What separates the hashed prefix from the hash.
const HASH_FIELD: &[u8] = b",\"hash\":\"";
/// `,"hash":"` + 64 hex digits + `"}`: the unhashed tail of every line.
const TAIL_LEN: usize = HASH_FIELD.len() + 64 + 2;

/// A hash as its 64 lowercase hex digits, kept as bytes so the hot path compares without allocating.
pub(crate) type HexHash = [u8; 64];

pub(crate) fn hex_hash(data: &[u8]) -> HexHash {
    let digest = Sha256::digest(data);
    let mut out = [0u8; 64];
    // Cannot fail: 32 bytes always encode into exactly 64.
    let _ = hex::encode_to_slice(digest, &mut out);
    out
}

pub(crate) fn hex_str(hash: &HexHash) -> &str {
    // Hex digits are ASCII; the fallback is unreachable but keeps this free of panics.
    std::str::from_utf8(hash).unwrap_or(GENESIS_PREV)
}

/// The time as it is written: RFC 3339, UTC, milliseconds. Records carry the time truncated to
/// milliseconds so that what `append` returns equals what replay reads back.
pub(crate) fn format_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Appends one complete line (with its newline) to `out` and returns its hash.
///
/// Each value goes through serde_json on its own so the prefix text is fixed by this function,
/// not by the field order or flattening rules of a derived struct.
pub(crate) fn encode<E: Serialize>(
    out: &mut Vec<u8>,
    seq: u64,
    prev: &str,
    time: &str,
    actor: &str,
    event: &E,
) -> Result<HexHash, EncodeError> {
    let start = out.len();
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{{\"seq\":{seq},\"prev\":");
    serde_json::to_writer(&mut *out, prev).map_err(EncodeError::Json)?;
    out.extend_from_slice(b",\"time\":");
    serde_json::to_writer(&mut *out, time).map_err(EncodeError::Json)?;
    out.extend_from_slice(b",\"actor\":");
    serde_json::to_writer(&mut *out, actor).map_err(EncodeError::Json)?;
    out.extend_from_slice(b",\"event\":");
    let event_start = out.len();
    serde_json::to_writer(&mut *out, event).map_err(EncodeError::Json)?;
    // Compact serde_json never emits a raw newline, but an event holding a RawValue can; one
    // would split the record in two and make the log unreadable.
    if out[event_start..].contains(&b'\n') {
        return Err(EncodeError::Newline);
    }
    let hash = hex_hash(&out[start..]);
    out.extend_from_slice(HASH_FIELD);
    out.extend_from_slice(&hash);
    out.extend_from_slice(b"\"}\n");
    Ok(hash)
}

#[derive(Debug)]
pub(crate) enum EncodeError {
    Json(serde_json::Error),
    Newline,
}

/// One line as parsed, borrowing from the read buffer.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Line<'a, E> {
    pub seq: u64,
    pub prev: &'a str,
    pub time: &'a str,
    #[serde(borrow)]
    pub actor: Cow<'a, str>,
    pub event: E,
    pub hash: &'a str,
}

/// The first thing wrong with a log, at a 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line number in the file.
    pub line: u64,
    /// What is wrong there.
    pub kind: ProblemKind,
}

/// What is wrong with a line.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProblemKind {
    /// The line is not JSON at all (or is cut short in the middle of the log).
    NotJson {
        /// The parser's description.
        why: String,
    },
    /// The line is JSON but lacks a field, has an extra one, or a field of the wrong type.
    NotARecord {
        /// The parser's description.
        why: String,
    },
    /// The hashed prefix does not produce the hash on the line: the line was edited.
    Edited,
    /// The line does not end in `,"hash":"<64 hex>"}` as latch writes it: the line was edited.
    HashMisplaced,
    /// The sequence number is not one more than the previous line's.
    SeqBreak {
        /// The seq on this line.
        seq: u64,
        /// The seq of the line before (0 for the first line).
        after: u64,
    },
    /// `prev` is not the previous line's hash (or not 64 zeros on the first line).
    PrevMismatch,
    /// The last line has no newline: a write was cut short by a crash.
    Torn {
        /// How many bytes the incomplete line has.
        bytes: u64,
    },
    /// The line is intact but its event is not one this binary's event type understands.
    EventNotUnderstood {
        /// The parser's description.
        why: String,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let line = self.line;
        match &self.kind {
            ProblemKind::NotJson { why } => write!(f, "line {line} is not valid JSON ({why})"),
            ProblemKind::NotARecord { why } => {
                write!(f, "line {line} is JSON but not a latch log record ({why})")
            }
            ProblemKind::Edited => {
                write!(f, "line {line}: content does not match its hash (edited)")
            }
            ProblemKind::HashMisplaced => write!(
                f,
                "line {line}: does not end with its hash as latch writes it (edited)"
            ),
            ProblemKind::SeqBreak { seq, after: 0 } => write!(
                f,
                "line {line}: seq {seq} but a log starts at seq 1 (its beginning was removed)"
            ),
            ProblemKind::SeqBreak { seq, after } if seq > after => write!(
                f,
                "line {line}: seq {seq} follows {after} (a line was removed or moved)"
            ),
            ProblemKind::SeqBreak { seq, after } => write!(
                f,
                "line {line}: seq {seq} follows {after} (lines were reordered or duplicated)"
            ),
            ProblemKind::PrevMismatch if line == 1 => write!(
                f,
                "line 1: prev is not 64 zeros (the log's beginning was removed)"
            ),
            ProblemKind::PrevMismatch => write!(
                f,
                "line {line}: prev does not match line {}'s hash (lines removed or reordered)",
                line - 1
            ),
            ProblemKind::Torn { bytes } => write!(
                f,
                "line {line}: last line is incomplete (torn write; {bytes} bytes without a newline)"
            ),
            ProblemKind::EventNotUnderstood { why } => write!(
                f,
                "line {line}: the record is intact but its event is unknown to this latch ({why}); \
                 was the log written by a newer version?"
            ),
        }
    }
}

/// The running state of a hash chain: what the next line must say.
#[derive(Debug, Clone)]
pub(crate) struct Chain {
    /// Seq of the last verified line; 0 before the first.
    pub last_seq: u64,
    /// Hash of the last verified line; 64 zeros before the first.
    pub last_hash: HexHash,
}

impl Chain {
    pub fn new() -> Self {
        let mut last_hash = [0u8; 64];
        last_hash.copy_from_slice(GENESIS_PREV.as_bytes());
        Chain {
            last_seq: 0,
            last_hash,
        }
    }

    /// Parses `content` (one line without its newline), checks it against the chain and, if it
    /// fits, advances the chain. `seal` is [`seal`] of the same content; `line` is only for the
    /// report.
    pub fn check<'a, E: Deserialize<'a>>(
        &mut self,
        line: u64,
        content: &'a [u8],
        seal: &Seal,
    ) -> Result<(Line<'a, E>, DateTime<Utc>), Problem> {
        let problem = |kind| Problem { line, kind };
        // One UTF-8 check of the whole line is much cheaper than serde_json's check per string.
        let content = std::str::from_utf8(content).map_err(|e| {
            problem(ProblemKind::NotJson {
                why: format!("not UTF-8: {e}"),
            })
        })?;
        match serde_json::from_str::<Line<'a, E>>(content) {
            Ok(parsed) => {
                let time = self
                    .fits(seal, parsed.seq, parsed.prev, parsed.time)
                    .map_err(problem)?;
                Ok((parsed, time))
            }
            // Parsing again without the event type tells apart a damaged line from an intact
            // line whose event this binary does not know; errors are rare, so the cost is too.
            Err(event_err) => match serde_json::from_str::<Line<'a, IgnoredAny>>(content) {
                Ok(parsed) => {
                    let mut probe = self.clone();
                    probe
                        .fits(seal, parsed.seq, parsed.prev, parsed.time)
                        .map_err(problem)?;
                    Err(problem(ProblemKind::EventNotUnderstood {
                        why: event_err.to_string(),
                    }))
                }
                Err(e) if e.is_data() => {
                    Err(problem(ProblemKind::NotARecord { why: e.to_string() }))
                }
                Err(e) => Err(problem(ProblemKind::NotJson { why: e.to_string() })),
            },
        }
    }

    /// Checks the seal, seq and prev of a parsed line and advances the chain.
    fn fits(
        &mut self,
        seal: &Seal,
        seq: u64,
        prev: &str,
        time: &str,
    ) -> Result<DateTime<Utc>, ProblemKind> {
        let hash = seal.clone()?;
        if Some(seq) != self.last_seq.checked_add(1) {
            return Err(ProblemKind::SeqBreak {
                seq,
                after: self.last_seq,
            });
        }
        if prev.as_bytes() != self.last_hash {
            return Err(ProblemKind::PrevMismatch);
        }
        let time = DateTime::parse_from_rfc3339(time)
            .map_err(|e| ProblemKind::NotARecord {
                why: format!("time {time:?} is not an RFC 3339 time: {e}"),
            })?
            .with_timezone(&Utc);
        self.last_seq = seq;
        self.last_hash = hash;
        Ok(time)
    }
}

/// Whether a line's own hash fits its content: the line's hash, or why not.
pub(crate) type Seal = Result<HexHash, ProblemKind>;

/// Checks a line (without its newline) against its own hash. Independent of every other line,
/// so a reader thread can do it while the previous lines are being parsed.
pub(crate) fn seal(content: &[u8]) -> Seal {
    let Some(split) = content.len().checked_sub(TAIL_LEN) else {
        return Err(ProblemKind::HashMisplaced);
    };
    let (prefix, tail) = content.split_at(split);
    if !tail.starts_with(HASH_FIELD) || !tail.ends_with(b"\"}") {
        return Err(ProblemKind::HashMisplaced);
    }
    let hash = hex_hash(prefix);
    // Exact bytes, not decoded values: changing the case of a hex digit is an edit too.
    if tail[HASH_FIELD.len()..HASH_FIELD.len() + 64] != hash {
        return Err(ProblemKind::Edited);
    }
    Ok(hash)
}
