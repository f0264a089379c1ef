//! The pacing decision: which request rate to allow next, from what the service did with the
//! requests already sent. Pure: it is fed events with their instants (sends, accepted answers,
//! the 429 that starts a pool-wide pause) and answers with the new rate, so it is tested with
//! explicit times; [`crate::partner_center::throttle::Throttle`] applies its decisions to governor's limiter.
//!
//! The rules, for every mode:
//! - **On a 429** (one per pool-wide pause; in-flight answers inside the pause are not new news)
//!   the rate becomes what the service actually accepted since the previous 429 (or since the
//!   rows started, [`Pacer::begin`]), times [`MARGIN`], and never more than the rate in force.
//!   With a token-bucket quota the bucket is empty at both 429s, so that count over that time
//!   is the quota's refill rate: a measurement, not a blind halving. Two exceptions: the first
//!   measurement starts with whatever the bucket held (full, in the bench: it reads high, and
//!   the rate in force is what bounds the cut), and a bucket smaller than the quota's refill
//!   during a pause overflows in it, so the next measurement reads low.
//!   The rate never drops below the floor: a tenth of the starting rate, at least 0.5/s.
//!   The decision is made when the pause ends, once the answers the 429 came with are in.
//! - **Memory**: a cut that lands below half the rate in force (a burst of 429s, or a quota that
//!   fell sharply) remembers that half; once the pause is over the rate grows back towards it
//!   by [`GROW_FACTOR`] every [`GROW_INTERVAL`], so a short burst of 429s costs seconds, not
//!   minutes.
//! - **Probing**: otherwise the rate climbs additively, [`PROBE_STEP`] of the rate set at the cut
//!   per second (`--rate N`: at least a tenth of N per second), up to the ceiling; at half that
//!   pace after each 429 that measures the same quota again (every probe past it costs a 429).
//! - **`--rate auto`** starts at `--rate-start` and grows by [`GROW_FACTOR`] every
//!   [`GROW_INTERVAL`] while the service accepts and the rate is what holds the workers back,
//!   until the first 429 (or `--rate-max`); from then on the rules above apply.
//!
//! Growth only counts intervals in which the workers actually used most of the rate: when
//! `--concurrency` or the service's latency is the bound, raising the rate would only store up
//! a burst for later.
//!
//! The constants were chosen in the model of `model.rs` (a run against a token bucket in
//! virtual time) and checked in the bench against the simulator. What costs time with a token
//! bucket is sending below the quota while the bucket is full (its refill overflows); a 429
//! costs a pool-wide pause and is counted against the run. Hence a small margin (when the bucket
//! holds at least a pause's refill, as both of the bench's do, the pause of a second or more has
//! put a second's worth of quota back in it, so the margin only has to cover the count's error
//! of a request or two) and a slow start gentle enough that few requests are in flight when the
//! bucket first runs dry. docs/throttling.md lists what the model shows beyond the bench.

use std::time::{Duration, Instant};

/// Slow start grows the rate once per interval of at least this length.
pub(crate) const GROW_INTERVAL: Duration = Duration::from_millis(200);
/// Slow start multiplies the rate by this per interval. Doubling put more requests in flight
/// when a quota's bucket first ran dry, each of them a 429: against a steady 10/s quota three
/// at the first pause against one, six 429s over the run against four (the target allows six).
/// What it costs: the 800/s of 16 workers at 20 ms is reached in 2.2 s instead of 1.7 s (the
/// target is 3 s), and with a 0.98 margin doubling used both quotas slightly better (model
/// medians 0.974 and 0.985 of best against 0.966 and 0.978) while its 429s on the steady one
/// reached 1.15 % in the model's worst variation, over the 1 % allowed.
pub(crate) const GROW_FACTOR: f64 = 1.7;
/// Additive probing raises the rate once per interval of at least this length.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// Additive probing: this fraction of the rate set at the last cut, per second.
pub(crate) const PROBE_STEP: f64 = 0.02;
/// Probing slows down to this when successive 429s keep measuring the same quota.
const PROBE_STEP_MIN: f64 = 0.005;
/// Two measurements within this fraction of each other count as the same quota.
const SAME_QUOTA: f64 = 0.1;
/// `--rate N` recovers at least this fraction of N per second.
const FIXED_RECOVERY_STEP: f64 = 0.1;
/// After a 429 the rate is this fraction of what the service accepted. The count is exact to a
/// request or two at either end of the measurement, which a long one makes small; a larger
/// margin leaves quota unused until probing has climbed back (0.95 cost 1-2 % of the run's time
/// in the model).
pub(crate) const MARGIN: f64 = 0.98;
/// A cut below this fraction of the rate in force is "deep": remember the rate, recover fast.
const DEEP_CUT: f64 = 0.5;
/// The accepted rate is measured over at least this span (a 429 right after another says
/// little about the quota on its own).
const MIN_SPAN: Duration = Duration::from_millis(500);
/// The floor never goes below this many requests per second...
pub(crate) const FLOOR_MIN: f64 = 0.5;
/// ...and is otherwise this fraction of the configured (or starting) rate.
const FLOOR_FRACTION: f64 = 0.1;
/// Growth needs the last interval's sends to reach this fraction of the rate.
const BINDING: f64 = 0.5;

