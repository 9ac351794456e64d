//! The projection of the event log, and the pure operations that turn a command into events.
//!
//! The broker's loop is always: `let events = state.op(&settings, actor, args, now)?;`
//! append them durably to the log; then `state.apply(&event, ...)` for each. An operation
//! never mutates; `apply` never decides (it only refuses an illegal transition). That is what
//! makes the log the source of truth and restart a replay.
//!
//! # Layout
//! - `apply`: folding one event into the state, and keeping the indexes in step.
//! - `request`: `request` and `extend`, which create grants, and the duration rules.
//! - `review`: what others do to a grant (`approve`, `deny`, `revoke`) and `cancel`.
//! - `locks`: `lock_user` and `unlock_user`.
//! - `open`: the per-user index of open grants the decision reads.
//! - this file: the types, and the read-only queries.
//!
//! # Extension records
//! `extend` creates a grant record of its own (`extends = Some(parent)`) so it is approved,
//! denied, cancelled or timed out exactly like a request. Once approved it has done its work
//! (the parent's expiry moved), so it stays `approved` as the record of that decision but
//! leaves the open-grant and deadline indexes: it never expires on its own, never appears in
//! [`State::open_grants_of`], and [`Grant::is_active`] is false for it.

mod apply;
#[cfg(test)]
pub(crate) mod fixtures;
mod locks;
mod open;
mod request;
mod review;
#[cfg(test)]
mod tests;

use crate::config::{Role, Settings, User};
use crate::event::Event;
use crate::grant::{Grant, GrantId, GrantStatus, IllegalTransition};
use chrono::{DateTime, Utc};
pub(crate) use open::OpenGrant;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The system actor: auto-approvals, break-glass approvals, expiries.
pub const SYSTEM_ACTOR: &str = "latch";

/// How far ahead `--start` may be. Further out is almost surely a typo, and a grant
/// scheduled months ahead outlives the review that approved it.
pub const MAX_START_AHEAD: chrono::Duration = chrono::Duration::days(30);

/// Why an operation was refused. Each message says what was wrong and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// Bad arguments: invalid pattern, duration, missing reason or ticket, unknown role.
    #[error("{0}")]
    Invalid(String),
    /// No such grant id (or not one the actor may see).
    #[error("{0}")]
    NotFound(String),
    /// The actor may not do this (not an approver, self-approval, not the owner, locked).
    #[error("{0}")]
    Forbidden(String),
    /// The grant is not in a state that allows this (already approved, already expired).
    #[error("{0}")]
    Conflict(String),
}

/// A state-machine violation found while applying an event: the log contains an event that
/// does not fit the state built so far (a corrupted or hand-edited log).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    #[error("event refers to unknown grant {0}")]
    UnknownGrant(GrantId),
    #[error("grant {id}: {source}")]
    Illegal {
        id: GrantId,
        source: IllegalTransition,
    },
    #[error("grant id {0} was already used")]
    DuplicateId(GrantId),
    #[error("session id {0} was already used")]
    DuplicateSession(crate::session::SessionId),
}

/// `request` arguments as given by the user (strings not yet parsed, so the policy owns
/// every validation message).
#[derive(Debug, Clone, Default)]
pub struct RequestArgs {
    pub role: String,
    pub hosts: String,
    pub duration: Option<String>,
    pub reason: Option<String>,
    pub ticket: Option<String>,
    pub start: Option<DateTime<Utc>>,
    pub break_glass: bool,
    /// TOTP code, required for break-glass when the user has a secret.
    pub totp: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ApproveArgs {
    /// Narrowing pattern: the grant then allows a host only if it matches both.
    pub hosts: Option<String>,
    /// Narrowing duration: at most the requested one.
    pub duration: Option<String>,
    pub reason: Option<String>,
}

/// The result of an operation: the events to append, in order, and notes to show the
/// user ("capped to 4h: the role's maximum").
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    pub events: Vec<Event>,
    pub notes: Vec<String>,
}

/// A lock on a user.
#[derive(Debug, Clone, PartialEq)]
pub struct Lock {
    pub by: String,
    pub reason: String,
    pub at: DateTime<Utc>,
}

