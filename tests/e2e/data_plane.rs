//! The data plane: `ssh LOGIN@HOST@bastion` relayed to real `sshd` targets under a grant or
//! standing role, with a certificate minted per connection, and cut the moment its grant is
//! revoked, expires, is killed or its user locked out. Also the tools people use through it
//! (`scp` both protocols, `sftp`, `rsync`, `-L`, ControlMaster) and the relay's memory bound.

use crate::support::{eventually, run, time, Config, Latch, Out, Running, Site, Target, User};
use chrono::Utc;
use serde_json::Value;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Two real targets, a broker pinning both, and the people the tests need.
///
/// - `alice` holds nothing standing; she may request `db-admin` (approved by `bob`), `quick`
///   (auto-approved, no sftp or forwarding) and `files` (auto-approved, sftp and `-L`).
/// - `bob` approves `db-admin`; `carol` has the standing role `web-ops` on `web-*`; `admin` is
///   a latch admin. None of them but alice request anything.
///
/// Fields drop in order: the broker and targets before the directory they live in.
struct World {
    latch: Latch,
    db: Target,
    web: Target,
    alice: User,
    bob: User,
    carol: User,
    admin: User,
    site: Site,
}

const DB: &str = "prod-db-01";
const WEB: &str = "web-01";

fn world() -> World {
    world_with(|c, _, _| c)
}

/// A world whose config `tweak` may extend, given the two targets (another `[[hosts]]`).
fn world_with(tweak: impl FnOnce(Config, &Target, &Target) -> Config) -> World {
    let site = Site::new();
    let (alice, bob, carol, admin) = (
        site.user("alice"),
        site.user("bob"),
        site.user("carol"),
        site.user("admin"),
    );
    let db = Target::start(&site, DB);
    let web = Target::start(&site, WEB);
    let config = Config::new()
        .jit("expiry_warning", "2s")
        .user(&alice, &[], &["db-admin", "quick", "files"])
        .user(&bob, &["approver"], &[])
        .user(&carol, &["web-ops"], &[])
        .user(&admin, &["admin"], &[])
        .role("approver", "")
        .role("admin", "admin = true")
        .role(
            "db-admin",
            r#"logins = ["root"]
hosts = ["*"]
approvers = ["approver"]"#,
        )
        .role(
            "quick",
            r#"logins = ["root"]
hosts = ["*"]
auto_approve = true"#,
        )
        .role(
            "files",
            r#"logins = ["root"]
hosts = ["*"]
auto_approve = true
sftp = true
port_forwarding = true"#,
        )
        .role("web-ops", "logins = [\"root\"]\nhosts = [\"web-*\"]")
        .target(&db)
        .target(&web);
    let latch = site.start(&tweak(config, &db, &web));
    World {
        latch,
        db,
        web,
        alice,
        bob,
        carol,
        admin,
        site,
    }
}

impl World {
    /// `request ... --json` as alice, which must succeed; the grant.
    #[track_caller]
    fn request(&self, role: &str, hosts: &str, duration: &str) -> Value {
        self.latch
            .ssh(
                &self.alice,
                &[
                    "request",
                    "--role",
                    role,
                    "--hosts",
                    hosts,
                    "--duration",
                    duration,
                    "--json",
                ],
            )
            .ok()
            .json()
    }

    /// An auto-approved grant for alice on every host; its id.
    #[track_caller]
    fn grant(&self, role: &str, duration: &str) -> String {
        let g = self.request(role, "*", duration);
        assert_eq!(g["status"], "approved", "{g:#}");
        id_of(&g)
    }

    /// Every event of `kind` in the log, oldest first.
    fn events(&self, kind: &str) -> Vec<Value> {
        self.latch
            .events()
            .into_iter()
            .filter(|r| r["event"]["type"] == kind)
            .collect()
    }

    /// Await the `session_ended` record of session `id`.
    #[track_caller]
    fn ended(&self, id: &str) -> Value {
        eventually(
            Duration::from_secs(10),
            &format!("session_ended for {id}"),
            || {
                self.events("session_ended")
                    .into_iter()
                    .find(|r| r["event"]["data"]["id"] == id)
                    .map(|r| r["event"]["data"].clone())
                    .ok_or_else(|| format!("{:#?}", self.events("session_started")))
            },
        )
    }

    /// Start `remote` on `target` as `user`, and wait until it printed `started`: the
    /// session is then relayed end to end. The id of the session it runs in (the newest).
    #[track_caller]
    fn running(&self, user: &User, target: &str, remote: &str) -> (Running, String) {
        let mut r = Running::spawn(self.latch.to_command(user, target, &[], remote));
        r.await_stdout("started", Duration::from_secs(15));
        let id = self
            .events("session_started")
            .last()
            .map(|r| r["event"]["data"]["id"].as_str().unwrap_or("").to_string())
            .expect("a session_started event");
        (r, id)
    }

    /// The live sessions `user` may see.
    #[track_caller]
    fn sessions(&self, user: &User) -> Vec<Value> {
        let v = self.latch.ssh(user, &["sessions", "--json"]).ok().json();
        v.as_array().cloned().unwrap_or_default()
    }
}

fn id_of(v: &Value) -> String {
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {v}"))
        .to_string()
}

/// `ssh-keygen -lf` of a public key line: its `SHA256:...` fingerprint.
fn fingerprint(site: &Site, key_line: &str) -> String {
    let path = site.path().join("fingerprint.pub");
    fs::write(&path, format!("{key_line}\n")).expect("write");
    let mut cmd = Command::new("ssh-keygen");
    cmd.arg("-lf").arg(&path);
    let out = run(cmd, Duration::from_secs(10)).ok();
    out.stdout
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("ssh-keygen -lf said {out}"))
        .to_string()
}

