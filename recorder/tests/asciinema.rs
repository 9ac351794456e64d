//! Recordings are read by the real asciinema CLI: `asciinema cat` prints exactly the
//! output the writer was given, whatever else the file holds.
//!
//! Needs `asciinema` 2.4 or later 2.x on PATH (`pip install 'asciinema>=2.4,<3'`, which
//! `scripts/test` installs); without it the test says so and passes. Debian's 2.2 will not
//! do: its `cat` fails without a terminal (`/dev/tty`), as under CI.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use recorder::cast::{CastWriter, Coalescing, Header, Keystrokes};
use std::process::Command;

fn ms(millis: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap() + TimeDelta::milliseconds(millis)
}

fn asciinema_available() -> bool {
    Command::new("asciinema")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success())
}

#[test]
fn asciinema_cat_prints_exactly_what_the_session_printed() {
    if !asciinema_available() {
        eprintln!(
            "asciinema is not on PATH: skipping; install it with pip install 'asciinema>=2.4,<3'"
        );
        return;
    }
    let header = Header {
        width: 80,
        height: 24,
        timestamp: ms(0),
        idle_time_limit: Some(std::time::Duration::from_secs(2)),
        command: Some("bash -c 'echo \"hi\"'".to_owned()),
        title: Some("alice as root on prod-db-01".to_owned()),
        term: Some("xterm-256color".to_owned()),
        shell: Some("/bin/bash".to_owned()),
    };
    let mut writer = CastWriter::new(header, Coalescing::default(), Keystrokes::Record);
    let mut file = writer.header_line();
    // Output pieces as SSH might deliver them: characters split between packets, control
    // and escape sequences, quotes and backslashes, an invalid byte.
    let packets: [&[u8]; 8] = [
        b"\x1b[1;32m$\x1b[0m ",
        "caf\u{e9} \u{20ac}".as_bytes(),
        b" \xf0\x9f",
        b"\x98\x80 \"quoted\" back\\slash\ttab\r\n",
        b"\x00\x07\x08\x7f bell \xff invalid\r\n",
        "日本語".as_bytes().split_at(4).0,
        "日本語".as_bytes().split_at(4).1,
        b"\r\nbye\r\n",
    ];
    let mut printed = Vec::new();
    for (index, packet) in packets.iter().enumerate() {
        let at = ms(100 * index as i64);
        writer.output(at, packet, &mut file);
        printed.extend_from_slice(packet);
        writer.input(at, b"ls\r", &mut file);
    }
    writer.resize(ms(1_000), 120, 40, &mut file);
    writer.marker(ms(1_100), "grant expires in 5m", &mut file);
    writer.marker(ms(1_200), "exit status 0", &mut file);
    writer.finish(&mut file);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("session.cast");
    std::fs::write(&path, &file).unwrap();
    let cat = Command::new("asciinema")
        .arg("cat")
        .arg(&path)
        .output()
        .expect("run asciinema cat");
    let stderr = String::from_utf8_lossy(&cat.stderr);
    assert!(
        !stderr.contains("/dev/tty"),
        "this asciinema's cat needs a terminal (Debian's 2.2 does): install 2.4 with \
         pip install 'asciinema>=2.4,<3'\n{stderr}"
    );
    assert!(
        cat.status.success(),
        "asciinema cat failed: {stderr}\nfile:\n{file}"
    );
    assert_eq!(
        String::from_utf8(cat.stdout).unwrap(),
        String::from_utf8_lossy(&printed),
        "file:\n{file}"
    );
    assert!(file.contains("[1.000000,\"r\",\"120x40\"]\n"));
    assert!(file.contains("[1.200000,\"m\",\"exit status 0\"]\n"));
}
