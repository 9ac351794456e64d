//! The projection of the event log, and the pure operations that turn a command into events.
//!
//! The broker's loop is always: `let events = state.op(&settings, actor, args, now)?;`
//! append them durably to the log; then `state.apply(&event, ...)` for each. An operation
//! never mutates; `apply` never decides (it only refuses an illegal transition). That is what
//! makes the log the source of truth and restart a replay.

use crate::config::Settings;
use crate::event::Event;
use crate::grant::{Grant, GrantId, IllegalTransition};
use chrono::{DateTime, Duration, Utc};
use std::collections::{BTreeMap, HashMap};

/// The system actor: auto-approvals, break-glass approvals, expiries.
pub const SYSTEM_ACTOR: &str = "latch";

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
    Illegal { id: GrantId, source: IllegalTransition },
    #[error("grant id {0} was already used")]
    DuplicateId(GrantId),
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
    /// user -> ids of their grants that are pending or approved (not final), so the
    /// decision with 100k grants in the projection looks only at the user's own few.
    open_by_user: HashMap<String, Vec<GrantId>>,
    locked: BTreeMap<String, Lock>,
    next_id: u64,
}

impl State {
    pub fn new() -> State {
        State { next_id: 1, ..Default::default() }
    }

    /// Apply one event from the log. `at` is the line's time, `actor` its actor.
    pub fn apply(&mut self, event: &Event, at: DateTime<Utc>, actor: &str) -> Result<(), ApplyError> {
        todo!()
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

    /// The earliest time at which something falls due (a pending request's approval
    /// deadline or a grant's expiry), for the broker's timer.
    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        todo!()
    }

    /// `Expired` events for everything due at or before `now`, in due order, each carrying
    /// its own due time.
    pub fn due(&self, now: DateTime<Utc>) -> Vec<Event> {
        todo!()
    }

    // ---- operations: pure, return events ----

    /// Create a request. Applies (in this order): user exists and is not locked; role exists
    /// and is requestable by the user (or break-glass allowed); pattern valid; the pattern
    /// can match at least one of the role's patterns' hosts is NOT required (patterns may
    /// name hosts added later) but it must be valid; duration parsed, >= min, capped at the
    /// role/global max (note says so); reason/ticket required per settings; break-glass:
    /// role allows it, reason required, capped at break_glass_max_duration, TOTP checked
    /// when the user has a secret. Auto-approve roles and break-glass produce
    /// `Requested` + `Approved` by [`SYSTEM_ACTOR`].
    pub fn request(&self, settings: &Settings, actor: &str, args: &RequestArgs, now: DateTime<Utc>) -> Result<Outcome, PolicyError> {
        todo!()
    }

    /// Approve a pending request, optionally narrowing hosts and duration. Refuses
    /// self-approval and non-approvers. For an extension, moves the parent's expiry.
    pub fn approve(&self, settings: &Settings, actor: &str, id: GrantId, args: &ApproveArgs, now: DateTime<Utc>) -> Result<Outcome, PolicyError> {
        todo!()
    }

    /// Deny a pending request. Reason required.
    pub fn deny(&self, settings: &Settings, actor: &str, id: GrantId, reason: &str, now: DateTime<Utc>) -> Result<Outcome, PolicyError> {
        todo!()
    }

    /// Revoke an approved grant: by an approver of its role, an admin, or its owner.
    pub fn revoke(&self, settings: &Settings, actor: &str, id: GrantId, reason: Option<&str>, now: DateTime<Utc>) -> Result<Outcome, PolicyError> {
        todo!()
    }

    /// Withdraw one's own pending request.
    pub fn cancel(&self, settings: &Settings, actor: &str, id: GrantId, now: DateTime<Utc>) -> Result<Outcome, PolicyError> {
        todo!()
    }

    /// Ask for more time on one's own approved, unexpired grant: a new request with
    /// `extends` set, approved like any request.
    pub fn extend(&self, settings: &Settings, actor: &str, id: GrantId, duration: &str, reason: Option<&str>, now: DateTime<Utc>) -> Result<Outcome, PolicyError> {
        todo!()
    }

    /// Lock a user out (admins only; not oneself).
    pub fn lock_user(&self, settings: &Settings, actor: &str, user: &str, reason: &str, now: DateTime<Utc>) -> Result<Outcome, PolicyError> {
        todo!()
    }

    pub fn unlock_user(&self, settings: &Settings, actor: &str, user: &str, now: DateTime<Utc>) -> Result<Outcome, PolicyError> {
        todo!()
    }

    /// May `actor` see this grant? Its owner, approvers of its role, admins, auditors.
    pub fn can_see(&self, settings: &Settings, actor: &str, grant: &Grant) -> bool {
        todo!()
    }

    /// Pending requests `actor` may approve (not their own).
    pub fn awaiting_approval_by<'a>(&'a self, settings: &'a Settings, actor: &'a str) -> Vec<&'a Grant> {
        todo!()
    }

    /// Open (pending or approved, not final) grants of a user.
    pub fn open_grants_of(&self, user: &str) -> Vec<&Grant> {
        todo!()
    }

    /// Approved grants a revoke/expiry/lock affects, for cutting sessions (used by the
    /// data plane): given an event, the grant ids and users whose access it ended.
    pub fn ended_by(&self, event: &Event) -> Vec<GrantId> {
        todo!()
    }

    /// Number of grants (for metrics and benchmarks).
    pub fn len(&self) -> usize {
        self.grants.len()
    }

    pub fn is_empty(&self) -> bool {
        self.grants.is_empty()
    }

    #[doc(hidden)]
    pub fn _unused(_: Duration) {}
}