/// Why the rate changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    /// A 429 started a pause.
    Throttled,
    /// Multiplicative growth (slow start, or back towards the remembered rate).
    Grow,
    /// Additive probing.
    Probe,
}

/// A rate change the limiter must apply.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Change {
    /// The new rate in requests/s.
    pub rate: f64,
    /// What the service was measured to accept when a 429 caused the change.
    pub accepted: Option<f64>,
    /// Why.
    pub cause: Cause,
}

/// A 429 waiting for its decision.
#[derive(Debug, Clone, Copy)]
struct Pending {
    /// When it arrived.
    at: Instant,
    /// The start of the measurement it ends.
    since: Instant,
    /// Answers other than 429 counted in it when the 429 arrived.
    accepted: u64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Multiplicative growth per interval, up to `threshold` (or the ceiling, or the first 429).
    Grow,
    /// Additive climb, up to the ceiling.
    Probe,
    /// Nothing to do: at the ceiling, or unlimited before any 429.
    Steady,
}

/// The rate decision for one run.
#[derive(Debug, Clone)]
pub(crate) struct Pacer {
    mode: RateMode,
    ceiling: Option<f64>,
    floor: f64,
    /// The rate in force; `None` = unlimited.
    rate: Option<f64>,
    phase: Phase,
    /// Where growth stops; `None` = only at the first 429 or the ceiling.
    threshold: Option<f64>,
    /// Additive step, requests/s per second.
    step: f64,
    /// The probing step as a fraction of the rate set at the last cut.
    probe: f64,
    /// What the service accepted, as measured at the last 429.
    measured: Option<f64>,
    /// No growth before this (the 429 pause).
    hold_until: Instant,
    interval_start: Instant,
    sent_in_interval: u64,
    /// Whether anything was sent yet.
    sending: bool,
    /// A 429 whose decision waits for the end of its pause.
    pending: Option<Pending>,
    /// The rate before a provisional limit was set (unlimited: infinite).
    pending_from: Option<f64>,
    /// Answers other than 429 since `since` (the last cut, or the start).
    accepted: u64,
    since: Instant,
    min: Option<f64>,
    max: Option<f64>,
}

impl Pacer {
    /// A pacer for `mode`, starting at `now`.
    pub fn new(mode: RateMode, now: Instant) -> Pacer {
        let (rate, ceiling, phase, floor_base) = match mode {
            RateMode::Fixed(r) => (Some(r), Some(r), Phase::Steady, r),
            RateMode::Unlimited => (None, None, Phase::Steady, FLOOR_MIN),
            RateMode::Auto { start, max } => {
                let start = max.map_or(start, |m| start.min(m));
                let phase = if max.is_some_and(|m| start >= m) {
                    Phase::Steady
                } else {
                    Phase::Grow
                };
                (Some(start), max, phase, start)
            }
        };
        let floor = (floor_base * FLOOR_FRACTION).max(FLOOR_MIN).min(floor_base);
        Pacer {
            mode,
            ceiling,
            floor,
            rate,
            phase,
            threshold: None,
            step: 0.0,
            probe: PROBE_STEP,
            measured: None,
            hold_until: now,
            interval_start: now,
            sent_in_interval: 0,
            sending: false,
            pending: None,
            pending_from: None,
            accepted: 0,
            since: now,
            min: rate,
            max: rate,
        }
    }

    /// The rate in force (`None` = unlimited).
    pub fn rate(&self) -> Option<f64> {
        self.rate
    }

    /// The lowest rate that was in force.
    pub fn min(&self) -> Option<f64> {
        self.min
    }

