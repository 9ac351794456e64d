//! What the terminal showed: a recording's output rendered through a terminal emulator.
//!
//! Raw output is text interleaved with escape sequences and cursor movement, so the raw
//! bytes are the wrong thing to search or print: `hel\x1b[1Clo` shows as one word with
//! a gap, `\x1b[31m` shows nothing at all, and a line redrawn ten times was seen once.
//! Output is fed to [`avt`] (the terminal emulator behind asciinema's player) at the
//! recording's size, following its resizes, and:
//! - [`transcript`] is the plain text that scrolled by, then the final screen: what a
//!   report quotes;
//! - [`grep`] finds text as it stood on the screen after some output event, including
//!   text put together by cursor movement, and never inside an escape sequence.

use crate::cast::{EventKind, Recording};
use avt::observer::{DirtyRows, Transcript};
use avt::{Line, Observation, Observer, Terminal};
use std::collections::HashMap;
use std::time::Duration;

/// The most cells a rendered screen may have: a real terminal is far smaller
/// (250x70 is 17,500), and a crafted recording must not make us allocate gigabytes.
pub const MAX_CELLS: u64 = 1_000_000;

/// Why a recording cannot be rendered or searched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScreenError {
    /// The header or a resize event gives a terminal too large to render.
    #[error(
        "the recording's terminal is {cols}x{rows}, too large to render (at most \
         {MAX_CELLS} cells); the recording is likely damaged: check it with `asciinema cat`"
    )]
    TooLarge {
        /// Columns asked for.
        cols: u32,
        /// Rows asked for.
        rows: u32,
    },
    /// [`grep`] was given nothing to look for.
    #[error("the search text is empty: give the text to look for")]
    EmptyNeedle,
}

/// Text found on the screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    /// When it appeared: the time of the output event after which it was on the screen.
    pub time: Duration,
    /// The whole line it is on, as shown (soft-wrapped rows joined, trailing blanks
    /// trimmed).
    pub line: String,
}

/// The plain text of a session: each line as it scrolled off the top of the terminal,
/// then what was left on the screen at the end, one line per `\n`.
///
/// Soft-wrapped rows are joined into the line that was printed, a cleared screen's text
/// is kept (clearing moves it to history), and colours and cursor movement are gone.
/// What a full-screen program (an editor, `top`) drew on the alternate screen is not
/// history and is left out, as a terminal's scrollback leaves it out. Markers are not
/// text; they are in [`Recording::events`] for the caller to add.
pub fn transcript(recording: &Recording) -> Result<String, ScreenError> {
    let mut terminal = terminal_for(recording)?;
    let mut observer = Transcript::new();
    let mut lines = Vec::new();
    for event in &recording.events {
        match &event.kind {
            EventKind::Output(text) => {
                lines.extend(terminal.feed_with(text.as_str(), &mut observer));
            }
            EventKind::Resize { cols, rows } => {
                let (cols, rows) = checked_size(*cols, *rows)?;
                lines.extend(terminal.resize_with(cols, rows, &mut observer));
            }
            _ => {}
        }
    }
    lines.extend(observer.finish(&terminal));
    let mut text = String::new();
    for line in lines {
        text.push_str(&line);
        text.push('\n');
    }
    Ok(text)
}

/// Every time `needle` appeared on the screen, with the line it appeared on.
///
/// The screen is looked at after each output event (the writer's coalesced batches),
/// so text that was drawn and erased again within one event is not seen, as a person
/// watching would not have seen it either. Text that stays on the screen is found once,
/// when it appears, not again when it scrolls, when more is typed on its line, or when
/// something else on the screen changes; it is found again if it appears anew.
pub fn grep(recording: &Recording, needle: &str) -> Result<Vec<Match>, ScreenError> {
    if needle.is_empty() {
        return Err(ScreenError::EmptyNeedle);
    }
    let mut terminal = terminal_for(recording)?;
    let mut search = Search::new(needle);
    for event in &recording.events {
        match &event.kind {
            EventKind::Output(text) => {
                let dirty = terminal.feed_with(text.as_str(), &mut search.changes);
                search.look(&terminal, &dirty, event.time);
            }
            EventKind::Resize { cols, rows } => {
                let (cols, rows) = checked_size(*cols, *rows)?;
                terminal.resize_with(cols, rows, &mut search.changes);
                // Reflow can move and rewrite every row: read them all again.
                let all: Vec<usize> = (0..rows).collect();
                search.look(&terminal, &all, event.time);
            }
            _ => {}
        }
    }
    Ok(search.matches)
}

