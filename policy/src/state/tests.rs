//! The state machine, the projection and every operation's success and refusal paths.

use super::fixtures::{ask, hours, minutes, settings, settings_from, t, World, CONFIG, DAVE_TOTP};
use super::*;
use crate::event::Approved;
use crate::grant::{Action, GrantStatus};
use crate::pattern::HostPattern;
use crate::totp;

fn err<T: std::fmt::Debug>(result: Result<T, PolicyError>) -> PolicyError {
    match result {
        Ok(v) => panic!("expected a refusal, got {v:?}"),
        Err(e) => e,
    }
}

fn message(e: &PolicyError) -> String {
    e.to_string()
}

// ---- the transition table ----

#[test]
fn transition_table_allows_exactly_the_documented_moves() {
    use Action::*;
    use GrantStatus::*;
    let statuses = [Pending, Approved, Denied, Cancelled, Expired, Revoked];
    let actions = [Approve, Deny, Cancel, Revoke, Expire];
    let legal = [
        (Pending, Approve, Approved),
        (Pending, Deny, Denied),
        (Pending, Cancel, Cancelled),
        (Pending, Expire, Expired),
        (Approved, Revoke, Revoked),
        (Approved, Expire, Expired),
    ];
    for from in statuses {
        for action in actions {
            let expected = legal
                .iter()
                .find(|(f, a, _)| *f == from && *a == action)
                .map(|&(_, _, to)| to);
            match (from.transition(action), expected) {
                (Ok(to), Some(want)) => assert_eq!(to, want, "{from} + {action}"),
                (Err(e), None) => {
                    assert_eq!(e, crate::grant::IllegalTransition { from, action });
                    assert_eq!(
                        e.to_string(),
                        format!("cannot {action} a grant that is {from}")
                    );
                }
                (got, want) => panic!("{from} + {action}: got {got:?}, want {want:?}"),
            }
        }
    }
}

#[test]
fn only_pending_and_approved_are_open() {
    for (status, is_final) in [
        (GrantStatus::Pending, false),
        (GrantStatus::Approved, false),
        (GrantStatus::Denied, true),
        (GrantStatus::Cancelled, true),
        (GrantStatus::Expired, true),
        (GrantStatus::Revoked, true),
    ] {
        assert_eq!(status.is_final(), is_final, "{status}");
        // The display name is the JSON name.
        assert_eq!(
            serde_json::to_value(status).unwrap(),
            serde_json::json!(status.as_str())
        );
    }
}

// ---- apply ----

#[test]
fn requested_creates_a_pending_grant_that_times_out_at_the_approval_deadline() {
    let mut w = World::new();
    let id = w.request("alice", ask("db-admin", "prod-db-*"), t(9, 0));
    let g = w.state.grant(id).unwrap();
    assert_eq!(id, GrantId(1));
    assert_eq!(g.status, GrantStatus::Pending);
    assert_eq!(g.user, "alice");
    assert_eq!(g.role, "db-admin");
    assert_eq!(g.hosts.as_str(), "prod-db-*");
    assert_eq!(g.created_at, t(9, 0));
    assert_eq!(g.expires_at, Some(t(9, 0) + hours(24)));
    assert_eq!(g.requested_duration, hours(1));
    assert_eq!(g.history.len(), 1);
    assert_eq!(g.history[0].action, "requested");
    assert_eq!(g.history[0].actor, "alice");
    assert_eq!(w.state.open_grants_of("alice").len(), 1);
    assert_eq!(w.state.next_deadline(), Some(t(9, 0) + hours(24)));
}

#[test]
fn approved_sets_the_window_and_keeps_the_requested_duration() {
    let mut w = World::new();
    let id = w.request("alice", ask("db-admin", "prod-db-*"), t(9, 0));
    w.approve(
        "bob",
        id,
        ApproveArgs {
            reason: Some("ok".into()),
            ..Default::default()
        },
        t(9, 30),
    );
    let g = w.state.grant(id).unwrap();
    assert_eq!(g.status, GrantStatus::Approved);
    assert_eq!(g.approved_by.as_deref(), Some("bob"));
    assert_eq!(g.approved_at, Some(t(9, 30)));
    assert_eq!(g.approval_reason.as_deref(), Some("ok"));
    // The access clock starts at approval, not at request time.
    assert_eq!(g.starts_at, Some(t(9, 30)));
    assert_eq!(g.expires_at, Some(t(10, 30)));
    assert_eq!(g.requested_duration, hours(1));
    assert_eq!(
        g.history
            .iter()
            .map(|h| h.action.as_str())
            .collect::<Vec<_>>(),
        ["requested", "approved"]
    );
    assert!(g.is_active(t(9, 30)));
    assert!(g.is_active(t(10, 29)));
    assert!(!g.is_active(t(10, 30)), "expiry is exclusive");
    assert!(!g.is_active(t(9, 29)));
    assert_eq!(w.state.next_deadline(), Some(t(10, 30)));
}

#[test]
fn final_events_record_who_why_and_when_and_close_the_grant() {
    let mut w = World::new();
    let denied = w.request("alice", ask("db-admin", "prod-db-01"), t(9, 0));
    let cancelled = w.request("alice", ask("db-admin", "prod-db-01"), t(9, 0));
    let revoked = w.granted("alice", "prod-db-01", t(9, 0));
    w.apply(
        Event::Denied {
            id: denied,
            by: "bob".into(),
            reason: "no ticket".into(),
        },
        t(9, 5),
        "bob",
    );
    w.apply(
        Event::Cancelled {
            id: cancelled,
            by: "alice".into(),
        },
        t(9, 6),
        "alice",
    );
    w.apply(
        Event::Revoked {
            id: revoked,
            by: "bob".into(),
            reason: Some("done".into()),
        },
        t(9, 7),
        "bob",
    );

    let g = w.state.grant(denied).unwrap();
    assert_eq!(
        (g.status, g.denied_by.as_deref(), g.denial_reason.as_deref()),
        (GrantStatus::Denied, Some("bob"), Some("no ticket"))
    );
    assert_eq!(g.ended_at, Some(t(9, 5)));
    let g = w.state.grant(cancelled).unwrap();
    assert_eq!(
        (g.status, g.cancelled_by.as_deref(), g.ended_at),
        (GrantStatus::Cancelled, Some("alice"), Some(t(9, 6)))
    );
    let g = w.state.grant(revoked).unwrap();
    assert_eq!(
        (
            g.status,
            g.revoked_by.as_deref(),
            g.revoke_reason.as_deref()
        ),
        (GrantStatus::Revoked, Some("bob"), Some("done"))
    );
    assert_eq!(g.ended_at, Some(t(9, 7)));
    assert_eq!(g.history.last().unwrap().action, "revoked");

    assert!(w.state.open_grants_of("alice").is_empty());
    assert_eq!(w.state.next_deadline(), None, "nothing left to fall due");
}

