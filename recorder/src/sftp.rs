//! Reading file operations out of an sftp channel, for its metadata recording.
//!
//! [`SftpObserver`] is fed both directions of an `sftp` subsystem channel, in whatever chunks
//! the SSH layer delivered them, and turns SFTP version 3 (what OpenSSH speaks) into
//! [`SftpOp`]s: `open`, `remove`, `rename`, `mkdir`, `setstat`, ... each with its paths and the
//! server's answer. Reads and writes are not recorded one packet at a time (a copy is
//! thousands of them): they are summed per open file and reported on its `close`, and so are
//! the entries listed from a directory.
//!
//! Handles are the server's: an `open` request carries a path, the server's `SSH_FXP_HANDLE`
//! reply to that request id carries the handle, and later requests name only the handle. So
//! both directions are needed to say which file a `close` closed.
//!
//! # Never trusted
//! The bytes come from the network. The observer never allocates more than it was given,
//! buffers at most one packet of up to [`MAX_PACKET`] bytes per direction (and only the
//! header of a read or write, whatever its size), and tracks at most [`MAX_PENDING`] requests
//! awaiting an answer and [`MAX_HANDLES`] open handles. A stream that does not frame as SFTP
//! is reported once, as an op named `unparseable` saying why, and not read further.

use crate::manifest::{clip, text};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};

#[cfg(test)]
mod tests;
mod wire;

use wire::*;

/// The longest SFTP packet the observer accepts. OpenSSH's `sftp-server` refuses anything
/// over 256 KiB; this is generous beyond that, and a length above it means the stream is not
/// SFTP (or is hostile), so reading stops there.
pub const MAX_PACKET: u32 = 1 << 20;

/// Requests awaiting their answer that are tracked; beyond this (a client that never reads
/// its replies), operations are recorded without their result.
pub const MAX_PENDING: usize = 4096;

/// Open handles that are tracked; beyond this, a handle's operations are recorded without
/// its path.
pub const MAX_HANDLES: usize = 4096;

/// Paths and names longer than this are clipped (Linux's `PATH_MAX` is 4096).
const MAX_PATH: usize = 4096;

/// SFTP handles are at most 256 bytes (draft-ietf-secsh-filexfer-02, section 3).
const MAX_HANDLE: usize = 256;

/// One file operation on an sftp channel. Absent fields are left out of the JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SftpOp {
    /// When the client sent the request.
    #[serde(with = "crate::manifest::millis")]
    pub at: DateTime<Utc>,
    /// `open`, `close`, `opendir`, `remove`, `rename`, `mkdir`, `rmdir`, `stat`, `lstat`,
    /// `fstat`, `setstat`, `fsetstat`, `realpath`, `readlink`, `symlink`, an extension's name
    /// (`posix-rename@openssh.com`, ...), or `unparseable` when reading stopped.
    pub op: String,
    /// The path operated on (for a handle, the path it was opened with).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The second path, in the order the client sent them: the new name of a `rename`; for
    /// `symlink`, OpenSSH sends the link's target first and the link's own path second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path2: Option<String>,
    /// For `open`, the mode asked for: `read,write,append,creat,trunc,excl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flags: Option<String>,
    /// Attributes set (`setstat`, `mkdir`, `open`): `size=0,uid=0,gid=0,mode=0644,mtime=...`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attrs: Option<String>,
    /// For the `close` of a file: bytes read from it while it was open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_read: Option<u64>,
    /// For the `close` of a file: bytes written to it (that the server acknowledged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_written: Option<u64>,
    /// For the `close` of a directory: entries listed from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entries: Option<u64>,
    /// The server's answer: `ok`, or the status (`no_such_file`, `permission_denied`,
    /// `failure`, ...); `channel_ended` for a handle still open when the channel closed;
    /// for `unparseable`, why. Absent when no answer was seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
}

impl SftpOp {
    fn new(at: DateTime<Utc>, op: &str) -> SftpOp {
        SftpOp {
            at,
            op: op.to_owned(),
            path: None,
            path2: None,
            flags: None,
            attrs: None,
            bytes_read: None,
            bytes_written: None,
            entries: None,
            result: None,
        }
    }

    /// How much text this op holds, for the manifest's budget.
    pub(crate) fn text_len(&self) -> usize {
        [
            Some(&self.op),
            self.path.as_ref(),
            self.path2.as_ref(),
            self.flags.as_ref(),
            self.attrs.as_ref(),
            self.result.as_ref(),
        ]
        .into_iter()
        .flatten()
        .map(String::len)
        .sum()
    }
}

/// Which way bytes were going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    ClientToServer,
    ServerToClient,
}

