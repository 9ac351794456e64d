//! # latch: the broker
//!
//! The `latch` binary's library: everything with sockets, files, timers. The decisions
//! themselves live in the pure `policy` crate.
//!
//! # Layout
//! - [`config_file`]: finding and loading the config, or the embedded default.
//! - [`template`]: the documented config `latch init` writes (the config reference).
//! - [`eventlog`]: the append-only, hash-chained, fsynced event log and its verifier.
//! - [`broker`]: state (the log's projection) + log under one lock; the only way to change state.
//! - [`timers`]: pending requests time out and grants expire on time.
//! - [`server`]: the russh SSH server and per-connection handler.
//! - [`commands`]: the command interface over SSH (`request`, `approve`, ...).
//! - [`proxy`]: the data plane: certificate login to targets and the relay.
//! - [`sessions`]: live sessions, and severing them on revoke, expiry, kill and lock.
//! - [`ca_key`]: the user CA's key file.
//! - [`recording`]: recording every proxied channel, sealing, crash recovery, retention.
//! - [`audit_key`]: the key that signs recordings' manifests.
//! - [`host_key`], [`secret_file`]: the broker's SSH host key; key files kept 0600.
//! - [`serve`]: wiring it together for `latch serve`.
#![forbid(unsafe_code)]

pub mod audit_key;
pub mod broker;
pub mod ca_key;
pub mod commands;
pub mod config_file;
pub mod eventlog;
pub mod hint;
pub mod host_key;
pub mod proxy;
pub mod recording;
pub mod secret_file;
pub mod serve;
pub mod server;
pub mod sessions;
pub mod template;
pub mod timers;
pub mod transport;
