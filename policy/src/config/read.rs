//! TOML text to [`RawConfig`], reporting every unknown key and wrong type at once.
//!
//! serde with `deny_unknown_fields` stops at the first problem and reports it by byte span.
//! Walking the parsed table by hand lets us report all of them, each with its path
//! (`roles[1] (db-admin).aprovers`) and a did-you-mean, and still hand validation a
//! [`RawConfig`] built from everything that was well-formed.

use super::suggest::did_you_mean;
use super::{
    item, ConfigIssue, RawConfig, RawHost, RawJit, RawRecordings, RawRole, RawServer, RawUser,
};
use std::collections::BTreeMap;
use toml::{Table, Value};

/// Parse `text`. A syntax error yields `None` and one issue carrying line and column;
/// otherwise the config as far as it was well-formed, and an issue for each key that was
/// unknown or of the wrong type (those keys are left out of the result).
pub(super) fn read(text: &str) -> (Option<RawConfig>, Vec<ConfigIssue>) {
    let table = match text.parse::<Table>() {
        Ok(table) => table,
        Err(e) => return (None, vec![syntax_issue(text, &e)]),
    };
    let mut issues = Vec::new();
    let mut top = Fields::new(&table, "", &mut issues);
    let server = top.table("server");
    let jit = top.table("jit");
    let users = top.array_of_tables("users");
    let roles = top.array_of_tables("roles");
    let hosts = top.array_of_tables("hosts");
    let recordings = top.table("recordings");
    top.finish();

    let mut raw = RawConfig::default();
    if let Some(t) = server {
        let mut f = Fields::new(t, "server", &mut issues);
        raw.server = RawServer {
            ssh_listen: f.string("ssh_listen"),
            state_dir: f.string("state_dir"),
            cert_validity: f.string("cert_validity"),
            cert_source_addresses: f.strings("cert_source_addresses"),
        };
        f.finish();
    }
    if let Some(t) = recordings {
        let mut f = Fields::new(t, "recordings", &mut issues);
        raw.recordings = RawRecordings {
            retention: f.string("retention"),
            enabled: f.bool("enabled"),
        };
        f.finish();
    }
    if let Some(t) = jit {
        let mut f = Fields::new(t, "jit", &mut issues);
        raw.jit = RawJit {
            default_duration: f.string("default_duration"),
            max_duration: f.string("max_duration"),
            min_duration: f.string("min_duration"),
            approval_timeout: f.string("approval_timeout"),
            require_reason: f.bool("require_reason"),
            require_ticket: f.bool("require_ticket"),
            expiry_warning: f.string("expiry_warning"),
            break_glass_max_duration: f.string("break_glass_max_duration"),
        };
        f.finish();
    }
    for (i, t) in users.into_iter().enumerate() {
        let mut f = Fields::new(t, &item("users", i, name_of(t)), &mut issues);
        raw.users.push(RawUser {
            name: f.string("name"),
            keys: f.strings("keys"),
            roles: f.strings("roles"),
            can_request: f.strings("can_request"),
            totp_secret: f.string("totp_secret"),
        });
        f.finish();
    }
    for (i, t) in roles.into_iter().enumerate() {
        let mut f = Fields::new(t, &item("roles", i, name_of(t)), &mut issues);
        raw.roles.push(RawRole {
            name: f.string("name"),
            logins: f.strings("logins"),
            hosts: f.strings("hosts"),
            max_duration: f.string("max_duration"),
            approvers: f.strings("approvers"),
            auto_approve: f.bool("auto_approve"),
            break_glass: f.bool("break_glass"),
            port_forwarding: f.bool("port_forwarding"),
            agent_forwarding: f.bool("agent_forwarding"),
            x11_forwarding: f.bool("x11_forwarding"),
            sftp: f.bool("sftp"),
            record_input: f.bool("record_input"),
            admin: f.bool("admin"),
            auditor: f.bool("auditor"),
        });
        f.finish();
    }
    for (i, t) in hosts.into_iter().enumerate() {
        let mut f = Fields::new(t, &item("hosts", i, name_of(t)), &mut issues);
        raw.hosts.push(RawHost {
            name: f.string("name"),
            address: f.string("address"),
            host_keys: f.strings("host_keys"),
            host_cas: f.strings("host_cas"),
            labels: f.string_map("labels"),
        });
        f.finish();
    }
    (Some(raw), issues)
}

/// The entry's name when it has a well-formed one, for locations. Validation derives the
/// same from the raw struct, so both stages name an entry the same way.
fn name_of(t: &Table) -> Option<&str> {
    t.get("name").and_then(Value::as_str)
}

