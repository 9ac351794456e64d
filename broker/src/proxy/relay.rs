//! Moving bytes between a client channel and its target channel, with bounded memory and
//! without deadlock.
//!
//! russh runs each connection as one loop that also awaits our handler, and it re-opens
//! SSH windows as soon as data arrives. So the only backpressure is *awaiting*: the handler
//! awaits the target (a request's reply, window space for client input), and the tasks that
//! carry target output await the client's window. That creates a cycle: while the handler
//! awaits the target, the client-side loop is stalled, so target output cannot reach the
//! client; if we then stopped reading the target, the target could stall waiting for us to
//! read, and nothing would ever move again.
//!
//! The [`Pipe`] between a target channel's reader and the client writer breaks the cycle:
//! it holds at most [`SOFT_LIMIT`] bytes normally, but while the handler is awaiting the
//! target ([`Flow::waiting`]) readers keep draining the target up to [`HARD_LIMIT`]. Past
//! that the session is cut (fail closed) rather than let memory grow without bound.

use crate::recording::{RecEvent, Recorder};
use bytes::Bytes;
use russh::{ChannelMsg, ChannelReadHalf, Sig};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

/// Target output buffered per channel while the client is keeping up.
pub const SOFT_LIMIT: usize = 64 * 1024;
/// Target output buffered per channel while the handler awaits the target. Reaching it cuts
/// the session: a client that sends fast while never reading could otherwise grow it forever.
pub const HARD_LIMIT: usize = 16 * 1024 * 1024;

/// Per-connection flow state shared by the handler and the relay tasks.
#[derive(Debug, Default)]
pub struct Flow {
    /// How many handler awaits on the target are in progress (0 or 1: the handler is one
    /// task, but a guard per await keeps this honest).
    waiting: AtomicUsize,
    /// Wakes readers parked at the soft limit when `waiting` rises.
    changed: Notify,
    /// Bytes client -> target.
    pub bytes_in: AtomicU64,
    /// Bytes target -> client.
    pub bytes_out: AtomicU64,
}

/// Marks the handler as awaiting the target while it lives.
pub struct WaitingGuard<'a>(&'a Flow);

impl Drop for WaitingGuard<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Flow {
    pub fn waiting(&self) -> WaitingGuard<'_> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_waiters();
        WaitingGuard(self)
    }

    fn is_waiting(&self) -> bool {
        self.waiting.load(Ordering::SeqCst) > 0
    }
}

/// Something for the client, in the order the target sent it.
#[derive(Debug)]
pub enum ToClient {
    Data(Bytes),
    ExtendedData(u32, Bytes),
    Eof,
    ExitStatus(u32),
    ExitSignal {
        signal: Sig,
        core_dumped: bool,
        message: String,
        lang: String,
    },
    /// The target closed the channel.
    Close,
}

impl ToClient {
    fn len(&self) -> usize {
        match self {
            ToClient::Data(b) | ToClient::ExtendedData(_, b) => b.len(),
            _ => 0,
        }
    }
}

/// Why the pipe refused more data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflow;

#[derive(Default)]
struct PipeState {
    items: VecDeque<ToClient>,
    bytes: usize,
    /// No more items will come (the target side ended).
    closed: bool,
}

/// The bounded queue between a target channel's reader and the client writer.
pub struct Pipe {
    state: Mutex<PipeState>,
    not_empty: Notify,
    space: Notify,
    flow: Arc<Flow>,
}

