//! The streaming writer: bytes and times in, asciicast lines out.
//!
//! [`CastWriter`] is a state machine with no I/O and no clock. The broker hands it every
//! piece of the session as it relays it, with the time it read, and appends whatever
//! lines come back to the recording file. Cheap per byte by design: the only per-byte
//! work is UTF-8 validation, copying, and JSON escaping, all over runs of bytes.

use super::{Event, EventKind, Header, MAX_EVENT_TIME};
use crate::utf8::Utf8Joiner;
use chrono::{DateTime, TimeDelta, Utc};
use std::fmt::Write as _;
use std::time::Duration;

/// How small writes close together become one event.
///
/// Programs print in many small writes (a prompt, a line, an escape sequence); one event
/// per SSH packet would make the file several times larger than what it records and
/// slow to play back. Output within `window` of the first pending write joins it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Coalescing {
    /// Output arriving within this time of the pending event's first write joins it. The
    /// event keeps the first write's time, so no byte is recorded later than it happened
    /// by more than this.
    pub window: Duration,
    /// A pending event is written once it holds this many bytes of text, so a flood of
    /// output neither waits for the window nor grows one event without bound.
    pub max_bytes: usize,
}

impl Default for Coalescing {
    /// 5 ms and 64 KiB: well under what a person notices in playback, and large enough
    /// that a flood becomes a few big events rather than one per packet.
    fn default() -> Self {
        Coalescing {
            window: Duration::from_millis(5),
            max_bytes: 64 * 1024,
        }
    }
}

/// Whether what the user types is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keystrokes {
    /// Not recorded: typed passwords must not land in a file auditors read. What the user
    /// typed and the session echoed is in the output anyway.
    Skip,
    /// Recorded as `i` events, for roles whose policy asks for it.
    Record,
}

/// Turns a session's bytes into asciicast v2 lines.
///
/// Every method that takes bytes or an event appends the lines now complete to `out`
/// (each ending in `\n`) and may hold output back to join later writes; write out what
/// each call appends, and call [`flush_due`](Self::flush_due) when
/// [`flush_deadline`](Self::flush_deadline) passes, so held-back output is not held
/// longer than the coalescing window. [`finish`](Self::finish) writes everything left.
///
/// Times are instants the caller read from its clock. An instant before the start, or
/// before an earlier event (a clock stepped back), is recorded as the latest time so
/// far: the file's times never go backwards.
#[derive(Debug)]
pub struct CastWriter {
    /// The session's first line, kept for [`header_line`](Self::header_line).
    header: Header,
    /// Event times count from here: the header's timestamp at full precision.
    start: DateTime<Utc>,
    /// How output is joined into events.
    coalescing: Coalescing,
    /// Whether `i` events are written.
    keystrokes: Keystrokes,
    /// Characters split across packets, per stream: stdout, stderr and input each have
    /// their own, since a character never spans two streams.
    stdout: Utf8Joiner,
    stderr: Utf8Joiner,
    input: Utf8Joiner,
    /// The time of the held-back output event, if there is one.
    pending_time: Option<Duration>,
    /// The held-back output event's line so far: opened, its text escaped, not closed.
    pending_line: String,
    /// How many bytes of text the held-back event holds (before escaping).
    pending_bytes: usize,
    /// The time of the latest event written or held back: no later event gets an earlier
    /// one.
    latest: Duration,
}

impl CastWriter {
    /// A writer for a session that starts at `header.timestamp`.
    pub fn new(header: Header, coalescing: Coalescing, keystrokes: Keystrokes) -> Self {
        CastWriter {
            start: header.timestamp,
            header,
            coalescing,
            keystrokes,
            stdout: Utf8Joiner::new(),
            stderr: Utf8Joiner::new(),
            input: Utf8Joiner::new(),
            pending_time: None,
            pending_line: String::new(),
            pending_bytes: 0,
            latest: Duration::ZERO,
        }
    }

    /// The header this writer was made with.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The first line of the recording, ending in `\n`: write it before any other.
    pub fn header_line(&self) -> String {
        let mut line = String::new();
        self.header.write_line(&mut line);
        line
    }

    /// Records what the session printed on its standard output (or its pty).
    pub fn output(&mut self, at: DateTime<Utc>, bytes: &[u8], out: &mut String) {
        self.append_output(Stream::Stdout, at, bytes, out);
    }

    /// Records what the session printed on its standard error (SSH extended data). It
    /// lands on the same terminal, so it becomes output events too.
    pub fn error_output(&mut self, at: DateTime<Utc>, bytes: &[u8], out: &mut String) {
        self.append_output(Stream::Stderr, at, bytes, out);
    }

