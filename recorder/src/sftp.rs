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

/// Of a write request or a data reply, only this much is kept: enough for the type, id,
/// handle, offset and length. The data itself is counted, never stored.
const DATA_HEADER_KEEP: usize = 1 + 4 + 4 + MAX_HANDLE + 8 + 4;

// Packet types, SFTP version 3.
const FXP_INIT: u8 = 1;
const FXP_VERSION: u8 = 2;
const FXP_OPEN: u8 = 3;
const FXP_CLOSE: u8 = 4;
const FXP_READ: u8 = 5;
const FXP_WRITE: u8 = 6;
const FXP_LSTAT: u8 = 7;
const FXP_FSTAT: u8 = 8;
const FXP_SETSTAT: u8 = 9;
const FXP_FSETSTAT: u8 = 10;
const FXP_OPENDIR: u8 = 11;
const FXP_READDIR: u8 = 12;
const FXP_REMOVE: u8 = 13;
const FXP_MKDIR: u8 = 14;
const FXP_RMDIR: u8 = 15;
const FXP_REALPATH: u8 = 16;
const FXP_STAT: u8 = 17;
const FXP_RENAME: u8 = 18;
const FXP_READLINK: u8 = 19;
const FXP_SYMLINK: u8 = 20;
const FXP_STATUS: u8 = 101;
const FXP_HANDLE: u8 = 102;
const FXP_DATA: u8 = 103;
const FXP_NAME: u8 = 104;
const FXP_ATTRS: u8 = 105;
const FXP_EXTENDED: u8 = 200;
const FXP_EXTENDED_REPLY: u8 = 201;

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

/// Splits one direction's byte stream into SFTP packets, whatever the chunking.
#[derive(Debug, Default)]
struct Framer {
    /// The length prefix being read, and how many of its bytes have arrived.
    len_buf: [u8; 4],
    len_have: usize,
    /// The current packet's length, once its prefix is read.
    len: Option<u32>,
    /// Bytes of the current packet not yet seen.
    remaining: u32,
    /// The packet's bytes kept so far (all of it, or the header of a read or write).
    body: Vec<u8>,
    /// How many of the packet's bytes to keep, once its type is known.
    keep: usize,
}

/// A whole packet: what was kept of it, and its full length.
struct Packet<'a> {
    body: &'a [u8],
    len: u32,
}