#[test]
fn apply_refuses_a_log_that_does_not_fit_and_leaves_the_state_as_it_was() {
    let mut w = World::new();
    let id = w.granted("alice", "prod-db-01", t(9, 0));
    let before: Vec<Grant> = w.state.grants().cloned().collect();
    let deadline = w.state.next_deadline();

    let again = Event::Approved(Approved {
        id,
        by: "bob".into(),
        hosts: None,
        duration: hours(1),
        reason: None,
        starts_at: t(9, 0),
        expires_at: t(12, 0),
    });
    assert_eq!(
        w.state.apply(&again, t(9, 1), "bob"),
        Err(ApplyError::Illegal {
            id,
            source: crate::grant::IllegalTransition {
                from: GrantStatus::Approved,
                action: Action::Approve
            }
        })
    );
    assert_eq!(
        w.state.apply(
            &Event::Cancelled {
                id: GrantId(99),
                by: "alice".into()
            },
            t(9, 1),
            "alice"
        ),
        Err(ApplyError::UnknownGrant(GrantId(99)))
    );
    let Event::Requested(mut dup) = w.log[0].0.clone() else {
        panic!("first event is the request")
    };
    dup.user = "carol".into();
    assert_eq!(
        w.state
            .apply(&Event::Requested(dup.clone()), t(9, 1), "carol"),
        Err(ApplyError::DuplicateId(id))
    );
    dup.id = GrantId(50);
    dup.extends = Some(GrantId(49));
    assert_eq!(
        w.state.apply(&Event::Requested(dup), t(9, 1), "carol"),
        Err(ApplyError::UnknownGrant(GrantId(49)))
    );

    assert_eq!(w.state.grants().cloned().collect::<Vec<_>>(), before);
    assert_eq!(w.state.next_deadline(), deadline);
    assert!(w.state.open_grants_of("carol").is_empty());
}

#[test]
fn ids_continue_after_the_highest_seen() {
    let mut w = World::new();
    let mut args = ask("db-admin", "prod-db-01");
    let first = w.request("alice", args.clone(), t(9, 0));
    let Event::Requested(mut r) = w.log[0].0.clone() else {
        panic!()
    };
    r.id = GrantId(41);
    w.apply(Event::Requested(r), t(9, 1), "alice");
    args.reason = Some("more".into());
    let next = w.request("alice", args, t(9, 2));
    assert_eq!((first, next), (GrantId(1), GrantId(42)));
    // A default-constructed state still never hands out g0.
    let outcome = State::default()
        .request(
            &settings(),
            "alice",
            &ask("db-admin", "prod-db-01"),
            t(9, 0),
        )
        .unwrap();
    assert_eq!(outcome.events[0].grant_id(), Some(GrantId(1)));
}

#[test]
fn audit_only_events_change_nothing() {
    let mut w = World::new();
    let id = w.granted("alice", "prod-db-01", t(9, 0));
    let before: Vec<Grant> = w.state.grants().cloned().collect();
    w.apply(
        Event::AuthRejected {
            fingerprint: "SHA256:x".into(),
            source: "10.0.0.9:5555".into(),
            login: "root".into(),
        },
        t(9, 1),
        "unknown",
    );
    w.apply(
        Event::BrokerStarted {
            config_sha256: "ab".into(),
            version: "0.1.0".into(),
        },
        t(9, 1),
        SYSTEM_ACTOR,
    );
    assert_eq!(w.state.grants().cloned().collect::<Vec<_>>(), before);
    assert_eq!(
        w.state.ended_by(&w.log.last().unwrap().0),
        Vec::<GrantId>::new()
    );
    assert!(w.state.grant(id).unwrap().is_active(t(9, 1)));
}

// ---- deadlines ----

#[test]
fn an_unapproved_request_times_out_through_due() {
    let mut w = World::new();
    let id = w.request("alice", ask("db-admin", "prod-db-01"), t(9, 0));
    let deadline = t(9, 0) + hours(24);
    assert!(w
        .state
        .due(deadline - chrono::Duration::seconds(1))
        .is_empty());
    assert_eq!(
        w.state.due(deadline),
        vec![Event::Expired { id, due: deadline }]
    );
    // Approving after the deadline (before the timer wrote it) is refused all the same.
    let e = err(w
        .state
        .approve(&w.settings, "bob", id, &ApproveArgs::default(), deadline));
    assert!(matches!(e, PolicyError::Conflict(_)), "{e:?}");
    assert!(message(&e).contains("timed out"), "{e}");

    let expired = w.state.due(deadline)[0].clone();
    assert_eq!(
        w.state.ended_by(&expired),
        Vec::<GrantId>::new(),
        "a timed-out request held no access"
    );
    w.tick(deadline + hours(1));
    let g = w.state.grant(id).unwrap();
    assert_eq!(g.status, GrantStatus::Expired);
    assert_eq!(
        g.ended_at,
        Some(deadline),
        "ended when it fell due, not when the line was written"
    );
    assert_eq!(
        g.history.last().unwrap().detail.as_deref(),
        Some("nobody approved it in time")
    );
    assert_eq!(w.state.next_deadline(), None);
}

#[test]
fn an_approved_grant_expires_through_due_with_its_own_due_time() {
    let mut w = World::new();
    let early = w.granted("alice", "prod-db-01", t(9, 0));
    let late = w.granted("carol", "prod-db-02", t(9, 30));
    assert_eq!(w.state.next_deadline(), Some(t(10, 0)));
    // After downtime both fell due: one pass writes both, in due order, each with its time.
    let due = w.state.due(t(12, 0));
    assert_eq!(
        due,
        vec![
            Event::Expired {
                id: early,
                due: t(10, 0)
            },
            Event::Expired {
                id: late,
                due: t(10, 30)
            }
        ]
    );
    assert_eq!(w.state.ended_by(&due[0]), vec![early]);
    w.tick(t(12, 0));
    for (id, end) in [(early, t(10, 0)), (late, t(10, 30))] {
        let g = w.state.grant(id).unwrap();
        assert_eq!((g.status, g.ended_at), (GrantStatus::Expired, Some(end)));
        assert_eq!(
            w.state.ended_by(&Event::Expired { id, due: end }),
            vec![id],
            "also after apply"
        );
    }
    assert!(w.state.due(t(23, 0)).is_empty());
}

