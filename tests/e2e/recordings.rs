//! Session recordings (DESIGN.md principle 5): every channel of a proxied session is
//! recorded, sealed and signed when it closes, and verifiable with public tools
//! (`asciinema`, `ssh-keygen -Y verify`, `sha256sum`); a session that cannot be recorded is
//! cut; a crash leaves a recording the next start seals as incomplete. Also what auditors do
//! with them over SSH (`recordings`, `--grep`, `replay`, `transcript`) and retention.

use crate::support::recordings::{
    asciinema_cat, run_with_input, sha256, ssh_keygen_verify, Cast, Recording,
};
use crate::support::{eventually, run, Config, Latch, Out, Running, Site, Target, User};
use serde_json::Value;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const DB: &str = "prod-db-01";
const TARGET: &str = "root@prod-db-01";

/// One real target and a broker pinning it.
///
/// - `alice` holds nothing standing; she may request `ops` (auto-approved shells and
///   commands) and `files` (auto-approved, sftp allowed).
/// - `tina` holds the standing role `typist`, whose sessions record keystrokes.
/// - `audrey` is an auditor; `admin` a latch admin; `mallory` a user with no role at all.
///
/// Fields drop in order: the broker and target before the directory they live in.
struct World {
    latch: Latch,
    _db: Target,
    alice: User,
    tina: User,
    audrey: User,
    admin: User,
    mallory: User,
    site: Site,
}

fn config(site: &Site, db: &Target) -> (Config, [User; 5]) {
    let (alice, tina, audrey, admin, mallory) = (
        site.user("alice"),
        site.user("tina"),
        site.user("audrey"),
        site.user("admin"),
        site.user("mallory"),
    );
    let config = Config::new()
        .user(&alice, &[], &["ops", "files"])
        .user(&tina, &["typist"], &[])
        .user(&audrey, &["auditor"], &[])
        .user(&admin, &["admin"], &[])
        .user(&mallory, &[], &[])
        .role("auditor", "auditor = true")
        .role("admin", "admin = true")
        .role(
            "ops",
            "logins = [\"root\"]\nhosts = [\"*\"]\nauto_approve = true",
        )
        .role(
            "files",
            "logins = [\"root\"]\nhosts = [\"*\"]\nauto_approve = true\nsftp = true",
        )
        .role(
            "typist",
            "logins = [\"root\"]\nhosts = [\"*\"]\nrecord_input = true",
        )
        .target(db);
    (config, [alice, tina, audrey, admin, mallory])
}

fn world() -> World {
    world_with(|c| c, "")
}

/// A world whose config `tweak` may extend, its broker started under the shell `prelude`
/// (empty: started directly).
fn world_with(tweak: impl FnOnce(Config) -> Config, prelude: &str) -> World {
    let site = Site::new();
    let db = Target::start(&site, DB);
    let (config, [alice, tina, audrey, admin, mallory]) = config(&site, &db);
    let config = tweak(config);
    let latch = if prelude.is_empty() {
        site.start(&config)
    } else {
        site.start_under(&config, prelude)
    };
    World {
        latch,
        _db: db,
        alice,
        tina,
        audrey,
        admin,
        mallory,
        site,
    }
}

impl World {
    /// An auto-approved grant of `role` for alice on every host; its id.
    #[track_caller]
    fn grant(&self, role: &str) -> String {
        let g = self
            .latch
            .ssh(
                &self.alice,
                &[
                    "request",
                    "--role",
                    role,
                    "--hosts",
                    "*",
                    "--duration",
                    "10m",
                    "--json",
                ],
            )
            .ok()
            .json();
        assert_eq!(g["status"], "approved", "{g:#}");
        g["id"].as_str().expect("the grant's id").to_string()
    }

    /// The id of the newest session (`s3`).
    #[track_caller]
    fn last_session(&self) -> String {
        self.latch
            .event_data("session_started")
            .last()
            .and_then(|d| d["id"].as_str().map(str::to_string))
            .expect("a session_started event")
    }

    /// Await the one recording of `session` and return it with its seal event.
    #[track_caller]
    fn only_recording(&self, session: &str) -> (Recording, Value) {
        let seals = self.latch.sealed(session);
        assert_eq!(seals.len(), 1, "one channel, one recording: {seals:#?}");
        let seal = seals[0].clone();
        let name = seal["recording"].as_str().expect("a recording name");
        (self.latch.recording(name), seal)
    }

