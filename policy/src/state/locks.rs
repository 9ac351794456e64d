//! Locking a user out, and letting them back in.

use super::{fmt_time, non_empty, Outcome, PolicyError, State};
use crate::config::Settings;
use crate::event::Event;
use crate::grant::GrantStatus;
use chrono::{DateTime, Utc};

impl State {
    /// Lock a user out (admins only; not oneself).
    ///
    /// Grants survive a lock (they stop working while it lasts and run on their own clock),
    /// so an unlock restores exactly what was approved and nothing more.
    pub fn lock_user(
        &self,
        settings: &Settings,
        actor: &str,
        user: &str,
        reason: &str,
        _now: DateTime<Utc>,
    ) -> Result<Outcome, PolicyError> {
        if !settings.is_admin(actor) {
            return Err(PolicyError::Forbidden(
                "only admins can lock users out".to_string(),
            ));
        }
        if actor == user {
            return Err(PolicyError::Forbidden(
                "you cannot lock yourself out; ask another admin".to_string(),
            ));
        }
        if settings.user(user).is_none() {
            return Err(PolicyError::NotFound(format!(
                "no user named '{user}' is configured; check the spelling against the config"
            )));
        }
        if let Some(lock) = self.locked.get(user) {
            return Err(PolicyError::Conflict(format!(
                "{user} is already locked (by {} at {}: {})",
                lock.by,
                fmt_time(lock.at),
                lock.reason
            )));
        }
        let Some(reason) = non_empty(Some(reason)) else {
            return Err(PolicyError::Invalid(format!(
                "a reason is required to lock a user: add --reason 'why', which {user} will see"
            )));
        };
        let active = self
            .open_grants_iter(user)
            .filter(|g| g.status == GrantStatus::Approved && g.extends.is_none())
            .count();
        let note = format!(
            "{user} is locked out: their standing roles and {active} approved grant(s) stop working and their sessions are cut, until 'unlock {user}'"
        );
        Ok(Outcome {
            events: vec![Event::Locked {
                user: user.to_string(),
                by: actor.to_string(),
                reason,
            }],
            notes: vec![note],
        })
    }

    /// Let a locked user back in (admins only; not oneself, or a lock on an admin would
    /// mean nothing).
    pub fn unlock_user(
        &self,
        settings: &Settings,
        actor: &str,
        user: &str,
        _now: DateTime<Utc>,
    ) -> Result<Outcome, PolicyError> {
        if !settings.is_admin(actor) {
            return Err(PolicyError::Forbidden(
                "only admins can unlock users".to_string(),
            ));
        }
        if actor == user {
            return Err(PolicyError::Forbidden(
                "you cannot unlock yourself; ask another admin".to_string(),
            ));
        }
        if !self.locked.contains_key(user) {
            return Err(PolicyError::Conflict(format!("{user} is not locked")));
        }
        Ok(Outcome {
            events: vec![Event::Unlocked {
                user: user.to_string(),
                by: actor.to_string(),
            }],
            notes: vec![format!(
                "{user} is unlocked; grants still within their time work again"
            )],
        })
    }
}
