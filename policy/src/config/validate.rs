//! [`RawConfig`] to [`Settings`]: every check, every issue collected.
//!
//! Checks run in file order (server, jit, roles, users, hosts) and never stop early, so
//! one run of `latch config check` lists everything to fix. Settings are built only when
//! nothing was found, so code holding a [`Settings`] can trust every field.

use super::names::{address_problem, host_name_problem, login_problem, name_problem};
use super::suggest::did_you_mean;
use super::{
    item, key, ConfigIssue, Host, JitSettings, RawConfig, RawHost, RawJit, RawRole, RawServer,
    RawUser, RecordingSettings, Role, ServerSettings, Settings, User, UserKey,
};
use crate::duration;
use crate::pattern::HostPattern;
use crate::totp;
use chrono::Duration;
use std::collections::HashMap;
use std::net::SocketAddr;

pub(super) const DEFAULT_SSH_LISTEN: &str = "127.0.0.1:2222";
pub(super) const DEFAULT_STATE_DIR: &str = "./latch-data";
const DEFAULT_DURATION: Duration = Duration::hours(1);
const DEFAULT_MAX_DURATION: Duration = Duration::hours(8);
const DEFAULT_MIN_DURATION: Duration = Duration::seconds(1);
/// Certificates only need to outlive the handshake; sessions are cut by the broker.
const DEFAULT_CERT_VALIDITY: Duration = Duration::minutes(5);
const MAX_CERT_VALIDITY: Duration = Duration::minutes(10);
const DEFAULT_APPROVAL_TIMEOUT: Duration = Duration::hours(24);
const DEFAULT_EXPIRY_WARNING: Duration = Duration::minutes(5);
const DEFAULT_BREAK_GLASS_MAX: Duration = Duration::hours(1);
/// RFC 4226 requires at least 128 bits and recommends 160; 80 bits is the floor common
/// authenticator apps still generate, so that is the least we take.
const MIN_TOTP_SECRET_BYTES: usize = 10;

pub(super) fn validate(raw: &RawConfig) -> Result<Settings, Vec<ConfigIssue>> {
    let mut v = Validator::default();
    let server = v.server(&raw.server);
    let jit = v.jit(&raw.jit);
    let recordings = RecordingSettings {
        retention: match v.duration("recordings.retention", &raw.recordings.retention) {
            Setting::Set(d) => Some(d),
            Setting::Unset | Setting::Invalid => None,
        },
        enabled: raw.recordings.enabled.unwrap_or(true),
    };
    let role_names = v.unique_names(
        "roles",
        "role",
        name_problem,
        raw.roles.iter().map(|r| r.name.as_deref()),
    );
    let requestable = requestable_roles(&raw.users);
    let roles: Vec<Role> = (raw.roles.iter().enumerate())
        .map(|(i, r)| v.role(i, r, &jit, &role_names, &requestable))
        .collect();
    let user_names = v.unique_names(
        "users",
        "user",
        name_problem,
        raw.users.iter().map(|u| u.name.as_deref()),
    );
    let mut key_owner = HashMap::new();
    let users: Vec<User> = (raw.users.iter().enumerate())
        .map(|(i, u)| v.user(i, u, &role_names, &mut key_owner))
        .collect();
    let host_names = v.unique_names(
        "hosts",
        "host",
        host_name_problem,
        raw.hosts.iter().map(|h| h.name.as_deref()),
    );
    let hosts: Vec<Host> = raw
        .hosts
        .iter()
        .enumerate()
        .map(|(i, h)| v.host(i, h))
        .collect();

    if !v.issues.is_empty() {
        return Err(v.issues);
    }
    let key_index = key_owner
        .into_iter()
        .map(|(key, (user, _))| (key, user))
        .collect();
    Ok(Settings {
        server,
        jit,
        recordings,
        users,
        roles,
        hosts,
        user_index: user_names
            .into_iter()
            .map(|(n, i)| (n.to_owned(), i))
            .collect(),
        role_index: role_names
            .into_iter()
            .map(|(n, i)| (n.to_owned(), i))
            .collect(),
        host_index: host_names
            .into_iter()
            .map(|(n, i)| (n.to_owned(), i))
            .collect(),
        key_index,
    })
}