/// A terminal of the recording's starting size, without scrollback: lines leaving the
/// screen go to the observers, not to memory.
fn terminal_for(recording: &Recording) -> Result<Terminal, ScreenError> {
    let (cols, rows) = checked_size(recording.header.width, recording.header.height)?;
    // `checked_size` returns positive sizes, which is all `Terminal::new` asks.
    Terminal::new(cols, rows).map_err(|_| ScreenError::TooLarge {
        cols: recording.header.width,
        rows: recording.header.height,
    })
}

/// A size to render at: zero becomes one (as terminals treat it), too large is an error.
fn checked_size(cols: u32, rows: u32) -> Result<(usize, usize), ScreenError> {
    let (c, r) = (u64::from(cols.max(1)), u64::from(rows.max(1)));
    if c * r > MAX_CELLS {
        return Err(ScreenError::TooLarge { cols, rows });
    }
    Ok((c as usize, r as usize))
}

/// What one feed changed: the rows it dirtied, and the lines it scrolled off the top.
#[derive(Default)]
struct Changes {
    /// Visible rows that may have changed.
    dirty: DirtyRows,
    /// A soft-wrapped line still scrolling off, row by row.
    leaving: String,
    /// Lines that scrolled off the top, whole.
    left: Vec<String>,
}

impl Observer for Changes {
    type Output = Vec<usize>;

    fn begin(&mut self, context: &mut Observation<'_>) {
        self.dirty.begin(context);
    }

    fn resized(&mut self, cols: usize, rows: usize) {
        self.dirty.resized(cols, rows);
    }

    fn dirty(&mut self, rows: std::ops::Range<usize>) {
        self.dirty.dirty(rows);
    }

    fn evicted(&mut self, _: &mut Observation<'_>, line: &Line) {
        self.leaving.extend(line.chars());
        if !line.is_wrapped() {
            self.left.push(self.leaving.trim_end().to_owned());
            self.leaving.clear();
        }
    }

    fn end(&mut self, context: &mut Observation<'_>) -> Vec<usize> {
        self.dirty.end(context)
    }
}

/// The state of a [`grep`]: what the screen showed at the last look.
struct Search<'n> {
    needle: &'n str,
    changes: Changes,
    /// The text and soft-wrap flag of each visible row at the last look.
    rows: Vec<(String, bool)>,
    /// Lines on the screen at the last look that contained the needle, by first row.
    shown: Vec<(usize, String)>,
    matches: Vec<Match>,
}

impl<'n> Search<'n> {
    fn new(needle: &'n str) -> Self {
        Search {
            needle,
            changes: Changes::default(),
            rows: Vec::new(),
            shown: Vec::new(),
            matches: Vec::new(),
        }
    }

    /// Looks at the screen after a change to `dirty` rows, recording what newly shows
    /// the needle.
    fn look(&mut self, terminal: &Terminal, dirty: &[usize], time: Duration) {
        let left = std::mem::take(&mut self.changes.left);
        if dirty.is_empty() && left.is_empty() {
            return;
        }
        let screen = terminal.screen();
        self.rows
            .resize(screen.visible_lines().len(), (String::new(), false));
        for &row in dirty {
            if let (Some(line), Some(cached)) = (screen.line(row), self.rows.get_mut(row)) {
                *cached = (line.text(), line.is_wrapped());
            }
        }

        // Lines seen at the last look count as seen while they stay anywhere on the
        // screen, or until they scroll off.
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (_, line) in &self.shown {
            *seen.entry(line.as_str()).or_default() += 1;
        }
        let mut new = Vec::new();
        for line in &left {
            if line.contains(self.needle) && !take_one(&mut seen, line) {
                new.push(line.clone());
            }
        }

        let mut shown = Vec::new();
        let mut logical = String::new();
        let mut first_row = 0;
        for (row, (text, wrapped)) in self.rows.iter().enumerate() {
            if logical.is_empty() {
                first_row = row;
            }
            logical.push_str(text);
            if *wrapped && row + 1 < self.rows.len() {
                continue;
            }
            let line = logical.trim_end();
            if line.contains(self.needle) {
                let continued = self.shown.iter().any(|(start, before)| {
                    *start == first_row
                        && (line.starts_with(before.as_str()) || before.starts_with(line))
                });
                if !take_one(&mut seen, line) && !continued {
                    new.push(line.to_owned());
                }
                shown.push((first_row, line.to_owned()));
            }
            logical.clear();
        }
        self.shown = shown;
        self.matches
            .extend(new.into_iter().map(|line| Match { time, line }));
    }
}

/// Counts one sighting of `line` off `seen`; false if there was none left.
fn take_one(seen: &mut HashMap<&str, usize>, line: &str) -> bool {
    match seen.get_mut(line) {
        Some(count) if *count > 0 => {
            *count -= 1;
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests;