/// What a request id is waiting for.
#[derive(Debug)]
enum Pending {
    /// An operation to record once its answer arrives.
    Op(SftpOp),
    /// An `open` or `opendir`, whose handle reply names a handle for `path`.
    Open { op: SftpOp, dir: bool },
    /// A `close`; its answer ends the handle.
    Close { op: SftpOp, handle: Vec<u8> },
    /// A read; the data reply's length is added to the handle.
    Read { handle: Vec<u8> },
    /// A write of `len` bytes, added to the handle once the server says `ok`.
    Write { handle: Vec<u8>, len: u64 },
    /// A directory read; the names reply's count is added to the handle.
    Readdir { handle: Vec<u8> },
}

/// An open file or directory, by the server's handle.
#[derive(Debug)]
struct Handle {
    path: String,
    dir: bool,
    bytes_read: u64,
    bytes_written: u64,
    entries: u64,
}

impl Handle {
    /// Put this handle's totals on its `close`.
    fn fill_close(&self, op: &mut SftpOp) {
        op.path = Some(self.path.clone());
        if self.dir {
            op.entries = Some(self.entries);
        } else {
            op.bytes_read = Some(self.bytes_read);
            op.bytes_written = Some(self.bytes_written);
        }
    }
}

/// Turns both directions of an sftp channel into file operations. See the module
/// documentation. Feed it only the channel's data, not its extended data (stderr).
#[derive(Debug, Default)]
pub struct SftpObserver {
    client: Framer,
    server: Framer,
    /// Set once the stream stopped being readable; nothing more is parsed.
    stopped: bool,
    client_version: Option<u32>,
    /// Requests awaiting their answer, by request id. An id can be reused before its first
    /// answer has been seen (OpenSSH's client does, across a transfer and the next request),
    /// and the server answers in order, so each id holds a queue.
    pending: HashMap<u32, VecDeque<Pending>>,
    /// How many requests `pending` holds in all, against [`MAX_PENDING`].
    pending_count: usize,
    handles: HashMap<Vec<u8>, Handle>,
    /// Ops completed by the current call.
    out: Vec<SftpOp>,
}

impl SftpObserver {
    /// An observer for a channel that has just been granted the `sftp` subsystem.
    pub fn new() -> SftpObserver {
        SftpObserver::default()
    }

    /// Bytes the client sent (requests), at `at`. Returns the operations they completed.
    pub fn client_bytes(&mut self, at: DateTime<Utc>, bytes: &[u8]) -> Vec<SftpOp> {
        self.feed(Direction::ClientToServer, at, bytes)
    }

    /// Bytes the server sent (answers), at `at`. Returns the operations they completed.
    pub fn server_bytes(&mut self, at: DateTime<Utc>, bytes: &[u8]) -> Vec<SftpOp> {
        self.feed(Direction::ServerToClient, at, bytes)
    }

    /// The channel closed at `at`: the operations still waiting for an answer (without one),
    /// and a `close` with its totals for every handle left open (result `channel_ended`).
    pub fn finish(mut self, at: DateTime<Utc>) -> Vec<SftpOp> {
        let mut pending: Vec<(u32, VecDeque<Pending>)> = self.pending.drain().collect();
        pending.sort_by_key(|(id, _)| *id);
        for p in pending.into_iter().flat_map(|(_, queue)| queue) {
            match p {
                Pending::Op(op) | Pending::Open { op, .. } | Pending::Close { op, .. } => {
                    self.out.push(op)
                }
                Pending::Read { .. } | Pending::Write { .. } | Pending::Readdir { .. } => {}
            }
        }
        let mut handles: Vec<Handle> = self.handles.into_values().collect();
        handles.sort_by(|a, b| a.path.cmp(&b.path));
        for h in handles {
            let mut op = SftpOp::new(at, "close");
            h.fill_close(&mut op);
            op.result = Some("channel_ended".to_owned());
            self.out.push(op);
        }
        self.out
    }

    fn feed(&mut self, dir: Direction, at: DateTime<Utc>, bytes: &[u8]) -> Vec<SftpOp> {
        if self.stopped {
            return Vec::new();
        }
        // The framer borrows its own buffer while handing out packets, so it is taken out
        // of `self` for the call.
        let mut framer = std::mem::take(match dir {
            Direction::ClientToServer => &mut self.client,
            Direction::ServerToClient => &mut self.server,
        });
        let mut problem = None;
        let framed = framer.feed(bytes, |packet| {
            if problem.is_some() {
                return;
            }
            let r = match dir {
                Direction::ClientToServer => self.request(at, packet),
                Direction::ServerToClient => self.answer(packet),
            };
            problem = r.err();
        });
        *match dir {
            Direction::ClientToServer => &mut self.client,
            Direction::ServerToClient => &mut self.server,
        } = framer;
        if let Some(reason) = problem.or(framed.err()) {
            let side = match dir {
                Direction::ClientToServer => "client",
                Direction::ServerToClient => "server",
            };
            let mut op = SftpOp::new(at, "unparseable");
            op.result = Some(clip(
                &format!("{reason} (from the {side}); operations after this are not recorded"),
                MAX_PATH,
            ));
            self.out.push(op);
            self.stopped = true;
        }
        std::mem::take(&mut self.out)
    }

