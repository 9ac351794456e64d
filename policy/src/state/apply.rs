//! Folding one event into the state. `apply` records facts; it never consults settings or
//! the clock, so replaying a log rebuilds the same state even after the config changed.

use super::{fmt_time, ApplyError, Lock, State};
use crate::duration;
use crate::event::{Approved, Event, Requested};
use crate::grant::{Action, Grant, GrantId, GrantStatus, HistoryEntry};
use chrono::{DateTime, Utc};

impl State {
    /// Apply one event from the log. `at` is the line's time, `actor` its actor.
    ///
    /// On error the state is unchanged: every check runs before the first write, so a
    /// broker that refuses a bad line keeps a consistent projection.
    pub fn apply(
        &mut self,
        event: &Event,
        at: DateTime<Utc>,
        actor: &str,
    ) -> Result<(), ApplyError> {
        match event {
            Event::Requested(r) => self.apply_requested(r, at, actor),
            Event::Approved(a) => self.apply_approved(a, at),
            Event::Denied { id, by, reason } => {
                let entry = entry(at, by, "denied", Some(reason.clone()));
                self.end(*id, Action::Deny, at, entry, |g| {
                    g.denied_by = Some(by.clone());
                    g.denial_reason = Some(reason.clone());
                })
            }
            Event::Cancelled { id, by } => {
                let entry = entry(at, by, "cancelled", None);
                self.end(*id, Action::Cancel, at, entry, |g| {
                    g.cancelled_by = Some(by.clone())
                })
            }
            Event::Revoked { id, by, reason } => {
                let entry = entry(at, by, "revoked", reason.clone());
                self.end(*id, Action::Revoke, at, entry, |g| {
                    g.revoked_by = Some(by.clone());
                    g.revoke_reason = reason.clone();
                })
            }
            Event::Expired { id, due } => {
                let timed_out = self
                    .grants
                    .get(id)
                    .is_some_and(|g| g.status == GrantStatus::Pending);
                let detail = timed_out.then(|| "nobody approved it in time".to_string());
                // After downtime the line is written late; the grant ended when it fell due.
                let entry = entry(*due, actor, "expired", detail);
                self.end(*id, Action::Expire, *due, entry, |_| {})
            }
            Event::Locked { user, by, reason } => {
                let lock = Lock {
                    by: by.clone(),
                    reason: reason.clone(),
                    at,
                };
                self.locked.insert(user.clone(), lock);
                Ok(())
            }
            Event::Unlocked { user, .. } => {
                self.locked.remove(user);
                Ok(())
            }
            Event::SessionStarted(st) => {
                if self.sessions.contains_key(&st.id) || st.id.0 <= self.last_session {
                    return Err(ApplyError::DuplicateSession(st.id));
                }
                self.last_session = st.id.0;
                self.sessions.insert(
                    st.id,
                    crate::session::OpenSession {
                        id: st.id,
                        user: st.user.clone(),
                        login: st.login.clone(),
                        host: st.host.clone(),
                        by: st.by.clone(),
                        role: st.role.clone(),
                        started_at: at,
                    },
                );
                Ok(())
            }
            Event::SessionEnded(e) => {
                // Ending a session the projection does not hold open is harmless (it was
                // already closed by a restart record); the event stays as audit.
                self.sessions.remove(&e.id);
                Ok(())
            }
            Event::AuthRejected { .. }
            | Event::BrokerStarted { .. }
            | Event::SessionDenied { .. }
            | Event::SessionConnected { .. }
            | Event::SessionKilled { .. }
            | Event::RecordingSealed { .. }
            | Event::RecordingDeleted { .. } => Ok(()),
        }
    }

    fn apply_requested(
        &mut self,
        r: &Requested,
        at: DateTime<Utc>,
        actor: &str,
    ) -> Result<(), ApplyError> {
        if self.grants.contains_key(&r.id) {
            return Err(ApplyError::DuplicateId(r.id));
        }
        if let Some(parent) = r.extends {
            let Some(parent) = self.grants.get_mut(&parent) else {
                return Err(ApplyError::UnknownGrant(parent));
            };
            parent.extensions.push(r.id);
        }
        let grant = Grant {
            id: r.id,
            status: GrantStatus::Pending,
            user: r.user.clone(),
            role: r.role.clone(),
            hosts: r.hosts.clone(),
            approved_hosts: None,
            reason: r.reason.clone(),
            ticket: r.ticket.clone(),
            requested_duration: r.duration,
            capped_from: r.capped_from,
            requested_start: r.start,
            created_at: at,
            approved_by: None,
            approved_at: None,
            approval_reason: None,
            starts_at: None,
            expires_at: Some(r.approval_deadline),
            denied_by: None,
            denial_reason: None,
            revoked_by: None,
            revoke_reason: None,
            cancelled_by: None,
            ended_at: None,
            break_glass: r.break_glass,
            extends: r.extends,
            extensions: Vec::new(),
            history: vec![entry(at, actor, "requested", Some(requested_detail(r)))],
        };
        self.grants.insert(r.id, grant);
        self.deadlines.insert((r.approval_deadline, r.id));
        self.index_open(r.id);
        self.next_id = self.next_id.max(r.id.0.saturating_add(1));
        Ok(())
    }

