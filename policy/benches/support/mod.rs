//! What the benchmarks share: one synthetic organisation (the config) and the events its
//! people cause, a seeded random number generator, the percentile summary every benchmark
//! prints, and what the machine was doing meanwhile.
//!
//! `policy/benches/decision.rs` uses it as `mod support;`; the broker's benchmarks include this
//! same module with `#[path]`, so the decision and the replay run on the same world. It depends
//! only on std, chrono and the policy crate, which both packages have.
//!
//! # The world
//! - 200 hosts: `{env}-{service}-{nn}` for 4 environments, 10 services, 5 nodes each.
//! - 50 roles: 40 `{env}-{service}` roles (one service in one environment), 4 `{env}-ops`
//!   roles (a whole environment), 4 `{service}-readonly` roles (a service everywhere), and two
//!   permission roles, `approver` and `admin`. `dev-*` and `test-*` roles auto-approve.
//! - 1,000 users `u0000`..`u0999`, each with one ed25519 key, a standing `dev-{service}` role
//!   and 6 requestable roles; every 100th user is an approver, user 0 an admin.
//!
//! # Layout
//! - `world`: the config, the generators of `Requested` and `Approved` events, [`Rng`].
//! - `stats`: [`Summary`] (nearest-rank percentiles), [`show`], [`median`], [`verdict`].
//! - `machine`: the CPU line, the file system of a directory, [`Contention`].

#![allow(dead_code)] // Each benchmark uses a different part of this module.

mod machine;
mod stats;
mod world;

pub use machine::*;
pub use stats::*;
pub use world::*;