/// A duration setting as read: absent (take the default), valid, or already reported.
#[derive(Clone, Copy)]
enum Setting {
    Unset,
    Set(Duration),
    Invalid,
}

/// Role name -> location of the first `can_request` naming it, for "nobody could approve".
fn requestable_roles(users: &[RawUser]) -> HashMap<&str, String> {
    let mut out = HashMap::new();
    for (i, u) in users.iter().enumerate() {
        for (k, role) in u.can_request.iter().enumerate() {
            out.entry(role.as_str()).or_insert_with(|| {
                format!("{}.can_request[{k}]", item("users", i, u.name.as_deref()))
            });
        }
    }
    out
}

#[derive(Default)]
struct Validator {
    issues: Vec<ConfigIssue>,
}

impl Validator {
    fn push(&mut self, location: impl Into<String>, message: impl Into<String>) {
        self.issues.push(ConfigIssue {
            location: location.into(),
            message: message.into(),
        });
    }

    fn server(&mut self, raw: &RawServer) -> ServerSettings {
        let listen = raw.ssh_listen.as_deref().unwrap_or(DEFAULT_SSH_LISTEN);
        let ssh_listen = listen.trim().parse().unwrap_or_else(|_| {
            self.push(
                "server.ssh_listen",
                format!(
                    "{listen:?} is not a socket address: write an IP address and a port, \
                    like 127.0.0.1:2222 or [::]:2222 (host names are not resolved)"
                ),
            );
            SocketAddr::from(([127, 0, 0, 1], 2222))
        });
        let state_dir = raw
            .state_dir
            .clone()
            .unwrap_or_else(|| DEFAULT_STATE_DIR.to_owned());
        if state_dir.trim().is_empty() {
            self.push(
                "server.state_dir",
                "state_dir is empty: give a directory, like \"./latch-data\", or leave the key out",
            );
        }
        let cert_validity = match self.duration("server.cert_validity", &raw.cert_validity) {
            Setting::Set(d) if d > MAX_CERT_VALIDITY => {
                self.push(
                    "server.cert_validity",
                    format!(
                        "{} is too long: certificates only need to outlive the login handshake; \
                        use at most 10m (sessions are governed by the grant, not the certificate)",
                        duration::format(d)
                    ),
                );
                DEFAULT_CERT_VALIDITY
            }
            Setting::Set(d) if d < Duration::seconds(10) => {
                self.push(
                    "server.cert_validity",
                    "shorter than 10s: a slow target could not finish the login; use 1m to 10m",
                );
                DEFAULT_CERT_VALIDITY
            }
            Setting::Set(d) => d,
            Setting::Unset | Setting::Invalid => DEFAULT_CERT_VALIDITY,
        };
        for (i, a) in raw.cert_source_addresses.iter().enumerate() {
            if !valid_cidr(a) {
                self.push(
                    format!("server.cert_source_addresses[{i}]"),
                    format!("{a:?} is not an IP address or CIDR block, like \"10.0.0.2\" or \"10.0.0.0/24\""),
                );
            }
        }
        ServerSettings {
            ssh_listen,
            state_dir,
            cert_validity,
            cert_source_addresses: raw.cert_source_addresses.clone(),
        }
    }

    fn duration(&mut self, location: &str, raw: &Option<String>) -> Setting {
        match raw.as_deref().map(duration::parse) {
            None => Setting::Unset,
            Some(Ok(d)) => Setting::Set(d),
            Some(Err(e)) => {
                self.push(location, e.to_string());
                Setting::Invalid
            }
        }
    }

