//! Seals in Rust and with OpenSSH's `ssh-keygen`, both directions, and tampering caught by both.

use super::*;
use crate::manifest::{ChannelKind, ManifestBuilder, Origin, RecordingName, Request};
use chrono::{DateTime, TimeZone, Utc};
use russh::keys::ssh_key::private::Ed25519Keypair;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// A fixed key per seed: tests need no random source and hold no key text.
fn key(seed: u8) -> PrivateKey {
    PrivateKey::from(Ed25519Keypair::from_seed(&[seed; 32]))
}

fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_750_000_000 + secs, 0).unwrap()
}

const CAST: &[u8] = b"{\"version\": 2, \"width\": 80, \"height\": 24}\n[0.5, \"o\", \"$ \"]\n";

fn manifest(cast: Option<&[u8]>) -> Manifest {
    let origin = Origin {
        session: "s17".into(),
        grant: Some("g3".into()),
        role: "db-admin".into(),
        user: "alice".into(),
        login: "postgres".into(),
        host: "prod-db-01".into(),
        source: "203.0.113.7:50122".into(),
        cert_serial: 42,
        key_id: "latch:g3:alice:s17".into(),
    };
    let mut b = ManifestBuilder::new(origin, 0, ChannelKind::Session, t(0));
    b.request(t(1), Request::pty(b"xterm", 80, 24), Some(true));
    b.request(t(1), Request::Shell, Some(true));
    b.exit_status(0);
    let name = b.name();
    b.finish(
        t(9),
        "closed",
        cast.map(|c| CastRef::of(&name.cast_file(), c)),
    )
}

/// The files of a sealed recording in a temporary directory, as the broker writes them.
struct Written {
    dir: tempfile::TempDir,
    name: RecordingName,
}

impl Written {
    fn new(sealed: &Sealed, cast: Option<&[u8]>, trusted: &PublicKey) -> Written {
        let dir = tempfile::tempdir().unwrap();
        let name = RecordingName::new("s17", 0);
        let p = dir.path();
        std::fs::write(p.join(name.manifest_file()), &sealed.manifest).unwrap();
        std::fs::write(p.join(name.signature_file()), &sealed.signature).unwrap();
        if let Some(cast) = cast {
            std::fs::write(p.join(name.cast_file()), cast).unwrap();
        }
        let line = allowed_signers_line(AUDIT_PRINCIPAL, trusted).unwrap();
        std::fs::write(p.join("allowed_signers"), format!("{line}\n")).unwrap();
        Written { dir, name }
    }

    fn path(&self, file: &str) -> std::path::PathBuf {
        self.dir.path().join(file)
    }

    /// The auditor's check, exactly as documented, run by a shell.
    fn ssh_keygen_verify(&self) -> Output {
        let command = ssh_keygen_verify_command(
            "allowed_signers",
            &self.name.manifest_file(),
            &self.name.signature_file(),
        );
        Command::new("sh")
            .arg("-c")
            .arg(&command)
            .current_dir(self.dir.path())
            .output()
            .unwrap()
    }

    /// `sha256sum` of the cast, the auditor's second step.
    fn sha256sum_cast(&self) -> String {
        let out = Command::new("sha256sum")
            .arg(self.path(&self.name.cast_file()))
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()[..64].to_owned()
    }

    fn latch_verify(&self, trusted: &PublicKey) -> Result<VerifiedManifest, SealError> {
        let m = std::fs::read(self.path(&self.name.manifest_file())).unwrap();
        let s = std::fs::read_to_string(self.path(&self.name.signature_file())).unwrap();
        let c = std::fs::read(self.path(&self.name.cast_file())).ok();
        verify_recording(&m, &s, c.as_deref(), trusted)
    }

    fn flip_byte(&self, file: &str, at: usize) {
        let path = self.path(file);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[at] ^= 0x01;
        std::fs::write(&path, bytes).unwrap();
    }
}

fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_seal_verifies_in_rust_and_names_what_it_covers() {
    let key = key(1);
    let m = manifest(Some(CAST));
    let sealed = seal(&m, &key).unwrap();
    assert!(sealed
        .signature
        .starts_with("-----BEGIN SSH SIGNATURE-----\n"));
    assert!(sealed.signature.ends_with("-----END SSH SIGNATURE-----\n"));
    assert_eq!(
        sealed.manifest_sha256,
        hex::encode(Sha256::digest(&sealed.manifest))
    );
    let verified = verify_recording(
        &sealed.manifest,
        &sealed.signature,
        Some(CAST),
        key.public_key(),
    )
    .unwrap();
    assert_eq!(verified.manifest(), &m);
}