    /// Records what the user typed, if this writer records keystrokes; otherwise does
    /// nothing.
    pub fn input(&mut self, at: DateTime<Utc>, bytes: &[u8], out: &mut String) {
        if self.keystrokes == Keystrokes::Skip || bytes.is_empty() {
            return;
        }
        self.flush(out);
        let time = self.time_of(at);
        let line_start = out.len();
        open_line(out, time, "i");
        let text_start = out.len();
        self.input
            .push_with(bytes, |text| escape_json_into(out, text));
        if out.len() == text_start {
            // Only the start of a character: it is written with the bytes that end it.
            out.truncate(line_start);
            return;
        }
        close_line(out);
        self.latest = time;
    }

    /// Records a `window-change`: the terminal is now `cols` by `rows`.
    pub fn resize(&mut self, at: DateTime<Utc>, cols: u32, rows: u32, out: &mut String) {
        self.flush(out);
        let time = self.time_of(at);
        Event {
            time,
            kind: EventKind::Resize { cols, rows },
        }
        .write_line(out);
        self.latest = time;
    }

    /// Records a labelled moment: what happened to the grant (an expiry warning, an
    /// extension, a revocation, a kill) or how the session ended (its exit status).
    pub fn marker(&mut self, at: DateTime<Utc>, label: &str, out: &mut String) {
        self.flush(out);
        let time = self.time_of(at);
        write_text_event(out, time, "m", label);
        self.latest = time;
    }

    /// Writes held-back output whose window has passed by `now`.
    pub fn flush_due(&mut self, now: DateTime<Utc>, out: &mut String) {
        if let Some(time) = self.pending_time {
            if self.elapsed(now).saturating_sub(time) >= self.coalescing.window {
                self.flush(out);
            }
        }
    }

    /// When held-back output falls due ([`flush_due`](Self::flush_due) writes it then),
    /// or `None` when nothing is held back.
    pub fn flush_deadline(&self) -> Option<DateTime<Utc>> {
        let due = self.pending_time?.saturating_add(self.coalescing.window);
        self.start
            .checked_add_signed(TimeDelta::from_std(due).unwrap_or(TimeDelta::MAX))
            .or(Some(DateTime::<Utc>::MAX_UTC))
    }

    /// Ends the recording: writes all held-back output, with any character left
    /// incomplete at the end of a stream as U+FFFD.
    pub fn finish(mut self, out: &mut String) {
        let time = self.latest;
        let mut dangling = String::new();
        self.stdout.finish(&mut dangling);
        self.stderr.finish(&mut dangling);
        if !dangling.is_empty() {
            self.open_pending(time);
            escape_json_into(&mut self.pending_line, &dangling);
        }
        self.flush(out);
        if self.keystrokes == Keystrokes::Record {
            dangling.clear();
            self.input.finish(&mut dangling);
            if !dangling.is_empty() {
                write_text_event(out, time, "i", &dangling);
            }
        }
    }

    /// Adds what `bytes` decode to on `stream` to the held-back output event, first
    /// writing that event if `at` is past its window or the bytes would overfill it.
    fn append_output(&mut self, stream: Stream, at: DateTime<Utc>, bytes: &[u8], out: &mut String) {
        if bytes.is_empty() {
            return;
        }
        let time = self.time_of(at);
        if let Some(pending) = self.pending_time {
            // Counted in input bytes: U+FFFD for one invalid byte is three, and escaping
            // adds more, so an event may exceed `max_bytes` a little. That is fine: the
            // limit is there to bound memory and latency, not to the byte.
            if time.saturating_sub(pending) > self.coalescing.window
                || self.pending_bytes + bytes.len() > self.coalescing.max_bytes
            {
                self.flush(out);
            }
        }
        let opened = self.pending_time.is_none();
        let latest = self.latest;
        self.open_pending(time);
        let text_start = self.pending_line.len();
        let joiner = match stream {
            Stream::Stdout => &mut self.stdout,
            Stream::Stderr => &mut self.stderr,
        };
        let line = &mut self.pending_line;
        joiner.push_with(bytes, |text| escape_json_into(line, text));
        if opened && self.pending_line.len() == text_start {
            // Only the start of a character: no event until the bytes that end it.
            self.pending_line.clear();
            self.pending_time = None;
            self.latest = latest;
            return;
        }
        self.pending_bytes += bytes.len();
        if self.pending_bytes >= self.coalescing.max_bytes {
            self.flush(out);
        }
    }

    /// Starts a held-back output event at `time`, unless one is held back already.
    fn open_pending(&mut self, time: Duration) {
        if self.pending_time.is_none() {
            self.pending_time = Some(time);
            self.latest = time;
            open_line(&mut self.pending_line, time, "o");
        }
    }

    /// Writes the held-back output event, if any.
    fn flush(&mut self, out: &mut String) {
        if self.pending_time.take().is_none() {
            return;
        }
        close_line(&mut self.pending_line);
        if out.is_empty() {
            // Hand the line over without copying it; keep the caller's buffer to reuse.
            std::mem::swap(out, &mut self.pending_line);
        } else {
            out.push_str(&self.pending_line);
        }
        self.pending_line.clear();
        self.pending_bytes = 0;
    }

