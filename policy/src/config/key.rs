//! OpenSSH public key lines: `algorithm base64 [comment]`.
//!
//! The blob is checked to decode, to name the same algorithm as the line, and to have the
//! shape that algorithm's wire format gives it. That catches keys cut short or mangled when
//! pasted into a config, which would otherwise only show up as a user who cannot log in.

use super::UserKey;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// The algorithms accepted, and for each the fields that follow the algorithm name in the
/// blob. Certificates are refused: identity here is the bare key.
const ALGORITHMS: &[(&str, &[Field])] = &[
    ("ssh-ed25519", &[Field::Bytes(32)]),
    ("ssh-rsa", &[Field::Nonempty, Field::Nonempty]),
    (
        "ecdsa-sha2-nistp256",
        &[Field::Exact(b"nistp256"), Field::Bytes(65)],
    ),
    (
        "ecdsa-sha2-nistp384",
        &[Field::Exact(b"nistp384"), Field::Bytes(97)],
    ),
    (
        "ecdsa-sha2-nistp521",
        &[Field::Exact(b"nistp521"), Field::Bytes(133)],
    ),
    (
        "sk-ssh-ed25519@openssh.com",
        &[Field::Bytes(32), Field::Nonempty],
    ),
    (
        "sk-ecdsa-sha2-nistp256@openssh.com",
        &[Field::Exact(b"nistp256"), Field::Bytes(65), Field::Nonempty],
    ),
];

