//! Deleting recordings older than `[recordings] retention`. Each deletion is an event in the
//! log, so the audit trail says what went and why.

use super::RecordingStore;
use crate::broker::Broker;
use chrono::Utc;
use policy::Event;
use recorder::manifest::Manifest;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often retention runs (and once at start).
const EVERY: Duration = Duration::from_secs(3600);

pub async fn run(store: Arc<RecordingStore>, broker: Arc<Broker>, stop: CancellationToken) {
    let Some(retention) = broker.settings().recordings.retention else {
        return;
    };
    loop {
        sweep(&store, &broker, retention).await;
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// Delete sealed recordings that ended more than `retention` ago; returns how many.
pub async fn sweep(
    store: &RecordingStore,
    broker: &Arc<Broker>,
    retention: chrono::Duration,
) -> usize {
    let cutoff = Utc::now() - retention;
    let Ok(entries) = std::fs::read_dir(store.dir()) else {
        return 0;
    };
    let mut deleted = 0;
    for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
        if !path.to_string_lossy().ends_with(".manifest.json") {
            continue;
        }
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let Ok(m) = Manifest::from_bytes(&bytes) else {
            continue;
        };
        if m.ended_at >= cutoff {
            continue;
        }
        let name = m.name();
        // Recorded first: a deletion the log does not know about must never happen.
        let event = Event::RecordingDeleted {
            recording: name.as_str().to_string(),
            reason: format!(
                "retention: ended {} , older than {}",
                m.ended_at.format("%Y-%m-%d %H:%M:%SZ"),
                policy::duration::format(retention)
            ),
        };
        if let Err(e) = broker
            .audit(policy::state::SYSTEM_ACTOR.to_string(), event)
            .await
        {
            tracing::error!(error = %e, "could not record a retention deletion; keeping the recording");
            continue;
        }
        let paths = store.paths(&name);
        for p in [&paths.cast, &paths.signature, &paths.manifest] {
            let _ = std::fs::remove_file(p);
        }
        deleted += 1;
    }
    if deleted > 0 {
        tracing::info!(deleted, "deleted recordings past retention");
    }
    deleted
}
