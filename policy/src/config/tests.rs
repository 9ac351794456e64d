//! Config tests: each validation gets a small TOML snippet and asserts the issue's location
//! and a phrase of its message, so a regression in either is caught.

use super::key::tests::{key_line, REAL_ED25519};
use super::*;

/// A distinct, well-formed ed25519 key line per seed.
fn key(seed: u8) -> String {
    key_line("ssh-ed25519", seed, &format!("user{seed}@laptop"))
}

fn issues(toml: &str) -> Vec<ConfigIssue> {
    match Settings::from_toml(toml) {
        Ok(_) => panic!("config was accepted:\n{toml}"),
        Err(e) => e.issues,
    }
}

fn settings(toml: &str) -> Settings {
    Settings::from_toml(toml).unwrap_or_else(|e| panic!("{e}\n{toml}"))
}

/// Assert exactly one issue, at `location`, whose message contains `phrase`.
#[track_caller]
fn assert_one_issue(toml: &str, location: &str, phrase: &str) {
    let found = issues(toml);
    assert_eq!(found.len(), 1, "expected one issue, got {found:#?}");
    assert_issue(&found, location, phrase);
}

#[track_caller]
fn assert_issue(found: &[ConfigIssue], location: &str, phrase: &str) {
    assert!(
        found
            .iter()
            .any(|i| i.location == location && i.message.contains(phrase)),
        "no issue at {location:?} containing {phrase:?} in {found:#?}"
    );
}

/// DESIGN.md's example with real-shaped keys, plus the roles it refers to.
fn design_example() -> String {
    format!(
        r#"
[server]
cert_validity = "2m"
cert_source_addresses = ["10.0.0.0/24"]
ssh_listen = "127.0.0.1:2222"
state_dir = "./latch-data"

[jit]
default_duration = "1h"
max_duration = "8h"
approval_timeout = "24h"
require_reason = true
expiry_warning = "5m"

[[users]]
name = "alice"
keys = ["{alice}"]
roles = ["developer"]             # standing roles
can_request = ["db-admin"]        # roles alice may request

[[users]]
name = "bob"
keys = ["{bob}", "{bob2}"]
roles = ["security-admin"]
totp_secret = "JBSWY3DPEHPK3PXPJBSWY3DP"

[[users]]
name = "carol"
keys = ["{carol}"]
roles = ["auditors"]

[[roles]]
name = "developer"
logins = ["dev"]
hosts = ["dev-*"]

[[roles]]
name = "db-admin"
logins = ["postgres", "root"]
hosts = ["prod-db-*"]
max_duration = "4h"
approvers = ["security-admin"]    # members of these roles may approve
break_glass = true

[[roles]]
name = "security-admin"
admin = true

[[roles]]
name = "auditors"
auditor = true

[[hosts]]
name = "prod-db-01"
address = "127.0.0.1:2201"
host_keys = ["{host}"]
labels = {{ env = "prod" }}

[[hosts]]
name = "dev-01"
address = "dev-01.internal:22"
"#,
        alice = REAL_ED25519,
        bob = key(2),
        bob2 = key_line("ecdsa-sha2-nistp256", 3, ""),
        carol = key_line("ssh-rsa", 4, "carol"),
        host = key(9),
    )
}

