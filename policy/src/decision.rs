//! The authorization decision: may `user` log in as `login` on `host` at `now`?
//!
//! Deny by default. An allow names what allowed it (a grant id or a standing role) and
//! until when; a deny says why and what the user could request instead, so the broker can
//! print the exact `ssh ... request ...` line.

use crate::config::Settings;
use crate::grant::GrantId;
use crate::state::State;
use chrono::{DateTime, Utc};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum AllowedBy {
    Grant(GrantId),
    StandingRole(String),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Requestable {
    pub role: String,
    /// The host, as a pattern to put in `--hosts`.
    pub hosts: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    Allow {
        by: AllowedBy,
        /// The role whose logins and permissions apply.
        role: String,
        /// None for standing roles.
        until: Option<DateTime<Utc>>,
    },
    Deny {
        /// One sentence: unknown host, locked, no grant covers it, login not allowed...
        reason: String,
        could_request: Vec<Requestable>,
    },
}

/// One host a user can reach now, for `hosts`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reachable {
    pub host: String,
    pub logins: Vec<String>,
    pub by: AllowedBy,
    pub until: Option<DateTime<Utc>>,
}

impl State {
    /// Decide. Checks, in order: user known and not locked; host configured; a standing
    /// role covering host and login (allow, no expiry); else the active grant covering host
    /// and login with the latest expiry (the host must match the grant's pattern, its
    /// narrowing pattern and one of the role's patterns; the login must be the role's).
    pub fn authorize(&self, settings: &Settings, user: &str, login: &str, host: &str, now: DateTime<Utc>) -> Decision {
        todo!()
    }

    /// Every configured host the user can reach now, with logins and what allows it.
    pub fn reachable(&self, settings: &Settings, user: &str, now: DateTime<Utc>) -> Vec<Reachable> {
        todo!()
    }
}
