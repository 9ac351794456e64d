//! # latch-recorder: session recordings, pure
//!
//! Everything a recording is, without touching a file, a socket or the clock: the caller
//! (the broker) passes bytes and times in, and writes out what comes back.
//!
//! # Layout
//! - [`utf8`]: re-joining multibyte characters split across SSH packets; invalid bytes
//!   replaced the same way every time.
//! - [`cast`]: asciicast v2 header and events (`o`, `i`, `r`, `m`), the streaming writer
//!   with coalescing, and the reader.
//! - [`replay`]: timing for playback (`--speed`, `--idle-limit`).
//! - [`screen`]: rendering output through a terminal emulator (`avt`) for search and
//!   plain-text transcripts.
//! - [`manifest`]: what a sealed recording vouches for.
//! - [`seal`]: signing and verifying manifests as SSH signatures (`ssh-keygen -Y verify`).
//! - [`sftp`]: reading SFTP requests out of a channel's client bytes, for metadata recordings.
#![forbid(unsafe_code)]

pub mod cast;
pub mod manifest;
pub mod replay;
pub mod screen;
pub mod seal;
pub mod sftp;
pub mod utf8;