#[test]
fn design_example_parses_and_lookups_work() {
    let s = settings(&design_example());
    assert_eq!(s.server.ssh_listen.to_string(), "127.0.0.1:2222");
    assert_eq!(s.users.len(), 3);
    let alice = s.user("alice").unwrap();
    assert_eq!(alice.keys[0].comment, "alice@laptop");
    assert_eq!(alice.can_request, ["db-admin"]);
    let bob_key = s.user("bob").unwrap().keys[1].canonical();
    assert_eq!(s.user_by_key(&bob_key).unwrap().name, "bob");
    assert_eq!(
        s.user_by_key(&alice.keys[0].canonical()).unwrap().name,
        "alice"
    );
    assert!(s.user_by_key("ssh-ed25519 AAAA").is_none());
    assert!(s.user("mallory").is_none());
    assert_eq!(
        s.user("bob").unwrap().totp_secret.as_ref().unwrap().len(),
        15
    );

    let db = s.role("db-admin").unwrap();
    assert!(db.hosts[0].matches("prod-db-01") && db.break_glass && !db.auto_approve);
    assert_eq!(s.max_duration_for(db), Duration::hours(4));
    assert_eq!(
        s.max_duration_for(s.role("developer").unwrap()),
        Duration::hours(8)
    );
    assert_eq!(s.host("prod-db-01").unwrap().labels["env"], "prod");
    assert!(s.host("dev-01").unwrap().host_keys.is_empty());

    assert!(s.is_approver_for("bob", "db-admin"));
    assert!(!s.is_approver_for("alice", "db-admin"));
    assert!(!s.is_approver_for("bob", "developer"));
    assert!(!s.is_approver_for("bob", "no-such-role"));
    assert!(s.holds_any("alice", &["developer".into(), "x".into()]));
    assert!(
        !s.holds_any("alice", &["db-admin".into()]),
        "requestable is not standing"
    );
    assert!(s.is_admin("bob") && !s.is_admin("alice") && !s.is_admin("carol"));
    assert!(s.is_auditor("bob"), "admins are auditors");
    assert!(s.is_auditor("carol") && !s.is_auditor("alice") && !s.is_auditor("nobody"));
}

#[test]
fn empty_config_takes_defaults() {
    let s = settings("");
    assert_eq!(s.server.ssh_listen, "127.0.0.1:2222".parse().unwrap());
    assert_eq!(s.server.state_dir, "./latch-data");
    let j = &s.jit;
    assert_eq!(j.default_duration, Duration::hours(1));
    assert_eq!(j.max_duration, Duration::hours(8));
    assert_eq!(j.min_duration, Duration::seconds(1));
    assert_eq!(j.approval_timeout, Duration::hours(24));
    assert!(j.require_reason && !j.require_ticket);
    assert_eq!(j.expiry_warning, Duration::minutes(5));
    assert_eq!(j.break_glass_max_duration, Duration::hours(1));
}

#[test]
fn unset_defaults_fit_a_small_max_duration() {
    let j = settings("[jit]\nmax_duration = \"30m\"").jit;
    assert_eq!(j.default_duration, Duration::minutes(30));
    assert_eq!(j.break_glass_max_duration, Duration::minutes(30));
    assert_eq!(j.expiry_warning, Duration::minutes(5));
    let j = settings("[jit]\nmax_duration = \"5m\"").jit;
    assert_eq!(j.expiry_warning, Duration::seconds(150));
    let j = settings("[jit]\nmin_duration = \"2h\"\nmax_duration = \"4h\"").jit;
    assert_eq!(j.default_duration, Duration::hours(2));
}

#[test]
fn toml_syntax_error_is_one_issue_with_line_and_column() {
    let found = issues("[jit]\nmax_duration = \"8h\"\nexpiry_warning = 5m\n");
    assert_eq!(found.len(), 1, "{found:#?}");
    // toml reads `5` as a number, then stops at the `m`.
    assert_eq!(found[0].location, "line 3, column 19");
    assert!(
        found[0].message.starts_with("TOML syntax error"),
        "{}",
        found[0].message
    );
    let found = issues("[[users]]\nname = \"é\"\nname = \"x\"\n");
    assert_eq!(found[0].location, "line 3, column 1");
}

#[test]
fn unknown_keys_are_all_reported_with_path_and_suggestion() {
    let found = issues(
        r#"
colour = "blue"
[jit]
max_duraton = "8h"
[[roles]]
name = "db-admin"
aprovers = ["x"]
"#,
    );
    assert_eq!(found.len(), 3, "{found:#?}");
    assert_issue(
        &found,
        "colour",
        "unknown key \"colour\": known keys here: server, jit",
    );
    assert_issue(&found, "jit.max_duraton", "did you mean \"max_duration\"?");
    assert_issue(
        &found,
        "roles[0] (db-admin).aprovers",
        "did you mean \"approvers\"?",
    );
}