    /// The highest rate that was in force.
    pub fn max(&self) -> Option<f64> {
        self.max
    }

    /// The rate below which no 429 pushes it.
    pub fn floor(&self) -> f64 {
        self.floor
    }

    /// The mode this pacer runs.
    pub fn mode(&self) -> RateMode {
        self.mode
    }

    /// The rows start flowing now. Until a 429 has taught the pacer something, what was sent
    /// before (a pre-flight read) and the time spent signing in and checking say nothing about
    /// the quota: the pacer forgets them, and the next send starts the measurement that the
    /// first 429 ends, as the very first send does. Without this, a sign-in of three seconds
    /// read a 10/s quota as 4.7/s (the token endpoint slowed by a proxy).
    pub fn begin(&mut self) {
        if self.throttled_yet() {
            return;
        }
        self.sending = false;
        self.accepted = 0;
    }

    /// Whether a 429 has come (measured, or waiting for its decision): from then on the
    /// measurement runs from 429 to 429.
    fn throttled_yet(&self) -> bool {
        self.measured.is_some() || self.pending.is_some()
    }

    /// A request was sent at `now`; may raise the rate.
    pub fn on_send(&mut self, now: Instant) -> Option<Change> {
        if !self.sending {
            // The first interval and the first measurement start with the first request, not
            // with start-up and sign-in.
            self.sending = true;
            self.interval_start = now;
            self.sent_in_interval = 0;
            if !self.throttled_yet() {
                self.since = now;
            }
        }
        self.sent_in_interval += 1;
        self.grow(now)
    }

    /// The service answered something other than 429: it accepted the request into its quota.
    pub fn on_accepted(&mut self, _now: Instant) {
        self.accepted += 1;
    }

    /// A 429 at `now` started a pool-wide pause lasting until `resume_at`.
    ///
    /// The decision waits for the first send after the pause: answers to requests sent before
    /// the 429 are still arriving (with no limit, sixteen requests go out together and the 429
    /// may be read before the fifteen it came with), and they belong to the measurement.
    /// Nothing is sent during the pause, so every answer arriving in it does. Only a run
    /// without a limit gets a provisional one at once, so that the pause does not end in a
    /// stampede.
    pub fn on_throttled(&mut self, now: Instant, resume_at: Instant) -> Option<Change> {
        // A 429 for a request sent before an earlier pause ended, and answered after it.
        let earlier = self.decide_pending();
        self.pending = Some(Pending {
            at: now,
            since: self.since,
            accepted: self.accepted,
        });
        self.accepted = 0;
        self.since = now;
        self.hold_until = resume_at.max(now);
        self.interval_start = self.hold_until;
        self.sent_in_interval = 0;
        match (earlier, self.rate) {
            (Some(change), _) => Some(change),
            // The provisional limit: only its first cell is used before the decision, so it
            // is not counted in the run's lowest rate.
            (None, None) => {
                self.pending_from = Some(f64::INFINITY);
                self.rate = Some(self.floor);
                Some(Change {
                    rate: self.floor,
                    accepted: None,
                    cause: Cause::Throttled,
                })
            }
            (None, Some(_)) => None,
        }
    }

