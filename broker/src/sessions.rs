//! The session registry and kill switch.
//!
//! Every live proxied session is registered here with what it runs under (grant or standing
//! role), its byte counters, and the tokens that stop it. Cutting is two steps: `stop` halts
//! relaying at once (no byte moves after the decision), then the connection's supervisor
//! tells the user why and fires `kill`, which fails both sockets below russh.
//!
//! [`run_severing`] follows the committed events: a revocation, expiry, lock or kill cuts
//! the affected sessions the moment it is durable; an approved extension moves their
//! deadline. Each session also keeps its own deadline timer, so a grant never outlives its
//! expiry even if the log could not be written.

use crate::broker::{Broker, Committed};
use crate::proxy::relay::Flow;
use chrono::{DateTime, Utc};
use policy::decision::AllowedBy;
use policy::session::SessionId;
use policy::{Event, GrantId};
use serde::Serialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

/// Why a session was cut, and the line the user sees.
#[derive(Debug, Clone)]
pub struct Cut {
    /// `revoked`, `expired`, `killed`, `locked`, `relay_overflow`, `recording_failed`,
    /// `broker_shutdown`.
    pub cause: &'static str,
    pub message: String,
    /// When the cut was decided, for the cut duration recorded at the end.
    pub decided: Instant,
}

/// One live proxied session.
pub struct LiveSession {
    pub id: SessionId,
    pub user: String,
    pub login: String,
    pub host: String,
    pub by: AllowedBy,
    pub role: String,
    pub started_at: DateTime<Utc>,
    pub source: SocketAddr,
    pub flow: Arc<Flow>,
    /// Stops relaying: the first step of a cut.
    pub stop: CancellationToken,
    /// The grant's current expiry (None for standing roles); moved by approved extensions.
    pub deadline: watch::Sender<Option<DateTime<Utc>>>,
    cut: Mutex<Option<Cut>>,
    /// Counted in the registry's [`CutsInFlight`] until the session has closed.
    in_flight: AtomicBool,
}

/// How many sessions the registry has cut that have not closed yet. Recorders wait for it
/// to reach zero (for a bounded time) before sealing: when a revoke cuts 200 sessions, the
/// cuts get the CPU first and the 200 seals (file writes and fsyncs) follow.
#[derive(Debug, Default)]
pub struct CutsInFlight {
    count: AtomicUsize,
    settled: tokio::sync::Notify,
}

impl CutsInFlight {
    fn begin(&self) {
        self.count.fetch_add(1, Ordering::SeqCst);
    }

    fn end(&self) {
        if self.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.settled.notify_waiters();
        }
    }

    /// Every connection is gone (shutdown): nothing is in flight any more, whatever was
    /// counted.
    fn clear(&self) {
        self.count.store(0, Ordering::SeqCst);
        self.settled.notify_waiters();
    }

    /// Return once no cut is in flight, or after `at_most`.
    pub async fn settled(&self, at_most: Duration) {
        let _ = tokio::time::timeout(at_most, async {
            loop {
                // Registered before the check, so an `end` in between is not missed.
                let settled = self.settled.notified();
                if self.count.load(Ordering::SeqCst) == 0 {
                    return;
                }
                settled.await;
            }
        })
        .await;
    }
}

/// What `sessions` shows.
#[derive(Debug, Clone, Serialize)]
pub struct SessionSnapshot {
    pub id: SessionId,
    pub user: String,
    pub login: String,
    pub host: String,
    pub grant: Option<GrantId>,
    pub role: String,
    pub started_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub source: String,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl LiveSession {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: SessionId,
        user: String,
        login: String,
        host: String,
        by: AllowedBy,
        role: String,
        started_at: DateTime<Utc>,
        source: SocketAddr,
        deadline: Option<DateTime<Utc>>,
    ) -> LiveSession {
        LiveSession {
            id,
            user,
            login,
            host,
            by,
            role,
            started_at,
            source,
            flow: Arc::new(Flow::default()),
            stop: CancellationToken::new(),
            deadline: watch::channel(deadline).0,
            cut: Mutex::new(None),
            in_flight: AtomicBool::new(false),
        }
    }

    pub fn grant(&self) -> Option<GrantId> {
        match &self.by {
            AllowedBy::Grant(id) => Some(*id),
            AllowedBy::StandingRole(_) => None,
        }
    }

