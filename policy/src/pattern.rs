//! Host patterns with the semantics of Go's `path/filepath.Match`.
//!
//! `*` matches any run of characters, `?` one character, `[a-z]`/`[abc]` a class, `[!x]` or
//! `[^x]` a negated class, and `\` escapes the next character. Host names contain no path
//! separator, so unlike Go no character is special to `*`. A malformed pattern (an unclosed
//! `[`, a trailing `\`, an empty class, an inverted range) is an error when the pattern is
//! parsed, never a silent non-match later.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A validated host pattern. Serialized as the pattern text it was parsed from.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct HostPattern {
    /// The text as the user wrote it; what we show back and store in events.
    source: String,
    // Implementation detail: a compiled form (e.g. a Vec of tokens) so matching never
    // re-parses and cannot fail.
}

/// Why a pattern was rejected. The message says where and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PatternError {
    /// The pattern is empty.
    #[error("empty host pattern: give a host name or a glob such as 'prod-db-*'")]
    Empty,
    /// A `[` with no matching `]`.
    #[error("unclosed '[' at position {position} in {pattern:?}: close the class with ']' or escape it as '\\['")]
    UnclosedClass { pattern: String, position: usize },
    /// A `\` at the very end.
    #[error("trailing '\\' in {pattern:?}: a backslash escapes the next character, so it cannot end the pattern")]
    TrailingEscape { pattern: String },
    /// `[]` or `[!]`.
    #[error("empty character class at position {position} in {pattern:?}")]
    EmptyClass { pattern: String, position: usize },
    /// `[z-a]` or a range with a missing end such as `[a-]`.
    #[error("bad range {range:?} at position {position} in {pattern:?}: write ranges low to high, like [a-z]")]
    BadRange { pattern: String, position: usize, range: String },
    /// Whitespace or control characters, which no host name contains.
    #[error("host pattern {pattern:?} contains whitespace or a control character")]
    BadCharacter { pattern: String },
}

impl HostPattern {
    /// Parse and validate a pattern.
    pub fn parse(pattern: &str) -> Result<HostPattern, PatternError> {
        todo!()
    }

    /// Does `host` match the whole pattern? Never fails: the pattern was validated.
    pub fn matches(&self, host: &str) -> bool {
        todo!()
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// True when the pattern contains no wildcard, so it names exactly one host.
    pub fn is_literal(&self) -> bool {
        todo!()
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl fmt::Debug for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HostPattern({:?})", self.source)
    }
}

impl std::str::FromStr for HostPattern {
    type Err = PatternError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HostPattern::parse(s)
    }
}

impl Serialize for HostPattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for HostPattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        HostPattern::parse(&s).map_err(serde::de::Error::custom)
    }
}
