//! What happens to a request after it is made: `approve`, `deny`, `revoke`, and the
//! requester's own `cancel`.
//!
//! Permission checks come before state checks, so someone who may not act on a grant learns
//! nothing about who approved or denied it.

use super::request::{at_least_min, parse_duration};
use super::{
    approvers_text, fmt_time, later, non_empty, status_text, ApproveArgs, Outcome, PolicyError,
    State,
};
use crate::config::{Role, Settings};
use crate::duration;
use crate::event::{Approved, Event};
use crate::grant::{Grant, GrantId, GrantStatus};
use crate::pattern::HostPattern;
use chrono::{DateTime, Utc};

impl State {
    /// Approve a pending request, optionally narrowing hosts and duration. Refuses
    /// self-approval and non-approvers. For an extension, moves the parent's expiry.
    ///
    /// Approval is role-based: an admin who is not an approver of the role may not approve
    /// (an admin can still deny or revoke).
    pub fn approve(
        &self,
        settings: &Settings,
        actor: &str,
        id: GrantId,
        args: &ApproveArgs,
        now: DateTime<Utc>,
    ) -> Result<Outcome, PolicyError> {
        let grant = self.find(id)?;
        let role = settings.role(&grant.role);
        if grant.user == actor {
            let ask = match role {
                Some(role) if !role.approvers.is_empty() => {
                    format!("ask another member of {}", approvers_text(role))
                }
                _ => "ask an approver".to_string(),
            };
            return Err(PolicyError::Forbidden(format!(
                "you cannot approve your own request {id}; {ask}"
            )));
        }
        let Some(role) = role else {
            return Err(PolicyError::Conflict(format!(
                "{id} is for role '{}', which is no longer configured, so it cannot be approved; deny it with 'deny {id} --reason ...'",
                grant.role
            )));
        };
        if !settings.is_approver_for(actor, &role.name) {
            return Err(PolicyError::Forbidden(not_approver(role, "approve", false)));
        }
        check_pending(grant, now)?;

        let mut notes = Vec::new();
        let hosts = match (non_empty(args.hosts.as_deref()), grant.extends) {
            (Some(_), Some(parent)) => {
                return Err(PolicyError::Invalid(format!(
                    "{id} only adds time to {parent}, so --hosts cannot narrow it; approve it without --hosts"
                )))
            }
            (Some(text), None) => {
                let narrow = HostPattern::parse(&text).map_err(|e| PolicyError::Invalid(format!("--hosts: {e}")))?;
                notes.push(format!(
                    "narrowed: {id} allows only hosts matching both '{}' and '{narrow}'",
                    grant.hosts
                ));
                Some(narrow)
            }
            (None, _) => None,
        };
        let duration = match &args.duration {
            Some(text) => {
                let narrow = parse_duration(text)?;
                if narrow > grant.requested_duration {
                    return Err(PolicyError::Invalid(format!(
                        "--duration {} is longer than the {} requested; approve at most {}",
                        duration::format(narrow),
                        duration::format(grant.requested_duration),
                        duration::format(grant.requested_duration)
                    )));
                }
                at_least_min(settings, narrow)?;
                if narrow < grant.requested_duration {
                    notes.push(format!(
                        "narrowed: {} of the {} requested",
                        duration::format(narrow),
                        duration::format(grant.requested_duration)
                    ));
                }
                narrow
            }
            None => grant.requested_duration,
        };

        let starts_at = match grant.extends {
            // The extra time follows on from the grant's current end.
            Some(parent) => self.extendable_until(parent, id, now)?,
            None => grant.requested_start.map_or(now, |start| start.max(now)),
        };
        let expires_at = later(starts_at, duration)?;
        notes.push(match grant.extends {
            Some(parent) => format!(
                "{id} approved: {parent} now runs until {}",
                fmt_time(expires_at)
            ),
            None => format!(
                "{id} approved: {} may use {} from {} until {}",
                grant.user,
                grant.role,
                fmt_time(starts_at),
                fmt_time(expires_at)
            ),
        });
        let approved = Approved {
            id,
            by: actor.to_string(),
            hosts,
            duration,
            reason: non_empty(args.reason.as_deref()),
            starts_at,
            expires_at,
        };
        Ok(Outcome {
            events: vec![Event::Approved(approved)],
            notes,
        })
    }

    /// Deny a pending request. Reason required.
    ///
    /// Approvers of the role and admins may deny; a requester withdraws their own request
    /// with `cancel` instead, so the record says who changed their mind.
    pub fn deny(
        &self,
        settings: &Settings,
        actor: &str,
        id: GrantId,
        reason: &str,
        _now: DateTime<Utc>,
    ) -> Result<Outcome, PolicyError> {
        let grant = self.find(id)?;
        if grant.user == actor {
            return Err(PolicyError::Forbidden(format!(
                "you cannot deny your own request {id}; to withdraw it, run 'cancel {id}'"
            )));
        }
        if !settings.is_approver_for(actor, &grant.role) && !settings.is_admin(actor) {
            return Err(PolicyError::Forbidden(match settings.role(&grant.role) {
                Some(role) => not_approver(role, "deny", true),
                None => format!(
                    "only admins can deny requests for role '{}', which is no longer configured",
                    grant.role
                ),
            }));
        }
        if grant.status != GrantStatus::Pending {
            return Err(PolicyError::Conflict(format!(
                "{}; only pending requests can be denied",
                status_text(grant)
            )));
        }
        let Some(reason) = non_empty(Some(reason)) else {
            return Err(PolicyError::Invalid(format!(
                "a reason is required to deny: add --reason 'why', which {} will see",
                grant.user
            )));
        };
        Ok(Outcome {
            events: vec![Event::Denied {
                id,
                by: actor.to_string(),
                reason,
            }],
            notes: Vec::new(),
        })
    }