    /// Makes the decision a 429 called for, once the answers it came with are in.
    fn decide_pending(&mut self) -> Option<Change> {
        let pending = self.pending.take()?;
        let span = pending
            .at
            .saturating_duration_since(pending.since)
            .max(MIN_SPAN);
        // Answers that arrived during the pause were sent before the 429; they are not part of
        // the next measurement, which starts at the 429.
        let count = pending.accepted + std::mem::take(&mut self.accepted);
        let accepted = count as f64 / span.as_secs_f64();
        let current = match (self.rate, self.pending_from) {
            (_, Some(before)) => before,
            (Some(rate), None) => rate,
            (None, None) => f64::INFINITY,
        };
        self.pending_from = None;
        let mut target = (accepted * MARGIN).min(current).max(self.floor);
        if let Some(ceiling) = self.ceiling {
            target = target.min(ceiling);
        }
        let deep = match self.mode {
            // Below half the rate the operator gave: climb back to that half quickly.
            RateMode::Fixed(r) => target < r * DEEP_CUT,
            // Slow start overshoots by design, and a 429 while climbing back means the memory
            // was wrong: only a cut from an established rate counts as deep.
            _ => self.phase != Phase::Grow && current.is_finite() && target < current * DEEP_CUT,
        };
        if deep {
            // Far below what was in force: a burst of 429s, or a quota that fell sharply.
            // Remember half the old rate and grow back to it once the pause is over; if the
            // quota really fell, the next 429 measures it again and this memory is dropped.
            let memory = match self.mode {
                // The operator named the rate: half of it is worth returning to quickly.
                RateMode::Fixed(r) => r * DEEP_CUT,
                _ => current * DEEP_CUT,
            };
            self.threshold = Some(memory);
            self.phase = Phase::Grow;
        } else {
            self.threshold = Some(target);
            self.phase = Phase::Probe;
        }
        // Each probe past the quota costs a 429. While successive 429s keep measuring the same
        // quota there is little to discover: probe more slowly. A new figure resets the pace.
        if self.min.is_none() {
            // Unlimited until now: the first limit is also the lowest and highest so far.
            self.min = Some(target);
            self.max = Some(target);
        }
        let same = self
            .measured
            .is_some_and(|m| (accepted - m).abs() <= m * SAME_QUOTA);
        self.probe = if same && !deep {
            (self.probe / 2.0).max(PROBE_STEP_MIN)
        } else {
            PROBE_STEP
        };
        self.measured = Some(accepted);
        let base = self.threshold.unwrap_or(target);
        self.step = match self.mode {
            RateMode::Fixed(r) => (base * self.probe).max(r * FIXED_RECOVERY_STEP),
            _ => base * self.probe,
        };
        self.set(target, Cause::Throttled, Some(accepted))
    }

    fn grow(&mut self, now: Instant) -> Option<Change> {
        if now < self.hold_until {
            return None;
        }
        if self.pending.is_some() {
            return self.decide_pending();
        }
        let rate = self.rate?;
        let elapsed = now.saturating_duration_since(self.interval_start);
        let needed = match self.phase {
            Phase::Grow => GROW_INTERVAL,
            Phase::Probe => PROBE_INTERVAL,
            Phase::Steady => return None,
        };
        if elapsed < needed {
            return None;
        }
        let binding = self.sent_in_interval as f64 >= BINDING * rate * elapsed.as_secs_f64();
        self.interval_start = now;
        self.sent_in_interval = 0;
        if !binding {
            return None;
        }
        let (mut next, cause) = match self.phase {
            Phase::Grow => {
                let grown = rate * GROW_FACTOR;
                match self.threshold {
                    Some(t) if grown >= t => {
                        self.phase = Phase::Probe;
                        if self.step <= 0.0 {
                            self.step = t * PROBE_STEP;
                        }
                        (t.max(rate), Cause::Grow)
                    }
                    _ => (grown, Cause::Grow),
                }
            }
            _ => (rate + self.step * elapsed.as_secs_f64(), Cause::Probe),
        };
        if let Some(ceiling) = self.ceiling {
            if next >= ceiling {
                next = ceiling;
                self.phase = Phase::Steady;
            }
        }
        self.set(next, cause, None)
    }

    fn set(&mut self, rate: f64, cause: Cause, accepted: Option<f64>) -> Option<Change> {
        if self.rate == Some(rate) {
            return None;
        }
        self.rate = Some(rate);
        self.min = Some(self.min.map_or(rate, |m| m.min(rate)));
        self.max = Some(self.max.map_or(rate, |m| m.max(rate)));
        Some(Change {
            rate,
            accepted,
            cause,
        })
    }
}

/// How the request rate is chosen: the `--rate` setting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RateMode {
    /// `--rate N`: at most N requests/s; lowered after 429s, back to N once they stop.
    Fixed(f64),
    /// `--rate 0`: no limit until the first 429, then paced like `auto` without a cap.
    Unlimited,
    /// `--rate auto`: discover the service's quota, starting at `start`, never above `max`.
    Auto {
        /// `--rate-start`.
        start: f64,
        /// `--rate-max`.
        max: Option<f64>,
    },
}

impl RateMode {
    /// The name shown in the summary and the metrics.
    pub fn name(&self) -> &'static str {
        match self {
            RateMode::Fixed(_) => "fixed",
            RateMode::Unlimited => "unlimited",
            RateMode::Auto { .. } => "auto",
        }
    }
}