#[test]
fn openssh_verifies_what_latch_seals_and_both_catch_an_edited_manifest() {
    let key = key(2);
    let sealed = seal(&manifest(Some(CAST)), &key).unwrap();
    let w = Written::new(&sealed, Some(CAST), key.public_key());

    let out = w.ssh_keygen_verify();
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(output_text(&out).contains("Good"), "{}", output_text(&out));
    assert!(w.latch_verify(key.public_key()).is_ok());

    // One byte in the middle of the manifest: a digit of the exit status, say.
    let at = sealed.manifest.len() / 2;
    w.flip_byte(&w.name.manifest_file(), at);
    let out = w.ssh_keygen_verify();
    assert!(!out.status.success(), "{}", output_text(&out));
    let err = w.latch_verify(key.public_key()).unwrap_err();
    assert!(matches!(err, SealError::BadSignature), "{err}");
    assert!(err.to_string().contains("altered after sealing"));
}

#[test]
fn both_catch_an_edited_cast() {
    let key = key(3);
    let m = manifest(Some(CAST));
    let sealed = seal(&m, &key).unwrap();
    let w = Written::new(&sealed, Some(CAST), key.public_key());
    let vouched = m.cast.as_ref().unwrap().sha256.clone();
    assert_eq!(w.sha256sum_cast(), vouched);

    w.flip_byte(&w.name.cast_file(), CAST.len() - 3);
    // OpenSSH still vouches for the manifest, whose hash no longer matches the cast.
    assert!(w.ssh_keygen_verify().status.success());
    assert_ne!(w.sha256sum_cast(), vouched);
    let err = w.latch_verify(key.public_key()).unwrap_err();
    assert!(matches!(err, SealError::CastMismatch { .. }), "{err}");
    assert!(
        err.to_string().starts_with(&format!(
            "the .cast does not match its manifest (sha256 {} of {} bytes != {vouched} of {} bytes)",
            w.sha256sum_cast(),
            CAST.len(),
            CAST.len()
        )),
        "{err}"
    );
}

#[test]
fn latch_verifies_what_ssh_keygen_signs() {
    let key = key(4);
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("audit_key");
    std::fs::write(
        &key_file,
        key.to_openssh(LineEnding::LF).unwrap().as_bytes(),
    )
    .unwrap();
    set_owner_only(&key_file);
    let bytes = manifest(None).to_bytes().unwrap();
    let manifest_file = dir.path().join("m.manifest.json");
    std::fs::write(&manifest_file, &bytes).unwrap();

    let out = Command::new("ssh-keygen")
        .args(["-Y", "sign", "-n", NAMESPACE, "-f"])
        .arg(&key_file)
        .arg(&manifest_file)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    let sig = std::fs::read_to_string(dir.path().join("m.manifest.json.sig")).unwrap();

    let verified = verify_recording(&bytes, &sig, None, key.public_key()).unwrap();
    assert_eq!(verified.manifest().cast, None);
    // And ours is the same kind of thing: OpenSSH signs with SHA-512 by default, as we do.
    assert_eq!(SshSig::from_pem(&sig).unwrap().hash_alg(), HASH);
}