impl Pipe {
    pub fn new(flow: Arc<Flow>) -> Pipe {
        Pipe {
            state: Mutex::new(PipeState::default()),
            not_empty: Notify::new(),
            space: Notify::new(),
            flow,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PipeState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue an item, waiting while the pipe is over its current limit.
    pub async fn push(&self, item: ToClient) -> Result<(), Overflow> {
        loop {
            let space = self.space.notified();
            let changed = self.flow.changed.notified();
            tokio::pin!(space, changed);
            space.as_mut().enable();
            changed.as_mut().enable();
            {
                let mut s = self.lock();
                let waiting = self.flow.is_waiting();
                let limit = if waiting { HARD_LIMIT } else { SOFT_LIMIT };
                // Control messages (EOF, exit status, close) carry no payload and always
                // pass, so a full pipe never hides how a command ended.
                if s.bytes < limit || item.len() == 0 {
                    s.bytes += item.len();
                    s.items.push_back(item);
                    drop(s);
                    self.not_empty.notify_one();
                    return Ok(());
                }
                if waiting {
                    return Err(Overflow);
                }
            }
            tokio::select! {
                _ = &mut space => {}
                _ = &mut changed => {}
            }
        }
    }

    /// The next item, or `None` once closed and drained.
    pub async fn pop(&self) -> Option<ToClient> {
        loop {
            let not_empty = self.not_empty.notified();
            tokio::pin!(not_empty);
            not_empty.as_mut().enable();
            {
                let mut s = self.lock();
                if let Some(item) = s.items.pop_front() {
                    s.bytes -= item.len();
                    drop(s);
                    self.space.notify_one();
                    return Some(item);
                }
                if s.closed {
                    return None;
                }
            }
            not_empty.await;
        }
    }

    pub fn close(&self) {
        self.lock().closed = true;
        self.not_empty.notify_one();
    }

    /// Bytes queued now (for memory accounting in tests and metrics).
    pub fn queued(&self) -> usize {
        self.lock().bytes
    }
}

/// Read everything the target sends on one channel: output into the pipe, replies to our
/// requests into `replies`. Ends when the target closes the channel or the session is cut.
pub async fn read_target(
    mut rx: ChannelReadHalf,
    pipe: Arc<Pipe>,
    replies: mpsc::Sender<bool>,
    cut: CancellationToken,
    on_overflow: impl FnOnce(),
) {
    loop {
        let msg = tokio::select! {
            m = rx.wait() => m,
            // Halted or cut: whoever stopped us owns the pipe now (a cut writes
            // its own line; a refusal its own ending), so it is not closed here.
            _ = cut.cancelled() => return,
        };
        let Some(msg) = msg else { break };
        let item = match msg {
            ChannelMsg::Data { data } => ToClient::Data(data),
            ChannelMsg::ExtendedData { data, ext } => ToClient::ExtendedData(ext, data),
            ChannelMsg::Eof => ToClient::Eof,
            ChannelMsg::ExitStatus { exit_status } => ToClient::ExitStatus(exit_status),
            ChannelMsg::ExitSignal {
                signal_name,
                core_dumped,
                error_message,
                lang_tag,
            } => ToClient::ExitSignal {
                signal: signal_name,
                core_dumped,
                message: error_message,
                lang: lang_tag,
            },
            ChannelMsg::Close => {
                let _ = pipe.push(ToClient::Close).await;
                break;
            }
            ChannelMsg::Success => {
                let _ = replies.try_send(true);
                continue;
            }
            ChannelMsg::Failure => {
                let _ = replies.try_send(false);
                continue;
            }
            _ => continue,
        };
        let pushed = tokio::select! {
            r = pipe.push(item) => r,
            _ = cut.cancelled() => return,
        };
        if pushed.is_err() {
            on_overflow();
            break;
        }
    }
    pipe.close();
}

/// How long the cut message may take to reach a client before the sockets close anyway:
/// a client that is not reading must not delay a cut.
pub const CUT_MESSAGE_GRACE: std::time::Duration = std::time::Duration::from_millis(200);

/// After the cut message is queued, how long russh gets to write it before the sockets fail.
pub const CUT_FLUSH: std::time::Duration = std::time::Duration::from_millis(15);

/// How a client channel shows latch's own lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Console {
    /// A pty: write on the terminal, with CRLF.
    Terminal,
    /// No pty: write on stderr.
    Stderr,
}

/// Format one latch line for a channel.
pub fn latch_line(console: Console, text: &str) -> (Option<u32>, Bytes) {
    match console {
        Console::Terminal => (None, Bytes::from(format!("\r\nlatch: {text}\r\n"))),
        Console::Stderr => (Some(1), Bytes::from(format!("latch: {text}\n"))),
    }
}

/// Carry the pipe's items to the client channel, honouring the client's window. Also writes
/// latch's notices (expiry warnings) and, on a cut, the one line saying why. Returns when the
/// target closed the channel, the client went away, or the session was cut.
#[allow(clippy::too_many_arguments)]
pub async fn write_client(
    pipe: Arc<Pipe>,
    out: russh::ChannelWriteHalf<russh::server::Msg>,
    handle: russh::server::Handle,
    flow: Arc<Flow>,
    stop: CancellationToken,
    console: impl Fn() -> Console,
    mut notices: tokio::sync::broadcast::Receiver<String>,
    cut_message: impl Fn() -> Option<String>,
    exit_status: Arc<Mutex<Option<u32>>>,
    rec: Recorder,
) {
    let id = out.id();
    let now = chrono::Utc::now;
    let mut eof_held = false;
    let write = |ext: Option<u32>, b: Bytes| {
        let out = &out;
        async move {
            match ext {
                None => out.data_bytes(b).await,
                Some(e) => out.extended_data_bytes(e, b).await,
            }
        }
    };
    // The notice senders go away with the session's supervisor, which can end before this
    // task (a client that vanishes while the target's command runs on). A closed receiver is
    // ready at once, forever: keep polling it and this loop spins, never reaching the pipe.
    let mut notices_open = true;
    loop {
        let item = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            n = notices.recv(), if notices_open => {
                match n {
                    Ok(text) => {
                        rec.send(RecEvent::Marker { at: now(), label: text.clone() }).await;
                        let (ext, b) = latch_line(console(), &text);
                        let _ = write(ext, b).await;
                    }
                    // Notices are best effort; the deadline itself is enforced elsewhere.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => notices_open = false,
                }
                continue;
            }
            item = pipe.pop() => item,
        };
        let ok = match item {
            None => {
                let _ = out.close().await;
                return;
            }
            Some(ToClient::Data(b)) => {
                flow.bytes_out.fetch_add(b.len() as u64, Ordering::Relaxed);
                // Recorded before it is shown: nothing reaches the user unrecorded.
                rec.send(RecEvent::Output {
                    at: now(),
                    bytes: b.clone(),
                    stderr: false,
                })
                .await;
                tokio::select! {
                    r = write(None, b) => r.is_ok(),
                    _ = stop.cancelled() => break,
                }
            }
            Some(ToClient::ExtendedData(e, b)) => {
                flow.bytes_out.fetch_add(b.len() as u64, Ordering::Relaxed);
                rec.send(RecEvent::Output {
                    at: now(),
                    bytes: b.clone(),
                    stderr: true,
                })
                .await;
                tokio::select! {
                    r = write(Some(e), b) => r.is_ok(),
                    _ = stop.cancelled() => break,
                }
            }
            // Held until the exit status or the close: a client whose own input is done
            // closes the channel as soon as it sees EOF, and russh answers that close at once,
            // so an exit status the target sends after its EOF would never arrive (OpenSSH
            // ControlMaster clients then report 255). No data may follow EOF, so holding it
            // changes nothing else.
            Some(ToClient::Eof) => {
                eof_held = true;
                true
            }
            Some(ToClient::ExitStatus(s)) => {
                if let Ok(mut e) = exit_status.lock() {
                    *e = Some(s);
                }
                let sent = out.exit_status(s).await.is_ok();
                if std::mem::take(&mut eof_held) {
                    let _ = out.eof().await;
                }
                rec.send(RecEvent::ExitStatus {
                    at: now(),
                    status: s,
                })
                .await;
                sent
            }
            Some(ToClient::ExitSignal {
                signal,
                core_dumped,
                message,
                lang,
            }) => {
                rec.send(RecEvent::ExitSignal {
                    at: now(),
                    signal: format!("{signal:?}"),
                })
                .await;
                let sent = handle
                    .exit_signal_request(id, signal, core_dumped, message, lang)
                    .await
                    .is_ok();
                if std::mem::take(&mut eof_held) {
                    let _ = out.eof().await;
                }
                sent
            }
            Some(ToClient::Close) => {
                if eof_held {
                    let _ = out.eof().await;
                }
                let _ = out.close().await;
                return;
            }
        };
        if !ok {
            return;
        }
    }
    // Cut: nothing more from the target; one line saying why, if the client takes it soon.
    if let Some(text) = cut_message() {
        // Never wait on the recorder here: a cut must not be delayed by a slow disk.
        rec.offer(RecEvent::Marker {
            at: now(),
            label: text.clone(),
        });
        let (ext, b) = latch_line(console(), &text);
        let _ = tokio::time::timeout(CUT_MESSAGE_GRACE, async {
            let _ = write(ext, b).await;
            let _ = out.eof().await;
        })
        .await;
    }
}