// ---- request ----

#[test]
fn request_waits_for_an_approver_and_says_who() {
    let w = World::new();
    let outcome = w
        .state
        .request(&w.settings, "alice", &ask("db-admin", "prod-db-*"), t(9, 0))
        .unwrap();
    assert_eq!(outcome.events.len(), 1);
    let Event::Requested(r) = &outcome.events[0] else {
        panic!("{outcome:?}")
    };
    assert_eq!(r.approval_deadline, t(9, 0) + hours(24));
    assert_eq!(
        (r.duration, r.capped_from, r.break_glass, r.extends),
        (hours(1), None, false, None)
    );
    assert!(
        outcome.notes.iter().any(|n| n.contains("security-admin")),
        "{:?}",
        outcome.notes
    );
    assert_eq!(w.state.len(), 0, "operations never mutate");
}

#[test]
fn request_refuses_unknown_and_unrequestable_roles_naming_the_requestable_ones() {
    let w = World::new();
    let e = err(w
        .state
        .request(&w.settings, "alice", &ask("db-admn", "prod-db-01"), t(9, 0)));
    assert_eq!(
        e,
        PolicyError::Invalid(
            "role 'db-admn' does not exist; roles you can request: db-admin, web, deploy".into()
        )
    );
    let e = err(w
        .state
        .request(&w.settings, "carol", &ask("web", "web-01"), t(9, 0)));
    assert_eq!(
        e,
        PolicyError::Forbidden(
            "you cannot request role 'web'; roles you can request: db-admin".into()
        )
    );
    let e = err(w
        .state
        .request(&w.settings, "bob", &ask("web", "web-01"), t(9, 0)));
    assert!(message(&e).contains("you cannot request any role"), "{e}");
    let e = err(w
        .state
        .request(&w.settings, "mallory", &ask("web", "web-01"), t(9, 0)));
    assert!(matches!(e, PolicyError::Forbidden(_)), "{e:?}");
}

#[test]
fn request_refuses_an_invalid_pattern_and_notes_one_that_reaches_nothing() {
    let w = World::new();
    let e = err(w.state.request(
        &w.settings,
        "alice",
        &ask("db-admin", "prod-db-[0-"),
        t(9, 0),
    ));
    assert!(
        matches!(&e, PolicyError::Invalid(m) if m.starts_with("--hosts: ")),
        "{e:?}"
    );
    let outcome = w
        .state
        .request(&w.settings, "alice", &ask("db-admin", "web-*"), t(9, 0))
        .unwrap();
    assert!(
        outcome.notes.iter().any(|n| n.contains("reaches nothing")),
        "{:?}",
        outcome.notes
    );
}

#[test]
fn request_over_the_role_maximum_is_capped_and_says_so() {
    let w = World::new();
    let args = RequestArgs {
        duration: Some("12h".into()),
        ..ask("db-admin", "prod-db-01")
    };
    let outcome = w
        .state
        .request(&w.settings, "alice", &args, t(9, 0))
        .unwrap();
    let Event::Requested(r) = &outcome.events[0] else {
        panic!()
    };
    assert_eq!((r.duration, r.capped_from), (hours(4), Some(hours(12))));
    assert!(
        outcome
            .notes
            .contains(&"requested 12h, capped to 4h (the maximum for db-admin)".to_string()),
        "{:?}",
        outcome.notes
    );
    // The global maximum caps a role without its own.
    let args = RequestArgs {
        duration: Some("10h".into()),
        ..ask("web", "web-01")
    };
    let outcome = w
        .state
        .request(&w.settings, "alice", &args, t(9, 0))
        .unwrap();
    let Event::Requested(r) = &outcome.events[0] else {
        panic!()
    };
    assert_eq!((r.duration, r.capped_from), (hours(8), Some(hours(10))));
}

#[test]
fn request_refuses_bad_and_too_short_durations() {
    let w = World::new();
    for (text, needle) in [
        ("1s", "shorter than the minimum of 1m"),
        ("soon", "--duration"),
        ("0m", "--duration"),
    ] {
        let args = RequestArgs {
            duration: Some(text.into()),
            ..ask("db-admin", "prod-db-01")
        };
        let e = err(w.state.request(&w.settings, "alice", &args, t(9, 0)));
        assert!(
            matches!(&e, PolicyError::Invalid(m) if m.contains(needle)),
            "{text}: {e:?}"
        );
    }
}

#[test]
fn request_requires_a_reason_and_a_ticket_when_configured() {
    let w = World::new();
    for blank in [None, Some("   ".to_string())] {
        let args = RequestArgs {
            reason: blank,
            ..ask("db-admin", "prod-db-01")
        };
        let e = err(w.state.request(&w.settings, "alice", &args, t(9, 0)));
        assert!(
            matches!(&e, PolicyError::Invalid(m) if m.contains("--reason")),
            "{e:?}"
        );
    }
    let relaxed = settings_from(&CONFIG.replace(
        "require_reason = true",
        "require_reason = false\nrequire_ticket = true",
    ));
    let args = RequestArgs {
        reason: None,
        ..ask("db-admin", "prod-db-01")
    };
    let e = err(w.state.request(&relaxed, "alice", &args, t(9, 0)));
    assert!(
        matches!(&e, PolicyError::Invalid(m) if m.contains("--ticket")),
        "{e:?}"
    );
    let args = RequestArgs {
        reason: None,
        ticket: Some("https://t/1".into()),
        ..ask("db-admin", "prod-db-01")
    };
    let outcome = w.state.request(&relaxed, "alice", &args, t(9, 0)).unwrap();
    let Event::Requested(r) = &outcome.events[0] else {
        panic!()
    };
    assert_eq!(
        (r.reason.as_deref(), r.ticket.as_deref()),
        (None, Some("https://t/1"))
    );
}