    /// The time since the start of `at`, never before the latest event.
    fn time_of(&self, at: DateTime<Utc>) -> Duration {
        self.elapsed(at).max(self.latest)
    }

    /// The time since the start of `at`, to the microsecond the format carries; zero for
    /// an instant before the start, [`MAX_EVENT_TIME`] for one absurdly far after it.
    fn elapsed(&self, at: DateTime<Utc>) -> Duration {
        let micros = at
            .signed_duration_since(self.start)
            .num_microseconds()
            .unwrap_or(i64::MAX);
        Duration::from_micros(u64::try_from(micros).unwrap_or(0)).min(MAX_EVENT_TIME)
    }
}

/// The two streams a session prints on.
#[derive(Debug, Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}

/// Appends a whole event line whose data is `text`.
pub(super) fn write_text_event(out: &mut String, time: Duration, code: &str, text: &str) {
    open_line(out, time, code);
    escape_json_into(out, text);
    close_line(out);
}

/// Starts an event line: `[SECONDS,"CODE","`.
pub(super) fn open_line(out: &mut String, time: Duration, code: &str) {
    // Whole microseconds, printed from integers: no float rounding in the file.
    let _ = write!(
        out,
        "[{}.{:06},\"{}\",\"",
        time.as_secs(),
        time.subsec_micros(),
        code
    );
}

/// Ends an event line opened by [`open_line`].
pub(super) fn close_line(out: &mut String) {
    out.push_str("\"]\n");
}

/// What each byte becomes inside a JSON string: `None` for itself, else its escape.
/// Only `"`, `\\` and control characters need one (RFC 8259); the short forms are the
/// ones serde_json writes, so the lines read the same as any other JSON.
fn escape_of(byte: u8) -> Option<&'static str> {
    /// `\u00XX` for each control character, in order.
    const CONTROL: [&str; 32] = [
        "\\u0000", "\\u0001", "\\u0002", "\\u0003", "\\u0004", "\\u0005", "\\u0006", "\\u0007",
        "\\b", "\\t", "\\n", "\\u000b", "\\f", "\\r", "\\u000e", "\\u000f", "\\u0010", "\\u0011",
        "\\u0012", "\\u0013", "\\u0014", "\\u0015", "\\u0016", "\\u0017", "\\u0018", "\\u0019",
        "\\u001a", "\\u001b", "\\u001c", "\\u001d", "\\u001e", "\\u001f",
    ];
    match byte {
        b'"' => Some("\\\""),
        b'\\' => Some("\\\\"),
        _ => CONTROL.get(usize::from(byte)).copied(),
    }
}

/// Appends `text` escaped as the inside of a JSON string, copying the runs of bytes
/// between escapes whole.
pub(super) fn escape_json_into(out: &mut String, text: &str) {
    let bytes = text.as_bytes();
    let mut run_start = 0;
    let mut index = 0;
    while index < bytes.len() {
        // Terminal output needs an escape every few dozen bytes (`\r\n`, ESC): find the
        // next one 8 bytes at a time.
        if let Some(word) = bytes.get(index..index + 8) {
            let word = u64::from_le_bytes(word.try_into().unwrap_or_default());
            let found = needs_escape(word);
            if found == 0 {
                index += 8;
                continue;
            }
            index += (found.trailing_zeros() / 8) as usize;
        }
        let byte = bytes.get(index).copied().unwrap_or_default();
        if let Some(escape) = escape_of(byte) {
            // Every byte that needs escaping is ASCII, so both ends of the run are
            // character boundaries.
            out.push_str(text.get(run_start..index).unwrap_or_default());
            out.push_str(escape);
            run_start = index + 1;
        }
        index += 1;
    }
    out.push_str(text.get(run_start..).unwrap_or_default());
}

/// The high bit of each byte of `word` (read little-endian) that needs a JSON escape: a
/// control character, `"` or `\\`. Exact: no byte carries into its neighbour, since
/// each sum below stays under 0x100.
fn needs_escape(word: u64) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const ONES: u64 = 0x0101_0101_0101_0101;
    // Non-ASCII bytes (high bit set) never need an escape.
    let ascii = !word & HIGH;
    let low = word & LOW7;
    // b < 0x20 exactly when b + 0x60 stays below 0x80.
    let control = !(low + ONES * 0x60) & ascii;
    // b == c exactly when (b ^ c) + 0x7f stays below 0x80, for ASCII b and c.
    let equal = |c: u8| !((word ^ (ONES * u64::from(c))) & LOW7).wrapping_add(LOW7) & ascii;
    control | equal(b'"') | equal(b'\\')
}
