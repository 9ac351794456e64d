//! End-to-end tests: the real `latch` binary driven by real OpenSSH clients.
//!
//! One test binary with a shared `support` module (DESIGN.md); each test has its own
//! temporary directory and port, so they run in parallel. Build the binaries first:
//! `cargo build --workspace --bins`.

mod control_plane;
mod data_plane;
mod recordings;
mod support;
