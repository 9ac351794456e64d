//! # latch-policy: the pure core of latch
//!
//! Everything here is a function of its inputs. Nothing in this crate opens a file, a socket,
//! or reads the clock: the current time is always an argument (`now`). That keeps every
//! decision reproducible from the event log, which is how the broker rebuilds state on start.
//!
//! # Layout
//! - [`pattern`]: host patterns with Go `filepath.Match` semantics ([`HostPattern`]).
//! - [`duration`]: human durations (`90m`, `1h30m`, `3s`) with absurd values rejected.
//! - [`config`]: the TOML config as written ([`config::RawConfig`]) and the validated
//!   [`Settings`] built once from it; every problem is reported with its location.
//! - [`grant`]: a grant (a request and what became of it) and its state machine as an
//!   explicit transition table.
//! - [`event`]: the state-changing events the broker appends to its log.
//! - [`state`]: the projection of the event log, and the pure operations that turn a
//!   command into an event (request, approve, deny, revoke, cancel, extend, expire).
//! - [`decision`]: the authorization decision `(user, login, host, now) -> Allow | Deny`.
//! - [`session`]: proxied sessions: the connect-time decision, open sessions, kill.
//! - [`totp`]: RFC 6238 codes for break-glass.
#![forbid(unsafe_code)]

pub mod config;
pub mod decision;
pub mod duration;
pub mod event;
pub mod grant;
pub mod pattern;
pub mod session;
pub mod state;
pub mod totp;

pub use config::Settings;
pub use decision::{AllowedBy, Decision};
pub use event::Event;
pub use grant::{Grant, GrantId, GrantStatus};
pub use pattern::HostPattern;
pub use state::State;
