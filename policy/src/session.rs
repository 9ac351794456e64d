//! Proxied sessions as the policy sees them: a decision at connect time that becomes a
//! durable `session_started` (or `session_denied`) event before anything is minted, the set
//! of sessions the log says are open, and who may kill one.
//!
//! Live details (bytes, sockets) belong to the broker; the log records start and end, so a
//! broker restarting after a crash knows which sessions it must close in the audit trail.

use crate::config::Settings;
use crate::decision::{AllowedBy, Decision, Requestable};
use crate::event::Event;
use crate::state::{Outcome, PolicyError, State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A session id, shown as `s17`; sequential per log like grant ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s{}", self.0)
    }
}

impl std::str::FromStr for SessionId {
    type Err = String;
    /// Accepts `s17`, `S17` and `17`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s.strip_prefix(['s', 'S']).unwrap_or(s);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "{s:?} is not a session id: ids look like s17 (run 'sessions' to see them)"
            ));
        }
        digits
            .parse()
            .map(SessionId)
            .map_err(|_| format!("{s:?} is not a session id: the number is too large"))
    }
}

impl Serialize for SessionId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SessionId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A session the log says started and has not ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenSession {
    pub id: SessionId,
    pub user: String,
    pub login: String,
    pub host: String,
    pub by: AllowedBy,
    pub role: String,
    pub started_at: DateTime<Utc>,
}

/// `session_started`: the decision that let a connection through, before any certificate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionStarted {
    pub id: SessionId,
    pub user: String,
    pub login: String,
    pub host: String,
    pub by: AllowedBy,
    pub role: String,
    /// The grant's expiry at start (None for standing roles).
    pub until: Option<DateTime<Utc>>,
    /// The client's address.
    pub source: String,
}

/// `session_ended`: how a session ended, with its totals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionEnded {
    pub id: SessionId,
    /// `closed` (client or target ended it), `revoked`, `expired`, `killed`, `locked`,
    /// `host_key_mismatch`, `unreachable`, `target_refused_certificate`, `relay_overflow`,
    /// `recording_failed`, `broker_shutdown`, `broker_restart`.
    pub cause: String,
    #[serde(default)]
    pub detail: Option<String>,
    pub duration_ms: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// The exit status of the last command or shell, when the target sent one.
    #[serde(default)]
    pub exit_status: Option<u32>,
    /// For a cut: milliseconds from the decision to both sockets closed.
    #[serde(default)]
    pub cut_ms: Option<u64>,
}

/// What [`State::start_session`] decided, for the broker to act on.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionStart {
    Allowed(SessionStarted),
    Denied {
        reason: String,
        could_request: Vec<Requestable>,
    },
}

impl State {
    /// Decide whether `user` may open `login@host` now. Returns the event to record (always
    /// one: `session_started` or `session_denied`, since every denial is audited) and the
    /// decision.
    pub fn start_session(
        &self,
        settings: &Settings,
        user: &str,
        login: &str,
        host: &str,
        source: &str,
        now: DateTime<Utc>,
    ) -> (Outcome, SessionStart) {
        match self.authorize(settings, user, login, host, now) {
            Decision::Allow { by, role, until } => {
                let started = SessionStarted {
                    id: SessionId(self.next_session_id()),
                    user: user.to_string(),
                    login: login.to_string(),
                    host: host.to_string(),
                    by,
                    role,
                    until,
                    source: source.to_string(),
                };
                let outcome = Outcome {
                    events: vec![Event::SessionStarted(started.clone())],
                    notes: vec![],
                };
                (outcome, SessionStart::Allowed(started))
            }
            Decision::Deny {
                reason,
                could_request,
            } => {
                let event = Event::SessionDenied {
                    user: user.to_string(),
                    login: login.to_string(),
                    host: host.to_string(),
                    source: source.to_string(),
                    reason: reason.clone(),
                };
                (
                    Outcome {
                        events: vec![event],
                        notes: vec![],
                    },
                    SessionStart::Denied {
                        reason,
                        could_request,
                    },
                )
            }
        }
    }

    /// Kill a live session: admins, approvers of its role, or its own user.
    pub fn kill_session(
        &self,
        settings: &Settings,
        actor: &str,
        id: SessionId,
        reason: Option<&str>,
        _now: DateTime<Utc>,
    ) -> Result<Outcome, PolicyError> {
        let Some(s) = self.open_session(id) else {
            return Err(PolicyError::NotFound(format!(
                "no live session {id}; run 'sessions' to see them"
            )));
        };
        let allowed =
            actor == s.user || settings.is_admin(actor) || settings.is_approver_for(actor, &s.role);
        if !allowed {
            return Err(PolicyError::Forbidden(format!(
                "only admins, approvers of {} and {} may kill {id}",
                s.role, s.user
            )));
        }
        Ok(Outcome {
            events: vec![Event::SessionKilled {
                id,
                by: actor.to_string(),
                reason: reason.map(str::to_string),
            }],
            notes: vec![],
        })
    }

