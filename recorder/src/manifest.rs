//! What a sealed recording vouches for: the manifest of one channel.
//!
//! A manifest names the session, the channel within its connection, who connected under
//! which grant, every SSH request on the channel with its time and the target's answer, how
//! the channel ended, its byte counts, the SHA-256 of its `.cast` (for shells and exec
//! commands) or its file operations (for sftp). [`crate::seal`] signs its bytes.
//!
//! # Bytes on disk
//! [`Manifest::to_bytes`] is the one encoding: pretty-printed JSON (two-space indent, fields
//! in the order they are declared here, every field present, `null` when absent) followed by
//! one newline. The signature covers exactly those bytes, stored as the `.manifest.json` file;
//! nothing ever re-serializes a manifest to check it, so a reader may parse it with any JSON
//! library. Times are RFC 3339 UTC to the millisecond, like the event log.
//!
//! # Bounded by construction
//! Everything recorded here comes from the network, so the builder keeps at most
//! [`MAX_REQUESTS`] requests and [`MAX_SFTP_OPS`] file operations (and a byte budget for
//! each), counting what it had to leave out in `requests_omitted` and `sftp_omitted`, and
//! clips each string at a length no real SSH client sends.

use crate::sftp::SftpOp;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

mod builder;
mod channel;
mod request;

pub use builder::{ManifestBuilder, Origin};
pub use channel::{file_transfer_tool, ChannelKind, Forward};
pub use request::{Request, RequestRecord};

/// The `format` of every manifest this crate writes; readers refuse others.
pub const FORMAT: &str = "latch-recording/1";

/// The most requests one manifest keeps; more are counted in `requests_omitted`.
pub const MAX_REQUESTS: usize = 10_000;

/// The most sftp operations one manifest keeps; more are counted in `sftp_omitted`.
pub const MAX_SFTP_OPS: usize = 100_000;

/// The most text (commands, names, paths) the requests of one manifest keep, in bytes.
const REQUEST_TEXT_BUDGET: usize = 4 << 20;

/// The most text (paths, flags) the sftp operations of one manifest keep, in bytes.
const SFTP_TEXT_BUDGET: usize = 16 << 20;

/// An exec command longer than this is clipped: longer than any SSH packet OpenSSH sends.
const MAX_COMMAND: usize = 256 << 10;

/// Any other string from the network (terminal type, names, signal) is clipped here.
const MAX_SHORT_TEXT: usize = 4 << 10;
/// Why a manifest could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The bytes are not a manifest: not JSON, or a field is missing or of the wrong type.
    #[error("this is not a latch recording manifest ({0}); pass the .manifest.json file written next to the .cast")]
    Parse(#[source] serde_json::Error),

    /// The manifest is of a format this version does not read.
    #[error("the manifest's format is {found:?}, but this latch reads only {FORMAT:?}; verify it with the latch version that wrote it, or with `ssh-keygen -Y verify`")]
    Format {
        /// The `format` the manifest declares.
        found: String,
    },

    /// The manifest could not be encoded as JSON (a fault in this crate, not in the input).
    #[error("cannot encode the manifest as JSON: {0}; this is a bug in latch, please report it")]
    Encode(#[source] serde_json::Error),
}

/// The manifest of one recorded channel. See the module documentation for its encoding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// The session (one client connection to one target), e.g. `s17`.
    pub session: String,
    /// The channel's number within the connection, from 0 in the order channels opened.
    pub channel: u32,
    /// What the channel was: `shell`, `exec`, `subsystem:sftp`, `direct-tcpip`, ...
    pub kind: ChannelKind,
    /// The grant that allowed the session, e.g. `g3`; `null` under a standing role.
    pub grant: Option<String>,
    /// The role that allowed the session.
    pub role: String,
    /// The latch user.
    pub user: String,
    /// The login on the target.
    pub login: String,
    /// The target host, as named in the config.
    pub host: String,
    /// The client's address.
    pub source: String,
    /// The serial of the certificate minted for the upstream connection.
    pub cert_serial: u64,
    /// The key id of that certificate (which the target's `sshd` logs).
    pub key_id: String,
    /// When the channel opened.
    #[serde(with = "millis")]
    pub started_at: DateTime<Utc>,
    /// When the channel closed, or for an incomplete recording the last time known.
    #[serde(with = "millis")]
    pub ended_at: DateTime<Utc>,
    /// `false` when the recording was sealed after a crash with whatever had been written.
    pub complete: bool,
    /// Why it ended: `closed`, `revoked`, `expired`, `killed`, `locked`, `broker_restart`, ...
    pub end_cause: String,
    /// For a forwarded port: where it went.
    pub forward: Option<Forward>,
    /// Every SSH request on the channel, in order, up to [`MAX_REQUESTS`].
    pub requests: Vec<RequestRecord>,
    /// Requests left out of `requests` to keep the manifest bounded.
    pub requests_omitted: u64,
    /// The exit status the target sent, if any.
    pub exit_status: Option<u32>,
    /// The signal that ended the remote command, if the target said so (`TERM`, `KILL`...).
    pub exit_signal: Option<String>,
    /// Bytes from the client to the target.
    pub bytes_in: u64,
    /// Bytes from the target to the client.
    pub bytes_out: u64,
    /// The terminal recording; `null` for channels recorded as metadata only.
    pub cast: Option<CastRef>,
    /// For an sftp channel, its file operations in request order.
    pub sftp: Vec<SftpOp>,
    /// File operations left out of `sftp` to keep the manifest bounded.
    pub sftp_omitted: u64,
    /// The other recordings of the same connection known when this one was sealed, by
    /// recording name (`s17-c1`).
    pub linked: Vec<String>,
}