    fn apply_approved(&mut self, a: &Approved, at: DateTime<Utc>) -> Result<(), ApplyError> {
        let grant = self
            .grants
            .get_mut(&a.id)
            .ok_or(ApplyError::UnknownGrant(a.id))?;
        let status = grant
            .status
            .transition(Action::Approve)
            .map_err(|source| ApplyError::Illegal { id: a.id, source })?;
        if let Some(deadline) = grant.expires_at {
            self.deadlines.remove(&(deadline, a.id));
        }
        grant.status = status;
        grant.approved_by = Some(a.by.clone());
        grant.approved_at = Some(at);
        grant.approval_reason = a.reason.clone();
        grant.approved_hosts = a.hosts.clone();
        grant.starts_at = Some(a.starts_at);
        grant.expires_at = Some(a.expires_at);

        let Some(parent_id) = grant.extends else {
            let detail = approved_detail(a, grant);
            grant
                .history
                .push(entry(at, &a.by, "approved", Some(detail)));
            self.deadlines.insert((a.expires_at, a.id));
            self.refresh_open(a.id);
            return Ok(());
        };

        // An approved extension has no life of its own (see the module docs): it leaves the
        // indexes, and its effect is the parent's new expiry.
        let user = grant.user.clone();
        let parent = self
            .grants
            .get_mut(&parent_id)
            .filter(|p| p.status == GrantStatus::Approved);
        let detail = match parent {
            Some(parent) => {
                if let Some(old) = parent.expires_at {
                    self.deadlines.remove(&(old, parent_id));
                }
                parent.expires_at = Some(a.expires_at);
                let detail = format!(
                    "by {} (+{}), now until {}",
                    a.id,
                    duration::format(a.duration),
                    fmt_time(a.expires_at)
                );
                parent
                    .history
                    .push(entry(at, &a.by, "extended", Some(detail)));
                self.deadlines.insert((a.expires_at, parent_id));
                self.refresh_open(parent_id);
                format!("{parent_id} now runs until {}", fmt_time(a.expires_at))
            }
            // Only a race between brokers sharing a log can get here (the operation checks
            // the parent): the approval is a fact, but it must not revive ended access.
            None => format!("{parent_id} had already ended, so nothing was extended"),
        };
        if let Some(grant) = self.grants.get_mut(&a.id) {
            grant
                .history
                .push(entry(at, &a.by, "approved", Some(detail)));
        }
        self.remove_open(&user, a.id);
        Ok(())
    }

    /// Move a grant to a final state: check the transition, record it, drop it from the
    /// indexes.
    fn end(
        &mut self,
        id: GrantId,
        action: Action,
        ended_at: DateTime<Utc>,
        entry: HistoryEntry,
        set: impl FnOnce(&mut Grant),
    ) -> Result<(), ApplyError> {
        let grant = self
            .grants
            .get_mut(&id)
            .ok_or(ApplyError::UnknownGrant(id))?;
        let status = grant
            .status
            .transition(action)
            .map_err(|source| ApplyError::Illegal { id, source })?;
        if let Some(deadline) = grant.expires_at {
            self.deadlines.remove(&(deadline, id));
        }
        grant.status = status;
        grant.ended_at = Some(ended_at);
        set(grant);
        grant.history.push(entry);
        let user = grant.user.clone();
        self.remove_open(&user, id);
        Ok(())
    }
}

fn entry(at: DateTime<Utc>, actor: &str, action: &str, detail: Option<String>) -> HistoryEntry {
    HistoryEntry {
        at,
        actor: actor.to_string(),
        action: action.to_string(),
        detail,
    }
}

/// One line saying what was asked, for `show`.
fn requested_detail(r: &Requested) -> String {
    let mut parts = Vec::new();
    match r.extends {
        Some(parent) => parts.push(format!("{} more on {parent}", duration::format(r.duration))),
        None => parts.push(format!(
            "{} on {} for {}",
            r.role,
            r.hosts,
            duration::format(r.duration)
        )),
    }
    if let Some(asked) = r.capped_from {
        parts.push(format!("capped from {}", duration::format(asked)));
    }
    if let Some(start) = r.start {
        parts.push(format!("starting {}", fmt_time(start)));
    }
    if r.break_glass {
        parts.push("BREAK-GLASS".to_string());
    }
    if let Some(reason) = &r.reason {
        parts.push(format!("reason: {reason}"));
    }
    if let Some(ticket) = &r.ticket {
        parts.push(format!("ticket: {ticket}"));
    }
    parts.join("; ")
}

fn approved_detail(a: &Approved, grant: &Grant) -> String {
    let mut parts = vec![format!(
        "{} until {}",
        fmt_time(a.starts_at),
        fmt_time(a.expires_at)
    )];
    if let Some(hosts) = &a.hosts {
        parts.push(format!("narrowed to hosts {hosts}"));
    }
    if a.duration < grant.requested_duration {
        parts.push(format!(
            "narrowed to {} of the {} requested",
            duration::format(a.duration),
            duration::format(grant.requested_duration)
        ));
    }
    if let Some(reason) = &a.reason {
        parts.push(format!("reason: {reason}"));
    }
    parts.join("; ")
}