#[test]
fn a_start_in_the_past_means_now_and_too_far_ahead_is_refused() {
    let mut w = World::new();
    let args = RequestArgs {
        start: Some(t(8, 0)),
        ..ask("db-admin", "prod-db-01")
    };
    let outcome = w
        .state
        .request(&w.settings, "alice", &args, t(9, 0))
        .unwrap();
    let Event::Requested(r) = &outcome.events[0] else {
        panic!()
    };
    assert_eq!(r.start, None);
    assert!(outcome.notes.iter().any(|n| n.contains("in the past")));

    let args = RequestArgs {
        start: Some(t(9, 0) + chrono::Duration::days(31)),
        ..ask("db-admin", "prod-db-01")
    };
    let e = err(w.state.request(&w.settings, "alice", &args, t(9, 0)));
    assert!(
        matches!(&e, PolicyError::Invalid(m) if m.contains("more than 30d ahead")),
        "{e:?}"
    );

    // A future start: the access clock starts then, even if approved earlier.
    let args = RequestArgs {
        start: Some(t(14, 0)),
        ..ask("db-admin", "prod-db-01")
    };
    let id = w.request("alice", args, t(9, 0));
    w.approve("bob", id, ApproveArgs::default(), t(9, 30));
    let g = w.state.grant(id).unwrap();
    assert_eq!(
        (g.starts_at, g.expires_at),
        (Some(t(14, 0)), Some(t(15, 0)))
    );
    assert!(!g.is_active(t(10, 0)));
    assert!(g.is_active(t(14, 0)));
}

#[test]
fn auto_approve_roles_are_approved_by_latch_at_once() {
    let mut w = World::new();
    let args = RequestArgs {
        duration: Some("3h".into()),
        ..ask("deploy", "web-01")
    };
    let outcome = w
        .state
        .request(&w.settings, "alice", &args, t(9, 0))
        .unwrap();
    assert_eq!(outcome.events.len(), 2);
    let Event::Approved(a) = &outcome.events[1] else {
        panic!("{outcome:?}")
    };
    assert_eq!(a.by, SYSTEM_ACTOR);
    assert_eq!(
        (a.starts_at, a.expires_at, a.duration),
        (t(9, 0), t(11, 0), hours(2)),
        "capped to the role's 2h"
    );
    w.commit("alice", t(9, 0), Ok(outcome));
    let g = w.state.grant(GrantId(1)).unwrap();
    assert_eq!(
        (g.status, g.approved_by.as_deref()),
        (GrantStatus::Approved, Some(SYSTEM_ACTOR))
    );
}

#[test]
fn break_glass_is_approved_at_once_flagged_and_capped() {
    let mut w = World::new();
    let args = RequestArgs {
        break_glass: true,
        duration: Some("3h".into()),
        ..ask("db-admin", "prod-db-01")
    };
    let outcome = w
        .state
        .request(&w.settings, "alice", &args, t(9, 0))
        .unwrap();
    let Event::Approved(a) = &outcome.events[1] else {
        panic!("{outcome:?}")
    };
    assert_eq!(
        (a.by.as_str(), a.starts_at, a.expires_at),
        (SYSTEM_ACTOR, t(9, 0), t(10, 0))
    );
    assert!(
        outcome
            .notes
            .contains(&"requested 3h, capped to 1h (the break-glass maximum)".to_string()),
        "{:?}",
        outcome.notes
    );
    assert!(outcome.notes.iter().any(|n| n.starts_with("BREAK-GLASS")));
    w.commit("alice", t(9, 0), Ok(outcome));
    let g = w.state.grant(GrantId(1)).unwrap();
    assert!(g.break_glass && g.is_active(t(9, 0)));
}

#[test]
fn break_glass_needs_a_reason_a_willing_role_and_the_users_totp_code() {
    let w = World::new();
    let bg = |role: &str, hosts: &str| RequestArgs {
        break_glass: true,
        ..ask(role, hosts)
    };
    let relaxed = settings_from(&CONFIG.replace("require_reason = true", "require_reason = false"));
    let e = err(w.state.request(
        &relaxed,
        "alice",
        &RequestArgs {
            reason: None,
            ..bg("db-admin", "prod-db-01")
        },
        t(9, 0),
    ));
    assert!(
        matches!(&e, PolicyError::Invalid(m) if m.starts_with("break-glass requires a reason")),
        "{e:?}"
    );
    let e = err(w
        .state
        .request(&w.settings, "alice", &bg("web", "web-01"), t(9, 0)));
    assert!(
        matches!(&e, PolicyError::Forbidden(m) if m.contains("does not allow break-glass")),
        "{e:?}"
    );

    let secret = totp::decode_secret(DAVE_TOTP).unwrap();
    let now = t(9, 0);
    let e = err(w
        .state
        .request(&w.settings, "dave", &bg("db-admin", "prod-db-01"), now));
    assert!(
        matches!(&e, PolicyError::Invalid(m) if m.contains("--totp")),
        "{e:?}"
    );
    let stale = totp::code_at(&secret, now - minutes(10));
    let e = err(w.state.request(
        &w.settings,
        "dave",
        &RequestArgs {
            totp: Some(stale),
            ..bg("db-admin", "prod-db-01")
        },
        now,
    ));
    assert!(
        matches!(&e, PolicyError::Forbidden(m) if m.contains("TOTP code is not valid")),
        "{e:?}"
    );
    let code = totp::code_at(&secret, now);
    let outcome = w
        .state
        .request(
            &w.settings,
            "dave",
            &RequestArgs {
                totp: Some(code),
                ..bg("db-admin", "prod-db-01")
            },
            now,
        )
        .unwrap();
    assert!(matches!(&outcome.events[1], Event::Approved(a) if a.by == SYSTEM_ACTOR));
}

#[test]
fn a_locked_user_cannot_request_even_break_glass() {
    let mut w = World::new();
    let outcome = w
        .state
        .lock_user(&w.settings, "erin", "alice", "laptop stolen", t(8, 0));
    w.commit("erin", t(8, 0), outcome);
    let args = RequestArgs {
        break_glass: true,
        ..ask("db-admin", "prod-db-01")
    };
    let e = err(w.state.request(&w.settings, "alice", &args, t(9, 0)));
    assert!(
        matches!(&e, PolicyError::Forbidden(m) if m.contains("locked out") && m.contains("laptop stolen")),
        "{e:?}"
    );
}

