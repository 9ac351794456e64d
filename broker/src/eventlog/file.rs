//! The embedded backend: `events.jsonl` in the state directory, exclusively locked.

use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions, TryLockError};
use std::io::{ErrorKind, Write as _};
use std::marker::PhantomData;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Datelike as _, Utc};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::line::{self, EncodeError, HexHash, Problem, ProblemKind};
use super::walk::{walk, Walked};
use super::{ApplyError, EventStore, LogError, Record};

/// The log's file name inside the state directory.
pub const LOG_FILE: &str = "events.jsonl";

/// The event log as a file. Holds an exclusive lock on the file for as long as it lives, so two
/// brokers can never interleave appends to the same chain.
pub struct FileLog<E> {
    /// The log file, for messages.
    path: PathBuf,
    /// Open for appending; its lock is released when it is closed on drop.
    file: File,
    /// Length of the log after the last durable append: where a failed write is rolled back to.
    len: u64,
    /// Seq of the last record.
    head_seq: u64,
    /// Hash of the last record.
    head_hash: HexHash,
    /// Set when a failed write may have left bytes on disk we cannot account for.
    poisoned: bool,
    /// Reused between batches.
    buf: Vec<u8>,
    /// `fn() -> E` so the log is Send and Sync whatever `E` is; it holds no `E`.
    _event: PhantomData<fn() -> E>,
}

/// What opening the log found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenReport {
    /// Records replayed.
    pub records: u64,
    /// Set when a torn last line was moved aside.
    pub recovery: Option<Recovery>,
}

/// A torn last line found on open and moved aside: the trace of a crash during an append that
/// was never acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// 1-based line number of the torn line.
    pub line: u64,
    /// How many bytes were moved aside.
    pub bytes: u64,
    /// Where they are now.
    pub moved_to: PathBuf,
}

impl fmt::Display for Recovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the event log's last line (line {}, {} bytes) was cut short by a crash during a write \
             that was never acknowledged; it was moved to {} and the log continues after line {}",
            self.line,
            self.bytes,
            self.moved_to.display(),
            self.line - 1
        )
    }
}

impl<E: DeserializeOwned> FileLog<E> {
    /// Opens (creating if needed) `dir/events.jsonl`, takes its lock, verifies every line and
    /// hands each record to `apply` as it is read, so the caller's state is built while the file
    /// streams by and the records are never all in memory.
    ///
    /// A torn last line is moved to `events.jsonl.torn-<unix seconds>` and reported; any other
    /// damage fails with [`LogError::Corrupt`] and changes nothing.
    pub fn open<F>(dir: &Path, mut apply: F) -> Result<(Self, OpenReport), LogError>
    where
        F: FnMut(Record<E>) -> Result<(), ApplyError>,
    {
        let path = dir.join(LOG_FILE);
        create_dir(dir)?;
        let (file, created) = open_log(&path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(LogError::Locked {
                    dir: dir.to_owned(),
                    path,
                })
            }
            Err(TryLockError::Error(source)) => return Err(LogError::io("lock", &path, source)),
        }
        if created {
            sync_dir(dir)?;
        }
        restrict_mode(&file, &path)?;

        let walked = walk(&file, &path, |line, time| {
            let seq = line.seq;
            apply(to_record(line, time)).map_err(|source| LogError::Apply { seq, source })
        })?;
        let Walked {
            lines,
            good_end,
            chain,
            problem,
            torn,
        } = walked;
        let recovery = match (problem, torn) {
            (None, _) => None,
            (Some(problem), Some(torn)) => Some(move_torn_aside(
                dir,
                &path,
                &file,
                good_end,
                problem.line,
                &torn,
            )?),
            (Some(problem), None) => return Err(damaged(path, problem)),
        };
        let log = FileLog {
            path,
            file,
            len: good_end,
            head_seq: chain.last_seq,
            head_hash: chain.last_hash,
            poisoned: false,
            buf: Vec::new(),
            _event: PhantomData,
        };
        Ok((
            log,
            OpenReport {
                records: lines,
                recovery,
            },
        ))
    }
}

