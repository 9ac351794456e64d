//! Walking a log from its first line: the one loop that open, replay and `audit verify` share, so
//! they cannot disagree about what an intact log is.

use std::io::BufRead;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;

use super::line::{Chain, Line, Problem, ProblemKind};
use super::LogError;

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

/// Reads lines until the end or the first problem, handing each verified line to `on_line`.
///
/// A final segment without a newline is torn: latch writes a record and its newline in one
/// write and fsyncs before acknowledging, so such a record was never acknowledged and no state
/// change depends on it, even when its bytes happen to parse.
pub(crate) fn walk<R, E, F>(mut reader: R, path: &Path, mut on_line: F) -> Result<Walked, LogError>
where
    R: BufRead,
    E: DeserializeOwned,
    F: for<'a> FnMut(Line<'a, E>, DateTime<Utc>) -> Result<(), LogError>,
{
    // One buffer for the whole walk: a million lines must not mean a million allocations.
    let mut buf = Vec::with_capacity(4096);
    let mut chain = Chain::new();
    let mut line_no = 0u64;
    let mut good_end = 0u64;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|source| LogError::io("read", path, source))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let Some(content) = buf.strip_suffix(b"\n") else {
            return Ok(Walked {
                lines: line_no - 1,
                good_end,
                chain,
                problem: Some(Problem {
                    line: line_no,
                    kind: ProblemKind::Torn { bytes: n as u64 },
                }),
                torn: Some(buf),
            });
        };
        match chain.check::<E>(line_no, content) {
            Ok((line, time)) => on_line(line, time)?,
            Err(problem) => {
                return Ok(Walked {
                    lines: line_no - 1,
                    good_end,
                    chain,
                    problem: Some(problem),
                    torn: None,
                })
            }
        }
        good_end += n as u64;
    }
    Ok(Walked {
        lines: line_no,
        good_end,
        chain,
        problem: None,
        torn: None,
    })
}