#[test]
fn wrong_types_are_reported_without_knock_on_issues() {
    let found = issues(&format!(
        r#"
[server]
ssh_listen = 2222
[jit]
require_reason = "yes"
[[users]]
name = 5
keys = "{k}"
roles = ["a", 1]
[[hosts]]
name = "db"
address = "db:22"
labels = {{ env = 1 }}
"#,
        k = key(1)
    ));
    assert_eq!(found.len(), 7, "{found:#?}");
    assert_issue(&found, "users[0].roles[0]", "unknown role \"a\"");
    assert_issue(
        &found,
        "server.ssh_listen",
        "expected a string in quotes, found the number 2222",
    );
    assert_issue(&found, "jit.require_reason", "expected true or false");
    assert_issue(&found, "users[0].name", "expected a string in quotes");
    assert_issue(&found, "users[0].keys", "expected a list of strings");
    assert_issue(&found, "users[0].roles[1]", "expected a string");
    assert_issue(&found, "hosts[0] (db).labels.env", "expected a string");
    assert_one_issue("users = 3", "users", "start each entry with [[users]]");
    assert_one_issue(
        "[users]\nname = \"a\"",
        "users",
        "start each entry with [[users]]",
    );
    assert_one_issue("jit = []", "jit", "write [jit] on a line of its own");
}

#[test]
fn missing_names_are_reported() {
    assert_one_issue("[[users]]\nroles = []", "users[0].name", "missing name");
    assert_one_issue("[[roles]]\nadmin = true", "roles[0].name", "missing name");
    assert_one_issue(
        "[[hosts]]\naddress = \"db:22\"",
        "hosts[0].name",
        "missing name",
    );
}

#[test]
fn duplicate_names_are_reported_at_the_second_entry() {
    assert_one_issue(
        "[[users]]\nname = \"a\"\n[[users]]\nname = \"b\"\n[[users]]\nname = \"a\"",
        "users[2] (a).name",
        "duplicate user name \"a\" (first at users[0] (a))",
    );
    assert_one_issue(
        "[[roles]]\nname = \"r\"\n[[roles]]\nname = \"r\"",
        "roles[1] (r).name",
        "duplicate role name",
    );
    assert_one_issue(
        "[[hosts]]\nname = \"h\"\naddress = \"h:22\"\n[[hosts]]\nname = \"h\"\naddress = \"h:22\"",
        "hosts[1] (h).name",
        "duplicate host name",
    );
}

#[test]
fn bad_user_and_role_names_are_reported() {
    for (name, phrase) in [
        ("", "is empty"),
        ("al ice", "whitespace"),
        ("-alice", "option"),
        ("alice@corp", "'@'"),
        ("a:b", "':'"),
    ] {
        let at = format!("{}.name", item("users", 0, Some(name)));
        assert_one_issue(&format!("[[users]]\nname = {name:?}"), &at, phrase);
        let at = format!("{}.name", item("roles", 0, Some(name)));
        assert_one_issue(&format!("[[roles]]\nname = {name:?}"), &at, phrase);
    }
}

#[test]
fn locations_quote_names_that_need_it() {
    assert_eq!(item("users", 2, Some("alice")), "users[2] (alice)");
    assert_eq!(item("users", 2, Some("al ice")), "users[2] (\"al ice\")");
    assert_eq!(item("users", 2, Some("")), "users[2]");
    assert_eq!(item("users", 2, None), "users[2]");
}

#[test]
fn duplicate_keys_are_refused_across_and_within_users() {
    let toml = format!(
        "[[users]]\nname = \"a\"\nkeys = [\"{k}\"]\n[[users]]\nname = \"b\"\nkeys = [\"{other}\", \"{k_again}\"]",
        k = key(1),
        other = key(2),
        // Same key, different comment: identity ignores comments.
        k_again = key_line("ssh-ed25519", 1, "copied"),
    );
    assert_one_issue(
        &toml,
        "users[1] (b).keys[1]",
        "already users[0] (a).keys[0]: a key must identify exactly one user",
    );
    let toml = format!(
        "[[users]]\nname = \"a\"\nkeys = [\"{k}\", \"{k}\"]",
        k = key(1)
    );
    assert_one_issue(
        &toml,
        "users[0] (a).keys[1]",
        "already listed at users[0] (a).keys[0]",
    );
}