    /// Cut this session (the first cut wins; later ones keep its reason). True for the
    /// first cut.
    pub fn cut(&self, cause: &'static str, message: String) -> bool {
        let first = {
            let mut c = self.cut.lock().unwrap_or_else(|p| p.into_inner());
            let first = c.is_none();
            if first {
                *c = Some(Cut {
                    cause,
                    message,
                    decided: Instant::now(),
                });
            }
            first
        };
        self.stop.cancel();
        first
    }

    pub fn cut_reason(&self) -> Option<Cut> {
        self.cut.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn snapshot(&self) -> SessionSnapshot {
        SessionSnapshot {
            id: self.id,
            user: self.user.clone(),
            login: self.login.clone(),
            host: self.host.clone(),
            grant: self.grant(),
            role: self.role.clone(),
            started_at: self.started_at,
            expires_at: *self.deadline.borrow(),
            source: self.source.to_string(),
            bytes_in: self.flow.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.flow.bytes_out.load(Ordering::Relaxed),
        }
    }
}

/// Every live session of this broker.
#[derive(Default)]
pub struct SessionRegistry {
    sessions: Mutex<HashMap<SessionId, Arc<LiveSession>>>,
    cuts: Arc<CutsInFlight>,
}

impl SessionRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, Arc<LiveSession>>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn register(&self, s: Arc<LiveSession>) {
        self.lock().insert(s.id, s);
    }

    /// A registry whose cuts are counted in `cuts` (shared with the recorders).
    pub fn new(cuts: Arc<CutsInFlight>) -> SessionRegistry {
        SessionRegistry {
            sessions: Mutex::default(),
            cuts,
        }
    }

    /// Every connection task has ended or been stopped (shutdown). Sessions whose tasks were
    /// stopped never close through [`SessionRegistry::remove`]; their seals must not wait.
    pub fn connections_gone(&self) {
        for s in self.lock().values() {
            s.in_flight.store(false, Ordering::SeqCst);
        }
        self.cuts.clear();
    }

    /// The session has closed.
    pub fn remove(&self, id: &SessionId) {
        let removed = self.lock().remove(id);
        if removed.is_some_and(|s| s.in_flight.swap(false, Ordering::SeqCst)) {
            self.cuts.end();
        }
    }

    pub fn get(&self, id: &SessionId) -> Option<Arc<LiveSession>> {
        self.lock().get(id).cloned()
    }