// ---- approve ----

#[test]
fn nobody_approves_their_own_request() {
    let w = {
        let mut w = World::new();
        w.request("frank", ask("db-admin", "prod-db-01"), t(9, 0));
        w
    };
    let e = err(w.state.approve(
        &w.settings,
        "frank",
        GrantId(1),
        &ApproveArgs::default(),
        t(9, 5),
    ));
    assert_eq!(
        e,
        PolicyError::Forbidden(
            "you cannot approve your own request g1; ask another member of security-admin".into()
        )
    );
}

#[test]
fn only_approvers_of_the_role_approve_not_admins() {
    let mut w = World::new();
    let id = w.request("alice", ask("db-admin", "prod-db-01"), t(9, 0));
    for who in ["carol", "erin", "ivy"] {
        let e = err(w
            .state
            .approve(&w.settings, who, id, &ApproveArgs::default(), t(9, 5)));
        assert_eq!(
            e,
            PolicyError::Forbidden(
                "only members of security-admin can approve db-admin requests".into()
            ),
            "{who}"
        );
    }
    let e = err(w.state.approve(
        &w.settings,
        "bob",
        GrantId(99),
        &ApproveArgs::default(),
        t(9, 5),
    ));
    assert_eq!(
        e,
        PolicyError::NotFound("no request g99; run 'list' to see ids".into())
    );
    w.approve("bob", id, ApproveArgs::default(), t(9, 5));
    let e = err(w
        .state
        .approve(&w.settings, "frank", id, &ApproveArgs::default(), t(9, 6)));
    assert_eq!(
        e,
        PolicyError::Conflict(
            "g1 is already approved (by bob at 2026-03-02T09:05:00Z); nothing to approve".into()
        )
    );
}

#[test]
fn narrowing_hosts_allows_only_hosts_matching_both_patterns() {
    let mut w = World::new();
    let id = w.request("alice", ask("db-admin", "prod-db-0*"), t(9, 0));
    let narrow = ApproveArgs {
        hosts: Some("*-01".into()),
        ..Default::default()
    };
    let outcome = w.approve("bob", id, narrow, t(9, 5));
    assert!(
        outcome.notes.iter().any(|n| n.starts_with("narrowed")),
        "{:?}",
        outcome.notes
    );
    let g = w.state.grant(id).unwrap();
    assert_eq!(g.approved_hosts, Some(HostPattern::parse("*-01").unwrap()));
    assert!(g.covers_host("prod-db-01"));
    assert!(
        !g.covers_host("prod-db-02"),
        "matches the request but not the narrowing"
    );
    assert!(
        !g.covers_host("web-01"),
        "matches the narrowing but not the request"
    );

    let id = w.request("alice", ask("db-admin", "prod-db-0*"), t(9, 0));
    let e = err(w.state.approve(
        &w.settings,
        "bob",
        id,
        &ApproveArgs {
            hosts: Some("[z-a]".into()),
            ..Default::default()
        },
        t(9, 5),
    ));
    assert!(
        matches!(&e, PolicyError::Invalid(m) if m.starts_with("--hosts")),
        "{e:?}"
    );
}

#[test]
fn narrowing_duration_shortens_but_never_lengthens() {
    let mut w = World::new();
    let args = RequestArgs {
        duration: Some("4h".into()),
        ..ask("db-admin", "prod-db-01")
    };
    let id = w.request("alice", args, t(9, 0));
    let e = err(w.state.approve(
        &w.settings,
        "bob",
        id,
        &ApproveArgs {
            duration: Some("5h".into()),
            ..Default::default()
        },
        t(9, 5),
    ));
    assert_eq!(
        e,
        PolicyError::Invalid(
            "--duration 5h is longer than the 4h requested; approve at most 4h".into()
        )
    );
    w.approve(
        "bob",
        id,
        ApproveArgs {
            duration: Some("90m".into()),
            ..Default::default()
        },
        t(9, 5),
    );
    let g = w.state.grant(id).unwrap();
    assert_eq!(
        (g.starts_at, g.expires_at),
        (Some(t(9, 5)), Some(t(10, 35)))
    );
    assert_eq!(
        g.requested_duration,
        hours(4),
        "the request is kept as asked"
    );
}

// ---- deny, cancel, revoke ----

#[test]
fn deny_needs_an_approver_or_admin_and_a_reason() {
    let mut w = World::new();
    let id = w.request("alice", ask("db-admin", "prod-db-01"), t(9, 0));
    let e = err(w.state.deny(&w.settings, "alice", id, "nope", t(9, 1)));
    assert!(
        matches!(&e, PolicyError::Forbidden(m) if m.contains("cancel g1")),
        "{e:?}"
    );
    let e = err(w.state.deny(&w.settings, "carol", id, "nope", t(9, 1)));
    assert_eq!(
        e,
        PolicyError::Forbidden(
            "only members of security-admin or an admin can deny db-admin requests".into()
        )
    );
    let e = err(w.state.deny(&w.settings, "bob", id, "  ", t(9, 1)));
    assert!(
        matches!(&e, PolicyError::Invalid(m) if m.contains("--reason")),
        "{e:?}"
    );
    let outcome = w
        .state
        .deny(&w.settings, "erin", id, "not during the freeze", t(9, 1));
    w.commit("erin", t(9, 1), outcome);
    assert_eq!(w.state.grant(id).unwrap().status, GrantStatus::Denied);
    let e = err(w.state.deny(&w.settings, "bob", id, "again", t(9, 2)));
    assert_eq!(e, PolicyError::Conflict("g1 was already denied (by erin at 2026-03-02T09:01:00Z); only pending requests can be denied".into()));
}

#[test]
fn cancel_withdraws_only_ones_own_pending_request() {
    let mut w = World::new();
    let id = w.request("alice", ask("db-admin", "prod-db-01"), t(9, 0));
    let e = err(w.state.cancel(&w.settings, "bob", id, t(9, 1)));
    assert!(matches!(e, PolicyError::Forbidden(_)), "{e:?}");
    let outcome = w.state.cancel(&w.settings, "alice", id, t(9, 1));
    w.commit("alice", t(9, 1), outcome);
    assert_eq!(
        w.state.grant(id).unwrap().cancelled_by.as_deref(),
        Some("alice")
    );

    let approved = w.granted("alice", "prod-db-01", t(9, 2));
    let e = err(w.state.cancel(&w.settings, "alice", approved, t(9, 3)));
    assert!(
        matches!(&e, PolicyError::Conflict(m) if m.contains("revoke g2")),
        "{e:?}"
    );
}

