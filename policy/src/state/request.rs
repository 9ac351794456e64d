//! Asking for access: `request` and `extend`, and the duration rules they share.

use super::{
    approvers_text, fmt_time, later, non_empty, status_text, Outcome, PolicyError, RequestArgs,
    State, MAX_START_AHEAD, SYSTEM_ACTOR,
};
use crate::config::{Role, Settings, User};
use crate::duration;
use crate::event::{Approved, Event, Requested};
use crate::grant::{GrantId, GrantStatus};
use crate::pattern::HostPattern;
use crate::totp;
use chrono::{DateTime, Duration, Utc};

impl State {
    /// Create a request. Applies (in this order): user exists and is not locked; role exists
    /// and is requestable by the user (or break-glass allowed); pattern valid; the pattern
    /// can match at least one of the role's patterns' hosts is NOT required (patterns may
    /// name hosts added later) but it must be valid; duration parsed, >= min, capped at the
    /// role/global max (note says so); reason/ticket required per settings; break-glass:
    /// role allows it, reason required, capped at break_glass_max_duration, TOTP checked
    /// when the user has a secret. Auto-approve roles and break-glass produce
    /// `Requested` + `Approved` by [`SYSTEM_ACTOR`].
    ///
    /// Break-glass skips the approver, not the role list: the role must still be one the
    /// user may request, and must allow break-glass.
    pub fn request(
        &self,
        settings: &Settings,
        actor: &str,
        args: &RequestArgs,
        now: DateTime<Utc>,
    ) -> Result<Outcome, PolicyError> {
        let user = self.requester(settings, actor)?;
        let role_name = args.role.trim();
        let Some(role) = settings.role(role_name) else {
            return Err(PolicyError::Invalid(format!(
                "role '{role_name}' does not exist; {}",
                requestable_roles(user)
            )));
        };
        if !user.can_request.contains(&role.name) {
            return Err(PolicyError::Forbidden(format!(
                "you cannot request role '{}'; {}",
                role.name,
                requestable_roles(user)
            )));
        }
        if args.break_glass && !role.break_glass {
            return Err(PolicyError::Forbidden(format!(
                "role '{}' does not allow break-glass; request it without --break-glass and ask a member of {} to approve",
                role.name,
                approvers_text(role)
            )));
        }
        let hosts = HostPattern::parse(args.hosts.trim())
            .map_err(|e| PolicyError::Invalid(format!("--hosts: {e}")))?;

        let mut notes = Vec::new();
        let (asked, explicit) = match &args.duration {
            Some(text) => (parse_duration(text)?, true),
            None => (settings.jit.default_duration, false),
        };
        let (duration, capped_from) = cap_duration(
            settings,
            role,
            asked,
            explicit,
            args.break_glass,
            &mut notes,
        )?;

        let reason = non_empty(args.reason.as_deref());
        if reason.is_none() {
            if args.break_glass {
                return Err(PolicyError::Invalid(
                    "break-glass requires a reason: add --reason saying what the emergency is; it is announced to the approvers"
                        .to_string(),
                ));
            }
            if settings.jit.require_reason {
                return Err(PolicyError::Invalid(
                    "a reason is required: add --reason 'what you need the access for'".to_string(),
                ));
            }
        }
        let ticket = non_empty(args.ticket.as_deref());
        if ticket.is_none() && settings.jit.require_ticket {
            return Err(PolicyError::Invalid(
                "a ticket is required: add --ticket with the URL of the change or incident"
                    .to_string(),
            ));
        }

        let start = match args.start {
            Some(start) if start > now => {
                if start - now > MAX_START_AHEAD {
                    return Err(PolicyError::Invalid(format!(
                        "--start {} is more than {} ahead; request closer to the time",
                        fmt_time(start),
                        duration::format(MAX_START_AHEAD)
                    )));
                }
                Some(start)
            }
            Some(_) => {
                notes.push(
                    "--start is in the past, so access starts as soon as it is approved"
                        .to_string(),
                );
                None
            }
            None => None,
        };

        if args.break_glass {
            check_totp(user, args.totp.as_deref(), now)?;
        }
        if let Some(note) = unmatched_hosts_note(settings, role, &hosts) {
            notes.push(note);
        }

        let id = self.next_id();
        let approval_deadline = later(now, settings.jit.approval_timeout)?;
        let mut events = vec![Event::Requested(Requested {
            id,
            user: user.name.clone(),
            role: role.name.clone(),
            hosts,
            reason,
            ticket,
            duration,
            capped_from,
            start,
            approval_deadline,
            break_glass: args.break_glass,
            extends: None,
        })];

        if args.break_glass || role.auto_approve {
            let starts_at = start.unwrap_or(now);
            let expires_at = later(starts_at, duration)?;
            let why = if args.break_glass {
                notes.push(format!(
                    "BREAK-GLASS: {id} is approved at once, from {} until {}; the approvers are told and it is audited",
                    fmt_time(starts_at),
                    fmt_time(expires_at)
                ));
                "break-glass".to_string()
            } else {
                notes.push(format!(
                    "{id} is approved automatically (role {} auto-approves), from {} until {}",
                    role.name,
                    fmt_time(starts_at),
                    fmt_time(expires_at)
                ));
                format!("role {} approves automatically", role.name)
            };
            events.push(Event::Approved(Approved {
                id,
                by: SYSTEM_ACTOR.to_string(),
                hosts: None,
                duration,
                reason: Some(why),
                starts_at,
                expires_at,
            }));
        } else {
            notes.push(format!(
                "{id} is waiting for a member of {} to approve it; it times out at {}",
                approvers_text(role),
                fmt_time(approval_deadline)
            ));
        }
        Ok(Outcome { events, notes })
    }

