//! A grant: one request for a role on a host pattern, and everything that became of it.
//!
//! States (DESIGN.md): `pending -> approved -> expired | revoked`;
//! `pending -> denied | cancelled | expired` (approval timed out). A break-glass or
//! auto-approved request goes `pending -> approved` in the same instant. The allowed moves are
//! one table, [`GrantStatus::transition`]; anything else is a typed [`IllegalTransition`].

use crate::pattern::HostPattern;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A grant id, shown as `g17`. Sequential per log, so ids are short enough to type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GrantId(pub u64);

impl fmt::Display for GrantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "g{}", self.0)
    }
}

impl std::str::FromStr for GrantId {
    type Err = String;
    /// Accepts `g17`, `G17` and `17`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s.strip_prefix(['g', 'G']).unwrap_or(s);
        // `u64::from_str` alone would also take `+17`; ids are plain digits only.
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "unknown id format: expected an id like g17, got {s:?}"
            ));
        }
        digits.parse().map(GrantId).map_err(|_| {
            format!("unknown id format: expected an id like g17, got {s:?} (too large)")
        })
    }
}

impl Serialize for GrantId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GrantId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantStatus {
    Pending,
    Approved,
    Denied,
    Cancelled,
    Expired,
    Revoked,
}

/// What happens to a grant; the input of the transition table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Approve,
    Deny,
    Cancel,
    Revoke,
    Expire,
}

impl Action {
    /// The verb as a user types it (`approve`, `revoke`...).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Approve => "approve",
            Action::Deny => "deny",
            Action::Cancel => "cancel",
            Action::Revoke => "revoke",
            Action::Expire => "expire",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {action} a grant that is {from}")]
pub struct IllegalTransition {
    pub from: GrantStatus,
    pub action: Action,
}

impl GrantStatus {
    /// The transition table. Every (status, action) pair not listed is illegal.
    pub fn transition(self, action: Action) -> Result<GrantStatus, IllegalTransition> {
        use Action::*;
        use GrantStatus::*;
        match (self, action) {
            (Pending, Approve) => Ok(Approved),
            (Pending, Deny) => Ok(Denied),
            (Pending, Cancel) => Ok(Cancelled),
            (Pending, Expire) => Ok(Expired),
            (Approved, Revoke) => Ok(Revoked),
            (Approved, Expire) => Ok(Expired),
            (from, action) => Err(IllegalTransition { from, action }),
        }
    }
    /// Denied, cancelled, expired and revoked are final.
    pub fn is_final(self) -> bool {
        !matches!(self, GrantStatus::Pending | GrantStatus::Approved)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            GrantStatus::Pending => "pending",
            GrantStatus::Approved => "approved",
            GrantStatus::Denied => "denied",
            GrantStatus::Cancelled => "cancelled",
            GrantStatus::Expired => "expired",
            GrantStatus::Revoked => "revoked",
        }
    }
}

impl fmt::Display for GrantStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of a grant's history, for `show`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub at: DateTime<Utc>,
    pub actor: String,
    /// `requested`, `approved`, `denied`, `cancelled`, `revoked`, `expired`, `extended`.
    pub action: String,
    /// Free text: reason, narrowing, new expiry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A request and what became of it. Serialized as DESIGN.md's JSON shape, times RFC 3339
/// UTC, durations in the human form (`1h30m`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grant {
    pub id: GrantId,
    pub status: GrantStatus,
    pub user: String,
    pub role: String,
    /// The pattern the user asked for.
    pub hosts: HostPattern,
    /// The approver's narrowing pattern, if any: a host must match both.
    pub approved_hosts: Option<HostPattern>,
    pub reason: Option<String>,
    pub ticket: Option<String>,
    /// The duration asked for, after capping.
    #[serde(with = "crate::duration::serde_human")]
    pub requested_duration: Duration,
    /// Set when the request was capped: what was asked before the cap.
    #[serde(with = "crate::duration::serde_human_opt")]
    pub capped_from: Option<Duration>,
    /// The start time asked for (`--start`), if any.
    pub requested_start: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub approved_by: Option<String>,
    pub approved_at: Option<DateTime<Utc>>,
    pub approval_reason: Option<String>,
    /// When access begins: max(approval, requested start).
    pub starts_at: Option<DateTime<Utc>>,
    /// When access ends (moved by approved extensions). For a pending request: when it
    /// times out if nobody approves it.
    pub expires_at: Option<DateTime<Utc>>,
    pub denied_by: Option<String>,
    pub denial_reason: Option<String>,
    pub revoked_by: Option<String>,
    pub revoke_reason: Option<String>,
    pub cancelled_by: Option<String>,
    /// When the grant reached a final state.
    pub ended_at: Option<DateTime<Utc>>,
    pub break_glass: bool,
    /// For an extension request: the grant it extends.
    pub extends: Option<GrantId>,
    /// Extension requests made against this grant.
    pub extensions: Vec<GrantId>,
    pub history: Vec<HistoryEntry>,
}

impl Grant {
    /// True when this grant lets its user in at `now`: approved, started, not expired.
    /// Extension records never grant access themselves.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        in_force(
            self.status,
            self.extends.is_some(),
            self.starts_at,
            self.expires_at,
            now,
        )
    }
    /// Does this grant's host scope (requested AND narrowing pattern) cover `host`?
    /// The role's own patterns are checked by the decision, not here.
    pub fn covers_host(&self, host: &str) -> bool {
        scope_covers(&self.hosts, self.approved_hosts.as_ref(), host)
    }
}

/// The rule for [`Grant::is_active`], shared with the decision's copy of open grants
/// (`state::open`) so the two cannot drift apart: approved, not an extension record,
/// started, not expired (expiry exclusive).
pub(crate) fn in_force(
    status: GrantStatus,
    extension: bool,
    starts_at: Option<DateTime<Utc>>,
    expires_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> bool {
    status == GrantStatus::Approved
        && !extension
        && matches!((starts_at, expires_at), (Some(start), Some(end)) if start <= now && now < end)
}

/// The rule for [`Grant::covers_host`]: the requested pattern and, if the approver narrowed
/// it, the narrowing pattern too.
pub(crate) fn scope_covers(
    hosts: &HostPattern,
    narrowed: Option<&HostPattern>,
    host: &str,
) -> bool {
    hosts.matches(host) && narrowed.is_none_or(|p| p.matches(host))
}
