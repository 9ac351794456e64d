//! Start-up replay of a 1,000,000-event log.
//!
//! Target (issue): opening a state directory whose log holds 1M events takes at most 3 s.
//!
//! The log is written through the real `FileLog` (`EventStore::append`, batches of 1,000, each
//! fsynced), with events a year of use would leave: about a third `requested`, then `approved`,
//! `expired` (grants running out and requests timing out), `revoked`, `denied`, `cancelled`
//! and `auth_rejected`. Every line of a batch shares the batch's actor and time; that changes
//! nothing a replay does per line (same fields, same formats).
//!
//! The timed operation is `Broker::open`, the real start-up path: lock, stream the file,
//! check every line's hash and chain, decode the event, `State::apply` it, then append the
//! `broker_started` record. It runs in a new process each time (the benchmark starts itself
//! as a child), because that is what a start is: the heap grows from nothing, and its page
//! faults count. Five runs, the median is the figure. Measured in the same runs, as
//! baselines that say where the time goes:
//! - `read lines`: reading the file line by line into one buffer (the I/O floor);
//! - `audit verify`: `eventlog::verify`, the chain check (JSON parse with the event skipped,
//!   SHA-256 of each line, the time parsed) without decoding events or applying them;
//! - `apply only`: `State::apply` of the same events from memory (the projection alone);
//! - `open in this process`: `Broker::open` again in the benchmark's own, already grown heap.
//!
//! The child also reports its CPU time (all threads, and the main thread that decodes and
//! applies), which a busy machine inflates much less than the wall time.
//!
//! The log stays in the page cache (it was just written): this measures CPU, not the disk.
//! `LATCH_BENCH_KEEP=1` keeps the state directory, to profile one open:
//! `LATCH_BENCH_REPLAY_CHILD=DIR/latch-data perf record -g target/release/deps/replay-HASH`.
//!
//! Run: `cargo bench -p latch --bench replay` (about 1.5 minutes on an idle machine; writes
//! ~0.4 GB to `$LATCH_BENCH_DIR` or the system temporary directory, removed afterwards).

#[path = "../../policy/benches/support/mod.rs"]
mod support;

use chrono::{DateTime, Duration as Span, Utc};
use latch::broker::Broker;
use latch::config_file::{ConfigSource, LoadedConfig};
use latch::eventlog::{EventStore, FileLog, LOG_FILE};
use policy::event::Event;
use policy::State;
use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::io::BufRead;
use std::path::Path;
use std::time::{Duration, Instant};
use support::{show, verdict, Rng, World};

const EVENTS: u64 = 1_000_000;
const BATCH: usize = 1_000;
const RUNS: usize = 5;
const TARGET: Duration = Duration::from_secs(3);
/// Seconds between two requests: 1M events are about 333k requests, so about a year.
const REQUEST_GAP_SECS: i64 = 95;

/// Set (to the state directory) in the child processes the benchmark starts for each open.
const CHILD_ENV: &str = "LATCH_BENCH_REPLAY_CHILD";

