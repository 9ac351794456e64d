//! What others do with a request: approve, deny, revoke; cancel; locks; who sees what.

use super::err;
use crate::grant::{GrantId, GrantStatus};
use crate::pattern::HostPattern;
use crate::state::fixtures::{ask, hours, t, World};
use crate::state::*;

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
    let too_short = ApproveArgs {
        duration: Some("30s".into()),
        ..Default::default()
    };
    let e = err(w.state.approve(&w.settings, "bob", id, &too_short, t(9, 5)));
    assert_eq!(
        e,
        PolicyError::Invalid("30s is shorter than the minimum of 1m; give at least 1m".into())
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
