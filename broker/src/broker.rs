//! The broker core: the projection of the event log, the log itself, and the one path by
//! which state changes.
//!
//! Every change goes through [`Broker::execute`]: under one lock, a pure policy operation
//! decides at `now` and returns events; they are appended to the log and fsynced; only then
//! are they applied to the in-memory state and announced. So a change takes effect only
//! after it is durable (principle 2), and restart is replay.

use crate::config_file::LoadedConfig;
use crate::eventlog::{EventStore, FileLog, LogError, Record};
use chrono::{DateTime, DurationRound, Utc};
use policy::state::{ApplyError, Outcome, PolicyError};
use policy::{Event, Settings, State};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{broadcast, Notify};

/// How many committed events a slow subscriber may fall behind before it is told it lagged.
/// Subscribers (session cutting) must re-read state on lag, never block the writer.
const COMMITTED_BUFFER: usize = 1024;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// The policy refused the operation; the message is for the user.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The event log could not be written or read. Nothing took effect.
    #[error("event log: {0}")]
    Log(#[from] LogError),
    /// The log holds an event that does not fit the state replayed so far.
    #[error("event log line {seq} does not fit the state built from the lines before it: {source}; run `latch audit verify`")]
    Replay { seq: u64, source: ApplyError },
    #[error("cannot create state directory {path}: {source}")]
    StateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("internal error: {0}")]
    Internal(String),
}

/// One committed event, as announced to subscribers.
#[derive(Debug, Clone)]
pub struct Committed {
    pub seq: u64,
    pub time: DateTime<Utc>,
    pub actor: String,
    pub event: Event,
}

struct Core {
    state: State,
    /// Behind the storage trait so a shared (PostgreSQL) backend can replace the file.
    log: Box<dyn EventStore<Event> + Send>,
}

/// What `open` found while replaying, for the start-up log line.
#[derive(Debug, Clone, Default)]
pub struct ReplayReport {
    pub events: u64,
    pub grants: usize,
    /// Set when a torn last line from a crash was set aside.
    pub recovered: Option<String>,
}

pub struct Broker {
    /// Validated settings, fixed for the broker's life: a config change is a restart, which
    /// the log records (`broker_started` with the config's hash).
    settings: Arc<Settings>,
    /// State and log under one lock, so the order of the log is the order of decisions.
    core: Mutex<Core>,
    /// Wakes the expiry timer whenever the earliest deadline may have moved.
    pub(crate) deadline_changed: Notify,
    /// Every committed event, for the session kill switch and observers.
    committed: broadcast::Sender<Arc<Committed>>,
    state_dir: PathBuf,
}

impl Broker {
    /// Open the state directory: take the log's lock, replay it, record the start.
    pub fn open(config: &LoadedConfig) -> Result<(Arc<Broker>, ReplayReport), BrokerError> {
        create_private_dir(&config.state_dir)?;
        let mut state = State::new();
        let (log, opened) = FileLog::open(&config.state_dir, |record: Record<Event>| {
            state
                .apply(&record.event, record.time, &record.actor)
                .map_err(|source| {
                    Box::new(BrokerError::Replay {
                        seq: record.seq,
                        source,
                    }) as crate::eventlog::ApplyError
                })
        })?;
        let report = ReplayReport {
            events: opened.records,
            grants: state.len(),
            recovered: opened.recovery.map(|r| r.to_string()),
        };
        let (committed, _) = broadcast::channel(COMMITTED_BUFFER);
        let broker = Arc::new(Broker {
            settings: Arc::new(config.settings.clone()),
            core: Mutex::new(Core {
                state,
                log: Box::new(log),
            }),
            deadline_changed: Notify::new(),
            committed,
            state_dir: config.state_dir.clone(),
        });
        broker.execute_blocking(policy::state::SYSTEM_ACTOR, |_, _, _| {
            Ok(Outcome {
                events: vec![Event::BrokerStarted {
                    config_sha256: config.sha256(),
                    version: env!("CARGO_PKG_VERSION").to_string(),
                    recording: config.settings.recordings.enabled,
                }],
                notes: vec![],
            })
        })?;
        Ok((broker, report))
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Subscribe to committed events.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Committed>> {
        self.committed.subscribe()
    }

    /// Read the current state.
    pub fn read<R>(&self, f: impl FnOnce(&State, &Settings) -> R) -> R {
        let core = self.lock();
        f(&core.state, &self.settings)
    }

    /// Decide and commit a change. The fsync runs on the blocking pool so the SSH tasks
    /// keep moving while the disk works.
    pub async fn execute<F>(self: &Arc<Self>, actor: String, op: F) -> Result<Outcome, BrokerError>
    where
        F: FnOnce(&State, &Settings, DateTime<Utc>) -> Result<Outcome, PolicyError>
            + Send
            + 'static,
    {
        let this = Arc::clone(self);
        tokio::task::spawn_blocking(move || this.execute_blocking(&actor, op))
            .await
            .map_err(|e| BrokerError::Internal(format!("commit task failed: {e}")))?
    }

    /// As [`Broker::execute`], on the calling thread.
    pub fn execute_blocking<F>(&self, actor: &str, op: F) -> Result<Outcome, BrokerError>
    where
        F: FnOnce(&State, &Settings, DateTime<Utc>) -> Result<Outcome, PolicyError>,
    {
        let mut core = self.lock();
        // The log stores milliseconds; deciding at a millisecond-truncated `now` keeps every
        // time computed from it (expiries) identical before and after a replay.
        let now = Utc::now()
            .duration_trunc(chrono::TimeDelta::milliseconds(1))
            .unwrap_or_else(|_| Utc::now());
        let outcome = op(&core.state, &self.settings, now)?;
        if outcome.events.is_empty() {
            return Ok(outcome);
        }
        let records = core.log.append(actor, now, &outcome.events)?;
        for record in records {
            if let Err(source) = core.state.apply(&record.event, record.time, &record.actor) {
                // The policy produced an event its own state machine refuses: a bug. The
                // event is already durable, so say so loudly; replay will stop at it too.
                tracing::error!(seq = record.seq, error = %source, "committed event does not apply");
                return Err(BrokerError::Replay {
                    seq: record.seq,
                    source,
                });
            }
            let _ = self.committed.send(Arc::new(Committed {
                seq: record.seq,
                time: record.time,
                actor: record.actor,
                event: record.event,
            }));
        }
        drop(core);
        self.deadline_changed.notify_one();
        Ok(outcome)
    }

    /// Append audit-only events (no state change beyond the log).
    pub async fn audit(self: &Arc<Self>, actor: String, event: Event) -> Result<(), BrokerError> {
        self.execute(actor, move |_, _, _| {
            Ok(Outcome {
                events: vec![event],
                notes: vec![],
            })
        })
        .await
        .map(|_| ())
    }

    fn lock(&self) -> MutexGuard<'_, Core> {
        // A panic while holding the lock cannot leave the state half-applied in a way the
        // log does not know about (apply happens after append), so continuing is safe.
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Create the state directory with mode 0700 (it holds keys and the audit log).
pub fn create_private_dir(dir: &Path) -> Result<(), BrokerError> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| BrokerError::StateDir {
            path: dir.display().to_string(),
            source,
        })
}
