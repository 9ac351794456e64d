//! Re-joining UTF-8 text that SSH split across packets.
//!
//! A channel delivers bytes in whatever pieces the sender's buffers produced, so a
//! multibyte character (`é`, `€`, `😀`) is routinely cut between two packets. Decoding
//! each packet on its own would turn both halves into U+FFFD. A [`Utf8Joiner`], one per
//! stream direction, holds back an incomplete trailing sequence (at most 3 bytes) until
//! the next piece arrives.
//!
//! Invalid bytes are replaced with U+FFFD exactly as [`String::from_utf8_lossy`] would
//! replace them in the whole stream at once: the text that comes out does not depend on
//! where the stream was split, so a recording of the same bytes is the same recording.

use std::str;

/// U+FFFD REPLACEMENT CHARACTER, what invalid bytes become.
const REPLACEMENT: &str = "\u{fffd}";

/// Decodes one byte stream into UTF-8 text, piece by piece.
///
/// The concatenation of everything [`push`](Self::push) and [`finish`](Self::finish)
/// append equals `String::from_utf8_lossy` of the concatenated input, however the input
/// was split.
#[derive(Debug, Default, Clone)]
pub struct Utf8Joiner {
    /// The start of a character whose remaining bytes have not arrived yet: always a
    /// valid but incomplete UTF-8 prefix, so at most 3 bytes.
    carry: [u8; 3],
    /// How many bytes of `carry` are in use.
    carry_len: u8,
}

impl Utf8Joiner {
    /// A joiner with nothing held back.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether an incomplete character is held back, waiting for its remaining bytes.
    pub fn has_pending(&self) -> bool {
        self.carry_len > 0
    }

    /// Decodes `bytes`, appending all complete text to `out`. An incomplete character at
    /// the end is held back for the next call; invalid bytes become U+FFFD.
    pub fn push(&mut self, bytes: &[u8], out: &mut String) {
        self.push_with(bytes, |text| out.push_str(text));
    }

    /// Decodes `bytes` like [`push`](Self::push), handing the text to `piece` in pieces
    /// (runs of the input that were valid, borrowed without copying, and U+FFFD for
    /// what was not), so a caller that transforms the text (escaping it) need not copy
    /// it first.
    pub fn push_with(&mut self, mut bytes: &[u8], mut piece: impl FnMut(&str)) {
        if self.carry_len > 0 {
            bytes = self.complete_carry(bytes, &mut piece);
        }
        // simdutf8 validates 16 or 32 bytes per instruction, where `str::from_utf8` goes
        // byte by byte through anything that is not ASCII: several times the speed on
        // text in most languages, and text is what sessions print.
        let rest = match simdutf8::compat::from_utf8(bytes) {
            Ok(text) => {
                if !text.is_empty() {
                    piece(text);
                }
                return;
            }
            Err(error) => {
                let (valid, rest) = bytes.split_at(error.valid_up_to());
                if !valid.is_empty() {
                    // Valid by the error's own account; checking again is the price of
                    // `#![forbid(unsafe_code)]`, paid only where input is invalid.
                    piece(simdutf8::basic::from_utf8(valid).unwrap_or_default());
                }
                rest
            }
        };
        // Invalid input is most likely binary, with an error every few bytes, where a
        // SIMD validator restarted after each one costs more than it saves. `Utf8Chunks`
        // splits input exactly as `from_utf8_lossy` does: valid runs, each followed by
        // one maximal invalid sequence.
        // The pieces are tiny there, so they are gathered and handed on at once.
        let mut text = String::with_capacity(rest.len() * 3);
        let mut chunks = rest.utf8_chunks().peekable();
        while let Some(chunk) = chunks.next() {
            text.push_str(chunk.valid());
            let invalid = chunk.invalid();
            if invalid.is_empty() {
                continue;
            }
            if chunks.peek().is_none() && is_incomplete(invalid) {
                // The input ends inside a character: a valid prefix of at most 3 bytes,
                // kept until the rest of it arrives.
                self.hold(invalid);
            } else {
                text.push_str(REPLACEMENT);
            }
        }
        if !text.is_empty() {
            piece(&text);
        }
    }

