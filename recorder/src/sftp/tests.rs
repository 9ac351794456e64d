use super::*;
use chrono::TimeZone;

fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_750_000_000 + secs, 0).unwrap()
}

/// Builds one SFTP packet: the length prefix is filled in by `done`.
struct P(Vec<u8>);

impl P {
    fn new(kind: u8) -> P {
        P(vec![0, 0, 0, 0, kind])
    }
    fn u32(mut self, v: u32) -> P {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn u64(mut self, v: u64) -> P {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn s(mut self, v: &[u8]) -> P {
        self = self.u32(v.len() as u32);
        self.0.extend_from_slice(v);
        self
    }
    fn done(mut self) -> Vec<u8> {
        let len = (self.0.len() - 4) as u32;
        self.0[..4].copy_from_slice(&len.to_be_bytes());
        self.0
    }
}

fn status(id: u32, code: u32) -> Vec<u8> {
    P::new(FXP_STATUS).u32(id).u32(code).s(b"").s(b"").done()
}

fn handle(id: u32, h: &[u8]) -> Vec<u8> {
    P::new(FXP_HANDLE).u32(id).s(h).done()
}

/// Packets a client pipelines, and the server's answers to them.
type Phase = (Vec<Vec<u8>>, Vec<Vec<u8>>);

/// A session as OpenSSH's `sftp` runs one, phase by phase.
fn session() -> Vec<Phase> {
    const PERMS: u32 = 0x4;
    let phase1 = (
        vec![P::new(FXP_INIT).u32(3).done()],
        vec![P::new(FXP_VERSION)
            .u32(3)
            .s(b"posix-rename@openssh.com")
            .s(b"1")
            .done()],
    );
    let phase2 = (
        vec![
            P::new(FXP_OPEN)
                .u32(1)
                .s(b"/etc/hosts")
                .u32(0x01)
                .u32(0)
                .done(),
            P::new(FXP_OPEN)
                .u32(2)
                .s(b"/tmp/up")
                .u32(0x02 | 0x08 | 0x10)
                .u32(PERMS)
                .u32(0o100644)
                .done(),
            P::new(FXP_OPENDIR).u32(3).s(b"/srv").done(),
            P::new(FXP_REMOVE).u32(4).s(b"/tmp/x").done(),
            P::new(FXP_RENAME).u32(5).s(b"/a").s(b"/b").done(),
            P::new(FXP_MKDIR)
                .u32(6)
                .s(b"/new")
                .u32(PERMS)
                .u32(0o755)
                .done(),
            P::new(FXP_EXTENDED)
                .u32(7)
                .s(b"posix-rename@openssh.com")
                .s(b"/c")
                .s("/d\u{e9}".as_bytes())
                .done(),
            P::new(FXP_SYMLINK).u32(8).s(b"target").s(b"/link").done(),
        ],
        vec![
            handle(1, b"h1"),
            handle(2, b"h2"),
            handle(3, b"d1"),
            status(4, 2),
            status(5, 0),
            status(6, 0),
            status(7, 0),
            status(8, 3),
        ],
    );
    let phase3 = (
        vec![
            P::new(FXP_READ).u32(9).s(b"h1").u64(0).u32(32768).done(),
            P::new(FXP_READ).u32(10).s(b"h1").u64(100).u32(32768).done(),
            P::new(FXP_WRITE)
                .u32(11)
                .s(b"h2")
                .u64(0)
                .s(&[7; 5000])
                .done(),
            P::new(FXP_WRITE)
                .u32(12)
                .s(b"h2")
                .u64(5000)
                .s(&[7; 3000])
                .done(),
            P::new(FXP_READDIR).u32(13).s(b"d1").done(),
            P::new(FXP_READDIR).u32(14).s(b"d1").done(),
            P::new(FXP_FSTAT).u32(15).s(b"h1").done(),
        ],
        vec![
            P::new(FXP_DATA).u32(9).s(&[1; 100]).done(),
            status(10, 1),
            status(11, 0),
            status(12, 3),
            P::new(FXP_NAME).u32(13).u32(3).done(),
            status(14, 1),
            P::new(FXP_ATTRS).u32(15).u32(0).done(),
        ],
    );
    let phase4 = (
        vec![
            P::new(FXP_CLOSE).u32(16).s(b"h1").done(),
            P::new(FXP_CLOSE).u32(17).s(b"h2").done(),
            P::new(FXP_CLOSE).u32(18).s(b"d1").done(),
        ],
        vec![status(16, 0), status(17, 0), status(18, 0)],
    );
    vec![phase1, phase2, phase3, phase4]
}

fn op(op: &str, path: Option<&str>, result: &str) -> SftpOp {
    let mut o = SftpOp::new(t(0), op);
    o.path = path.map(str::to_owned);
    o.result = Some(result.to_owned());
    o
}

fn expected() -> Vec<SftpOp> {
    let mut open_read = op("open", Some("/etc/hosts"), "ok");
    open_read.flags = Some("read".into());
    let mut open_write = op("open", Some("/tmp/up"), "ok");
    open_write.flags = Some("write,creat,trunc".into());
    open_write.attrs = Some("mode=0644".into());
    let mut rename = op("rename", Some("/a"), "ok");
    rename.path2 = Some("/b".into());
    let mut mkdir = op("mkdir", Some("/new"), "ok");
    mkdir.attrs = Some("mode=0755".into());
    let mut posix_rename = op("posix-rename@openssh.com", Some("/c"), "ok");
    posix_rename.path2 = Some("/d\u{e9}".into());
    let mut symlink = op("symlink", Some("target"), "permission_denied");
    symlink.path2 = Some("/link".into());
    let mut close_read = op("close", Some("/etc/hosts"), "ok");
    close_read.bytes_read = Some(100);
    close_read.bytes_written = Some(0);
    let mut close_write = op("close", Some("/tmp/up"), "ok");
    close_write.bytes_read = Some(0);
    close_write.bytes_written = Some(5000);
    let mut close_dir = op("close", Some("/srv"), "ok");
    close_dir.entries = Some(3);
    vec![
        open_read,
        open_write,
        op("opendir", Some("/srv"), "ok"),
        op("remove", Some("/tmp/x"), "no_such_file"),
        rename,
        mkdir,
        posix_rename,
        symlink,
        op("fstat", Some("/etc/hosts"), "ok"),
        close_read,
        close_write,
        close_dir,
    ]
}

/// Run the session, each phase's bytes cut into pieces by `cut`.
fn run(cut: impl Fn(&[u8]) -> Vec<&[u8]>) -> Vec<SftpOp> {
    let mut obs = SftpObserver::new();
    let mut ops = Vec::new();
    for (requests, answers) in session() {
        let requests = requests.concat();
        let answers = answers.concat();
        for piece in cut(&requests) {
            ops.extend(obs.client_bytes(t(0), piece));
        }
        for piece in cut(&answers) {
            ops.extend(obs.server_bytes(t(0), piece));
        }
    }
    ops.extend(obs.finish(t(0)));
    ops
}

#[test]
fn a_session_reads_as_its_file_operations_with_transfers_summed_per_file() {
    assert_eq!(run(|b| vec![b]), expected());
}

#[test]
fn the_same_operations_come_out_of_a_stream_split_at_every_byte() {
    let longest = session()
        .iter()
        .flat_map(|(r, a)| [r.concat().len(), a.concat().len()])
        .max()
        .unwrap();
    for at in 0..=longest {
        let ops = run(|b| {
            let (x, y) = b.split_at(at.min(b.len()));
            vec![x, y]
        });
        assert_eq!(ops, expected(), "split at {at}");
    }
    assert_eq!(run(|b| b.chunks(1).collect()), expected(), "byte at a time");
    assert_eq!(run(|b| b.chunks(7).collect()), expected(), "7 at a time");
}

#[test]
fn the_data_of_a_large_write_is_counted_never_buffered() {
    let mut obs = SftpObserver::new();
    obs.client_bytes(t(0), &P::new(FXP_INIT).u32(3).done());
    obs.server_bytes(t(0), &P::new(FXP_VERSION).u32(3).done());
    obs.client_bytes(
        t(0),
        &P::new(FXP_OPEN).u32(1).s(b"/big").u32(2).u32(0).done(),
    );
    obs.server_bytes(t(0), &handle(1, b"h"));
    let write = P::new(FXP_WRITE)
        .u32(2)
        .s(b"h")
        .u64(0)
        .s(&vec![0; 900_000])
        .done();
    for chunk in write.chunks(32 * 1024) {
        obs.client_bytes(t(0), chunk);
        assert!(obs.client.buffered_capacity() <= 4096, "buffered the data");
    }
    obs.server_bytes(t(0), &status(2, 0));
    obs.client_bytes(t(0), &P::new(FXP_CLOSE).u32(3).s(b"h").done());
    let ops = obs.server_bytes(t(0), &status(3, 0));
    assert_eq!(ops[0].bytes_written, Some(900_000));
}

#[test]
fn a_stream_that_is_not_sftp_is_reported_once_and_then_ignored() {
    let mut obs = SftpObserver::new();
    let ops = obs.client_bytes(t(3), &[0xff, 0xff, 0xff, 0xff, 1, 2, 3]);
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0].op, "unparseable");
    let why = ops[0].result.as_deref().unwrap();
    assert!(why.contains("4294967295 bytes"), "{why}");
    assert!(why.contains("from the client"), "{why}");
    assert!(obs.client.buffered_capacity() < 64);
    assert!(obs
        .client_bytes(t(4), &P::new(FXP_REMOVE).u32(1).s(b"/x").done())
        .is_empty());
    assert!(obs.server_bytes(t(4), &status(1, 0)).is_empty());
    assert!(obs.finish(t(5)).is_empty());