    /// Unset values take defaults that fit the values that are set (a `max_duration` of 30m
    /// gives a default and break-glass cap of 30m, not an error about the 1h defaults);
    /// values that are set and conflict are errors.
    fn jit(&mut self, raw: &RawJit) -> JitSettings {
        let default = self.duration("jit.default_duration", &raw.default_duration);
        let max = self.duration("jit.max_duration", &raw.max_duration);
        let min = self.duration("jit.min_duration", &raw.min_duration);
        let approval = self.duration("jit.approval_timeout", &raw.approval_timeout);
        let warning = self.duration("jit.expiry_warning", &raw.expiry_warning);
        let break_glass = self.duration(
            "jit.break_glass_max_duration",
            &raw.break_glass_max_duration,
        );

        // With an invalid max, comparisons against it would only add noise.
        let (max_d, max_known, max_text) = match max {
            Setting::Set(d) => (
                d,
                true,
                format!("jit.max_duration ({})", duration::format(d)),
            ),
            Setting::Unset => {
                let d = DEFAULT_MAX_DURATION;
                (
                    d,
                    true,
                    format!("jit.max_duration ({}, the default)", duration::format(d)),
                )
            }
            Setting::Invalid => (DEFAULT_MAX_DURATION, false, String::new()),
        };
        let longer_than_max = |d: Duration| max_known && d > max_d;
        let fmt = duration::format;

        let min_d = match min {
            Setting::Set(d) => d,
            _ => DEFAULT_MIN_DURATION,
        };
        let default_d = match default {
            Setting::Set(d) => d,
            _ => DEFAULT_DURATION.min(max_d).max(min_d),
        };
        if let Setting::Set(d) = default {
            if longer_than_max(d) {
                self.push(
                    "jit.default_duration",
                    format!(
                        "{} is longer than {max_text}: lower default_duration or raise \
                        max_duration",
                        fmt(d)
                    ),
                );
            }
        }
        if let Setting::Set(d) = min {
            if longer_than_max(d) {
                self.push(
                    "jit.min_duration",
                    format!(
                        "{} is longer than {max_text}, so no request could be granted: lower \
                        min_duration",
                        fmt(d)
                    ),
                );
            } else if d > default_d {
                self.push(
                    "jit.min_duration",
                    format!(
                        "{} is longer than jit.default_duration ({}): lower min_duration or \
                        raise default_duration",
                        fmt(d),
                        fmt(default_d)
                    ),
                );
            }
        }
        let break_glass_d = match break_glass {
            Setting::Set(d) => {
                if longer_than_max(d) {
                    self.push(
                        "jit.break_glass_max_duration",
                        format!(
                            "{} is longer than {max_text}: break-glass grants may not \
                            outlast ordinary ones; lower it",
                            fmt(d)
                        ),
                    );
                }
                d
            }
            _ => DEFAULT_BREAK_GLASS_MAX.min(max_d),
        };
        let warning_d = match warning {
            Setting::Set(d) => {
                if max_known && d >= max_d {
                    self.push(
                        "jit.expiry_warning",
                        format!(
                            "{} is not shorter than {max_text}, so even the longest grant \
                            would be warned of its expiry as it starts: lower expiry_warning",
                            fmt(d)
                        ),
                    );
                }
                d
            }
            _ if DEFAULT_EXPIRY_WARNING < max_d => DEFAULT_EXPIRY_WARNING,
            _ => Duration::seconds(max_d.num_seconds() / 2),
        };
        JitSettings {
            default_duration: default_d,
            max_duration: max_d,
            min_duration: min_d,
            approval_timeout: match approval {
                Setting::Set(d) => d,
                _ => DEFAULT_APPROVAL_TIMEOUT,
            },
            require_reason: raw.require_reason.unwrap_or(true),
            require_ticket: raw.require_ticket.unwrap_or(false),
            expiry_warning: warning_d,
            break_glass_max_duration: break_glass_d,
        }
    }

