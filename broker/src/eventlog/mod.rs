//! The event log: the append-only, hash-chained source of truth (DESIGN.md, principle 2).
//!
//! Every state change is appended here, durably, before it takes effect; the broker's state is
//! whatever replaying the log produces. Each line is one JSON record:
//!
//! ```text
//! {"seq":1,"prev":"000…0","time":"2025-01-01T00:00:00.000Z","actor":"alice","event":{…},"hash":"…"}
//! ```
//!
//! `hash` is SHA-256 over the line's bytes before `,"hash":"`; `prev` is the previous line's
//! hash (64 zeros for the first). So an edit to any byte of any line breaks that line's hash, and
//! removing or reordering lines breaks `seq` or `prev`.
//!
//! # Layout
//! - [`EventStore`]: what the broker needs from a log, so a PostgreSQL backend can follow.
//! - [`FileLog`]: the embedded backend, `events.jsonl` in the state directory, locked.
//! - [`verify`]: `latch audit verify`, read-only, works on a log whose event types are unknown.
//!
//! The log is generic over the event payload `E` so it does not depend on the policy crate.

mod file;
mod line;
mod verify;
mod walk;

#[cfg(test)]
mod tests;

use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

pub use file::{FileLog, OpenReport, Recovery, LOG_FILE};
pub use line::{Problem, ProblemKind, GENESIS_PREV};
pub use verify::{verify, VerifyReport};

/// One record of the log, as appended and as replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<E> {
    /// Position in the log, starting at 1 and without gaps.
    pub seq: u64,
    /// Hex SHA-256 of the previous record's line ([`GENESIS_PREV`] for the first).
    pub prev: String,
    /// When the change happened, truncated to the millisecond the line stores.
    pub time: DateTime<Utc>,
    /// Who caused it: a user name, or the broker itself for expiries.
    pub actor: String,
    /// The state change.
    pub event: E,
    /// Hex SHA-256 of this record's line up to `,"hash":"`.
    pub hash: String,
}

/// What a caller's replay callback may fail with; boxed so any projection error fits and `?`
/// converts into it.
pub type ApplyError = Box<dyn std::error::Error + Send + Sync>;

/// Storage for the log: what the broker needs, whatever holds the lines.
///
/// Appends are synchronous and durable when they return; callers in async code run them on a
/// blocking thread. A backend shared by several brokers (PostgreSQL) will also use
/// [`EventStore::replay`] to follow records other brokers appended.
pub trait EventStore<E> {
    /// Appends `events` as one batch by `actor` at `time` and returns their records. The batch is
    /// durable (one fsync, or one commit) before this returns; if it returns an error, none of
    /// the events may be treated as having happened.
    fn append(
        &mut self,
        actor: &str,
        time: DateTime<Utc>,
        events: &[E],
    ) -> Result<Vec<Record<E>>, LogError>;

    /// Seq and hash of the last record: `(0, GENESIS_PREV)` for an empty log.
    fn head(&self) -> (u64, String);

    /// Reads the log from the start, verifying it, and hands every record with `seq > after` to
    /// `apply` in order. Stops at the first error, including one from `apply`.
    fn replay(
        &mut self,
        after: u64,
        apply: &mut dyn FnMut(Record<E>) -> Result<(), ApplyError>,
    ) -> Result<(), LogError>;
}

/// Why the event log could not be opened, read or appended to.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// Another process (normally another broker) holds the log's lock.
    #[error(
        "another latch broker is using the state directory {} (it holds the lock on {}); \
         stop that broker first, or give this one its own state directory (`[server] state_dir`)",
        dir.display(),
        path.display()
    )]
    Locked {
        /// The state directory.
        dir: PathBuf,
        /// The locked file.
        path: PathBuf,
    },

    /// The operating system refused a read, write, fsync or lock.
    #[error(
        "could not {action} {}: {source}; check that the state directory is writable by the \
         broker's user and that the disk has space",
        path.display()
    )]
    Io {
        /// What was being done, as a verb phrase.
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// A line other than a torn last one does not fit the chain. The log is never repaired
    /// silently: this could be tampering, and the evidence must stay as it is.
    #[error(
        "the event log {} is damaged: {why}. The broker will not start on a damaged log: run \
         `latch audit verify` to see the damage, keep a copy of the file as evidence, and \
         restore the log from a backup",
        path.display()
    )]
    Corrupt {
        /// The log file.
        path: PathBuf,
        /// 1-based line number of the first line that does not fit.
        line: u64,
        /// What is wrong with it, starting with its line number.
        why: String,
    },

    /// A line is intact (its hash and chain fit) but its event is not one this binary knows:
    /// the log was most likely written by a newer latch.
    #[error(
        "the event log {} holds an event this version of latch does not understand: {why}. \
         Run the latch version that wrote the log (or a newer one); `latch audit verify` \
         checks the log without needing to understand its events",
        path.display()
    )]
    UnknownEvent {
        /// The log file.
        path: PathBuf,
        /// 1-based line number of the record.
        line: u64,
        /// The parser's description, starting with the line number.
        why: String,
    },

    /// An event could not be written as JSON; nothing of the batch was written.
    #[error(
        "could not write an event of the batch as a single line of JSON: {why}; nothing was \
         written. This is a bug in latch; please report it"
    )]
    Encode {
        /// What serde_json or the line check said.
        why: String,
    },

    /// The time is outside what RFC 3339 can write (years 0000 to 9999).
    #[error("the time {time} cannot be written as RFC 3339; check the system clock")]
    TimeOutOfRange {
        /// The time given.
        time: DateTime<Utc>,
    },

    /// An earlier append failed in a way that leaves the file's tail uncertain, so this handle
    /// refuses to write after it (an fsync that failed once may have dropped pages for good).
    #[error(
        "an earlier write to the event log {} failed, so this broker stopped writing to it to \
         keep it intact; restart the broker, which checks and recovers the log as it opens it",
        path.display()
    )]
    Poisoned {
        /// The log file.
        path: PathBuf,
    },

    /// The caller's callback refused a replayed record.
    #[error("applying record seq {seq} of the event log failed: {source}")]
    Apply {
        /// The record's seq.
        seq: u64,
        /// What the callback returned.
        #[source]
        source: ApplyError,
    },
}

impl LogError {
    pub(crate) fn io(action: &'static str, path: &Path, source: io::Error) -> Self {
        LogError::Io {
            action,
            path: path.to_owned(),
            source,
        }
    }
}