#[cfg(test)]
mod model;

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    /// `--rate auto --rate-start START` without a cap, created at `t0`.
    fn auto(start: f64, t0: Instant) -> Pacer {
        Pacer::new(RateMode::Auto { start, max: None }, t0)
    }

    /// Sends at `rate`/s from `from_ms` for `secs`, every one accepted; returns the changes.
    fn drive(p: &mut Pacer, t0: Instant, from_ms: u64, until_ms: u64, rate: f64) -> Vec<Change> {
        let gap = (1000.0 / rate).max(1.0) as u64;
        let mut changes = Vec::new();
        let mut t = from_ms;
        while t < until_ms {
            changes.extend(p.on_send(ms(t0, t)));
            p.on_accepted(ms(t0, t));
            t += gap;
        }
        changes
    }

    #[test]
    fn auto_grows_while_accepted_and_used() {
        let t0 = Instant::now();
        let mut p = auto(5.0, t0);
        assert_eq!(p.rate(), Some(5.0));
        // The workers use whatever the pacer allows: the rate grows every interval.
        let mut t = 0;
        while t < 1_500 {
            let rate = p.rate().expect("limited");
            drive(&mut p, t0, t, t + 300, rate);
            t += 300;
        }
        assert!(
            p.rate().expect("limited") >= 5.0 * GROW_FACTOR.powi(5),
            "{:?}",
            p.rate()
        );
    }

    #[test]
    fn auto_does_not_grow_when_the_workers_cannot_use_the_rate() {
        let t0 = Instant::now();
        let mut p = auto(100.0, t0);
        // Concurrency-bound at 20 sends/s: a fifth of the rate.
        let changes = drive(&mut p, t0, 0, 5_000, 20.0);
        assert!(changes.is_empty(), "{changes:?}");
        assert_eq!(p.rate(), Some(100.0));
    }

    #[test]
    fn auto_respects_the_max() {
        let t0 = Instant::now();
        let mut p = Pacer::new(
            RateMode::Auto {
                start: 5.0,
                max: Some(12.0),
            },
            t0,
        );
        for step in 0..10u64 {
            let rate = p.rate().expect("limited");
            drive(&mut p, t0, step * 300, step * 300 + 300, rate);
        }
        assert_eq!(p.rate(), Some(12.0));
        assert_eq!(p.max(), Some(12.0));
    }

    /// Sends and accepts at 10/s from `from_ms` to `until_ms`, then a 429 with a 1 s pause;
    /// returns the decision made at the first send after it.
    fn ten_per_second_then_throttled(
        p: &mut Pacer,
        t0: Instant,
        from_ms: u64,
        until_ms: u64,
    ) -> Change {
        let mut t = from_ms;
        while t < until_ms {
            p.on_send(ms(t0, t));
            p.on_accepted(ms(t0, t));
            t += 100;
        }
        p.on_throttled(ms(t0, until_ms), ms(t0, until_ms + 1_000));
        p.on_send(ms(t0, until_ms + 1_000)).expect("a cut")
    }

    #[test]
    fn a_slow_sign_in_does_not_dilute_the_first_measurement() {
        let t0 = Instant::now();
        // Created at start-up; the first request only 3 s later (sign-in, pre-flight).
        let mut p = Pacer::new(RateMode::Fixed(20.0), t0);
        let change = ten_per_second_then_throttled(&mut p, t0, 3_000, 5_000);
        let accepted = change.accepted.expect("measured");
        // 20 accepted over the 2 s since the first request, not over the 5 s since start-up.
        assert!((accepted - 10.0).abs() < 0.01, "{accepted}");
    }

    #[test]
    fn begin_forgets_a_pre_flight_read() {
        let t0 = Instant::now();
        let mut p = Pacer::new(RateMode::Fixed(20.0), t0);
        // The validation-code read, then 3 s of checks before the rows start.
        p.on_send(ms(t0, 100));
        p.on_accepted(ms(t0, 150));
        p.begin();
        let change = ten_per_second_then_throttled(&mut p, t0, 3_000, 5_000);
        let accepted = change.accepted.expect("measured");
        assert!((accepted - 10.0).abs() < 0.01, "{accepted}");
    }

    #[test]
    fn begin_after_a_429_keeps_what_was_learned() {
        let t0 = Instant::now();
        let mut p = Pacer::new(RateMode::Fixed(20.0), t0);
        let first = ten_per_second_then_throttled(&mut p, t0, 0, 2_000);
        // A 429 during the pre-flight already measured the quota: begin() does not undo it.
        p.begin();
        assert_eq!(p.rate(), Some(first.rate));
        // The next measurement still runs from the 429 (at 2 s), not from begin().
        let change = ten_per_second_then_throttled(&mut p, t0, 3_500, 5_000);
        let accepted = change.accepted.expect("measured");
        // 15 sent from 3.5 s to 5 s, counted over the 3 s since the 429.
        assert!((accepted - 5.0).abs() < 0.01, "{accepted}");
    }

    #[test]
    fn a_429_sets_the_rate_from_what_was_accepted_not_half() {
        let t0 = Instant::now();
        let mut p = auto(40.0, t0);
        // 10 accepted per second for 4 s, then a 429.
        for i in 0..40u64 {
            p.on_accepted(ms(t0, i * 100));
        }
        assert_eq!(p.on_throttled(ms(t0, 4_000), ms(t0, 5_000)), None);
        // Decided when the pause is over, with every answer that was still on its way.
        let change = p.on_send(ms(t0, 5_000)).expect("a cut");
        assert_eq!(change.cause, Cause::Throttled);
        let accepted = change.accepted.expect("measured");
        assert!((accepted - 10.0).abs() < 0.01, "{accepted}");
        assert!((change.rate - 10.0 * MARGIN).abs() < 0.01, "{change:?}");
        // The next estimate starts at this 429: 6/s accepted over the next 5 s.
        for i in 0..30u64 {
            p.on_accepted(ms(t0, 5_000 + i * 166));
        }
        p.on_throttled(ms(t0, 9_000), ms(t0, 10_000));
        let change = p.on_send(ms(t0, 10_000)).expect("a cut");
        assert!(
            (change.rate - 30.0 / 5.0 * MARGIN).abs() < 0.01,
            "{change:?}"
        );
    }

    #[test]
    fn nothing_grows_during_the_pause_then_probing_is_additive() {
        let t0 = Instant::now();
        let mut p = auto(10.0, t0);
        for i in 0..50u64 {
            p.on_accepted(ms(t0, i * 100));
        }
        p.on_throttled(ms(t0, 5_000), ms(t0, 6_000));
        assert_eq!(p.on_send(ms(t0, 5_500)), None, "paused");
        let cut = p.on_send(ms(t0, 6_000)).expect("cut").rate;
        assert!((cut - 10.0 * MARGIN).abs() < 0.01);
        let changes = drive(&mut p, t0, 6_001, 16_000, 12.0);
        assert!(!changes.is_empty());
        assert!(
            changes.iter().all(|c| c.cause == Cause::Probe),
            "{changes:?}"
        );
        let rate = p.rate().expect("limited");
        // PROBE_STEP of the cut rate per second, for 10 s.
        let expected = cut * (1.0 + PROBE_STEP * 10.0);
        assert!(
            (rate - expected).abs() < cut * PROBE_STEP * 1.5,
            "{rate} vs {expected}"
        );
    }

    #[test]
    fn probing_slows_while_the_same_quota_is_measured_and_resets_when_it_changes() {
        let t0 = Instant::now();
        let mut p = auto(10.0, t0);
        // Three 429s 10 s apart, each after 100 accepted: the same 10/s quota every time.
        let mut steps = Vec::new();
        for cycle in 0..3u64 {
            for i in 0..100 {
                p.on_accepted(ms(t0, cycle * 10_000 + i * 100));
            }
            p.on_throttled(
                ms(t0, (cycle + 1) * 10_000),
                ms(t0, (cycle + 1) * 10_000 + 1),
            );
            p.on_send(ms(t0, (cycle + 1) * 10_000 + 1));
            steps.push(p.step);
        }
        assert!(steps[1] < steps[0] && steps[2] < steps[1], "{steps:?}");
        // Then the quota halves: back to the full probing step.
        for i in 0..50 {
            p.on_accepted(ms(t0, 30_000 + i * 200));
        }
        p.on_throttled(ms(t0, 40_000), ms(t0, 40_001));
        p.on_send(ms(t0, 40_001));
        assert!((p.step - p.rate().expect("limited") * PROBE_STEP).abs() < 1e-9);
    }

    #[test]
    fn a_burst_of_429s_never_goes_below_the_floor_and_recovers_within_seconds() {
        let t0 = Instant::now();
        let mut p = Pacer::new(RateMode::Fixed(10.0), t0);
        assert_eq!(p.floor(), 1.0);
        // 30 pauses of 1 s back to back, almost nothing accepted in between.
        let mut t = 0;
        for _ in 0..30 {
            p.on_send(ms(t0, t));
            p.on_throttled(ms(t0, t + 10), ms(t0, t + 1_010));
            t += 1_020;
        }
        assert_eq!(p.rate(), Some(1.0), "at the floor, not below");
        assert_eq!(p.min(), Some(1.0));
        // The 429s stop: within 3 s the rate is back at half --rate, within 8 s at --rate.
        let mut now = t + 1_000;
        while now < t + 9_000 {
            let rate = p.rate().expect("limited");
            drive(&mut p, t0, now, now + 250, rate);
            now += 250;
            if now == t + 4_000 {
                assert!(p.rate().expect("limited") >= 5.0, "{:?}", p.rate());
            }
        }
        assert_eq!(p.rate(), Some(10.0));
    }

    #[test]
    fn the_floor_is_a_tenth_of_the_rate_and_at_least_half_a_request_per_second() {
        let t0 = Instant::now();
        assert_eq!(Pacer::new(RateMode::Fixed(50.0), t0).floor(), 5.0);
        assert_eq!(Pacer::new(RateMode::Fixed(2.0), t0).floor(), 0.5);
        assert_eq!(Pacer::new(RateMode::Fixed(0.2), t0).floor(), 0.2);
        assert_eq!(Pacer::new(RateMode::Unlimited, t0).floor(), 0.5);
    }

    #[test]
    fn unlimited_stays_unlimited_until_a_429() {
        let t0 = Instant::now();
        let mut p = Pacer::new(RateMode::Unlimited, t0);
        assert!(drive(&mut p, t0, 0, 2_000, 200.0).is_empty());
        assert_eq!(p.rate(), None);
        // A provisional limit at once, so that the pause does not end in a stampede...
        let provisional = p
            .on_throttled(ms(t0, 2_000), ms(t0, 3_000))
            .expect("limited now");
        assert_eq!(provisional.rate, p.floor());
        // ...and the decision when it is over: 400 accepted over 2 s.
        let change = p.on_send(ms(t0, 3_000)).expect("decided");
        assert!((change.rate - 200.0 * MARGIN).abs() < 1.0, "{change:?}");
        assert_eq!(p.min(), Some(change.rate));
    }

    #[test]
    fn an_unchanged_rate_is_not_a_change() {
        let t0 = Instant::now();
        let mut p = Pacer::new(RateMode::Fixed(2.0), t0);
        // Nothing accepted: the floor; a second such 429 changes nothing.
        p.on_throttled(ms(t0, 1_000), ms(t0, 2_000));
        assert!(p.on_send(ms(t0, 2_000)).is_some());
        p.on_throttled(ms(t0, 2_000), ms(t0, 3_000));
        assert_eq!(p.on_send(ms(t0, 3_000)), None);
        assert_eq!(p.rate(), Some(0.5));
    }

    /// The quota-drop scenario of issue 13, driven against a token bucket in explicit time: the
    /// pacer must end near the new quota with few 429 events.
    #[test]
    fn a_quota_drop_is_followed_within_a_few_429s() {
        let t0 = Instant::now();
        let mut p = auto(5.0, t0);
        let (burst, mut tokens) = (15.0_f64, 15.0_f64);
        let mut last = 0.0_f64;
        let mut next_send = 0.0_f64;
        let mut resume = 0.0_f64;
        let (mut events, mut served) = (0, 0u32);
        let mut t = 0.0_f64;
        while t < 60.0 {
            let quota = if t < 20.0 { 15.0 } else { 6.0 };
            tokens = (tokens + (t - last) * quota).min(burst);
            last = t;
            if t >= next_send && t >= resume {
                let at = t0 + Duration::from_secs_f64(t);
                p.on_send(at);
                if tokens >= 1.0 {
                    tokens -= 1.0;
                    served += 1;
                    p.on_accepted(at);
                } else {
                    events += 1;
                    resume = t + 1.0;
                    p.on_throttled(at, t0 + Duration::from_secs_f64(resume));
                }
                next_send = t + 1.0 / p.rate().expect("limited");
            }
            t += 0.001;
        }
        // The quota allowed 15 + 15 × 20 + 6 × 40 = 555 in the minute.
        assert!(served >= 520, "served {served} of 555");
        let rate = p.rate().expect("limited");
        assert!((5.0..=8.0).contains(&rate), "ended at {rate}");
        assert!(events <= 8, "{events} 429 events");
    }
}