    /// Check names of one section for presence, shape and uniqueness; returns the index of
    /// the first entry with each name.
    fn unique_names<'a>(
        &mut self,
        section: &str,
        kind: &str,
        problem_with: fn(&str) -> Option<&'static str>,
        names: impl Iterator<Item = Option<&'a str>>,
    ) -> HashMap<&'a str, usize> {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, name) in names.enumerate() {
            let at = format!("{}.name", item(section, i, name));
            let Some(name) = name else {
                self.push(
                    at,
                    format!("missing name: every [[{section}]] entry needs name = \"...\""),
                );
                continue;
            };
            if let Some(problem) = problem_with(name) {
                self.push(at.clone(), format!("{kind} name {name:?} {problem}"));
            }
            if let Some(&first) = seen.get(name) {
                let first = item(section, first, Some(name));
                self.push(
                    at,
                    format!(
                        "duplicate {kind} name {name:?} (first at {first}): each {kind} \
                        needs its own name"
                    ),
                );
            } else {
                seen.insert(name, i);
            }
        }
        seen
    }

    fn unknown_role(&mut self, location: String, name: &str, roles: &HashMap<&str, usize>) {
        let hint = match did_you_mean(name, roles.keys().copied()) {
            Some(near) => format!("did you mean {near:?}?"),
            None => "define it in a [[roles]] entry or remove it".to_owned(),
        };
        self.push(
            location,
            format!("unknown role {name:?}: no [[roles]] entry has this name; {hint}"),
        );
    }

    fn role(
        &mut self,
        i: usize,
        raw: &RawRole,
        jit: &JitSettings,
        roles: &HashMap<&str, usize>,
        requestable: &HashMap<&str, String>,
    ) -> Role {
        let at = item("roles", i, raw.name.as_deref());
        for (k, login) in raw.logins.iter().enumerate() {
            if let Some(problem) = login_problem(login) {
                self.push(
                    format!("{at}.logins[{k}]"),
                    format!("login {login:?} {problem}"),
                );
            }
        }
        let mut hosts = Vec::with_capacity(raw.hosts.len());
        for (k, pattern) in raw.hosts.iter().enumerate() {
            match HostPattern::parse(pattern) {
                Ok(p) => hosts.push(p),
                Err(e) => self.push(format!("{at}.hosts[{k}]"), e.to_string()),
            }
        }
        match (raw.hosts.is_empty(), raw.logins.is_empty()) {
            (false, true) => self.push(
                at.clone(),
                "has hosts but no logins: a role that grants access must name both; add \
                logins = [\"...\"] (the accounts on the targets), or remove hosts",
            ),
            (true, false) => self.push(
                at.clone(),
                "has logins but no hosts: a role that grants access must name both; add \
                hosts = [\"...\"] (host names or patterns), or remove logins",
            ),
            _ => {}
        }
        let max_duration = match self.duration(&format!("{at}.max_duration"), &raw.max_duration) {
            Setting::Set(d) if d > jit.max_duration => {
                let (d, cap) = (duration::format(d), duration::format(jit.max_duration));
                self.push(
                    format!("{at}.max_duration"),
                    format!(
                        "{d} is longer than jit.max_duration ({cap}), so grants would be \
                        capped at {cap} anyway: lower it to at most {cap} or raise \
                        jit.max_duration"
                    ),
                );
                None
            }
            Setting::Set(d) => Some(d),
            _ => None,
        };
        for (k, approver) in raw.approvers.iter().enumerate() {
            if !roles.contains_key(approver.as_str()) {
                self.unknown_role(format!("{at}.approvers[{k}]"), approver, roles);
            }
        }
        let auto_approve = raw.auto_approve.unwrap_or(false);
        if let Some(requested_at) = raw.name.as_deref().and_then(|n| requestable.get(n)) {
            if raw.approvers.is_empty() && !auto_approve {
                self.push(
                    format!("{at}.approvers"),
                    format!(
                        "the role can be requested ({requested_at}) but has no approvers and \
                        auto_approve is off, so no request for it could ever be approved: \
                        add approvers = [\"...\"] (roles whose members approve) or set \
                        auto_approve = true"
                    ),
                );
            }
        }
        Role {
            name: raw.name.clone().unwrap_or_default(),
            logins: raw.logins.clone(),
            hosts,
            max_duration,
            approvers: raw.approvers.clone(),
            auto_approve,
            break_glass: raw.break_glass.unwrap_or(false),
            port_forwarding: raw.port_forwarding.unwrap_or(false),
            agent_forwarding: raw.agent_forwarding.unwrap_or(false),
            x11_forwarding: raw.x11_forwarding.unwrap_or(false),
            sftp: raw.sftp.unwrap_or(false),
            record_input: raw.record_input.unwrap_or(false),
            admin: raw.admin.unwrap_or(false),
            auditor: raw.auditor.unwrap_or(false),
        }
    }

    /// `key_owner` maps each key seen so far to (user index, location), across users.
    fn user(
        &mut self,
        i: usize,
        raw: &RawUser,
        roles: &HashMap<&str, usize>,
        key_owner: &mut HashMap<String, (usize, String)>,
    ) -> User {
        let at = item("users", i, raw.name.as_deref());
        let mut keys = Vec::with_capacity(raw.keys.len());
        for (k, line) in raw.keys.iter().enumerate() {
            let here = format!("{at}.keys[{k}]");
            let key = match key::parse(line) {
                Ok(key) => key,
                Err(e) => {
                    self.push(here, e);
                    continue;
                }
            };
            match key_owner.get(&key.canonical()) {
                Some((owner, first)) if *owner == i => {
                    self.push(
                        here,
                        format!("the same key is already listed at {first}: remove one"),
                    );
                }
                Some((_, first)) => {
                    self.push(
                        here,
                        format!(
                            "this key is already {first}: a key must identify exactly one \
                            user, so give each person their own key"
                        ),
                    );
                }
                None => {
                    key_owner.insert(key.canonical(), (i, here));
                }
            }
            keys.push(key);
        }
        for (field, list) in [("roles", &raw.roles), ("can_request", &raw.can_request)] {
            for (k, role) in list.iter().enumerate() {
                if !roles.contains_key(role.as_str()) {
                    self.unknown_role(format!("{at}.{field}[{k}]"), role, roles);
                }
            }
        }
        // Messages never quote the secret: config errors end up in logs.
        let totp_secret = raw
            .totp_secret
            .as_deref()
            .and_then(|s| match totp::decode_secret(s) {
                Err(e) => {
                    self.push(
                        format!("{at}.totp_secret"),
                        format!("not a usable TOTP secret: {e}"),
                    );
                    None
                }
                Ok(bytes) if bytes.len() < MIN_TOTP_SECRET_BYTES => {
                    self.push(
                        format!("{at}.totp_secret"),
                        format!(
                            "the secret is only {} bytes; use at least {MIN_TOTP_SECRET_BYTES} \
                            (16 base32 characters), ideally 20 (32 characters)",
                            bytes.len()
                        ),
                    );
                    None
                }
                Ok(bytes) => Some(bytes),
            });
        User {
            name: raw.name.clone().unwrap_or_default(),
            keys,
            roles: raw.roles.clone(),
            can_request: raw.can_request.clone(),
            totp_secret,
        }
    }

    fn host(&mut self, i: usize, raw: &RawHost) -> Host {
        let at = item("hosts", i, raw.name.as_deref());
        match raw.address.as_deref() {
            None => self.push(
                format!("{at}.address"),
                "missing address: give the target's sshd as address = \"host:port\", \
                like \"10.0.0.5:22\"",
            ),
            Some(a) => {
                if let Some(problem) = address_problem(a) {
                    self.push(
                        format!("{at}.address"),
                        format!(
                            "address {a:?} {problem}: write host:port, like \"10.0.0.5:22\", \
                            \"db.internal:22\" or \"[::1]:22\""
                        ),
                    );
                }
            }
        }
        let mut host_keys: Vec<UserKey> = Vec::with_capacity(raw.host_keys.len());
        for (k, line) in raw.host_keys.iter().enumerate() {
            match key::parse(line) {
                Ok(key) => host_keys.push(key),
                Err(e) => self.push(
                    format!("{at}.host_keys[{k}]"),
                    e.replace("key data", "host key data"),
                ),
            }
        }
        let mut host_cas: Vec<UserKey> = Vec::with_capacity(raw.host_cas.len());
        for (k, line) in raw.host_cas.iter().enumerate() {
            match key::parse(line) {
                Ok(key) => host_cas.push(key),
                Err(e) => self.push(
                    format!("{at}.host_cas[{k}]"),
                    e.replace("key data", "host CA key data"),
                ),
            }
        }
        Host {
            name: raw.name.clone().unwrap_or_default(),
            address: raw.address.clone().unwrap_or_default(),
            host_keys,
            host_cas,
            labels: raw.labels.clone(),
        }
    }
}

/// An IP address, or one with a prefix length that fits it (as sshd's `source-address`).
fn valid_cidr(s: &str) -> bool {
    let (addr, bits) = match s.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    };
    let Ok(ip) = addr.parse::<std::net::IpAddr>() else {
        return false;
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    match bits {
        None => true,
        Some(b) => b.parse::<u8>().is_ok_and(|n| n <= max),
    }
}
