//! The control plane over SSH: requesting, approving, denying, revoking, extending and
//! expiring grants, as users see it through `ssh bastion COMMAND`, and the local `latch` CLI
//! around it (config check, init, audit verify). Everything survives a restart because the
//! event log is the source of truth, and the log shows tampering.

use crate::support::{duration, eventually, read_events, run, time, Config, Latch, Site, User};
use chrono::Utc;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

/// The people most tests need. `bob` approves `db-admin` requests and may request it
/// himself (so self-approval is a real question); `carol` holds nothing; `root` is admin
/// and auditor.
struct Team {
    site: Site,
    alice: User,
    bob: User,
    carol: User,
    root: User,
}

fn team() -> Team {
    let site = Site::new();
    Team {
        alice: site.user("alice"),
        bob: site.user("bob"),
        carol: site.user("carol"),
        root: site.user("root"),
        site,
    }
}

const TOTP_SECRET: &str = "JBSWY3DPEHPK3PXP";

/// Roles: `db-admin` needs approval and is capped at 4h; `quick` approves itself (for
/// expiry tests); `ops` allows break-glass. Hosts: two that `alice` can reach under
/// `db-admin` with `--hosts 'prod-*'`, one the role covers but the pattern does not, and one
/// the pattern covers but the role does not.
fn team_config(t: &Team) -> Config {
    Config::new()
        .user(&t.alice, &[], &["db-admin", "quick", "ops"])
        .user(&t.bob, &["approver"], &["db-admin"])
        .user(&t.carol, &[], &[])
        .user(&t.root, &["admin"], &[])
        .role("approver", "")
        .role(
            "db-admin",
            r#"logins = ["postgres"]
hosts = ["*-db-*"]
max_duration = "4h"
approvers = ["approver"]"#,
        )
        .role(
            "quick",
            r#"logins = ["deploy"]
hosts = ["*"]
max_duration = "1h"
auto_approve = true"#,
        )
        .role(
            "ops",
            r#"logins = ["root"]
hosts = ["*"]
approvers = ["approver"]
break_glass = true"#,
        )
        .role("admin", "admin = true\nauditor = true")
        .host("prod-db-01")
        .host("prod-db-02")
        .host("staging-db-01")
        .host("prod-web-01")
}

/// `request ARGS --json` as `user`, which must succeed; the grant.
#[track_caller]
fn request(latch: &Latch, user: &User, args: &[&str]) -> Value {
    let mut full = vec!["request"];
    full.extend_from_slice(args);
    full.push("--json");
    latch.ssh(user, &full).ok().json()
}

/// `show ID --json` as `user`, which must succeed; the grant.
#[track_caller]
fn show(latch: &Latch, user: &User, id: &str) -> Value {
    latch.ssh(user, &["show", id, "--json"]).ok().json()
}

/// Every grant `user` may see, ended ones included.
#[track_caller]
fn list_all(latch: &Latch, user: &User) -> Value {
    latch.ssh(user, &["list", "--all", "--json"]).ok().json()
}

fn id_of(grant: &Value) -> String {
    grant["id"]
        .as_str()
        .unwrap_or_else(|| panic!("grant without an id: {grant}"))
        .to_string()
}

/// Await a grant's status, polling `show --json` every 100 ms.
#[track_caller]
fn await_status(latch: &Latch, user: &User, id: &str, status: &str, within: Duration) -> Value {
    eventually(within, &format!("{id} to be {status}"), || {
        let g = show(latch, user, id);
        if g["status"] == status {
            Ok(g)
        } else {
            Err(g["status"].to_string())
        }
    })
}

/// The log record of `kind` about grant `id`.
#[track_caller]
fn event_about(records: &[Value], kind: &str, id: &str) -> Value {
    records
        .iter()
        .find(|r| r["event"]["type"] == kind && r["event"]["data"]["id"] == id)
        .unwrap_or_else(|| panic!("no {kind} event for {id} in the log: {records:#?}"))
        .clone()
}

fn assert_close(a: chrono::DateTime<Utc>, b: chrono::DateTime<Utc>, what: &str) {
    let gap = (a - b).num_milliseconds().abs();
    assert!(gap <= 1000, "{what}: {a} and {b} are {gap} ms apart");
}

/// Does a report name line `n` (and not, say, line 30)?
fn names_line(text: &str, n: u64) -> bool {
    text.contains(&format!("line {n}:")) || text.contains(&format!("line {n} "))
}

