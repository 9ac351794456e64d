//! Recording every proxied channel, and sealing each recording when it closes.
//!
//! Each client channel gets a recorder task. The relay tells it what happens ([`RecEvent`]:
//! output, input, requests and the target's replies, resizes, markers, exit status) through a
//! bounded queue: when the disk is slower than the session, the session slows down rather
//! than the recording losing anything. Shells and commands become asciicast files streamed
//! to disk (synced at least every second); file transfers (sftp, scp, rsync) and forwarded
//! ports are recorded as metadata. When the channel closes, the recorder writes a manifest,
//! signs it with the audit key (`sshsig`) and appends `recording_sealed` to the event log.
//!
//! If a recording cannot be written, the session is cut: no unrecorded session (fail
//! closed). A partial manifest is kept beside every open recording, so a broker that
//! crashed seals what is on disk at its next start, marked incomplete.
//!
//! # Layout
//! - this file: the store (where files live), [`RecEvent`], starting a channel's recorder.
//! - `channel`: the recorder task.
//! - `recover`: sealing what a crash left open.
//! - `retention`: deleting recordings past the retention period.

pub mod catalog;
mod channel;
pub mod recover;
pub mod retention;

use crate::broker::Broker;
use crate::sessions::{CutsInFlight, LiveSession};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use recorder::manifest::{ChannelKind, Forward, Origin, RecordingName, Request};
use russh::keys::ssh_key::PrivateKey;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

/// Events a recorder may fall behind by before the relay waits for it.
const QUEUE: usize = 256;

/// Run file work that waits on the disk (an fsync) without stalling the async workers that
/// relay every other session. On the multi-threaded runtime the worker hands its other tasks
/// to another thread for the duration (`block_in_place`); a slow disk then slows only the
/// recordings, and a cut of 200 sessions is not queued behind 600 fsyncs of their seals.
/// Anywhere else (a current-thread runtime, no runtime) it simply runs.
pub(crate) fn on_disk<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

/// Where recordings live, and the key that seals them.
pub struct RecordingStore {
    dir: PathBuf,
    key: PrivateKey,
    /// Recorder tasks, so shutdown can let them seal.
    tasks: TaskTracker,
    /// One seal at a time touches the disk. A revoke that cuts 200 sessions ends 200
    /// recordings at once; sealing them in parallel (three fsyncs and renames each) would
    /// take a thread per seal and starve the cuts still in flight of CPU. Seals are not
    /// urgent: the cut is. See BENCHMARKING.md (revoke fan-out).
    seal_gate: tokio::sync::Semaphore,
    /// Sessions cut and not yet closed; seals wait for them (see [`CutsInFlight`]).
    cuts: Arc<CutsInFlight>,
}

/// The files of one recording.
pub struct RecordingPaths {
    pub cast: PathBuf,
    pub manifest: PathBuf,
    pub signature: PathBuf,
    /// The unsigned manifest kept while the recording is open, for crash recovery.
    pub partial: PathBuf,
}

impl RecordingStore {
    pub const DIR: &'static str = "recordings";

    /// Open (creating, mode 0700) `state_dir/recordings`.
    pub fn open(state_dir: &Path, key: PrivateKey) -> std::io::Result<RecordingStore> {
        use std::os::unix::fs::DirBuilderExt;
        let dir = state_dir.join(Self::DIR);
        if !dir.is_dir() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)?;
        }
        Ok(RecordingStore {
            dir,
            key,
            tasks: TaskTracker::new(),
            seal_gate: tokio::sync::Semaphore::new(1),
            cuts: Arc::default(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The count of cuts in flight the session registry keeps and the seals wait on.
    pub fn cuts(&self) -> &Arc<CutsInFlight> {
        &self.cuts
    }

    pub fn key(&self) -> &PrivateKey {
        &self.key
    }

    pub fn paths(&self, name: &RecordingName) -> RecordingPaths {
        RecordingPaths {
            cast: self.dir.join(name.cast_file()),
            manifest: self.dir.join(name.manifest_file()),
            signature: self.dir.join(name.signature_file()),
            partial: self.dir.join(format!("{}.partial.json", name.as_str())),
        }
    }

    /// Wait (bounded) for recorders to seal, at shutdown.
    pub async fn drain(&self, within: std::time::Duration) {
        self.tasks.close();
        let _ = tokio::time::timeout(within, self.tasks.wait()).await;
    }
}

/// What happens on a channel, for its recorder.
#[derive(Debug)]
pub enum RecEvent {
    /// Target output (`stderr` for extended data).
    Output {
        at: DateTime<Utc>,
        bytes: Bytes,
        stderr: bool,
    },
    /// Client input.
    Input {
        at: DateTime<Utc>,
        bytes: Bytes,
    },
    /// A request and the target's reply (`None`: no reply asked).
    Request {
        at: DateTime<Utc>,
        request: Request,
        accepted: Option<bool>,
    },
    /// A marker: something happened to the grant or the session (warning, extension, cut).
    Marker {
        at: DateTime<Utc>,
        label: String,
    },
    ExitStatus {
        at: DateTime<Utc>,
        status: u32,
    },
    ExitSignal {
        at: DateTime<Utc>,
        signal: String,
    },
}

/// The sending side of a channel's recorder. Dropping every clone ends the recording.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<RecEvent>,
}

impl Recorder {
    /// Hand an event to the recorder, waiting while it is behind. A recorder that has
    /// failed has cut the session already; events for it are dropped.
    pub async fn send(&self, event: RecEvent) {
        let _ = self.tx.send(event).await;
    }

    /// Hand an event over only if there is room now (for the cut path, which must not wait).
    pub fn offer(&self, event: RecEvent) {
        let _ = self.tx.try_send(event);
    }
}

/// Everything a channel's recording is about.
pub struct ChannelSpec {
    pub origin: Origin,
    pub channel: u32,
    pub kind: ChannelKind,
    pub forward: Option<Forward>,
    pub record_input: bool,
    /// Other recordings of the same connection, for the `linked` field.
    pub linked: Vec<RecordingName>,
}

/// Start recording a channel. Fails (and the channel must be refused) when the recording
/// cannot even be started: fail closed.
pub fn start(
    store: &Arc<RecordingStore>,
    broker: &Arc<Broker>,
    live: &Arc<LiveSession>,
    spec: ChannelSpec,
    enabled: bool,
) -> Result<Recorder, String> {
    let (tx, rx) = mpsc::channel(QUEUE);
    if !enabled {
        // `[recordings] enabled = false`: a recorder nobody reads; every send fails at once.
        drop(rx);
        return Ok(Recorder { tx });
    }
    let task = channel::ChannelRecording::begin(
        Arc::clone(store),
        Arc::clone(broker),
        Arc::clone(live),
        spec,
    )?;
    store.tasks.spawn(task.run(rx));
    Ok(Recorder { tx })
}