    /// Ends the stream: a character still incomplete now never will be, and becomes
    /// U+FFFD, as `from_utf8_lossy` renders an incomplete sequence at the end of input.
    pub fn finish(&mut self, out: &mut String) {
        if self.carry_len > 0 {
            out.push_str(REPLACEMENT);
            self.carry_len = 0;
        }
    }

    /// Feeds the first bytes of `bytes` to the held-back character, handing on what that
    /// decides (the character, or U+FFFD when the new bytes cannot continue it), and
    /// returns the bytes not consumed.
    fn complete_carry<'a>(&mut self, bytes: &'a [u8], piece: &mut impl FnMut(&str)) -> &'a [u8] {
        let held = usize::from(self.carry_len);
        // No character is longer than 4 bytes, so 4 bytes decide the held one's fate.
        let mut joined = [0u8; 4];
        let take = bytes.len().min(4 - held);
        joined[..held].copy_from_slice(&self.carry[..held]);
        joined[held..held + take].copy_from_slice(&bytes[..take]);
        let joined = &joined[..held + take];
        self.carry_len = 0;
        match str::from_utf8(joined) {
            Ok(text) => {
                // All of it decoded: the held character completed and whatever else
                // came with it is plain text.
                piece(text);
                &bytes[take..]
            }
            Err(error) if error.valid_up_to() > 0 => {
                // The held character completed; the bytes after the valid text are
                // decoded again with the rest of the input, where they may start
                // another character. The held bytes are inside the valid text, since a
                // character is valid only once all of its bytes are.
                let valid = error.valid_up_to();
                piece(str::from_utf8(&joined[..valid]).unwrap_or_default());
                &bytes[valid - held..]
            }
            Err(error) => match error.error_len() {
                Some(invalid) => {
                    // The held prefix (plus any new bytes that still fitted it) is a
                    // maximal invalid subpart: one U+FFFD, as `from_utf8_lossy` does.
                    piece(REPLACEMENT);
                    &bytes[invalid.saturating_sub(held)..]
                }
                None => {
                    // Still incomplete: `bytes` was too short to finish it.
                    self.hold(joined);
                    &[]
                }
            },
        }
    }

    fn hold(&mut self, prefix: &[u8]) {
        let len = prefix.len().min(self.carry.len());
        self.carry[..len].copy_from_slice(&prefix[..len]);
        self.carry_len = len as u8;
    }
}

