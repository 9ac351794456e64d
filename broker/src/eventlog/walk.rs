//! Walking a log from its first line: the one loop that open, replay and `audit verify` share, so
//! they cannot disagree about what an intact log is.
//!
//! Replaying a million lines must take seconds, not tens of seconds, so the walk is a two-stage
//! pipeline: a reader thread reads large chunks, splits them into lines and checks each line's
//! own hash (work independent of every other line); the calling thread parses the lines in place,
//! checks the chain and hands records on, in order.

use std::io::{self, BufRead as _, Read};
use std::path::Path;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;

use super::line::{self, Chain, Line, Problem, ProblemKind, Seal};
use super::LogError;

/// How much the reader thread reads before handing lines on.
#[cfg(not(test))]
const CHUNK: usize = 4 << 20;
/// Smaller than a line, so every test crosses chunk boundaries and has lines spanning chunks.
#[cfg(test)]
const CHUNK: usize = 200;
/// Chunks in flight between the threads: enough to keep both busy, little enough memory.
const IN_FLIGHT: usize = 3;

/// Where a walk stopped.
pub(crate) struct Walked {
    /// Complete lines that fit the chain.
    pub lines: u64,
    /// Byte offset just past the last line that fits: where a repaired log ends.
    pub good_end: u64,
    /// The chain after the last line that fits.
    pub chain: Chain,
    /// The first line that does not fit, if any.
    pub problem: Option<Problem>,
    /// The bytes of a torn last line (`problem` is then [`ProblemKind::Torn`]).
    pub torn: Option<Vec<u8>>,
}

/// Complete lines read by the reader thread, with each line's seal.
struct Chunk {
    /// The bytes; complete lines first, then (in the last chunk only) a torn tail.
    data: Vec<u8>,
    /// For each complete line: where it ends (past its newline) and its seal.
    lines: Vec<(usize, Seal)>,
    /// Set in the last chunk when the file does not end in a newline: where the torn tail starts.
    torn_from: Option<usize>,
}

/// Reads lines until the end or the first problem, handing each verified line to `on_line`.
///
/// A final segment without a newline is torn: latch writes a record and its newline in one
/// write and fsyncs before acknowledging, so such a record was never acknowledged and no state
/// change depends on it, even when its bytes happen to parse.
pub(crate) fn walk<R, E, F>(reader: R, path: &Path, mut on_line: F) -> Result<Walked, LogError>
where
    R: Read + Send,
    E: DeserializeOwned,
    F: for<'a> FnMut(Line<'a, E>, DateTime<Utc>) -> Result<(), LogError>,
{
    thread::scope(|scope| {
        let (chunks_tx, chunks) = mpsc::sync_channel(IN_FLIGHT);
        let (spare_tx, spare) = mpsc::channel();
        thread::Builder::new()
            .name("eventlog-read".into())
            .spawn_scoped(scope, move || read_chunks(reader, &chunks_tx, &spare))
            .map_err(|e| LogError::io("start a thread to read", path, e))?;
        // Returning drops `chunks`, which stops the reader at its next send; the scope then
        // joins it.
        verify_chunks(chunks, &spare_tx, path, &mut on_line)
    })
}

fn verify_chunks<E, F>(
    chunks: Receiver<io::Result<Chunk>>,
    spare: &mpsc::Sender<Vec<u8>>,
    path: &Path,
    on_line: &mut F,
) -> Result<Walked, LogError>
where
    E: DeserializeOwned,
    F: for<'a> FnMut(Line<'a, E>, DateTime<Utc>) -> Result<(), LogError>,
{
    let mut chain = Chain::new();
    let mut lines = 0u64;
    let mut good_end = 0u64;
    let stop = |lines, good_end, chain, problem, torn| {
        Ok(Walked {
            lines,
            good_end,
            chain,
            problem: Some(problem),
            torn,
        })
    };
    for chunk in chunks {
        let chunk = chunk.map_err(|e| LogError::io("read", path, e))?;
        let mut start = 0;
        for (end, seal) in &chunk.lines {
            let line_no = lines + 1;
            // `end` is past a newline the reader found, so `start < end` and both are in bounds.
            let content = chunk.data.get(start..end - 1).unwrap_or_default();
            match chain.check::<E>(line_no, content, seal) {
                Ok((line, time)) => on_line(line, time)?,
                Err(problem) => return stop(lines, good_end, chain, problem, None),
            }
            lines = line_no;
            good_end += (end - start) as u64;
            start = *end;
        }
        if let Some(from) = chunk.torn_from {
            let torn = chunk.data.get(from..).unwrap_or_default().to_vec();
            let problem = Problem {
                line: lines + 1,
                kind: ProblemKind::Torn {
                    bytes: torn.len() as u64,
                },
            };
            return stop(lines, good_end, chain, problem, Some(torn));
        }
        // The reader may be gone already; the buffer is then simply freed.
        let _ = spare.send(chunk.data);
    }
    Ok(Walked {
        lines,
        good_end,
        chain,
        problem: None,
        torn: None,
    })
}

/// The reader thread: fills chunks that end on a line boundary and seals every line in them.
fn read_chunks<R: Read>(
    mut reader: R,
    chunks: &SyncSender<io::Result<Chunk>>,
    spare: &Receiver<Vec<u8>>,
) {
    // The start of a line that continues into the next chunk.
    let mut carry = Vec::new();
    loop {
        let mut data = spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK + (CHUNK >> 4)));
        data.clear();
        data.append(&mut carry);
        let eof = match fill(&mut reader, &mut data) {
            Ok(eof) => eof,
            Err(e) => {
                let _ = chunks.send(Err(e));
                return;
            }
        };
        let (lines, complete) = seal_lines(&data);
        let torn_from = if eof {
            (complete < data.len()).then_some(complete)
        } else {
            carry.extend_from_slice(data.get(complete..).unwrap_or_default());
            data.truncate(complete);
            None
        };
        let chunk = Chunk {
            data,
            lines,
            torn_from,
        };
        if chunks.send(Ok(chunk)).is_err() || eof {
            return;
        }
    }
}

/// Finds the complete lines in `data` and seals each; returns them and where the last ends.
fn seal_lines(data: &[u8]) -> (Vec<(usize, Seal)>, usize) {
    let mut lines = Vec::with_capacity(data.len() / 256 + 1);
    let mut start = 0;
    let mut rest = data;
    // `skip_until` on a slice is std's word-at-a-time memchr, several times faster than a byte
    // loop, and cannot fail; it advances `rest` past the newline.
    while let Ok(n @ 1..) = rest.skip_until(b'\n') {
        let segment = data.get(start..start + n).unwrap_or_default();
        let Some(content) = segment.strip_suffix(b"\n") else {
            break;
        };
        lines.push((start + n, line::seal(content)));
        start += n;
    }
    (lines, start)
}

/// Reads until `data` holds at least one full chunk with a newline in it, or the file ends;
/// says whether it ended. A line longer than a chunk just makes the chunk bigger.
fn fill<R: Read>(reader: &mut R, data: &mut Vec<u8>) -> io::Result<bool> {
    loop {
        let before = data.len();
        let want = CHUNK.saturating_sub(before).max(CHUNK / 16);
        let n = reader.by_ref().take(want as u64).read_to_end(data)?;
        if n < want {
            return Ok(true);
        }
        // Only the new bytes can hold a newline: the carried-over start of a line has none, and
        // an earlier round with one would have returned.
        let has_newline = data.get(before..).is_some_and(|d| d.contains(&b'\n'));
        if data.len() >= CHUNK && has_newline {
            return Ok(false);
        }
    }
}