#[test]
fn approved_request_grants_the_requested_duration_on_the_configured_hosts_it_covers() {
    let t = team();
    let latch = t.site.start(&team_config(&t));
    assert_eq!(
        latch.ssh(&t.alice, &["hosts", "--json"]).ok().json(),
        json!([])
    );

    let g = request(
        &latch,
        &t.alice,
        &[
            "--role",
            "db-admin",
            "--hosts",
            "prod-*",
            "--duration",
            "2h",
        ],
    );
    let id = id_of(&g);
    assert_eq!(g["status"], "pending", "{g:#}");
    assert_eq!(
        latch.ssh(&t.alice, &["hosts", "--json"]).ok().json(),
        json!([]),
        "a pending request reaches nothing"
    );

    let approved = latch.ssh(&t.bob, &["approve", &id, "--json"]).ok().json();
    assert_eq!(approved["status"], "approved", "{approved:#}");

    let listed = latch.ssh(&t.alice, &["list", "--json"]).ok().json();
    let g = listed
        .as_array()
        .and_then(|gs| gs.iter().find(|g| g["id"] == id.as_str()))
        .unwrap_or_else(|| panic!("{id} missing from alice's list: {listed:#}"))
        .clone();
    assert_eq!(g["status"], "approved");
    assert_eq!(g["approved_by"], "bob");
    assert_eq!(g["requested_duration"], "2h");
    let approved_at = time(&g["approved_at"]);
    let expires_at = time(&g["expires_at"]);
    assert_close(
        expires_at,
        approved_at + duration(&g["requested_duration"]),
        "expires_at = approved_at + requested_duration",
    );
    assert_close(approved_at, Utc::now(), "approved just now");

    // Only configured hosts matching both the request (prod-*) and the role (*-db-*).
    let reach = latch.ssh(&t.alice, &["hosts", "--json"]).ok().json();
    let reach = reach.as_array().expect("hosts --json is an array");
    let names: BTreeSet<&str> = reach.iter().filter_map(|r| r["host"].as_str()).collect();
    assert_eq!(
        names,
        BTreeSet::from(["prod-db-01", "prod-db-02"]),
        "{reach:#?}"
    );
    for r in reach {
        assert_eq!(r["logins"], json!(["postgres"]), "{r}");
        assert_eq!(r["by"], json!({"kind": "grant", "name": id}), "{r}");
        assert_eq!(time(&r["until"]), expires_at, "{r}");
    }

    let me = latch.ssh(&t.alice, &["whoami", "--json"]).ok().json();
    let active: Vec<&Value> = me["active_grants"]
        .as_array()
        .map(|a| a.iter().map(|g| &g["id"]).collect())
        .unwrap_or_default();
    assert_eq!(active, vec![&json!(id)], "{me:#}");
    // The grant is alice's, not the approver's.
    assert_eq!(
        latch.ssh(&t.bob, &["hosts", "--json"]).ok().json(),
        json!([])
    );
}

#[test]
fn nobody_approves_their_own_request_even_an_approver() {
    let t = team();
    let latch = t.site.start(&team_config(&t));
    let id = id_of(&request(
        &latch,
        &t.bob,
        &["--role", "db-admin", "--hosts", "prod-db-01"],
    ));
    let out = latch.ssh(&t.bob, &["approve", &id]);
    out.expect_status(4);
    assert!(
        out.stderr.starts_with("latch: ") && out.stderr.to_lowercase().contains("own"),
        "the refusal should say it is bob's own request:\n{out}"
    );
    assert_eq!(show(&latch, &t.bob, &id)["status"], "pending");
}

#[test]
fn approval_by_someone_who_is_not_an_approver_is_refused() {
    let t = team();
    let latch = t.site.start(&team_config(&t));
    let id = id_of(&request(
        &latch,
        &t.alice,
        &["--role", "db-admin", "--hosts", "prod-db-01"],
    ));
    latch.ssh(&t.carol, &["approve", &id]).expect_status(4);
    assert_eq!(show(&latch, &t.alice, &id)["status"], "pending");
}

#[test]
fn request_over_the_role_maximum_is_capped_to_it_and_says_so() {
    let t = team();
    let latch = t.site.start(&team_config(&t));
    let text = latch
        .ssh(
            &t.alice,
            &[
                "request",
                "--role",
                "db-admin",
                "--hosts",
                "prod-db-01",
                "--duration",
                "6h",
            ],
        )
        .ok();
    assert!(
        text.stdout.contains("capped"),
        "the answer should say the request was capped:\n{text}"
    );

    let g = request(
        &latch,
        &t.alice,
        &[
            "--role",
            "db-admin",
            "--hosts",
            "prod-db-01",
            "--duration",
            "6h",
        ],
    );
    assert_eq!(g["requested_duration"], "4h", "{g:#}");
    assert_eq!(g["capped_from"], "6h", "{g:#}");

    // And the cap is what the approval grants.
    let id = id_of(&g);
    latch.ssh(&t.bob, &["approve", &id]).ok();
    let g = show(&latch, &t.alice, &id);
    assert_close(
        time(&g["expires_at"]),
        time(&g["approved_at"]) + chrono::Duration::hours(4),
        "expires_at = approved_at + 4h",
    );
}