#[test]
fn revoke_by_owner_approver_or_admin_but_not_a_stranger() {
    for (who, ok) in [
        ("alice", true),
        ("bob", true),
        ("erin", true),
        ("carol", false),
        ("ivy", false),
    ] {
        let mut w = World::new();
        let id = w.granted("alice", "prod-db-01", t(9, 0));
        let result = w.state.revoke(&w.settings, who, id, Some("done"), t(9, 30));
        if ok {
            let outcome = w.commit(who, t(9, 30), result);
            assert_eq!(w.state.ended_by(&outcome.events[0]), vec![id], "{who}");
            let g = w.state.grant(id).unwrap();
            assert_eq!(
                (g.status, g.revoked_by.as_deref()),
                (GrantStatus::Revoked, Some(who))
            );
            assert!(!g.is_active(t(9, 31)));
        } else {
            let e = err(result);
            assert_eq!(e, PolicyError::Forbidden("you cannot revoke g1: only its owner, a member of security-admin, or an admin can".into()), "{who}");
        }
    }
}

#[test]
fn revoke_refuses_what_is_not_running() {
    let mut w = World::new();
    let pending = w.request("alice", ask("db-admin", "prod-db-01"), t(9, 0));
    let e = err(w.state.revoke(&w.settings, "bob", pending, None, t(9, 1)));
    assert!(
        matches!(&e, PolicyError::Conflict(m) if m.contains("deny g1")),
        "{e:?}"
    );
    let e = err(w.state.revoke(&w.settings, "alice", pending, None, t(9, 1)));
    assert!(
        matches!(&e, PolicyError::Conflict(m) if m.contains("cancel g1")),
        "{e:?}"
    );

    let id = w.granted("alice", "prod-db-01", t(9, 0));
    let e = err(w.state.revoke(&w.settings, "bob", id, None, t(10, 0)));
    assert!(
        matches!(&e, PolicyError::Conflict(m) if m.contains("already expired")),
        "{e:?}"
    );
    let outcome = w.state.revoke(&w.settings, "bob", id, None, t(9, 10));
    w.commit("bob", t(9, 10), outcome);
    let e = err(w.state.revoke(&w.settings, "erin", id, None, t(9, 11)));
    assert_eq!(
        e,
        PolicyError::Conflict("g2 was already revoked (by bob at 2026-03-02T09:10:00Z)".into())
    );
}

// ---- extend ----

#[test]
fn an_approved_extension_moves_the_grants_expiry() {
    let mut w = World::new();
    let id = w.granted("alice", "prod-db-*", t(9, 0));
    let outcome = w
        .state
        .extend(&w.settings, "alice", id, "2h", None, t(9, 45));
    let outcome = w.commit("alice", t(9, 45), outcome);
    let Event::Requested(r) = &outcome.events[0] else {
        panic!()
    };
    assert_eq!(
        (r.extends, r.role.as_str(), r.hosts.as_str()),
        (Some(id), "db-admin", "prod-db-*")
    );
    assert_eq!(
        r.reason.as_deref(),
        Some("INC-42 disk full"),
        "the grant's reason carries over"
    );
    assert_eq!(
        r.approval_deadline,
        t(10, 0),
        "an extension cannot outlive the grant it extends"
    );
    let ext = r.id;

    let e = err(w
        .state
        .extend(&w.settings, "alice", id, "1h", None, t(9, 46)));
    assert!(
        matches!(&e, PolicyError::Conflict(m) if m.contains("pending extension, g2")),
        "{e:?}"
    );

    let outcome = w.approve("bob", ext, ApproveArgs::default(), t(9, 50));
    assert!(
        outcome
            .notes
            .iter()
            .any(|n| n.contains("g1 now runs until 2026-03-02T12:00:00Z")),
        "{:?}",
        outcome.notes
    );
    let g = w.state.grant(id).unwrap();
    assert_eq!(g.expires_at, Some(t(12, 0)));
    assert_eq!(g.extensions, vec![ext]);
    assert_eq!(g.history.last().unwrap().action, "extended");
    assert!(g.is_active(t(11, 0)));

    // The extension record has done its work: not open, not due, never active itself.
    let e = w.state.grant(ext).unwrap();
    assert_eq!(e.status, GrantStatus::Approved);
    assert!(!e.is_active(t(11, 0)));
    assert_eq!(
        w.state
            .open_grants_of("alice")
            .iter()
            .map(|g| g.id)
            .collect::<Vec<_>>(),
        vec![id]
    );
    assert_eq!(
        w.state.due(t(13, 0)),
        vec![Event::Expired { id, due: t(12, 0) }]
    );
    let e = err(w.state.revoke(&w.settings, "bob", ext, None, t(10, 0)));
    assert!(
        matches!(&e, PolicyError::Invalid(m) if m.contains("revoke g1")),
        "{e:?}"
    );
}

#[test]
fn extend_is_capped_and_auto_approved_for_auto_approve_roles() {
    let mut w = World::new();
    let id = w.request("alice", ask("deploy", "web-01"), t(9, 0));
    let outcome = w.state.extend(
        &w.settings,
        "alice",
        id,
        "5h",
        Some("still deploying"),
        t(9, 30),
    );
    assert!(outcome
        .as_ref()
        .unwrap()
        .notes
        .contains(&"requested 5h, capped to 2h (the maximum for deploy)".to_string()));
    w.commit("alice", t(9, 30), outcome);
    assert_eq!(w.state.grant(id).unwrap().expires_at, Some(t(12, 0)));
}

