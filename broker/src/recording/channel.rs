//! One channel's recorder task: asciicast or metadata, streamed to disk, sealed at the end.

use super::{on_disk, ChannelSpec, RecEvent, RecordingPaths, RecordingStore};
use crate::broker::Broker;
use crate::sessions::LiveSession;
use chrono::Utc;
use policy::Event;
use recorder::cast::{CastWriter, Coalescing, Header, Keystrokes};
use recorder::manifest::{file_transfer_tool, CastHasher, ManifestBuilder, RecordingName, Request};
use recorder::sftp::SftpObserver;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// A crash loses at most this much of a recording.
const SYNC_EVERY: Duration = Duration::from_secs(1);

/// How long a seal waits for a fan-out's cuts to finish before it goes ahead anyway.
const SEAL_AFTER_CUTS_AT_MOST: Duration = Duration::from_secs(2);

/// An open asciicast file.
struct Cast {
    writer: CastWriter,
    file: File,
    hasher: CastHasher,
    /// Lines produced and not yet written.
    buf: String,
    /// Written since the last fsync.
    dirty: bool,
}

pub(super) struct ChannelRecording {
    store: Arc<RecordingStore>,
    broker: Arc<Broker>,
    live: Arc<LiveSession>,
    name: RecordingName,
    paths: RecordingPaths,
    builder: ManifestBuilder,
    record_input: bool,
    /// The terminal from the pty request, for the cast header.
    pty: Option<(String, u32, u32)>,
    cast: Option<Cast>,
    sftp: Option<SftpObserver>,
    /// Set once a write failed: the session is being cut; stop touching the disk.
    failed: bool,
}

impl ChannelRecording {
    pub(super) fn begin(
        store: Arc<RecordingStore>,
        broker: Arc<Broker>,
        live: Arc<LiveSession>,
        spec: ChannelSpec,
    ) -> Result<ChannelRecording, String> {
        let mut builder = ManifestBuilder::new(spec.origin, spec.channel, spec.kind, Utc::now());
        if let Some(f) = spec.forward {
            builder.forward(f);
        }
        for other in &spec.linked {
            builder.link(other);
        }
        let name = builder.name();
        let paths = store.paths(&name);
        let rec = ChannelRecording {
            store,
            broker,
            live,
            name,
            paths,
            builder,
            record_input: spec.record_input,
            pty: None,
            cast: None,
            sftp: None,
            failed: false,
        };
        on_disk(|| rec.write_partial()).map_err(|e| {
            format!(
                "cannot start the recording {}: {e}",
                rec.paths.partial.display()
            )
        })?;
        Ok(rec)
    }

