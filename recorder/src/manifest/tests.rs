use super::*;
use chrono::TimeZone;

fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_750_000_000 + secs, 0).unwrap()
}

fn origin() -> Origin {
    Origin {
        session: "s17".into(),
        grant: Some("g3".into()),
        role: "db-admin".into(),
        user: "alice".into(),
        login: "postgres".into(),
        host: "prod-db-01".into(),
        source: "203.0.113.7:50122".into(),
        cert_serial: 0xdead_beef,
        key_id: "latch:g3:alice:s17".into(),
    }
}

fn shell_manifest() -> Manifest {
    let mut b = ManifestBuilder::new(origin(), 0, ChannelKind::Session, t(0));
    b.request(t(1), Request::pty(b"xterm-256color", 80, 24), Some(true));
    b.request(t(1), Request::env(b"LANG", b"C.UTF-8"), Some(true));
    b.request(t(1), Request::Shell, Some(true));
    b.request(t(5), Request::window_change(120, 40), None);
    b.bytes_in(10);
    b.bytes_out(2000);
    b.exit_status(0);
    b.link(&RecordingName::new("s17", 1));
    b.finish(t(9), "closed", Some(CastRef::of("s17-c0.cast", b"{}\n")))
}

#[test]
fn manifest_bytes_round_trip_and_end_with_a_newline() {
    let m = shell_manifest();
    let bytes = m.to_bytes().unwrap();
    assert_eq!(bytes.last(), Some(&b'\n'));
    assert_eq!(Manifest::from_bytes(&bytes).unwrap(), m);
    assert_eq!(m.to_bytes().unwrap(), bytes, "encoding is deterministic");
}

#[test]
fn manifest_fields_appear_in_declared_order_with_absent_ones_as_null() {
    let text = String::from_utf8(shell_manifest().to_bytes().unwrap()).unwrap();
    let keys = [
        "format",
        "session",
        "channel",
        "kind",
        "grant",
        "role",
        "user",
        "login",
        "host",
        "source",
        "cert_serial",
        "key_id",
        "started_at",
        "ended_at",
        "complete",
        "end_cause",
        "forward",
        "requests",
        "requests_omitted",
        "exit_status",
        "exit_signal",
        "bytes_in",
        "bytes_out",
        "cast",
        "sftp",
        "sftp_omitted",
        "linked",
    ];
    let positions: Vec<usize> = keys
        .iter()
        .map(|k| {
            text.find(&format!("\n  \"{k}\": "))
                .unwrap_or_else(|| panic!("{k} missing"))
        })
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
    assert!(text.starts_with("{\n  \"format\": \"latch-recording/1\",\n"));
    assert!(text.contains("\n  \"forward\": null,\n"));
    assert!(text.contains("\n  \"started_at\": \"2025-06-15T15:06:40.000Z\",\n"));
}

#[test]
fn a_request_is_recorded_as_its_kind_and_fields() {
    let m = shell_manifest();
    let json: serde_json::Value = serde_json::from_slice(&m.to_bytes().unwrap()).unwrap();
    assert_eq!(
        json["requests"][0],
        serde_json::json!({"at": "2025-06-15T15:06:41.000Z", "kind": "pty-req",
            "term": "xterm-256color", "cols": 80, "rows": 24, "accepted": true})
    );
    assert_eq!(
        json["requests"][2],
        serde_json::json!({"at": "2025-06-15T15:06:41.000Z", "kind": "shell", "accepted": true})
    );
    assert_eq!(json["requests"][3]["accepted"], serde_json::Value::Null);
    assert_eq!(json["kind"], "shell");
    assert_eq!(json["linked"], serde_json::json!(["s17-c1"]));
    assert_eq!(json["cast"]["file"], "s17-c0.cast");
}

#[test]
fn the_channel_kind_follows_the_first_accepted_shell_exec_or_subsystem() {
    let mut b = ManifestBuilder::new(origin(), 0, ChannelKind::Session, t(0));
    b.request(t(1), Request::exec(b"rm -rf /"), Some(false));
    assert_eq!(
        b.kind(),
        &ChannelKind::Session,
        "a refused exec changes nothing"
    );
    b.request(t(2), Request::subsystem(b"sftp"), Some(true));
    assert!(b.kind().is_sftp());
    b.request(t(3), Request::Shell, Some(true));
    assert_eq!(b.kind().to_string(), "subsystem:sftp");
    let m = b.finish(t(4), "closed", None);
    assert_eq!(m.requests.len(), 3);
    assert_eq!(m.requests[0].accepted, Some(false));
}

#[test]
fn environment_values_are_kept_only_for_locale_and_timezone() {
    assert_eq!(
        Request::env(b"LC_ALL", b"C"),
        Request::Env {
            name: "LC_ALL".into(),
            value: Some("C".into())
        }
    );
    assert_eq!(
        Request::env(b"AWS_SECRET_ACCESS_KEY", b"hunter2"),
        Request::Env {
            name: "AWS_SECRET_ACCESS_KEY".into(),
            value: None
        }
    );
}

#[test]
fn requests_beyond_the_cap_are_counted_not_kept() {
    let mut b = ManifestBuilder::new(origin(), 0, ChannelKind::Shell, t(0));
    for _ in 0..MAX_REQUESTS + 5 {
        b.request(t(1), Request::window_change(1, 1), None);
    }
    let m = b.finish(t(2), "closed", None);
    assert_eq!(m.requests.len(), MAX_REQUESTS);
    assert_eq!(m.requests_omitted, 5);
}

