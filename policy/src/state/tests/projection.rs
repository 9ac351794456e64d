//! The state machine and the projection: the transition table, apply, deadlines,
//! replay and the JSON the log and `--json` carry.

use super::{err, message};
use crate::event::{Approved, Event};
use crate::grant::{Action, Grant, GrantId, GrantStatus};
use crate::state::fixtures::{ask, hours, settings, t, World};
use crate::state::*;

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
            recording: true,
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
            recording: true,
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