impl<E> FileLog<E> {
    /// Seq and hex hash of the last record; `(0, GENESIS_PREV)` when the log is empty.
    pub fn head(&self) -> (u64, String) {
        (self.head_seq, line::hex_str(&self.head_hash).to_owned())
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl<E: Serialize + DeserializeOwned + Clone> EventStore<E> for FileLog<E> {
    fn append(
        &mut self,
        actor: &str,
        time: DateTime<Utc>,
        events: &[E],
    ) -> Result<Vec<Record<E>>, LogError> {
        if self.poisoned {
            return Err(LogError::Poisoned {
                path: self.path.clone(),
            });
        }
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let time = to_millis(time)?;
        let time_text = line::format_time(time);

        // Encode the whole batch before touching the file, so an event that cannot be encoded
        // leaves nothing behind.
        self.buf.clear();
        let mut records = Vec::with_capacity(events.len());
        let mut seq = self.head_seq;
        let mut prev = self.head_hash;
        for event in events {
            seq += 1;
            let hash = line::encode(
                &mut self.buf,
                seq,
                line::hex_str(&prev),
                &time_text,
                actor,
                event,
            )
            .map_err(|e| LogError::Encode {
                why: match e {
                    EncodeError::Json(e) => e.to_string(),
                    EncodeError::Newline => "the event's JSON contains a raw newline".into(),
                },
            })?;
            records.push(Record {
                seq,
                prev: line::hex_str(&prev).to_owned(),
                time,
                actor: actor.to_owned(),
                event: event.clone(),
                hash: line::hex_str(&hash).to_owned(),
            });
            prev = hash;
        }

        if let Err(source) = self.file.write_all(&self.buf) {
            // Roll back a partial write so the chain on disk stays whole; if even that fails,
            // the tail is unknown and only a restart (with its torn-line recovery) is safe.
            let rolled_back = self
                .file
                .set_len(self.len)
                .and_then(|()| self.file.sync_data());
            self.poisoned = rolled_back.is_err();
            return Err(LogError::io("append to", &self.path, source));
        }
        if let Err(source) = self.file.sync_data() {
            self.poisoned = true;
            return Err(LogError::io("fsync", &self.path, source));
        }
        self.len += self.buf.len() as u64;
        self.head_seq = seq;
        self.head_hash = prev;
        Ok(records)
    }

    fn head(&self) -> (u64, String) {
        FileLog::head(self)
    }

    fn replay(
        &mut self,
        after: u64,
        apply: &mut dyn FnMut(Record<E>) -> Result<(), ApplyError>,
    ) -> Result<(), LogError> {
        // A fresh descriptor reads from the start without moving anything on the locked one.
        let file = File::open(&self.path).map_err(|e| LogError::io("open", &self.path, e))?;
        let walked = walk(file, &self.path, |line, time| {
            let seq = line.seq;
            if seq <= after {
                return Ok(());
            }
            apply(to_record(line, time)).map_err(|source| LogError::Apply { seq, source })
        })?;
        // We hold the lock, so nothing but this handle writes: any problem, even a torn tail,
        // means the file was changed behind our back.
        match walked.problem {
            None => Ok(()),
            Some(problem) => Err(damaged(self.path.clone(), problem)),
        }
    }
}

fn damaged(path: PathBuf, problem: Problem) -> LogError {
    match problem.kind {
        ProblemKind::EventNotUnderstood { .. } => LogError::UnknownEvent {
            path,
            line: problem.line,
            why: problem.to_string(),
        },
        _ => LogError::Corrupt {
            path,
            line: problem.line,
            why: problem.to_string(),
        },
    }
}

fn to_record<E>(line: line::Line<'_, E>, time: DateTime<Utc>) -> Record<E> {
    Record {
        seq: line.seq,
        prev: line.prev.to_owned(),
        time,
        actor: line.actor.into_owned(),
        event: line.event,
        hash: line.hash.to_owned(),
    }
}

/// Truncates to what the line stores, so `append` returns exactly what replay will read.
fn to_millis(time: DateTime<Utc>) -> Result<DateTime<Utc>, LogError> {
    if !(0..=9999).contains(&time.year()) {
        return Err(LogError::TimeOutOfRange { time });
    }
    DateTime::from_timestamp_millis(time.timestamp_millis())
        .ok_or(LogError::TimeOutOfRange { time })
}

fn create_dir(dir: &Path) -> Result<(), LogError> {
    if dir.is_dir() {
        return Ok(());
    }
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| LogError::io("create the state directory", dir, e))?;
    // The new directory's entry must survive a crash too, or the log inside it may not.
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    Ok(())
}

/// Opens the log for reading and appending, creating it 0600; says whether it was created.
fn open_log(path: &Path) -> Result<(File, bool), LogError> {
    let mut options = OpenOptions::new();
    options.read(true).append(true).mode(0o600);
    match options.clone().create_new(true).open(path) {
        Ok(file) => Ok((file, true)),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => options
            .open(path)
            .map(|file| (file, false))
            .map_err(|e| LogError::io("open", path, e)),
        Err(e) => Err(LogError::io("create", path, e)),
    }
}

/// The audit trail names who did what; nobody but the broker's user reads it directly.
fn restrict_mode(file: &File, path: &Path) -> Result<(), LogError> {
    let meta = file
        .metadata()
        .map_err(|e| LogError::io("read the metadata of", path, e))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        tracing::warn!(
            path = %path.display(),
            "event log was readable by others (mode {mode:o}); setting it to 0600"
        );
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(|e| LogError::io("set mode 0600 on", path, e))?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| LogError::io("fsync the directory", dir, e))
}

/// Saves the torn bytes for inspection, then cuts the log back to its last complete line. In
/// that order, so a crash in between loses nothing.
fn move_torn_aside(
    dir: &Path,
    path: &Path,
    file: &File,
    good_end: u64,
    line: u64,
    torn: &[u8],
) -> Result<Recovery, LogError> {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let base = format!("{LOG_FILE}.torn-{secs}");
    let mut attempt = 1u32;
    let (mut aside, moved_to) = loop {
        let name = if attempt == 1 {
            base.clone()
        } else {
            format!("{base}-{attempt}")
        };
        let candidate = dir.join(name);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&candidate)
        {
            Ok(f) => break (f, candidate),
            // Two crashes within a second must not overwrite the first one's evidence.
            Err(e) if e.kind() == ErrorKind::AlreadyExists && attempt < 1000 => attempt += 1,
            Err(e) => return Err(LogError::io("create", &candidate, e)),
        }
    };
    aside
        .write_all(torn)
        .and_then(|()| aside.sync_all())
        .map_err(|e| LogError::io("write", &moved_to, e))?;
    sync_dir(dir)?;
    file.set_len(good_end)
        .and_then(|()| file.sync_all())
        .map_err(|e| LogError::io("truncate the torn last line of", path, e))?;
    let recovery = Recovery {
        line,
        bytes: torn.len() as u64,
        moved_to,
    };
    tracing::warn!("{recovery}");
    Ok(recovery)
}