    /// Run `remote` on the target as alice (her grant must exist), then await its recording.
    #[track_caller]
    fn exec(&self, remote: &str) -> (Out, String, Recording) {
        let out = self.latch.to(&self.alice, TARGET, remote);
        let session = self.last_session();
        let (rec, _) = self.only_recording(&session);
        (out, session, rec)
    }

    /// An interactive shell on a pty (`ssh -tt`) as `user`, with `typed` on its stdin.
    fn shell(&self, user: &User, typed: &str) -> Out {
        let mut ssh = self.latch.to_command(user, TARGET, &["-tt"], "");
        ssh.env("TERM", "xterm-256color");
        run_with_input(ssh, typed.as_bytes(), Duration::from_secs(30))
    }

    /// Await the `session_ended` data of `session`.
    #[track_caller]
    fn ended(&self, session: &str) -> Value {
        eventually(
            Duration::from_secs(10),
            &format!("session_ended for {session}"),
            || {
                self.latch
                    .event_data("session_ended")
                    .into_iter()
                    .find(|d| d["id"] == session)
                    .ok_or_else(|| format!("{:#?}", self.latch.event_data("session_ended")))
            },
        )
    }
}

/// The requests of `kind` in a manifest.
fn requests<'m>(manifest: &'m Value, kind: &str) -> Vec<&'m Value> {
    manifest["requests"]
        .as_array()
        .map(|r| r.iter().filter(|q| q["kind"] == kind).collect())
        .unwrap_or_default()
}

/// Flip one byte of `path` at the first occurrence of `find` to `to`.
#[track_caller]
fn edit_one_byte(path: &Path, find: &str, to: u8) {
    let mut bytes = fs::read(path).expect("read the file to edit");
    let at = bytes
        .windows(find.len())
        .position(|w| w == find.as_bytes())
        .unwrap_or_else(|| {
            panic!(
                "{find:?} not in {}:\n{}",
                path.display(),
                String::from_utf8_lossy(&bytes)
            )
        });
    assert_ne!(bytes[at], to, "the edit must change the byte");
    bytes[at] = to;
    fs::write(path, bytes).expect("write the edited file");
}

#[test]
fn a_shell_session_is_sealed_as_a_cast_asciinema_plays_and_openssh_verifies() {
    let w = world();
    let grant = w.grant("ops");
    let out = w.shell(&w.alice, "echo RESULT-$((6*7)); exit 3\n");
    out.expect_status(3);
    assert!(out.stdout.contains("RESULT-42"), "{out}");
    let session = w.last_session();
    let (rec, seal) = w.only_recording(&session);

    // The real asciinema reads it, and shows what was printed.
    let cat = asciinema_cat(&rec.cast_path()).ok();
    assert!(
        cat.stdout.contains("RESULT-42"),
        "asciinema cat should show the output:\n{cat}"
    );

    // The header: who, where, which terminal. `ssh -tt` without a terminal asks for 0x0,
    // which becomes the classic 80x24.
    let cast = rec.cast();
    let h = &cast.header;
    assert_eq!(h["version"], 2, "{h}");
    assert_eq!((&h["width"], &h["height"]), (&80.into(), &24.into()), "{h}");
    assert_eq!(
        h["title"],
        format!("alice as root on {DB} ({session})"),
        "{h}"
    );
    assert_eq!(h["env"]["TERM"], "xterm-256color", "{h}");
    assert!(h.get("command").is_none(), "a shell has no command: {h}");
    assert!(cast.output().contains("RESULT-42"), "{}", cast.text);

    // The manifest: every request with the target's answer, the exit status, the cast.
    let m = rec.manifest();
    assert_eq!(m["kind"], "shell", "{m:#}");
    assert_eq!(
        (
            &m["session"],
            &m["user"],
            &m["login"],
            &m["host"],
            &m["grant"]
        ),
        (
            &session.as_str().into(),
            &"alice".into(),
            &"root".into(),
            &DB.into(),
            &grant.as_str().into()
        ),
        "{m:#}"
    );
    let pty = requests(&m, "pty-req");
    assert_eq!(pty.len(), 1, "{m:#}");
    assert_eq!(pty[0]["accepted"], true, "{m:#}");
    assert_eq!(pty[0]["term"], "xterm-256color", "{m:#}");
    let shell = requests(&m, "shell");
    assert_eq!(shell.len(), 1, "{m:#}");
    assert_eq!(shell[0]["accepted"], true, "{m:#}");
    assert_eq!(m["exit_status"], 3, "{m:#}");
    assert_eq!(m["complete"], true, "{m:#}");
    assert_eq!(m["end_cause"], "closed", "{m:#}");
    let cast_sha = sha256(&rec.cast_path());
    assert_eq!(m["cast"]["file"], format!("{}.cast", rec.name), "{m:#}");
    assert_eq!(
        m["cast"]["sha256"], cast_sha,
        "sha256sum of the cast must equal the manifest's"
    );
    assert_eq!(
        m["cast"]["bytes"],
        fs::metadata(rec.cast_path()).expect("cast").len(),
        "{m:#}"
    );
    assert!(
        !rec.partial_path().exists(),
        "the partial manifest goes once sealed"
    );

    // The signature verifies with OpenSSH alone, given the allowed_signers line latch prints.
    let allowed = w.site.allowed_signers();
    let line = fs::read_to_string(&allowed).expect("allowed_signers");
    assert!(
        line.starts_with("latch-audit namespaces=\"latch-recording@latch\" ssh-ed25519 "),
        "{line}"
    );
    let verified = ssh_keygen_verify(&allowed, &rec.manifest_path(), &rec.signature_path()).ok();
    assert!(
        format!("{}{}", verified.stdout, verified.stderr)
            .contains("Good \"latch-recording@latch\" signature for latch-audit"),
        "{verified}"
    );

    // The event log vouches for the same bytes.
    assert_eq!(seal["cast_sha256"], cast_sha, "{seal}");
    assert_eq!(
        seal["manifest_sha256"],
        sha256(&rec.manifest_path()),
        "{seal}"
    );
    assert_eq!(seal["complete"], true, "{seal}");

    let v = w.site.verify_recordings(&[]).ok();
    assert!(v.stdout.contains("OK "), "{v}");
    assert!(v.stdout.contains("1 recordings checked, 0 failed"), "{v}");
}

