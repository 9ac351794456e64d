//! The authorization decision: may `user` log in as `login` on `host` at `now`?
//!
//! Deny by default. An allow names what allowed it (a grant id or a standing role) and
//! until when; a deny says why and what the user could request instead, so the broker can
//! print the exact `ssh ... request ...` line.

use crate::config::{Role, Settings, User};
use crate::grant::{GrantId, GrantStatus};
use crate::state::{fmt_time, OpenGrant, State};
use chrono::{DateTime, Utc};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
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
    /// This runs on every connection, so it looks only at the user's own open grants (an
    /// index, not the whole projection, one contiguous slice), walks them once for both the
    /// allow and a deny's explanation, and matches no pattern that a comparison can rule
    /// out first.
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
        // One walk over the user's open grants serves the allow and, if it comes to that,
        // the deny's explanation: the active grants that reach the host (whatever their
        // logins) and the first one that would have allowed this but is not in force yet.
        // Of several grants that allow it, the one that lasts longest, so the session is not
        // cut while another grant would still have allowed it.
        let mut roles = RoleMemo::new(settings);
        let mut best: Option<&OpenGrant> = None;
        let mut granted: Vec<&Role> = Vec::new();
        let mut waiting: Option<&OpenGrant> = None;
        for grant in self.open_entries(user) {
            // Comparisons first, then the grant's own patterns (most hosts fail on their
            // literal prefix), then the role.
            let active = grant.is_active(now);
            if grant.extension || !(active || not_yet(grant, now)) || !grant.covers_host(host) {
                continue;
            }
            let Some(role) = roles
                .get(&grant.role)
                .filter(|role| role_covers(role, host))
            else {
                continue;
            };
            let login_ok = allows_login(role, login);
            if active {
                granted.push(role);
                if login_ok && best.is_none_or(|b| b.expires_at <= grant.expires_at) {
                    best = Some(grant);
                }
            } else if login_ok && waiting.is_none() {
                waiting = Some(grant);
            }
        }
        match best {
            Some(grant) => Decision::Allow {
                by: AllowedBy::Grant(grant.id),
                role: grant.role.clone(),
                until: grant.expires_at,
            },
            None => explain_deny(settings, account, login, host, granted, waiting),
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
        // The user's grants in force now, once, not once per host.
        let granted: Vec<(&OpenGrant, &Role)> = self
            .open_entries(user)
            .iter()
            .filter(|grant| grant.is_active(now))
            .filter_map(|grant| Some((grant, settings.role(&grant.role)?)))
            .filter(|(_, role)| !role.logins.is_empty())
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
            for (grant, role) in granted
                .iter()
                .filter(|(grant, role)| grant.covers_host(host) && role_covers(role, host))
            {
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
}

/// The deny, worded for what is nearest to working: a login the user's access does not
/// include, a grant not yet approved or started, or nothing at all; plus the roles the
/// user could request instead.
fn explain_deny(
    settings: &Settings,
    account: &User,
    login: &str,
    host: &str,
    granted: Vec<&Role>,
    waiting: Option<&OpenGrant>,
) -> Decision {
    let mut allowed: Vec<&str> = account
        .roles
        .iter()
        .filter_map(|name| settings.role(name))
        .filter(|role| role_covers(role, host))
        .chain(granted)
        .flat_map(|role| role.logins.iter().map(String::as_str))
        .collect();
    allowed.sort_unstable();
    allowed.dedup();

    let mut reason = if allowed.is_empty() {
        let mut reason = format!("no active grant or standing role covers {host}");
        if let Some(grant) = waiting {
            reason.push_str("; ");
            reason.push_str(&waiting_text(grant));
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

/// A grant that is not in force yet but will be, if all goes well: still pending, or
/// approved with a later start.
fn not_yet(grant: &OpenGrant, now: DateTime<Utc>) -> bool {
    match (grant.status, grant.starts_at) {
        (GrantStatus::Pending, _) => true,
        (GrantStatus::Approved, Some(start)) => start > now,
        _ => false,
    }
}

/// What the user is waiting for, for a deny: see [`not_yet`].
fn waiting_text(grant: &OpenGrant) -> String {
    match grant.starts_at {
        Some(start) if grant.status == GrantStatus::Approved => format!(
            "your grant {} for {} starts at {}",
            grant.id,
            grant.role,
            fmt_time(start)
        ),
        _ => format!(
            "your request {} for {} is still waiting for approval",
            grant.id, grant.role
        ),
    }
}

/// Role lookups for one decision. A user's open grants are mostly for the same one or two
/// roles, and comparing a name with the last one is cheaper than hashing it again.
struct RoleMemo<'a> {
    settings: &'a Settings,
    last: Option<(&'a str, Option<&'a Role>)>,
}

impl<'a> RoleMemo<'a> {
    fn new(settings: &'a Settings) -> Self {
        RoleMemo {
            settings,
            last: None,
        }
    }

    fn get(&mut self, name: &'a str) -> Option<&'a Role> {
        match self.last {
            Some((last, role)) if last == name => role,
            _ => {
                let role = self.settings.role(name);
                self.last = Some((name, role));
                role
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::fixtures::{ask, t, World};
    use crate::state::{ApproveArgs, RequestArgs};

    fn reason(decision: &Decision) -> &str {
        match decision {
            Decision::Deny { reason, .. } => reason,
            Decision::Allow { .. } => panic!("expected a deny, got {decision:?}"),
        }
    }

    fn offered(decision: &Decision) -> Vec<(&str, &str)> {
        match decision {
            Decision::Deny { could_request, .. } => could_request
                .iter()
                .map(|r| (r.role.as_str(), r.hosts.as_str()))
                .collect(),
            Decision::Allow { .. } => panic!("expected a deny, got {decision:?}"),
        }
    }

    #[test]
    fn unknown_users_locked_users_and_unknown_hosts_are_denied_first() {
        let mut w = World::new();
        w.granted("alice", "prod-db-01", t(9, 0));
        let d = w
            .state
            .authorize(&w.settings, "mallory", "root", "prod-db-01", t(9, 1));
        assert_eq!(reason(&d), "unknown user 'mallory'");
        let d = w
            .state
            .authorize(&w.settings, "alice", "root", "prod-db-99", t(9, 1));
        assert_eq!(reason(&d), "no host named 'prod-db-99' is configured");
        let outcome = w
            .state
            .lock_user(&w.settings, "erin", "alice", "laptop stolen", t(9, 2));
        w.commit("erin", t(9, 2), outcome);
        for (login, host) in [("root", "prod-db-01"), ("dev", "dev-01")] {
            let d = w
                .state
                .authorize(&w.settings, "alice", login, host, t(9, 3));
            assert_eq!(
                reason(&d),
                "alice is locked: laptop stolen",
                "standing roles stop too"
            );
        }
        assert!(w.state.reachable(&w.settings, "alice", t(9, 3)).is_empty());
    }

    #[test]
    fn a_standing_role_allows_without_expiry() {
        let w = World::new();
        let d = w
            .state
            .authorize(&w.settings, "alice", "dev", "dev-01", t(9, 0));
        assert_eq!(
            d,
            Decision::Allow {
                by: AllowedBy::StandingRole("developer".into()),
                role: "developer".into(),
                until: None
            }
        );
    }

    #[test]
    fn an_active_grant_allows_until_its_expiry_and_not_after() {
        let mut w = World::new();
        let id = w.granted("alice", "prod-db-*", t(9, 0));
        let allow = Decision::Allow {
            by: AllowedBy::Grant(id),
            role: "db-admin".into(),
            until: Some(t(10, 0)),
        };
        assert_eq!(
            w.state
                .authorize(&w.settings, "alice", "postgres", "prod-db-02", t(9, 59)),
            allow
        );
        let d = w
            .state
            .authorize(&w.settings, "alice", "postgres", "prod-db-02", t(10, 0));
        assert_eq!(
            reason(&d),
            "no active grant or standing role covers prod-db-02"
        );
        assert_eq!(offered(&d), vec![("db-admin", "prod-db-02")]);
        // Another user's grant is not alice's.
        let d = w
            .state
            .authorize(&w.settings, "carol", "postgres", "prod-db-02", t(9, 30));
        assert!(matches!(d, Decision::Deny { .. }));
    }

    #[test]
    fn a_grant_reaches_only_hosts_its_pattern_narrowing_and_role_all_match() {
        let mut w = World::new();
        // The request is broad, the role covers prod-db-* only, the approver narrowed to *-01.
        let id = w.request("alice", ask("db-admin", "*"), t(9, 0));
        w.approve(
            "bob",
            id,
            ApproveArgs {
                hosts: Some("*-01".into()),
                ..Default::default()
            },
            t(9, 0),
        );
        let allowed = |host: &str| {
            matches!(
                w.state
                    .authorize(&w.settings, "alice", "root", host, t(9, 5)),
                Decision::Allow { .. }
            )
        };
        assert!(allowed("prod-db-01"));
        assert!(!allowed("prod-db-02"), "outside the narrowing");
        assert!(!allowed("web-01"), "outside the role");
    }

    #[test]
    fn the_login_must_be_one_of_the_roles_and_the_deny_lists_the_allowed_ones() {
        let mut w = World::new();
        w.granted("alice", "prod-db-01", t(9, 0));
        let d = w
            .state
            .authorize(&w.settings, "alice", "admin", "prod-db-01", t(9, 5));
        assert_eq!(
            reason(&d),
            "login 'admin' is not allowed on prod-db-01 by any of your grants or roles (allowed: postgres, root); \
             the roles you can request for prod-db-01 do not allow login 'admin': db-admin (postgres, root)"
        );
        let d = w
            .state
            .authorize(&w.settings, "alice", "root", "dev-01", t(9, 5));
        assert_eq!(
            reason(&d),
            "login 'root' is not allowed on dev-01 by any of your grants or roles (allowed: dev)"
        );
        assert!(offered(&d).is_empty());
    }

    #[test]
    fn a_deny_mentions_a_request_still_waiting_and_a_grant_not_yet_started() {
        let mut w = World::new();
        w.request("alice", ask("db-admin", "prod-db-01"), t(9, 0));
        let d = w
            .state
            .authorize(&w.settings, "alice", "root", "prod-db-01", t(9, 1));
        assert_eq!(
            reason(&d),
            "no active grant or standing role covers prod-db-01; your request g1 for db-admin is still waiting for approval"
        );
        let id = w.request(
            "alice",
            RequestArgs {
                start: Some(t(14, 0)),
                ..ask("web", "web-01")
            },
            t(9, 0),
        );
        w.approve("bob", id, ApproveArgs::default(), t(9, 1));
        let d = w
            .state
            .authorize(&w.settings, "alice", "www", "web-01", t(9, 2));
        assert!(
            reason(&d).ends_with("your grant g2 for web starts at 2026-03-02T14:00:00Z"),
            "{d:?}"
        );
        assert_eq!(
            offered(&d),
            vec![("web", "web-01")],
            "deploy does not allow www"
        );
    }

    #[test]
    fn of_several_grants_the_longest_lasting_allows() {
        let mut w = World::new();
        w.granted("alice", "prod-db-01", t(9, 0));
        let long = w.request(
            "alice",
            RequestArgs {
                duration: Some("3h".into()),
                ..ask("db-admin", "prod-db-*")
            },
            t(9, 0),
        );
        w.approve("bob", long, ApproveArgs::default(), t(9, 0));
        w.granted("alice", "prod-db-01", t(9, 30));
        let d = w
            .state
            .authorize(&w.settings, "alice", "root", "prod-db-01", t(9, 45));
        assert_eq!(
            d,
            Decision::Allow {
                by: AllowedBy::Grant(long),
                role: "db-admin".into(),
                until: Some(t(12, 0))
            }
        );
    }

    #[test]
    fn reachable_lists_each_host_with_what_allows_it() {
        let mut w = World::new();
        let id = w.granted("alice", "prod-db-01", t(9, 0));
        let got = w.state.reachable(&w.settings, "alice", t(9, 5));
        assert_eq!(
            got,
            vec![
                Reachable {
                    host: "prod-db-01".into(),
                    logins: vec!["postgres".into(), "root".into()],
                    by: AllowedBy::Grant(id),
                    until: Some(t(10, 0)),
                },
                Reachable {
                    host: "dev-01".into(),
                    logins: vec!["dev".into()],
                    by: AllowedBy::StandingRole("developer".into()),
                    until: None,
                },
            ]
        );
        assert!(w.state.reachable(&w.settings, "nobody", t(9, 5)).is_empty());
    }

    #[test]
    fn requestable_hosts_are_escaped_into_literal_patterns() {
        for host in ["prod-db-01", "db[1]*?\\x"] {
            let pattern = crate::pattern::HostPattern::parse(&literal_pattern(host)).unwrap();
            assert_eq!(
                pattern.literal().as_deref(),
                Some(host),
                "names exactly {host}"
            );
        }
        assert_eq!(literal_pattern("prod-db-01"), "prod-db-01");
    }

    /// With 100k grants in the projection the decision still looks only at the user's own
    /// few. Timing in a unit test is noisy, so the bound is loose: a scan of the whole
    /// projection would take milliseconds even in release; the index takes microseconds.
    #[test]
    fn authorize_stays_fast_with_100k_grants() {
        let mut w = World::new();
        let users: Vec<String> = (0..5_000).map(|i| format!("user{i}")).collect();
        let mut next = 1u64;
        for round in 0..20 {
            for user in &users {
                let id = crate::grant::GrantId(next);
                next += 1;
                let requested = crate::event::Requested {
                    id,
                    user: user.clone(),
                    role: "db-admin".into(),
                    hosts: crate::pattern::HostPattern::parse("prod-db-*").unwrap(),
                    reason: None,
                    ticket: None,
                    duration: chrono::Duration::hours(1),
                    capped_from: None,
                    start: None,
                    approval_deadline: t(9, 0) + chrono::Duration::hours(24),
                    break_glass: false,
                    extends: None,
                };
                w.apply(crate::Event::Requested(requested), t(9, 0), user);
                // Most grants are history; a few per user are open.
                let event = if round < 17 {
                    crate::Event::Cancelled {
                        id,
                        by: user.clone(),
                    }
                } else {
                    crate::Event::Approved(crate::event::Approved {
                        id,
                        by: "bob".into(),
                        hosts: None,
                        duration: chrono::Duration::hours(1),
                        reason: None,
                        starts_at: t(9, 0),
                        expires_at: t(10, 0),
                    })
                };
                w.apply(event, t(9, 0), "bob");
            }
        }
        assert_eq!(w.state.len(), 100_000);
        // The users are not in the config, so use alice's open grant alongside them.
        let id = w.granted("alice", "prod-db-01", t(9, 0));
        let mut samples = Vec::with_capacity(2_000);
        for _ in 0..2_000 {
            let start = std::time::Instant::now();
            let d = w
                .state
                .authorize(&w.settings, "alice", "root", "prod-db-01", t(9, 30));
            samples.push(start.elapsed());
            assert!(matches!(d, Decision::Allow { by: AllowedBy::Grant(g), .. } if g == id));
        }
        samples.sort();
        let p99 = samples[samples.len() * 99 / 100];
        eprintln!(
            "authorize over {} grants: p50 {:?}, p99 {:?}",
            w.state.len(),
            samples[samples.len() / 2],
            p99
        );
        assert!(p99 < std::time::Duration::from_millis(1), "p99 {p99:?}");
        assert_eq!(w.state.next_deadline(), Some(t(10, 0)));
    }
}