/// Whether `bytes` is the start of a character that more bytes could complete.
fn is_incomplete(bytes: &[u8]) -> bool {
    matches!(str::from_utf8(bytes), Err(error) if error.error_len().is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_pieces(pieces: &[&[u8]]) -> String {
        let mut joiner = Utf8Joiner::new();
        let mut out = String::new();
        for piece in pieces {
            joiner.push(piece, &mut out);
        }
        joiner.finish(&mut out);
        out
    }

    /// Every way of cutting `bytes` into pieces (2^(n-1) of them), decoded piece by piece,
    /// gives what `from_utf8_lossy` gives for the whole.
    fn assert_every_partition_matches_lossy(bytes: &[u8]) {
        let expected = String::from_utf8_lossy(bytes);
        let cuts = bytes.len().saturating_sub(1);
        for mask in 0u32..(1 << cuts) {
            let mut pieces = Vec::new();
            let mut start = 0;
            for cut in 0..cuts {
                if mask & (1 << cut) != 0 {
                    pieces.push(&bytes[start..=cut]);
                    start = cut + 1;
                }
            }
            pieces.push(&bytes[start..]);
            assert_eq!(
                decode_pieces(&pieces),
                expected,
                "bytes {bytes:02x?} cut as {pieces:02x?}"
            );
        }
    }

    #[test]
    fn multibyte_characters_split_anywhere_survive() {
        for text in ["é", "€", "😀", "aé€😀z", "日本語のテキスト"] {
            let bytes = text.as_bytes();
            for cut in 0..=bytes.len() {
                let (a, b) = bytes.split_at(cut);
                assert_eq!(decode_pieces(&[a, b]), text, "{text:?} cut at {cut}");
            }
            let one_by_one: Vec<&[u8]> = bytes.chunks(1).collect();
            assert_eq!(decode_pieces(&one_by_one), text);
        }
    }

    #[test]
    fn invalid_bytes_are_replaced_as_from_utf8_lossy_does() {
        let cases: &[(&[u8], &str)] = &[
            (b"a\xffb", "a\u{fffd}b"),
            // A truncated sequence followed by ASCII: one U+FFFD for the whole prefix.
            (b"\xe2\x82a", "\u{fffd}a"),
            // Overlong encodings and surrogates: one U+FFFD per byte.
            (b"\xc0\x80", "\u{fffd}\u{fffd}"),
            (b"\xed\xa0\x80", "\u{fffd}\u{fffd}\u{fffd}"),
            (b"\xf4\x90\x80\x80", "\u{fffd}\u{fffd}\u{fffd}\u{fffd}"),
            (b"\xf0\x9f\x98", "\u{fffd}"),
            (b"\x80\x80", "\u{fffd}\u{fffd}"),
        ];
        for (bytes, expected) in cases {
            assert_eq!(String::from_utf8_lossy(bytes), *expected, "{bytes:02x?}");
            assert_every_partition_matches_lossy(bytes);
        }
    }

    #[test]
    fn a_dangling_incomplete_character_is_flushed_as_replacement() {
        let mut joiner = Utf8Joiner::new();
        let mut out = String::new();
        joiner.push(b"ok\xe2\x82", &mut out);
        assert_eq!(out, "ok");
        assert!(joiner.has_pending());
        joiner.finish(&mut out);
        assert_eq!(out, "ok\u{fffd}");
        assert!(!joiner.has_pending());
        joiner.finish(&mut out);
        assert_eq!(out, "ok\u{fffd}", "finish twice adds nothing");
    }

    /// Bytes chosen to hit every class in the UTF-8 decoding table: ASCII, each
    /// continuation range that some lead byte restricts to, every kind of lead byte,
    /// and bytes that never appear in UTF-8.
    const INTERESTING: &[u8] = &[
        b'a', 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc2, 0xdf, 0xe0, 0xe1, 0xed, 0xf0, 0xf4,
        0xf5, 0xff,
    ];

    #[test]
    fn every_short_byte_string_decodes_the_same_however_it_is_split() {
        // Every string of up to 4 interesting bytes, cut in every possible way.
        let mut strings: Vec<Vec<u8>> = vec![Vec::new()];
        for _ in 0..4 {
            let longer: Vec<Vec<u8>> = strings
                .iter()
                .flat_map(|s| {
                    INTERESTING.iter().map(move |&b| {
                        let mut s = s.clone();
                        s.push(b);
                        s
                    })
                })
                .collect();
            for s in &longer {
                assert_every_partition_matches_lossy(s);
            }
            strings = longer;
        }
    }

    /// A small deterministic generator, so a failure reproduces exactly.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn long_random_streams_decode_the_same_however_they_are_split() {
        let mut rng = XorShift(0x5eed_1a7c);
        let valid = "aé€😀\u{7ff}\u{800}\u{ffff}\u{10000}\u{10ffff}\n\x1b[31m";
        for _ in 0..300 {
            // Mixed valid text and random interesting bytes.
            let len = 1 + rng.below(40);
            let mut bytes = Vec::new();
            while bytes.len() < len {
                if rng.below(3) == 0 {
                    let ch = valid.chars().nth(rng.below(valid.chars().count())).unwrap();
                    bytes.extend_from_slice(ch.to_string().as_bytes());
                } else {
                    bytes.push(INTERESTING[rng.below(INTERESTING.len())]);
                }
            }
            let expected = String::from_utf8_lossy(&bytes);
            // Every single cut point.
            for cut in 0..=bytes.len() {
                let (a, b) = bytes.split_at(cut);
                assert_eq!(
                    decode_pieces(&[a, b]),
                    expected,
                    "{bytes:02x?} cut at {cut}"
                );
            }
            // And random cuts into many small pieces.
            for _ in 0..20 {
                let mut pieces = Vec::new();
                let mut rest = &bytes[..];
                while !rest.is_empty() {
                    let (piece, tail) = rest.split_at(rng.below(rest.len().min(5)) + 1);
                    pieces.push(piece);
                    rest = tail;
                }
                assert_eq!(decode_pieces(&pieces), expected, "{pieces:02x?}");
            }
        }
    }
}