#[test]
fn invalid_patterns_and_absurd_durations_are_refused_as_invalid() {
    let t = team();
    let latch = t.site.start(&team_config(&t));
    let out = latch.ssh(
        &t.alice,
        &["request", "--role", "db-admin", "--hosts", "prod-[db"],
    );
    out.expect_status(2);
    assert!(
        out.stderr.contains("unclosed '['"),
        "the message should name the unclosed '[':\n{out}"
    );

    for d in ["9999h", "0s", "-1h", "abc"] {
        // `--duration=D` so `-1h` reaches latch's check rather than clap's flag parsing.
        let arg = format!("--duration={d}");
        let out = latch.ssh(
            &t.alice,
            &[
                "request",
                "--role",
                "db-admin",
                "--hosts",
                "prod-db-01",
                &arg,
            ],
        );
        out.expect_status(2);
        assert!(
            out.stderr.starts_with("latch: ") && out.stderr.contains("duration"),
            "refusing {d} should name the duration:\n{out}"
        );
    }
    assert_eq!(
        list_all(&latch, &t.root),
        json!([]),
        "no refused request may leave a grant"
    );
}

#[test]
fn unknown_ids_are_not_found_and_malformed_ids_are_invalid() {
    let t = team();
    let latch = t.site.start(&team_config(&t));
    for (user, args) in [(&t.alice, ["show", "g999"]), (&t.bob, ["approve", "g999"])] {
        let out = latch.ssh(user, &args);
        out.expect_status(3);
        assert!(
            out.stderr.starts_with("latch: ") && out.stderr.contains("'list'"),
            "the message should say to run 'list':\n{out}"
        );
    }
    let out = latch.ssh(&t.alice, &["show", "g999", "--json"]);
    out.expect_status(3);
    let err = out.json();
    assert_eq!(err["error"]["kind"], "not_found", "{err}");
    assert_eq!(err["error"]["status"], 3, "{err}");
    assert!(err["error"]["message"].is_string(), "{err}");

    latch.ssh(&t.bob, &["approve", "xyz"]).expect_status(2);
}

#[test]
fn denial_records_the_approver_and_reason() {
    let t = team();
    let latch = t.site.start(&team_config(&t));
    let id = id_of(&request(
        &latch,
        &t.alice,
        &["--role", "db-admin", "--hosts", "prod-db-01"],
    ));
    let denied = latch
        .ssh(
            &t.bob,
            &["deny", &id, "--reason", "not during the freeze", "--json"],
        )
        .ok()
        .json();
    assert_eq!(denied["status"], "denied", "{denied:#}");
    let g = show(&latch, &t.alice, &id);
    assert_eq!(g["status"], "denied");
    assert_eq!(g["denied_by"], "bob");
    assert!(
        g.to_string().contains("not during the freeze"),
        "the requester should see the reason: {g:#}"
    );
    // A denied request cannot be approved afterwards.
    latch.ssh(&t.bob, &["approve", &id]).expect_status(5);
}

#[test]
fn requester_can_cancel_their_pending_request_and_it_can_no_longer_be_approved() {
    let t = team();
    let latch = t.site.start(&team_config(&t));
    let id = id_of(&request(
        &latch,
        &t.alice,
        &["--role", "db-admin", "--hosts", "prod-db-01"],
    ));
    let g = latch.ssh(&t.alice, &["cancel", &id, "--json"]).ok().json();
    assert_eq!(g["status"], "cancelled", "{g:#}");
    assert_eq!(show(&latch, &t.alice, &id)["status"], "cancelled");
    latch.ssh(&t.bob, &["approve", &id]).expect_status(5);
}