/// One length-prefixed string in a key blob, and what it must hold.
#[derive(Debug)]
enum Field {
    /// Exactly this many bytes (a point or public key of fixed size).
    Bytes(usize),
    /// These exact bytes (a curve name).
    Exact(&'static [u8]),
    /// Anything but empty (an RSA exponent or modulus, a FIDO application).
    Nonempty,
}

pub(super) fn parse(line: &str) -> Result<UserKey, String> {
    let line = line.trim();
    if line.is_empty() {
        return Err(
            "empty key: give a public key line, like the contents of ~/.ssh/id_ed25519.pub".into(),
        );
    }
    if line.contains("PRIVATE KEY") {
        return Err(
            "this is a private key: give the public key line from the .pub file instead, \
            and keep private keys out of config files"
                .into(),
        );
    }
    let (algorithm, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let rest = rest.trim_start();
    let (data, comment) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let Some(fields) = ALGORITHMS
        .iter()
        .find(|(name, _)| *name == algorithm)
        .map(|(_, f)| *f)
    else {
        return Err(unknown_algorithm(algorithm));
    };
    if data.is_empty() {
        return Err(format!(
            "{algorithm} key has no key data: the line should be '{algorithm} AAAA... comment'"
        ));
    }
    let blob = STANDARD.decode(data).map_err(|_| {
        format!("{algorithm} key data is not valid base64: was the line cut short or wrapped?")
    })?;
    check_blob(algorithm, fields, &blob)?;
    Ok(UserKey {
        algorithm: algorithm.to_owned(),
        // Re-encoded so one key has one spelling, which lookups and duplicate checks rely on.
        base64: STANDARD.encode(&blob),
        comment: comment.trim().to_owned(),
    })
}

fn unknown_algorithm(algorithm: &str) -> String {
    let known: Vec<&str> = ALGORITHMS.iter().map(|(name, _)| *name).collect();
    if algorithm.contains("-cert-") {
        return format!(
            "{algorithm:?} is a certificate: give the plain public key line (the \
            .pub file, not -cert.pub)"
        );
    }
    let shown: String = algorithm.chars().take(40).collect();
    format!(
        "unknown key type {shown:?}: a key line starts with one of {} (options such \
        as from=\"...\" are not supported)",
        known.join(", ")
    )
}

fn check_blob(algorithm: &str, fields: &[Field], blob: &[u8]) -> Result<(), String> {
    let damaged =
        |what: &str| format!("{algorithm} key data is damaged ({what}): copy the whole line again");
    let mut reader = Reader(blob);
    let inner = reader
        .string()
        .ok_or_else(|| damaged("no algorithm name inside"))?;
    if inner != algorithm.as_bytes() {
        let inner = String::from_utf8_lossy(inner);
        let inner: String = inner.chars().take(40).collect();
        return Err(format!(
            "the key data is a {inner:?} key but the line says {algorithm}: copy the \
            whole line again"
        ));
    }
    for field in fields {
        let value = reader.string().ok_or_else(|| damaged("it ends too soon"))?;
        let fits = match field {
            Field::Bytes(n) => value.len() == *n,
            Field::Exact(expected) => value == *expected,
            Field::Nonempty => !value.is_empty(),
        };
        if !fits {
            return Err(damaged("a field has the wrong size or value"));
        }
    }
    if !reader.0.is_empty() {
        return Err(damaged("extra bytes at the end"));
    }
    Ok(())
}

/// Reads SSH wire-format strings (u32 big-endian length, then bytes) without panicking on
/// short input.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn string(&mut self) -> Option<&'a [u8]> {
        let (len, rest) = self.0.split_first_chunk::<4>()?;
        let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
        if len > rest.len() {
            return None;
        }
        let (value, rest) = rest.split_at(len);
        self.0 = rest;
        Some(value)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Build a syntactically valid key line for `algorithm` from its field layout, with
    /// `seed` making distinct keys distinct. For tests anywhere in the crate.
    pub(crate) fn key_line(algorithm: &str, seed: u8, comment: &str) -> String {
        let (_, fields) = ALGORITHMS
            .iter()
            .find(|(name, _)| *name == algorithm)
            .expect("known algorithm");
        let mut blob = Vec::new();
        push_string(&mut blob, algorithm.as_bytes());
        for field in fields.iter() {
            match field {
                Field::Bytes(n) => push_string(&mut blob, &vec![seed; *n]),
                Field::Exact(bytes) => push_string(&mut blob, bytes),
                Field::Nonempty => push_string(&mut blob, &[seed, 1, 0, 1]),
            }
        }
        format!("{algorithm} {} {comment}", STANDARD.encode(blob))
            .trim_end()
            .to_owned()
    }

    fn push_string(out: &mut Vec<u8>, bytes: &[u8]) {
        out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        out.extend_from_slice(bytes);
    }

    /// Real keys from ssh-keygen, so the checks are proved against OpenSSH's own output.
    const REAL: &[&str] = &[
        REAL_ED25519,
        "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBLMXLG+edHJeJVYthXuTRqGlisO0mmZ0qJRIxArz8ihzHK4jt5cU9xZwIkqM96gJNAptSkQOcZ8sU5EvKCyBpUA= a@b",
        "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCtKDoyld03PHBoZJBKTPEBFpMfbn0QJUAZU6IfzVQu9AlNE4uyjiIXUkHNSAagWLReWiuNaZgmTS8UsSqk7KqXUGyA1BHRbz7RKmGVi7fJmx8P0OdzRhKo9yJf7+DvKkqQS12fx9dxJ8i43R2Y4YIT79wueQzoN9W7hOJ/QS2thoWYUHiFVkaZZxeydEQ9kI73A2qM1fcggmCdWUH9P2amAumoZc2+Spclp7iH5XVhe14ASBEK4ZGxeqYCXSnpPW0dw0wjqWg4snddOBMKgsP60vklVeRfrG+LjGujWHMSMuI4/zzv/5L+RrDu1kvZvW5Weha7g/lZvYrIzzBHrpB/ r",
    ];
    pub(crate) const REAL_ED25519: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICehKivaQgUkNqumM0s2JeUzy9an+pwLo/nYh6gvJWQC alice@laptop";

    #[test]
    fn accepts_real_openssh_keys() {
        for line in REAL {
            let key = parse(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(
                format!("{} {} {}", key.algorithm, key.base64, key.comment),
                *line
            );
        }
    }

    #[test]
    fn accepts_every_known_algorithm() {
        for (algorithm, _) in ALGORITHMS {
            let line = key_line(algorithm, 7, "me@host");
            let key = parse(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(key.algorithm, *algorithm);
            assert_eq!(key.comment, "me@host");
        }
    }

    #[test]
    fn keeps_multi_word_comment_and_tolerates_extra_spaces() {
        let line = format!("  {}  ", key_line("ssh-ed25519", 1, "Alice  Smith's key"));
        let line = line.replacen(' ', "\t ", 3);
        let key = parse(&line).unwrap();
        assert_eq!(key.comment, "Alice  Smith's key");
        assert!(key.canonical().starts_with("ssh-ed25519 AAAA"));
        assert!(parse(&key_line("ssh-ed25519", 1, ""))
            .unwrap()
            .comment
            .is_empty());
    }

    fn err(line: &str) -> String {
        parse(line).expect_err(line)
    }

    #[test]
    fn refuses_bad_lines_with_a_reason() {
        assert!(err("").contains("empty key"));
        assert!(err("ssh-dss AAAA").contains("unknown key type"));
        assert!(err("from=\"10.0.0.1\" ssh-ed25519 AAAA").contains("options"));
        assert!(err("ssh-ed25519-cert-v01@openssh.com AAAA").contains("certificate"));
        assert!(err("ssh-ed25519").contains("no key data"));
        assert!(err("ssh-ed25519 AAAA...").contains("base64"));
        assert!(err("-----BEGIN OPENSSH PRIVATE KEY-----").contains("private key"));
        // An ed25519 blob under an rsa label.
        let swapped = REAL_ED25519.replacen("ssh-ed25519", "ssh-rsa", 1);
        assert!(err(&swapped).contains("is a \"ssh-ed25519\" key but the line says ssh-rsa"));
    }

    #[test]
    fn refuses_truncated_or_padded_blobs() {
        let good = STANDARD
            .decode(REAL_ED25519.split(' ').nth(1).unwrap())
            .unwrap();
        let line = |blob: &[u8]| format!("ssh-ed25519 {}", STANDARD.encode(blob));
        assert!(err(&line(&good[..good.len() - 1])).contains("ends too soon"));
        assert!(err(&line(&good[..3])).contains("no algorithm name"));
        let mut longer = good.clone();
        longer.push(0);
        assert!(err(&line(&longer)).contains("extra bytes"));
        let mut huge_length = good.clone();
        huge_length[15..19].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(err(&line(&huge_length)).contains("damaged"));
        // Right length prefix, wrong size of key.
        let mut blob = Vec::new();
        push_string(&mut blob, b"ssh-ed25519");
        push_string(&mut blob, &[1; 31]);
        assert!(err(&line(&blob)).contains("wrong size"));
        let mut blob = Vec::new();
        push_string(&mut blob, b"ecdsa-sha2-nistp256");
        push_string(&mut blob, b"nistp384");
        push_string(&mut blob, &[4; 65]);
        assert!(
            err(&format!("ecdsa-sha2-nistp256 {}", STANDARD.encode(&blob)))
                .contains("wrong size or value")
        );
    }
}
