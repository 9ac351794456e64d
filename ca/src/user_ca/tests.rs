use super::*;
use crate::request::Permissions;
use crate::test_support::{ephemeral_key, request, t0};
use crate::verify::verify_user_cert;
use chrono::TimeDelta;
use std::process::Command;

fn secs(t: DateTime<Utc>) -> u64 {
    t.timestamp() as u64
}

#[test]
fn minted_cert_has_the_fields_the_design_asks_for() {
    let ca = UserCa::generate(DEFAULT_ALGORITHM).unwrap();
    let key = ephemeral_key();
    let cert = ca.mint_user_cert(&request(&key), t0()).unwrap();

    assert_eq!(cert.cert_type(), CertType::User);
    assert_eq!(cert.valid_after(), secs(t0()) - 60);
    assert_eq!(cert.valid_before(), secs(t0() + TimeDelta::minutes(5)));
    assert_eq!(cert.key_id(), "latch:g17:alice:s42");
    assert_eq!(cert.valid_principals(), ["postgres".to_owned()]);
    assert_eq!(cert.serial(), 7);
    assert_eq!(cert.public_key(), key.key_data());
    assert_eq!(cert.signature_key(), ca.public_key().key_data());
    assert_eq!(cert.extensions().keys().collect::<Vec<_>>(), ["permit-pty"]);
    assert!(cert.critical_options().is_empty());
}

#[test]
fn minted_cert_parses_back_from_its_openssh_form() {
    let ca = UserCa::generate(DEFAULT_ALGORITHM).unwrap();
    let key = ephemeral_key();
    let cert = ca.mint_user_cert(&request(&key), t0()).unwrap();
    let text = cert.to_openssh().unwrap();
    assert!(text.starts_with("ssh-ed25519-cert-v01@openssh.com "));
    let back = Certificate::from_openssh(&text).unwrap();
    assert_eq!(back, cert);
    verify_user_cert(&back, ca.public_key(), "postgres", t0()).unwrap();
}

#[test]
fn extensions_follow_permissions_and_never_include_user_rc() {
    let ca = UserCa::generate(DEFAULT_ALGORITHM).unwrap();
    let key = ephemeral_key();
    let mut req = request(&key);
    req.permissions = Permissions::NONE;
    let none = ca.mint_user_cert(&req, t0()).unwrap();
    assert!(none.extensions().is_empty());

    req.permissions = Permissions {
        pty: true,
        port_forwarding: true,
        agent_forwarding: true,
        x11_forwarding: true,
    };
    let all = ca.mint_user_cert(&req, t0()).unwrap();
    assert_eq!(
        all.extensions().keys().collect::<Vec<_>>(),
        [
            "permit-X11-forwarding",
            "permit-agent-forwarding",
            "permit-port-forwarding",
            "permit-pty"
        ]
    );
    assert!(all.extensions().values().all(String::is_empty));
}

#[test]
fn source_address_becomes_a_critical_option() {
    let ca = UserCa::generate(DEFAULT_ALGORITHM).unwrap();
    let key = ephemeral_key();
    let mut req = request(&key);
    req.source_address = Some(vec!["192.0.2.10".to_owned(), "10.0.0.0/8".to_owned()]);
    let cert = ca.mint_user_cert(&req, t0()).unwrap();
    assert_eq!(
        cert.critical_options()
            .get("source-address")
            .map(String::as_str),
        Some("192.0.2.10,10.0.0.0/8")
    );

    req.source_address = Some(vec!["10.0.0.1/8".to_owned()]);
    assert!(matches!(
        ca.mint_user_cert(&req, t0()),
        Err(CaError::SourceAddress { .. })
    ));
}