#[test]
fn invalid_key_lines_are_reported() {
    assert_one_issue(
        "[[users]]\nname = \"a\"\nkeys = [\"ssh-ed25519 AAAA...\"]",
        "users[0] (a).keys[0]",
        "not valid base64",
    );
    assert_one_issue(
        "[[users]]\nname = \"a\"\nkeys = [\"ssh-dss AAAA\"]",
        "users[0] (a).keys[0]",
        "unknown key type",
    );
}

#[test]
fn unknown_roles_are_reported_wherever_named() {
    let found = issues(
        r#"
[[users]]
name = "a"
roles = ["developr"]
can_request = ["nope"]
[[roles]]
name = "developer"
approvers = ["admins"]
"#,
    );
    assert_eq!(found.len(), 3, "{found:#?}");
    assert_issue(
        &found,
        "users[0] (a).roles[0]",
        "unknown role \"developr\": no [[roles]] entry has this name; did you mean \"developer\"?",
    );
    assert_issue(
        &found,
        "users[0] (a).can_request[0]",
        "define it in a [[roles]] entry or remove it",
    );
    assert_issue(
        &found,
        "roles[0] (developer).approvers[0]",
        "unknown role \"admins\"",
    );
}

#[test]
fn role_host_patterns_are_checked() {
    assert_one_issue(
        "[[roles]]\nname = \"r\"\nlogins = [\"root\"]\nhosts = [\"ok-*\", \"db-[0-9\"]",
        "roles[0] (r).hosts[1]",
        "unclosed '['",
    );
}

#[test]
fn roles_that_grant_access_name_both_hosts_and_logins() {
    assert_one_issue(
        "[[roles]]\nname = \"r\"\nhosts = [\"db\"]",
        "roles[0] (r)",
        "has hosts but no logins",
    );
    assert_one_issue(
        "[[roles]]\nname = \"r\"\nlogins = [\"root\"]",
        "roles[0] (r)",
        "has logins but no hosts",
    );
    settings("[[roles]]\nname = \"approvers\"");
}

#[test]
fn login_names_are_checked() {
    for (login, phrase) in [
        ("ro ot", "whitespace"),
        ("root@db", "'@'"),
        ("a:b", "':'"),
        ("-oProxyCommand", "option"),
        ("", "is empty"),
        ("a/b", "'/'"),
        ("tab\there", "control"),
        (&"x".repeat(33), "32 characters"),
    ] {
        let toml =
            format!("[[roles]]\nname = \"r\"\nhosts = [\"db\"]\nlogins = [\"ok\", {login:?}]");
        assert_one_issue(&toml, "roles[0] (r).logins[1]", phrase);
    }
    settings("[[roles]]\nname = \"r\"\nhosts = [\"db\"]\nlogins = [\"Admin\", \"svc.backup\", \"_x-1\", \"1user\"]");
}

#[test]
fn host_names_are_checked() {
    for (name, phrase) in [
        ("db 1", "whitespace"),
        ("db@x", "'@'"),
        ("db-*", "glob"),
        ("db[1]", "glob"),
        ("a/b", "'/'"),
    ] {
        let toml = format!("[[hosts]]\nname = {name:?}\naddress = \"db:22\"");
        assert_one_issue(
            &toml,
            &format!("{}.name", item("hosts", 0, Some(name))),
            phrase,
        );
    }
}

#[test]
fn host_addresses_are_checked() {
    assert_one_issue(
        "[[hosts]]\nname = \"db\"",
        "hosts[0] (db).address",
        "missing address",
    );
    for (address, phrase) in [
        ("db", "has no port"),
        ("db:", "does not end in a port"),
        (":22", "no host"),
        ("db:0", "outside 1-65535"),
        ("db:65536", "outside 1-65535"),
        ("db:ssh", "does not end in a port"),
        ("::1:22", "IPv6"),
        ("db x:22", "whitespace"),
    ] {
        let toml = format!("[[hosts]]\nname = \"db\"\naddress = {address:?}");
        assert_one_issue(&toml, "hosts[0] (db).address", phrase);
    }
    for address in [
        "10.0.0.5:22",
        "[::1]:2201",
        "db.internal:22",
        "localhost:65535",
    ] {
        settings(&format!("[[hosts]]\nname = \"db\"\naddress = {address:?}"));
    }
}

