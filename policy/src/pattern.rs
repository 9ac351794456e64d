//! Host patterns with the semantics of Go's `path/filepath.Match`.
//!
//! `*` matches any run of characters, `?` one character, `[a-z]`/`[abc]` a class, `[!x]` or
//! `[^x]` a negated class, and `\` escapes the next character. Host names contain no path
//! separator, so unlike Go no character is special to `*`. A malformed pattern (an unclosed
//! `[`, a trailing `\`, an empty class, an inverted range) is an error when the pattern is
//! parsed, never a silent non-match later.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// A validated host pattern. Serialized as the pattern text it was parsed from.
///
/// Immutable once parsed, so both parts are shared: a grant, its copy in the decision's
/// per-user index and a request event hold the same pattern, and cloning it costs two
/// reference counts instead of two allocations.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct HostPattern {
    /// The text as the user wrote it; what we show back and store in events.
    source: Arc<str>,
    /// Compiled once at parse so matching never re-parses and cannot fail.
    tokens: Arc<[Token]>,
    /// The literal characters the pattern starts with (`prod-db-` of `prod-db-*`), and how
    /// many tokens they are. Most hosts a grant is checked against fail on this prefix, and
    /// a byte comparison rules them out before any token is matched.
    prefix: Arc<str>,
    prefix_tokens: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Token {
    /// One exact character (escapes already removed).
    Literal(char),
    /// `?`
    AnyChar,
    /// `*`; consecutive stars are collapsed into one, which matches the same set of strings.
    Star,
    /// `[...]`: inclusive character ranges (a single character is a range of one).
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

/// Why a pattern was rejected. The message says where and what to do.
///
/// Positions count characters (not bytes) from 1, because they are read by people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PatternError {
    /// The pattern is empty.
    #[error("empty host pattern: give a host name or a glob such as 'prod-db-*'")]
    Empty,
    /// A `[` with no matching `]`.
    #[error("unclosed '[' at position {position} in {pattern:?}: close the class with ']' or escape it as '\\['")]
    UnclosedClass { pattern: String, position: usize },
    /// A `\` at the very end (also inside an unclosed class).
    #[error("trailing '\\' in {pattern:?}: a backslash escapes the next character, so it cannot end the pattern")]
    TrailingEscape { pattern: String },
    /// `[]` or `[!]`. (A literal `]` inside a class must be escaped: `[\]]`.)
    #[error("empty character class at position {position} in {pattern:?}: put at least one character between the brackets, and escape a literal ']' as '\\]'")]
    EmptyClass { pattern: String, position: usize },
    /// `[z-a]`, a range with a missing end such as `[a-]` or `[-a]`, or a stray `-` in a
    /// class (`[a-b-c]`); a literal `-` in a class must be escaped as `\-`, as in Go.
    #[error("bad range {range:?} at position {position} in {pattern:?}: write ranges low to high, like [a-z], and escape a literal '-' as '\\-'")]
    BadRange {
        pattern: String,
        position: usize,
        range: String,
    },
    /// Whitespace or control characters, which no host name contains.
    #[error("host pattern {pattern:?} contains whitespace or a control character")]
    BadCharacter { pattern: String },
}

impl HostPattern {
    /// Parse and validate a pattern.
    ///
    /// Go checks a pattern only as far as matching gets, so `filepath.Match("a[", "b")`
    /// succeeds; we check the whole pattern here so a broken grant can never be stored.
    pub fn parse(pattern: &str) -> Result<HostPattern, PatternError> {
        if pattern.is_empty() {
            return Err(PatternError::Empty);
        }
        if pattern.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(PatternError::BadCharacter {
                pattern: pattern.to_owned(),
            });
        }
        let tokens = Compiler::new(pattern).compile()?;
        let prefix: String = tokens
            .iter()
            .map_while(|t| match t {
                Token::Literal(c) => Some(*c),
                _ => None,
            })
            .collect();
        let prefix_tokens = prefix.chars().count();
        Ok(HostPattern {
            source: pattern.into(),
            tokens: tokens.into(),
            prefix: prefix.into(),
            prefix_tokens,
        })
    }

    /// Does `host` match the whole pattern? Never fails: the pattern was validated.
    pub fn matches(&self, host: &str) -> bool {
        match host.strip_prefix(&*self.prefix) {
            Some(rest) => match_tokens(&self.tokens[self.prefix_tokens..], rest),
            None => false,
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// True when the pattern contains no wildcard, so it names exactly one host.
    pub fn is_literal(&self) -> bool {
        self.prefix_tokens == self.tokens.len()
    }

    /// For a literal pattern, the one host name it matches (escapes removed, so `db\-1`
    /// gives `db-1`); `None` when the pattern has a wildcard.
    pub fn literal(&self) -> Option<String> {
        self.is_literal().then(|| self.prefix.to_string())
    }
}

/// Turns pattern text into tokens, reporting the first syntax error.
struct Compiler<'a> {
    pattern: &'a str,
    chars: Vec<char>,
    /// Index of the next unread character.
    pos: usize,
}

