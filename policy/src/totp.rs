//! RFC 6238 TOTP (HMAC-SHA1, 6 digits, 30 s steps), for break-glass.
//!
//! These are the parameters every authenticator app uses by default, so a secret from the
//! config can be enrolled by scanning or typing it, with nothing to configure.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// Length of one time step, in seconds (RFC 6238's default X).
const STEP_SECONDS: i64 = 30;
/// Digits in a code; `10^DIGITS` is the modulus of RFC 4226's dynamic truncation.
const DIGITS: usize = 6;
const MODULUS: u32 = 1_000_000;

/// Decode an RFC 4648 base32 secret (case-insensitive, padding and spaces ignored).
///
/// Apps and providers show secrets grouped in fours and in either case, so both are
/// accepted. Lengths no encoder produces (1, 3 or 6 characters past a multiple of 8) are
/// refused: they mean the secret was cut short while copying.
pub fn decode_secret(base32: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(base32.len() * 5 / 8);
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    let mut count = 0usize;
    for c in base32.chars() {
        if c == '=' || c.is_whitespace() {
            continue;
        }
        let value = match c.to_ascii_uppercase() {
            u @ 'A'..='Z' => u as u32 - 'A' as u32,
            d @ '2'..='7' => d as u32 - '2' as u32 + 26,
            _ => {
                return Err(format!(
                    "not base32: {c:?} is not one of A-Z and 2-7 (did a 0, 1 or 8 \
                    slip in for O, I or B?)"
                ))
            }
        };
        count += 1;
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    if count == 0 {
        return Err("empty secret: give the base32 secret, like JBSWY3DPEHPK3PXP".to_owned());
    }
    if matches!(count % 8, 1 | 3 | 6) {
        return Err(format!(
            "base32 secret has {count} characters, a length no encoder produces: was it cut short?"
        ));
    }
    Ok(out)
}

/// The 6-digit code for the 30-second step containing `now`.
pub fn code_at(secret: &[u8], now: DateTime<Utc>) -> String {
    match hotp(secret, step(now)) {
        Some(code) => format!("{code:0DIGITS$}"),
        // HMAC takes keys of any length, so this is unreachable; an empty string can never
        // equal a code, so even if it were reached it would not let anyone in.
        None => String::new(),
    }
}

/// Accept the code for `now`'s step or one step either side (clock skew).
pub fn verify(secret: &[u8], code: &str, now: DateTime<Utc>) -> bool {
    let code = code.trim();
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let current = step(now);
    // Check every candidate without stopping early so timing does not tell which step
    // (if any) matched.
    let mut ok = false;
    for counter in [
        current.saturating_sub(1),
        current,
        current.saturating_add(1),
    ] {
        if let Some(expected) = hotp(secret, counter) {
            ok |= constant_time_eq(format!("{expected:0DIGITS$}").as_bytes(), code.as_bytes());
        }
    }
    ok
}

/// RFC 6238's T: whole steps since the Unix epoch. Times before 1970 are clamped to step 0
/// rather than wrapping to a huge counter.
fn step(now: DateTime<Utc>) -> u64 {
    u64::try_from(now.timestamp().div_euclid(STEP_SECONDS)).unwrap_or(0)
}

/// RFC 4226 HOTP with dynamic truncation, as a number below 10^6.
fn hotp(secret: &[u8], counter: u64) -> Option<u32> {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).ok()?;
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest.last()? & 0x0f);
    let word = digest.get(offset..offset + 4)?;
    let binary = u32::from_be_bytes([word[0] & 0x7f, word[1], word[2], word[3]]);
    Some(binary % MODULUS)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(unix: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(unix, 0).unwrap()
    }

    /// RFC 6238 appendix B's secret for the SHA1 vectors.
    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn matches_rfc_6238_sha1_vectors_truncated_to_six_digits() {
        // The RFC lists 8-digit codes; 6-digit codes are their last six digits.
        let vectors: &[(i64, &str)] = &[
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ];
        for &(time, eight) in vectors {
            assert_eq!(code_at(RFC_SECRET, at(time)), eight[2..], "T={time}");
        }
    }

    #[test]
    fn accepts_one_step_of_skew_either_side_and_no_more() {
        let now = at(1_111_111_111);
        let code = code_at(RFC_SECRET, now);
        assert!(verify(RFC_SECRET, &code, now));
        assert!(verify(
            RFC_SECRET,
            &code,
            now + chrono::Duration::seconds(30)
        ));
        assert!(verify(
            RFC_SECRET,
            &code,
            now - chrono::Duration::seconds(30)
        ));
        assert!(!verify(
            RFC_SECRET,
            &code,
            now + chrono::Duration::seconds(60)
        ));
        assert!(!verify(
            RFC_SECRET,
            &code,
            now - chrono::Duration::seconds(60)
        ));
    }

    #[test]
    fn refuses_malformed_codes() {
        let now = at(59);
        assert!(verify(RFC_SECRET, " 287082\n", now));
        for bad in [
            "", "28708", "2870822", "94287082", "28708a", "287 082", "+87082", "２87082",
        ] {
            assert!(!verify(RFC_SECRET, bad, now), "{bad:?}");
        }
        assert!(!verify(b"another secret", "287082", now));
    }

    #[test]
    fn times_before_the_epoch_do_not_wrap() {
        assert_eq!(code_at(RFC_SECRET, at(-1)), code_at(RFC_SECRET, at(0)));
    }

    #[test]
    fn decodes_base32_leniently_about_case_spacing_and_padding() {
        // RFC 4648 section 10 vectors.
        let vectors: &[(&str, &str)] = &[
            ("MY======", "f"),
            ("MZXQ====", "fo"),
            ("MZXW6===", "foo"),
            ("MZXW6YQ=", "foob"),
            ("MZXW6YTB", "fooba"),
            ("MZXW6YTBOI======", "foobar"),
        ];
        for &(encoded, plain) in vectors {
            assert_eq!(
                decode_secret(encoded).unwrap(),
                plain.as_bytes(),
                "{encoded}"
            );
        }
        assert_eq!(decode_secret("mzxw 6ytb oi").unwrap(), b"foobar");
        assert_eq!(
            decode_secret("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap(),
            RFC_SECRET
        );
    }

    #[test]
    fn refuses_bad_base32_with_a_reason() {
        assert!(decode_secret("").unwrap_err().contains("empty"));
        assert!(decode_secret("  ==").unwrap_err().contains("empty"));
        assert!(decode_secret("MZXW1YTB").unwrap_err().contains("'1'"));
        assert!(decode_secret("MZX").unwrap_err().contains("cut short"));
        assert!(decode_secret("MZXW6Y").unwrap_err().contains("cut short"));
        assert!(decode_secret("é").is_err());
    }
}
