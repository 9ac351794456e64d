//! A small world for the policy's unit tests: one config, fixed times, and a helper that
//! commits an operation's events the way the broker does.
//!
//! The cast: alice and carol are engineers who may request `db-admin` and `web`; bob and
//! frank are `security-admin` (the approvers of `db-admin` and `web`); erin is an admin who
//! approves nothing; ivy is an auditor; dave has a TOTP secret for break-glass.

use super::{ApproveArgs, Outcome, PolicyError, RequestArgs, State};
use crate::config::Settings;
use crate::event::Event;
use crate::grant::GrantId;
use chrono::{DateTime, TimeZone, Utc};

/// Base32 secret of dave's authenticator.
pub(crate) const DAVE_TOTP: &str = "JBSWY3DPEHPK3PXP";

pub(crate) const CONFIG: &str = r#"
[jit]
default_duration = "1h"
max_duration = "8h"
min_duration = "1m"
approval_timeout = "24h"
require_reason = true
break_glass_max_duration = "1h"

[[users]]
name = "alice"
keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEB alice@laptop"]
roles = ["developer"]
can_request = ["db-admin", "web", "deploy"]

[[users]]
name = "bob"
keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIC bob@laptop"]
roles = ["security-admin"]

[[users]]
name = "carol"
keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMD carol@laptop"]
roles = ["developer"]
can_request = ["db-admin"]

[[users]]
name = "dave"
keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE dave@laptop"]
can_request = ["db-admin"]
totp_secret = "JBSWY3DPEHPK3PXP"

[[users]]
name = "erin"
keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUF erin@laptop"]
roles = ["admin"]

[[users]]
name = "frank"
keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYG frank@laptop"]
roles = ["security-admin"]
can_request = ["db-admin"]

[[users]]
name = "ivy"
keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcH ivy@laptop"]
roles = ["audit"]

[[roles]]
name = "developer"
logins = ["dev"]
hosts = ["dev-*"]

[[roles]]
name = "security-admin"
logins = ["secops"]
hosts = ["ops-*"]

[[roles]]
name = "admin"
admin = true

[[roles]]
name = "audit"
auditor = true

[[roles]]
name = "db-admin"
logins = ["postgres", "root"]
hosts = ["prod-db-*"]
max_duration = "4h"
approvers = ["security-admin"]
break_glass = true

[[roles]]
name = "web"
logins = ["www"]
hosts = ["web-*"]
approvers = ["security-admin"]

[[roles]]
name = "deploy"
logins = ["deploy"]
hosts = ["web-*"]
max_duration = "2h"
auto_approve = true

[[hosts]]
name = "prod-db-01"
address = "127.0.0.1:2201"
host_keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI"]

[[hosts]]
name = "prod-db-02"
address = "127.0.0.1:2202"
host_keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI"]

[[hosts]]
name = "web-01"
address = "127.0.0.1:2203"
host_keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI"]

[[hosts]]
name = "dev-01"
address = "127.0.0.1:2204"
host_keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI"]
"#;

pub(crate) fn settings() -> Settings {
    settings_from(CONFIG)
}

pub(crate) fn settings_from(text: &str) -> Settings {
    match Settings::from_toml(text) {
        Ok(settings) => settings,
        Err(e) => panic!("test config must validate: {e}"),
    }
}

/// 2026-03-02 at `h:m` UTC.
pub(crate) fn t(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, h, m, 0).unwrap()
}

pub(crate) fn hours(n: i64) -> chrono::Duration {
    chrono::Duration::hours(n)
}

pub(crate) fn minutes(n: i64) -> chrono::Duration {
    chrono::Duration::minutes(n)
}

/// A request with a reason (the test config requires one).
pub(crate) fn ask(role: &str, hosts: &str) -> RequestArgs {
    RequestArgs {
        role: role.to_string(),
        hosts: hosts.to_string(),
        reason: Some("INC-42 disk full".to_string()),
        ..RequestArgs::default()
    }
}

/// Settings, state, and every committed event, as the broker would keep them.
pub(crate) struct World {
    pub settings: Settings,
    pub state: State,
    pub log: Vec<(Event, DateTime<Utc>, String)>,
}

impl World {
    pub fn new() -> World {
        World::with(settings())
    }

    pub fn with(settings: Settings) -> World {
        World {
            settings,
            state: State::new(),
            log: Vec::new(),
        }
    }

    /// Append and apply an operation's events, as the broker does after a successful op.
    pub fn commit(
        &mut self,
        actor: &str,
        at: DateTime<Utc>,
        outcome: Result<Outcome, PolicyError>,
    ) -> Outcome {
        let outcome = outcome.unwrap_or_else(|e| panic!("operation by {actor} refused: {e}"));
        for event in &outcome.events {
            self.apply(event.clone(), at, actor);
        }
        outcome
    }

    pub fn apply(&mut self, event: Event, at: DateTime<Utc>, actor: &str) {
        if let Err(e) = self.state.apply(&event, at, actor) {
            panic!("{event:?} does not apply: {e}");
        }
        // Every test that applies events also checks the decision's index against the
        // grants it copies (a full scan, so not in the tests that build 100k grants).
        if self.state.len() <= 2_000 {
            self.state.check_open_index();
        }
        self.log.push((event, at, actor.to_string()));
    }

    /// alice-style request that must succeed; returns the new id.
    pub fn request(&mut self, actor: &str, args: RequestArgs, now: DateTime<Utc>) -> GrantId {
        let outcome = self.state.request(&self.settings, actor, &args, now);
        let outcome = self.commit(actor, now, outcome);
        match outcome.events.first().and_then(Event::grant_id) {
            Some(id) => id,
            None => panic!("request produced no grant: {outcome:?}"),
        }
    }

    pub fn approve(
        &mut self,
        actor: &str,
        id: GrantId,
        args: ApproveArgs,
        now: DateTime<Utc>,
    ) -> Outcome {
        let outcome = self.state.approve(&self.settings, actor, id, &args, now);
        self.commit(actor, now, outcome)
    }

    /// A db-admin grant for `user` on `hosts`, approved by bob at `now`.
    pub fn granted(&mut self, user: &str, hosts: &str, now: DateTime<Utc>) -> GrantId {
        let id = self.request(user, ask("db-admin", hosts), now);
        self.approve("bob", id, ApproveArgs::default(), now);
        id
    }

    /// Write every due expiry at `now`, as the broker's timer does.
    pub fn tick(&mut self, now: DateTime<Utc>) -> Vec<Event> {
        let due = self.state.due(now);
        for event in &due {
            self.apply(event.clone(), now, super::SYSTEM_ACTOR);
        }
        due
    }
}