impl<'a> Compiler<'a> {
    fn new(pattern: &'a str) -> Self {
        Compiler {
            pattern,
            chars: pattern.chars().collect(),
            pos: 0,
        }
    }

    fn compile(mut self) -> Result<Vec<Token>, PatternError> {
        let mut tokens = Vec::new();
        while let Some(c) = self.next() {
            let token = match c {
                '*' => {
                    if tokens.last() == Some(&Token::Star) {
                        continue;
                    }
                    Token::Star
                }
                '?' => Token::AnyChar,
                '\\' => Token::Literal(self.next().ok_or_else(|| self.trailing_escape())?),
                '[' => self.class(self.pos - 1)?,
                c => Token::Literal(c),
            };
            tokens.push(token);
        }
        Ok(tokens)
    }

    fn next(&mut self) -> Option<char> {
        let c = self.chars.get(self.pos).copied();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    /// Parse a class body; `open` is the index of its `[`.
    fn class(&mut self, open: usize) -> Result<Token, PatternError> {
        let negated = matches!(self.peek(), Some('!') | Some('^'));
        if negated {
            self.pos += 1;
        }
        let mut ranges = Vec::new();
        loop {
            let start = self.pos;
            let lo = match self.next() {
                None => return Err(self.unclosed(open)),
                // As in Go, `]` closes the class only after at least one range, so `[]a]`
                // is an empty class followed by junk rather than a class containing `]`.
                Some(']') if !ranges.is_empty() => break,
                Some(']') => {
                    return Err(PatternError::EmptyClass {
                        pattern: self.pattern.to_owned(),
                        position: open + 1,
                    })
                }
                Some('-') => return Err(self.bad_range(start, self.class_end())),
                Some('\\') => self.escaped()?,
                Some(c) => c,
            };
            let hi = if self.peek() == Some('-') {
                self.pos += 1;
                let hi = match self.next() {
                    None => return Err(self.unclosed(open)),
                    // `[a-]`: the range text stops before the `]` that cut it short.
                    Some(']') => return Err(self.bad_range(start, self.pos - 1)),
                    Some('-') => return Err(self.bad_range(start, self.pos)),
                    Some('\\') => self.escaped()?,
                    Some(c) => c,
                };
                if hi < lo {
                    return Err(self.bad_range(start, self.pos));
                }
                hi
            } else {
                lo
            };
            ranges.push((lo, hi));
        }
        Ok(Token::Class { negated, ranges })
    }

    /// The character after a `\` inside a class.
    fn escaped(&mut self) -> Result<char, PatternError> {
        self.next().ok_or_else(|| self.trailing_escape())
    }

    fn trailing_escape(&self) -> PatternError {
        PatternError::TrailingEscape {
            pattern: self.pattern.to_owned(),
        }
    }

    fn unclosed(&self, open: usize) -> PatternError {
        PatternError::UnclosedClass {
            pattern: self.pattern.to_owned(),
            position: open + 1,
        }
    }

    /// A bad range spanning character indices `start..end`.
    fn bad_range(&self, start: usize, end: usize) -> PatternError {
        let end = end.clamp(start, self.chars.len());
        PatternError::BadRange {
            pattern: self.pattern.to_owned(),
            position: start + 1,
            range: self.chars[start..end].iter().collect(),
        }
    }

    /// Index of the next `]` at or after the cursor, or the end: where a range that began
    /// with a stray `-` would have ended, so the error can show it whole (`-x` in `[-x]`).
    fn class_end(&self) -> usize {
        self.chars[self.pos..]
            .iter()
            .position(|&c| c == ']')
            .map_or(self.chars.len(), |i| self.pos + i)
    }
}

impl Token {
    fn matches_char(&self, c: char) -> bool {
        match self {
            Token::Literal(l) => *l == c,
            Token::AnyChar => true,
            Token::Star => false,
            Token::Class { negated, ranges } => {
                ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
            }
        }
    }
}

/// Glob match with one backtrack point: on a mismatch, let the most recent `*` swallow one
/// more character and retry. Earlier stars never need revisiting because a later star can
/// absorb anything they could, so this is O(pattern × text) with no recursion.
///
/// Works on the `&str` in place (byte offsets, decoding one character at a time): it runs
/// for every open grant on every connection, and must not allocate.
fn match_tokens(tokens: &[Token], text: &str) -> bool {
    let next_char = |at: usize| text.get(at..).and_then(|rest| rest.chars().next());
    let (mut t, mut s) = (0, 0);
    // (token index after the star, byte offset the star is currently matched up to)
    let mut backtrack: Option<(usize, usize)> = None;
    while let Some(c) = next_char(s) {
        match tokens.get(t) {
            Some(Token::Star) => {
                t += 1;
                backtrack = Some((t, s));
                continue;
            }
            Some(tok) if tok.matches_char(c) => {
                t += 1;
                s += c.len_utf8();
                continue;
            }
            _ => {}
        }
        match backtrack {
            // The star swallows the character at `bs` (there is one: `bs` was a position
            // the loop read a character at).
            Some((bt, bs)) => {
                let swallowed = next_char(bs).map_or(1, char::len_utf8);
                t = bt;
                s = bs + swallowed;
                backtrack = Some((bt, s));
            }
            None => return false,
        }
    }
    tokens[t.min(tokens.len())..]
        .iter()
        .all(|tok| *tok == Token::Star)
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
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = HostPattern;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a host pattern")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<HostPattern, E> {
                HostPattern::parse_shared(text).map_err(E::custom)
            }
        }
        d.deserialize_str(Text)
    }
}

