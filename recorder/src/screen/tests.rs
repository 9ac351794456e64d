use super::*;
use crate::cast::{Event, Header};
use chrono::{TimeZone, Utc};

fn recording(cols: u32, rows: u32, outputs: &[&str]) -> Recording {
    Recording {
        header: Header {
            width: cols,
            height: rows,
            timestamp: Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap(),
            idle_time_limit: None,
            command: None,
            title: None,
            term: None,
            shell: None,
        },
        // One output event per second.
        events: outputs
            .iter()
            .enumerate()
            .map(|(second, text)| Event {
                time: Duration::from_secs(second as u64),
                kind: EventKind::Output((*text).to_owned()),
            })
            .collect(),
        truncated: false,
    }
}

/// (seconds, line) of each match.
fn found(recording: &Recording, needle: &str) -> Vec<(u64, String)> {
    grep(recording, needle)
        .unwrap()
        .into_iter()
        .map(|m| (m.time.as_secs(), m.line))
        .collect()
}

fn lines(pairs: &[(u64, &str)]) -> Vec<(u64, String)> {
    pairs.iter().map(|&(t, l)| (t, l.to_owned())).collect()
}

#[test]
fn grep_finds_text_as_the_screen_showed_it() {
    // (terminal size, output events, needle, matches as (second, line))
    type Case<'a> = ((u32, u32), &'a [&'a str], &'a str, &'a [(u64, &'a str)]);
    let cases: &[Case] = &[
        // Plain text.
        (
            (80, 24),
            &["$ ls\r\nsecret.txt\r\n"],
            "secret",
            &[(0, "secret.txt")],
        ),
        // Put together by cursor jumps: the bytes never hold "hello world".
        (
            (80, 24),
            &["\x1b[1;7Hworld\x1b[1;1Hhello "],
            "hello world",
            &[(0, "hello world")],
        ),
        // Overwritten by moving back: "xy" is shown, "ab" was gone before anyone saw it.
        ((80, 24), &["ab\x1b[5Dxy"], "xy", &[(0, "xy")]),
        ((80, 24), &["ab\x1b[5Dxy"], "ab", &[]),
        // Skipping over a character with cursor-forward keeps what was there.
        (
            (80, 24),
            &["help me\rhel\x1b[1Clo"],
            "helploe",
            &[(0, "helploe")],
        ),
        ((80, 24), &["hel\x1b[1Clo"], "hel lo", &[(0, "hel lo")]),
        // Escape sequences are not text.
        ((80, 24), &["\x1b[31mred\x1b[0m"], "31m", &[]),
        ((80, 24), &["\x1b[31mred\x1b[0m"], "[0m", &[]),
        ((80, 24), &["\x1b]0;window title\x07prompt"], "title", &[]),
        (
            (80, 24),
            &["\x1b[31mr\x1b[1me\x1b[0md"],
            "red",
            &[(0, "red")],
        ),
        // Split across events: found when complete.
        ((80, 24), &["hel", "lo"], "hello", &[(1, "hello")]),
        // A soft-wrapped line is one line.
        (
            (10, 5),
            &["0123456789abcdef"],
            "89ab",
            &[(0, "0123456789abcdef")],
        ),
        // Full-screen programs draw on the alternate screen; that was on screen too.
        (
            (80, 24),
            &["\x1b[?1049h\x1b[5;5Hsecret in vim"],
            "in vim",
            &[(0, "    secret in vim")],
        ),
        // Lines that scrolled off within one event were on screen on the way.
        (
            (80, 2),
            &["a\r\nsecret\r\nb\r\nc\r\nd"],
            "secret",
            &[(0, "secret")],
        ),
        // Multibyte and wide characters.
        (
            (80, 24),
            &["caf\u{e9} \u{65e5}\u{672c}"],
            "\u{e9} \u{65e5}",
            &[(0, "caf\u{e9} \u{65e5}\u{672c}")],
        ),
    ];
    for &((cols, rows), outputs, needle, expected) in cases {
        let recording = recording(cols, rows, outputs);
        assert_eq!(
            found(&recording, needle),
            lines(expected),
            "{outputs:?} / {needle:?}"
        );
    }
}

#[test]
fn text_that_stays_on_screen_is_found_once() {
    // Typed one key per event, then scrolled up line by line until it leaves.
    let mut outputs: Vec<String> = "$ echo secret-token".chars().map(String::from).collect();
    outputs.push("\r\nsecret-token\r\n$ ".to_owned());
    for n in 0..10 {
        outputs.push(format!("line {n}\r\n"));
    }
    let outputs: Vec<&str> = outputs.iter().map(String::as_str).collect();
    let recording = recording(40, 4, &outputs);
    assert_eq!(
        found(&recording, "secret"),
        lines(&[(12, "$ echo secret"), (19, "secret-token")])
    );
}

#[test]
fn text_that_appears_again_is_found_again() {
    let cases: &[(&[&str], usize)] = &[
        (&["secret\r\n", "secret\r\n", "secret\r\n"], 3),
        (&["secret\r\nsecret\r\nsecret\r\n"], 3),
        // Cleared, then shown again.
        (&["secret", "\x1b[H\x1b[2J", "secret"], 2),
        (&["secret\x1b[H\x1b[2Jsecret"], 2),
        // Overwritten by something else, then shown again on the same row.
        (&["secret", "\r\x1b[Kother", "\rsecret"], 2),
    ];
    for &(outputs, count) in cases {
        let recording = recording(80, 24, outputs);
        assert_eq!(found(&recording, "secret").len(), count, "{outputs:?}");
    }
}