    /// Revoke an approved grant: by an approver of its role, an admin, or its owner.
    pub fn revoke(
        &self,
        settings: &Settings,
        actor: &str,
        id: GrantId,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Outcome, PolicyError> {
        let grant = self.find(id)?;
        let owner = grant.user == actor;
        if !owner && !settings.is_approver_for(actor, &grant.role) && !settings.is_admin(actor) {
            let approvers = settings
                .role(&grant.role)
                .map(approvers_text)
                .filter(|a| !a.is_empty());
            return Err(PolicyError::Forbidden(format!(
                "you cannot revoke {id}: only its owner, {}an admin can",
                approvers
                    .map(|a| format!("a member of {a}, or "))
                    .unwrap_or_default()
            )));
        }
        if let Some(parent) = grant.extends {
            return Err(PolicyError::Invalid(format!(
                "{id} is an extension of {parent}; revoke {parent} to end the access"
            )));
        }
        match grant.status {
            GrantStatus::Approved if grant.expires_at.is_some_and(|end| end <= now) => Err(
                PolicyError::Conflict(format!("{id} has already expired; nothing to revoke")),
            ),
            GrantStatus::Approved => {
                let event = Event::Revoked {
                    id,
                    by: actor.to_string(),
                    reason: non_empty(reason),
                };
                let note = if owner {
                    format!("you gave back {id}; its sessions are cut")
                } else {
                    format!("{id} of {} is revoked; its sessions are cut", grant.user)
                };
                Ok(Outcome {
                    events: vec![event],
                    notes: vec![note],
                })
            }
            GrantStatus::Pending => {
                let hint = if owner {
                    format!("withdraw it with 'cancel {id}'")
                } else {
                    format!("deny it with 'deny {id} --reason ...'")
                };
                Err(PolicyError::Conflict(format!(
                    "{id} is still pending approval; {hint}"
                )))
            }
            _ => Err(PolicyError::Conflict(status_text(grant))),
        }
    }

    /// Withdraw one's own pending request.
    pub fn cancel(
        &self,
        _settings: &Settings,
        actor: &str,
        id: GrantId,
        _now: DateTime<Utc>,
    ) -> Result<Outcome, PolicyError> {
        let grant = self.find(id)?;
        if grant.user != actor {
            return Err(PolicyError::Forbidden(format!(
                "you can only cancel your own requests, and {id} is not yours; approvers turn requests down with 'deny {id} --reason ...'"
            )));
        }
        match grant.status {
            GrantStatus::Pending => Ok(Outcome {
                events: vec![Event::Cancelled {
                    id,
                    by: actor.to_string(),
                }],
                notes: Vec::new(),
            }),
            GrantStatus::Approved => Err(PolicyError::Conflict(format!(
                "{}; to give it back early, run 'revoke {id}'",
                status_text(grant)
            ))),
            _ => Err(PolicyError::Conflict(status_text(grant))),
        }
    }

    /// When an extension's extra time would start: the end of the grant it extends, which
    /// must still be running (or about to) at `now`.
    fn extendable_until(
        &self,
        parent: GrantId,
        ext: GrantId,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, PolicyError> {
        let grant = self.find(parent)?;
        match (grant.status, grant.expires_at) {
            (GrantStatus::Approved, Some(end)) if end > now => Ok(end),
            _ => Err(PolicyError::Conflict(format!(
                "{parent}, which {ext} extends, is no longer active, so there is nothing to extend; deny {ext}, and {} can request access again",
                grant.user
            ))),
        }
    }
}

/// A pending request that has not yet timed out, or why not.
fn check_pending(grant: &Grant, now: DateTime<Utc>) -> Result<(), PolicyError> {
    let id = grant.id;
    if grant.status != GrantStatus::Pending {
        return Err(PolicyError::Conflict(format!(
            "{}; nothing to approve",
            status_text(grant)
        )));
    }
    // The timer may not have written the expiry yet; the deadline has passed all the same.
    if let Some(deadline) = grant.expires_at.filter(|&d| d <= now) {
        return Err(PolicyError::Conflict(format!(
            "{id} timed out at {} waiting for approval; {} can request again",
            fmt_time(deadline),
            grant.user
        )));
    }
    Ok(())
}

/// "only members of security-admin can approve db-admin requests".
fn not_approver(role: &Role, verb: &str, admins_too: bool) -> String {
    let name = &role.name;
    match (role.approvers.is_empty(), admins_too) {
        (false, false) => format!("only members of {} can {verb} {name} requests", approvers_text(role)),
        (false, true) => format!("only members of {} or an admin can {verb} {name} requests", approvers_text(role)),
        (true, false) => format!(
            "nobody can {verb} {name} requests: the role names no approvers; an admin can add some in the config"
        ),
        (true, true) => format!("only an admin can {verb} {name} requests: the role names no approvers"),
    }
}