#[test]
fn cert_never_outlives_its_grant() {
    let ca = UserCa::generate(DEFAULT_ALGORITHM).unwrap();
    let key = ephemeral_key();
    let mut req = request(&key);
    req.not_after_cap = Some(t0() + TimeDelta::seconds(90));
    let cert = ca.mint_user_cert(&req, t0()).unwrap();
    assert_eq!(cert.valid_before(), secs(t0()) + 90);

    // A cap later than the requested validity does not stretch it.
    req.not_after_cap = Some(t0() + TimeDelta::hours(4));
    let cert = ca.mint_user_cert(&req, t0()).unwrap();
    assert_eq!(cert.valid_before(), secs(t0() + TimeDelta::minutes(5)));
}

#[test]
fn grant_that_has_ended_mints_nothing() {
    let ca = UserCa::generate(DEFAULT_ALGORITHM).unwrap();
    let key = ephemeral_key();
    let mut req = request(&key);
    for cap in [
        t0() - TimeDelta::seconds(1),
        t0(),
        t0() + TimeDelta::milliseconds(500),
    ] {
        req.not_after_cap = Some(cap);
        let err = ca.mint_user_cert(&req, t0()).unwrap_err();
        assert!(matches!(err, CaError::GrantEnded { .. }), "{cap}: {err}");
        assert!(err.to_string().contains("request access again"), "{err}");
    }
}

#[test]
fn validity_over_ten_minutes_or_not_positive_is_refused() {
    let ca = UserCa::generate(DEFAULT_ALGORITHM).unwrap();
    let key = ephemeral_key();
    let mut req = request(&key);
    req.validity = MAX_CERT_VALIDITY;
    assert!(ca.mint_user_cert(&req, t0()).is_ok());
    for validity in [
        MAX_CERT_VALIDITY + TimeDelta::seconds(1),
        TimeDelta::hours(8),
        TimeDelta::zero(),
        TimeDelta::seconds(-5),
        TimeDelta::milliseconds(300),
    ] {
        req.validity = validity;
        let err = ca.mint_user_cert(&req, t0()).unwrap_err();
        assert!(matches!(err, CaError::Validity { .. }), "{validity}: {err}");
    }
}

#[test]
fn bad_principals_and_key_id_parts_are_refused_before_signing() {
    let ca = UserCa::generate(DEFAULT_ALGORITHM).unwrap();
    let key = ephemeral_key();
    for principal in ["", "root,postgres", "root@db", "root postgres", "root\n"] {
        let mut req = request(&key);
        req.principal = principal.to_owned();
        assert!(matches!(
            ca.mint_user_cert(&req, t0()),
            Err(CaError::Principal { .. })
        ));
    }
    let mut req = request(&key);
    req.session = "s1\u{1b}[2J".to_owned();
    assert!(matches!(
        ca.mint_user_cert(&req, t0()),
        Err(CaError::KeyIdPart {
            field: "session",
            ..
        })
    ));
}

#[test]
fn standing_role_key_id_names_the_role() {
    let ca = UserCa::generate(DEFAULT_ALGORITHM).unwrap();
    let key = ephemeral_key();
    let mut req = request(&key);
    req.grant = "role:developer".to_owned();
    let cert = ca.mint_user_cert(&req, t0()).unwrap();
    assert_eq!(cert.key_id(), "latch:role:developer:alice:s42");
    let id = KeyId::parse(cert.key_id()).unwrap();
    assert_eq!(
        (id.grant(), id.user(), id.session()),
        ("role:developer", "alice", "s42")
    );
}