#[test]
fn grep_follows_resizes() {
    let mut recording = recording(10, 3, &["0123456789abcdefghij"]);
    recording.events.push(Event {
        time: Duration::from_secs(5),
        kind: EventKind::Resize { cols: 30, rows: 3 },
    });
    recording.events.push(Event {
        time: Duration::from_secs(6),
        kind: EventKind::Output("\x1b[3;25Hwide".to_owned()),
    });
    assert_eq!(
        found(&recording, "wide"),
        lines(&[(6, "                        wide")])
    );
    assert_eq!(
        found(&recording, "9a"),
        lines(&[(0, "0123456789abcdefghij")])
    );
}

#[test]
fn grep_refuses_an_empty_needle_and_absurd_sizes() {
    assert_eq!(
        grep(&recording(80, 24, &["x"]), ""),
        Err(ScreenError::EmptyNeedle)
    );
    let huge = recording(100_000, 100_000, &["x"]);
    assert_eq!(
        grep(&huge, "x"),
        Err(ScreenError::TooLarge {
            cols: 100_000,
            rows: 100_000
        })
    );
    assert_eq!(
        transcript(&huge),
        Err(ScreenError::TooLarge {
            cols: 100_000,
            rows: 100_000
        })
    );
    let mut resized = recording(80, 24, &["x"]);
    resized.events.push(Event {
        time: Duration::from_secs(1),
        kind: EventKind::Resize {
            cols: u32::MAX,
            rows: u32::MAX,
        },
    });
    assert!(transcript(&resized).is_err());
    // A zero size is rendered as one, as terminals do.
    assert_eq!(found(&recording(0, 0, &["x"]), "x").len(), 1);
}

#[test]
fn transcript_is_the_text_that_scrolled_by_then_the_final_screen() {
    let cases: &[((u32, u32), &[&str], &str)] = &[
        (
            (80, 3),
            &["one\r\ntwo\r\nthree\r\nfour\r\n$ "],
            "one\ntwo\nthree\nfour\n$\n",
        ),
        // Colours, titles and cursor movement are gone; what they drew stays.
        (
            (80, 24),
            &["\x1b]0;title\x07\x1b[1;31mred\x1b[0m \x1b[1;11Hworld\x1b[1;5Hhello"],
            "red hello world\n",
        ),
        // Progress redrawn in place is its final state.
        ((80, 24), &["10%\r50%\r100%\r\ndone\r\n"], "100%\ndone\n"),
        // Soft-wrapped rows are the one line that was printed.
        ((5, 2), &["abcdefghij\r\nk"], "abcdefghij\nk\n"),
        // A cleared screen's text is kept.
        ((80, 24), &["before\x1b[H\x1b[2Jafter"], "before\nafter\n"),
        // The alternate screen is not history.
        (
            (80, 24),
            &["$ vim\r\n\x1b[?1049hEDITING\x1b[?1049l$ "],
            "$ vim\n$\n",
        ),
        ((80, 24), &[], ""),
    ];
    for &((cols, rows), outputs, expected) in cases {
        assert_eq!(
            transcript(&recording(cols, rows, outputs)).unwrap(),
            expected,
            "{outputs:?}"
        );
    }
}

#[test]
fn transcript_follows_resizes() {
    let mut recording = recording(5, 2, &["abcdefgh"]);
    recording.events.push(Event {
        time: Duration::from_secs(1),
        kind: EventKind::Resize { cols: 20, rows: 2 },
    });
    recording.events.push(Event {
        time: Duration::from_secs(2),
        kind: EventKind::Output("\r\nmore".to_owned()),
    });
    assert_eq!(transcript(&recording).unwrap(), "abcdefgh\nmore\n");
}

#[test]
fn no_output_makes_rendering_panic() {
    // Random mixes of text, control characters and escape sequence fragments, cut into
    // events at random, with random resizes in between.
    let fragments = [
        "a",
        "é",
        "日",
        "😀",
        "\r",
        "\n",
        "\t",
        "\x08",
        "\x1b",
        "[",
        "]",
        ";",
        "?",
        "1049h",
        "1049l",
        "2J",
        "K",
        "H",
        "5D",
        "3C",
        "99;99H",
        "0;0H",
        "r",
        "1;2r",
        "M",
        "c",
        "7",
        "8",
        "31m",
        "38;5;200m",
        "0",
        "9",
        "\x07",
        "P",
        "L",
        "@",
        "X",
        "S",
        "T",
        "\u{fffd}",
        " ",
    ];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    for _ in 0..200 {
        let mut recording = recording(1 + next(30) as u32, 1 + next(10) as u32, &[]);
        for second in 0..20u64 {
            let kind = if next(8) == 0 {
                EventKind::Resize {
                    cols: next(40) as u32,
                    rows: next(12) as u32,
                }
            } else {
                EventKind::Output(
                    (0..next(30))
                        .map(|_| fragments[next(fragments.len())])
                        .collect(),
                )
            };
            recording.events.push(Event {
                time: Duration::from_secs(second),
                kind,
            });
        }
        transcript(&recording).unwrap();
        grep(&recording, "a").unwrap();
    }
}
