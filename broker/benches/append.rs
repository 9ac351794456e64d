//! The durable append rate: how many appends per second the event log sustains with an fsync
//! each, for one event per append (the command path) and for batches of 100.
//!
//! Measured, each append timed alone, in interleaved rounds so the disk's mood hits all alike:
//! - `raw write+fdatasync`: the baseline, a plain `write` of one log-sized line and
//!   `sync_data` on a file in the same directory. No log can append durably faster than this.
//! - `FileLog::append, 1 event`: encode, hash-chain, write, fsync one `requested` event.
//! - `FileLog::append, 100 events`: the same for a batch of 100 (one fsync).
//! - `Broker::execute, request`: the whole command path of `ssh bastion request` minus SSH
//!   (`execute_blocking`, which `execute` runs on the blocking pool): the policy decides
//!   (auto-approved role: `requested` + `approved`), the log appends and fsyncs, the state
//!   applies, subscribers are told.
//!
//! fsync on tmpfs costs nothing, so the directory must be on a real disk: `$LATCH_BENCH_DIR`,
//! else the system temporary directory; the file system is printed with the results.
//!
//! Run: `cargo bench -p latch --bench append` (about 5 s).

#[path = "../../policy/benches/support/mod.rs"]
mod support;

use chrono::Utc;
use latch::broker::Broker;
use latch::config_file::{ConfigSource, LoadedConfig};
use latch::eventlog::{EventStore, FileLog};
use policy::event::Event;
use policy::state::RequestArgs;
use std::io::Write as _;
use std::time::{Duration, Instant};
use support::{Rng, Summary, World};

const ROUNDS: usize = 5;
/// Appends per round for the single-event cases, and batches per round for the batch case.
const SINGLES: usize = 400;
const BATCHES: usize = 40;
const BATCH: usize = 100;

fn main() {
    let world = World::new();
    let base = support::bench_dir();
    let dir = tempfile::Builder::new()
        .prefix("latch-bench-append-")
        .tempdir_in(&base)
        .expect("a temporary directory");
    println!("append benchmark: {}", support::machine());
    println!(
        "directory: {} ({})",
        dir.path().display(),
        support::file_system_of(&base)
    );

    let mut rng = Rng::new(3);
    let events: Vec<Event> = (1..=(SINGLES * ROUNDS + BATCHES * BATCH * ROUNDS) as u64 + 1)
        .map(|id| Event::Requested(support::request_event(&world, &mut rng, id, support::now()).1))
        .collect();
    let mut events = events.into_iter();

    let (mut single_log, _) =
        FileLog::<Event>::open(&dir.path().join("single"), |_| Ok(())).expect("open a log");
    let (mut batch_log, _) =
        FileLog::<Event>::open(&dir.path().join("batch"), |_| Ok(())).expect("open a log");
    // One line as the log writes it, for the raw baseline's write size.
    let first = events.next().expect("events");
    single_log
        .append("u0001", Utc::now(), std::slice::from_ref(&first))
        .expect("append");
    let line_len = std::fs::read(single_log.path()).map_or(400, |b| b.len());
    let line = vec![b'x'; line_len - 1]
        .into_iter()
        .chain([b'\n'])
        .collect::<Vec<u8>>();
    let mut raw = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join("raw.log"))
        .expect("open the raw file");

    let config = LoadedConfig {
        settings: world.settings.clone(),
        source: ConfigSource::File(dir.path().join("latch.toml")),
        text: world.toml.clone(),
        state_dir: dir.path().join("broker"),
    };
    let (broker, _) = Broker::open(&config).expect("open a broker");
    // A user who may request an auto-approved role, so each command commits at once.
    let (user, role) = world
        .can_request
        .iter()
        .enumerate()
        .find_map(|(u, roles)| {
            roles
                .iter()
                .map(|&r| &world.roles[r])
                .find(|r| r.name.starts_with("test-"))
                .map(|r| (world.users[u].clone(), r.clone()))
        })
        .expect("someone may request an auto-approved role");

    let mut raw_samples = Vec::new();
    let mut single_samples = Vec::new();
    let mut batch_samples = Vec::new();
    let mut command_samples = Vec::new();
    let mut wall = [Duration::ZERO; 4];
    let contention = support::Contention::start();
    for _ in 0..ROUNDS {
        let round = Instant::now();
        for _ in 0..SINGLES {
            let start = Instant::now();
            raw.write_all(&line).expect("write");
            raw.sync_data().expect("fdatasync");
            raw_samples.push(start.elapsed());
        }
        wall[0] += round.elapsed();

        let round = Instant::now();
        for _ in 0..SINGLES {
            let event = [events.next().expect("enough events")];
            let start = Instant::now();
            single_log
                .append("u0001", Utc::now(), &event)
                .expect("append");
            single_samples.push(start.elapsed());
        }
        wall[1] += round.elapsed();

        let round = Instant::now();
        for _ in 0..BATCHES {
            let batch: Vec<Event> = events.by_ref().take(BATCH).collect();
            let start = Instant::now();
            batch_log
                .append("latch", Utc::now(), &batch)
                .expect("append");
            batch_samples.push(start.elapsed());
        }
        wall[2] += round.elapsed();

        let round = Instant::now();
        for _ in 0..SINGLES {
            let args = RequestArgs {
                role: role.name.clone(),
                hosts: role.hosts.clone(),
                duration: Some("1h".into()),
                reason: Some("bench".into()),
                ..RequestArgs::default()
            };
            let actor = user.clone();
            let start = Instant::now();
            broker
                .execute_blocking(&user, move |state, settings, now| {
                    state.request(settings, &actor, &args, now)
                })
                .expect("the request commits");
            command_samples.push(start.elapsed());
        }
        wall[3] += round.elapsed();
    }

    println!("{}", contention.line());
    println!();
    println!("each append timed alone ({ROUNDS} interleaved rounds):");
    let raw = Summary::new(raw_samples);
    let baseline = raw.median();
    for (i, (label, samples, events_each)) in [
        ("raw write+fdatasync (baseline)", raw, 1),
        ("FileLog::append, 1 event", Summary::new(single_samples), 1),
        (
            "FileLog::append, 100 events",
            Summary::new(batch_samples),
            BATCH,
        ),
        (
            "Broker::execute, request (2 events)",
            Summary::new(command_samples),
            2,
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let per_second = samples.len() as f64 / wall[i].as_secs_f64();
        println!("{}", samples.line(label));
        println!(
            "{:<44} {:>8.0} appends/s  {:>9.0} events/s  p50 {:.2}x baseline",
            "",
            per_second,
            per_second * events_each as f64,
            samples.median().as_secs_f64() / baseline.as_secs_f64()
        );
    }
    println!();
    println!(
        "appends/s is appends divided by the wall time of their rounds, one after another on \
         one thread; one line is {line_len} bytes."
    );
}
