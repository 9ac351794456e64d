//! The authorization decision with 100,000 grants in the projection.
//!
//! Target (issue): `State::authorize` p99 at most 20 µs with 100k grants, on a 2-core machine.
//!
//! Every call is timed on its own (`Instant` around one call, the decision's drop included),
//! so the tail is real and not an average. The same questions are asked of four projections,
//! in interleaved rounds so a noisy moment hits all of them alike:
//! - `empty`: no grants at all. The baseline: what the decision costs without the projection.
//! - `history`: 100k grants (`Requested` + `Approved`) requested over the last 30 days, and
//!   the `Expired` events the timer writes for those already due. The steady state.
//! - `10k-open`: the same, with expiries applied to all but the newest 10,000 grants: ~10
//!   open grants per user.
//! - `100k-open`: the same 100k grants with no expiries applied (the construction):
//!   every user holds ~100 open grants in the index the decision walks. A broker replaying
//!   before its timer caught up looks like this; it is the worst case for the per-user index.
//!
//! Run: `cargo bench -p latch-policy --bench decision` (about 45 s).

mod support;

use chrono::{DateTime, Duration as Span, Utc};
use policy::event::Event;
use policy::{Decision, Settings, State};
use std::hint::black_box;
use std::time::{Duration, Instant};
use support::{show, verdict, Rng, Summary, World};

const GRANTS: u64 = 100_000;
/// Questions per projection and query set, split over `ROUNDS` interleaved rounds.
const QUERIES: usize = 200_000;
const ROUNDS: usize = 10;
const TARGET_P99: Duration = Duration::from_micros(20);

struct Projection {
    name: &'static str,
    state: State,
}

/// One question: (user, login, host).
type Query = (String, String, String);

fn main() {
    let world = World::new();
    let settings = &world.settings;
    let now = support::now();
    println!("decision benchmark: {}", support::machine());
    println!(
        "world: {} users, {} roles, {} hosts; now = {now}",
        settings.users.len(),
        settings.roles.len(),
        settings.hosts.len()
    );

    let started = Instant::now();
    let events = grant_events(&world, now);
    let mut all_open = State::new();
    for (event, at, actor) in &events {
        all_open
            .apply(event, *at, actor)
            .unwrap_or_else(|e| panic!("{event:?} does not apply: {e}"));
    }
    let built = started.elapsed();
    // The timer's expiries, oldest first; applying a prefix of them leaves the newest open.
    let due = all_open.due(now);
    let not_due = all_open.len() - due.len();
    let expire = |count: usize| {
        let mut state = all_open.clone();
        for event in &due[..count] {
            state
                .apply(event, now, policy::state::SYSTEM_ACTOR)
                .expect("due expiries apply");
        }
        state
    };
    let history = expire(due.len());
    let ten_k_open = expire(due.len() - (10_000 - not_due));
    println!(
        "applied {} events (100k Requested + Approved) in {} ({:.0} events/s); {} grants; \
         history: {} more Expired events leave {} grants open",
        events.len(),
        show(built),
        events.len() as f64 / built.as_secs_f64(),
        all_open.len(),
        due.len(),
        history.grants().filter(|g| !g.status.is_final()).count(),
    );
    let projections = [
        Projection {
            name: "empty",
            state: State::new(),
        },
        Projection {
            name: "history",
            state: history,
        },
        Projection {
            name: "10k-open",
            state: ten_k_open,
        },
        Projection {
            name: "100k-open",
            state: all_open,
        },
    ];

    let mut rng = Rng::new(7);
    let random: Vec<Query> = (0..QUERIES)
        .map(|_| {
            (
                world.users[rng.below(world.users.len())].clone(),
                support::LOGINS[rng.below(support::LOGINS.len())].to_string(),
                world.hosts[rng.below(world.hosts.len())].clone(),
            )
        })
        .collect();
    let allowed = allow_queries(&world, &projections[1].state, now, &mut rng);
    println!(
        "queries: {} random (user, login, host) triples; {} built from grants active at now",
        random.len(),
        allowed.len()
    );
    println!(
        "timer overhead (Instant::now twice, nothing between): {}",
        {
            let s = Summary::new((0..100_000).map(|_| Instant::now().elapsed()).collect());
            format!("p50 {}, p99 {}", show(s.median()), show(s.quantile(0.99)))
        }
    );

    // Warm caches and branch predictors on every projection before measuring.
    for p in &projections {
        for q in random.iter().take(20_000) {
            black_box(p.state.authorize(settings, &q.0, &q.1, &q.2, now));
        }
    }

    let contention = support::Contention::start();
    println!();
    println!("State::authorize, each call timed alone:");
    let mut verdicts = Vec::new();
    for (set_name, queries) in [("random", &random), ("allow", &allowed)] {
        let mut per: Vec<(Vec<Duration>, Vec<Duration>)> = projections
            .iter()
            .map(|_| (Vec::new(), Vec::new()))
            .collect();
        let chunk = queries.len().div_ceil(ROUNDS);
        for round in queries.chunks(chunk) {
            for (p, (allows, denies)) in projections.iter().zip(per.iter_mut()) {
                time_authorize(&p.state, settings, round, now, allows, denies);
            }
        }
        let mut baseline = None;
        for (p, (allows, denies)) in projections.iter().zip(per) {
            let all: Vec<Duration> = allows.iter().chain(&denies).copied().collect();
            let share = allows.len() as f64 * 100.0 / all.len() as f64;
            let summary = Summary::new(all);
            let ratio = match baseline {
                None => {
                    baseline = Some(summary.median());
                    String::from("(baseline)")
                }
                Some(b) => format!(
                    "p50 {:.2}x empty",
                    summary.median().as_secs_f64() / b.as_secs_f64()
                ),
            };
            println!(
                "{}  {ratio}",
                summary.line(&format!(
                    "{set_name:>6} / {:<9} ({share:.0}% allow)",
                    p.name
                ))
            );
            if p.name != "empty" {
                verdicts.push((set_name, p.name, summary.quantile(0.99)));
                for (kind, samples) in [("allow", allows), ("deny", denies)] {
                    if !samples.is_empty() && share > 0.5 && share < 99.5 {
                        println!(
                            "{}",
                            Summary::new(samples).line(&format!("         {kind} only"))
                        );
                    }
                }
            }
        }
    }

    println!();
    println!("State::reachable (the `hosts` command), each call timed alone:");
    let sample_users: Vec<&String> = (0..2_000)
        .map(|_| &world.users[rng.below(world.users.len())])
        .collect();
    for p in &projections {
        let samples: Vec<Duration> = sample_users
            .iter()
            .map(|user| {
                let start = Instant::now();
                black_box(p.state.reachable(settings, user, now));
                start.elapsed()
            })
            .collect();
        println!(
            "{}",
            Summary::new(samples).line(&format!("reachable / {}", p.name))
        );
    }

    println!();
    println!("State::next_deadline (the timer), each call timed alone and 1M calls in a loop:");
    for p in &projections {
        let samples: Vec<Duration> = (0..100_000)
            .map(|_| {
                let start = Instant::now();
                black_box(black_box(&p.state).next_deadline());
                start.elapsed()
            })
            .collect();
        let start = Instant::now();
        for _ in 0..1_000_000 {
            black_box(black_box(&p.state).next_deadline());
        }
        let mean = start.elapsed() / 1_000_000;
        println!(
            "{}  loop mean {}",
            Summary::new(samples).line(&format!("next_deadline / {}", p.name)),
            show(mean)
        );
    }

    println!();
    println!("{}", contention.line());
    println!(
        "target: authorize p99 <= {} with 100k grants in the projection:",
        show(TARGET_P99)
    );
    for (set_name, projection, p99) in verdicts {
        println!(
            "  {set_name:>6} / {projection:<9}  p99 {:>9}  {}",
            show(p99),
            verdict(p99 <= TARGET_P99)
        );
    }
}