    /// Remember what a request id waits for, or if too many are waiting, record it now.
    fn wait(&mut self, id: u32, pending: Pending) {
        if self.pending_count >= MAX_PENDING {
            if let Pending::Op(op) | Pending::Open { op, .. } | Pending::Close { op, .. } = pending
            {
                self.out.push(op);
            }
            return;
        }
        self.pending_count += 1;
        self.pending.entry(id).or_default().push_back(pending);
    }

    /// The oldest request awaiting an answer under `id`.
    fn answered(&mut self, id: u32) -> Option<Pending> {
        let queue = self.pending.get_mut(&id)?;
        let pending = queue.pop_front();
        if queue.is_empty() {
            self.pending.remove(&id);
        }
        if pending.is_some() {
            self.pending_count -= 1;
        }
        pending
    }

    fn handle_path(&self, handle: &[u8]) -> Option<String> {
        self.handles.get(handle).map(|h| h.path.clone())
    }

    /// One client request.
    fn request(&mut self, at: DateTime<Utc>, packet: Packet<'_>) -> Result<(), String> {
        let mut f = Fields(packet.body);
        let Some(kind) = f.u8() else {
            return Ok(());
        };
        if kind == FXP_INIT {
            self.client_version = f.u32();
            return Ok(());
        }
        let name = match request_name(kind) {
            Some(name) => name,
            None => {
                let mut op = SftpOp::new(at, &format!("type-{kind}"));
                op.result = Some("unknown request type".to_owned());
                self.out.push(op);
                return Ok(());
            }
        };
        let Some(id) = f.u32() else {
            self.malformed(at, name);
            return Ok(());
        };
        if self
            .parse_request(at, kind, name, id, &mut f, packet.len)
            .is_none()
        {
            self.malformed(at, name);
        }
        Ok(())
    }

    /// A request that framed but whose fields did not parse; the server will refuse it too.
    fn malformed(&mut self, at: DateTime<Utc>, name: &str) {
        let mut op = SftpOp::new(at, name);
        op.result = Some("malformed".to_owned());
        self.out.push(op);
    }

    fn parse_request(
        &mut self,
        at: DateTime<Utc>,
        kind: u8,
        name: &str,
        id: u32,
        f: &mut Fields<'_>,
        packet_len: u32,
    ) -> Option<()> {
        let mut op = SftpOp::new(at, name);
        match kind {
            FXP_OPEN => {
                op.path = Some(f.path()?);
                op.flags = Some(open_flags(f.u32()?));
                op.attrs = f.attrs()?;
                self.wait(id, Pending::Open { op, dir: false });
            }
            FXP_OPENDIR => {
                op.path = Some(f.path()?);
                self.wait(id, Pending::Open { op, dir: true });
            }
            FXP_CLOSE => {
                let handle = f.string()?.to_vec();
                op.path = self.handle_path(&handle);
                self.wait(id, Pending::Close { op, handle });
            }
            FXP_READ => {
                let handle = f.string()?.to_vec();
                self.wait(id, Pending::Read { handle });
            }
            FXP_WRITE => {
                let handle = f.string()?.to_vec();
                let _offset = f.u64()?;
                let _declared = f.u32()?;
                // Only the header was kept: the data is what the packet holds after it.
                let header = 1 + 4 + 4 + handle.len() + 8 + 4;
                let len = u64::from(packet_len).saturating_sub(header as u64);
                self.wait(id, Pending::Write { handle, len });
            }
            FXP_READDIR => {
                let handle = f.string()?.to_vec();
                self.wait(id, Pending::Readdir { handle });
            }
            FXP_FSTAT => {
                op.path = self.handle_path(f.string()?);
                self.wait(id, Pending::Op(op));
            }
            FXP_FSETSTAT => {
                op.path = self.handle_path(f.string()?);
                op.attrs = f.attrs()?;
                self.wait(id, Pending::Op(op));
            }
            FXP_SETSTAT | FXP_MKDIR => {
                op.path = Some(f.path()?);
                op.attrs = f.attrs()?;
                self.wait(id, Pending::Op(op));
            }
            FXP_RENAME | FXP_SYMLINK => {
                op.path = Some(f.path()?);
                op.path2 = Some(f.path()?);
                self.wait(id, Pending::Op(op));
            }
            FXP_EXTENDED => {
                let ext = text(f.string()?, MAX_PATH);
                op.op = ext.clone();
                self.extended(&ext, f, &mut op);
                self.wait(id, Pending::Op(op));
            }
            // lstat, stat, remove, rmdir, realpath, readlink: one path.
            _ => {
                op.path = Some(f.path()?);
                self.wait(id, Pending::Op(op));
            }
        }
        Some(())
    }