#[test]
fn extend_refuses_others_grants_ended_grants_and_extensions() {
    let mut w = World::new();
    let id = w.granted("alice", "prod-db-01", t(9, 0));
    let e = err(w
        .state
        .extend(&w.settings, "carol", id, "1h", None, t(9, 30)));
    assert!(matches!(e, PolicyError::Forbidden(_)), "{e:?}");
    let e = err(w
        .state
        .extend(&w.settings, "alice", id, "1h", None, t(10, 0)));
    assert!(
        matches!(&e, PolicyError::Conflict(m) if m.contains("expired")),
        "{e:?}"
    );
    let pending = w.request("alice", ask("db-admin", "prod-db-01"), t(9, 0));
    let e = err(w
        .state
        .extend(&w.settings, "alice", pending, "1h", None, t(9, 30)));
    assert!(
        matches!(&e, PolicyError::Conflict(m) if m.contains("pending")),
        "{e:?}"
    );
    let outcome = w
        .state
        .extend(&w.settings, "alice", id, "1h", None, t(9, 30));
    w.commit("alice", t(9, 30), outcome);
    let e = err(w
        .state
        .extend(&w.settings, "alice", GrantId(3), "1h", None, t(9, 31)));
    assert!(
        matches!(&e, PolicyError::Invalid(m) if m.contains("extend g1 instead")),
        "{e:?}"
    );
}

#[test]
fn an_extension_of_a_revoked_grant_cannot_be_approved() {
    let mut w = World::new();
    let id = w.granted("alice", "prod-db-01", t(9, 0));
    let outcome = w
        .state
        .extend(&w.settings, "alice", id, "1h", None, t(9, 30));
    w.commit("alice", t(9, 30), outcome);
    let outcome = w.state.revoke(&w.settings, "alice", id, None, t(9, 31));
    w.commit("alice", t(9, 31), outcome);
    let e = err(w.state.approve(
        &w.settings,
        "bob",
        GrantId(2),
        &ApproveArgs::default(),
        t(9, 32),
    ));
    assert!(
        matches!(&e, PolicyError::Conflict(m) if m.contains("no longer active")),
        "{e:?}"
    );
    let e = err(w.state.approve(
        &w.settings,
        "bob",
        GrantId(2),
        &ApproveArgs {
            hosts: Some("x".into()),
            ..Default::default()
        },
        t(9, 32),
    ));
    assert!(
        matches!(e, PolicyError::Invalid(_)),
        "an extension only adds time: {e:?}"
    );
}

#[test]
fn a_late_extension_approval_from_the_log_never_revives_an_ended_grant() {
    // Two brokers sharing a log can write an approval the other's revoke overtook.
    let mut w = World::new();
    let id = w.granted("alice", "prod-db-01", t(9, 0));
    let outcome = w
        .state
        .extend(&w.settings, "alice", id, "1h", None, t(9, 30));
    w.commit("alice", t(9, 30), outcome);
    let approval = w
        .state
        .approve(
            &w.settings,
            "bob",
            GrantId(2),
            &ApproveArgs::default(),
            t(9, 31),
        )
        .unwrap();
    let outcome = w.state.revoke(&w.settings, "erin", id, None, t(9, 31));
    w.commit("erin", t(9, 31), outcome);
    w.commit("bob", t(9, 31), Ok(approval));
    let g = w.state.grant(id).unwrap();
    assert_eq!(
        (g.status, g.expires_at),
        (GrantStatus::Revoked, Some(t(10, 0)))
    );
    assert!(w.state.open_grants_of("alice").is_empty());
}

// ---- locks ----

#[test]
fn only_admins_lock_and_unlock_and_never_themselves() {
    let mut w = World::new();
    let e = err(w.state.lock_user(&w.settings, "bob", "alice", "x", t(9, 0)));
    assert_eq!(
        e,
        PolicyError::Forbidden("only admins can lock users out".into())
    );
    let e = err(w.state.lock_user(&w.settings, "erin", "erin", "x", t(9, 0)));
    assert!(
        matches!(&e, PolicyError::Forbidden(m) if m.contains("yourself")),
        "{e:?}"
    );
    let e = err(w.state.lock_user(&w.settings, "erin", "zed", "x", t(9, 0)));
    assert!(
        matches!(&e, PolicyError::NotFound(m) if m.contains("'zed'")),
        "{e:?}"
    );
    let e = err(w.state.lock_user(&w.settings, "erin", "alice", "", t(9, 0)));
    assert!(matches!(e, PolicyError::Invalid(_)), "{e:?}");
    let e = err(w.state.unlock_user(&w.settings, "erin", "alice", t(9, 0)));
    assert_eq!(e, PolicyError::Conflict("alice is not locked".into()));

    let id = w.granted("alice", "prod-db-01", t(9, 0));
    let outcome = w
        .state
        .lock_user(&w.settings, "erin", "alice", "laptop stolen", t(9, 10));
    let outcome = w.commit("erin", t(9, 10), outcome);
    assert_eq!(w.state.ended_by(&outcome.events[0]), vec![id]);
    assert_eq!(
        w.state
            .lock("alice")
            .map(|l| (l.by.as_str(), l.reason.as_str(), l.at)),
        Some(("erin", "laptop stolen", t(9, 10)))
    );
    let e = err(w
        .state
        .lock_user(&w.settings, "erin", "alice", "again", t(9, 11)));
    assert!(
        matches!(&e, PolicyError::Conflict(m) if m.starts_with("alice is already locked (by erin")),
        "{e:?}"
    );
    let e = err(w.state.unlock_user(&w.settings, "bob", "alice", t(9, 12)));
    assert!(matches!(e, PolicyError::Forbidden(_)), "{e:?}");
    let outcome = w.state.unlock_user(&w.settings, "erin", "alice", t(9, 12));
    w.commit("erin", t(9, 12), outcome);
    assert!(w.state.lock("alice").is_none());
    assert!(
        w.state.grant(id).unwrap().is_active(t(9, 13)),
        "a grant survives a lock"
    );
}

// ---- queries ----

#[test]
fn visibility_and_the_approval_queue() {
    let mut w = World::new();
    let mine = w.request("frank", ask("db-admin", "prod-db-01"), t(9, 0));
    let alices = w.request("alice", ask("web", "web-01"), t(9, 1));
    w.granted("carol", "prod-db-02", t(9, 2));
    let queue: Vec<GrantId> = w
        .state
        .awaiting_approval_by(&w.settings, "frank")
        .iter()
        .map(|g| g.id)
        .collect();
    assert_eq!(queue, vec![alices], "not their own, not approved ones");
    let queue: Vec<GrantId> = w
        .state
        .awaiting_approval_by(&w.settings, "bob")
        .iter()
        .map(|g| g.id)
        .collect();
    assert_eq!(queue, vec![mine, alices]);
    assert!(w.state.awaiting_approval_by(&w.settings, "erin").is_empty());

    let g = w.state.grant(alices).unwrap();
    for (who, sees) in [
        ("alice", true),
        ("bob", true),
        ("erin", true),
        ("ivy", true),
        ("carol", false),
        ("dave", false),
    ] {
        assert_eq!(w.state.can_see(&w.settings, who, g), sees, "{who}");
    }
}

