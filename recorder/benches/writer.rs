//! How fast a recording is written, and searched.
//!
//! The issue asks that an output flood through the broker with recording on runs at 0.9
//! or more of the rate with recording off, so the writer must cost little per byte next
//! to SSH's own work (decrypt, MAC, encrypt: a few hundred MB/s to a GB/s per core).
//!
//! Measured, in interleaved rounds so machine noise hits all alike, each 64 MiB in
//! 32 KiB packets (an SSH channel's usual maximum) with 20 µs between packets:
//! - `memcpy`: the baseline, copying the packets into a reused buffer: no recorder can
//!   be faster than this.
//! - `CastWriter::output` on three floods: `text` (`cat` of a log: ASCII lines, `\r\n`,
//!   some colour), `utf-8` (Japanese and emoji, packets cut inside characters), and
//!   `binary` (`cat /dev/urandom`: the worst case, most bytes invalid or escaped).
//!   The lines are appended to a buffer that is cleared after each packet, as the
//!   broker's file writer would take them.
//! - `screen::grep` and `screen::transcript` over a 4 MiB recording of the text flood in
//!   4 KiB events (rendering through avt, per byte far costlier than writing).
//!
//! Reports the median MB/s of the rounds (MB = 10^6 bytes of session output) and the
//! writer's cost relative to memcpy.
//!
//! Run: `cargo bench -p latch-recorder --bench writer` (about 30 s).

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use recorder::cast::{parse, CastWriter, Coalescing, Header, Keystrokes};
use recorder::screen;
use std::hint::black_box;
use std::time::{Duration, Instant};

const TOTAL: usize = 64 << 20;
const PACKET: usize = 32 << 10;
const ROUNDS: usize = 7;

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap()
}

fn header() -> Header {
    Header {
        width: 120,
        height: 40,
        timestamp: start(),
        idle_time_limit: None,
        command: None,
        title: Some("bench".to_owned()),
        term: Some("xterm-256color".to_owned()),
        shell: Some("/bin/bash".to_owned()),
    }
}

/// A deterministic generator, so every run writes the same bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn text_flood(len: usize) -> Vec<u8> {
    let mut rng = Rng(7);
    let mut out = Vec::with_capacity(len + 200);
    let words = [
        "GET",
        "/api/v1/grants",
        "200",
        "latency_ms=12",
        "user=alice",
        "host=prod-db-01",
        "INFO",
        "WARN",
        "connection",
        "accepted",
        "from",
        "10.0.3.17:51234",
    ];
    let mut n = 0u64;
    while out.len() < len {
        n += 1;
        out.extend_from_slice(format!("2026-11-27T12:00:{:02}Z ", n % 60).as_bytes());
        if n.is_multiple_of(10) {
            out.extend_from_slice(b"\x1b[33mWARN\x1b[0m ");
        }
        for _ in 0..8 {
            out.extend_from_slice(words[(rng.next() % words.len() as u64) as usize].as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(b"\r\n");
    }
    out.truncate(len);
    out
}

fn utf8_flood(len: usize) -> Vec<u8> {
    let line = "ログ：接続を受け付けました 😀 café €12 — 日本語のテキスト\r\n";
    line.as_bytes().iter().copied().cycle().take(len).collect()
}

fn binary_flood(len: usize) -> Vec<u8> {
    let mut rng = Rng(11);
    (0..len).map(|_| rng.next() as u8).collect()
}

fn memcpy(data: &[u8]) -> Duration {
    let mut sink = Vec::with_capacity(PACKET);
    let began = Instant::now();
    for packet in data.chunks(PACKET) {
        sink.clear();
        sink.extend_from_slice(packet);
        black_box(&sink);
    }
    began.elapsed()
}

fn write(data: &[u8]) -> Duration {
    let mut writer = CastWriter::new(header(), Coalescing::default(), Keystrokes::Skip);
    let mut out = String::new();
    let began = Instant::now();
    for (index, packet) in data.chunks(PACKET).enumerate() {
        let at = start() + TimeDelta::microseconds(20 * index as i64);
        writer.output(at, packet, &mut out);
        black_box(&out);
        out.clear();
    }
    writer.finish(&mut out);
    black_box(&out);
    began.elapsed()
}

fn mb_per_s(bytes: usize, took: Duration) -> f64 {
    bytes as f64 / took.as_secs_f64() / 1e6
}

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

fn main() {
    // `LATCH_BENCH_ONLY=text` (or utf-8, binary) runs one flood alone, for a profiler.
    let only = std::env::var("LATCH_BENCH_ONLY").ok();
    let floods: Vec<(&str, Vec<u8>)> = [
        ("text", text_flood as fn(usize) -> Vec<u8>),
        ("utf-8", utf8_flood),
        ("binary", binary_flood),
    ]
    .into_iter()
    .filter(|(name, _)| only.as_deref().is_none_or(|only| only == *name))
    .map(|(name, make)| (name, make(TOTAL)))
    .collect();
    let mut baseline = Vec::new();
    let mut writes: Vec<Vec<Duration>> = vec![Vec::new(); floods.len()];
    for _ in 0..ROUNDS {
        baseline.push(memcpy(&floods.first().expect("a flood to run").1));
        for (runs, (_, data)) in writes.iter_mut().zip(&floods) {
            runs.push(write(data));
        }
    }
    let baseline = median(baseline);
    println!(
        "{:<28} {:>9.0} MB/s",
        "memcpy (baseline)",
        mb_per_s(TOTAL, baseline)
    );
    for (runs, (name, _)) in writes.into_iter().zip(&floods) {
        let took = median(runs);
        println!(
            "{:<28} {:>9.0} MB/s   {:>5.1}x memcpy's time",
            format!("CastWriter::output, {name}"),
            mb_per_s(TOTAL, took),
            took.as_secs_f64() / baseline.as_secs_f64()
        );
    }

    if only.is_some() {
        return;
    }
    // A 4 MiB recording of the text flood, in 4 KiB events.
    let mut writer = CastWriter::new(
        header(),
        Coalescing {
            window: Duration::ZERO,
            max_bytes: 4096,
        },
        Keystrokes::Skip,
    );
    let mut file = writer.header_line();
    let data = text_flood(4 << 20);
    for (index, packet) in data.chunks(4096).enumerate() {
        let at = start() + TimeDelta::milliseconds(index as i64);
        writer.output(at, packet, &mut file);
    }
    writer.finish(&mut file);
    let recording = parse(&file).expect("the bench recording parses");
    let mut greps = Vec::new();
    let mut transcripts = Vec::new();
    let mut parses = Vec::new();
    for _ in 0..3 {
        let began = Instant::now();
        black_box(parse(&file).unwrap());
        parses.push(began.elapsed());
        let began = Instant::now();
        black_box(screen::grep(&recording, "prod-db-01 INFO").unwrap());
        greps.push(began.elapsed());
        let began = Instant::now();
        black_box(screen::transcript(&recording).unwrap());
        transcripts.push(began.elapsed());
    }
    for (name, runs) in [
        ("cast::parse, 4 MiB", parses),
        ("screen::grep, 4 MiB", greps),
        ("screen::transcript, 4 MiB", transcripts),
    ] {
        let took = median(runs);
        println!(
            "{:<28} {:>9.0} MB/s   ({} ms)",
            name,
            mb_per_s(data.len(), took),
            took.as_millis()
        );
    }
}