#[test]
fn ca_key_round_trips_through_openssh_format() {
    let ca = UserCa::generate(DEFAULT_ALGORITHM).unwrap();
    let pem = ca.to_openssh().unwrap();
    assert!(pem.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
    let back = UserCa::from_openssh(pem.as_bytes()).unwrap();
    assert_eq!(back.public_key_line(), ca.public_key_line());
    assert_eq!(back.fingerprint(), ca.fingerprint());

    // A certificate minted by the reloaded CA verifies against the original's public key.
    let key = ephemeral_key();
    let cert = back.mint_user_cert(&request(&key), t0()).unwrap();
    verify_user_cert(&cert, ca.public_key(), "postgres", t0()).unwrap();
}

#[test]
fn public_key_line_is_what_trusted_user_ca_keys_takes() {
    let ca = UserCa::generate(DEFAULT_ALGORITHM).unwrap();
    let line = ca.public_key_line();
    assert!(line.starts_with("ssh-ed25519 AAAA"), "{line}");
    assert!(line.ends_with(" latch-user-ca"), "{line}");
    assert!(!line.contains('\n'));
    assert_eq!(
        crate::fingerprint(&PublicKey::from_openssh(&line).unwrap()),
        ca.fingerprint()
    );
    assert!(ca.fingerprint().starts_with("SHA256:"));
}

#[test]
fn ecdsa_ca_mints_too() {
    let ca = UserCa::generate(Algorithm::Ecdsa {
        curve: russh::keys::ssh_key::EcdsaCurve::NistP256,
    })
    .unwrap();
    let key = ephemeral_key();
    let cert = ca.mint_user_cert(&request(&key), t0()).unwrap();
    verify_user_cert(&cert, ca.public_key(), "postgres", t0()).unwrap();
}

#[test]
fn garbage_is_not_a_ca_key() {
    let err = UserCa::from_openssh(b"not a key").unwrap_err();
    assert!(matches!(err, CaError::Parse(_)), "{err}");
}

#[test]
fn debug_shows_the_fingerprint_not_the_key() {
    let ca = UserCa::generate(DEFAULT_ALGORITHM).unwrap();
    let pem = ca.to_openssh().unwrap();
    let debug = format!("{ca:?}");
    assert!(debug.contains(&ca.fingerprint()), "{debug}");
    let body: String = pem.lines().nth(1).unwrap().chars().take(20).collect();
    assert!(!debug.contains(&body), "{debug}");
}

#[test]
fn random_serials_differ() {
    assert_ne!(random_serial(), random_serial());
}

// Interop with the real OpenSSH tools: what ssh-keygen reads is what sshd will read.

const SSH_KEYGEN: &str = "/usr/bin/ssh-keygen";

fn ssh_keygen(args: &[&str]) -> String {
    let out = Command::new(SSH_KEYGEN)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {SSH_KEYGEN} (install openssh-client): {e}"));
    assert!(
        out.status.success(),
        "ssh-keygen {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn ssh_keygen_reads_the_minted_cert_as_minted() {
    let ca = UserCa::generate(DEFAULT_ALGORITHM).unwrap();
    let key = ephemeral_key();
    let mut req = request(&key);
    req.permissions.port_forwarding = true;
    req.source_address = Some(vec!["192.0.2.0/24".to_owned()]);
    let cert = ca.mint_user_cert(&req, t0()).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("id-cert.pub");
    std::fs::write(&path, cert.to_openssh().unwrap() + "\n").unwrap();
    let shown = ssh_keygen(&["-L", "-f", path.to_str().unwrap()]);

    assert!(
        shown.contains("Type: ssh-ed25519-cert-v01@openssh.com user certificate"),
        "{shown}"
    );
    assert!(shown.contains("Key ID: \"latch:g17:alice:s42\""), "{shown}");
    assert!(shown.contains("Serial: 7"), "{shown}");
    assert!(
        shown.contains(&format!("Signing CA: ED25519 {}", ca.fingerprint())),
        "{shown}"
    );
    assert!(
        shown.contains(&format!(
            "Public key: ED25519-CERT {}",
            crate::fingerprint(&key)
        )),
        "{shown}"
    );
    let principals: Vec<&str> = shown
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("Principals:"))
        .skip(1)
        .take_while(|l| !l.trim_start().starts_with("Critical Options:"))
        .map(str::trim)
        .collect();
    assert_eq!(principals, ["postgres"], "{shown}");
    assert!(shown.contains("source-address 192.0.2.0/24"), "{shown}");
    assert!(shown.contains("permit-pty"), "{shown}");
    assert!(shown.contains("permit-port-forwarding"), "{shown}");
    assert!(!shown.contains("permit-user-rc"), "{shown}");

    // ssh-keygen prints the window in local time; render ours the same way to compare.
    let local = |secs: u64| {
        DateTime::from_timestamp(secs as i64, 0)
            .unwrap()
            .with_timezone(&chrono::Local)
            .format("%Y-%m-%dT%H:%M:%S")
            .to_string()
    };
    let valid = format!(
        "Valid: from {} to {}",
        local(secs(t0()) - 60),
        local(secs(t0() + TimeDelta::minutes(5)))
    );
    assert!(shown.contains(&valid), "expected {valid:?} in {shown}");
}

#[test]
fn ssh_keygen_uses_the_ca_key_latch_writes() {
    let ca = UserCa::generate(DEFAULT_ALGORITHM).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("user_ca");
    std::fs::write(&path, ca.to_openssh().unwrap().as_bytes()).unwrap();
    // ssh-keygen refuses key files others can read, as sshd would.
    let mut perms = std::fs::metadata(&path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
    std::fs::set_permissions(&path, perms).unwrap();

    let public = ssh_keygen(&["-y", "-f", path.to_str().unwrap()]);
    assert_eq!(
        public.split_whitespace().take(2).collect::<Vec<_>>(),
        ca.public_key_line()
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
    );
}

#[test]
fn keys_from_ssh_keygen_load_and_encrypted_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain");
    let locked = dir.path().join("locked");
    ssh_keygen(&[
        "-q",
        "-t",
        "ed25519",
        "-N",
        "",
        "-C",
        "x",
        "-f",
        plain.to_str().unwrap(),
    ]);
    ssh_keygen(&[
        "-q",
        "-t",
        "ed25519",
        "-N",
        "hunter2",
        "-f",
        locked.to_str().unwrap(),
    ]);

    let ca = UserCa::from_openssh(&std::fs::read(&plain).unwrap()).unwrap();
    let public = std::fs::read_to_string(plain.with_extension("pub")).unwrap();
    assert_eq!(
        ca.fingerprint(),
        crate::fingerprint(&PublicKey::from_openssh(public.trim()).unwrap())
    );

    let err = UserCa::from_openssh(&std::fs::read(&locked).unwrap()).unwrap_err();
    assert!(matches!(err, CaError::Encrypted), "{err}");
    assert!(err.to_string().contains("ssh-keygen -p -N ''"), "{err}");
}

#[test]
fn certs_signed_by_ssh_keygen_verify_here() {
    let dir = tempfile::tempdir().unwrap();
    let ca_path = dir.path().join("ca");
    let user_path = dir.path().join("user");
    ssh_keygen(&[
        "-q",
        "-t",
        "ed25519",
        "-N",
        "",
        "-f",
        ca_path.to_str().unwrap(),
    ]);
    ssh_keygen(&[
        "-q",
        "-t",
        "ed25519",
        "-N",
        "",
        "-f",
        user_path.to_str().unwrap(),
    ]);
    ssh_keygen(&[
        "-q",
        "-s",
        ca_path.to_str().unwrap(),
        "-I",
        "someone",
        "-n",
        "postgres",
        "-V",
        "20300101000000:20300201000000",
        user_path.with_extension("pub").to_str().unwrap(),
    ]);
    let cert_text = std::fs::read_to_string(dir.path().join("user-cert.pub")).unwrap();
    let cert = Certificate::from_openssh(cert_text.trim()).unwrap();
    let ca = UserCa::from_openssh(&std::fs::read(&ca_path).unwrap()).unwrap();
    verify_user_cert(&cert, ca.public_key(), "postgres", t0()).unwrap();
    assert!(verify_user_cert(&cert, ca.public_key(), "root", t0()).is_err());
}