/// Patterns compiled on this thread, by their text, so decoding the event log (a
/// `requested` event per grant, a few hundred distinct patterns among hundreds of thousands)
/// compiles each pattern once and every grant with that pattern shares one copy. Bounded:
/// past `SHARED_MAX` distinct patterns new ones are compiled and not kept. Patterns are
/// immutable, so sharing changes nothing but time and memory.
const SHARED_MAX: usize = 4096;

thread_local! {
    static SHARED: std::cell::RefCell<std::collections::HashMap<Box<str>, HostPattern>> =
        std::cell::RefCell::default();
}

impl HostPattern {
    /// As [`HostPattern::parse`], reusing the compiled pattern when this thread has seen the
    /// same text before.
    pub fn parse_shared(pattern: &str) -> Result<HostPattern, PatternError> {
        if let Some(hit) = SHARED.with(|m| m.borrow().get(pattern).cloned()) {
            return Ok(hit);
        }
        let parsed = HostPattern::parse(pattern)?;
        SHARED.with(|m| {
            let mut m = m.borrow_mut();
            if m.len() < SHARED_MAX {
                m.insert(pattern.into(), parsed.clone());
            }
        });
        Ok(parsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Go's `match_test.go` table, minus the cases about `/` (see
    /// `star_and_question_cross_slash_unlike_go`), plus host-shaped cases.
    const MATCH_CASES: &[(&str, &str, bool)] = &[
        ("abc", "abc", true),
        ("*", "abc", true),
        ("*c", "abc", true),
        ("a*", "a", true),
        ("a*", "abc", true),
        ("a*b*c*d*e*f", "axbxcxdxef", true),
        ("a*b*c*d*e*f", "axbxcxdxexxxf", true),
        ("a*b*c*d*e*f", "axbxcxdxexxxffg", false),
        ("a*b?c*x", "abxbbxdbxebxczzx", true),
        ("a*b?c*x", "abxbbxdbxebxczzy", false),
        ("ab[c]", "abc", true),
        ("ab[b-d]", "abc", true),
        ("ab[e-g]", "abc", false),
        ("ab[^c]", "abc", false),
        ("ab[^b-d]", "abc", false),
        ("ab[^e-g]", "abc", true),
        ("ab[!c]", "abc", false),
        ("ab[!e-g]", "abc", true),
        ("a\\*b", "a*b", true),
        ("a\\*b", "ab", false),
        ("a\\*b", "axb", false),
        ("a?b", "a☺b", true),
        ("a[^a]b", "a☺b", true),
        ("a???b", "a☺b", false),
        ("a[^a][^a][^a]b", "a☺b", false),
        ("[a-ζ]*", "α", true),
        ("*[a-ζ]", "A", false),
        ("[\\]a]", "]", true),
        ("[\\]a]", "a", true),
        ("[\\-]", "-", true),
        ("[x\\-]", "x", true),
        ("[x\\-]", "-", true),
        ("[x\\-]", "z", false),
        ("[\\-x]", "x", true),
        ("[\\-x]", "-", true),
        ("[\\-x]", "a", false),
        ("[\\\\]", "\\", true),
        ("[\\!a]", "!", true),
        ("[!\\!]", "!", false),
        ("[a\\-z]", "m", false),
        ("*x", "xxx", true),
        // Host-shaped patterns.
        ("prod-db-*", "prod-db-01", true),
        ("prod-db-*", "prod-db-", true),
        ("prod-db-*", "prod-web-01", false),
        ("prod-db-*", "staging-prod-db-01", false),
        ("prod-db-0?", "prod-db-01", true),
        ("prod-db-0?", "prod-db-011", false),
        ("prod-db-0[1-3]", "prod-db-02", true),
        ("prod-db-0[1-3]", "prod-db-04", false),
        ("prod-db-0[!1-3]", "prod-db-04", true),
        ("prod-*-0[13]", "prod-web-03", true),
        ("*.example.com", "db.example.com", true),
        ("*.example.com", "example.com", false),
        ("*-*-*", "a-b-c", true),
        ("*-*-*", "a-b", false),
        ("**", "", true),
        ("a**b", "ab", true),
        ("a**b", "axyzb", true),
        ("db\\-1", "db-1", true),
        ("web", "web", true),
        ("web", "Web", false),
        ("web", "webb", false),
        ("web", "", false),
        ("?", "", false),
        ("[ab][cd]", "ad", true),
        ("[a-cx-z]", "y", true),
        ("[a-cx-z]", "m", false),
        ("[日本]*", "本-01", true),
        // A star backtracking over multibyte characters (matching walks UTF-8 in place).
        ("*☺x", "☺☺x", true),
        ("a*☺", "aé☺", true),
        ("*é?", "ééé", true),
        ("*é?", "éé", true),
        ("*é?", "é", false),
    ];

    #[test]
    fn decoded_patterns_are_compiled_once_and_shared() {
        let a: HostPattern = serde_json::from_str(r#""shared-db-*""#).unwrap();
        let b: HostPattern = serde_json::from_str(r#""shared-db-*""#).unwrap();
        assert_eq!(a, HostPattern::parse("shared-db-*").unwrap());
        assert!(Arc::ptr_eq(&a.tokens, &b.tokens), "one compiled copy");
        assert!(b.matches("shared-db-7") && !b.matches("db-7"));
        // Escaped JSON text decodes to the same pattern; a bad one is still refused.
        let c: HostPattern = serde_json::from_str(r#""shared\u002ddb-*""#).unwrap();
        assert_eq!(c, a);
        let bad = serde_json::from_str::<HostPattern>(r#""db-[""#).unwrap_err();
        assert!(bad.to_string().contains("unclosed '['"), "{bad}");
    }

    #[test]
    fn match_table_follows_go_filepath_match() {
        for &(pattern, host, want) in MATCH_CASES {
            let p = HostPattern::parse(pattern).unwrap_or_else(|e| panic!("{pattern:?}: {e}"));
            assert_eq!(p.matches(host), want, "pattern {pattern:?} host {host:?}");
        }
    }

    #[test]
    fn star_and_question_cross_slash_unlike_go() {
        // Host names have no separator, so nothing is special to `*` or `?`.
        assert!(HostPattern::parse("a*").unwrap().matches("ab/c"));
        assert!(HostPattern::parse("a?b").unwrap().matches("a/b"));
        assert!(HostPattern::parse("a*/b").unwrap().matches("a/c/b"));
    }

    fn err(pattern: &str) -> PatternError {
        match HostPattern::parse(pattern) {
            Ok(p) => panic!("{pattern:?} parsed as {p:?}"),
            Err(e) => e,
        }
    }

    fn bad_range(pattern: &str, position: usize, range: &str) -> PatternError {
        PatternError::BadRange {
            pattern: pattern.into(),
            position,
            range: range.into(),
        }
    }

    #[test]
    fn go_bad_patterns_are_errors_at_parse() {
        let cases: &[(&str, PatternError)] = &[
            (
                "[]a]",
                PatternError::EmptyClass {
                    pattern: "[]a]".into(),
                    position: 1,
                },
            ),
            ("[-]", bad_range("[-]", 2, "-")),
            ("[x-]", bad_range("[x-]", 2, "x-")),
            ("[-x]", bad_range("[-x]", 2, "-x")),
            (
                "\\",
                PatternError::TrailingEscape {
                    pattern: "\\".into(),
                },
            ),
            ("[a-b-c]", bad_range("[a-b-c]", 5, "-c")),
            (
                "[",
                PatternError::UnclosedClass {
                    pattern: "[".into(),
                    position: 1,
                },
            ),
            (
                "[^",
                PatternError::UnclosedClass {
                    pattern: "[^".into(),
                    position: 1,
                },
            ),
            (
                "[^bc",
                PatternError::UnclosedClass {
                    pattern: "[^bc".into(),
                    position: 1,
                },
            ),
            (
                "a[",
                PatternError::UnclosedClass {
                    pattern: "a[".into(),
                    position: 2,
                },
            ),
            (
                "a/b[",
                PatternError::UnclosedClass {
                    pattern: "a/b[".into(),
                    position: 4,
                },
            ),
        ];
        for (pattern, want) in cases {
            assert_eq!(&err(pattern), want, "pattern {pattern:?}");
        }
    }

    #[test]
    fn every_error_variant_is_reachable() {
        assert_eq!(err(""), PatternError::Empty);
        assert!(matches!(
            err("db-[0-9"),
            PatternError::UnclosedClass { position: 4, .. }
        ));
        assert!(matches!(err("db\\"), PatternError::TrailingEscape { .. }));
        assert!(matches!(err("db[a\\"), PatternError::TrailingEscape { .. }));
        assert!(matches!(
            err("db-[]"),
            PatternError::EmptyClass { position: 4, .. }
        ));
        assert!(matches!(
            err("db-[!]"),
            PatternError::EmptyClass { position: 4, .. }
        ));
        assert!(matches!(
            err("db-[^]"),
            PatternError::EmptyClass { position: 4, .. }
        ));
        assert_eq!(err("db-[z-a]"), bad_range("db-[z-a]", 5, "z-a"));
        assert_eq!(err("db-[a--]"), bad_range("db-[a--]", 5, "a--"));
        assert_eq!(err("[ζ-a]"), bad_range("[ζ-a]", 2, "ζ-a"));
        for bad in [
            "db 01", " db", "db\t", "db\n", "db\u{7f}", "db\\ 1", "db\u{a0}",
        ] {
            assert_eq!(
                err(bad),
                PatternError::BadCharacter {
                    pattern: bad.into()
                },
                "{bad:?}"
            );
        }
    }

    #[test]
    fn error_messages_say_where_and_what_to_do() {
        let msg = err("db-[0-9").to_string();
        assert!(
            msg.contains("position 4") && msg.contains("close the class"),
            "{msg}"
        );
        let msg = err("[z-a]").to_string();
        assert!(
            msg.contains("\"z-a\"") && msg.contains("low to high"),
            "{msg}"
        );
    }

    #[test]
    fn positions_count_characters_not_bytes() {
        assert!(matches!(
            err("ζζ["),
            PatternError::UnclosedClass { position: 3, .. }
        ));
    }

    #[test]
    fn literal_patterns_name_one_host() {
        let p = HostPattern::parse("prod-db-01").unwrap();
        assert!(p.is_literal());
        assert_eq!(p.literal().as_deref(), Some("prod-db-01"));
        let p = HostPattern::parse("db\\-\\*").unwrap();
        assert!(p.is_literal());
        assert_eq!(p.literal().as_deref(), Some("db-*"));
        assert!(p.matches("db-*"));
        for wild in ["db-*", "db-?", "db-[12]", "*"] {
            let p = HostPattern::parse(wild).unwrap();
            assert!(!p.is_literal(), "{wild}");
            assert_eq!(p.literal(), None, "{wild}");
        }
    }

    #[test]
    fn keeps_source_text_and_round_trips_through_serde() {
        let p: HostPattern = "prod-[a-c]*".parse().unwrap();
        assert_eq!(p.as_str(), "prod-[a-c]*");
        assert_eq!(p.to_string(), "prod-[a-c]*");
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, "\"prod-[a-c]*\"");
        let back: HostPattern = serde_json::from_str(&json).unwrap();
        assert_eq!(back, p);
        assert!(serde_json::from_str::<HostPattern>("\"db-[\"").is_err());
    }

    #[test]
    fn pathological_stars_stay_fast() {
        let p = HostPattern::parse(&("a*".repeat(50) + "c")).unwrap();
        let host = "a".repeat(200) + "b";
        assert!(!p.matches(&host));
        assert!(p.matches(&("a".repeat(200) + "c")));
    }
}