fn main() {
    let world = World::new();
    if let Some(state_dir) = std::env::var_os(CHILD_ENV) {
        return child(&world, Path::new(&state_dir));
    }
    let base = support::bench_dir();
    let dir = tempfile::Builder::new()
        .prefix("latch-bench-replay-")
        .tempdir_in(&base)
        .expect("a temporary directory for the state");
    let state_dir = dir.path().join("latch-data");
    println!("replay benchmark: {}", support::machine());
    println!(
        "state directory: {} ({})",
        state_dir.display(),
        support::file_system_of(&base)
    );

    let started = Instant::now();
    let (in_memory, mix) = write_log(&world, &state_dir);
    let written = started.elapsed();
    let log_path = state_dir.join(LOG_FILE);
    let bytes = std::fs::metadata(&log_path).map_or(0, |m| m.len());
    println!(
        "wrote {} events ({} MB, {} bytes/line) in {} through FileLog::append, batches of {BATCH}",
        in_memory.len(),
        bytes / 1_000_000,
        bytes / in_memory.len() as u64,
        show(written)
    );
    let mut mix: Vec<(&str, u64)> = mix.into_iter().collect();
    mix.sort_by_key(|&(kind, n)| (std::cmp::Reverse(n), kind));
    let mix: Vec<String> = mix
        .iter()
        .map(|(kind, n)| format!("{kind} {:.1}%", *n as f64 * 100.0 / EVENTS as f64))
        .collect();
    println!("mix: {}", mix.join(", "));

    let config = LoadedConfig {
        settings: world.settings.clone(),
        source: ConfigSource::File(dir.path().join("latch.toml")),
        text: world.toml.clone(),
        state_dir: state_dir.clone(),
    };

    let mut read = Vec::new();
    let mut verify = Vec::new();
    let mut apply = Vec::new();
    let contention = support::Contention::start();
    let mut warm = Vec::new();
    let mut opens = Vec::new();
    let mut cpu = Vec::new();
    let mut main_thread = Vec::new();
    let mut replayed = (0, 0);
    for run in 1..=RUNS {
        read.push(read_lines(&log_path));
        verify.push(audit_verify(&log_path));
        apply.push(apply_only(&in_memory));
        warm.push(open(&config).0);
        let child = open_in_child(&state_dir);
        println!(
            "run {run}: read {}  verify {}  apply {}  open in this process {}  \
             open in a new process {}\n       the new process: CPU user {} + system {}, of which \
             main thread {}; {} events, {} grants, peak RSS {} MB, {} page faults",
            show(read[run - 1]),
            show(verify[run - 1]),
            show(apply[run - 1]),
            show(warm[run - 1]),
            show(child.elapsed),
            show(child.user),
            show(child.system),
            show(child.main_thread),
            child.events,
            child.grants,
            child.peak_mb,
            child.faults
        );
        opens.push(child.elapsed);
        cpu.push(child.user + child.system);
        main_thread.push(child.main_thread);
        replayed = (child.events, child.grants);
    }

    println!("{}", contention.line());
    println!();
    println!("medians of {RUNS} runs:");
    let open_median = support::median(&opens);
    let per_second = |d: Duration| replayed.0 as f64 / d.as_secs_f64();
    for (label, runs) in [
        ("read lines (I/O floor)", &read),
        ("audit verify (hash chain + JSON)", &verify),
        ("State::apply only (from memory)", &apply),
        ("Broker::open, in this process", &warm),
        ("Broker::open, new process (start-up)", &opens),
        ("  its CPU time, all threads", &cpu),
        ("  its CPU time, main thread", &main_thread),
    ] {
        let m = support::median(runs);
        let (min, max) = (runs.iter().min().unwrap(), runs.iter().max().unwrap());
        println!(
            "  {label:<38} {:>9}  {:>6.2} M events/s  {:>5.0}% of open   (min {}, max {})",
            show(m),
            per_second(m) / 1e6,
            m.as_secs_f64() * 100.0 / open_median.as_secs_f64(),
            show(*min),
            show(*max)
        );
    }
    println!(
        "  open per event: {} (verify {} + apply {} = {} if nothing else)",
        show(open_median / replayed.0 as u32),
        show(support::median(&verify) / replayed.0 as u32),
        show(support::median(&apply) / replayed.0 as u32),
        show((support::median(&verify) + support::median(&apply)) / replayed.0 as u32),
    );
    if std::env::var_os("LATCH_BENCH_KEEP").is_some() {
        println!("kept (LATCH_BENCH_KEEP): {}", dir.keep().display());
    }
    println!();
    println!(
        "target: replay of 1M events at most {}: {} (median open {}, {} grants)",
        show(TARGET),
        verdict(open_median <= TARGET),
        show(open_median),
        replayed.1
    );
}

/// One event in the log, with the batch actor and time it was written under.
type Logged = (Event, DateTime<Utc>, String);

