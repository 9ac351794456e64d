//! The events the broker appends to its log. Each is a fact, already decided: applying one
//! to the [`crate::State`] never consults settings or the clock, so replaying the log always
//! rebuilds the same state even after the config changed.
//!
//! Serialized adjacently tagged, `{"type": "...", "data": {...}}`, with the tag first so a
//! reader can dispatch without buffering (replay of a million events must stay fast).

use crate::grant::GrantId;
use crate::pattern::HostPattern;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// A request was made (also for break-glass, auto-approved roles and extensions).
    Requested(Requested),
    /// A pending request was approved (by a person, or by latch for auto-approve and
    /// break-glass). For an extension, `expires_at` is the parent grant's new expiry.
    Approved(Approved),
    Denied {
        id: GrantId,
        by: String,
        reason: String,
    },
    Cancelled {
        id: GrantId,
        by: String,
    },
    Revoked {
        id: GrantId,
        by: String,
        reason: Option<String>,
    },
    /// A pending request timed out, or an approved grant reached its expiry. `due` is when
    /// it fell due, which on a restart after downtime is earlier than the line's time.
    Expired {
        id: GrantId,
        due: DateTime<Utc>,
    },
    /// A user was locked out: every grant and standing role stops working until unlocked.
    Locked {
        user: String,
        by: String,
        reason: String,
    },
    Unlocked {
        user: String,
        by: String,
    },
    /// Audit only: an authentication attempt with a key no user owns.
    AuthRejected {
        fingerprint: String,
        source: String,
        login: String,
    },
    /// Audit only: the broker started with this config (SHA-256 of the file text).
    BrokerStarted {
        config_sha256: String,
        version: String,
        /// False when `[recordings] enabled = false`: sessions are not recorded.
        #[serde(default = "yes")]
        recording: bool,
    },
    /// A connection to a target was allowed; recorded before any certificate is minted.
    SessionStarted(crate::session::SessionStarted),
    /// The upstream connection is up: which certificate it used.
    SessionConnected {
        id: crate::session::SessionId,
        address: String,
        cert_serial: u64,
        key_id: String,
    },
    /// A connection to a target was refused by policy.
    SessionDenied {
        user: String,
        login: String,
        host: String,
        source: String,
        reason: String,
    },
    /// Someone asked for a live session to be cut.
    SessionKilled {
        id: crate::session::SessionId,
        by: String,
        reason: Option<String>,
    },
    /// A session ended, with how and its totals.
    SessionEnded(crate::session::SessionEnded),
    /// A channel's recording was sealed: its manifest signed. The hashes put the recording
    /// under the log's hash chain, so altering it later breaks two independent checks.
    RecordingSealed {
        session: crate::session::SessionId,
        /// The recording's name (`s17-c0`).
        recording: String,
        /// SHA-256 of the `.cast` (None for metadata-only recordings).
        cast_sha256: Option<String>,
        /// SHA-256 of the signed manifest bytes.
        manifest_sha256: String,
        /// False when sealed after a crash with what was on disk.
        complete: bool,
    },
    /// A recording was deleted (retention).
    RecordingDeleted {
        recording: String,
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Requested {
    pub id: GrantId,
    pub user: String,
    pub role: String,
    pub hosts: HostPattern,
    pub reason: Option<String>,
    pub ticket: Option<String>,
    /// After capping.
    #[serde(with = "crate::duration::serde_human")]
    pub duration: Duration,
    #[serde(with = "crate::duration::serde_human_opt", default)]
    pub capped_from: Option<Duration>,
    pub start: Option<DateTime<Utc>>,
    /// When the request times out if nobody approves it.
    pub approval_deadline: DateTime<Utc>,
    pub break_glass: bool,
    pub extends: Option<GrantId>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approved {
    pub id: GrantId,
    /// The approver, or `latch` for auto-approve and break-glass.
    pub by: String,
    pub hosts: Option<HostPattern>,
    #[serde(with = "crate::duration::serde_human")]
    pub duration: Duration,
    pub reason: Option<String>,
    pub starts_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

fn yes() -> bool {
    true
}

impl Event {
    /// The event's type tag, as in the log (`requested`, `approved`, ...).
    pub fn kind(&self) -> &'static str {
        // Must agree with the serde tags (`rename_all = "snake_case"`); a test checks it.
        match self {
            Event::Requested(_) => "requested",
            Event::Approved(_) => "approved",
            Event::Denied { .. } => "denied",
            Event::Cancelled { .. } => "cancelled",
            Event::Revoked { .. } => "revoked",
            Event::Expired { .. } => "expired",
            Event::Locked { .. } => "locked",
            Event::Unlocked { .. } => "unlocked",
            Event::AuthRejected { .. } => "auth_rejected",
            Event::BrokerStarted { .. } => "broker_started",
            Event::SessionStarted(_) => "session_started",
            Event::SessionConnected { .. } => "session_connected",
            Event::SessionDenied { .. } => "session_denied",
            Event::SessionKilled { .. } => "session_killed",
            Event::SessionEnded(_) => "session_ended",
            Event::RecordingSealed { .. } => "recording_sealed",
            Event::RecordingDeleted { .. } => "recording_deleted",
        }
    }
    /// The grant this event concerns, if any.
    pub fn grant_id(&self) -> Option<GrantId> {
        match self {
            Event::Requested(r) => Some(r.id),
            Event::Approved(a) => Some(a.id),
            Event::Denied { id, .. }
            | Event::Cancelled { id, .. }
            | Event::Revoked { id, .. }
            | Event::Expired { id, .. } => Some(*id),
            Event::Locked { .. }
            | Event::Unlocked { .. }
            | Event::AuthRejected { .. }
            | Event::BrokerStarted { .. }
            | Event::SessionConnected { .. }
            | Event::SessionDenied { .. }
            | Event::SessionKilled { .. }
            | Event::SessionEnded(_)
            | Event::RecordingSealed { .. }
            | Event::RecordingDeleted { .. } => None,
            Event::SessionStarted(s) => match s.by {
                crate::decision::AllowedBy::Grant(id) => Some(id),
                crate::decision::AllowedBy::StandingRole(_) => None,
            },
        }
    }
}
