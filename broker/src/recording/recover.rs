//! Sealing what a crash left open.
//!
//! Every open recording has a partial manifest beside it. At start, any partial without a
//! sealed manifest belonged to a broker that died: its cast is cut back to the last whole
//! line (so players can read it), hashed, and sealed as incomplete with cause
//! `broker_restart`.

use super::channel::seal_and_record;
use super::RecordingStore;
use crate::broker::Broker;
use chrono::{DateTime, Utc};
use recorder::manifest::{Manifest, RecordingName};
use std::sync::Arc;

/// Seal every leftover recording; returns how many were sealed.
pub async fn seal_leftovers(store: &Arc<RecordingStore>, broker: &Arc<Broker>) -> usize {
    let Ok(entries) = std::fs::read_dir(store.dir()) else {
        return 0;
    };
    let mut partials: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".partial.json"))
        .collect();
    partials.sort();
    let mut sealed = 0;
    for partial in partials {
        let name = partial
            .file_name()
            .map(|n| {
                n.to_string_lossy()
                    .trim_end_matches(".partial.json")
                    .to_string()
            })
            .unwrap_or_default();
        match seal_one(store, broker, &partial).await {
            Ok(()) => {
                sealed += 1;
                tracing::warn!(recording = %name, "sealed a recording left open by a crash, marked incomplete");
            }
            Err(e) => {
                tracing::error!(recording = %name, error = %e, "could not seal a leftover recording")
            }
        }
    }
    sealed
}

async fn seal_one(
    store: &Arc<RecordingStore>,
    broker: &Arc<Broker>,
    partial: &std::path::Path,
) -> Result<(), String> {
    let bytes = std::fs::read(partial).map_err(|e| e.to_string())?;
    let manifest = Manifest::from_bytes(&bytes).map_err(|e| e.to_string())?;
    let name: RecordingName = manifest.name();
    let paths = store.paths(&name);
    if paths.manifest.exists() {
        // Sealed after all (the crash came between the seal and removing the partial).
        let _ = std::fs::remove_file(partial);
        return Ok(());
    }
    let (cast, ended_at) = if paths.cast.exists() {
        let ended = trim_torn_tail(&paths.cast).map_err(|e| e.to_string())?;
        let cast =
            super::catalog::hash_cast(&paths.cast, &name.cast_file()).map_err(|e| e.to_string())?;
        (Some(cast), ended)
    } else {
        (None, None)
    };
    let ended_at = ended_at.unwrap_or(manifest.ended_at);
    let manifest = manifest.into_incomplete(ended_at, "broker_restart", cast);
    seal_and_record(store, broker, &paths, &manifest).await
}

/// Cut a cast back to its last complete line; return the time its last event happened.
fn trim_torn_tail(path: &std::path::Path) -> std::io::Result<Option<DateTime<Utc>>> {
    let data = std::fs::read(path)?;
    let keep = match data.iter().rposition(|&b| b == b'\n') {
        Some(i) => i + 1,
        None => 0,
    };
    if keep < data.len() {
        let f = std::fs::OpenOptions::new().write(true).open(path)?;
        f.set_len(keep as u64)?;
        f.sync_all()?;
    }
    let text = String::from_utf8_lossy(&data[..keep]);
    Ok(recorder::cast::parse(&text).ok().map(|r| {
        let d = chrono::TimeDelta::from_std(r.duration()).unwrap_or_default();
        r.header.timestamp + d
    }))
}
