//! The authorization decision: may `user` log in as `login` on `host` at `now`?
//!
//! Deny by default. An allow names what allowed it (a grant id or a standing role) and
//! until when; a deny says why and what the user could request instead, so the broker can
//! print the exact `ssh ... request ...` line.

use crate::config::{Role, Settings, User};
use crate::grant::{Grant, GrantId, GrantStatus};
use crate::state::{fmt_time, State};
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
    ///
    /// This runs on every connection, so the allow path looks only at the user's own open
    /// grants (an index, not the whole projection) and allocates only the answer.
    pub fn authorize(
        &self,
        settings: &Settings,
        user: &str,
        login: &str,
        host: &str,
        now: DateTime<Utc>,
    ) -> Decision {
        let Some(account) = settings.user(user) else {
            return deny(format!("unknown user '{user}'"), Vec::new());
        };
        if let Some(lock) = self.lock(user) {
            return deny(format!("{user} is locked: {}", lock.reason), Vec::new());
        }
        if settings.host(host).is_none() {
            return deny(format!("no host named '{host}' is configured"), Vec::new());
        }
        for name in &account.roles {
            if settings
                .role(name)
                .is_some_and(|role| role_covers(role, host) && allows_login(role, login))
            {
                return Decision::Allow {
                    by: AllowedBy::StandingRole(name.clone()),
                    role: name.clone(),
                    until: None,
                };
            }
        }
        // Of several grants, the one that lasts longest, so the session is not cut while
        // another grant would still have allowed it.
        let best = self
            .active_grants(settings, user, host, now)
            .filter(|(_, role)| allows_login(role, login))
            .map(|(grant, _)| grant)
            .max_by_key(|grant| grant.expires_at);
        match best {
            Some(grant) => Decision::Allow {
                by: AllowedBy::Grant(grant.id),
                role: grant.role.clone(),
                until: grant.expires_at,
            },
            None => self.explain_deny(settings, account, login, host, now),
        }
    }

    /// Every configured host the user can reach now, with logins and what allows it.
    ///
    /// One entry per host and per thing that allows it (a standing role, a grant), so each
    /// entry's logins are exactly what that role or grant allows.
    pub fn reachable(&self, settings: &Settings, user: &str, now: DateTime<Utc>) -> Vec<Reachable> {
        let Some(account) = settings.user(user) else {
            return Vec::new();
        };
        if self.lock(user).is_some() {
            return Vec::new();
        }
        let standing: Vec<&Role> = account
            .roles
            .iter()
            .filter_map(|name| settings.role(name))
            .collect();
        let mut out = Vec::new();
        for host in &settings.hosts {
            let host = host.name.as_str();
            for role in standing
                .iter()
                .filter(|role| role_covers(role, host) && !role.logins.is_empty())
            {
                out.push(Reachable {
                    host: host.to_string(),
                    logins: role.logins.clone(),
                    by: AllowedBy::StandingRole(role.name.clone()),
                    until: None,
                });
            }
            for (grant, role) in self.active_grants(settings, user, host, now) {
                if role.logins.is_empty() {
                    continue;
                }
                out.push(Reachable {
                    host: host.to_string(),
                    logins: role.logins.clone(),
                    by: AllowedBy::Grant(grant.id),
                    until: grant.expires_at,
                });
            }
        }
        out
    }

    /// The user's grants that are in force at `now` and reach `host` (grant pattern,
    /// narrowing pattern and the role's patterns), with their role. A grant whose role was
    /// removed from the config reaches nothing.
    fn active_grants<'a>(
        &'a self,
        settings: &'a Settings,
        user: &str,
        host: &'a str,
        now: DateTime<Utc>,
    ) -> impl Iterator<Item = (&'a Grant, &'a Role)> + 'a {
        self.open_grants_iter(user)
            .filter(move |grant| grant.is_active(now) && grant.covers_host(host))
            .filter_map(move |grant| {
                let role = settings.role(&grant.role)?;
                role_covers(role, host).then_some((grant, role))
            })
    }

    /// The deny, worded for what is nearest to working: a login the user's access does not
    /// include, a grant not yet approved or started, or nothing at all; plus the roles the
    /// user could request instead.
    fn explain_deny(
        &self,
        settings: &Settings,
        account: &User,
        login: &str,
        host: &str,
        now: DateTime<Utc>,
    ) -> Decision {
        let user = account.name.as_str();
        let mut allowed: Vec<&str> = account
            .roles
            .iter()
            .filter_map(|name| settings.role(name))
            .filter(|role| role_covers(role, host))
            .chain(
                self.active_grants(settings, user, host, now)
                    .map(|(_, role)| role),
            )
            .flat_map(|role| role.logins.iter().map(String::as_str))
            .collect();
        allowed.sort_unstable();
        allowed.dedup();

        let mut reason = if allowed.is_empty() {
            let mut reason = format!("no active grant or standing role covers {host}");
            if let Some(waiting) = self.not_yet(settings, user, login, host, now) {
                reason.push_str("; ");
                reason.push_str(&waiting);
            }
            reason
        } else {
            format!(
                "login '{login}' is not allowed on {host} by any of your grants or roles (allowed: {})",
                allowed.join(", ")
            )
        };

        let covering: Vec<&Role> = account
            .can_request
            .iter()
            .filter_map(|name| settings.role(name))
            .filter(|role| role_covers(role, host))
            .collect();
        let with_login: Vec<&Role> = covering
            .iter()
            .copied()
            .filter(|role| allows_login(role, login))
            .collect();
        let offer = if with_login.is_empty() && !covering.is_empty() {
            let roles: Vec<String> = covering
                .iter()
                .map(|role| format!("{} ({})", role.name, role.logins.join(", ")))
                .collect();
            reason.push_str(&format!(
                "; the roles you can request for {host} do not allow login '{login}': {}",
                roles.join("; ")
            ));
            covering
        } else {
            with_login
        };
        let hosts = literal_pattern(host);
        let could_request = offer
            .into_iter()
            .map(|role| Requestable {
                role: role.name.clone(),
                hosts: hosts.clone(),
            })
            .collect();
        deny(reason, could_request)
    }

    /// A grant that would allow this but is not in force yet: still pending, or approved
    /// with a later start.
    fn not_yet(
        &self,
        settings: &Settings,
        user: &str,
        login: &str,
        host: &str,
        now: DateTime<Utc>,
    ) -> Option<String> {
        self.open_grants_iter(user)
            .filter(|grant| grant.extends.is_none() && grant.covers_host(host))
            .filter(|grant| {
                settings
                    .role(&grant.role)
                    .is_some_and(|role| role_covers(role, host) && allows_login(role, login))
            })
            .find_map(|grant| match (grant.status, grant.starts_at) {
                (GrantStatus::Pending, _) => Some(format!(
                    "your request {} for {} is still waiting for approval",
                    grant.id, grant.role
                )),
                (GrantStatus::Approved, Some(start)) if start > now => Some(format!(
                    "your grant {} for {} starts at {}",
                    grant.id,
                    grant.role,
                    fmt_time(start)
                )),
                _ => None,
            })
    }
}

fn deny(reason: String, could_request: Vec<Requestable>) -> Decision {
    Decision::Deny {
        reason,
        could_request,
    }
}

fn role_covers(role: &Role, host: &str) -> bool {
    role.hosts.iter().any(|pattern| pattern.matches(host))
}

fn allows_login(role: &Role, login: &str) -> bool {
    role.logins.iter().any(|l| l == login)
}

/// A host name as a pattern that matches exactly it, for a `--hosts` suggestion: glob
/// characters in the name are escaped.
fn literal_pattern(host: &str) -> String {
    let mut out = String::with_capacity(host.len());
    for c in host.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