#[test]
fn owner_can_give_a_grant_back_early_and_then_reaches_nothing() {
    let t = team();
    let latch = t.site.start(&team_config(&t));
    let id = id_of(&request(
        &latch,
        &t.alice,
        &[
            "--role",
            "quick",
            "--hosts",
            "prod-web-01",
            "--duration",
            "30m",
        ],
    ));
    let reach = latch.ssh(&t.alice, &["hosts", "--json"]).ok().json();
    assert_eq!(reach.as_array().map(Vec::len), Some(1), "{reach:#}");

    let g = latch.ssh(&t.alice, &["revoke", &id, "--json"]).ok().json();
    assert_eq!(g["status"], "revoked", "{g:#}");
    let g = show(&latch, &t.alice, &id);
    assert_eq!(g["status"], "revoked");
    assert_eq!(g["revoked_by"], "alice");
    assert_eq!(
        latch.ssh(&t.alice, &["hosts", "--json"]).ok().json(),
        json!([])
    );
}

#[test]
fn revoke_by_someone_who_neither_owns_nor_approves_the_grant_is_refused() {
    let t = team();
    let latch = t.site.start(&team_config(&t));
    let id = id_of(&request(
        &latch,
        &t.alice,
        &[
            "--role",
            "quick",
            "--hosts",
            "prod-web-01",
            "--duration",
            "30m",
        ],
    ));
    latch.ssh(&t.carol, &["revoke", &id]).expect_status(4);
    assert_eq!(show(&latch, &t.alice, &id)["status"], "approved");
}

#[test]
fn approved_extension_moves_the_grant_expiry_by_the_extra_time() {
    let t = team();
    let latch = t.site.start(&team_config(&t));
    let id = id_of(&request(
        &latch,
        &t.alice,
        &[
            "--role",
            "db-admin",
            "--hosts",
            "prod-db-01",
            "--duration",
            "1h",
        ],
    ));
    latch.ssh(&t.bob, &["approve", &id]).ok();
    let before = time(&show(&latch, &t.alice, &id)["expires_at"]);

    let ext = latch
        .ssh(
            &t.alice,
            &[
                "extend",
                &id,
                "--duration",
                "30m",
                "--reason",
                "migration runs long",
                "--json",
            ],
        )
        .ok()
        .json();
    let ext_id = id_of(&ext);
    assert_ne!(ext_id, id);
    assert_eq!(ext["status"], "pending", "{ext:#}");
    assert_eq!(ext["extends"], id.as_str(), "{ext:#}");
    assert_eq!(
        time(&show(&latch, &t.alice, &id)["expires_at"]),
        before,
        "an extension moves nothing until approved"
    );

    latch.ssh(&t.bob, &["approve", &ext_id]).ok();
    let after = show(&latch, &t.alice, &id);
    assert_eq!(after["status"], "approved");
    assert_eq!(
        time(&after["expires_at"]),
        before + chrono::Duration::minutes(30),
        "{after:#}"
    );
}

#[test]
fn restart_keeps_every_grant_and_does_not_reuse_ids() {
    let t = team();
    let mut latch = t.site.start(&team_config(&t));
    let req = |latch: &Latch, args: &[&str]| id_of(&request(latch, &t.alice, args));
    let pending = req(&latch, &["--role", "db-admin", "--hosts", "prod-db-01"]);
    let approved = req(&latch, &["--role", "db-admin", "--hosts", "prod-db-02"]);
    let denied = req(&latch, &["--role", "db-admin", "--hosts", "staging-db-01"]);
    let auto = req(&latch, &["--role", "quick", "--hosts", "prod-web-01"]);
    latch.ssh(&t.bob, &["approve", &approved]).ok();
    latch.ssh(&t.bob, &["deny", &denied, "--reason", "no"]).ok();
    let before = list_all(&latch, &t.root);
    let statuses: Vec<&Value> = before
        .as_array()
        .expect("an array")
        .iter()
        .map(|g| &g["status"])
        .collect();
    assert_eq!(
        statuses,
        vec!["pending", "approved", "denied", "approved"],
        "{before:#}"
    );

    latch.stop();
    latch.start_again();
    let after = list_all(&latch, &t.root);
    // Whole documents: ids, statuses, expiries, approvers, history, everything.
    assert_eq!(after, before, "grants after restart differ");
    assert_eq!(show(&latch, &t.alice, &pending)["status"], "pending");
    assert_eq!(show(&latch, &t.alice, &auto)["status"], "approved");

    let next = req(&latch, &["--role", "db-admin", "--hosts", "prod-db-01"]);
    let known: BTreeSet<String> = [pending, approved, denied, auto].into();
    assert!(
        !known.contains(&next),
        "{next} reuses an id from before the restart"
    );
}