fn syntax_issue(text: &str, e: &toml::de::Error) -> ConfigIssue {
    let location = match e.span() {
        Some(span) => {
            let (line, column) = line_column(text, span.start);
            format!("line {line}, column {column}")
        }
        None => "TOML".to_owned(),
    };
    ConfigIssue {
        location,
        message: format!("TOML syntax error: {}", e.message().trim_end()),
    }
}

/// 1-based line and column (in characters) of a byte offset; offsets past the end or inside
/// a character are clamped rather than trusted.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// Reads the keys of one table, remembering which keys it asked for so that whatever is
/// left over can be reported as unknown.
struct Fields<'t, 'i> {
    table: &'t Table,
    location: String,
    known: Vec<&'static str>,
    issues: &'i mut Vec<ConfigIssue>,
}

impl<'t, 'i> Fields<'t, 'i> {
    fn new(table: &'t Table, location: &str, issues: &'i mut Vec<ConfigIssue>) -> Self {
        Fields {
            table,
            location: location.to_owned(),
            known: Vec::new(),
            issues,
        }
    }

    fn path(&self, key: &str) -> String {
        if self.location.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.location)
        }
    }

    fn get(&mut self, key: &'static str) -> Option<&'t Value> {
        self.known.push(key);
        self.table.get(key)
    }

    fn wrong_type(&mut self, location: String, expected: &str, found: &Value) {
        self.issues.push(ConfigIssue {
            location,
            message: format!("expected {expected}, found {}", describe(found)),
        });
    }

    fn string(&mut self, key: &'static str) -> Option<String> {
        match self.get(key)? {
            Value::String(s) => Some(s.clone()),
            other => {
                self.wrong_type(self.path(key), "a string in quotes", other);
                None
            }
        }
    }

    fn bool(&mut self, key: &'static str) -> Option<bool> {
        match self.get(key)? {
            Value::Boolean(b) => Some(*b),
            other => {
                self.wrong_type(self.path(key), "true or false (without quotes)", other);
                None
            }
        }
    }

    fn strings(&mut self, key: &'static str) -> Vec<String> {
        let Some(value) = self.get(key) else {
            return Vec::new();
        };
        let Value::Array(items) = value else {
            let hint = "a list of strings, like [\"a\", \"b\"]";
            self.wrong_type(self.path(key), hint, value);
            return Vec::new();
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, v) in items.iter().enumerate() {
            match v {
                Value::String(s) => out.push(s.clone()),
                other => self.wrong_type(format!("{}[{i}]", self.path(key)), "a string", other),
            }
        }
        out
    }

    fn string_map(&mut self, key: &'static str) -> BTreeMap<String, String> {
        let Some(value) = self.get(key) else {
            return BTreeMap::new();
        };
        let Value::Table(t) = value else {
            self.wrong_type(
                self.path(key),
                "a table of strings, like { env = \"prod\" }",
                value,
            );
            return BTreeMap::new();
        };
        let mut out = BTreeMap::new();
        for (k, v) in t {
            match v {
                Value::String(s) => {
                    out.insert(k.clone(), s.clone());
                }
                other => self.wrong_type(format!("{}.{k}", self.path(key)), "a string", other),
            }
        }
        out
    }

    fn table(&mut self, key: &'static str) -> Option<&'t Table> {
        match self.get(key)? {
            Value::Table(t) => Some(t),
            other => {
                let hint = format!("a table: write [{key}] on a line of its own");
                self.wrong_type(self.path(key), &hint, other);
                None
            }
        }
    }

    fn array_of_tables(&mut self, key: &'static str) -> Vec<&'t Table> {
        let Some(value) = self.get(key) else {
            return Vec::new();
        };
        let hint = format!("a list of tables: start each entry with [[{key}]]");
        let Value::Array(items) = value else {
            self.wrong_type(self.path(key), &hint, value);
            return Vec::new();
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, v) in items.iter().enumerate() {
            match v {
                Value::Table(t) => out.push(t),
                other => self.wrong_type(format!("{}[{i}]", self.path(key)), &hint, other),
            }
        }
        out
    }

    /// Report every key that was not asked for.
    fn finish(self) {
        for key in self.table.keys() {
            if self.known.contains(&key.as_str()) {
                continue;
            }
            let hint = match did_you_mean(key, self.known.iter().copied()) {
                Some(s) => format!("did you mean {s:?}?"),
                None => format!("known keys here: {}", self.known.join(", ")),
            };
            let location = self.path(key);
            self.issues.push(ConfigIssue {
                location,
                message: format!("unknown key {key:?}: {hint}"),
            });
        }
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::String(s) if s.chars().count() <= 40 => format!("the string {s:?}"),
        Value::Integer(n) => format!("the number {n}"),
        Value::Boolean(b) => format!("{b}"),
        other => format!("a {}", other.type_str()),
    }
}
