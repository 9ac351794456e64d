//! Human durations: `90m`, `2h`, `1h30m`, `3s`, `1d`. Units: `s`, `m`, `h`, `d` (and `w`).
//!
//! Used for config values and for `--duration`. Zero, negative, unparsable and absurd
//! values (over [`MAX_DURATION`]) are errors with a message saying what was wrong.

use chrono::Duration;

/// Nothing latch handles (a grant, a timeout) may be longer than this; anything longer is
/// almost certainly a typo (`8000h`), so it is refused rather than honoured.
pub const MAX_DURATION: Duration = Duration::days(366);

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationError {
    #[error("empty duration: write a number and a unit, like 90m, 2h or 1h30m")]
    Empty,
    #[error("{input:?} is not a duration: write a number and a unit (s, m, h, d), like 90m, 2h or 1h30m")]
    Invalid { input: String },
    #[error("{input:?} is zero: a duration must be positive")]
    Zero { input: String },
    #[error("{input:?} is negative: a duration must be positive")]
    Negative { input: String },
    #[error("{input:?} is longer than the 366-day limit: check for a typo")]
    TooLong { input: String },
}

/// Parse a duration such as `1h30m`.
pub fn parse(input: &str) -> Result<Duration, DurationError> {
    todo!()
}

/// Format a duration the way [`parse`] reads it, shortest exact form: `1h30m`, `3s`, `2d`.
pub fn format(d: Duration) -> String {
    todo!()
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
        s.map(|s| super::parse(&s).map_err(serde::de::Error::custom)).transpose()
    }
}