    pub(super) async fn run(mut self, mut rx: mpsc::Receiver<RecEvent>) {
        let mut sync = tokio::time::interval(SYNC_EVERY);
        sync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let flush_at = self.cast.as_ref().and_then(|c| c.writer.flush_deadline());
            let flush_in = flush_at.map(|t| (t - Utc::now()).to_std().unwrap_or_default());
            tokio::select! {
                ev = rx.recv() => match ev {
                    Some(ev) => self.handle(ev),
                    None => break,
                },
                _ = tokio::time::sleep(flush_in.unwrap_or_default()), if flush_in.is_some() => {
                    if let Some(c) = self.cast.as_mut() {
                        c.writer.flush_due(Utc::now(), &mut c.buf);
                    }
                    self.write_out();
                }
                _ = sync.tick() => self.sync(),
            }
        }
        self.seal().await;
    }

    fn handle(&mut self, ev: RecEvent) {
        match ev {
            RecEvent::Output { at, bytes, stderr } => {
                self.builder.bytes_out(bytes.len() as u64);
                if let Some(c) = self.cast.as_mut() {
                    if stderr {
                        c.writer.error_output(at, &bytes, &mut c.buf);
                    } else {
                        c.writer.output(at, &bytes, &mut c.buf);
                    }
                }
                if !stderr {
                    if let Some(s) = self.sftp.as_mut() {
                        let ops = s.server_bytes(at, &bytes);
                        self.builder.sftp(ops);
                    }
                }
            }
            RecEvent::Input { at, bytes } => {
                self.builder.bytes_in(bytes.len() as u64);
                if let Some(c) = self.cast.as_mut() {
                    c.writer.input(at, &bytes, &mut c.buf);
                }
                if let Some(s) = self.sftp.as_mut() {
                    let ops = s.client_bytes(at, &bytes);
                    self.builder.sftp(ops);
                }
            }
            RecEvent::Request {
                at,
                request,
                accepted,
            } => {
                self.on_request(at, &request, accepted);
                self.builder.request(at, request, accepted);
                on_disk(|| self.write_partial_or_fail());
            }
            RecEvent::Marker { at, label } => {
                if let Some(c) = self.cast.as_mut() {
                    c.writer.marker(at, &label, &mut c.buf);
                }
            }
            RecEvent::ExitStatus { at, status } => {
                self.builder.exit_status(status);
                if let Some(c) = self.cast.as_mut() {
                    c.writer
                        .marker(at, &format!("exit status {status}"), &mut c.buf);
                }
            }
            RecEvent::ExitSignal { at, signal } => {
                self.builder.exit_signal(signal.as_bytes());
                if let Some(c) = self.cast.as_mut() {
                    c.writer
                        .marker(at, &format!("exit signal {signal}"), &mut c.buf);
                }
            }
        }
        self.write_out();
    }

    /// Requests decide what the recording is: a pty sets the terminal, an accepted shell or
    /// command opens the asciicast, an accepted sftp subsystem starts the SFTP observer.
    fn on_request(&mut self, at: chrono::DateTime<Utc>, request: &Request, accepted: Option<bool>) {
        match request {
            Request::Pty { term, cols, rows } if accepted != Some(false) => {
                self.pty = Some((term.clone(), *cols, *rows));
            }
            Request::WindowChange { cols, rows } => {
                if let Some(c) = self.cast.as_mut() {
                    c.writer.resize(at, *cols, *rows, &mut c.buf);
                }
            }
            Request::Shell if accepted == Some(true) => self.open_cast(at, None),
            Request::Exec { command }
                if accepted == Some(true)
                // File transfers are byte streams of a protocol, not something to replay on
                // a terminal: metadata only.
                && file_transfer_tool(command).is_none() =>
            {
                self.open_cast(at, Some(command.clone()));
            }
            Request::Subsystem { name } if accepted == Some(true) && name == "sftp" => {
                self.sftp = Some(SftpObserver::new());
            }
            _ => {}
        }
    }

    fn open_cast(&mut self, at: chrono::DateTime<Utc>, command: Option<String>) {
        if self.cast.is_some() || self.failed {
            return;
        }
        let (term, width, height) = match &self.pty {
            // A client without a real terminal (`ssh -tt < file`) asks for 0x0; players
            // need a size, so use the classic default.
            Some((t, c, r)) => (
                Some(t.clone()),
                if *c == 0 { 80 } else { *c },
                if *r == 0 { 24 } else { *r },
            ),
            None => (None, 80, 24),
        };
        let origin = self.builder.snapshot(at);
        let header = Header {
            width,
            height,
            timestamp: at,
            idle_time_limit: None,
            command,
            title: Some(format!(
                "{} as {} on {} ({})",
                origin.user, origin.login, origin.host, origin.session
            )),
            term,
            shell: None,
        };
        let keystrokes = if self.record_input {
            Keystrokes::Record
        } else {
            Keystrokes::Skip
        };
        let writer = CastWriter::new(header, Coalescing::default(), keystrokes);
        let opened = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&self.paths.cast);
        match opened {
            Ok(file) => {
                self.cast = Some(Cast {
                    buf: writer.header_line(),
                    writer,
                    file,
                    hasher: CastHasher::new(),
                    dirty: false,
                });
                // The header goes to disk at once: even a session that crashes in its first
                // second leaves a readable recording.
                self.write_out();
                self.sync();
            }
            Err(e) => self.fail(&format!("cannot create {}: {e}", self.paths.cast.display())),
        }
    }

    /// Write out lines the cast writer produced.
    fn write_out(&mut self) {
        if self.failed {
            return;
        }
        let Some(c) = self.cast.as_mut() else { return };
        if c.buf.is_empty() {
            return;
        }
        let result = c.file.write_all(c.buf.as_bytes());
        match result {
            Ok(()) => {
                c.hasher.update(c.buf.as_bytes());
                c.buf.clear();
                c.dirty = true;
            }
            Err(e) => {
                let msg = format!("cannot write {}: {e}", self.paths.cast.display());
                self.fail(&msg);
            }
        }
    }

    fn sync(&mut self) {
        if self.failed {
            return;
        }
        if let Some(c) = self.cast.as_mut() {
            if c.dirty {
                // Only when there is something to sync: `block_in_place` hands this worker's
                // other tasks to another thread, and doing that every second for every idle
                // recording kept a thread per session alive (bench/idle_memory.sh).
                if let Err(e) = on_disk(|| c.file.sync_data()) {
                    let msg = format!("cannot sync {}: {e}", self.paths.cast.display());
                    self.fail(&msg);
                    return;
                }
                if let Some(c) = self.cast.as_mut() {
                    c.dirty = false;
                }
            }
        }
    }

    /// Fail closed: the session cannot be recorded, so it ends.
    fn fail(&mut self, why: &str) {
        if self.failed {
            return;
        }
        self.failed = true;
        tracing::error!(recording = %self.name.as_str(), error = why, "recording failed; cutting the session");
        self.live.cut(
            "recording_failed",
            "latch cannot write this session's recording, so the session is closed (fail closed). Tell your latch administrator.".into(),
        );
    }

    fn write_partial(&self) -> std::io::Result<()> {
        let bytes = self
            .builder
            .snapshot(Utc::now())
            .to_bytes()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        write_file_atomically(&self.paths.partial, &bytes)
    }

    fn write_partial_or_fail(&mut self) {
        if self.failed {
            return;
        }
        if let Err(e) = self.write_partial() {
            let msg = format!("cannot write {}: {e}", self.paths.partial.display());
            self.fail(&msg);
        }
    }

    /// The channel is over: finish the cast, sign the manifest, record the seal.
    async fn seal(mut self) {
        let now = Utc::now();
        if let Some(s) = self.sftp.take() {
            let ops = s.finish(now);
            self.builder.sftp(ops);
        }
        let cause = self
            .live
            .cut_reason()
            .map(|c| c.cause.to_string())
            .unwrap_or_else(|| "closed".to_string());
        // Held until the seal is on disk and in the log (see `seal_gate`). The semaphore is
        // never closed, so acquiring cannot fail; if it did, sealing anyway is right.
        self.store.cuts.settled(SEAL_AFTER_CUTS_AT_MOST).await;
        let _turn = self.store.seal_gate.acquire().await;
        let cast_ref = match self.cast.take() {
            Some(mut c) => {
                let mut tail = std::mem::take(&mut c.buf);
                c.writer.finish(&mut tail);
                if !self.failed && c.file.write_all(tail.as_bytes()).is_ok() {
                    c.hasher.update(tail.as_bytes());
                }
                let _ = on_disk(|| c.file.sync_all());
                Some(c.hasher.finish(&self.name.cast_file()))
            }
            None => None,
        };
        let manifest = if self.failed {
            self.builder
                .finish_incomplete(now, "recording_failed", cast_ref)
        } else {
            self.builder.finish(now, &cause, cast_ref)
        };
        if let Err(e) = seal_and_record(&self.store, &self.broker, &self.paths, &manifest).await {
            tracing::error!(recording = %self.name.as_str(), error = %e, "could not seal a recording; it will be sealed as incomplete at the next start");
        }
    }
}

