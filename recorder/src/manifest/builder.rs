//! Filling a manifest while its channel runs.

use super::{
    clip, text, CastRef, ChannelKind, Forward, Manifest, RecordingName, Request, RequestRecord,
    FORMAT, MAX_REQUESTS, MAX_SFTP_OPS, MAX_SHORT_TEXT, REQUEST_TEXT_BUDGET, SFTP_TEXT_BUDGET,
};
use crate::sftp::SftpOp;
use chrono::{DateTime, Utc};

/// Who connected where, under what: the same for every channel of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The session id, e.g. `s17`.
    pub session: String,
    /// The grant, e.g. `g3`; `None` under a standing role.
    pub grant: Option<String>,
    /// The role that allowed the session.
    pub role: String,
    /// The latch user.
    pub user: String,
    /// The login on the target.
    pub login: String,
    /// The target host.
    pub host: String,
    /// The client's address.
    pub source: String,
    /// The upstream certificate's serial.
    pub cert_serial: u64,
    /// The upstream certificate's key id.
    pub key_id: String,
}

/// A manifest being filled while its channel runs. Requests and file operations beyond the
/// bounds (see the module documentation) are counted, not kept.
#[derive(Debug, Clone)]
pub struct ManifestBuilder {
    manifest: Manifest,
    /// Text kept so far in `requests`, against `REQUEST_TEXT_BUDGET`.
    request_text: usize,
    /// Text kept so far in `sftp`, against `SFTP_TEXT_BUDGET`.
    sftp_text: usize,
}

impl ManifestBuilder {
    /// Start the manifest of channel `channel` (numbered from 0 per connection), opened at
    /// `started_at`. A session channel starts as [`ChannelKind::Session`] and becomes a
    /// shell, exec or subsystem when the target accepts such a request.
    pub fn new(
        origin: Origin,
        channel: u32,
        kind: ChannelKind,
        started_at: DateTime<Utc>,
    ) -> ManifestBuilder {
        let Origin {
            session,
            grant,
            role,
            user,
            login,
            host,
            source,
            cert_serial,
            key_id,
        } = origin;
        ManifestBuilder {
            manifest: Manifest {
                format: FORMAT.to_owned(),
                session,
                channel,
                kind,
                grant,
                role,
                user,
                login,
                host,
                source,
                cert_serial,
                key_id,
                started_at,
                ended_at: started_at,
                complete: false,
                end_cause: String::new(),
                forward: None,
                requests: Vec::new(),
                requests_omitted: 0,
                exit_status: None,
                exit_signal: None,
                bytes_in: 0,
                bytes_out: 0,
                cast: None,
                sftp: Vec::new(),
                sftp_omitted: 0,
                linked: Vec::new(),
            },
            request_text: 0,
            sftp_text: 0,
        }
    }

    /// This recording's name (`s17-c0`).
    pub fn name(&self) -> RecordingName {
        self.manifest.name()
    }

    /// The channel's kind so far.
    pub fn kind(&self) -> &ChannelKind {
        &self.manifest.kind
    }

    /// Record where a forwarded port's channel went.
    pub fn forward(&mut self, forward: Forward) {
        self.manifest.forward = Some(forward);
    }

    /// Record a request sent at `at` and the target's answer (`None` if no reply was asked).
    /// An accepted `shell`, `exec` or `subsystem` on a session channel sets its kind.
    pub fn request(&mut self, at: DateTime<Utc>, request: Request, accepted: Option<bool>) {
        if accepted == Some(true) && self.manifest.kind == ChannelKind::Session {
            match &request {
                Request::Shell => self.manifest.kind = ChannelKind::Shell,
                Request::Exec { .. } => self.manifest.kind = ChannelKind::Exec,
                Request::Subsystem { name } => {
                    self.manifest.kind = ChannelKind::Subsystem(name.clone())
                }
                _ => {}
            }
        }
        let len = request.text_len();
        if self.manifest.requests.len() >= MAX_REQUESTS
            || self.request_text.saturating_add(len) > REQUEST_TEXT_BUDGET
        {
            self.manifest.requests_omitted = self.manifest.requests_omitted.saturating_add(1);
            return;
        }
        self.request_text += len;
        self.manifest.requests.push(RequestRecord {
            at,
            request,
            accepted,
        });
    }

    /// Record the exit status the target sent.
    pub fn exit_status(&mut self, status: u32) {
        self.manifest.exit_status = Some(status);
    }

    /// Record the signal the target said ended the command (name without `SIG`).
    pub fn exit_signal(&mut self, signal: &[u8]) {
        self.manifest.exit_signal = Some(text(signal, MAX_SHORT_TEXT));
    }

    /// Count bytes from the client to the target.
    pub fn bytes_in(&mut self, n: u64) {
        self.manifest.bytes_in = self.manifest.bytes_in.saturating_add(n);
    }

    /// Count bytes from the target to the client.
    pub fn bytes_out(&mut self, n: u64) {
        self.manifest.bytes_out = self.manifest.bytes_out.saturating_add(n);
    }

    /// Record file operations (from [`crate::sftp::SftpObserver`]).
    pub fn sftp(&mut self, ops: impl IntoIterator<Item = SftpOp>) {
        for op in ops {
            let len = op.text_len();
            if self.manifest.sftp.len() >= MAX_SFTP_OPS
                || self.sftp_text.saturating_add(len) > SFTP_TEXT_BUDGET
            {
                self.manifest.sftp_omitted = self.manifest.sftp_omitted.saturating_add(1);
                continue;
            }
            self.sftp_text += len;
            self.manifest.sftp.push(op);
        }
    }

    /// Name another recording of the same connection (once each).
    pub fn link(&mut self, other: &RecordingName) {
        let other = other.as_str();
        if other != self.manifest.name().as_str()
            && !self.manifest.linked.iter().any(|l| l == other)
            && self.manifest.linked.len() < MAX_REQUESTS
        {
            self.manifest.linked.push(other.to_owned());
        }
    }

    /// The manifest as it stands, marked incomplete with cause `unsealed` and ending `at`.
    /// The broker may keep this next to an open recording, so that after a crash it can seal
    /// what was known with [`Manifest::into_incomplete`].
    pub fn snapshot(&self, at: DateTime<Utc>) -> Manifest {
        self.clone().end(at, "unsealed", None, false)
    }

    /// The channel closed normally (`end_cause` e.g. `closed`, `revoked`, `killed`): the
    /// complete manifest, with the cast's reference if it was recorded as one.
    pub fn finish(
        self,
        ended_at: DateTime<Utc>,
        end_cause: &str,
        cast: Option<CastRef>,
    ) -> Manifest {
        self.end(ended_at, end_cause, cast, true)
    }

    /// The channel's recording could not be followed to its end (a crash): the manifest of
    /// what there is, marked `complete: false`.
    pub fn finish_incomplete(
        self,
        ended_at: DateTime<Utc>,
        end_cause: &str,
        cast: Option<CastRef>,
    ) -> Manifest {
        self.end(ended_at, end_cause, cast, false)
    }

    fn end(
        self,
        ended_at: DateTime<Utc>,
        end_cause: &str,
        cast: Option<CastRef>,
        complete: bool,
    ) -> Manifest {
        let mut m = self.manifest;
        m.ended_at = ended_at;
        m.end_cause = clip(end_cause, MAX_SHORT_TEXT);
        m.cast = cast;
        m.complete = complete;
        m
    }
}