    /// May `actor` see this session in `sessions`? Its user, admins, approvers of its role.
    pub fn can_see_session(&self, settings: &Settings, actor: &str, s: &OpenSession) -> bool {
        actor == s.user || settings.is_admin(actor) || settings.is_approver_for(actor, &s.role)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::fixtures::{t, World};
    use crate::state::SYSTEM_ACTOR;

    fn start(
        w: &mut World,
        user: &str,
        login: &str,
        host: &str,
        now: DateTime<Utc>,
    ) -> SessionStart {
        let (outcome, start) =
            w.state
                .start_session(&w.settings, user, login, host, "127.0.0.1:5000", now);
        w.commit(user, now, Ok(outcome));
        start
    }

    fn ended(id: SessionId) -> Event {
        Event::SessionEnded(SessionEnded {
            id,
            cause: "closed".into(),
            detail: None,
            duration_ms: 5,
            bytes_in: 1,
            bytes_out: 2,
            exit_status: Some(0),
            cut_ms: None,
        })
    }

    #[test]
    fn an_allowed_session_is_recorded_with_a_fresh_id_and_its_grant() {
        let mut w = World::new();
        let g = w.granted("alice", "prod-db-*", t(9, 0));
        let SessionStart::Allowed(s1) = start(&mut w, "alice", "root", "prod-db-01", t(9, 1))
        else {
            panic!("expected allow")
        };
        assert_eq!(s1.id, SessionId(1));
        assert_eq!(s1.by, AllowedBy::Grant(g));
        assert_eq!(s1.role, "db-admin");
        assert!(s1.until.is_some());
        let SessionStart::Allowed(s2) = start(&mut w, "alice", "postgres", "prod-db-02", t(9, 2))
        else {
            panic!("expected allow")
        };
        assert_eq!(s2.id, SessionId(2), "ids never repeat");
        assert_eq!(w.state.open_sessions().count(), 2);
        w.apply(ended(s1.id), t(9, 3), SYSTEM_ACTOR);
        assert_eq!(w.state.open_sessions().count(), 1);
        assert!(w.state.open_session(s1.id).is_none());
    }

    #[test]
    fn a_denied_session_is_recorded_with_the_reason_and_what_to_request() {
        let mut w = World::new();
        let SessionStart::Denied {
            reason,
            could_request,
        } = start(&mut w, "alice", "root", "prod-db-01", t(9, 0))
        else {
            panic!("expected deny")
        };
        assert!(!reason.is_empty());
        assert!(
            could_request.iter().any(|r| r.role == "db-admin"),
            "{could_request:?}"
        );
        let (last, _, _) = w.log.last().expect("denial is logged");
        assert!(
            matches!(last, Event::SessionDenied { user, host, .. } if user == "alice" && host == "prod-db-01")
        );
        assert_eq!(w.state.open_sessions().count(), 0);
    }

    #[test]
    fn session_ids_continue_after_replay() {
        let mut w = World::new();
        w.granted("alice", "prod-db-*", t(9, 0));
        start(&mut w, "alice", "root", "prod-db-01", t(9, 1));
        let mut replayed = State::new();
        for (e, at, actor) in &w.log {
            replayed.apply(e, *at, actor).expect("replays");
        }
        assert_eq!(replayed.next_session_id(), 2);
        assert_eq!(replayed.open_sessions().count(), 1);
    }

    #[test]
    fn a_reused_session_id_in_the_log_is_refused() {
        let mut w = World::new();
        w.granted("alice", "prod-db-*", t(9, 0));
        let SessionStart::Allowed(s) = start(&mut w, "alice", "root", "prod-db-01", t(9, 1)) else {
            panic!()
        };
        let again = Event::SessionStarted(s);
        assert!(w.state.apply(&again, t(9, 2), "alice").is_err());
    }

    #[test]
    fn who_may_kill_a_session() {
        let mut w = World::new();
        w.granted("alice", "prod-db-*", t(9, 0));
        let SessionStart::Allowed(s) = start(&mut w, "alice", "root", "prod-db-01", t(9, 1)) else {
            panic!()
        };
        // bob approves db-admin, erin is an admin, alice owns it: all may.
        for actor in ["bob", "erin", "alice"] {
            let out = w
                .state
                .kill_session(&w.settings, actor, s.id, Some("enough"), t(9, 2))
                .expect(actor);
            assert!(matches!(&out.events[0], Event::SessionKilled { by, .. } if by == actor));
        }
        // carol is neither.
        let e = w
            .state
            .kill_session(&w.settings, "carol", s.id, None, t(9, 2))
            .unwrap_err();
        assert!(matches!(e, PolicyError::Forbidden(_)), "{e:?}");
        let e = w
            .state
            .kill_session(&w.settings, "bob", SessionId(99), None, t(9, 2))
            .unwrap_err();
        assert!(
            matches!(e, PolicyError::NotFound(ref m) if m.contains("sessions")),
            "{e:?}"
        );
    }

    #[test]
    fn session_ids_parse_and_print() {
        assert_eq!("s17".parse::<SessionId>(), Ok(SessionId(17)));
        assert_eq!("S3".parse::<SessionId>(), Ok(SessionId(3)));
        assert_eq!("4".parse::<SessionId>(), Ok(SessionId(4)));
        assert!("g3".parse::<SessionId>().is_err());
        assert!("s".parse::<SessionId>().is_err());
        assert!("s99999999999999999999999".parse::<SessionId>().is_err());
        assert_eq!(SessionId(5).to_string(), "s5");
        let json = serde_json::to_string(&SessionId(5)).unwrap();
        assert_eq!(json, "\"s5\"");
    }
}
