//! The config model: the TOML as written ([`RawConfig`]) and the validated [`Settings`].
//!
//! Two stages, as in ripgrep: serde reads the file into raw structs as close to the text as
//! possible, then [`Settings::from_raw`] checks everything once and builds the settings the
//! rest of latch uses. Nothing downstream re-validates. Every problem found is collected (not
//! just the first) and reported with where it is (`users[2].can_request`) and what to do.
//!
//! No field has a default that hides a security choice: a role auto-approves, allows
//! break-glass or forwarding only when it says so.

use crate::pattern::HostPattern;
use chrono::Duration;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fmt;

mod key;
mod names;
mod read;
mod suggest;
#[cfg(test)]
mod tests;
mod validate;

/// The file as written. Unknown keys are errors (`deny_unknown_fields`), so a typo such as
/// `aprovers` is reported instead of silently ignored.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub jit: RawJit,
    #[serde(default)]
    pub users: Vec<RawUser>,
    #[serde(default)]
    pub roles: Vec<RawRole>,
    #[serde(default)]
    pub hosts: Vec<RawHost>,
    #[serde(default)]
    pub recordings: RawRecordings,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRecordings {
    /// Delete recordings older than this. Unset: keep forever.
    pub retention: Option<String>,
    /// Record proxied sessions. Default true.
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// Address the SSH server listens on. Default `127.0.0.1:2222`.
    pub ssh_listen: Option<String>,
    /// Where the event log, host key and CA keys live. Default `./latch-data`.
    /// A relative path is relative to the config file's directory (resolved by the broker).
    pub state_dir: Option<String>,
    /// Lifetime of the certificates minted for upstream connections. Default 5m, at most 10m.
    pub cert_validity: Option<String>,
    /// If set, minted certificates carry `source-address` with these addresses/CIDRs: the
    /// broker's own addresses as the targets see them.
    #[serde(default)]
    pub cert_source_addresses: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawJit {
    pub default_duration: Option<String>,
    pub max_duration: Option<String>,
    pub min_duration: Option<String>,
    pub approval_timeout: Option<String>,
    pub require_reason: Option<bool>,
    pub require_ticket: Option<bool>,
    pub expiry_warning: Option<String>,
    pub break_glass_max_duration: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawUser {
    pub name: Option<String>,
    #[serde(default)]
    pub keys: Vec<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub can_request: Vec<String>,
    pub totp_secret: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRole {
    pub name: Option<String>,
    #[serde(default)]
    pub logins: Vec<String>,
    #[serde(default)]
    pub hosts: Vec<String>,
    pub max_duration: Option<String>,
    #[serde(default)]
    pub approvers: Vec<String>,
    pub auto_approve: Option<bool>,
    pub break_glass: Option<bool>,
    pub port_forwarding: Option<bool>,
    pub agent_forwarding: Option<bool>,
    pub x11_forwarding: Option<bool>,
    pub sftp: Option<bool>,
    pub record_input: Option<bool>,
    pub admin: Option<bool>,
    pub auditor: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawHost {
    pub name: Option<String>,
    pub address: Option<String>,
    #[serde(default)]
    pub host_keys: Vec<String>,
    #[serde(default)]
    pub host_cas: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Validated settings. Built only by [`Settings::from_raw`] / [`Settings::from_toml`].
#[derive(Debug, Clone)]
pub struct Settings {
    pub server: ServerSettings,
    pub jit: JitSettings,
    pub recordings: RecordingSettings,
    /// Users in file order; look up with [`Settings::user`] / [`Settings::user_by_key`].
    pub users: Vec<User>,
    pub roles: Vec<Role>,
    pub hosts: Vec<Host>,
    /// Name -> index into `users`, and likewise below: lookups happen on every connection
    /// and command, so they should not scan.
    user_index: HashMap<String, usize>,
    role_index: HashMap<String, usize>,
    host_index: HashMap<String, usize>,
    /// [`UserKey::canonical`] -> index into `users`: how a connecting key finds its user.
    key_index: HashMap<String, usize>,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// `host:port` text, validated as a socket address.
    pub ssh_listen: std::net::SocketAddr,
    /// As written (relative paths are resolved by the broker against the config's dir).
    pub state_dir: String,
    /// How long minted certificates are valid (never past the grant).
    pub cert_validity: Duration,
    /// `source-address` for minted certificates; empty: none.
    pub cert_source_addresses: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct RecordingSettings {
    /// Recordings older than this are deleted (and the deletion audited). None: kept forever.
    pub retention: Option<Duration>,
    /// Whether proxied sessions are recorded. Default true; false exists for measuring what
    /// recording costs, and is logged loudly and put in the audit trail at every start.
    pub enabled: bool,
}

#[derive(Debug, Clone)]
pub struct JitSettings {
    /// Used when a request gives no `--duration`. Default 1h.
    pub default_duration: Duration,
    /// Global cap on any grant. Default 8h. Must be >= default_duration.
    pub max_duration: Duration,
    /// Shortest grant one may request. Default 1s (tests use seconds-long grants).
    pub min_duration: Duration,
    /// A pending request expires after this. Default 24h.
    pub approval_timeout: Duration,
    /// Requests must carry `--reason`. Default true.
    pub require_reason: bool,
    /// Requests must carry `--ticket`. Default false.
    pub require_ticket: bool,
    /// Warn live sessions this long before expiry. Default 5m.
    pub expiry_warning: Duration,
    /// Cap for break-glass grants. Default 1h.
    pub break_glass_max_duration: Duration,
}

/// An SSH public key as configured: algorithm and base64 blob, checked to decode and to
/// name the same algorithm inside the blob. The comment is kept for display only and is not
/// part of identity.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct UserKey {
    pub algorithm: String,
    pub base64: String,
    pub comment: String,
}

impl UserKey {
    /// Parse an OpenSSH public key line (`ssh-ed25519 AAAA... comment`).
    ///
    /// Accepted: `ssh-ed25519`, `ssh-rsa`, `ecdsa-sha2-nistp256/384/521`,
    /// `sk-ssh-ed25519@openssh.com`, `sk-ecdsa-sha2-nistp256@openssh.com`. Certificates and
    /// `authorized_keys` options are refused. The base64 is stored re-encoded, so two
    /// spellings of one key compare equal.
    pub fn parse(line: &str) -> Result<UserKey, String> {
        key::parse(line)
    }
    /// `algorithm base64`, the identity used for lookups (no comment).
    pub fn canonical(&self) -> String {
        format!("{} {}", self.algorithm, self.base64)
    }
}

impl fmt::Debug for UserKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "UserKey({} …{})",
            self.algorithm,
            &self.base64[self.base64.len().saturating_sub(8)..]
        )
    }
}

#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub keys: Vec<UserKey>,
    /// Standing roles: always in force.
    pub roles: Vec<String>,
    /// Roles this user may request.
    pub can_request: Vec<String>,
    /// Base32 TOTP secret (RFC 6238). When set, break-glass requires a current code.
    pub totp_secret: Option<Vec<u8>>,
}

#[derive(Debug, Clone)]
pub struct Role {
    pub name: String,
    /// Login names on targets this role allows (certificate principals).
    pub logins: Vec<String>,
    /// Hosts the role covers. A grant never reaches beyond these.
    pub hosts: Vec<HostPattern>,
    /// Cap for grants of this role (never above the global max). None: the global max.
    pub max_duration: Option<Duration>,
    /// Members (standing) of these roles may approve requests for this role.
    pub approvers: Vec<String>,
    pub auto_approve: bool,
    pub break_glass: bool,
    pub port_forwarding: bool,
    pub agent_forwarding: bool,
    pub x11_forwarding: bool,
    pub sftp: bool,
    /// Record what the user types (`"i"` events). Off by default: keystrokes include
    /// passwords typed at prompts.
    pub record_input: bool,
    /// Standing members may see all requests and sessions, revoke any grant, lock users.
    pub admin: bool,
    /// Standing members may read the audit trail and recordings.
    pub auditor: bool,
}

#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    /// `host:port`.
    pub address: String,
    /// Pinned host keys (OpenSSH public key lines).
    pub host_keys: Vec<UserKey>,
    /// Host CAs trusted to certify this host's key (the certificate must name the host).
    pub host_cas: Vec<UserKey>,
    pub labels: BTreeMap<String, String>,
}