/// Writes `EVENTS` events through `FileLog::append` and returns them (for the apply-only
/// baseline) with the count of each kind.
fn write_log(world: &World, state_dir: &Path) -> (Vec<Logged>, HashMap<&'static str, u64>) {
    let (mut log, _) = FileLog::<Event>::open(state_dir, |_| Ok(())).expect("open a new log");
    let mut rng = Rng::new(1);
    let start = support::now() - Span::days(365);
    // Follow-up events by the request step at which they fall due.
    let mut scheduled: BTreeMap<(u64, u64), (String, Event)> = BTreeMap::new();
    let mut seq = 0u64;
    let mut out: Vec<Logged> = Vec::with_capacity(EVENTS as usize);
    let mut mix: HashMap<&'static str, u64> = HashMap::new();
    let mut batch: Vec<Event> = Vec::with_capacity(BATCH);
    let mut batch_actor = String::new();
    let mut batch_time = start;
    let mut flush =
        |batch: &mut Vec<Event>, actor: &str, time: DateTime<Utc>, out: &mut Vec<Logged>| {
            if batch.is_empty() {
                return;
            }
            let records = log.append(actor, time, batch).expect("append a batch");
            for record in records {
                out.push((record.event, record.time, record.actor));
            }
            batch.clear();
        };
    let step_time = |step: u64| start + Span::seconds(step as i64 * REQUEST_GAP_SECS);
    let steps_for = |span: Span| (span.num_seconds() / REQUEST_GAP_SECS + 1) as u64;

    let mut step = 0u64;
    let mut emitted = 0u64;
    while emitted < EVENTS {
        step += 1;
        let now = step_time(step);
        let mut ready: Vec<(String, Event)> = Vec::new();
        while let Some(entry) = scheduled.first_entry() {
            if entry.key().0 > step {
                break;
            }
            ready.push(entry.remove());
        }
        let (requester, requested) = support::request_event(world, &mut rng, step, now);
        ready.push((requester.clone(), Event::Requested(requested.clone())));
        if rng.percent(29) {
            ready.push((
                "latch".into(),
                Event::AuthRejected {
                    fingerprint: format!("SHA256:{:043x}", rng.next()),
                    source: format!(
                        "203.0.113.{}:{}",
                        rng.below(254) + 1,
                        30_000 + rng.below(30_000)
                    ),
                    login: support::LOGINS[rng.below(support::LOGINS.len())].to_string(),
                },
            ));
        }
        // What becomes of this request, scheduled at the step it happens.
        let id = requested.id;
        let mut schedule = |at_step: u64, actor: String, event: Event| {
            seq += 1;
            scheduled.insert((at_step, seq), (actor, event));
        };
        let fate = rng.below(100);
        if fate < 75 {
            let approve_step = step + 1 + rng.below(10) as u64;
            let (by, approved) =
                support::approve_event(world, &mut rng, &requested, step_time(approve_step));
            let expires_at = approved.expires_at;
            let duration = approved.duration;
            schedule(approve_step, by.clone(), Event::Approved(approved));
            let end = rng.below(100);
            if end < 85 {
                let at = approve_step + steps_for(duration);
                schedule(
                    at,
                    "latch".into(),
                    Event::Expired {
                        id,
                        due: expires_at,
                    },
                );
            } else if end < 95 {
                let at = approve_step + steps_for(duration / 2);
                let reason = rng.percent(50).then(|| "done early".to_string());
                schedule(
                    at,
                    requester.clone(),
                    Event::Revoked {
                        id,
                        by: requester.clone(),
                        reason,
                    },
                );
            } // else: still open when the log ends, or never expired by this log.
        } else if fate < 85 {
            let by = world.approvers[rng.below(world.approvers.len())].clone();
            let denied = Event::Denied {
                id,
                by: by.clone(),
                reason: "not during the freeze; ask again on Monday".into(),
            };
            schedule(step + 1 + rng.below(10) as u64, by, denied);
        } else if fate < 90 {
            let cancelled = Event::Cancelled {
                id,
                by: requester.clone(),
            };
            schedule(step + 1 + rng.below(5) as u64, requester, cancelled);
        } else {
            let due = requested.approval_deadline;
            let at = step + steps_for(Span::hours(24));
            schedule(at, "latch".into(), Event::Expired { id, due });
        }

        for (actor, event) in ready {
            if emitted == EVENTS {
                break;
            }
            if batch.is_empty() {
                batch_actor = actor;
            }
            batch_time = now;
            *mix.entry(event.kind()).or_default() += 1;
            batch.push(event);
            emitted += 1;
            if batch.len() == BATCH {
                flush(&mut batch, &batch_actor, batch_time, &mut out);
            }
        }
    }
    flush(&mut batch, &batch_actor, batch_time, &mut out);
    (out, mix)
}

/// What a child process reported.
struct Child {
    elapsed: Duration,
    events: u64,
    grants: usize,
    /// Peak resident memory, MB.
    peak_mb: u64,
    /// Minor page faults of the whole process.
    faults: u64,
    /// CPU time of the open in user and system mode, all threads, 10 ms resolution.
    user: Duration,
    system: Duration,
    /// CPU time (user + system) of the main thread alone: decoding and applying.
    main_thread: Duration,
}