/// The current state: every grant, indexed for the decision, and locked users.
#[derive(Debug, Clone, Default)]
pub struct State {
    grants: BTreeMap<GrantId, Grant>,
    /// user -> their grants that are pending or approved (not final), as the decision
    /// needs them, so the decision with 100k grants in the projection reads only the
    /// user's own few, in one slice (see `open`).
    open_by_user: HashMap<String, Vec<open::OpenGrant>>,
    locked: BTreeMap<String, Lock>,
    next_id: u64,
    /// `(when it falls due, id)` for every grant that can still expire: pending requests
    /// (their approval deadline) and approved grants (their expiry). Ordered, so the timer's
    /// next deadline and the due list never scan the whole projection.
    deadlines: BTreeSet<(DateTime<Utc>, GrantId)>,
    /// Sessions the log says started and have not ended.
    sessions: BTreeMap<crate::session::SessionId, crate::session::OpenSession>,
    /// The highest session id used so far.
    last_session: u64,
}

impl State {
    pub fn new() -> State {
        State {
            next_id: 1,
            ..Default::default()
        }
    }

    /// The id the next `session_started` event gets.
    pub fn next_session_id(&self) -> u64 {
        self.last_session + 1
    }

    /// A session the log says is open.
    pub fn open_session(
        &self,
        id: crate::session::SessionId,
    ) -> Option<&crate::session::OpenSession> {
        self.sessions.get(&id)
    }

    /// Every session the log says is open (after a crash: the ones to close in the log).
    pub fn open_sessions(&self) -> impl Iterator<Item = &crate::session::OpenSession> {
        self.sessions.values()
    }

    pub fn grant(&self, id: GrantId) -> Option<&Grant> {
        self.grants.get(&id)
    }
    pub fn grants(&self) -> impl Iterator<Item = &Grant> {
        self.grants.values()
    }
    pub fn lock(&self, user: &str) -> Option<&Lock> {
        self.locked.get(user)
    }
    pub fn locks(&self) -> impl Iterator<Item = (&String, &Lock)> {
        self.locked.iter()
    }

    /// The id the next request will get. `State::default()` starts at 0, which no request
    /// may use (ids are shown as `g1`, `g2`...), hence the floor.
    fn next_id(&self) -> GrantId {
        GrantId(self.next_id.max(1))
    }

    /// The earliest time at which something falls due (a pending request's approval
    /// deadline or a grant's expiry), for the broker's timer.
    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        self.deadlines.first().map(|&(at, _)| at)
    }

    /// `Expired` events for everything due at or before `now`, in due order, each carrying
    /// its own due time.
    pub fn due(&self, now: DateTime<Utc>) -> Vec<Event> {
        self.deadlines
            .iter()
            .take_while(|&&(at, _)| at <= now)
            .map(|&(due, id)| Event::Expired { id, due })
            .collect()
    }

    /// May `actor` see this grant? Its owner, approvers of its role, admins, auditors.
    pub fn can_see(&self, settings: &Settings, actor: &str, grant: &Grant) -> bool {
        grant.user == actor
            || settings.is_approver_for(actor, &grant.role)
            || settings.is_admin(actor)
            || settings.is_auditor(actor)
    }

    /// Pending requests `actor` may approve (not their own).
    pub fn awaiting_approval_by<'a>(
        &'a self,
        settings: &'a Settings,
        actor: &'a str,
    ) -> Vec<&'a Grant> {
        // Every pending grant is open, so the open index is enough; no need to walk the
        // (mostly final) history.
        let mut pending: Vec<&Grant> = self
            .open_by_user
            .iter()
            .filter(|(user, _)| user.as_str() != actor)
            .flat_map(|(_, entries)| entries.iter())
            .filter(|e| {
                e.status == GrantStatus::Pending && settings.is_approver_for(actor, &e.role)
            })
            .filter_map(|e| self.grants.get(&e.id))
            .collect();
        pending.sort_by_key(|g| g.id);
        pending
    }

    /// Open (pending or approved, not final) grants of a user.
    pub fn open_grants_of(&self, user: &str) -> Vec<&Grant> {
        self.open_grants_iter(user).collect()
    }

    /// [`State::open_grants_of`] without the allocation, for the decision's hot path. In id
    /// order.
    pub(crate) fn open_grants_iter<'a>(
        &'a self,
        user: &str,
    ) -> impl Iterator<Item = &'a Grant> + 'a {
        self.open_entries(user)
            .iter()
            .filter_map(|e| self.grants.get(&e.id))
    }

    /// Approved grants a revoke/expiry/lock affects, for cutting sessions (used by the
    /// data plane): given an event, the grant ids and users whose access it ended.
    ///
    /// Works whether it is called before or after the event is applied: a revoke or expiry
    /// ends access when the grant had been approved (an approval-timeout expiry ends
    /// nothing); a lock ends every approved grant the user holds open.
    pub fn ended_by(&self, event: &Event) -> Vec<GrantId> {
        match event {
            Event::Revoked { id, .. } | Event::Expired { id, .. } => self
                .grants
                .get(id)
                .filter(|g| g.extends.is_none() && g.approved_at.is_some())
                .map(|g| vec![g.id])
                .unwrap_or_default(),
            Event::Locked { user, .. } => self
                .open_grants_iter(user)
                .filter(|g| g.status == GrantStatus::Approved && g.extends.is_none())
                .map(|g| g.id)
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Number of grants (for metrics and benchmarks).
    pub fn len(&self) -> usize {
        self.grants.len()
    }

    pub fn is_empty(&self) -> bool {
        self.grants.is_empty()
    }

    /// Look up a grant for an operation, with the message the user needs when it is not
    /// there.
    fn find(&self, id: GrantId) -> Result<&Grant, PolicyError> {
        self.grants
            .get(&id)
            .ok_or_else(|| PolicyError::NotFound(format!("no request {id}; run 'list' to see ids")))
    }

    /// The actor as a user who may ask for access: configured and not locked out.
    fn requester<'s>(&self, settings: &'s Settings, actor: &str) -> Result<&'s User, PolicyError> {
        let user = settings.user(actor).ok_or_else(|| {
            PolicyError::Forbidden(format!(
                "'{actor}' is not a configured user; ask an admin to add you to the config"
            ))
        })?;
        if let Some(lock) = self.locked.get(actor) {
            return Err(PolicyError::Forbidden(format!(
                "you are locked out (by {} at {}: {}); ask an admin to unlock you",
                lock.by,
                fmt_time(lock.at),
                lock.reason
            )));
        }
        Ok(user)
    }
}

