//! Playback timing: when to show each event of a recording.
//!
//! `replay SESSION [--speed X] [--idle-limit S]` streams a recording as it happened.
//! [`schedule`] turns the events into steps, each with the pause to take before it:
//! the gap since the previous event, shortened to the idle limit (a session left open
//! over lunch should not replay the lunch) and divided by the speed. The caller sleeps
//! and prints; this module only computes.

use crate::cast::{Event, Recording};
use std::time::Duration;

/// Why a replay cannot be scheduled.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The speed is zero, negative, or not a number.
    #[error(
        "speed {speed} is not a positive number: use 1 for real time, 2 for twice as \
         fast, 0.5 for half speed"
    )]
    Speed {
        /// The speed given.
        speed: f64,
    },
}

/// One event and the pause to take before showing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step<'a> {
    /// How long to wait after the previous step (after the start, for the first).
    pub delay: Duration,
    /// The event to show. Every kind is returned, markers and input too, so that the
    /// caller decides what to show; only output is what the terminal showed.
    pub event: &'a Event,
}

/// The steps of a replay, in order; see [`schedule`].
#[derive(Debug, Clone)]
pub struct Schedule<'a> {
    /// The events not played yet.
    events: std::slice::Iter<'a, Event>,
    /// The time of the latest event played, in recording time.
    previous: Duration,
    /// Playback speed, checked positive and finite.
    speed: f64,
    /// The longest pause, in recording time, before the speed divides it.
    idle_limit: Option<Duration>,
}

/// Schedules `recording` for playback at `speed` (1.0 is real time), with pauses cut to
/// `idle_limit`, or to the recording's own `idle_time_limit` when `idle_limit` is `None`.
///
/// The limit applies to recording time, before the speed divides it, as in asciinema.
/// An event earlier than the one before it (possible only in a foreign file) gets no
/// pause.
pub fn schedule(
    recording: &Recording,
    speed: f64,
    idle_limit: Option<Duration>,
) -> Result<Schedule<'_>, ReplayError> {
    if !(speed.is_finite() && speed > 0.0) {
        return Err(ReplayError::Speed { speed });
    }
    Ok(Schedule {
        events: recording.events.iter(),
        previous: Duration::ZERO,
        speed,
        idle_limit: idle_limit.or(recording.header.idle_time_limit),
    })
}

impl<'a> Iterator for Schedule<'a> {
    type Item = Step<'a>;

    fn next(&mut self) -> Option<Step<'a>> {
        let event = self.events.next()?;
        let mut gap = event.time.saturating_sub(self.previous);
        self.previous = self.previous.max(event.time);
        if let Some(limit) = self.idle_limit {
            gap = gap.min(limit);
        }
        let delay = if self.speed == 1.0 {
            gap
        } else {
            // A very slow speed can ask for more than a Duration holds: wait "forever".
            Duration::try_from_secs_f64(gap.as_secs_f64() / self.speed).unwrap_or(Duration::MAX)
        };
        Some(Step { delay, event })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.events.size_hint()
    }
}

impl ExactSizeIterator for Schedule<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cast::{EventKind, Header};
    use chrono::{TimeZone, Utc};

    fn recording(times_ms: &[u64], idle_time_limit: Option<Duration>) -> Recording {
        Recording {
            header: Header {
                width: 80,
                height: 24,
                timestamp: Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap(),
                idle_time_limit,
                command: None,
                title: None,
                term: None,
                shell: None,
            },
            events: times_ms
                .iter()
                .map(|&ms| Event {
                    time: Duration::from_millis(ms),
                    kind: EventKind::Output(format!("at {ms}")),
                })
                .collect(),
            truncated: false,
        }
    }

    fn delays_ms(recording: &Recording, speed: f64, idle_limit: Option<Duration>) -> Vec<u128> {
        schedule(recording, speed, idle_limit)
            .unwrap()
            .map(|step| step.delay.as_millis())
            .collect()
    }

    const SECOND: Option<Duration> = Some(Duration::from_secs(1));

    #[test]
    fn delays_are_gaps_capped_then_divided_by_speed() {
        /// Delays in ms for events at these times, at a speed and idle limits.
        struct Case {
            speed: f64,
            limit: Option<Duration>,
            header_limit: Option<Duration>,
            delays: [u128; 4],
        }
        let case = |speed, limit, header_limit, delays| Case {
            speed,
            limit,
            header_limit,
            delays,
        };
        let times = [100, 300, 5_300, 5_400];
        let cases = [
            case(1.0, None, None, [100, 200, 5_000, 100]),
            case(2.0, None, None, [50, 100, 2_500, 50]),
            case(0.5, None, None, [200, 400, 10_000, 200]),
            case(1.0, SECOND, None, [100, 200, 1_000, 100]),
            case(4.0, SECOND, None, [25, 50, 250, 25]),
            // The header's limit applies when none is given, and a given one wins.
            case(1.0, None, SECOND, [100, 200, 1_000, 100]),
            case(
                1.0,
                Some(Duration::from_secs(3)),
                SECOND,
                [100, 200, 3_000, 100],
            ),
            case(1.0, Some(Duration::ZERO), None, [0, 0, 0, 0]),
        ];
        for Case {
            speed,
            limit,
            header_limit,
            delays,
        } in cases
        {
            let recording = recording(&times, header_limit);
            assert_eq!(
                delays_ms(&recording, speed, limit),
                delays,
                "speed {speed}, limit {limit:?}, header {header_limit:?}"
            );
        }
    }

    #[test]
    fn every_event_is_returned_in_order() {
        let mut recording = recording(&[0, 10], None);
        recording.events.insert(
            1,
            Event {
                time: Duration::from_millis(5),
                kind: EventKind::Marker("grant revoked".to_owned()),
            },
        );
        let steps: Vec<_> = schedule(&recording, 1.0, None).unwrap().collect();
        assert_eq!(steps.len(), 3);
        assert_eq!(
            steps[1].event.kind,
            EventKind::Marker("grant revoked".to_owned())
        );
        assert_eq!(steps[1].delay, Duration::from_millis(5));
    }

    #[test]
    fn an_event_out_of_order_gets_no_pause() {
        let recording = recording(&[1_000, 400, 1_500], None);
        assert_eq!(delays_ms(&recording, 1.0, None), [1_000, 0, 500]);
    }

    #[test]
    fn a_speed_that_is_not_positive_is_refused() {
        let recording = recording(&[0], None);
        for speed in [0.0, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let error = schedule(&recording, speed, None).unwrap_err();
            assert!(
                error.to_string().contains("not a positive number"),
                "{error}"
            );
        }
    }

    #[test]
    fn extreme_speeds_do_not_panic() {
        let recording = recording(&[0, 1_000_000_000], None);
        assert_eq!(
            delays_ms(&recording, f64::MIN_POSITIVE, None)[1],
            Duration::MAX.as_millis()
        );
        assert_eq!(delays_ms(&recording, f64::MAX, None)[1], 0);
    }
}