#[test]
fn an_exec_recording_carries_its_command_and_exit_status() {
    let w = world();
    w.grant("ops");
    let command = "echo exec-output; exit 7";
    let (out, _, rec) = w.exec(command);
    out.expect_status(7);
    let cast = rec.cast();
    assert_eq!(cast.header["command"], command, "{}", cast.text);
    assert!(cast.output().contains("exec-output"), "{}", cast.text);
    assert!(
        cast.data("m").contains(&"exit status 7"),
        "an 'exit status 7' marker: {}",
        cast.text
    );
    let m = rec.manifest();
    assert_eq!(m["kind"], "exec", "{m:#}");
    let exec = requests(&m, "exec");
    assert_eq!(exec.len(), 1, "{m:#}");
    assert_eq!(exec[0]["command"], command, "{m:#}");
    assert_eq!(exec[0]["accepted"], true, "{m:#}");
    assert!(requests(&m, "pty-req").is_empty(), "{m:#}");
    assert_eq!(m["exit_status"], 7, "{m:#}");
}

#[test]
fn a_character_split_across_ssh_packets_is_recorded_whole() {
    let w = world();
    w.grant("ops");
    // "€" is e2 82 ac: the first byte goes in one write (one SSH packet), the rest 0.3 s
    // later in another.
    let (out, _, rec) = w.exec(r#"sh -c "printf '\342'; sleep 0.3; printf '\202\254X'""#);
    let out = out.ok();
    assert_eq!(out.stdout, "€X", "the client gets the bytes as sent: {out}");
    let cast = rec.cast();
    let output = cast.output();
    assert!(
        output.contains("€X"),
        "the cast should hold the whole character: {:?}",
        cast.text
    );
    assert!(
        !cast.text.contains('\u{FFFD}') && !cast.text.contains("\\ufffd"),
        "no replacement character: {:?}",
        cast.text
    );
}

#[test]
fn resizing_the_terminal_is_recorded_as_a_resize_event() {
    let w = world();
    w.grant("ops");
    let driver = concat!(env!("CARGO_MANIFEST_DIR"), "/e2e/support/pty_drive.py");
    let ssh = w.latch.to_command(&w.alice, TARGET, &["-tt"], "");
    let mut cmd = Command::new("python3");
    cmd.arg(driver)
        .args(["30x100", "41x133", "--"])
        .arg(ssh.get_program())
        .args(ssh.get_args());
    let out = run(cmd, Duration::from_secs(60));
    out.expect_status(5);
    let (rec, _) = w.only_recording(&w.last_session());
    let cast = rec.cast();
    assert_eq!(
        (&cast.header["width"], &cast.header["height"]),
        (&100.into(), &30.into()),
        "the header has the pty request's size: {}",
        cast.header
    );
    assert!(
        cast.data("r").contains(&"133x41"),
        "a resize event to 133 columns by 41 rows: {}",
        cast.text
    );
    let m = rec.manifest();
    let changes = requests(&m, "window-change");
    assert!(
        changes.iter().any(|c| c["cols"] == 133 && c["rows"] == 41),
        "{m:#}"
    );
    assert_eq!(m["exit_status"], 5, "{m:#}");
}

#[test]
fn editing_one_byte_of_a_cast_is_caught_by_latch_verify_and_by_sha256() {
    let w = world();
    w.grant("ops");
    let (_, _, rec) = w.exec("echo untouched-output");
    w.site.verify_recordings(&[]).ok();

    edit_one_byte(&rec.cast_path(), "untouched", b'U');
    assert_ne!(
        sha256(&rec.cast_path()),
        rec.manifest()["cast"]["sha256"],
        "sha256sum must differ from the manifest after the edit"
    );
    for out in [
        w.site.verify_recordings(&[]),
        w.site.verify_recordings(&[&rec.manifest_path()]),
    ] {
        out.expect_status(1);
        let failed = out
            .stdout
            .lines()
            .find(|l| l.starts_with("FAILED"))
            .unwrap_or_else(|| panic!("a FAILED line:\n{out}"));
        assert!(failed.contains(&rec.name), "names the recording: {out}");
        assert!(
            failed.contains("does not match"),
            "says the cast does not match: {out}"
        );
    }
}

#[test]
fn editing_one_byte_of_a_manifest_is_caught_by_ssh_keygen_and_latch_verify() {
    let w = world();
    w.grant("ops");
    let (_, _, rec) = w.exec("echo hello");
    let allowed = w.site.allowed_signers();
    ssh_keygen_verify(&allowed, &rec.manifest_path(), &rec.signature_path()).ok();

    // One byte: the host it happened on, still a well-formed manifest.
    edit_one_byte(&rec.manifest_path(), "prod-db-01", b'P');
    let keygen = ssh_keygen_verify(&allowed, &rec.manifest_path(), &rec.signature_path());
    assert_ne!(
        keygen.status, 0,
        "ssh-keygen must refuse the edited manifest:\n{keygen}"
    );
    let out = w.site.verify_recordings(&[]);
    out.expect_status(1);
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("FAILED") && l.contains(&rec.name)),
        "{out}"
    );
}