/// Times in messages: RFC 3339 UTC to the second, as in the JSON.
pub(crate) fn fmt_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A free-text argument, with blank treated as absent (`--reason ''` is no reason).
fn non_empty(text: Option<&str>) -> Option<String> {
    text.map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}

/// Who approves a role, for messages: `security-admin` or `security-admin or sre`.
fn approvers_text(role: &Role) -> String {
    role.approvers.join(" or ")
}

/// What became of a grant, for conflict messages: `g3 is already approved (by bob at ...)`.
fn status_text(grant: &Grant) -> String {
    let id = grant.id;
    let when = |t: Option<DateTime<Utc>>| {
        t.map(fmt_time)
            .unwrap_or_else(|| "an unknown time".to_string())
    };
    let by = |who: &Option<String>| who.as_deref().unwrap_or(SYSTEM_ACTOR).to_string();
    match grant.status {
        GrantStatus::Pending => format!("{id} is still pending approval"),
        GrantStatus::Approved => {
            format!(
                "{id} is already approved (by {} at {})",
                by(&grant.approved_by),
                when(grant.approved_at)
            )
        }
        GrantStatus::Denied => {
            format!(
                "{id} was already denied (by {} at {})",
                by(&grant.denied_by),
                when(grant.ended_at)
            )
        }
        GrantStatus::Cancelled => {
            format!(
                "{id} was already cancelled (by {} at {})",
                by(&grant.cancelled_by),
                when(grant.ended_at)
            )
        }
        GrantStatus::Revoked => {
            format!(
                "{id} was already revoked (by {} at {})",
                by(&grant.revoked_by),
                when(grant.ended_at)
            )
        }
        GrantStatus::Expired if grant.approved_at.is_none() => {
            format!(
                "{id} already timed out waiting for approval (at {})",
                when(grant.ended_at)
            )
        }
        GrantStatus::Expired => format!("{id} already expired (at {})", when(grant.ended_at)),
    }
}

/// `at + d`, refusing instead of panicking where chrono's range ends.
fn later(at: DateTime<Utc>, d: chrono::Duration) -> Result<DateTime<Utc>, PolicyError> {
    at.checked_add_signed(d).ok_or_else(|| {
        PolicyError::Invalid(format!(
            "{} after {} is out of range",
            crate::duration::format(d),
            fmt_time(at)
        ))
    })
}