    let mut obs = SftpObserver::new();
    let ops = obs.server_bytes(t(3), &[0, 0, 0, 0]);
    assert_eq!(ops[0].op, "unparseable");
}

#[test]
fn a_version_other_than_3_stops_reading() {
    let mut obs = SftpObserver::new();
    obs.client_bytes(t(0), &P::new(FXP_INIT).u32(6).done());
    let ops = obs.server_bytes(t(0), &P::new(FXP_VERSION).u32(6).done());
    assert_eq!(ops[0].op, "unparseable");
    assert!(ops[0].result.as_deref().unwrap().contains("version 6"));
}

#[test]
fn malformed_and_unknown_requests_are_recorded_as_such() {
    let mut obs = SftpObserver::new();
    // An open whose path claims more bytes than the packet holds.
    let ops = obs.client_bytes(t(0), &P::new(FXP_OPEN).u32(1).u32(1000).done());
    assert_eq!(ops, vec![op("open", None, "malformed")]);
    let ops = obs.client_bytes(t(0), &P::new(99).u32(2).done());
    assert_eq!(ops, vec![op("type-99", None, "unknown request type")]);
}

#[test]
fn what_is_unanswered_or_unclosed_at_the_end_is_still_recorded() {
    let mut obs = SftpObserver::new();
    obs.client_bytes(t(0), &P::new(FXP_OPEN).u32(1).s(b"/f").u32(1).u32(0).done());
    obs.server_bytes(t(0), &handle(1, b"h"));
    obs.client_bytes(t(1), &P::new(FXP_REMOVE).u32(2).s(b"/g").done());
    let ops = obs.finish(t(2));
    let mut remove = op("remove", Some("/g"), "");
    remove.at = t(1);
    remove.result = None;
    let mut close = op("close", Some("/f"), "channel_ended");
    close.at = t(2);
    close.bytes_read = Some(0);
    close.bytes_written = Some(0);
    assert_eq!(ops, vec![remove, close]);
}