#[test]
fn replaying_the_log_rebuilds_the_same_state() {
    let mut w = World::new();
    let a = w.granted("alice", "prod-db-*", t(9, 0));
    let outcome = w
        .state
        .extend(&w.settings, "alice", a, "1h", None, t(9, 10));
    w.commit("alice", t(9, 10), outcome);
    w.approve("frank", GrantId(2), ApproveArgs::default(), t(9, 11));
    let b = w.request("carol", ask("db-admin", "prod-db-01"), t(9, 12));
    let outcome = w
        .state
        .deny(&w.settings, "bob", b, "use a replica", t(9, 13));
    w.commit("bob", t(9, 13), outcome);
    w.request("alice", ask("web", "web-01"), t(9, 14));
    w.request(
        "alice",
        RequestArgs {
            break_glass: true,
            ..ask("db-admin", "prod-db-02")
        },
        t(9, 15),
    );
    let outcome = w
        .state
        .lock_user(&w.settings, "erin", "carol", "offboarding", t(9, 16));
    w.commit("erin", t(9, 16), outcome);
    w.tick(t(10, 30));

    let mut replayed = State::new();
    for (event, at, actor) in &w.log {
        // Through JSON, as the log stores them.
        let line = serde_json::to_string(event).unwrap();
        let event: Event = serde_json::from_str(&line).unwrap();
        replayed.apply(&event, *at, actor).unwrap();
    }
    assert_eq!(
        replayed.grants().collect::<Vec<_>>(),
        w.state.grants().collect::<Vec<_>>()
    );
    assert_eq!(
        replayed.locks().collect::<Vec<_>>(),
        w.state.locks().collect::<Vec<_>>()
    );
    assert_eq!(replayed.next_deadline(), w.state.next_deadline());
    assert_eq!(replayed.due(t(23, 59)), w.state.due(t(23, 59)));
    assert_eq!(
        replayed.open_grants_of("alice"),
        w.state.open_grants_of("alice")
    );
}

// ---- JSON ----

#[test]
fn events_are_adjacently_tagged_with_the_tag_first() {
    let mut w = World::new();
    let id = w.granted("alice", "prod-db-*", t(9, 0));
    let events = vec![
        w.log[0].0.clone(),
        w.log[1].0.clone(),
        Event::Denied {
            id,
            by: "bob".into(),
            reason: "r".into(),
        },
        Event::Cancelled {
            id,
            by: "alice".into(),
        },
        Event::Revoked {
            id,
            by: "bob".into(),
            reason: None,
        },
        Event::Expired { id, due: t(10, 0) },
        Event::Locked {
            user: "alice".into(),
            by: "erin".into(),
            reason: "r".into(),
        },
        Event::Unlocked {
            user: "alice".into(),
            by: "erin".into(),
        },
        Event::AuthRejected {
            fingerprint: "SHA256:x".into(),
            source: "1.2.3.4:5".into(),
            login: "root".into(),
        },
        Event::BrokerStarted {
            config_sha256: "ab".into(),
            version: "0.1.0".into(),
        },
    ];
    for event in events {
        let line = serde_json::to_string(&event).unwrap();
        assert!(
            line.starts_with(&format!(r#"{{"type":"{}","data":{{"#, event.kind())),
            "{line}"
        );
        let back: Event = serde_json::from_str(&line).unwrap();
        assert_eq!(back, event);
        let is_grant_event = !matches!(
            event,
            Event::Locked { .. }
                | Event::Unlocked { .. }
                | Event::AuthRejected { .. }
                | Event::BrokerStarted { .. }
        );
        assert_eq!(event.grant_id(), is_grant_event.then_some(id), "{line}");
    }
    let Event::Requested(r) = &w.log[0].0 else {
        panic!()
    };
    let json = serde_json::to_value(Event::Requested(r.clone())).unwrap();
    assert_eq!(json["data"]["id"], "g1");
    assert_eq!(json["data"]["duration"], "1h");
    assert_eq!(json["data"]["hosts"], "prod-db-*");
    assert_eq!(json["data"]["approval_deadline"], "2026-03-03T09:00:00Z");
}

#[test]
fn a_grant_serializes_with_the_documented_keys() {
    let mut w = World::new();
    let id = w.granted("alice", "prod-db-*", t(9, 0));
    let grant = w.state.grant(id).unwrap();
    let json = serde_json::to_value(grant).unwrap();
    for key in [
        "id",
        "status",
        "user",
        "role",
        "hosts",
        "reason",
        "ticket",
        "requested_duration",
        "created_at",
        "approved_by",
        "approved_at",
        "starts_at",
        "expires_at",
        "denied_by",
        "revoked_by",
        "break_glass",
    ] {
        assert!(json.get(key).is_some(), "missing {key} in {json}");
    }
    assert_eq!(json["id"], "g1");
    assert_eq!(json["status"], "approved");
    assert_eq!(json["requested_duration"], "1h");
    assert_eq!(json["expires_at"], "2026-03-02T10:00:00Z");
    let back: Grant = serde_json::from_value(json).unwrap();
    assert_eq!(&back, grant);
}

#[test]
fn grant_ids_parse_in_the_forms_people_type() {
    for (text, want) in [("g17", 17), ("G17", 17), ("17", 17), ("g0", 0)] {
        assert_eq!(text.parse::<GrantId>(), Ok(GrantId(want)), "{text}");
    }
    for text in [
        "",
        "g",
        "x17",
        "g-1",
        "+17",
        "g+17",
        "g17x",
        "gg17",
        " g17",
        "99999999999999999999999",
    ] {
        let e = text.parse::<GrantId>().unwrap_err();
        assert!(
            e.starts_with("unknown id format: expected an id like g17"),
            "{text}: {e}"
        );
    }
    assert_eq!(GrantId(17).to_string(), "g17");
}