#[test]
fn short_grant_expires_on_time_and_the_log_records_when_it_fell_due() {
    let t = team();
    let latch = t.site.start(&team_config(&t));
    let g = request(
        &latch,
        &t.alice,
        &[
            "--role",
            "quick",
            "--hosts",
            "prod-web-01",
            "--duration",
            "3s",
        ],
    );
    let id = id_of(&g);
    assert_eq!(g["status"], "approved", "{g:#}");
    let expires_at = time(&g["expires_at"]);

    let g = await_status(&latch, &t.alice, &id, "expired", Duration::from_secs(10));
    assert_eq!(time(&g["expires_at"]), expires_at);
    assert_eq!(
        latch.ssh(&t.alice, &["hosts", "--json"]).ok().json(),
        json!([])
    );

    let record = event_about(&latch.events(), "expired", &id);
    assert_eq!(
        time(&record["event"]["data"]["due"]),
        expires_at,
        "{record}"
    );
    let written = time(&record["time"]);
    // The line's time is truncated to the millisecond.
    let late = written - expires_at;
    assert!(
        late >= chrono::Duration::milliseconds(-1) && late <= chrono::Duration::seconds(1),
        "expired event written {late} after expires_at: {record}"
    );
}

#[test]
fn expiry_that_fell_due_while_the_broker_was_down_is_applied_on_restart_with_its_due_time() {
    let t = team();
    let mut latch = t.site.start(&team_config(&t));
    let g = request(
        &latch,
        &t.alice,
        &[
            "--role",
            "quick",
            "--hosts",
            "prod-web-01",
            "--duration",
            "2s",
        ],
    );
    let id = id_of(&g);
    let expires_at = time(&g["expires_at"]);
    latch.stop();
    // The one legitimate sleep: the broker is down, so there is nothing to await.
    std::thread::sleep(Duration::from_secs(3));
    latch.start_again();

    await_status(&latch, &t.alice, &id, "expired", Duration::from_secs(10));
    let record = event_about(&latch.events(), "expired", &id);
    let due = time(&record["event"]["data"]["due"]);
    assert_eq!(due, expires_at, "{record}");
    assert!(
        time(&record["time"]) > due,
        "the event was written after restart, later than it fell due: {record}"
    );
}

#[test]
fn pending_request_expires_when_nobody_approves_it_in_time() {
    let t = team();
    let latch = t.site.start(&team_config(&t).jit("approval_timeout", "2s"));
    let id = id_of(&request(
        &latch,
        &t.alice,
        &["--role", "db-admin", "--hosts", "prod-db-01"],
    ));
    await_status(&latch, &t.alice, &id, "expired", Duration::from_secs(10));
    latch.ssh(&t.bob, &["approve", &id]).expect_status(5);
}