    /// Ask for more time on one's own approved, unexpired grant: a new request with
    /// `extends` set, approved like any request.
    ///
    /// The extension keeps the grant's role, hosts and ticket, and its reason unless a new
    /// one is given. It times out when the grant itself would end, since it cannot be
    /// approved after that.
    pub fn extend(
        &self,
        settings: &Settings,
        actor: &str,
        id: GrantId,
        duration: &str,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Outcome, PolicyError> {
        let grant = self.find(id)?;
        if grant.user != actor {
            return Err(PolicyError::Forbidden(format!(
                "you can only extend your own grants, and {id} is not yours"
            )));
        }
        if let Some(parent) = grant.extends {
            return Err(PolicyError::Invalid(format!(
                "{id} is itself an extension of {parent}; extend {parent} instead"
            )));
        }
        let user = self.requester(settings, actor)?;
        let current_expiry = match (grant.status, grant.expires_at) {
            (GrantStatus::Approved, Some(end)) if end > now => end,
            (GrantStatus::Approved, _) => {
                return Err(PolicyError::Conflict(format!(
                    "{id} has expired; request access again instead"
                )))
            }
            (GrantStatus::Pending, _) => {
                return Err(PolicyError::Conflict(format!(
                    "{id} is still pending approval; it can be extended once approved"
                )))
            }
            _ => {
                return Err(PolicyError::Conflict(format!(
                    "{}; request access again instead",
                    status_text(grant)
                )))
            }
        };
        let Some(role) = settings.role(&grant.role) else {
            return Err(PolicyError::Conflict(format!(
                "{id} is for role '{}', which is no longer configured, so it cannot be extended",
                grant.role
            )));
        };
        if !user.can_request.contains(&role.name) {
            return Err(PolicyError::Forbidden(format!(
                "you may no longer request role '{}', so {id} cannot be extended",
                role.name
            )));
        }
        let pending = grant.extensions.iter().find(|ext| {
            self.grants
                .get(ext)
                .is_some_and(|g| g.status == GrantStatus::Pending)
        });
        if let Some(ext) = pending {
            return Err(PolicyError::Conflict(format!(
                "{id} already has a pending extension, {ext}; wait for it, or withdraw it with 'cancel {ext}'"
            )));
        }

        let mut notes = Vec::new();
        let asked = parse_duration(duration)?;
        let (duration, capped_from) = cap_duration(settings, role, asked, true, false, &mut notes)?;
        let reason = non_empty(reason).or_else(|| grant.reason.clone());
        if reason.is_none() && settings.jit.require_reason {
            return Err(PolicyError::Invalid(
                "a reason is required: add --reason 'why you need more time'".to_string(),
            ));
        }

        let ext = self.next_id();
        let approval_deadline = later(now, settings.jit.approval_timeout)?.min(current_expiry);
        let mut events = vec![Event::Requested(Requested {
            id: ext,
            user: grant.user.clone(),
            role: grant.role.clone(),
            hosts: grant.hosts.clone(),
            reason,
            ticket: grant.ticket.clone(),
            duration,
            capped_from,
            start: None,
            approval_deadline,
            break_glass: false,
            extends: Some(id),
        })];
        if role.auto_approve {
            let expires_at = later(current_expiry, duration)?;
            events.push(Event::Approved(Approved {
                id: ext,
                by: SYSTEM_ACTOR.to_string(),
                hosts: None,
                duration,
                reason: Some(format!("role {} approves automatically", role.name)),
                starts_at: current_expiry,
                expires_at,
            }));
            notes.push(format!(
                "{ext} is approved automatically: {id} now runs until {}",
                fmt_time(expires_at)
            ));
        } else {
            notes.push(format!(
                "{ext} asks for {} more on {id}; it is waiting for a member of {} to approve it before {}",
                duration::format(duration),
                approvers_text(role),
                fmt_time(approval_deadline)
            ));
        }
        Ok(Outcome { events, notes })
    }
}

/// "roles you can request: db-admin, web", the hint after a wrong role name.
fn requestable_roles(user: &User) -> String {
    if user.can_request.is_empty() {
        "you cannot request any role; ask an admin to add one to your can_request".to_string()
    } else {
        format!("roles you can request: {}", user.can_request.join(", "))
    }
}

pub(super) fn parse_duration(text: &str) -> Result<Duration, PolicyError> {
    duration::parse(text.trim()).map_err(|e| PolicyError::Invalid(format!("--duration: {e}")))
}

/// Refuse a duration under the configured minimum.
pub(super) fn at_least_min(settings: &Settings, d: Duration) -> Result<(), PolicyError> {
    let min = settings.jit.min_duration;
    if d < min {
        return Err(PolicyError::Invalid(format!(
            "{} is shorter than the minimum of {}; give at least {}",
            duration::format(d),
            duration::format(min),
            duration::format(min)
        )));
    }
    Ok(())
}

/// Check the minimum and apply the cap, saying so in a note: a request over the maximum is
/// honoured at the maximum rather than refused, so nobody has to guess the number.
fn cap_duration(
    settings: &Settings,
    role: &Role,
    asked: Duration,
    explicit: bool,
    break_glass: bool,
    notes: &mut Vec<String>,
) -> Result<(Duration, Option<Duration>), PolicyError> {
    at_least_min(settings, asked)?;
    let role_max = settings.max_duration_for(role);
    let break_glass_max = settings.jit.break_glass_max_duration;
    let (max, which) = if break_glass && break_glass_max < role_max {
        (break_glass_max, "the break-glass maximum".to_string())
    } else {
        (role_max, format!("the maximum for {}", role.name))
    };
    if asked <= max {
        return Ok((asked, None));
    }
    let asked_text = if explicit {
        format!("requested {}", duration::format(asked))
    } else {
        format!("the default duration {}", duration::format(asked))
    };
    notes.push(format!(
        "{asked_text}, capped to {} ({which})",
        duration::format(max)
    ));
    Ok((max, Some(asked)))
}

fn check_totp(user: &User, code: Option<&str>, now: DateTime<Utc>) -> Result<(), PolicyError> {
    let Some(secret) = &user.totp_secret else {
        return Ok(());
    };
    let Some(code) = code.map(str::trim).filter(|c| !c.is_empty()) else {
        return Err(PolicyError::Invalid(
            "break-glass needs the current code from your authenticator app: add --totp CODE"
                .to_string(),
        ));
    };
    if totp::verify(secret, code, now) {
        Ok(())
    } else {
        Err(PolicyError::Forbidden(
            "that TOTP code is not valid now; use the current code from your authenticator app (and check its clock)"
                .to_string(),
        ))
    }
}

/// A pattern that reaches no configured host of the role is allowed (hosts may be added
/// later), but almost always a typo, so say so.
fn unmatched_hosts_note(settings: &Settings, role: &Role, hosts: &HostPattern) -> Option<String> {
    let reaches_one = settings
        .hosts
        .iter()
        .any(|h| hosts.matches(&h.name) && role.hosts.iter().any(|p| p.matches(&h.name)));
    (!reaches_one).then(|| {
        let role_hosts: Vec<&str> = role.hosts.iter().map(HostPattern::as_str).collect();
        format!(
            "no configured host matches both '{hosts}' and the hosts of {} ({}) yet, so this grant reaches nothing today",
            role.name,
            role_hosts.join(", ")
        )
    })
}