/// One problem in a config, with where it is and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// Path into the document, like `users[2].can_request[0]` or `jit.max_duration`.
    pub location: String,
    /// What is wrong and what to do about it.
    pub message: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// Every problem found in a config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub issues: Vec<ConfigIssue>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.issues.len();
        writeln!(f, "{n} problem{} in config:", if n == 1 { "" } else { "s" })?;
        for i in &self.issues {
            writeln!(f, "  {i}")?;
        }
        Ok(())
    }
}

impl Settings {
    /// Parse TOML text and validate it. TOML syntax errors become one issue carrying the
    /// line and column. Unknown keys and values of the wrong type are reported together with
    /// everything validation finds in the rest of the file.
    pub fn from_toml(text: &str) -> Result<Settings, ConfigError> {
        let (raw, mut issues) = read::read(text);
        let Some(raw) = raw else {
            return Err(ConfigError { issues });
        };
        match validate::validate(&raw) {
            Ok(settings) if issues.is_empty() => Ok(settings),
            Ok(_) => Err(ConfigError { issues }),
            Err(found) => {
                // A key of the wrong type was left out of `raw`, so validation may report it
                // again as missing; the reader's message is the useful one.
                let reported: Vec<String> = issues.iter().map(|i| i.location.clone()).collect();
                issues.extend(
                    found
                        .into_iter()
                        .filter(|i| !reported.contains(&i.location)),
                );
                Err(ConfigError { issues })
            }
        }
    }

