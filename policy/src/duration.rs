//! Human durations: `90m`, `2h`, `1h30m`, `3s`, `1d`, `2w`. Units: `s`, `m`, `h`, `d`, `w`.
//!
//! Used for config values and for `--duration`. Zero, negative, unparsable and absurd
//! values (over [`MAX_DURATION`]) are errors with a message saying what was wrong.

use chrono::Duration;

/// Nothing latch handles (a grant, a timeout) may be longer than this; anything longer is
/// almost certainly a typo (`9000h`), so it is refused rather than honoured.
pub const MAX_DURATION: Duration = Duration::days(366);

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationError {
    #[error("empty duration: write a number and a unit, like 90m, 2h or 1h30m")]
    Empty,
    #[error("{input:?} is not a duration: write whole numbers with units (s, m, h, d, w) from largest to smallest, each once and without spaces, like 90m, 2h or 1h30m")]
    Invalid { input: String },
    #[error("{input:?} is zero: a duration must be positive")]
    Zero { input: String },
    #[error("{input:?} is negative: a duration must be positive")]
    Negative { input: String },
    #[error("{input:?} is longer than the 366-day limit: check for a typo")]
    TooLong { input: String },
}

/// Units from largest to smallest, with their length in seconds. Components must appear in
/// this order, each at most once, so every accepted string has one obvious reading
/// (`30m1h` is more likely a slip than an intent).
const UNITS: [(char, u64); 5] = [
    ('w', 7 * 86_400),
    ('d', 86_400),
    ('h', 3_600),
    ('m', 60),
    ('s', 1),
];

/// Parse a duration such as `1h30m`. Surrounding whitespace is ignored.
pub fn parse(input: &str) -> Result<Duration, DurationError> {
    let text = input.trim();
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let seconds = parse_seconds(body).ok_or_else(|| DurationError::Invalid {
        input: input.to_owned(),
    })?;
    let input = input.to_owned();
    match seconds {
        Seconds::Exact(0) => Err(DurationError::Zero { input }),
        _ if negative => Err(DurationError::Negative { input }),
        Seconds::Exact(n) if n <= MAX_DURATION.num_seconds().unsigned_abs() => {
            // n fits: it is at most MAX_DURATION's seconds.
            Ok(Duration::seconds(n as i64))
        }
        _ => Err(DurationError::TooLong { input }),
    }
}

/// A syntactically valid total, or one too large to count: huge inputs such as
/// `99999999999999999999h` are reported as too long, not as a parse failure.
enum Seconds {
    Exact(u64),
    Overflow,
}

/// Sum the components of an unsigned duration; `None` when the text is malformed.
fn parse_seconds(body: &str) -> Option<Seconds> {
    let mut total = Some(0u64);
    let mut rest = body;
    // Index into UNITS of the next unit allowed; enforces largest-to-smallest, once each.
    let mut next_unit = 0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let (number, after) = rest.split_at(digits);
        let unit = after.chars().next()?;
        let offset = UNITS[next_unit..].iter().position(|&(u, _)| u == unit)?;
        let (_, scale) = UNITS[next_unit + offset];
        next_unit += offset + 1;
        rest = &after[unit.len_utf8()..];
        // Any digit string too long for u64 overflows the total anyway.
        let component = number
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(scale));
        total = total.zip(component).and_then(|(t, c)| t.checked_add(c));
    }
    Some(total.map_or(Seconds::Overflow, Seconds::Exact))
}

/// Format a duration the way [`parse`] reads it, in its canonical form: `1h30m`, `3s`,
/// `2d`, `1d2h`. Sub-second parts are dropped (rounded toward zero), zero is `0s`, and a
/// negative duration gets a leading `-`. Days are the largest unit written, because `9d`
/// reads more easily than `1w2d`.
pub fn format(d: Duration) -> String {
    let seconds = d.num_seconds();
    let mut rest = seconds.unsigned_abs();
    if rest == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    if seconds < 0 {
        out.push('-');
    }
    for &(unit, scale) in &UNITS[1..] {
        let count = rest / scale;
        if count > 0 {
            out.push_str(&count.to_string());
            out.push(unit);
            rest %= scale;
        }
    }
    out
}