#[test]
fn pending_requests_are_bounded() {
    let mut obs = SftpObserver::new();
    let mut emitted = 0;
    for id in 0..(MAX_PENDING as u32 + 10) {
        emitted += obs
            .client_bytes(t(0), &P::new(FXP_STAT).u32(id).s(b"/x").done())
            .len();
    }
    assert_eq!(obs.pending_count, MAX_PENDING);
    assert_eq!(emitted, 10, "the overflow is recorded without its answer");
}

#[test]
fn a_reused_request_id_is_answered_in_order() {
    let mut obs = SftpObserver::new();
    obs.client_bytes(t(0), &P::new(FXP_REMOVE).u32(6).s(b"/a").done());
    obs.client_bytes(t(0), &P::new(FXP_REMOVE).u32(6).s(b"/b").done());
    let ops = obs.server_bytes(t(0), &[status(6, 0), status(6, 2)].concat());
    assert_eq!(
        ops,
        vec![
            op("remove", Some("/a"), "ok"),
            op("remove", Some("/b"), "no_such_file")
        ]
    );
    assert_eq!(obs.pending_count, 0);
    assert!(obs.pending.is_empty());
}

#[test]
fn garbage_never_panics() {
    // A fixed xorshift stream: reproducible, and no dependency for randomness.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..2000 {
        let mut obs = SftpObserver::new();
        for _ in 0..8 {
            let len = (next() % 64) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            // Mostly plausible lengths, so packets get past the framer.
            if bytes.len() >= 4 && next() % 2 == 0 {
                bytes[..4].copy_from_slice(&((len as u32).saturating_sub(4)).to_be_bytes());
            }
            if next() % 2 == 0 {
                obs.client_bytes(t(0), &bytes);
            } else {
                obs.server_bytes(t(0), &bytes);
            }
        }
        obs.finish(t(1));
    }
}