    /// The paths of the OpenSSH extensions that name files; others are recorded by name.
    fn extended(&self, ext: &str, f: &mut Fields<'_>, op: &mut SftpOp) {
        match ext {
            "posix-rename@openssh.com" | "hardlink@openssh.com" => {
                op.path = f.path();
                op.path2 = f.path();
            }
            "statvfs@openssh.com" | "expand-path@openssh.com" => op.path = f.path(),
            "lsetstat@openssh.com" => {
                op.path = f.path();
                op.attrs = f.attrs().flatten();
            }
            "fstatvfs@openssh.com" | "fsync@openssh.com" => {
                op.path = f.string().and_then(|h| self.handle_path(h));
            }
            "copy-data" => {
                let read = f.string().map(<[u8]>::to_vec);
                let _ = (f.u64(), f.u64());
                let write = f.string().map(<[u8]>::to_vec);
                op.path = read.and_then(|h| self.handle_path(&h));
                op.path2 = write.and_then(|h| self.handle_path(&h));
            }
            _ => {}
        }
    }

    /// One server answer.
    fn answer(&mut self, packet: Packet<'_>) -> Result<(), String> {
        let mut f = Fields(packet.body);
        let (Some(kind), Some(id)) = (f.u8(), f.u32()) else {
            return Ok(());
        };
        if kind == FXP_VERSION {
            // `id` is the version here: SSH_FXP_VERSION has no request id.
            let version = self.client_version.map_or(id, |c| c.min(id));
            if version != 3 {
                return Err(format!(
                    "the session negotiated SFTP version {version}, and only version 3 (OpenSSH's) is read"
                ));
            }
            return Ok(());
        }
        let Some(pending) = self.answered(id) else {
            return Ok(());
        };
        let result = match kind {
            FXP_STATUS => f.u32().map_or_else(|| "malformed".to_owned(), status_name),
            FXP_HANDLE | FXP_DATA | FXP_NAME | FXP_ATTRS | FXP_EXTENDED_REPLY => "ok".to_owned(),
            other => format!("reply type {other}"),
        };
        match pending {
            Pending::Op(mut op) => {
                op.result = Some(result);
                self.out.push(op);
            }
            Pending::Open { mut op, dir } => {
                if kind == FXP_HANDLE {
                    let handle = f.string().filter(|h| h.len() <= MAX_HANDLE);
                    if let Some(handle) = handle.filter(|_| self.handles.len() < MAX_HANDLES) {
                        self.handles.insert(
                            handle.to_vec(),
                            Handle {
                                path: op.path.clone().unwrap_or_default(),
                                dir,
                                bytes_read: 0,
                                bytes_written: 0,
                                entries: 0,
                            },
                        );
                    }
                }
                op.result = Some(result);
                self.out.push(op);
            }
            Pending::Close { mut op, handle } => {
                if let Some(h) = self.handles.remove(&handle) {
                    h.fill_close(&mut op);
                }
                op.result = Some(result);
                self.out.push(op);
            }
            Pending::Read { handle } => {
                if kind == FXP_DATA {
                    // Only the header was kept: the data is the rest of the packet.
                    let len = u64::from(packet.len).saturating_sub(1 + 4 + 4);
                    if let Some(h) = self.handles.get_mut(&handle) {
                        h.bytes_read = h.bytes_read.saturating_add(len);
                    }
                }
            }
            Pending::Write { handle, len } => {
                if result == "ok" {
                    if let Some(h) = self.handles.get_mut(&handle) {
                        h.bytes_written = h.bytes_written.saturating_add(len);
                    }
                }
            }
            Pending::Readdir { handle } => {
                if kind == FXP_NAME {
                    if let (Some(count), Some(h)) = (f.u32(), self.handles.get_mut(&handle)) {
                        h.entries = h.entries.saturating_add(u64::from(count));
                    }
                }
            }
        }
        Ok(())
    }
}
