//! SFTP version 3 on the wire: framing a byte stream into packets, reading their fields
//! with every bound checked, and the names of types, flags and status codes.

use super::{MAX_HANDLE, MAX_PACKET, MAX_PATH};
use crate::manifest::{clip, text};

/// Of a write request or a data reply, only this much is kept: enough for the type, id,
/// handle, offset and length. The data itself is counted, never stored.
pub(super) const DATA_HEADER_KEEP: usize = 1 + 4 + 4 + MAX_HANDLE + 8 + 4;

// Packet types, SFTP version 3.
pub(super) const FXP_INIT: u8 = 1;
pub(super) const FXP_VERSION: u8 = 2;
pub(super) const FXP_OPEN: u8 = 3;
pub(super) const FXP_CLOSE: u8 = 4;
pub(super) const FXP_READ: u8 = 5;
pub(super) const FXP_WRITE: u8 = 6;
pub(super) const FXP_LSTAT: u8 = 7;
pub(super) const FXP_FSTAT: u8 = 8;
pub(super) const FXP_SETSTAT: u8 = 9;
pub(super) const FXP_FSETSTAT: u8 = 10;
pub(super) const FXP_OPENDIR: u8 = 11;
pub(super) const FXP_READDIR: u8 = 12;
pub(super) const FXP_REMOVE: u8 = 13;
pub(super) const FXP_MKDIR: u8 = 14;
pub(super) const FXP_RMDIR: u8 = 15;
pub(super) const FXP_REALPATH: u8 = 16;
pub(super) const FXP_STAT: u8 = 17;
pub(super) const FXP_RENAME: u8 = 18;
pub(super) const FXP_READLINK: u8 = 19;
pub(super) const FXP_SYMLINK: u8 = 20;
pub(super) const FXP_STATUS: u8 = 101;
pub(super) const FXP_HANDLE: u8 = 102;
pub(super) const FXP_DATA: u8 = 103;
pub(super) const FXP_NAME: u8 = 104;
pub(super) const FXP_ATTRS: u8 = 105;
pub(super) const FXP_EXTENDED: u8 = 200;
pub(super) const FXP_EXTENDED_REPLY: u8 = 201;

/// Splits one direction's byte stream into SFTP packets, whatever the chunking.
#[derive(Debug, Default)]
pub(super) struct Framer {
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
pub(super) struct Packet<'a> {
    pub(super) body: &'a [u8],
    pub(super) len: u32,
}

impl Framer {
    /// How much memory the packet buffer holds, for tests of the bounds.
    #[cfg(test)]
    pub(super) fn buffered_capacity(&self) -> usize {
        self.body.capacity()
    }

    /// Feed bytes, calling `each` with every packet they complete. Stops with the reason if
    /// the stream cannot be SFTP.
    pub(super) fn feed(
        &mut self,
        mut data: &[u8],
        mut each: impl FnMut(Packet<'_>),
    ) -> Result<(), String> {
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
pub(super) struct Fields<'a>(pub(super) &'a [u8]);

impl<'a> Fields<'a> {
    pub(super) fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    pub(super) fn u8(&mut self) -> Option<u8> {
        self.bytes(1).map(|b| b[0])
    }

    pub(super) fn u32(&mut self) -> Option<u32> {
        let b = self.bytes(4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(super) fn u64(&mut self) -> Option<u64> {
        let hi = self.u32()?;
        let lo = self.u32()?;
        Some((u64::from(hi) << 32) | u64::from(lo))
    }

    pub(super) fn string(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()?;
        self.bytes(usize::try_from(n).ok()?)
    }

    pub(super) fn path(&mut self) -> Option<String> {
        self.string().map(|p| text(p, MAX_PATH))
    }

    /// SFTP v3 attributes, described for the record (`None` if none are set).
    pub(super) fn attrs(&mut self) -> Option<Option<String>> {
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
                if parts.len() < 64 {
                    parts.push(format!("ext:{}", text(name, MAX_PATH)));
                }
            }
        }
        // Clipped: a packet of empty extension pairs would otherwise make a long string.
        Some((!parts.is_empty()).then(|| clip(&parts.join(","), MAX_PATH)))
    }
}

/// The op name of a request type, `None` for types SFTP v3 does not define.
pub(super) fn request_name(kind: u8) -> Option<&'static str> {
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
pub(super) fn open_flags(pflags: u32) -> String {
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
pub(super) fn status_name(code: u32) -> String {
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
