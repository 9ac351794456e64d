//! Asking for access: `request` and `extend`.

use super::{err, message};
use crate::event::Event;
use crate::grant::{GrantId, GrantStatus};
use crate::state::fixtures::{ask, hours, minutes, settings_from, t, World, CONFIG, DAVE_TOTP};
use crate::state::*;
use crate::totp;

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
