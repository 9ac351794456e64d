//! The expiry timer: pending requests time out, grants expire, on time.
//!
//! It sleeps until the state's earliest deadline (not a coarse poll), so an `expired` event
//! is written within milliseconds of `expires_at`. Any commit may move that deadline, so the
//! broker wakes it on every commit. After downtime, the first pass writes everything that
//! fell due meanwhile, each event carrying its own due time.

use crate::broker::Broker;
use chrono::Utc;
use policy::state::{Outcome, SYSTEM_ACTOR};
use std::sync::Arc;
use std::time::Duration;

/// Retry delay after the log refused a write (disk full): keep trying, loudly, rather than
/// let a grant outlive its expiry silently.
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(1);

/// Run until `shutdown` resolves.
pub async fn run(broker: Arc<Broker>, shutdown: impl std::future::Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        // Register interest before reading the deadline so a commit between the read and
        // the sleep still wakes us.
        let changed = broker.deadline_changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();

        let result = broker
            .execute(SYSTEM_ACTOR.to_string(), |state, _, now| {
                Ok(Outcome {
                    events: state.due(now),
                    notes: vec![],
                })
            })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "could not record expiries; retrying");
            tokio::select! {
                _ = tokio::time::sleep(RETRY_AFTER_ERROR) => continue,
                _ = &mut shutdown => return,
            }
        }

        let next = broker.read(|state, _| state.next_deadline());
        let sleep = match next {
            // chrono -> std: a deadline already past gives a zero sleep (loop again at once).
            Some(at) => (at - Utc::now()).to_std().unwrap_or(Duration::ZERO),
            None => Duration::from_secs(3600),
        };
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = &mut changed => {}
            _ = &mut shutdown => return,
        }
    }
}