#[test]
fn request_text_is_bounded_by_a_budget() {
    let mut b = ManifestBuilder::new(origin(), 0, ChannelKind::Session, t(0));
    let big = vec![b'x'; MAX_COMMAND * 2];
    for _ in 0..100 {
        b.request(t(1), Request::exec(&big), Some(false));
    }
    let m = b.finish(t(2), "closed", None);
    let kept: usize = m.requests.iter().map(|r| r.request.text_len()).sum();
    assert!(kept <= REQUEST_TEXT_BUDGET);
    assert!(m.requests_omitted > 0);
    let Request::Exec { command } = &m.requests[0].request else {
        panic!("not an exec")
    };
    assert!(command.ends_with(&format!("…[clipped: {} bytes in all]", MAX_COMMAND * 2)));
}

#[test]
fn clipping_respects_character_boundaries() {
    let s = "é".repeat(10);
    let clipped = clip(&s, 5);
    assert!(clipped.starts_with("éé…"), "{clipped}");
    assert_eq!(text(b"ok\xff", 10), "ok\u{fffd}");
}

#[test]
fn channel_kinds_read_back_as_written() {
    for kind in [
        ChannelKind::Session,
        ChannelKind::Shell,
        ChannelKind::Exec,
        ChannelKind::subsystem("sftp"),
        ChannelKind::DirectTcpip,
        ChannelKind::ForwardedTcpip,
        ChannelKind::X11,
        ChannelKind::AuthAgent,
        ChannelKind::Other("tun@openssh.com".into()),
    ] {
        assert_eq!(ChannelKind::from(kind.to_string().as_str()), kind);
    }
}

#[test]
fn a_hashed_cast_is_the_same_whatever_the_chunking() {
    let cast = b"{\"version\": 2}\n[0.1, \"o\", \"hi\"]\n";
    let whole = CastRef::of("a.cast", cast);
    let mut h = CastHasher::new();
    for chunk in cast.chunks(3) {
        h.update(chunk);
    }
    assert_eq!(h.finish("a.cast"), whole);
    assert_eq!(whole.bytes, cast.len() as u64);
    assert_eq!(whole.sha256.len(), 64);
}

#[test]
fn other_formats_and_garbage_are_refused_with_what_they_are() {
    let mut json: serde_json::Value =
        serde_json::from_slice(&shell_manifest().to_bytes().unwrap()).unwrap();
    json["format"] = "latch-recording/2".into();
    let err = Manifest::from_bytes(json.to_string().as_bytes()).unwrap_err();
    assert!(matches!(err, ManifestError::Format { ref found } if found == "latch-recording/2"));
    assert!(err.to_string().contains("ssh-keygen -Y verify"));
    assert!(matches!(
        Manifest::from_bytes(b"\x00\xff{"),
        Err(ManifestError::Parse(_))
    ));
    assert!(matches!(
        Manifest::from_bytes(b"{\"format\": \"latch-recording/1\"}"),
        Err(ManifestError::Parse(_))
    ));
}

#[test]
fn a_snapshot_kept_while_running_seals_as_incomplete_after_a_crash() {
    let mut b = ManifestBuilder::new(origin(), 2, ChannelKind::Session, t(0));
    b.request(t(1), Request::exec(b"make deploy"), Some(true));
    let snapshot = b.snapshot(t(1)).to_bytes().unwrap();
    let recovered = Manifest::from_bytes(&snapshot).unwrap().into_incomplete(
        t(30),
        "broker_restart",
        Some(CastRef::of("s17-c2.cast", b"partial")),
    );
    assert!(!recovered.complete);
    assert_eq!(recovered.end_cause, "broker_restart");
    assert_eq!(recovered.kind, ChannelKind::Exec);
    assert_eq!(recovered.cast.as_ref().unwrap().bytes, 7);
    assert_eq!(
        recovered.name().signature_file(),
        "s17-c2.manifest.json.sig"
    );
}

#[test]
fn file_transfer_commands_are_recognised() {
    assert_eq!(file_transfer_tool("scp -v -t -- /tmp"), Some("scp"));
    assert_eq!(file_transfer_tool("/usr/bin/scp -f x"), Some("scp"));
    assert_eq!(
        file_transfer_tool("rsync --server -vlogDtpre.iLsfxCIvu . /srv"),
        Some("rsync")
    );
    assert_eq!(
        file_transfer_tool("/usr/lib/openssh/sftp-server"),
        Some("sftp")
    );
    assert_eq!(file_transfer_tool("rsync -av a b"), None);
    assert_eq!(file_transfer_tool("ls -l"), None);
    assert_eq!(file_transfer_tool(""), None);
}

#[test]
fn links_are_kept_once_and_never_to_itself() {
    let mut b = ManifestBuilder::new(origin(), 0, ChannelKind::Shell, t(0));
    b.link(&RecordingName::new("s17", 1));
    b.link(&RecordingName::new("s17", 1));
    b.link(&RecordingName::new("s17", 0));
    assert_eq!(b.finish(t(1), "closed", None).linked, vec!["s17-c1"]);
}