/// `sha256sum FILE`: the hex digest.
fn sha256(path: &Path) -> String {
    let mut cmd = Command::new("sha256sum");
    cmd.arg(path);
    let out = run(cmd, Duration::from_secs(120)).ok();
    out.stdout
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// `text` without terminal escape sequences and carriage returns, as a person reads it.
fn plain(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {}
            '\u{1b}' if chars.peek() == Some(&'[') => {
                chars.next();
                // Parameters, then one final letter.
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// The client must exit within `within` of `since`; how long it took.
#[track_caller]
fn exited_within(at: Instant, since: Instant, within: Duration, out: &Out) -> Duration {
    let took = at.saturating_duration_since(since);
    assert!(
        took <= within,
        "the client exited {took:?} after the cut, over {within:?}:\n{out}"
    );
    took
}

#[test]
fn connecting_without_a_grant_is_denied_with_the_request_to_make_and_audited() {
    let w = world();
    let out = w.latch.to(&w.alice, &format!("root@{DB}"), "whoami");
    out.expect_status(1);
    assert!(
        out.stderr.starts_with("latch: access denied: ") && out.stderr.contains(DB),
        "the refusal should say access is denied on {DB}:\n{out}"
    );
    assert!(
        out.stderr
            .contains(&format!("Request access with:\n  ssh -p {} bastion request --role db-admin --hosts 'prod-db-01' --reason '", w.latch.port)),
        "the refusal should give the exact request to make:\n{out}"
    );
    assert!(out.stdout.is_empty(), "{out}");

    let denied = w.events("session_denied");
    let d = &denied
        .last()
        .unwrap_or_else(|| panic!("no session_denied event"))["event"]["data"];
    assert_eq!(
        (&d["user"], &d["login"], &d["host"]),
        (&"alice".into(), &"root".into(), &DB.into()),
        "{d}"
    );
    assert!(
        w.events("session_started").is_empty(),
        "a denied connection starts no session"
    );
    assert!(
        !w.db.log().contains("Accepted"),
        "a denied connection never reaches the target:\n{}",
        w.db.log()
    );
}

#[test]
fn a_grant_reaches_only_hosts_matching_its_pattern_and_only_with_the_role_logins() {
    let w = world();
    let g = w.request("db-admin", "prod-*", "1h");
    let id = id_of(&g);
    w.latch.ssh(&w.bob, &["approve", &id]).ok();

    let out = w.latch.to(&w.alice, &format!("root@{DB}"), "whoami").ok();
    assert_eq!(out.stdout.trim(), "root", "{out}");
    // The `-o User=` spelling reaches the same place.
    let out = w
        .latch
        .to_with(
            &w.alice,
            "ignored",
            &["-o", &format!("User=root@{DB}")],
            "whoami",
        )
        .ok();
    assert_eq!(out.stdout.trim(), "root", "{out}");

    let out = w.latch.to(&w.alice, &format!("root@{WEB}"), "whoami");
    out.expect_status(1);
    assert!(
        out.stderr.contains("access denied") && out.stderr.contains(WEB),
        "{out}"
    );
    assert!(
        !w.web.log().contains("Accepted"),
        "web-01 must not be reached"
    );

    let out = w.latch.to(&w.alice, &format!("nobody@{DB}"), "whoami");
    out.expect_status(1);
    assert!(
        out.stderr.contains("access denied") && out.stderr.contains("login 'nobody'"),
        "the refusal should name the login:\n{out}"
    );
    let denied: Vec<Value> = w
        .events("session_denied")
        .into_iter()
        .map(|r| r["event"]["data"].clone())
        .collect();
    assert_eq!(denied.len(), 2, "{denied:#?}");
    assert_eq!(
        (&denied[0]["host"], &denied[1]["login"]),
        (&WEB.into(), &"nobody".into())
    );
}

#[test]
fn a_standing_role_reaches_its_hosts_without_any_request() {
    let w = world();
    let out = w.latch.to(&w.carol, &format!("root@{WEB}"), "whoami").ok();
    assert_eq!(out.stdout.trim(), "root", "{out}");
    let started = w.events("session_started");
    let s = &started[0]["event"]["data"];
    assert_eq!(s["by"]["kind"], "standing_role", "{s}");
    assert_eq!(s["by"]["name"], "web-ops", "{s}");
    let id = s["id"].as_str().unwrap_or_default();
    assert!(
        w.web.log().contains(&format!(
            "Accepted certificate ID \"latch:role:web-ops:carol:{id}\""
        )),
        "{}",
        w.web.log()
    );
    // The role covers web-* only.
    w.latch
        .to(&w.carol, &format!("root@{DB}"), "whoami")
        .expect_status(1);
}

#[test]
fn the_target_logs_the_certificate_key_id_naming_grant_user_and_session() {
    let w = world();
    let grant = w.grant("quick", "1h");
    w.latch.to(&w.alice, &format!("root@{DB}"), "true").ok();
    let started = w.events("session_started");
    let session = started[0]["event"]["data"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let key_id = format!("latch:{grant}:alice:{session}");

    let log = w.db.log();
    assert!(
        log.contains(&format!("Accepted certificate ID \"{key_id}\"")),
        "sshd should log the certificate's key id {key_id}:\n{log}"
    );
    assert!(
        log.contains("Accepted publickey for root"),
        "the login is root:\n{log}"
    );
    let connected = w.events("session_connected");
    assert_eq!(connected.len(), 1, "{connected:#?}");
    let c = &connected[0]["event"]["data"];
    assert_eq!(c["id"], session.as_str(), "{c}");
    assert_eq!(c["key_id"], key_id.as_str(), "{c}");
    let serial = c["cert_serial"]
        .as_u64()
        .unwrap_or_else(|| panic!("no cert_serial: {c}"));
    assert!(
        log.contains(&format!("serial {serial}")),
        "sshd should log the same serial {serial}:\n{log}"
    );
}

#[test]
fn exec_exit_status_stdout_and_stderr_pass_through_unchanged() {
    let w = world();
    w.grant("quick", "1h");
    let out = w.latch.to(
        &w.alice,
        &format!("root@{DB}"),
        "sh -c 'echo out; echo err >&2; exit 7'",
    );
    out.expect_status(7);
    assert_eq!(out.stdout, "out\n", "{out}");
    assert_eq!(out.stderr, "err\n", "{out}");

    let id = w.events("session_started")[0]["event"]["data"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let end = w.ended(&id);
    assert_eq!(end["cause"], "closed", "{end}");
    assert_eq!(end["exit_status"], 7, "{end}");
    assert_eq!(end["bytes_out"], 8, "'out\\n' and 'err\\n': {end}");
}

#[test]
fn every_cipher_a_stock_client_may_be_pinned_to_is_accepted() {
    // russh's defaults leave out aes128-gcm; a client with `Ciphers aes128-gcm@openssh.com`
    // (a common hardening line) must still get through.
    let w = world();
    w.grant("quick", "1h");
    for cipher in [
        "aes128-gcm@openssh.com",
        "aes256-gcm@openssh.com",
        "chacha20-poly1305@openssh.com",
        "aes128-ctr",
    ] {
        let out = w
            .latch
            .to_with(&w.alice, &format!("root@{DB}"), &["-c", cipher], "echo ok");
        out.expect_status(0);
        assert_eq!(out.stdout, "ok\n", "with {cipher}: {out}");
    }
}

#[test]
fn a_pty_shell_reports_a_terminal_size_and_its_exit_status() {
    let w = world();
    w.grant("quick", "1h");
    let mut cmd = w
        .latch
        .to_command(&w.alice, &format!("root@{DB}"), &["-tt"], "");
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("spawn ssh -tt");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"stty size; exit 5\n")
        .expect("write to ssh");
    let out = child.wait_with_output().expect("ssh -tt");
    let text = plain(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(out.status.code(), Some(5), "{text}");
    assert!(
        text.lines().any(|l| {
            let n: Vec<&str> = l.split(' ').collect();
            n.len() == 2
                && n.iter()
                    .all(|x| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit()))
        }),
        "stty size should print ROWS COLS on the pty:\n{text}"
    );
}

#[test]
fn resizing_the_terminal_resizes_the_target_pty() {
    let w = world();
    w.grant("quick", "1h");
    let driver = concat!(env!("CARGO_MANIFEST_DIR"), "/e2e/support/pty_drive.py");
    let ssh = w
        .latch
        .to_command(&w.alice, &format!("root@{DB}"), &["-tt"], "");
    let mut cmd = Command::new("python3");
    cmd.arg(driver)
        .args(["24x80", "41x133", "--"])
        .arg(ssh.get_program())
        .args(ssh.get_args());
    let out = run(cmd, Duration::from_secs(60));
    let text = plain(&out.stdout);
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    assert!(lines.contains(&"24 80"), "the initial size:\n{out}");
    assert!(
        lines.contains(&"41 133"),
        "the target should see the new size after the resize:\n{out}"
    );
    out.expect_status(5);
}

#[test]
fn revoking_a_grant_cuts_its_running_session_at_once_saying_who_and_why() {
    let w = world();
    let id = id_of(&w.request("db-admin", DB, "1h"));
    w.latch.ssh(&w.bob, &["approve", &id]).ok();
    let (client, session) = w.running(&w.alice, &format!("root@{DB}"), "echo started; sleep 30");

    w.latch
        .ssh(&w.bob, &["revoke", &id, "--reason", "incident over"])
        .ok();
    let revoked = Instant::now();
    let (out, at) = client.finish(Duration::from_secs(10));
    exited_within(at, revoked, Duration::from_secs(2), &out);
    assert_eq!(out.status, 255, "the connection is closed:\n{out}");
    assert!(
        out.stderr.contains(&format!(
            "latch: grant {id} was revoked by bob: incident over. This session is closed."
        )),
        "the user should see who revoked and why:\n{out}"
    );

    let end = w.ended(&session);
    assert_eq!(end["cause"], "revoked", "{end}");
    let cut_ms = end["cut_ms"]
        .as_u64()
        .unwrap_or_else(|| panic!("no cut_ms: {end}"));
    assert!(cut_ms < 1000, "the cut took {cut_ms} ms: {end}");
}

#[test]
fn a_short_grant_warns_before_expiry_then_cuts_its_session_at_expiry() {
    let w = world();
    let g = w.request("quick", DB, "3s");
    let id = id_of(&g);
    let expires_at = time(&g["expires_at"]);
    let (client, session) = w.running(&w.alice, &format!("root@{DB}"), "echo started; sleep 30");

    let (out, _) = client.finish(Duration::from_secs(15));
    let late = Utc::now() - expires_at;
    assert!(
        late <= chrono::Duration::seconds(2),
        "the session outlived its grant by {late}:\n{out}"
    );
    assert!(
        late >= chrono::Duration::zero(),
        "cut before expiry ({late}):\n{out}"
    );
    assert_eq!(out.status, 255, "the connection is closed:\n{out}");
    let warning = out
        .stderr
        .find(&format!("latch: grant {id} expires in "))
        .unwrap_or_else(|| panic!("no expiry warning:\n{out}"));
    assert!(
        out.stderr[warning..].contains(&format!("ssh -p {} bastion extend {id} ", w.latch.port)),
        "the warning should say how to extend:\n{out}"
    );
    let cut = out
        .stderr
        .find(&format!("latch: grant {id} expired"))
        .unwrap_or_else(|| panic!("no expiry line:\n{out}"));
    assert!(warning < cut, "the warning comes before the cut:\n{out}");
    assert_eq!(
        out.stderr.matches("expires in").count(),
        1,
        "one warning:\n{out}"
    );
    assert_eq!(w.ended(&session)["cause"], "expired");
}

#[test]
fn an_approved_extension_keeps_a_live_session_past_the_original_expiry() {
    let w = world();
    let g = w.request("quick", DB, "4s");
    let id = id_of(&g);
    let original = time(&g["expires_at"]);
    let (mut client, session) =
        w.running(&w.alice, &format!("root@{DB}"), "echo started; sleep 30");

    let ext = w
        .latch
        .ssh(&w.alice, &["extend", &id, "--duration", "1m", "--json"])
        .ok()
        .json();
    assert_eq!(ext["status"], "approved", "quick approves itself: {ext:#}");
    let new_expiry =
        time(&w.latch.ssh(&w.alice, &["show", &id, "--json"]).ok().json()["expires_at"]);
    assert!(new_expiry > original + chrono::Duration::seconds(30));

    // Past the original expiry (and the broker's one-second slack for writing it).
    let wait = (original + chrono::Duration::milliseconds(2500) - Utc::now())
        .to_std()
        .unwrap_or_default();
    std::thread::sleep(wait);
    assert!(
        !client.has_exited(),
        "the session was cut although its grant was extended:\n  stderr: {}",
        client.stderr()
    );
    let live = w.sessions(&w.alice);
    let s = live
        .iter()
        .find(|s| s["id"] == session.as_str())
        .unwrap_or_else(|| panic!("{session} is not live: {live:#?}"));
    assert_eq!(time(&s["expires_at"]), new_expiry, "{s}");
    assert!(!client.stderr().contains("expired"), "{}", client.stderr());
}

#[test]
fn an_admin_can_kill_a_session_and_a_stranger_cannot() {
    let w = world();
    w.grant("quick", "1h");
    let (mut client, _) = w.running(&w.alice, &format!("root@{DB}"), "echo started; sleep 30");
    let live = w.sessions(&w.admin);
    assert_eq!(live.len(), 1, "{live:#?}");
    let session = id_of(&live[0]);
    assert_eq!(
        (&live[0]["user"], &live[0]["login"], &live[0]["host"]),
        (&"alice".into(), &"root".into(), &DB.into())
    );

    let out = w.latch.ssh(&w.carol, &["kill", &session]);
    out.expect_status(4);
    assert!(!client.has_exited(), "a refused kill cut the session");

    w.latch
        .ssh(&w.admin, &["kill", &session, "--reason", "suspicious"])
        .ok();
    let killed = Instant::now();
    let (out, at) = client.finish(Duration::from_secs(10));
    exited_within(at, killed, Duration::from_secs(2), &out);
    assert_eq!(out.status, 255, "{out}");
    assert!(
        out.stderr
            .contains("latch: this session was killed by admin: suspicious."),
        "{out}"
    );
    let k = &w.events("session_killed")[0]["event"]["data"];
    assert_eq!(
        (&k["id"], &k["by"]),
        (&session.as_str().into(), &"admin".into())
    );
    assert_eq!(w.ended(&session)["cause"], "killed");
    assert!(w.sessions(&w.admin).is_empty());
}

#[test]
fn locking_a_user_cuts_all_their_sessions_and_refuses_new_ones_until_unlocked() {
    let w = world();
    w.grant("quick", "1h");
    let (on_db, s1) = w.running(&w.alice, &format!("root@{DB}"), "echo started; sleep 30");
    let (on_web, s2) = w.running(&w.alice, &format!("root@{WEB}"), "echo started; sleep 30");
    // carol's session is not alice's: it survives.
    let (mut carol, _) = w.running(&w.carol, &format!("root@{WEB}"), "echo started; sleep 30");

    w.latch
        .ssh(&w.admin, &["lock", "alice", "--reason", "laptop stolen"])
        .ok();
    let locked = Instant::now();
    for client in [on_db, on_web] {
        let (out, at) = client.finish(Duration::from_secs(10));
        exited_within(at, locked, Duration::from_secs(2), &out);
        assert!(
            out.stderr.contains(
                "latch: alice was locked out by admin: laptop stolen. This session is closed."
            ),
            "{out}"
        );
    }
    for s in [&s1, &s2] {
        assert_eq!(w.ended(s)["cause"], "locked");
    }
    assert!(
        !carol.has_exited(),
        "carol's session was cut by alice's lock"
    );

    let out = w.latch.to(&w.alice, &format!("root@{DB}"), "whoami");
    out.expect_status(1);
    assert!(out.stderr.contains("access denied"), "{out}");

    w.latch.ssh(&w.admin, &["unlock", "alice"]).ok();
    let out = w.latch.to(&w.alice, &format!("root@{DB}"), "whoami").ok();
    assert_eq!(out.stdout.trim(), "root", "{out}");
}

#[test]
fn a_target_presenting_an_unpinned_host_key_is_refused_naming_its_fingerprint() {
    // prod-db-02 is the prod-db-01 sshd pinned to web-01's key: what an interception looks
    // like from the broker.
    let w = world_with(|c, db, web| c.host_at("prod-db-02", &db.address(), &[web.host_key_line()]));
    w.grant("quick", "1h");
    let out = w.latch.to(&w.alice, "root@prod-db-02", "whoami");
    out.expect_status(1);
    let presented = fingerprint(&w.site, w.db.host_key_line());
    assert!(
        out.stderr.starts_with("latch: ") && out.stderr.contains(&presented),
        "the refusal should name the key presented, {presented}:\n{out}"
    );
    assert!(out.stdout.is_empty(), "{out}");
    let session = id_of(&w.events("session_started")[0]["event"]["data"]);
    let end = w.ended(&session);
    assert_eq!(end["cause"], "host_key_mismatch", "{end}");
    assert!(
        !w.db.log().contains("Accepted"),
        "nothing may log in to a host that failed its key check:\n{}",
        w.db.log()
    );
    // The correctly pinned entry for the same sshd works.
    w.latch.to(&w.alice, &format!("root@{DB}"), "true").ok();
}

/// Write `len` pseudo-random bytes to `path`: AES-CTR keystream from `openssl` (fast, so the
/// suite spends its time in the transfer), or `/dev/urandom` where there is no `openssl`.
fn random_file(path: &Path, len: u64) {
    let mut make = Command::new("sh");
    make.arg("-c").arg(format!(
        "if command -v openssl >/dev/null; then \
           openssl enc -aes-128-ctr -pass pass:latch -nosalt -pbkdf2 -in /dev/zero 2>/dev/null; \
         else cat /dev/urandom; fi | head -c {len} > '{}'",
        path.display()
    ));
    run(make, Duration::from_secs(120)).ok();
    assert_eq!(fs::metadata(path).map(|m| m.len()).ok(), Some(len));
}

/// `scp` (SFTP protocol, OpenSSH's default) of 1 GiB up to the target and back down again
/// through the broker, checksums compared.
#[test]
fn scp_copies_a_gibibyte_up_and_down_intact() {
    const GIB: u64 = 1 << 30;
    let w = world();
    w.grant("files", "1h");
    let local = w.site.path().join("gib");
    random_file(&local, GIB);
    let remote = w.site.path().join("gib-on-target");
    let back = w.site.path().join("gib-back");

    let scp = |from: String, to: String| {
        let mut cmd = Command::new("scp");
        cmd.arg("-P")
            .arg(w.latch.port.to_string())
            .args(w.latch.client_options(&w.alice))
            .arg(from)
            .arg(to);
        let started = Instant::now();
        let out = run(cmd, Duration::from_secs(300));
        eprintln!("scp took {:?}\n{out}", started.elapsed());
        out.ok()
    };
    let target = format!("root@{DB}@127.0.0.1:");
    std::thread::scope(|s| {
        // Each checksum is taken while the next copy runs.
        let sum = s.spawn(|| sha256(&local));
        scp(
            local.display().to_string(),
            format!("{target}{}", remote.display()),
        );
        let sum = sum.join().expect("sha256 of the source");
        let uploaded = s.spawn(|| sha256(&remote));
        scp(
            format!("{target}{}", remote.display()),
            back.display().to_string(),
        );
        assert_eq!(
            uploaded.join().expect("sha256 of the upload"),
            sum,
            "the upload arrived altered"
        );
        assert_eq!(sha256(&back), sum, "the download arrived altered");
    });

    let started = w.events("session_started");
    assert_eq!(started.len(), 2, "{started:#?}");
    let up = w.ended(&id_of(&started[0]["event"]["data"]));
    let down = w.ended(&id_of(&started[1]["event"]["data"]));
    assert!(up["bytes_in"].as_u64() > Some(GIB), "{up}");
    assert!(down["bytes_out"].as_u64() > Some(GIB), "{down}");
}

#[test]
fn legacy_scp_protocol_copies_both_ways() {
    let w = world();
    w.grant("files", "1h");
    let local = w.site.path().join("eight-mib");
    let data: Vec<u8> = (0..8u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    fs::write(&local, &data).expect("write");
    let remote = w.site.path().join("on-target");
    let back = w.site.path().join("back");
    for (from, to) in [
        (
            local.display().to_string(),
            format!("root@{DB}@127.0.0.1:{}", remote.display()),
        ),
        (
            format!("root@{DB}@127.0.0.1:{}", remote.display()),
            back.display().to_string(),
        ),
    ] {
        let mut cmd = Command::new("scp");
        cmd.arg("-O")
            .arg("-P")
            .arg(w.latch.port.to_string())
            .args(w.latch.client_options(&w.alice))
            .arg(from)
            .arg(to);
        run(cmd, Duration::from_secs(60)).ok();
    }
    assert!(
        fs::read(&remote).expect("uploaded") == data,
        "upload altered"
    );
    assert!(
        fs::read(&back).expect("downloaded") == data,
        "download altered"
    );
    assert!(
        w.db.log().contains("Starting session: command for root"),
        "legacy scp runs as a command on the target:\n{}",
        w.db.log()
    );
}

/// `sftp -b BATCH` as alice through the broker: put a file, list it, get it back. Its
/// output, the remote directory and where the copy came back to.
fn sftp_round_trip(w: &World) -> (Out, std::path::PathBuf, std::path::PathBuf) {
    let dir = w.site.path().join("sftp-remote");
    fs::create_dir_all(&dir).expect("dir");
    let local = w.site.path().join("hello.txt");
    fs::write(&local, "hello through latch\n").expect("write");
    let back = w.site.path().join("hello-back.txt");
    let batch = format!(
        "put {} {d}/hello.txt\nls {d}\nget {d}/hello.txt {}\n",
        local.display(),
        back.display(),
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
        .arg(format!("root@{DB}@127.0.0.1"));
    let (out, _) = Running::spawn(cmd).finish(Duration::from_secs(20));
    (out, dir, back)
}

#[test]
fn sftp_put_ls_and_get_work_when_the_role_allows_sftp() {
    let w = world();
    w.grant("files", "1h");
    let (out, dir, back) = sftp_round_trip(&w);
    let out = out.ok();
    assert!(
        out.stdout.contains("hello.txt"),
        "ls should list the file:\n{out}"
    );
    assert_eq!(
        fs::read_to_string(dir.join("hello.txt")).ok().as_deref(),
        Some("hello through latch\n")
    );
    assert_eq!(
        fs::read_to_string(&back).ok().as_deref(),
        Some("hello through latch\n")
    );
}

#[test]
fn sftp_is_refused_naming_the_role_when_the_role_does_not_allow_it() {
    let w = world();
    w.grant("quick", "1h");
    // A hang here (`did not exit within`) is a failure too: the refusal must reach sftp.
    let (out, dir, _) = sftp_round_trip(&w);
    assert_ne!(out.status, 0, "{out}");
    assert!(
        out.stderr
            .contains("latch: sftp is not allowed by role quick."),
        "the refusal should name the role:\n{out}"
    );
    assert!(!dir.join("hello.txt").exists(), "nothing may be written");
}

#[test]
fn rsync_copies_both_ways_through_the_broker() {
    let w = world();
    w.grant("files", "1h");
    let local = w.site.path().join("rsync-src");
    let data: Vec<u8> = (0..(3u32 << 20) + 17)
        .map(|i| (i.wrapping_mul(40503) >> 7) as u8)
        .collect();
    fs::write(&local, &data).expect("write");
    let remote = w.site.path().join("rsync-on-target");
    let back = w.site.path().join("rsync-back");
    let ssh = format!(
        "ssh -p {} {}",
        w.latch.port,
        w.latch.client_options(&w.alice).join(" ")
    );
    for (from, to) in [
        (
            local.display().to_string(),
            format!("root@{DB}@127.0.0.1:{}", remote.display()),
        ),
        (
            format!("root@{DB}@127.0.0.1:{}", remote.display()),
            back.display().to_string(),
        ),
    ] {
        let mut cmd = Command::new("rsync");
        cmd.arg("-e").arg(&ssh).arg(&from).arg(&to);
        let out = run(cmd, Duration::from_secs(60));
        eprintln!("$ rsync {from} {to}\n{out}");
        out.ok();
    }
    assert!(
        fs::read(&remote).expect("uploaded") == data,
        "upload altered"
    );
    assert!(
        fs::read(&back).expect("downloaded") == data,
        "download altered"
    );
}

/// VmRSS of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in {status}"))
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // The command name may hold spaces; the fields after it are space-separated.
    let after = stat
        .rsplit_once(')')
        .map_or(stat.as_str(), |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0)
}

#[test]
fn a_client_that_vanishes_mid_command_ends_its_session_and_the_broker_goes_idle() {
    // A laptop lid closes, a VPN drops: the client is gone while the target's command runs
    // on. The broker must close the target side, log the end, seal the recording and
    // return to idle.
    let w = world();
    w.grant("quick", "1h");
    // sshd does not end a command without a pty when its connection closes, so keep it
    // short enough not to outlive the test run by much, long enough to outlast the checks.
    let (client, id) = w.running(&w.alice, &format!("root@{DB}"), "echo started; sleep 30");
    // SIGTERM, as a shell's `kill` or a logout sends: ssh exits without closing the channel.
    let pid = client.id().to_string();
    run(
        {
            let mut kill = Command::new("kill");
            kill.arg(&pid);
            kill
        },
        Duration::from_secs(5),
    )
    .ok();
    drop(client);
    let end = w.ended(&id);
    assert_eq!(end["cause"], "closed", "{end}");
    eventually(Duration::from_secs(10), "the recording's seal", || {
        w.events("recording_sealed")
            .into_iter()
            .find(|r| r["event"]["data"]["session"] == id.as_str())
            .ok_or_else(|| "none yet".to_string())
    });
    let pid = w.latch.pid().expect("broker running");
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_ticks(pid) - before;
    // An idle broker uses nothing measurable; 20 ticks is a fifth of one CPU.
    assert!(
        used < 20,
        "the broker used {used} CPU ticks in 2 s with no session left"
    );
    assert!(
        w.sessions(&w.admin).is_empty(),
        "{:?}",
        w.sessions(&w.admin)
    );
}

#[test]
fn a_client_that_stops_reading_cannot_grow_broker_memory() {
    let w = world();
    w.grant("quick", "1h");
    let pid = w.latch.pid().expect("the broker runs");
    // One session first, so what any session allocates is already counted.
    w.latch.to(&w.alice, &format!("root@{DB}"), "true").ok();
    let before = rss_kib(pid);

    // stdout goes into a pipe nobody reads: ssh stops reading the channel once it is full.
    let mut cmd = w
        .latch
        .to_command(&w.alice, &format!("root@{DB}"), &[], "cat /dev/zero");
    let mut client = Running::spawn_with(&mut cmd, false);
    let flowing = eventually(Duration::from_secs(10), "bytes flowing", || {
        let live = w.sessions(&w.admin);
        live.iter()
            .find(|s| s["bytes_out"].as_u64() > Some(0))
            .map(id_of)
            .ok_or_else(|| format!("{live:#?}"))
    });
    let mut peak = before;
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        peak = peak.max(rss_kib(pid));
        std::thread::sleep(Duration::from_millis(200));
    }
    let grew_mib = (peak.saturating_sub(before)) / 1024;
    eprintln!("broker VmRSS: {before} KiB before, {peak} KiB at most behind the stalled reader");
    assert!(
        grew_mib < 64,
        "the broker grew by {grew_mib} MiB ({before} KiB -> {peak} KiB) behind a stalled reader"
    );
    assert!(
        !client.has_exited(),
        "the stalled session should be held, not dropped:\n{}",
        client.stderr()
    );

    w.latch.ssh(&w.admin, &["kill", &flowing]).ok();
    let (out, _) = client.finish(Duration::from_secs(10));
    assert_eq!(out.status, 255, "{out}");
    assert_eq!(w.ended(&flowing)["cause"], "killed");
    // The broker still serves commands and sessions.
    w.latch.ssh(&w.alice, &["whoami"]).ok();
    let out = w.latch.to(&w.alice, &format!("root@{DB}"), "whoami").ok();
    assert_eq!(out.stdout.trim(), "root");
}

/// Connect to 127.0.0.1:`port` and read what the server says first, until `within`.
fn first_bytes(port: u16, within: Duration) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(within))?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf)?;
    Ok(buf[..n].to_vec())
}

/// `ssh -N -L LPORT:127.0.0.1:TPORT` through the broker as alice, up and listening; retries
/// with another local port if the one picked was taken meanwhile.
fn forward(w: &World, to_port: u16) -> (Running, u16) {
    for _ in 0..5 {
        let local = crate::support::target::free_port();
        let spec = format!("127.0.0.1:{local}:127.0.0.1:{to_port}");
        let mut cmd = w.latch.to_command(
            &w.alice,
            &format!("root@{DB}"),
            &[
                "-N",
                "-L",
                &spec,
                "-o",
                "ExitOnForwardFailure=yes",
                "-o",
                "LogLevel=INFO",
            ],
            "",
        );
        let mut client = Running::spawn_with(&mut cmd, true);
        let listening = eventually(Duration::from_secs(15), "the -L listener", || {
            if client.has_exited() {
                return Ok(false);
            }
            TcpStream::connect(("127.0.0.1", local))
                .map(|_| true)
                .map_err(|e| e.to_string())
        });
        if listening {
            return (client, local);
        }
    }
    panic!("ssh -L never listened");
}

#[test]
fn local_port_forwarding_works_only_when_the_role_allows_it() {
    let w = world();
    // quick does not allow forwarding.
    let quick = w.grant("quick", "1h");
    let (client, local) = forward(&w, w.db.port());
    let got = first_bytes(local, Duration::from_secs(5)).unwrap_or_default();
    assert!(
        !got.starts_with(b"SSH-"),
        "a role without port_forwarding must not forward: got {:?}",
        String::from_utf8_lossy(&got)
    );
    let stderr = eventually(Duration::from_secs(5), "the refusal on stderr", || {
        let e = client.stderr();
        if e.contains("open failed") {
            Ok(e)
        } else {
            Err(e)
        }
    });
    assert!(
        stderr.contains("administratively prohibited"),
        "ssh should report the refused channel: {stderr}"
    );
    drop(client);
    w.latch.ssh(&w.alice, &["revoke", &quick]).ok();

    w.grant("files", "1h");
    let (_client, local) = forward(&w, w.db.port());
    let got = first_bytes(local, Duration::from_secs(10)).expect("read the forwarded port");
    assert!(
        got.starts_with(b"SSH-2.0-"),
        "the forwarded port should answer with the target's banner: {:?}",
        String::from_utf8_lossy(&got)
    );
}

/// An OpenSSH control master through the broker, as people configure `ControlMaster`: in
/// the foreground here (no `ControlPersist`, which would fork it away), so the test owns it.
/// Returns it once its control socket answers, with the `-o ControlPath=` option.
fn control_master(w: &World, target: &str) -> (Running, String) {
    let control = format!("ControlPath={}/cm-%C", w.site.path().display());
    let mut master =
        Running::spawn(
            w.latch
                .to_command(&w.alice, target, &["-M", "-N", "-o", &control], ""),
        );
    eventually(Duration::from_secs(15), "the control master", || {
        if master.has_exited() {
            panic!("the master exited: {}", master.stderr());
        }
        let check = w
            .latch
            .to_command(&w.alice, target, &["-o", &control, "-O", "check"], "");
        let out = run(check, Duration::from_secs(10));
        if out.status == 0 {
            Ok(())
        } else {
            Err(out.to_string())
        }
    });
    (master, control)
}

/// Run `remote` through the control master as three concurrent clients (`{i}` in `remote`
/// is each one's number); their outputs in that order.
fn three_through_master(w: &World, control: &str, target: &str, remote: &str) -> Vec<Out> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (1..=3)
            .map(|i| {
                let remote = remote.replace("{i}", &i.to_string());
                s.spawn(move || {
                    w.latch.to_with(
                        &w.alice,
                        target,
                        &["-o", control, "-o", "ControlMaster=no"],
                        &remote,
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a client"))
            .collect()
    })
}

#[test]
fn control_master_multiplexes_concurrent_commands_over_one_session() {
    let w = world();
    w.grant("quick", "1h");
    let target = format!("root@{DB}");
    let (master, control) = control_master(&w, &target);

    let outs = three_through_master(&w, &control, &target, "sleep 1; echo channel {i}");
    for (i, out) in outs.iter().enumerate() {
        assert_eq!(out.status, 0, "{out}");
        assert_eq!(out.stdout, format!("channel {}\n", i + 1), "{out}");
    }
    assert_eq!(
        w.events("session_started").len(),
        1,
        "the three commands share the master's one session"
    );
    let exit = w
        .latch
        .to_command(&w.alice, &target, &["-o", &control, "-O", "exit"], "");
    run(exit, Duration::from_secs(10));
    // OpenSSH's master exits 255 on `-O exit`, also without latch in between.
    master.finish(Duration::from_secs(10));
    let session = id_of(&w.events("session_started")[0]["event"]["data"]);
    assert_eq!(w.ended(&session)["cause"], "closed");
}

/// A command that closes its output before it exits: the target sends EOF, then the exit
/// status. A multiplexing client answers the EOF with its CLOSE at once; the status must
/// still reach it (OpenSSH's sshd does that, so `ssh` through a master reports it).
#[test]
fn exit_status_sent_after_eof_reaches_clients_of_a_control_master() {
    let w = world();
    w.grant("quick", "1h");
    let target = format!("root@{DB}");
    let (_master, control) = control_master(&w, &target);
    let outs = three_through_master(
        &w,
        &control,
        &target,
        "echo channel {i}; exec >&- 2>&-; sleep 0.3; exit 1{i}",
    );
    for (i, out) in outs.iter().enumerate() {
        assert_eq!(out.stdout, format!("channel {}\n", i + 1), "{out}");
        assert_eq!(
            out.status,
            11 + i as i32,
            "the command's exit status should reach the client:\n{out}"
        );
    }
}

/// An admin sets targets up before the broker ever ran: `latch ca public-key` on a fresh
/// config creates the CA and prints the line for `TrustedUserCAKeys`; the broker then mints
/// with that same CA.
#[test]
fn ca_public_key_before_the_first_serve_prints_the_key_targets_then_trust() {
    let site = Site::new();
    let carol = site.user("carol");
    let web = Target::start(&site, WEB);
    let config = Config::new()
        .user(&carol, &["web-ops"], &[])
        .role("web-ops", "logins = [\"root\"]\nhosts = [\"web-*\"]")
        .target(&web);
    fs::write(site.config_path(), config.render(&site.state_dir())).expect("write the config");
    assert!(!site.state_dir().exists(), "a fresh site has no state yet");

    let config_arg = site.config_path().display().to_string();
    let out = site.latch(&["ca", "public-key", "--config", &config_arg]);
    let out = out.ok();
    let line = out.stdout.trim().to_string();
    assert!(line.starts_with("ssh-ed25519 AAAA"), "{out}");
    let written =
        fs::read_to_string(site.state_dir().join("user_ca_key.pub")).expect("the CA file");
    assert_eq!(
        written.split_whitespace().take(2).collect::<Vec<_>>(),
        line.split_whitespace().take(2).collect::<Vec<_>>()
    );
    // Asked again, the same key: it was created once, not per call.
    let again = site
        .latch(&["ca", "public-key", "--config", &config_arg])
        .ok();
    assert_eq!(again.stdout.trim(), line);

    let latch = site.start(&config);
    let out = latch.to(&carol, &format!("root@{WEB}"), "whoami").ok();
    assert_eq!(out.stdout.trim(), "root", "{out}");
    let fingerprint = fingerprint(&site, &line);
    assert!(
        web.log()
            .contains(&format!("signed by ED25519 CA {fingerprint}")),
        "sshd should have accepted a certificate from CA {fingerprint}:\n{}",
        web.log()
    );
}

#[test]
fn scp_and_rsync_are_refused_naming_the_role_when_it_does_not_allow_file_transfer() {
    let w = world();
    w.grant("quick", "1h");
    let local = w.site.path().join("payload");
    fs::write(&local, "must not arrive\n").expect("write");
    let remote = w.site.path().join("arrived");
    let mut scp = Command::new("scp");
    scp.arg("-O")
        .arg("-P")
        .arg(w.latch.port.to_string())
        .args(w.latch.client_options(&w.alice))
        .arg(&local)
        .arg(format!("root@{DB}@127.0.0.1:{}", remote.display()));
    let out = run(scp, Duration::from_secs(20));
    assert_ne!(out.status, 0, "{out}");
    assert!(
        out.stderr
            .contains("file transfer (scp) is not allowed by role quick"),
        "the refusal should name the tool and the role:\n{out}"
    );
    let ssh = format!(
        "ssh -p {} {}",
        w.latch.port,
        w.latch.client_options(&w.alice).join(" ")
    );
    let mut rsync = Command::new("rsync");
    rsync
        .arg("-e")
        .arg(&ssh)
        .arg(&local)
        .arg(format!("root@{DB}@127.0.0.1:{}", remote.display()));
    let out = run(rsync, Duration::from_secs(20));
    assert_ne!(out.status, 0, "{out}");
    assert!(
        out.stderr
            .contains("file transfer (rsync) is not allowed by role quick"),
        "{out}"
    );
    assert!(!remote.exists(), "nothing may be written");
}