impl Manifest {
    /// The exact bytes to sign and store: see the module documentation.
    pub fn to_bytes(&self) -> Result<Vec<u8>, ManifestError> {
        let mut bytes = serde_json::to_vec_pretty(self).map_err(ManifestError::Encode)?;
        bytes.push(b'\n');
        Ok(bytes)
    }

    /// Parse a manifest's bytes, refusing other formats. This does not check a signature:
    /// use [`crate::seal::verify_recording`] for anything read from disk.
    pub fn from_bytes(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        #[derive(Deserialize)]
        struct Probe {
            format: serde_json::Value,
        }
        // Check the format first, so a future manifest is refused for its version rather
        // than for whichever new field the parse trips over.
        if let Ok(probe) = serde_json::from_slice::<Probe>(bytes) {
            if probe.format != FORMAT {
                let found = match probe.format {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                return Err(ManifestError::Format { found });
            }
        }
        serde_json::from_slice(bytes).map_err(ManifestError::Parse)
    }

    /// This recording's name: its file names derive from it.
    pub fn name(&self) -> RecordingName {
        RecordingName::new(&self.session, self.channel)
    }

    /// Mark a manifest recovered after a crash (the snapshot the broker kept while the channel
    /// ran, see [`ManifestBuilder::snapshot`]) as sealed incomplete, with the cast as found.
    pub fn into_incomplete(
        mut self,
        ended_at: DateTime<Utc>,
        end_cause: &str,
        cast: Option<CastRef>,
    ) -> Manifest {
        self.ended_at = ended_at;
        self.end_cause = clip(end_cause, MAX_SHORT_TEXT);
        self.complete = false;
        if cast.is_some() {
            self.cast = cast;
        }
        self
    }
}

/// A recording's name, `s17-c0` for channel 0 of session `s17`, and the files that carry it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecordingName(String);

impl RecordingName {
    /// The name of channel `channel` of session `session`.
    pub fn new(session: &str, channel: u32) -> RecordingName {
        RecordingName(format!("{session}-c{channel}"))
    }

    /// `s17-c0.cast`: the asciicast.
    pub fn cast_file(&self) -> String {
        format!("{}.cast", self.0)
    }

    /// `s17-c0.manifest.json`: the manifest's bytes, exactly as signed.
    pub fn manifest_file(&self) -> String {
        format!("{}.manifest.json", self.0)
    }

    /// `s17-c0.manifest.json.sig`: the SSH signature, where `ssh-keygen -Y sign` would put it.
    pub fn signature_file(&self) -> String {
        format!("{}.manifest.json.sig", self.0)
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RecordingName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The `.cast` a manifest vouches for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CastRef {
    /// Its file name, relative to the manifest's directory (`s17-c0.cast`).
    pub file: String,
    /// The SHA-256 of its bytes, lowercase hex.
    pub sha256: String,
    /// Its length in bytes.
    pub bytes: u64,
}

impl CastRef {
    /// Hash a whole cast held in memory. For one written as it goes, use [`CastHasher`].
    pub fn of(file: &str, cast: &[u8]) -> CastRef {
        let mut hasher = CastHasher::new();
        hasher.update(cast);
        hasher.finish(file)
    }
}

/// The SHA-256 and length of a cast, fed with its bytes as they are written (or read back).
#[derive(Debug, Clone, Default)]
pub struct CastHasher {
    sha256: Sha256,
    bytes: u64,
}

impl CastHasher {
    /// A hasher that has seen nothing.
    pub fn new() -> CastHasher {
        CastHasher::default()
    }

    /// Feed the next bytes of the file.
    pub fn update(&mut self, bytes: &[u8]) {
        self.sha256.update(bytes);
        self.bytes = self.bytes.saturating_add(bytes.len() as u64);
    }

    /// The reference to put in the manifest for the file named `file`.
    pub fn finish(self, file: &str) -> CastRef {
        CastRef {
            file: file.to_owned(),
            sha256: hex::encode(self.sha256.finalize()),
            bytes: self.bytes,
        }
    }
}

/// Bytes from the wire as text: invalid UTF-8 replaced, clipped at `max` bytes.
pub(crate) fn text(bytes: &[u8], max: usize) -> String {
    clip(&String::from_utf8_lossy(bytes), max)
}

/// `s` clipped at `max` bytes (on a character boundary), saying how long it was.
pub(crate) fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[clipped: {} bytes in all]", &s[..end], s.len())
}

/// Times as RFC 3339 UTC to the millisecond (`2025-01-02T03:04:05.678Z`), as the event log
/// writes them. Use with `#[serde(with = "crate::manifest::millis")]`.
pub(crate) mod millis {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| serde::de::Error::custom(format!("{s:?} is not an RFC 3339 time: {e}")))
    }
}

#[cfg(test)]
mod tests;
