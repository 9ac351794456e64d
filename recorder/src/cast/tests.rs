use super::*;
use chrono::TimeZone;

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap()
}

fn ms(millis: i64) -> DateTime<Utc> {
    start() + TimeDelta::milliseconds(millis)
}

use chrono::TimeDelta;

fn header() -> Header {
    Header {
        width: 80,
        height: 24,
        timestamp: start(),
        idle_time_limit: None,
        command: None,
        title: Some("alice as root on prod-db-01".to_owned()),
        term: Some("xterm-256color".to_owned()),
        shell: Some("/bin/bash".to_owned()),
    }
}

fn writer(keystrokes: Keystrokes) -> CastWriter {
    CastWriter::new(header(), Coalescing::default(), keystrokes)
}

/// The event lines of a whole recording, header excluded.
fn events_of(body: &str) -> Vec<Event> {
    let text = format!("{}{body}", writer(Keystrokes::Skip).header_line());
    let recording = parse(&text).expect("the writer's output parses");
    assert!(!recording.truncated);
    recording.events
}

fn output(text: &str) -> EventKind {
    EventKind::Output(text.to_owned())
}

fn at(millis: u64, kind: EventKind) -> Event {
    Event {
        time: Duration::from_millis(millis),
        kind,
    }
}

#[test]
fn header_line_is_asciicast_v2_with_fields_in_asciinemas_order() {
    let mut header = header();
    header.command = Some("pg_dump prod".to_owned());
    header.idle_time_limit = Some(Duration::from_millis(2500));
    assert_eq!(
        writer_with(header).header_line(),
        "{\"version\":2,\"width\":80,\"height\":24,\"timestamp\":1714564800,\
         \"idle_time_limit\":2.5,\"command\":\"pg_dump prod\",\
         \"title\":\"alice as root on prod-db-01\",\
         \"env\":{\"SHELL\":\"/bin/bash\",\"TERM\":\"xterm-256color\"}}\n"
    );
}

fn writer_with(header: Header) -> CastWriter {
    CastWriter::new(header, Coalescing::default(), Keystrokes::Skip)
}

#[test]
fn header_line_leaves_out_what_is_unknown() {
    let header = Header {
        title: None,
        term: None,
        shell: None,
        ..header()
    };
    assert_eq!(
        writer_with(header).header_line(),
        "{\"version\":2,\"width\":80,\"height\":24,\"timestamp\":1714564800}\n"
    );
}

#[test]
fn header_line_is_read_by_the_asciicast_crate_too() {
    let line = writer(Keystrokes::Skip).header_line();
    let theirs: asciicast::Header = serde_json::from_str(&line).unwrap();
    assert_eq!(theirs, asciicast::Header::from(&header()));
}

#[test]
fn header_survives_a_round_trip() {
    let mut header = header();
    header.command = Some("ls -l \"/tmp\"".to_owned());
    header.idle_time_limit = Some(Duration::from_millis(1500));
    let recording = parse(&writer_with(header.clone()).header_line()).unwrap();
    assert_eq!(recording.header, header);
    assert!(recording.events.is_empty());
}

#[test]
fn event_lines_are_json_arrays_with_microsecond_times() {
    let cases = [
        (at(0, output("$ ")), "[0.000000,\"o\",\"$ \"]\n"),
        (
            Event {
                time: Duration::from_micros(1_234_567),
                kind: EventKind::Input("ls\r".to_owned()),
            },
            "[1.234567,\"i\",\"ls\\r\"]\n",
        ),
        (
            at(61_500, EventKind::Resize { cols: 80, rows: 24 }),
            "[61.500000,\"r\",\"80x24\"]\n",
        ),
        (
            at(2_000, EventKind::Marker("grant revoked by bob".to_owned())),
            "[2.000000,\"m\",\"grant revoked by bob\"]\n",
        ),
        (
            at(5, output("\u{1b}[1m\"q\"\\\u{0}\u{7f}é")),
            "[0.005000,\"o\",\"\\u001b[1m\\\"q\\\"\\\\\\u0000\u{7f}é\"]\n",
        ),
    ];
    for (event, line) in cases {
        let mut written = String::new();
        event.write_line(&mut written);
        assert_eq!(written, line);
        assert_eq!(events_of(&written), [event]);
    }
}