#[test]
fn ops_serialize_without_their_absent_fields() {
    let mut o = op("remove", Some("/tmp/x"), "ok");
    o.at = t(0);
    assert_eq!(
        serde_json::to_string(&o).unwrap(),
        r#"{"at":"2025-06-15T15:06:40.000Z","op":"remove","path":"/tmp/x","result":"ok"}"#
    );
}

/// Where distributions put OpenSSH's `sftp-server`.
fn sftp_server() -> &'static str {
    [
        "/usr/lib/openssh/sftp-server",
        "/usr/libexec/openssh/sftp-server",
        "/usr/libexec/sftp-server",
        "/usr/lib/ssh/sftp-server",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
    .expect("OpenSSH's sftp-server is needed for this test (openssh-sftp-server)")
}

#[test]
fn the_real_sftp_client_and_server_read_as_what_was_done() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(p.join("src.txt"), vec![b'x'; 100_000]).unwrap();
    // The server's two streams, captured on their way through a pipe.
    let wrap = p.join("wrap.sh");
    std::fs::write(
        &wrap,
        format!(
            "#!/bin/sh\ntee '{d}/c2s' | {server} | tee '{d}/s2c'\n",
            d = p.display(),
            server = sftp_server()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrap, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        p.join("batch"),
        "put src.txt up.txt\nget up.txt down.txt\nmkdir newdir\nrename up.txt moved.txt\nrm moved.txt\nls\n",
    )
    .unwrap();
    let out = std::process::Command::new("sftp")
        .arg("-b")
        .arg(p.join("batch"))
        .arg("-D")
        .arg(&wrap)
        .current_dir(p)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The client stream first, then the server's: every request is seen before its answer.
    let mut obs = SftpObserver::new();
    let mut ops = Vec::new();
    for chunk in std::fs::read(p.join("c2s")).unwrap().chunks(1000) {
        ops.extend(obs.client_bytes(t(0), chunk));
    }
    for chunk in std::fs::read(p.join("s2c")).unwrap().chunks(999) {
        ops.extend(obs.server_bytes(t(0), chunk));
    }
    ops.extend(obs.finish(t(1)));

    let base = std::fs::canonicalize(p).unwrap();
    let at = |name: &str| base.join(name).display().to_string();
    let find = |op: &str, path: &str| {
        ops.iter()
            .find(|o| o.op == op && o.path.as_deref() == Some(path))
            .unwrap_or_else(|| panic!("no {op} of {path} in {ops:#?}"))
    };
    assert!(ops.iter().all(|o| o.op != "unparseable"), "{ops:#?}");
    assert!(find("open", &at("up.txt"))
        .flags
        .as_deref()
        .unwrap()
        .contains("write,creat,trunc"));
    let closes: Vec<&SftpOp> = ops
        .iter()
        .filter(|o| o.op == "close" && o.path.as_deref() == Some(&at("up.txt")))
        .collect();
    assert_eq!(closes.len(), 2, "{ops:#?}");
    assert_eq!(closes[0].bytes_written, Some(100_000));
    assert_eq!(closes[1].bytes_read, Some(100_000));
    assert_eq!(find("mkdir", &at("newdir")).result.as_deref(), Some("ok"));
    let rename = ops
        .iter()
        .find(|o| o.op.contains("rename"))
        .expect("a rename");
    assert_eq!(rename.path2.as_deref(), Some(at("moved.txt").as_str()));
    assert_eq!(
        find("remove", &at("moved.txt")).result.as_deref(),
        Some("ok")
    );
    assert!(ops.iter().any(|o| o.op == "opendir"), "{ops:#?}");
}