/// Sign a manifest, write it and its signature, drop the partial, and record the seal in
/// the event log.
pub(super) async fn seal_and_record(
    store: &RecordingStore,
    broker: &Arc<Broker>,
    paths: &RecordingPaths,
    manifest: &recorder::manifest::Manifest,
) -> Result<(), String> {
    let sealed = recorder::seal::seal(manifest, store.key()).map_err(|e| e.to_string())?;
    on_disk(|| -> std::io::Result<()> {
        write_file_atomically(&paths.signature, sealed.signature.as_bytes())?;
        // The manifest last: a manifest on disk means the recording is sealed.
        write_file_atomically(&paths.manifest, &sealed.manifest)?;
        let _ = std::fs::remove_file(&paths.partial);
        Ok(())
    })
    .map_err(|e| e.to_string())?;
    let session = manifest
        .session
        .parse()
        .unwrap_or(policy::session::SessionId(0));
    let event = Event::RecordingSealed {
        session,
        recording: manifest.name().as_str().to_string(),
        cast_sha256: manifest.cast.as_ref().map(|c| c.sha256.clone()),
        manifest_sha256: sealed.manifest_sha256,
        complete: manifest.complete,
    };
    broker
        .audit(policy::state::SYSTEM_ACTOR.to_string(), event)
        .await
        .map_err(|e| e.to_string())
}

/// Write `bytes` to `path` through a temporary file and a rename, fsynced, mode 0600.
pub(super) fn write_file_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}