#[cfg(unix)]
fn set_owner_only(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn a_one_byte_edit_anywhere_in_a_manifest_is_caught() {
    let key = key(5);
    let sealed = seal(&manifest(Some(CAST)), &key).unwrap();
    // Every byte would take half a minute in a debug build (a signature check each); about
    // fifty spread from the first byte to the last cover every field.
    let len = sealed.manifest.len();
    let step = (len / 50).max(1);
    for at in (0..len).step_by(step).chain([len - 2, len - 1]) {
        let mut edited = sealed.manifest.clone();
        edited[at] ^= 0x20;
        assert!(
            verify(&edited, &sealed.signature, key.public_key()).is_err(),
            "edit at byte {at} went unnoticed"
        );
    }
}

#[test]
fn an_edited_signature_never_verifies_and_never_panics() {
    let key = key(6);
    let sealed = seal(&manifest(None), &key).unwrap();
    let original = SshSig::from_pem(sealed.signature.trim()).unwrap();
    for at in 0..sealed.signature.len() {
        let mut edited = sealed.signature.clone().into_bytes();
        edited[at] ^= 0x01;
        let Ok(edited) = String::from_utf8(edited) else {
            continue;
        };
        if verify(&sealed.manifest, &edited, key.public_key()).is_ok() {
            // Only an edit the decoder ignores (the line break style) may pass.
            assert_eq!(
                SshSig::from_pem(edited.trim()).unwrap(),
                original,
                "at {at}"
            );
        }
    }
    assert!(matches!(
        verify(&sealed.manifest, "not a signature", key.public_key()),
        Err(SealError::SignatureFormat(_))
    ));
}

#[test]
fn a_seal_by_another_key_names_both_keys() {
    let sealed = seal(&manifest(None), &key(7)).unwrap();
    let trusted = key(8);
    let err = verify(&sealed.manifest, &sealed.signature, trusted.public_key()).unwrap_err();
    let SealError::WrongKey { found, trusted: t } = &err else {
        panic!("{err}")
    };
    assert_eq!(found, &key(7).fingerprint(HashAlg::Sha256).to_string());
    assert_eq!(t, &trusted.fingerprint(HashAlg::Sha256).to_string());
}

#[test]
fn a_signature_for_another_purpose_is_not_a_seal() {
    let key = key(9);
    let bytes = manifest(None).to_bytes().unwrap();
    let sig = key
        .sign("file", HASH, &bytes)
        .unwrap()
        .to_pem(LineEnding::LF)
        .unwrap();
    let err = verify(&bytes, &sig, key.public_key()).unwrap_err();
    assert!(matches!(err, SealError::Namespace { ref found } if found == "file"));
}

#[test]
fn a_missing_or_unexpected_cast_is_named() {
    let key = key(10);
    let with_cast = seal(&manifest(Some(CAST)), &key).unwrap();
    let err = verify_recording(
        &with_cast.manifest,
        &with_cast.signature,
        None,
        key.public_key(),
    )
    .unwrap_err();
    assert!(
        matches!(err, SealError::CastMissing { ref file } if file == "s17-c0.cast"),
        "{err}"
    );
    let without = seal(&manifest(None), &key).unwrap();
    let err = verify_recording(
        &without.manifest,
        &without.signature,
        Some(CAST),
        key.public_key(),
    )
    .unwrap_err();
    assert!(matches!(err, SealError::CastUnexpected), "{err}");
}

#[test]
fn a_verified_manifest_checks_a_cast_hashed_in_pieces() {
    let key = key(11);
    let sealed = seal(&manifest(Some(CAST)), &key).unwrap();
    let verified = verify_manifest(&sealed.manifest, &sealed.signature, key.public_key()).unwrap();
    let mut hasher = CastHasher::new();
    for chunk in CAST.chunks(7) {
        hasher.update(chunk);
    }
    verified
        .check_cast(Some(&hasher.finish("s17-c0.cast")))
        .unwrap();
}

#[test]
fn the_allowed_signers_line_limits_the_key_to_seals() {
    let mut key = key(12).public_key().clone();
    key.set_comment("someone@somewhere");
    let line = allowed_signers_line(AUDIT_PRINCIPAL, &key).unwrap();
    assert!(
        line.starts_with("latch-audit namespaces=\"latch-recording@latch\" ssh-ed25519 AAAA"),
        "{line}"
    );
    assert!(!line.contains("someone"), "{line}");
    assert!(!line.ends_with('\n'));
}

#[test]
fn the_verify_command_quotes_what_a_shell_would_split() {
    assert_eq!(
        ssh_keygen_verify_command("allowed_signers", "s1-c0.manifest.json", "s1-c0.manifest.json.sig"),
        "ssh-keygen -Y verify -f allowed_signers -I latch-audit -n latch-recording@latch -s s1-c0.manifest.json.sig < s1-c0.manifest.json"
    );
    assert_eq!(
        ssh_keygen_verify_command("/my keys/it's", "m", "s"),
        "ssh-keygen -Y verify -f '/my keys/it'\\''s' -I latch-audit -n latch-recording@latch -s s < m"
    );
}