/// Serde adapter for `chrono::Duration` fields stored in the human form (`"1h30m"`).
/// Use with `#[serde(with = "crate::duration::serde_human")]`.
pub mod serde_human {
    use chrono::Duration;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        super::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Like [`serde_human`] for `Option<chrono::Duration>`.
pub mod serde_human_opt {
    use chrono::Duration;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&super::format(*d)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        s.map(|s| super::parse(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_single_and_combined_units() {
        let cases: &[(&str, i64)] = &[
            ("3s", 3),
            ("90m", 90 * 60),
            ("2h", 2 * 3600),
            ("1h30m", 5400),
            ("1d", 86_400),
            ("2w", 14 * 86_400),
            (
                "1w2d3h4m5s",
                7 * 86_400 + 2 * 86_400 + 3 * 3600 + 4 * 60 + 5,
            ),
            ("1d12h", 36 * 3600),
            ("0h30m", 1800),
            ("01h", 3600),
            ("  2h\t", 7200),
            ("366d", 366 * 86_400),
            ("52w2d", 366 * 86_400),
            ("8784h", 366 * 86_400),
        ];
        for &(input, seconds) in cases {
            assert_eq!(parse(input), Ok(Duration::seconds(seconds)), "{input:?}");
        }
    }

    fn invalid(input: &str) -> DurationError {
        DurationError::Invalid {
            input: input.into(),
        }
    }

    #[test]
    fn refuses_malformed_input() {
        for input in [
            "5", "abc", "1x", "1.5h", "h", "1h 30m", "30m1h", "1h1h", "1m1h", "+1h", "1H", "--1h",
            "1h-", "1h30", "h1", "１h", "1hh", "- 1h", "1h\u{0}",
        ] {
            assert_eq!(parse(input), Err(invalid(input)), "{input:?}");
        }
    }

    #[test]
    fn refuses_empty_zero_negative_and_too_long() {
        assert_eq!(parse(""), Err(DurationError::Empty));
        assert_eq!(parse("   "), Err(DurationError::Empty));
        for zero in ["0s", "0h0m", "0w", "-0s"] {
            assert_eq!(parse(zero), Err(DurationError::Zero { input: zero.into() }));
        }
        assert_eq!(
            parse("-1h"),
            Err(DurationError::Negative {
                input: "-1h".into()
            })
        );
        assert_eq!(parse("-abc"), Err(invalid("-abc")));
        assert_eq!(parse("-"), Err(invalid("-")));
        for long in [
            "367d",
            "366d1s",
            "9000h",
            "53w",
            "99999999999999999999h",
            "18446744073709551615s",
            "18446744073709551615w",
            "3000000000000000000w1s",
        ] {
            assert_eq!(
                parse(long),
                Err(DurationError::TooLong { input: long.into() }),
                "{long}"
            );
        }
    }

    #[test]
    fn error_messages_quote_input_and_say_what_to_do() {
        let msg = parse("1.5h").unwrap_err().to_string();
        assert!(
            msg.contains("\"1.5h\"") && msg.contains("like 90m"),
            "{msg}"
        );
        assert!(parse("9000h").unwrap_err().to_string().contains("366-day"));
    }

    #[test]
    fn formats_canonically() {
        let cases: &[(i64, &str)] = &[
            (3, "3s"),
            (90 * 60, "1h30m"),
            (2 * 86_400, "2d"),
            (86_400 + 2 * 3600, "1d2h"),
            (14 * 86_400, "14d"),
            (3600 + 1, "1h1s"),
            (0, "0s"),
            (-5400, "-1h30m"),
        ];
        for &(seconds, want) in cases {
            assert_eq!(format(Duration::seconds(seconds)), want);
        }
        assert_eq!(format(Duration::milliseconds(1999)), "1s");
        assert_eq!(format(Duration::milliseconds(999)), "0s");
        // Extremes must not overflow.
        assert!(format(Duration::MAX).ends_with('s'));
        assert!(format(Duration::MIN).starts_with('-'));
    }

    #[test]
    fn format_then_parse_round_trips() {
        for seconds in [
            1, 59, 60, 61, 3599, 3600, 5400, 86_399, 86_400, 90_061, 31_622_400,
        ] {
            let d = Duration::seconds(seconds);
            assert_eq!(parse(&format(d)), Ok(d), "{seconds}");
        }
    }

    #[test]
    fn serde_adapters_use_human_form() {
        #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
        struct S {
            #[serde(with = "serde_human")]
            d: Duration,
            #[serde(with = "serde_human_opt", default)]
            o: Option<Duration>,
        }
        let s = S {
            d: Duration::minutes(90),
            o: None,
        };
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, r#"{"d":"1h30m","o":null}"#);
        assert_eq!(serde_json::from_str::<S>(&json).unwrap(), s);
        let s: S = serde_json::from_str(r#"{"d":"2h","o":"3s"}"#).unwrap();
        assert_eq!(s.o, Some(Duration::seconds(3)));
        assert!(serde_json::from_str::<S>(r#"{"d":"2x"}"#).is_err());
    }
}