#[test]
fn host_keys_are_optional_but_must_parse() {
    settings("[[hosts]]\nname = \"db\"\naddress = \"db:22\"");
    let toml = format!(
        "[[hosts]]\nname = \"db\"\naddress = \"db:22\"\nhost_keys = [\"{}\", \"ssh-ed25519 !!\"]",
        key(1)
    );
    assert_one_issue(
        &toml,
        "hosts[0] (db).host_keys[1]",
        "host key data is not valid base64",
    );
}

#[test]
fn invalid_durations_use_the_duration_messages() {
    for field in [
        "default_duration",
        "max_duration",
        "min_duration",
        "approval_timeout",
        "expiry_warning",
        "break_glass_max_duration",
    ] {
        assert_one_issue(
            &format!("[jit]\n{field} = \"1.5h\""),
            &format!("jit.{field}"),
            "is not a duration",
        );
    }
    assert_one_issue(
        "[jit]\napproval_timeout = \"0s\"",
        "jit.approval_timeout",
        "is zero",
    );
    assert_one_issue(
        "[jit]\nmax_duration = \"-1h\"",
        "jit.max_duration",
        "is negative",
    );
    assert_one_issue(
        "[jit]\nmax_duration = \"400d\"",
        "jit.max_duration",
        "366-day",
    );
    assert_one_issue(
        "[jit]\nmax_duration = \"\"",
        "jit.max_duration",
        "empty duration",
    );
    assert_one_issue(
        "[[roles]]\nname = \"r\"\nmax_duration = \"2x\"",
        "roles[0] (r).max_duration",
        "is not a duration",
    );
}

#[test]
fn jit_durations_must_be_consistent() {
    assert_one_issue(
        "[jit]\ndefault_duration = \"2h\"\nmax_duration = \"1h\"",
        "jit.default_duration",
        "2h is longer than jit.max_duration (1h)",
    );
    assert_one_issue(
        "[jit]\ndefault_duration = \"9h\"",
        "jit.default_duration",
        "longer than jit.max_duration (8h, the default)",
    );
    assert_one_issue(
        "[jit]\nmin_duration = \"2h\"\ndefault_duration = \"1h\"",
        "jit.min_duration",
        "longer than jit.default_duration (1h)",
    );
    assert_one_issue(
        "[jit]\nmin_duration = \"9h\"",
        "jit.min_duration",
        "no request could be granted",
    );
    assert_one_issue(
        "[jit]\nbreak_glass_max_duration = \"2h\"\nmax_duration = \"1h\"",
        "jit.break_glass_max_duration",
        "longer than jit.max_duration (1h)",
    );
    assert_one_issue(
        "[jit]\nexpiry_warning = \"1h\"\nmax_duration = \"1h\"",
        "jit.expiry_warning",
        "not shorter than jit.max_duration (1h)",
    );
    // A broken max is reported once, not again by every comparison against it.
    assert_one_issue(
        "[jit]\nmax_duration = \"x\"\ndefault_duration = \"9h\"",
        "jit.max_duration",
        "not a duration",
    );
}

#[test]
fn role_max_duration_above_global_max_is_an_error() {
    assert_one_issue(
        "[jit]\nmax_duration = \"2h\"\n[[roles]]\nname = \"r\"\nmax_duration = \"4h\"",
        "roles[0] (r).max_duration",
        "grants would be capped at 2h",
    );
    let s =
        settings("[jit]\nmax_duration = \"2h\"\n[[roles]]\nname = \"r\"\nmax_duration = \"2h\"");
    assert_eq!(s.max_duration_for(s.role("r").unwrap()), Duration::hours(2));
}

