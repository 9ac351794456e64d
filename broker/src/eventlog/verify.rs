//! `latch audit verify`: check a log's chain without the broker's lock or its event types.

use std::fmt;
use std::fs::File;
use std::path::Path;

use serde::de::IgnoredAny;

use super::line::{self, Problem};
use super::walk::walk;
use super::LogError;

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Lines that fit the chain, from the first.
    pub lines_verified: u64,
    /// Seq of the last line that fits (0 if none).
    pub last_seq: u64,
    /// Hash of the last line that fits ([`super::GENESIS_PREV`] if none); an auditor can compare
    /// it with a copy noted earlier to detect a rewritten chain.
    pub last_hash: String,
    /// The first line that does not fit; `None` when the whole log is intact.
    pub problem: Option<Problem>,
}

impl VerifyReport {
    /// Whether every line fits the chain.
    pub fn is_intact(&self) -> bool {
        self.problem.is_none()
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.problem {
            None => write!(
                f,
                "ok: {} lines verified, last seq {}, last hash {}",
                self.lines_verified, self.last_seq, self.last_hash
            ),
            Some(problem) => write!(
                f,
                "{problem}; the {} lines before it are intact",
                self.lines_verified
            ),
        }
    }
}

/// Walks the log at `path` and reports the first line that does not fit the chain.
///
/// Read-only and without the lock, so it runs next to a live broker; a broker mid-append may
/// then show as a torn last line. Events are checked as JSON only, so a log written by another
/// version of latch verifies too.
pub fn verify(path: &Path) -> Result<VerifyReport, LogError> {
    let file = File::open(path).map_err(|e| LogError::io("open", path, e))?;
    let walked = walk::<_, IgnoredAny, _>(file, path, |_, _| Ok(()))?;
    Ok(VerifyReport {
        lines_verified: walked.lines,
        last_seq: walked.chain.last_seq,
        last_hash: line::hex_str(&walked.chain.last_hash).to_owned(),
        problem: walked.problem,
    })
}