#[test]
fn audit_verify_detects_an_edited_or_removed_line_and_passes_an_intact_log() {
    let t = team();
    let latch = t.site.start(&team_config(&t));
    let a = id_of(&request(
        &latch,
        &t.alice,
        &["--role", "db-admin", "--hosts", "prod-db-01"],
    ));
    latch.ssh(&t.bob, &["approve", &a]).ok();
    let b = id_of(&request(
        &latch,
        &t.alice,
        &["--role", "db-admin", "--hosts", "prod-db-02"],
    ));
    latch.ssh(&t.bob, &["deny", &b, "--reason", "no"]).ok();

    let log = t.site.events_path();
    let text = fs::read_to_string(&log).expect("the event log");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 5, "expected at least 5 events:\n{text}");
    let log_arg = log.display().to_string();
    t.site.latch(&["audit", "verify", &log_arg]).ok();
    let config = t.site.config_path().display().to_string();
    t.site.latch(&["audit", "verify", "--config", &config]).ok();

    // Line 3 is bob's approval: one letter of his name changed.
    assert!(
        lines[2].contains(r#""actor":"bob""#),
        "line 3: {}",
        lines[2]
    );
    let mut edited = lines.clone();
    let forged = lines[2].replacen(r#""actor":"bob""#, r#""actor":"bot""#, 1);
    edited[2] = &forged;
    let edited_path = t.site.path().join("edited.jsonl");
    fs::write(&edited_path, edited.join("\n") + "\n").expect("write");
    let out = t
        .site
        .latch(&["audit", "verify", &edited_path.display().to_string()]);
    assert_ne!(out.status, 0, "an edited log must not verify:\n{out}");
    assert!(
        names_line(&format!("{}{}", out.stdout, out.stderr), 3),
        "the report should name line 3:\n{out}"
    );

    let mut removed = lines.clone();
    removed.remove(2);
    let removed_path = t.site.path().join("removed.jsonl");
    fs::write(&removed_path, removed.join("\n") + "\n").expect("write");
    let out = t
        .site
        .latch(&["audit", "verify", &removed_path.display().to_string()]);
    assert_ne!(
        out.status, 0,
        "a log missing a line must not verify:\n{out}"
    );
    assert!(
        names_line(&format!("{}{}", out.stdout, out.stderr), 3),
        "the report should name line 3, where the chain breaks:\n{out}"
    );
}

#[test]
fn second_broker_on_the_same_state_directory_refuses_to_start() {
    let t = team();
    let latch = t.site.start(&team_config(&t));
    let mut cmd = Command::new(crate::support::latch_bin());
    cmd.arg("serve").arg("--config").arg(&latch.config);
    let out = run(cmd, Duration::from_secs(15));
    assert_ne!(out.status, 0, "the second broker must not run:\n{out}");
    assert!(
        !out.stdout.contains("latch listening on"),
        "the second broker listened:\n{out}"
    );
    let err = out.stderr.to_lowercase();
    assert!(
        err.contains("another latch broker") || err.contains("lock"),
        "stderr should say another broker holds the state:\n{out}"
    );
    // The first one is unharmed.
    latch.ssh(&t.alice, &["whoami"]).ok();
}

#[test]
fn twenty_concurrent_requests_leave_exactly_twenty_grants_and_an_intact_log() {
    let site = Site::new();
    let root = site.user("root");
    let users: Vec<User> = (1..=20)
        .map(|i| site.user(&format!("user{i:02}")))
        .collect();
    let mut config = Config::new()
        .user(&root, &["admin"], &[])
        .role("admin", "admin = true\nauditor = true")
        .role(
            "quick",
            "logins = [\"deploy\"]\nhosts = [\"*\"]\nauto_approve = true",
        )
        .role(
            "db-admin",
            "logins = [\"postgres\"]\nhosts = [\"*\"]\napprovers = [\"admin\"]",
        );
    for u in &users {
        config = config.user(u, &[], &["quick", "db-admin"]);
    }
    let latch = site.start(&config);

    let ids: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = users
            .iter()
            .enumerate()
            .map(|(i, u)| {
                let latch = &latch;
                s.spawn(move || {
                    // Half auto-approved (two events per request), half pending.
                    let role = if i % 2 == 0 { "quick" } else { "db-admin" };
                    id_of(&request(latch, u, &["--role", role, "--hosts", "web-01"]))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a client thread"))
            .collect()
    });
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), 20, "ids were handed out twice: {ids:?}");

    let all = list_all(&latch, &root);
    let listed: BTreeSet<String> = all
        .as_array()
        .expect("an array")
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(listed.len(), 20, "{all:#}");
    assert_eq!(listed, ids.iter().cloned().collect());
    for g in all.as_array().into_iter().flatten() {
        let owner = g["user"].as_str().unwrap_or_default();
        assert!(owner.starts_with("user"), "{g}");
    }

    let config = site.config_path().display().to_string();
    site.latch(&["audit", "verify", "--config", &config]).ok();
    let requested = latch
        .events()
        .iter()
        .filter(|r| r["event"]["type"] == "requested")
        .count();
    assert_eq!(requested, 20);
}

#[test]
fn unknown_key_is_refused_and_the_attempt_is_audited_with_its_fingerprint() {
    let t = team();
    let latch = t.site.start(&team_config(&t));
    let mallory = t.site.user("mallory"); // a key no configured user owns
    let out = latch.ssh(&mallory, &["whoami"]);
    out.expect_status(255);
    assert!(out.stderr.contains("Permission denied"), "{out}");

    let fingerprint = mallory.fingerprint();
    let trail = latch
        .ssh(&t.root, &["audit", "--json", "--type", "auth_rejected"])
        .ok()
        .json();
    let record = trail
        .as_array()
        .and_then(|rs| {
            rs.iter()
                .find(|r| r["event"]["data"]["fingerprint"] == fingerprint.as_str())
        })
        .unwrap_or_else(|| panic!("no auth_rejected for {fingerprint}: {trail:#}"));
    let source = record["event"]["data"]["source"]
        .as_str()
        .unwrap_or_default();
    assert!(source.starts_with("127.0.0.1"), "{record}");

    // The audit trail is for auditors only.
    latch.ssh(&t.alice, &["audit"]).expect_status(4);
}

#[test]
fn help_lists_commands_unknown_commands_are_usage_errors_and_no_command_shows_the_dashboard() {
    let t = team();
    let latch = t.site.start(&team_config(&t));
    let help = latch.ssh(&t.alice, &["help"]).ok();
    assert!(
        help.stdout.contains("Usage") && help.stdout.contains("request"),
        "{help}"
    );
    let help = latch.ssh(&t.alice, &["request", "--help"]).ok();
    assert!(
        help.stdout.contains("Usage") && help.stdout.contains("--role"),
        "{help}"
    );
    let out = latch.ssh(&t.alice, &["frobnicate"]);
    out.expect_status(2);
    assert!(!out.stderr.is_empty(), "{out}");

    let id = id_of(&request(
        &latch,
        &t.alice,
        &[
            "--role",
            "db-admin",
            "--hosts",
            "prod-db-01",
            "--reason",
            "disk full",
        ],
    ));
    let dash = latch.ssh(&t.bob, &[]).ok();
    assert!(dash.stdout.contains("bob"), "{dash}");
    assert!(
        dash.stdout.contains("Waiting for your approval"),
        "an approver's dashboard shows what waits for them:\n{dash}"
    );
    assert!(
        dash.stdout.contains(&id) && dash.stdout.contains("alice"),
        "{dash}"
    );
    let mine = latch.ssh(&t.alice, &[]).ok();
    assert!(
        mine.stdout.contains("alice") && mine.stdout.contains(&id),
        "{mine}"
    );
    assert!(
        !mine.stdout.contains("Waiting for your approval"),
        "alice approves nothing:\n{mine}"
    );
}

#[test]
fn break_glass_is_approved_at_once_only_with_a_reason_a_valid_totp_and_a_role_allowing_it() {
    let t = team();
    let dave = t.site.user("dave");
    let config = team_config(&t).user_with(
        &dave,
        &[],
        &["ops"],
        &format!("totp_secret = \"{TOTP_SECRET}\"\n"),
    );
    let latch = t.site.start(&config);

    let g = request(
        &latch,
        &t.alice,
        &[
            "--role",
            "ops",
            "--hosts",
            "prod-web-01",
            "--break-glass",
            "--reason",
            "pager: site down",
        ],
    );
    assert_eq!(g["status"], "approved", "{g:#}");
    assert_eq!(g["break_glass"], true, "{g:#}");
    let reach = latch.ssh(&t.alice, &["hosts", "--json"]).ok().json();
    assert!(
        reach.to_string().contains("prod-web-01"),
        "break-glass reaches the host at once: {reach:#}"
    );

    let out = latch.ssh(
        &t.alice,
        &[
            "request",
            "--role",
            "ops",
            "--hosts",
            "prod-web-01",
            "--break-glass",
        ],
    );
    out.expect_status(2);
    assert!(out.stderr.contains("reason"), "{out}");

    latch
        .ssh(
            &t.alice,
            &[
                "request",
                "--role",
                "db-admin",
                "--hosts",
                "prod-db-01",
                "--break-glass",
                "--reason",
                "x",
            ],
        )
        .expect_status(4);

    let bg = [
        "request",
        "--role",
        "ops",
        "--hosts",
        "prod-web-01",
        "--break-glass",
        "--reason",
        "pager",
    ];
    let out = latch.ssh(&dave, &bg);
    out.expect_status(2);
    assert!(out.stderr.contains("totp"), "should ask for --totp:\n{out}");

    let secret = policy::totp::decode_secret(TOTP_SECRET).expect("a valid secret");
    // An hour away is far outside the one-step skew latch accepts.
    let wrong = policy::totp::code_at(&secret, Utc::now() + chrono::Duration::hours(1));
    let mut args = bg.to_vec();
    args.extend(["--totp", &wrong]);
    latch.ssh(&dave, &args).expect_status(4);

    let right = policy::totp::code_at(&secret, Utc::now());
    let mut args = bg.to_vec();
    args.extend(["--totp", &right, "--json"]);
    let g = latch.ssh(&dave, &args).ok().json();
    assert_eq!(g["status"], "approved", "{g:#}");
    assert_eq!(g["break_glass"], true, "{g:#}");
    assert_eq!(g["user"], "dave", "{g:#}");

    // Only the two successful break-glass requests exist.
    let all = list_all(&latch, &t.root);
    assert_eq!(all.as_array().map(Vec::len), Some(2), "{all:#}");
}

#[test]
fn config_check_reports_every_problem_with_its_location() {
    let t = team();
    let broken = format!(
        r#"[server]
ssh_listen = "127.0.0.1:0"
state_dir = "./state"

[jit]
default_duration = "2h"
max_duration = "1h"

[[users]]
name = "alice"
keys = [{key}]
roles = ["no-such-role"]

[[roles]]
name = "db-admin"
logins = ["postgres"]
hosts = ["prod-[db"]
"#,
        key = crate::support::toml_string(&t.alice.public)
    );
    let path = t.site.path().join("broken.toml");
    fs::write(&path, broken).expect("write");
    let out = t
        .site
        .latch(&["config", "check", "--config", &path.display().to_string()]);
    assert_ne!(out.status, 0, "a broken config must not pass:\n{out}");
    let report = format!("{}{}", out.stdout, out.stderr);
    // Each problem on a line of its own that says where it is (the entry, which may be
    // followed by its name, then the key) and what is wrong.
    let line_with = |entry: &str, key: &str, problem: &str| {
        report.lines().any(|l| {
            let l = l.trim_start();
            l.starts_with(entry) && l.contains(key) && l.contains(problem)
        })
    };
    assert!(
        line_with("users[0]", ".roles", "no-such-role"),
        "the report should name users[0].roles and the unknown role:\n{out}"
    );
    assert!(
        line_with("roles[0]", ".hosts", "unclosed '['"),
        "the report should name roles[0].hosts and the unclosed '[':\n{out}"
    );
    assert!(
        line_with("jit.", "_duration", "max_duration"),
        "the report should name the jit durations:\n{out}"
    );

    let good = t.site.path().join("good.toml");
    fs::write(&good, team_config(&t).render(&t.site.state_dir())).expect("write");
    t.site
        .latch(&["config", "check", "--config", &good.display().to_string()])
        .ok();
}

#[test]
fn init_writes_a_valid_config_and_a_private_state_directory() {
    let site = Site::new();
    let home = site.path().join("home"); // no ~/.ssh: init must still write a valid config
    fs::create_dir_all(&home).expect("home");
    let dir = site.path().join("bastion");
    let init = |dir: &std::path::Path| {
        let mut cmd = Command::new(crate::support::latch_bin());
        cmd.arg("init")
            .arg("--dir")
            .arg(dir)
            .env("HOME", &home)
            .env("USER", "tester")
            .current_dir(site.path());
        run(cmd, Duration::from_secs(30))
    };
    init(&dir).ok();

    let config = dir.join("latch.toml");
    let written = fs::read_to_string(&config).expect("init wrote latch.toml");
    site.latch(&["config", "check", "--config", &config.display().to_string()])
        .ok();

    let mode = |p: &std::path::Path| {
        fs::metadata(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .permissions()
            .mode()
            & 0o777
    };
    let state = dir.join("latch-data");
    assert_eq!(mode(&state), 0o700, "{}", state.display());
    let key = state.join("ssh_host_ed25519_key");
    assert_eq!(mode(&key), 0o600, "{}", key.display());

    // A second init never overwrites a config.
    let again = init(&dir);
    assert_ne!(again.status, 0, "{again}");
    assert_eq!(fs::read_to_string(&config).expect("still there"), written);
}

#[test]
fn torn_last_line_is_set_aside_on_start_and_every_earlier_grant_survives() {
    let t = team();
    let mut latch = t.site.start(&team_config(&t));
    request(
        &latch,
        &t.alice,
        &["--role", "quick", "--hosts", "prod-web-01"],
    );
    let pending = id_of(&request(
        &latch,
        &t.alice,
        &["--role", "db-admin", "--hosts", "prod-db-01"],
    ));
    let before = list_all(&latch, &t.root);
    latch.stop();

    // A crash in the middle of an append leaves a line without its end.
    let torn = r#"{"seq":99,"prev":"#;
    let mut log = fs::OpenOptions::new()
        .append(true)
        .open(t.site.events_path())
        .expect("open the log");
    std::io::Write::write_all(&mut log, torn.as_bytes()).expect("append");
    drop(log);

    latch.start_again();
    assert_eq!(list_all(&latch, &t.root), before, "grants changed");
    let aside: Vec<_> = fs::read_dir(t.site.state_dir())
        .expect("state dir")
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("events.jsonl.torn-")
        })
        .collect();
    assert_eq!(aside.len(), 1, "one torn-line file expected");
    assert_eq!(
        fs::read_to_string(aside[0].path()).expect("read"),
        torn,
        "the torn bytes are kept as evidence"
    );

    // The log is whole again and writable.
    latch.ssh(&t.bob, &["approve", &pending]).ok();
    let config = t.site.config_path().display().to_string();
    t.site.latch(&["audit", "verify", "--config", &config]).ok();
    let records = read_events(&t.site.events_path());
    assert!(
        records.iter().all(|r| r["seq"] != 99),
        "the torn line must not stay in the log"
    );
}