#[test]
fn ssh_listen_and_state_dir_are_checked() {
    assert_one_issue(
        "[server]\nssh_listen = \"localhost:2222\"",
        "server.ssh_listen",
        "not a socket address",
    );
    assert_one_issue(
        "[server]\nssh_listen = \"127.0.0.1\"",
        "server.ssh_listen",
        "like 127.0.0.1:2222",
    );
    assert_one_issue("[server]\nstate_dir = \"\"", "server.state_dir", "is empty");
    let s = settings("[server]\nssh_listen = \"[::]:22\"\nstate_dir = \"/var/lib/latch\"");
    assert_eq!(s.server.ssh_listen.port(), 22);
    assert_eq!(s.server.state_dir, "/var/lib/latch");
}

#[test]
fn totp_secrets_must_be_base32_and_long_enough() {
    assert_one_issue(
        "[[users]]\nname = \"a\"\ntotp_secret = \"JBSWY3DPEHPK3PX1\"",
        "users[0] (a).totp_secret",
        "not a usable TOTP secret",
    );
    assert_one_issue(
        "[[users]]\nname = \"a\"\ntotp_secret = \"JBSWY3DP\"",
        "users[0] (a).totp_secret",
        "only 5 bytes; use at least 10",
    );
    // 16 characters make exactly the 10-byte minimum; spaces and lower case are how apps show it.
    let s = settings("[[users]]\nname = \"a\"\ntotp_secret = \"jbsw y3dp ehpk 3pxp\"");
    assert_eq!(
        s.user("a").unwrap().totp_secret.as_ref().map(Vec::len),
        Some(10)
    );
}

#[test]
fn requestable_roles_need_someone_to_approve() {
    let base = "[[users]]\nname = \"a\"\ncan_request = [\"r\"]\n[[roles]]\nname = \"r\"\nlogins = [\"root\"]\nhosts = [\"db\"]\n";
    assert_one_issue(
        base,
        "roles[0] (r).approvers",
        "can be requested (users[0] (a).can_request[0]) but has no approvers",
    );
    settings(&format!("{base}auto_approve = true\nbreak_glass = true"));
    settings(&format!("{base}approvers = [\"r\"]"));
    // Not requestable: nobody needs to approve it.
    settings("[[roles]]\nname = \"r\"\nlogins = [\"root\"]\nhosts = [\"db\"]");
}

#[test]
fn every_issue_is_collected_in_one_pass() {
    let toml = r#"
[server]
ssh_listen = "nowhere"
[jit]
max_duration = "1x"
[[users]]
name = "a"
keys = ["garbage"]
roles = ["missing"]
[[users]]
name = "a"
[[roles]]
hosts = ["["]
[[hosts]]
name = "h"
address = "h"
"#;
    let err = Settings::from_toml(toml).unwrap_err();
    let locations: Vec<&str> = err.issues.iter().map(|i| i.location.as_str()).collect();
    assert_eq!(
        locations,
        [
            "server.ssh_listen",
            "jit.max_duration",
            "roles[0].name",
            "roles[0].hosts[0]",
            "roles[0]",
            "users[1] (a).name",
            "users[0] (a).keys[0]",
            "users[0] (a).roles[0]",
            "hosts[0] (h).address",
        ]
    );
    let text = err.to_string();
    assert!(
        text.starts_with("9 problems in config:\n  server.ssh_listen: "),
        "{text}"
    );
}

#[test]
fn from_raw_validates_without_toml() {
    let mut raw = RawConfig::default();
    raw.users.push(RawUser {
        name: Some("a".into()),
        can_request: vec!["r".into()],
        ..Default::default()
    });
    let err = Settings::from_raw(&raw).unwrap_err();
    assert_eq!(err.issues.len(), 1);
    assert_issue(&err.issues, "users[0] (a).can_request[0]", "unknown role");
    raw.roles.push(RawRole {
        name: Some("r".into()),
        auto_approve: Some(true),
        ..Default::default()
    });
    assert!(Settings::from_raw(&raw).unwrap().user("a").is_some());
}