/// (user, system) clock ticks (100 per second on Linux) of `/proc/self` (every thread) or
/// `/proc/thread-self` (the calling thread).
fn cpu_ticks(of: &str) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("{of}/stat")).unwrap_or_default();
    let fields: Vec<u64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|v| v.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    match fields.as_slice() {
        [user, system] => (*user, *system),
        _ => (0, 0),
    }
}

/// Peak resident set (kB, `VmHWM`) and minor page faults so far, from `/proc/self`.
fn memory_use() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let peak = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    // Field 10 of /proc/self/stat, counted after the `(comm)` field, which may hold spaces.
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let faults = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(7))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (peak, faults)
}

/// The child's work: open once, print `nanos events grants`, exit without tearing down.
fn child(world: &World, state_dir: &Path) {
    let config = LoadedConfig {
        settings: world.settings.clone(),
        source: ConfigSource::File(state_dir.join("latch.toml")),
        text: world.toml.clone(),
        state_dir: state_dir.to_path_buf(),
    };
    let (user0, system0) = cpu_ticks("/proc/self");
    let (main_user0, main_system0) = cpu_ticks("/proc/thread-self");
    let start = Instant::now();
    let (broker, report) = Broker::open(&config).expect("the generated log opens");
    let elapsed = start.elapsed();
    let (user1, system1) = cpu_ticks("/proc/self");
    let (main_user1, main_system1) = cpu_ticks("/proc/thread-self");
    let (peak_kb, faults) = memory_use();
    // In milliseconds: user and system time of all threads, and of the main thread (which
    // decodes and applies; the log's reader thread hashes).
    let ms = |ticks: u64| ticks * 10;
    println!(
        "{} {} {} {peak_kb} {faults} {} {} {}",
        elapsed.as_nanos(),
        report.events,
        report.grants,
        ms(user1 - user0),
        ms(system1 - system0),
        ms(main_user1 + main_system1 - main_user0 - main_system0),
    );
    // Tearing down a million-event projection is not part of starting up.
    std::mem::forget(broker);
    std::process::exit(0);
}

/// `Broker::open` in a fresh process, as `latch serve` does it: its heap starts empty, so the
/// page faults of growing it are in the figure.
fn open_in_child(state_dir: &Path) -> Child {
    let exe = std::env::current_exe().expect("the benchmark's own path");
    let out = std::process::Command::new(exe)
        .env(CHILD_ENV, state_dir)
        .output()
        .expect("run the child");
    let text = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<&str> = text.split_whitespace().collect();
    match (out.status.success(), fields.as_slice()) {
        (true, [nanos, events, grants, peak_kb, faults, user_ms, system_ms, main_ms]) => Child {
            elapsed: Duration::from_nanos(nanos.parse().expect("nanos")),
            events: events.parse().expect("events"),
            grants: grants.parse().expect("grants"),
            peak_mb: peak_kb.parse::<u64>().expect("peak") / 1024,
            faults: faults.parse().expect("faults"),
            user: Duration::from_millis(user_ms.parse().expect("user")),
            system: Duration::from_millis(system_ms.parse().expect("system")),
            main_thread: Duration::from_millis(main_ms.parse().expect("main")),
        },
        _ => panic!(
            "the child failed: {}\n{text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// The real start-up path; returns the time, the events replayed and the grants built. The
/// broker (and its projection) is dropped after the clock stops.
fn open(config: &LoadedConfig) -> (Duration, u64, usize) {
    let start = Instant::now();
    let (broker, report) = Broker::open(config).expect("the generated log opens");
    let elapsed = start.elapsed();
    drop(broker);
    (elapsed, report.events, report.grants)
}

fn read_lines(path: &Path) -> Duration {
    let start = Instant::now();
    let file = std::fs::File::open(path).expect("open the log");
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut buf = Vec::with_capacity(4096);
    let mut lines = 0u64;
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf).expect("read the log") == 0 {
            break;
        }
        lines += 1;
    }
    black_box(lines);
    start.elapsed()
}

fn audit_verify(path: &Path) -> Duration {
    let start = Instant::now();
    let report = latch::eventlog::verify(path).expect("verify the log");
    let elapsed = start.elapsed();
    assert!(report.is_intact(), "{report}");
    elapsed
}

fn apply_only(events: &[Logged]) -> Duration {
    let start = Instant::now();
    let mut state = State::new();
    for (event, at, actor) in events {
        state
            .apply(event, *at, actor)
            .expect("generated events apply");
    }
    let elapsed = start.elapsed();
    drop(black_box(state));
    elapsed
}