impl Framer {
    /// Feed bytes, calling `each` with every packet they complete. Stops with the reason if
    /// the stream cannot be SFTP.
    fn feed(&mut self, mut data: &[u8], mut each: impl FnMut(Packet<'_>)) -> Result<(), String> {
        while !data.is_empty() {
            let Some(len) = self.len else {
                let n = (4 - self.len_have).min(data.len());
                self.len_buf[self.len_have..self.len_have + n].copy_from_slice(&data[..n]);
                self.len_have += n;
                data = &data[n..];
                if self.len_have == 4 {
                    let len = u32::from_be_bytes(self.len_buf);
                    if len == 0 || len > MAX_PACKET {
                        return Err(format!(
                            "a packet claims {len} bytes, but SFTP packets are 1 to {MAX_PACKET}"
                        ));
                    }
                    self.len = Some(len);
                    self.remaining = len;
                    self.body.clear();
                    self.keep = 0;
                    self.len_have = 0;
                }
                continue;
            };
            if self.body.is_empty() {
                self.keep = match data[0] {
                    FXP_WRITE | FXP_DATA => DATA_HEADER_KEEP,
                    _ => len as usize,
                };
            }
            let n = (self.remaining as usize).min(data.len());
            let take = n.min(self.keep.saturating_sub(self.body.len()));
            self.body.extend_from_slice(&data[..take]);
            data = &data[n..];
            self.remaining -= n as u32;
            if self.remaining == 0 {
                self.len = None;
                each(Packet {
                    body: &self.body,
                    len,
                });
                // One large packet should not pin its buffer for the channel's life.
                if self.body.capacity() > 64 << 10 {
                    self.body = Vec::new();
                }
            }
        }
        Ok(())
    }
}

/// Reads SFTP fields in order; every read checks the bounds.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.bytes(1).map(|b| b[0])
    }

    fn u32(&mut self) -> Option<u32> {
        let b = self.bytes(4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Option<u64> {
        let hi = self.u32()?;
        let lo = self.u32()?;
        Some((u64::from(hi) << 32) | u64::from(lo))
    }

    fn string(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()?;
        self.bytes(usize::try_from(n).ok()?)
    }

    fn path(&mut self) -> Option<String> {
        self.string().map(|p| text(p, MAX_PATH))
    }

    /// SFTP v3 attributes, described for the record (`None` if none are set).
    fn attrs(&mut self) -> Option<Option<String>> {
        const SIZE: u32 = 0x1;
        const UIDGID: u32 = 0x2;
        const PERMISSIONS: u32 = 0x4;
        const ACMODTIME: u32 = 0x8;
        const EXTENDED: u32 = 0x8000_0000;
        let flags = self.u32()?;
        let mut parts = Vec::new();
        if flags & SIZE != 0 {
            parts.push(format!("size={}", self.u64()?));
        }
        if flags & UIDGID != 0 {
            parts.push(format!("uid={}", self.u32()?));
            parts.push(format!("gid={}", self.u32()?));
        }
        if flags & PERMISSIONS != 0 {
            parts.push(format!("mode={:04o}", self.u32()? & 0o7777));
        }
        if flags & ACMODTIME != 0 {
            parts.push(format!("atime={}", self.u32()?));
            parts.push(format!("mtime={}", self.u32()?));
        }
        if flags & EXTENDED != 0 {
            let count = self.u32()?;
            for _ in 0..count {
                let name = self.string()?;
                self.string()?;
                parts.push(format!("ext:{}", text(name, MAX_PATH)));
            }
        }
        Some((!parts.is_empty()).then(|| parts.join(",")))
    }
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

/// The op name of a request type, `None` for types SFTP v3 does not define.
fn request_name(kind: u8) -> Option<&'static str> {
    Some(match kind {
        FXP_OPEN => "open",
        FXP_CLOSE => "close",
        FXP_READ => "read",
        FXP_WRITE => "write",
        FXP_LSTAT => "lstat",
        FXP_FSTAT => "fstat",
        FXP_SETSTAT => "setstat",
        FXP_FSETSTAT => "fsetstat",
        FXP_OPENDIR => "opendir",
        FXP_READDIR => "readdir",
        FXP_REMOVE => "remove",
        FXP_MKDIR => "mkdir",
        FXP_RMDIR => "rmdir",
        FXP_REALPATH => "realpath",
        FXP_STAT => "stat",
        FXP_RENAME => "rename",
        FXP_READLINK => "readlink",
        FXP_SYMLINK => "symlink",
        FXP_EXTENDED => "extended",
        _ => return None,
    })
}

/// `SSH_FXF_*` open flags as words: `read,write,creat,trunc`.
fn open_flags(pflags: u32) -> String {
    const NAMES: [(u32, &str); 6] = [
        (0x01, "read"),
        (0x02, "write"),
        (0x04, "append"),
        (0x08, "creat"),
        (0x10, "trunc"),
        (0x20, "excl"),
    ];
    let mut words: Vec<String> = NAMES
        .iter()
        .filter(|(bit, _)| pflags & bit != 0)
        .map(|(_, name)| (*name).to_owned())
        .collect();
    let unknown = pflags & !0x3f;
    if unknown != 0 {
        words.push(format!("0x{unknown:x}"));
    }
    words.join(",")
}

/// `SSH_FX_*` status codes as words.
fn status_name(code: u32) -> String {
    match code {
        0 => "ok",
        1 => "eof",
        2 => "no_such_file",
        3 => "permission_denied",
        4 => "failure",
        5 => "bad_message",
        6 => "no_connection",
        7 => "connection_lost",
        8 => "op_unsupported",
        other => return format!("status {other}"),
    }
    .to_owned()
}
