//! # latch: the broker
#![forbid(unsafe_code)]

pub mod eventlog;