#[test]
fn every_control_character_is_escaped_as_json_requires() {
    let text: String = (0u8..=0x7f).map(char::from).collect();
    let mut escaped = String::new();
    write::escape_json_into(&mut escaped, &text);
    let quoted = format!("\"{escaped}\"");
    assert_eq!(serde_json::from_str::<String>(&quoted).unwrap(), text);
    assert!(!escaped.bytes().any(|b| b < 0x20));
}

#[test]
fn escaping_matches_serde_json_for_any_text() {
    // Every position of every special byte relative to the 8-byte fast path.
    let alphabet = [
        'a', '"', '\\', '\n', '\u{1b}', '\u{0}', '\u{1f}', ' ', '\u{7f}', 'é', '😀', '!', '#', '[',
        ']',
    ];
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for len in 0..64 {
        for _ in 0..50 {
            let text: String = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    alphabet[(state % alphabet.len() as u64) as usize]
                })
                .collect();
            let mut escaped = String::from("\"");
            write::escape_json_into(&mut escaped, &text);
            escaped.push('"');
            assert_eq!(escaped, serde_json::to_string(&text).unwrap(), "{text:?}");
        }
    }
}

#[test]
fn a_multibyte_character_split_across_packets_survives_into_one_event() {
    for text in ["é", "€", "😀"] {
        let bytes = text.as_bytes();
        for cut in 1..bytes.len() {
            let mut w = writer(Keystrokes::Skip);
            let mut out = String::new();
            w.output(ms(0), &bytes[..cut], &mut out);
            // Far apart, so the two packets cannot share an event by coalescing.
            w.output(ms(1_000), &bytes[cut..], &mut out);
            w.finish(&mut out);
            assert_eq!(
                events_of(&out),
                [at(1_000, output(text))],
                "{text} cut at {cut}"
            );
        }
    }
}

