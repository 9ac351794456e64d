//! The state machine, the projection and every operation's success and refusal paths.

mod projection;
mod requests;
mod reviews;

use super::PolicyError;

fn err<T: std::fmt::Debug>(result: Result<T, PolicyError>) -> PolicyError {
    match result {
        Ok(v) => panic!("expected a refusal, got {v:?}"),
        Err(e) => e,
    }
}

fn message(e: &PolicyError) -> String {
    e.to_string()
}