#[test]
fn a_manifest_damaged_into_invalid_json_fails_a_verify_of_every_recording() {
    let w = world();
    w.grant("ops");
    let (_, _, rec) = w.exec("echo hello");
    w.site.verify_recordings(&[]).ok();
    // One byte that makes the manifest unreadable: its opening brace.
    edit_one_byte(&rec.manifest_path(), "{", b'X');
    let out = w.site.verify_recordings(&[]);
    assert_eq!(
        out.status, 1,
        "a recording whose manifest no longer parses must not pass unmentioned:\n{out}"
    );
    assert!(out.stdout.contains(&rec.name), "names it:\n{out}");
}

#[test]
fn killing_the_broker_mid_session_leaves_a_recording_sealed_incomplete_at_restart() {
    let mut w = world();
    w.grant("ops");
    let mut client = Running::spawn(w.latch.to_command(
        &w.alice,
        TARGET,
        &[],
        "echo started-before-crash; sleep 30",
    ));
    client.await_stdout("started-before-crash", Duration::from_secs(15));
    let session = w.last_session();
    let rec = w.latch.recording(&format!("{session}-c0"));
    eventually(
        Duration::from_secs(5),
        "the output in the cast on disk",
        || {
            let text = fs::read_to_string(rec.cast_path()).map_err(|e| e.to_string())?;
            // An event line, not the header (whose command says the same).
            if text
                .lines()
                .skip(1)
                .any(|l| l.contains("started-before-crash"))
            {
                Ok(())
            } else {
                Err(text)
            }
        },
    );
    assert!(
        rec.partial_path().exists(),
        "an open recording has a partial manifest"
    );

    w.latch.kill();
    assert!(
        !rec.manifest_path().exists(),
        "nothing sealed it before the crash"
    );
    let (_out, _) = client.finish(Duration::from_secs(10));
    // A crash in the middle of a write leaves half a line at the end of the cast.
    let whole = fs::read(rec.cast_path()).expect("cast");
    assert_eq!(whole.last(), Some(&b'\n'), "the writer writes whole lines");
    let mut torn = whole.clone();
    torn.extend_from_slice(br#"[0.9, "o", "torn-half-li"#);
    fs::write(rec.cast_path(), &torn).expect("tear the cast");

    w.latch.start_again();
    let seals = w.latch.sealed(&session);
    assert_eq!(seals.len(), 1, "{seals:#?}");
    assert_eq!(seals[0]["complete"], false, "{:#}", seals[0]);
    let m = rec.manifest();
    assert_eq!(m["complete"], false, "{m:#}");
    assert_eq!(m["end_cause"], "broker_restart", "{m:#}");
    assert_eq!(m["cast"]["sha256"], sha256(&rec.cast_path()), "{m:#}");
    assert_eq!(
        fs::read(rec.cast_path()).expect("cast"),
        whole,
        "the cast is cut back to its last whole line"
    );
    assert!(
        !rec.partial_path().exists(),
        "the partial is gone once sealed"
    );
    let cat = asciinema_cat(&rec.cast_path()).ok();
    assert!(cat.stdout.contains("started-before-crash"), "{cat}");
    let v = w.site.verify_recordings(&[]).ok();
    assert!(
        v.stdout.contains("sealed incomplete: broker_restart"),
        "{v}"
    );
    assert_eq!(w.ended(&session)["cause"], "broker_restart");
}

#[test]
fn a_recording_past_the_file_size_limit_cuts_its_session_and_the_broker_lives_on() {
    // 2048 blocks of 1 KiB: the cast of a few megabytes of output cannot be written.
    let w = world_with(|c| c, "ulimit -f 2048");
    w.grant("ops");
    let started = Instant::now();
    let client = Running::spawn(w.latch.to_command(&w.alice, TARGET, &[], "seq 1 3000000"));
    let (out, _) = client.finish(Duration::from_secs(30));
    let session = w.last_session();
    let end = w.ended(&session);
    assert_eq!(end["cause"], "recording_failed", "{end}\n{out}");
    assert_ne!(
        out.status, 0,
        "the client must see the session cut, not a clean end"
    );
    assert!(
        !out.stdout.contains("\n3000000\n"),
        "the output must stop short of the end ({:?} elapsed)",
        started.elapsed()
    );
    let who = w.latch.ssh(&w.alice, &["whoami"]);
    who.ok();
    let seals = w.latch.sealed(&session);
    assert_eq!(seals.len(), 1, "{seals:#?}");
    let m = w
        .latch
        .recording(seals[0]["recording"].as_str().unwrap_or_default())
        .manifest();
    assert_eq!(m["complete"], false, "{m:#}");
    assert_eq!(m["end_cause"], "recording_failed", "{m:#}");
}

#[test]
fn grep_finds_text_drawn_with_cursor_movement_and_not_text_inside_escape_sequences() {
    let w = world();
    w.grant("ops");
    // ZEBXA, two columns back, R over the X: the screen says ZEBRA, the bytes never do.
    // HIDDENWORD is only ever a window title (an OSC sequence), never on the screen.
    let (out, session, rec) = w.exec(r"printf 'ZEBXA\033[2DR\n\033]0;HIDDENWORD\007shown\n'");
    out.ok();
    let raw = fs::read_to_string(rec.cast_path()).expect("cast");
    let output = Cast::read(&rec.cast_path()).output();
    assert!(
        !output.contains("ZEBRA"),
        "the test needs raw bytes without the word: {raw}"
    );
    assert!(
        output.contains("HIDDENWORD"),
        "the title is in the bytes: {raw}"
    );

    let found = w
        .latch
        .ssh(&w.audrey, &["recordings", "--grep", "ZEBRA", "--json"])
        .ok()
        .json();
    let hit = found
        .as_array()
        .and_then(|a| a.iter().find(|e| e["recording"] == rec.name.as_str()))
        .unwrap_or_else(|| panic!("--grep ZEBRA should find {}: {found:#}", rec.name));
    assert_eq!(hit["session"], session.as_str(), "{hit:#}");
    let matches = hit["matches"].as_array().cloned().unwrap_or_default();
    assert!(
        matches
            .iter()
            .any(|m| m["line"].as_str().unwrap_or("").contains("ZEBRA")),
        "{hit:#}"
    );

    let none = w
        .latch
        .ssh(&w.audrey, &["recordings", "--grep", "HIDDENWORD", "--json"])
        .ok()
        .json();
    assert_eq!(none, serde_json::json!([]), "a title is not screen text");
    let text = w
        .latch
        .ssh(&w.audrey, &["recordings", "--grep", "HIDDENWORD"])
        .ok();
    assert!(
        text.stdout
            .contains("No recording showed that text on screen."),
        "{text}"
    );
}

#[test]
fn grep_and_every_recordings_command_are_refused_to_a_non_auditor() {
    let w = world();
    w.grant("ops");
    let (_, session, _) = w.exec("echo secret-output");
    for who in [&w.mallory, &w.alice] {
        for args in [
            vec!["recordings"],
            vec!["recordings", "--grep", "secret"],
            vec!["replay", session.as_str()],
            vec!["transcript", session.as_str()],
        ] {
            let out = w.latch.ssh(who, &args);
            out.expect_status(4);
            assert!(!out.stdout.contains("secret-output"), "{out}");
        }
    }
}

#[test]
fn auditors_list_replay_and_transcribe_recordings_over_ssh() {
    let w = world();
    let grant = w.grant("ops");
    let (_, session, rec) = w.exec(r"printf '\033[31mRED-ALERT\033[0m plain-words\n'; exit 2");

    let list = w
        .latch
        .ssh(&w.audrey, &["recordings", "--json", "--user", "alice"])
        .ok()
        .json();
    let entries = list.as_array().cloned().unwrap_or_default();
    assert_eq!(entries.len(), 1, "{list:#}");
    let e = &entries[0];
    assert_eq!(e["recording"], rec.name.as_str(), "{e:#}");
    assert_eq!(e["session"], session.as_str(), "{e:#}");
    assert_eq!(e["kind"], "exec", "{e:#}");
    assert_eq!(
        (&e["user"], &e["login"], &e["host"], &e["grant"], &e["role"]),
        (
            &"alice".into(),
            &"root".into(),
            &DB.into(),
            &grant.as_str().into(),
            &"ops".into()
        ),
        "{e:#}"
    );
    assert_eq!(e["complete"], true, "{e:#}");
    assert_eq!(e["end_cause"], "closed", "{e:#}");
    assert_eq!(e["exit_status"], 2, "{e:#}");
    assert_eq!(e["cast"], format!("{}.cast", rec.name), "{e:#}");
    assert!(
        e["started_at"].is_string() && e["ended_at"].is_string(),
        "{e:#}"
    );
    let other = w
        .latch
        .ssh(&w.audrey, &["recordings", "--json", "--user", "tina"])
        .ok()
        .json();
    assert_eq!(other, serde_json::json!([]), "--user filters");
    let by_session = w
        .latch
        .ssh(&w.audrey, &["recordings", "--json", "--session", &session])
        .ok()
        .json();
    assert_eq!(
        by_session.as_array().map(Vec::len),
        Some(1),
        "{by_session:#}"
    );

    let replay = w
        .latch
        .ssh(&w.audrey, &["replay", &session, "--speed", "10"])
        .ok();
    assert!(
        replay
            .stdout
            .contains("\u{1b}[31mRED-ALERT\u{1b}[0m plain-words"),
        "replay plays the output as recorded: {replay}"
    );

    let transcript = w.latch.ssh(&w.audrey, &["transcript", &session]).ok();
    assert!(
        transcript.stdout.contains("RED-ALERT plain-words"),
        "{transcript}"
    );
    assert!(
        !transcript.stdout.contains('\u{1b}'),
        "no escape sequences in a transcript: {transcript}"
    );
    let json = w
        .latch
        .ssh(&w.audrey, &["transcript", &rec.name, "--json"])
        .ok()
        .json();
    assert_eq!(json["recording"], rec.name.as_str(), "{json:#}");
    assert!(
        json["transcript"]
            .as_str()
            .unwrap_or("")
            .contains("RED-ALERT plain-words"),
        "{json:#}"
    );

    // Offline, on the files alone.
    let cast = rec.cast_path().display().to_string();
    let local = w.site.latch(&["recordings", "transcript", &cast]).ok();
    assert!(local.stdout.contains("RED-ALERT plain-words"), "{local}");
    assert!(!local.stdout.contains('\u{1b}'), "{local}");
    let played = w.site.latch(&["replay", &cast, "--speed", "10"]).ok();
    assert!(played.stdout.contains("RED-ALERT"), "{played}");

    for args in [
        vec!["replay", "s999"],
        vec!["transcript", "s999"],
        vec!["replay", "s999-c0"],
    ] {
        w.latch.ssh(&w.audrey, &args).expect_status(3);
    }
}

#[test]
fn sftp_is_recorded_as_metadata_with_its_file_operations() {
    let w = world();
    w.grant("files");
    let dir = w.site.path().join("sftp-remote");
    fs::create_dir_all(&dir).expect("dir");
    let local = w.site.path().join("hello.txt");
    let content = "hello through latch\n";
    fs::write(&local, content).expect("write");
    let back = w.site.path().join("hello-back.txt");
    let remote = dir.join("hello.txt");
    let batch = format!(
        "put {} {r}\nls {d}\nget {r} {}\n",
        local.display(),
        back.display(),
        r = remote.display(),
        d = dir.display()
    );
    let file = w.site.path().join("batch");
    fs::write(&file, &batch).expect("write the batch file");
    let mut cmd = Command::new("sftp");
    cmd.arg("-P")
        .arg(w.latch.port.to_string())
        .args(w.latch.client_options(&w.alice))
        .arg("-b")
        .arg(&file)
        .arg(format!("{TARGET}@127.0.0.1"));
    let (out, _) = Running::spawn(cmd).finish(Duration::from_secs(20));
    out.ok();
    assert_eq!(fs::read_to_string(&back).ok().as_deref(), Some(content));

    let (rec, seal) = w.only_recording(&w.last_session());
    assert!(seal["cast_sha256"].is_null(), "{seal}");
    let m = rec.manifest();
    assert_eq!(m["kind"], "subsystem:sftp", "{m:#}");
    assert!(m["cast"].is_null(), "no cast for a file transfer: {m:#}");
    assert!(!rec.cast_path().exists(), "no .cast file");
    let subsystem = requests(&m, "subsystem");
    assert_eq!(subsystem.len(), 1, "{m:#}");
    assert_eq!(
        (&subsystem[0]["name"], &subsystem[0]["accepted"]),
        (&"sftp".into(), &true.into())
    );
    let ops = m["sftp"].as_array().cloned().unwrap_or_default();
    let path = remote.display().to_string();
    let on_file = |op: &str| -> Vec<&Value> {
        ops.iter()
            .filter(|o| o["op"] == op && o["path"] == path.as_str())
            .collect()
    };
    assert!(
        on_file("open")
            .iter()
            .any(|o| o["flags"].as_str().unwrap_or("").contains("write")),
        "an open of {path} for writing: {m:#}"
    );
    let closes = on_file("close");
    assert!(
        closes
            .iter()
            .any(|o| o["bytes_written"] == content.len() as u64),
        "a close of {path} with {} bytes written: {m:#}",
        content.len()
    );
    assert!(
        closes
            .iter()
            .any(|o| o["bytes_read"] == content.len() as u64),
        "a close of {path} with {} bytes read back: {m:#}",
        content.len()
    );
    assert!(
        ops.iter().any(|o| o["op"] == "opendir"
            && o["path"].as_str().map(|p| p.trim_end_matches('/'))
                == Some(dir.display().to_string().as_str())),
        "the ls: {m:#}"
    );
    // The signature covers the metadata the same way.
    let allowed = w.site.allowed_signers();
    ssh_keygen_verify(&allowed, &rec.manifest_path(), &rec.signature_path()).ok();
}

#[test]
fn scp_is_recorded_as_metadata_without_a_cast() {
    let w = world();
    w.grant("files");
    let local = w.site.path().join("payload");
    fs::write(&local, "scp payload\n").expect("write");
    let remote = w.site.path().join("copied");
    let mut cmd = Command::new("scp");
    cmd.arg("-O")
        .arg("-P")
        .arg(w.latch.port.to_string())
        .args(w.latch.client_options(&w.alice))
        .arg(&local)
        .arg(format!("{TARGET}@127.0.0.1:{}", remote.display()));
    run(cmd, Duration::from_secs(30)).ok();
    assert_eq!(
        fs::read_to_string(&remote).ok().as_deref(),
        Some("scp payload\n")
    );
    let (rec, seal) = w.only_recording(&w.last_session());
    assert!(seal["cast_sha256"].is_null(), "{seal}");
    let m = rec.manifest();
    assert_eq!(m["kind"], "exec", "{m:#}");
    assert!(m["cast"].is_null(), "{m:#}");
    assert!(!rec.cast_path().exists(), "no .cast for scp");
    let exec = requests(&m, "exec");
    assert!(
        exec.iter()
            .any(|e| e["command"].as_str().unwrap_or("").starts_with("scp ")
                && e["accepted"] == true),
        "{m:#}"
    );
    assert!(m["bytes_in"].as_u64().unwrap_or(0) >= 12, "{m:#}");
}

#[test]
fn a_role_with_record_input_records_keystrokes_and_the_default_does_not() {
    let w = world();
    w.grant("ops");
    let typed = "echo TYPED-$((40+2)); exit\n";

    w.shell(&w.tina, typed).ok();
    let (rec, _) = w.only_recording(&w.last_session());
    let cast = rec.cast();
    let input = cast.data("i").concat();
    assert!(
        input.contains("echo TYPED-$((40+2))"),
        "typist sessions record what was typed: {}",
        cast.text
    );

    w.shell(&w.alice, typed).ok();
    let (rec, _) = w.only_recording(&w.last_session());
    let cast = rec.cast();
    assert!(cast.output().contains("TYPED-42"), "{}", cast.text);
    assert!(
        cast.data("i").is_empty(),
        "no input events by default: {}",
        cast.text
    );
}

#[test]
fn a_cut_is_marked_in_the_recording_and_ends_it_with_its_cause() {
    let w = world();
    w.grant("ops");
    let mut client =
        Running::spawn(
            w.latch
                .to_command(&w.alice, TARGET, &[], "echo started; sleep 30"),
        );
    client.await_stdout("started", Duration::from_secs(15));
    let session = w.last_session();
    w.latch
        .ssh(&w.admin, &["kill", &session, "--reason", "audit-drill"])
        .ok();
    client.finish(Duration::from_secs(10));
    let (rec, _) = w.only_recording(&session);
    let cast = rec.cast();
    assert!(
        cast.data("m")
            .iter()
            .any(|m| m.contains("killed") && m.contains("audit-drill")),
        "a marker saying the session was killed and why: {}",
        cast.text
    );
    let m = rec.manifest();
    assert_eq!(m["end_cause"], "killed", "{m:#}");
    assert_eq!(m["complete"], true, "{m:#}");
}

#[test]
fn retention_deletes_old_recordings_at_start_and_logs_each_deletion() {
    let mut w = world_with(|c| c.recordings("retention = \"1s\""), "");
    w.grant("ops");
    let (_, _, rec) = w.exec("echo soon-gone");
    assert!(rec.manifest_path().exists() && rec.cast_path().exists());
    w.latch.stop();
    let ended = rec.manifest()["ended_at"].clone();
    // Retention runs at start: the recording must have ended more than 1 s before it.
    std::thread::sleep(Duration::from_millis(1500));
    w.latch.start_again();
    let deleted = eventually(Duration::from_secs(10), "a recording_deleted event", || {
        w.latch
            .event_data("recording_deleted")
            .into_iter()
            .find(|d| d["recording"] == rec.name.as_str())
            .ok_or_else(|| format!("files: {:?}", w.latch.recording_files()))
    });
    assert!(
        deleted["reason"]
            .as_str()
            .unwrap_or("")
            .contains("retention"),
        "{deleted} (ended {ended})"
    );
    eventually(Duration::from_secs(5), "the files deleted", || {
        let left: Vec<_> = [rec.cast_path(), rec.manifest_path(), rec.signature_path()]
            .into_iter()
            .filter(|p| p.exists())
            .collect();
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("still there: {left:?}"))
        }
    });
    let left = w
        .latch
        .ssh(&w.audrey, &["recordings", "--json"])
        .ok()
        .json();
    assert_eq!(left, serde_json::json!([]), "nothing listed once deleted");
}