#[test]
fn invalid_utf8_is_replaced_the_same_way_however_it_arrives() {
    let stream: &[u8] = b"ok \xff\xe2\x82 \xf0\x9f\x98\x80 \xc3";
    let expected = String::from_utf8_lossy(stream);
    for cut in 0..=stream.len() {
        let mut w = writer(Keystrokes::Skip);
        let mut out = String::new();
        w.output(ms(0), &stream[..cut], &mut out);
        w.output(ms(1), &stream[cut..], &mut out);
        w.finish(&mut out);
        let text: String = events_of(&out)
            .into_iter()
            .map(|event| match event.kind {
                EventKind::Output(text) => text,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(text, expected, "cut at {cut}");
    }
}

#[test]
fn stdout_and_stderr_each_keep_their_own_split_characters() {
    let mut w = writer(Keystrokes::Skip);
    let mut out = String::new();
    w.output(ms(0), b"\xe2\x82", &mut out);
    w.error_output(ms(1), b"err ", &mut out);
    w.output(ms(2), b"\xac", &mut out);
    w.finish(&mut out);
    assert_eq!(events_of(&out), [at(1, output("err €"))]);
}

#[test]
fn coalescing_joins_writes_within_the_window_and_only_those() {
    // (gap between two writes in ms, whether they share one event)
    for (gap, joined) in [(0, true), (1, true), (5, true), (6, false), (50, false)] {
        let mut w = writer(Keystrokes::Skip);
        let mut out = String::new();
        w.output(ms(100), b"a", &mut out);
        w.output(ms(100 + gap), b"b", &mut out);
        w.finish(&mut out);
        let expected = if joined {
            vec![at(100, output("ab"))]
        } else {
            vec![at(100, output("a")), at(100 + gap as u64, output("b"))]
        };
        assert_eq!(events_of(&out), expected, "{gap} ms apart");
    }
}

#[test]
fn the_window_counts_from_the_first_write_not_the_latest() {
    let mut w = writer(Keystrokes::Skip);
    let mut out = String::new();
    for millis in 0..10 {
        w.output(ms(millis), b"x", &mut out);
    }
    w.finish(&mut out);
    assert_eq!(
        events_of(&out),
        [at(0, output("xxxxxx")), at(6, output("xxxx"))]
    );
}

#[test]
fn held_back_output_is_written_when_due_and_not_before() {
    let mut w = writer(Keystrokes::Skip);
    let mut out = String::new();
    assert_eq!(w.flush_deadline(), None);
    w.output(ms(10), b"prompt$ ", &mut out);
    assert!(out.is_empty(), "held back to join later writes");
    assert_eq!(w.flush_deadline(), Some(ms(15)));
    w.flush_due(ms(14), &mut out);
    assert!(out.is_empty());
    w.flush_due(ms(15), &mut out);
    assert_eq!(out, "[0.010000,\"o\",\"prompt$ \"]\n");
    assert_eq!(w.flush_deadline(), None);
}

#[test]
fn extreme_coalescing_settings_do_not_panic() {
    for window in [Duration::ZERO, Duration::MAX] {
        for max_bytes in [0, usize::MAX] {
            let coalescing = Coalescing { window, max_bytes };
            let mut w = CastWriter::new(header(), coalescing, Keystrokes::Skip);
            let mut out = String::new();
            w.output(ms(0), b"a", &mut out);
            let _ = w.flush_deadline();
            w.flush_due(DateTime::<Utc>::MAX_UTC, &mut out);
            w.output(DateTime::<Utc>::MIN_UTC, b"b", &mut out);
            w.output(DateTime::<Utc>::MAX_UTC, b"c", &mut out);
            w.finish(&mut out);
            let text: String = events_of(&out)
                .into_iter()
                .map(|event| match event.kind {
                    EventKind::Output(text) => text,
                    other => panic!("unexpected {other:?}"),
                })
                .collect();
            assert_eq!(text, "abc", "{coalescing:?}");
        }
    }
}

#[test]
fn a_flood_is_written_in_events_of_at_most_max_bytes() {
    let coalescing = Coalescing {
        window: Duration::from_secs(1),
        max_bytes: 100,
    };
    let mut w = CastWriter::new(header(), coalescing, Keystrokes::Skip);
    let mut out = String::new();
    for _ in 0..10 {
        w.output(ms(0), &[b'y'; 30], &mut out);
    }
    // 30-byte writes: three fit in 100 bytes, the fourth starts a new event.
    assert_eq!(out.lines().count(), 3);
    w.finish(&mut out);
    let sizes: Vec<usize> = events_of(&out)
        .iter()
        .map(|event| match &event.kind {
            EventKind::Output(text) => text.len(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(sizes, [90, 90, 90, 30]);
}

#[test]
fn a_single_write_larger_than_max_bytes_is_one_event_at_once() {
    let coalescing = Coalescing {
        window: Duration::from_secs(1),
        max_bytes: 10,
    };
    let mut w = CastWriter::new(header(), coalescing, Keystrokes::Skip);
    let mut out = String::new();
    w.output(ms(0), &[b'z'; 25], &mut out);
    assert_eq!(out, format!("[0.000000,\"o\",\"{}\"]\n", "z".repeat(25)));
}

#[test]
fn resize_and_marker_write_held_back_output_first() {
    let mut w = writer(Keystrokes::Skip);
    let mut out = String::new();
    w.output(ms(0), b"$ ", &mut out);
    w.resize(ms(2), 120, 40, &mut out);
    w.output(ms(3), b"top", &mut out);
    w.marker(ms(4), "expires in 5m", &mut out);
    w.marker(ms(900), "exit status 0", &mut out);
    w.finish(&mut out);
    assert_eq!(
        out,
        "[0.000000,\"o\",\"$ \"]\n\
         [0.002000,\"r\",\"120x40\"]\n\
         [0.003000,\"o\",\"top\"]\n\
         [0.004000,\"m\",\"expires in 5m\"]\n\
         [0.900000,\"m\",\"exit status 0\"]\n"
    );
}

#[test]
fn keystrokes_are_recorded_only_when_asked() {
    for (keystrokes, expected) in [
        (Keystrokes::Skip, vec![at(0, output("Password: "))]),
        (
            Keystrokes::Record,
            vec![
                at(0, output("Password: ")),
                at(100, EventKind::Input("hunter2\r".to_owned())),
            ],
        ),
    ] {
        let mut w = writer(keystrokes);
        let mut out = String::new();
        w.output(ms(0), b"Password: ", &mut out);
        w.input(ms(100), b"hunter2\r", &mut out);
        w.finish(&mut out);
        assert_eq!(events_of(&out), expected, "{keystrokes:?}");
    }
}

#[test]
fn times_never_go_backwards_even_when_the_clock_does() {
    let mut w = writer(Keystrokes::Skip);
    let mut out = String::new();
    w.output(ms(-500), b"before the start", &mut out);
    w.marker(ms(1_000), "later", &mut out);
    w.output(ms(400), b"clock stepped back", &mut out);
    w.finish(&mut out);
    assert_eq!(
        events_of(&out),
        [
            at(0, output("before the start")),
            at(1_000, EventKind::Marker("later".to_owned())),
            at(1_000, output("clock stepped back")),
        ]
    );
}

#[test]
fn finish_writes_a_dangling_partial_character_as_replacement() {
    let mut w = writer(Keystrokes::Skip);
    let mut out = String::new();
    w.output(ms(0), b"cut \xf0\x9f", &mut out);
    w.finish(&mut out);
    assert_eq!(events_of(&out), [at(0, output("cut \u{fffd}"))]);
}

#[test]
fn a_session_round_trips_through_the_file() {
    let mut w = writer(Keystrokes::Record);
    let mut file = w.header_line();
    let mut out = String::new();
    w.output(ms(0), b"\x1b]0;title\x07$ ", &mut out);
    w.input(ms(700), b"echo h\xc3", &mut out);
    w.input(ms(750), b"\xa9\r", &mut out);
    w.output(ms(751), b"h\xc3\xa9\r\n$ ", &mut out);
    w.resize(ms(2_000), 100, 30, &mut out);
    w.marker(ms(3_000), "exit status 0", &mut out);
    w.finish(&mut out);
    file.push_str(&out);
    let recording = parse(&file).unwrap();
    assert_eq!(recording.header, header());
    assert!(!recording.truncated);
    assert_eq!(
        recording.events,
        [
            at(0, output("\x1b]0;title\x07$ ")),
            at(700, EventKind::Input("echo h".to_owned())),
            at(750, EventKind::Input("é\r".to_owned())),
            at(751, output("hé\r\n$ ")),
            at(
                2_000,
                EventKind::Resize {
                    cols: 100,
                    rows: 30
                }
            ),
            at(3_000, EventKind::Marker("exit status 0".to_owned())),
        ]
    );
    assert_eq!(recording.duration(), Duration::from_secs(3));
}

const GOOD: &str = "{\"version\":2,\"width\":80,\"height\":24,\"timestamp\":1714564800}\n\
                    [0.5,\"o\",\"hello\"]\n";

#[test]
fn an_incomplete_last_line_is_left_out_and_reported() {
    for tail in ["[1.0,\"o\",\"hel", "[1.0", "[", "[1.0,\"o\",\"x\"] garbage"] {
        let recording = parse(&format!("{GOOD}{tail}")).unwrap();
        assert!(recording.truncated, "{tail:?}");
        assert_eq!(recording.events, [at(500, output("hello"))]);
    }
}

#[test]
fn a_complete_last_line_without_newline_is_kept() {
    let recording = parse(&format!("{GOOD}[1.0,\"m\",\"end\"]")).unwrap();
    assert!(!recording.truncated);
    assert_eq!(recording.events.len(), 2);
}

#[test]
fn windows_line_endings_are_read() {
    let recording = parse(&GOOD.replace('\n', "\r\n")).unwrap();
    assert_eq!(recording.events, [at(500, output("hello"))]);
}

#[test]
fn a_malformed_event_line_is_an_error_naming_the_line() {
    let cases = [
        ("[1.0,\"o\",\"a\"", "expected an event"),
        ("", "expected an event"),
        ("{}", "expected an event"),
        ("[1.0,\"o\"]", "expected an event"),
        ("[1.0,\"o\",\"a\",4]", "expected an event"),
        ("[\"1\",\"o\",\"a\"]", "expected an event"),
        ("[-1.0,\"o\",\"a\"]", "not a number of seconds"),
        ("[1e300,\"o\",\"a\"]", "not a number of seconds"),
        ("[1.0,\"x\",\"a\"]", "unknown event code \"x\""),
        ("[1.0,\"r\",\"80\"]", "COLSxROWS"),
        ("[1.0,\"r\",\"80x\"]", "COLSxROWS"),
        ("[1.0,\"r\",\"+80x24\"]", "COLSxROWS"),
        ("[1.0,\"r\",\"99999999999x24\"]", "COLSxROWS"),
    ];
    for (line, reason) in cases {
        let text = format!("{GOOD}{line}\n[2.0,\"o\",\"after\"]\n");
        match parse(&text) {
            Err(ParseError::Event {
                line: 3,
                reason: got,
            }) => {
                assert!(got.contains(reason), "{line:?}: {got}");
            }
            other => panic!("{line:?}: {other:?}"),
        }
    }
}

#[test]
fn a_bad_header_is_an_error_saying_so() {
    let cases = [
        ("", "empty"),
        ("not json\n", "line 1 is not an asciicast v2 header"),
        ("[1,2]\n", "no \"version\""),
        ("{\"version\":1,\"width\":80,\"height\":24}\n", "version 1"),
        (
            "{\"version\":3,\"term\":{\"cols\":80,\"rows\":24}}\n",
            "version 3",
        ),
        (
            "{\"version\":2,\"height\":24,\"timestamp\":0}\n",
            "missing field `width`",
        ),
        (
            "{\"version\":2,\"width\":-1,\"height\":24,\"timestamp\":0}\n",
            "column 23",
        ),
        (
            "{\"version\":2,\"width\":80,\"height\":24}\n",
            "no \"timestamp\"",
        ),
        (
            "{\"version\":2,\"width\":80,\"height\":24,\"timestamp\":1e300}\n",
            "not a time",
        ),
        (
            "{\"version\":2,\"width\":80,\"height\":24,\"timestamp\":0,\"idle_time_limit\":-1}\n",
            "idle_time_limit",
        ),
    ];
    for (text, message) in cases {
        let error = parse(text).expect_err(text).to_string();
        assert!(error.contains(message), "{text:?}: {error}");
    }
}

#[test]
fn foreign_headers_with_extra_fields_are_read() {
    let text = "{\"version\": 2, \"width\": 100, \"height\": 50, \"timestamp\": 1509091818.5, \
                \"duration\": 3.1, \"theme\": {\"fg\": \"#fff\"}, \
                \"env\": {\"TERM\": \"xterm\", \"SHELL\": null, \"LANG\": \"C\"}}\n\
                [0.248848, \"o\", \"x\"]\n";
    let recording = parse(text).unwrap();
    assert_eq!(recording.header.width, 100);
    assert_eq!(recording.header.term.as_deref(), Some("xterm"));
    assert_eq!(recording.header.shell, None);
    assert_eq!(
        recording.header.timestamp,
        Utc.timestamp_opt(1509091818, 500_000_000).unwrap()
    );
    assert_eq!(recording.events[0].time, Duration::from_micros(248_848));
}

#[test]
fn no_damaged_file_makes_the_reader_panic() {
    // Every prefix and many single-byte corruptions of a real recording.
    let mut w = writer(Keystrokes::Record);
    let mut file = w.header_line();
    w.output(ms(0), "$ ls é 😀\r\n".as_bytes(), &mut file);
    w.input(ms(10), b"x", &mut file);
    w.resize(ms(20), 100, 30, &mut file);
    w.marker(ms(30), "m", &mut file);
    w.finish(&mut file);
    let bytes = file.as_bytes();
    for end in 0..=bytes.len() {
        let _ = parse(&String::from_utf8_lossy(&bytes[..end]));
    }
    for index in 0..bytes.len() {
        for replacement in [b'"', b'\\', b'[', b'{', b'-', b'9', b'e', b'\n', b'x', 0] {
            let mut damaged = bytes.to_vec();
            damaged[index] = replacement;
            let _ = parse(&String::from_utf8_lossy(&damaged));
        }
    }
}