#[test]
fn reader_agrees_with_serde_on_every_field() {
    // The hand-written reader must stay in step with the Raw* structs' serde derive, which
    // other code (config templates, tests) relies on. Every field is set, so none is missed.
    let text = format!(
        r#"
[server]
ssh_listen = "127.0.0.1:2222"
state_dir = "/var/lib/latch"
cert_validity = "2m"
cert_source_addresses = ["10.0.0.0/24"]
[jit]
default_duration = "1h"
max_duration = "8h"
min_duration = "1s"
approval_timeout = "24h"
require_reason = false
require_ticket = true
expiry_warning = "5m"
break_glass_max_duration = "30m"
[[users]]
name = "a"
keys = ["{k}"]
roles = ["r"]
can_request = ["r"]
totp_secret = "JBSWY3DPEHPK3PXPJBSWY3DP"
[[roles]]
name = "r"
logins = ["root"]
hosts = ["db-*"]
max_duration = "2h"
approvers = ["r"]
auto_approve = true
break_glass = true
port_forwarding = true
agent_forwarding = false
x11_forwarding = true
sftp = false
record_input = true
admin = true
auditor = true
[[hosts]]
name = "db-1"
address = "db-1:22"
host_keys = ["{k}"]
host_cas = ["{k}"]
labels = {{ env = "prod" }}
[recordings]
retention = "90d"
enabled = true
"#,
        k = key(1)
    );
    let via_serde: RawConfig = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let (via_reader, found) = read::read(&text);
    assert!(found.is_empty(), "{found:#?}");
    let via_serde = serde_json::to_value(&via_serde).unwrap();
    assert_eq!(
        serde_json::to_value(via_reader.unwrap()).unwrap(),
        via_serde
    );
    let json = via_serde.to_string();
    assert!(
        !json.contains("null") && !json.contains("[]") && !json.contains("{}"),
        "{json}"
    );
    settings(&text);
}

#[test]
fn lookups_survive_callers_editing_the_public_vectors() {
    let mut s = settings(&design_example());
    s.users.remove(0);
    assert_eq!(s.user("bob").unwrap().name, "bob");
    assert!(s.user("alice").is_none());
    let bob_key = s.user("bob").unwrap().keys[0].canonical();
    assert_eq!(s.user_by_key(&bob_key).unwrap().name, "bob");
}

#[test]
fn garbage_input_never_panics() {
    // Config text, patterns, durations and keys come from people; any of them may be
    // nonsense, multi-byte, or cut short, and must come back as an error, not a crash.
    let alphabet: Vec<char> = "ab*?[]!^-\\z09hmsdw. :@=\"\n#{},αζ日\u{0}\t"
        .chars()
        .collect();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..3_000 {
        let len = (next() % 14) as usize;
        let s: String = (0..len)
            .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
            .collect();
        if let Ok(p) = crate::pattern::HostPattern::parse(&s) {
            let _ = p.matches("abz-αζ01");
        }
        let _ = crate::duration::parse(&s);
        let _ = crate::totp::decode_secret(&s);
        let _ = UserKey::parse(&s);
        let _ = Settings::from_toml(&s);
        let _ = Settings::from_toml(&format!(
            "[[hosts]]\nname = {s:?}\naddress = {s:?}\n[[roles]]\nname = {s:?}\nhosts = [{s:?}]\n\
             logins = [{s:?}]\n[jit]\nmax_duration = {s:?}"
        ));
    }
}

#[test]
fn certificate_settings_are_checked() {
    let text = "[server]\ncert_validity = \"1h\"\ncert_source_addresses = [\"10.0.0.0/24\", \"bastion\", \"10.0.0.1/40\"]\n";
    let err = Settings::from_toml(text).unwrap_err();
    let found: Vec<String> = err.issues.iter().map(|i| i.location.clone()).collect();
    assert!(found.contains(&"server.cert_validity".to_string()), "{err}");
    assert!(
        found.contains(&"server.cert_source_addresses[1]".to_string()),
        "{err}"
    );
    assert!(
        found.contains(&"server.cert_source_addresses[2]".to_string()),
        "{err}"
    );
    assert!(
        !found.contains(&"server.cert_source_addresses[0]".to_string()),
        "{err}"
    );
    let ok = Settings::from_toml("[server]\ncert_validity = \"2m\"\n").expect("valid");
    assert_eq!(ok.server.cert_validity, chrono::Duration::minutes(2));
    let default = Settings::from_toml("").expect("valid");
    assert_eq!(default.server.cert_validity, chrono::Duration::minutes(5));
}