    /// Validate a raw config, collecting every issue.
    pub fn from_raw(raw: &RawConfig) -> Result<Settings, ConfigError> {
        validate::validate(raw).map_err(|issues| ConfigError { issues })
    }

    pub fn user(&self, name: &str) -> Option<&User> {
        lookup(&self.users, &self.user_index, name, |u| u.name == name)
    }
    pub fn role(&self, name: &str) -> Option<&Role> {
        lookup(&self.roles, &self.role_index, name, |r| r.name == name)
    }
    pub fn host(&self, name: &str) -> Option<&Host> {
        lookup(&self.hosts, &self.host_index, name, |h| h.name == name)
    }
    /// The user owning this key (`algorithm base64`, as [`UserKey::canonical`]).
    pub fn user_by_key(&self, canonical_key: &str) -> Option<&User> {
        lookup(&self.users, &self.key_index, canonical_key, |u| {
            u.keys.iter().any(|k| k.canonical() == canonical_key)
        })
    }
    /// Does `user` hold (as a standing role) any role in `roles`?
    pub fn holds_any(&self, user: &str, roles: &[String]) -> bool {
        self.user(user)
            .is_some_and(|u| u.roles.iter().any(|r| roles.contains(r)))
    }
    /// Can `user` approve requests for `role`? (Self-approval is checked separately.)
    pub fn is_approver_for(&self, user: &str, role: &str) -> bool {
        self.role(role)
            .is_some_and(|r| self.holds_any(user, &r.approvers))
    }
    /// Does `user` hold a standing role with `admin = true`?
    pub fn is_admin(&self, user: &str) -> bool {
        self.standing_roles(user).any(|r| r.admin)
    }
    /// Does `user` hold a standing role with `auditor = true` (or admin)?
    pub fn is_auditor(&self, user: &str) -> bool {
        self.standing_roles(user).any(|r| r.auditor || r.admin)
    }
    /// The effective cap for a role: min(role.max_duration, jit.max_duration).
    pub fn max_duration_for(&self, role: &Role) -> Duration {
        role.max_duration
            .map_or(self.jit.max_duration, |d| d.min(self.jit.max_duration))
    }

    fn standing_roles<'a>(&'a self, user: &str) -> impl Iterator<Item = &'a Role> + 'a {
        let names = self
            .user(user)
            .map(|u| u.roles.as_slice())
            .unwrap_or_default();
        names.iter().filter_map(|name| self.role(name))
    }
}

/// Index lookup, confirmed by `is_match`. The vectors are public, so a caller may have
/// changed them since validation; then the index can be stale and we fall back to a scan
/// rather than return the wrong entry.
fn lookup<'a, T>(
    items: &'a [T],
    index: &HashMap<String, usize>,
    key: &str,
    is_match: impl Fn(&T) -> bool,
) -> Option<&'a T> {
    match index.get(key).and_then(|&i| items.get(i)) {
        Some(found) if is_match(found) => Some(found),
        _ => items.iter().find(|t| is_match(t)),
    }
}

/// Location of entry `index` of `section`, with its name when it has one, like
/// `users[2] (alice)`, so a reader need not count `[[users]]` blocks. A name that could be
/// confused with the punctuation around it is quoted.
fn item(section: &str, index: usize, name: Option<&str>) -> String {
    match name {
        None | Some("") => format!("{section}[{index}]"),
        Some(n)
            if n.chars()
                .all(|c| c.is_alphanumeric() || "-_.@+".contains(c)) =>
        {
            format!("{section}[{index}] ({n})")
        }
        Some(n) => format!("{section}[{index}] ({n:?})"),
    }
}
