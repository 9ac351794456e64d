//! The documented config that `latch init` writes, and the embedded default that
//! `latch serve` runs on when there is no config at all.
//!
//! Both come from one template so the file a newcomer gets and the default they first ran
//! on never drift apart. Every key is commented: the template is the config reference.

use std::fmt::Write as _;

/// Who the generated config trusts as its first administrator.
#[derive(Debug, Clone)]
pub struct FirstAdmin {
    /// The latch user name (the local login name, or `admin`).
    pub name: String,
    /// OpenSSH public key lines, e.g. from `~/.ssh/*.pub`.
    pub keys: Vec<String>,
    /// The login the demo role allows on targets (the local login name).
    pub login: String,
}

/// Render the documented config. `state_dir` is written as given.
pub fn render(admin: &FirstAdmin, ssh_listen: &str, state_dir: &str) -> String {
    let mut keys = String::new();
    if admin.keys.is_empty() {
        keys.push_str(
            "keys = []  # no ~/.ssh/*.pub found: add your key, e.g. \"ssh-ed25519 AAAA... you@laptop\"\n",
        );
    } else {
        keys.push_str("keys = [\n");
        for k in &admin.keys {
            let _ = writeln!(keys, "  {},", toml_string(k));
        }
        keys.push_str("]\n");
    }
    format!(
        r#"# latch configuration. Check it with `latch config check --config FILE`.
# Durations are written like 90m, 2h, 1h30m, 30s or 1d. Unknown keys are errors.

[server]
# Address the SSH server listens on. Clients run `ssh -p PORT bastion COMMAND`.
ssh_listen = {listen}
# Where latch keeps its event log (the source of truth), its SSH host key and its CA keys.
# A relative path is relative to this file's directory.
state_dir = {state_dir}
# Lifetime of the certificate minted for each upstream connection (at most 10m). It only
# has to outlive the login; the session itself is governed by the grant.
cert_validity = "5m"
# Pin minted certificates to the broker's own addresses as targets see them (sshd then
# refuses them from anywhere else). Empty: no restriction.
# cert_source_addresses = ["10.0.0.2"]

[jit]
# Duration of a grant when a request gives no --duration.
default_duration = "1h"
# No grant lasts longer than this, whatever the role says. Longer requests are capped.
max_duration = "8h"
# Shortest grant one may request.
min_duration = "1s"
# A request nobody approves within this time expires.
approval_timeout = "24h"
# Every request must say why (--reason). Break-glass always requires a reason.
require_reason = true
# Every request must name a ticket (--ticket URL).
require_ticket = false
# Live sessions are warned this long before their grant expires.
expiry_warning = "5m"
# Break-glass grants (no approval) are capped at this.
break_glass_max_duration = "1h"

# Users: who may connect, identified by their SSH public keys.
#   name         latch user name (shown in the audit log)
#   keys         OpenSSH public key lines; the key a user authenticates with is their identity
#   roles        standing roles: always in force, no request needed
#   can_request  roles the user may request just in time
#   totp_secret  optional base32 TOTP secret; when set, break-glass requires --totp CODE
[[users]]
name = {name}
{keys}roles = ["admin"]
can_request = ["demo", "ops"]

# A second person is needed to approve requests (nobody approves their own):
# [[users]]
# name = "bob"
# keys = ["ssh-ed25519 AAAA... bob@laptop"]
# roles = ["admin"]

# Roles: what a standing role or an approved grant allows.
#   logins            login names on targets (each certificate carries exactly one)
#   hosts             host patterns the role covers (Go filepath.Match: * ? [a-z] [!x] \)
#   max_duration      cap for grants of this role (never above jit.max_duration)
#   approvers         members (standing) of these roles approve requests for this role
#   auto_approve      requests are approved at once (still logged); default false
#   break_glass       may be taken without approval with --break-glass; default false
#   port_forwarding   ssh -L allowed; default false
#   agent_forwarding  ssh -A allowed; default false
#   x11_forwarding    ssh -X allowed; default false
#   sftp              file transfer allowed (sftp, scp, rsync); default false
#   record_input      record what the user types (off by default: it includes passwords)
#   admin             members see everything, revoke any grant, lock users; default false
#   auditor           members read the audit trail and recordings; default false
[[roles]]
name = "admin"
admin = true
auditor = true

[[roles]]
name = "demo"
logins = [{login}]
hosts = ["*"]
max_duration = "1h"
auto_approve = true
sftp = true

[[roles]]
name = "ops"
logins = [{login}]
hosts = ["*"]
max_duration = "4h"
approvers = ["admin"]
break_glass = true
sftp = true

# Recordings of proxied sessions (asciicast for shells and commands, metadata for
# file transfers and forwarded ports), sealed and signed when they close.
[recordings]
# Delete recordings older than this (the deletion is audited). Leave unset to keep them all.
# retention = "90d"
# Record sessions at all. Leave this true; false is for measuring what recording costs,
# and is logged at every start and recorded in the audit trail.
# enabled = true

# Hosts: the targets latch may connect to.
#   name       the name users type: ssh -p 2222 LOGIN@NAME@bastion
#   address    host:port of the target's sshd
#   host_keys  the target's pinned SSH host key(s); a connection to a key not listed is refused
#              (`latch hosts scan HOST:PORT` prints them with their fingerprint)
#   host_cas   host CA public key(s) trusted to certify this host (the certificate must name it)
#   labels     free-form key/value pairs
# [[hosts]]
# name = "web-01"
# address = "10.0.0.5:22"
# host_keys = ["ssh-ed25519 AAAA..."]
# labels = {{ env = "prod" }}
"#,
        listen = toml_string(ssh_listen),
        state_dir = toml_string(state_dir),
        name = toml_string(&admin.name),
        login = toml_string(&admin.login),
    )
}

/// A TOML basic string: JSON string escaping is a valid subset of TOML's.
fn toml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_template_is_a_valid_config() {
        let admin = FirstAdmin {
            name: "alice".into(),
            keys: vec![
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGQ2bGx0fR0gS0WQyYz0gkn5XeKUpMpzdTv4ymJMMyfm alice@laptop".into(),
            ],
            login: "alice".into(),
        };
        let text = render(&admin, "127.0.0.1:2222", "./latch-data");
        let settings = policy::Settings::from_toml(&text).expect("template must validate");
        assert_eq!(settings.users[0].name, "alice");
        assert!(settings.is_admin("alice"));
    }

    #[test]
    fn template_without_keys_is_still_valid() {
        let admin = FirstAdmin {
            name: "admin".into(),
            keys: vec![],
            login: "root".into(),
        };
        let text = render(&admin, "127.0.0.1:2222", "./latch-data");
        policy::Settings::from_toml(&text).expect("template must validate");
    }
}