fn time_authorize(
    state: &State,
    settings: &Settings,
    queries: &[Query],
    now: DateTime<Utc>,
    allows: &mut Vec<Duration>,
    denies: &mut Vec<Duration>,
) {
    for (user, login, host) in queries {
        let start = Instant::now();
        let allowed = matches!(
            black_box(state.authorize(settings, user, login, host, now)),
            Decision::Allow { .. }
        );
        let elapsed = start.elapsed();
        if allowed {
            allows.push(elapsed);
        } else {
            denies.push(elapsed);
        }
    }
}

/// 100k grants: `Requested` at a time spread over the 30 days before `now`, `Approved` five
/// minutes later, in time order, as the log would hold them.
fn grant_events(world: &World, now: DateTime<Utc>) -> Vec<(Event, DateTime<Utc>, String)> {
    let mut rng = Rng::new(42);
    let window = Span::days(30).num_seconds();
    let mut times: Vec<i64> = (0..GRANTS)
        .map(|_| rng.below(window as usize) as i64)
        .collect();
    times.sort_unstable();
    let mut events = Vec::with_capacity(2 * GRANTS as usize);
    for (i, offset) in times.into_iter().enumerate() {
        let at = now - Span::seconds(window) + Span::seconds(offset);
        let (actor, requested) = support::request_event(world, &mut rng, i as u64 + 1, at);
        let approved_at = at + Span::minutes(5);
        let (by, approved) = support::approve_event(world, &mut rng, &requested, approved_at);
        events.push((Event::Requested(requested), at, actor));
        events.push((Event::Approved(approved), approved_at, by));
    }
    events
}

/// Questions that should be allowed: for each grant active at `now`, a host it reaches and a
/// login of its role; checked once, untimed.
fn allow_queries(world: &World, state: &State, now: DateTime<Utc>, rng: &mut Rng) -> Vec<Query> {
    let mut base = Vec::new();
    for grant in state.grants().filter(|g| g.is_active(now)) {
        let Some(role) = world.roles.iter().find(|r| r.name == grant.role) else {
            continue;
        };
        let Some(host) = role.members.iter().find(|h| grant.covers_host(h)) else {
            continue;
        };
        let login = &role.logins[rng.below(role.logins.len())];
        let q = (grant.user.clone(), login.clone(), host.clone());
        assert!(
            matches!(
                state.authorize(&world.settings, &q.0, &q.1, &q.2, now),
                Decision::Allow { .. }
            ),
            "{q:?} should be allowed"
        );
        base.push(q);
    }
    assert!(!base.is_empty(), "some grants are active at now");
    (0..QUERIES)
        .map(|_| base[rng.below(base.len())].clone())
        .collect()
}