    pub fn all(&self) -> Vec<Arc<LiveSession>> {
        let mut v: Vec<_> = self.lock().values().cloned().collect();
        v.sort_by(|a, b| {
            a.started_at
                .cmp(&b.started_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        v
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Cut every session matching `which`; returns how many.
    pub fn cut_where(
        &self,
        which: impl Fn(&LiveSession) -> bool,
        cause: &'static str,
        message: impl Fn(&LiveSession) -> String,
    ) -> usize {
        // Under the registry's lock, so a session cannot close (and leave the count) between
        // being counted and being cut.
        let sessions = self.lock();
        let mut n = 0;
        for s in sessions.values().filter(|s| which(s)) {
            n += 1;
            if s.cut(cause, message(s)) && !s.in_flight.swap(true, Ordering::SeqCst) {
                self.cuts.begin();
            }
        }
        n
    }
}

fn by_whom(actor: &str) -> String {
    if actor == policy::state::SYSTEM_ACTOR {
        String::new()
    } else {
        format!(" by {actor}")
    }
}

/// Apply one committed event to the live sessions.
fn sever(broker: &Broker, registry: &SessionRegistry, c: &Committed) {
    match &c.event {
        Event::Revoked { id, by, reason } => {
            let why = reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            registry.cut_where(
                |s| s.grant() == Some(*id),
                "revoked",
                |_| {
                    format!(
                        "grant {id} was revoked{}{why}. This session is closed.",
                        by_whom(by)
                    )
                },
            );
        }
        Event::Expired { id, due } => {
            registry.cut_where(
                |s| s.grant() == Some(*id),
                "expired",
                |_| {
                    format!(
                        "grant {id} expired at {}. This session is closed; request access again to continue.",
                        due.format("%H:%M:%SZ")
                    )
                },
            );
        }
        Event::Locked { user, by, reason } => {
            registry.cut_where(
                |s| &s.user == user,
                "locked",
                |_| {
                    format!(
                        "{user} was locked out{}: {reason}. This session is closed.",
                        by_whom(by)
                    )
                },
            );
        }
        Event::SessionKilled { id, by, reason } => {
            let why = reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            registry.cut_where(
                |s| &s.id == id,
                "killed",
                |_| format!("this session was killed{}{why}.", by_whom(by)),
            );
        }
        Event::Approved(a) => {
            // An approved extension moves the parent's expiry: live sessions get the new
            // deadline (and a fresh warning) without reconnecting.
            let parent = broker.read(|s, _| s.grant(a.id).and_then(|g| g.extends));
            if let Some(parent) = parent {
                for s in registry.all() {
                    if s.grant() == Some(parent) {
                        let _ = s.deadline.send(Some(a.expires_at));
                    }
                }
            }
        }
        _ => {}
    }
}

/// Follow committed events and cut what they end. Runs for the broker's life.
pub async fn run_severing(
    broker: Arc<Broker>,
    registry: Arc<SessionRegistry>,
    shutdown: CancellationToken,
) {
    let mut rx = broker.subscribe();
    loop {
        let next = tokio::select! {
            r = rx.recv() => r,
            _ = shutdown.cancelled() => return,
        };
        match next {
            Ok(c) => sever(&broker, &registry, &c),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                // Missed events: re-decide every live session against the current state
                // rather than risk leaving a revoked one running.
                tracing::warn!(
                    missed = n,
                    "severing fell behind; re-checking every live session"
                );
                let now = Utc::now();
                for s in registry.all() {
                    let allowed = broker.read(|state, settings| {
                        matches!(
                            state.authorize(settings, &s.user, &s.login, &s.host, now),
                            policy::Decision::Allow { .. }
                        )
                    });
                    if !allowed {
                        s.cut(
                            "revoked",
                            "your access to this host has ended. This session is closed.".into(),
                        );
                    }
                }
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: u64) -> Arc<LiveSession> {
        Arc::new(LiveSession::new(
            SessionId(id),
            "alice".into(),
            "root".into(),
            "db".into(),
            AllowedBy::Grant(GrantId(1)),
            "quick".into(),
            Utc::now(),
            "127.0.0.1:1".parse().expect("address"),
            None,
        ))
    }

    #[tokio::test(start_paused = true)]
    async fn seals_wait_for_the_cuts_of_a_fan_out_and_no_longer() {
        let cuts = Arc::new(CutsInFlight::default());
        let registry = SessionRegistry::new(Arc::clone(&cuts));
        for id in 1..=3 {
            registry.register(session(id));
        }
        assert_eq!(
            registry.cut_where(|_| true, "revoked", |_| "gone".into()),
            3
        );
        // A second cut of the same sessions counts nothing twice.
        registry.cut_where(|_| true, "killed", |_| "gone".into());

        let waiter = tokio::spawn({
            let cuts = Arc::clone(&cuts);
            async move { cuts.settled(Duration::from_secs(60)).await }
        });
        registry.remove(&SessionId(1));
        registry.remove(&SessionId(2));
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "one cut is still in flight");
        registry.remove(&SessionId(3));
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("settled once the last cut closed")
            .expect("task");

        // A cut that never closes holds seals back only for the bound given.
        registry.register(session(4));
        registry.cut_where(|_| true, "revoked", |_| "gone".into());
        let started = tokio::time::Instant::now();
        cuts.settled(Duration::from_secs(2)).await;
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        // A session that closes without having been cut by the registry leaves the count alone.
        registry.register(session(5));
        registry.remove(&SessionId(5));
        registry.remove(&SessionId(4));
        assert_eq!(cuts.count.load(Ordering::SeqCst), 0);

        // At shutdown, connection tasks are stopped and never close their sessions: the
        // seals must not wait for them.
        registry.register(session(6));
        registry.cut_where(|_| true, "broker_shutdown", |_| "bye".into());
        registry.connections_gone();
        let started = tokio::time::Instant::now();
        cuts.settled(Duration::from_secs(2)).await;
        assert_eq!(started.elapsed(), Duration::ZERO);
        registry.remove(&SessionId(6));
        assert_eq!(cuts.count.load(Ordering::SeqCst), 0, "no underflow");
    }
}
