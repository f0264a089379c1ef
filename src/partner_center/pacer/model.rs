//! A run against a token-bucket quota in virtual time, so that the pacer's rules can be judged
//! by what the issue measures (time against the quota's best, share of 429s) without waiting a
//! minute per scenario. It mirrors the pieces around [`Pacer`]:
//! - the session: the pacer is created before the sign-in and checks, and `begin` is called
//!   when the rows start, as the pipeline does;
//! - the throttle: one limiter of burst 1 (the default `--burst`) served first come, first
//!   served; a new rate applied after a send starts one period later, one applied at a 429 starts
//!   full; nothing is sent during the pool-wide pause the pacer sets;
//! - the workers: `concurrency` of them, one request per row, a 429 retried after its
//!   Retry-After (without the tool's limit of `--max-attempts`);
//! - the simulator's quota: a token bucket refilled at a scheduled rate, full at the start, whose
//!   429 asks for the whole seconds until a request fits again (at least one), the answer held
//!   for the latency after arrival. (The simulator drops the fraction of a request its bucket
//!   holds when the rate changes; the model keeps it.)
//!
//! It is a model, not the bench: the figures the issue targets come from `benches/bench.sh`
//! against the real simulator. The model shows in seconds which way a rule moves them, and its
//! tests hold the pacer to them. Requests leave exactly on the limiter's cells and reach the
//! quota at once (in one test up to `arrival_jitter` later), their answers after the latency
//! (plus the jitter of the variations); the real ones arrive with a few milliseconds more. With issue 13's pacer it ran 0.002-0.007 of the ratio ahead of the
//! simulator; with issue 23's it matched one bench run on the one-request bucket and the rising
//! quota and ran far ahead of another (docs/throttling.md).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::Pacer;
use crate::partner_center::pacer::RateMode;

/// Virtual time advances in steps of this many microseconds.
const TICK_US: u64 = 100;

/// What the service does and what the tool is asked to do.
#[derive(Debug, Clone)]
pub(crate) struct Scenario {
    /// The quota's rate at the start, requests/s; `None` = no quota.
    pub quota_rate: Option<f64>,
    /// The bucket's size.
    pub burst: f64,
    /// `(seconds after the simulator started, new rate)`.
    pub changes: Vec<(f64, f64)>,
    /// The simulator's clock when the tool creates its pacer, seconds.
    pub offset: f64,
    /// From the pacer's creation to the first row (sign-in, pre-flight checks), seconds. The
    /// tool calls `begin` then, as the pipeline does.
    pub startup: f64,
    pub rows: usize,
    pub concurrency: usize,
    /// Time from a request's arrival to its answer.
    pub latency: Duration,
    pub mode: RateMode,
    /// Extra latency, uniform in 0..=jitter, drawn from a generator seeded with `seed`.
    pub jitter: Duration,
    /// A delay, uniform from 0 up to arrival_jitter, from a request's send to its arrival at the
    /// quota (from its own generator, so that zero leaves every other draw as it was). A
    /// one-request bucket refuses every arrival that comes early by any of it, and at 0.99 of
    /// a 10/s quota a millisecond is all the room there is (a period of 101 ms against 100).
    /// Requests are still admitted in the order sent (the spreads used, up to 3 ms, are far
    /// under the periods), and their answers still timed from the send.
    pub arrival_jitter: Duration,
    pub seed: u64,
    /// Replaces the pacer's hold after each 429 event (from the first send after its pause to
    /// the next probe) with this fixed one, for the trade-off test below; `None`: the pacer's
    /// own holds.
    pub fixed_hold: Option<Duration>,
}

/// What the run looked like from the service's side.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Outcome {
    /// Seconds from the first request to the last.
    pub took: f64,
    /// The earliest the quota could have admitted every row, from the first request.
    pub best: f64,
    pub requests: u64,
    pub throttled: u64,
    /// Send times (seconds after the first request) of the requests; each arrives up to
    /// `arrival_jitter` later (at once without it).
    pub sent: Vec<f64>,
}

impl Outcome {
    /// `best / took`: 1.0 is as fast as the quota allows.
    pub fn ratio(&self) -> f64 {
        self.best / self.took.max(1e-9)
    }

    /// Percentage of requests answered 429.
    pub fn throttled_pct(&self) -> f64 {
        100.0 * self.throttled as f64 / (self.requests.max(1)) as f64
    }
}

impl Scenario {
    fn quota_at(&self, since_start: f64) -> Option<f64> {
        let mut rate = self.quota_rate?;
        for &(after, r) in &self.changes {
            if since_start >= after {
                rate = r;
            }
        }
        Some(rate)
    }

    /// The earliest time after `first` (simulator time) at which burst plus the refill since
    /// reaches `rows`: the bench's "best".
    fn best(&self, first: f64) -> f64 {
        if self.quota_rate.is_none() {
            return 0.0;
        }
        let mut need = self.rows as f64 - self.burst;
        let step = 1e-4;
        let mut t = first;
        while need > 0.0 {
            let rate = self.quota_at(t).unwrap_or(0.0);
            // Scenarios have rates above 0; an hour is far past any of them.
            assert!(
                rate > 0.0 && t - first < 3600.0,
                "the quota never admits the rows"
            );
            need -= rate * step;
            t += step;
        }
        t - first
    }
}

enum Worker {
    /// Waiting in the throttle's queue.
    Queued,
    /// Sleeping until this tick (a retry's wait), then queued.
    Sleeping(u64),
    /// Sent at `sent_at`; answered at `answer` with `accepted` or a 429 asking for `wait_s`.
    InFlight {
        sent_at: u64,
        answer: u64,
        accepted: bool,
        wait_s: u64,
    },
    Done,
}

/// Runs `scenario` and reports what the service saw.
pub(crate) fn run(scenario: &Scenario) -> Outcome {
    let t0 = Instant::now();
    let at = |tick: u64| t0 + Duration::from_micros(tick * TICK_US);
    let secs = |tick: u64| (tick * TICK_US) as f64 / 1e6;
    let ticks = |d: Duration| {
        u64::try_from(d.as_micros()).expect("a scenario's delays are short") / TICK_US
    };
    let latency_ticks = ticks(scenario.latency).max(1);
    let startup_ticks =
        ticks(Duration::try_from_secs_f64(scenario.startup).expect("a start-up time"));

    let mut pacer = Pacer::new(scenario.mode, at(0));
    // The limiter: the next instant a cell is free (burst 1), `None` = unlimited.
    let mut next_cell: Option<f64> = pacer.rate().map(|_| 0.0);
    let mut paused_until = 0u64;

    let mut tokens = scenario.burst;
    let mut refilled_at = scenario.offset;

    // Every worker waits for the rows, which start flowing after the sign-in and checks.
    let mut queue: VecDeque<usize> = VecDeque::new();
    let mut active = scenario.concurrency.min(scenario.rows);
    let mut rows_left = scenario.rows - active;
    let mut workers: Vec<Worker> = (0..scenario.concurrency)
        .map(|i| {
            if i < active {
                Worker::Sleeping(startup_ticks)
            } else {
                Worker::Done
            }
        })
        .collect();

    let mut rng = fastrand::Rng::with_seed(scenario.seed);
    let mut arrivals = fastrand::Rng::with_seed(scenario.seed ^ 0xa7);
    let arrival_jitter = scenario.arrival_jitter.as_secs_f64();
    let jitter_ticks = ticks(scenario.jitter);
    let mut sent = Vec::new();
    let (mut requests, mut throttled) = (0u64, 0u64);
    let mut tick = 0u64;
    while active > 0 {
        let now = secs(tick);
        // A pacer that stops sending fails the test instead of hanging it.
        assert!(
            now < 3600.0,
            "the run did not end within an hour of virtual time"
        );
        if tick == startup_ticks {
            pacer.begin();
        }
        // Answers and wake-ups due now, in worker order.
        for (i, worker) in workers.iter_mut().enumerate() {
            match *worker {
                Worker::Sleeping(until) if until <= tick => {
                    *worker = Worker::Queued;
                    queue.push_back(i);
                }
                Worker::InFlight {
                    sent_at,
                    answer,
                    accepted,
                    wait_s,
                } if answer <= tick => {
                    // The client reports every answer's time, as the pacer's steps need it.
                    pacer.on_answer(Duration::from_micros((tick - sent_at) * TICK_US));
                    if accepted {
                        pacer.on_accepted();
                        if rows_left > 0 {
                            rows_left -= 1;
                            *worker = Worker::Queued;
                            queue.push_back(i);
                        } else {
                            *worker = Worker::Done;
                            active -= 1;
                        }
                    } else {
                        let wait = wait_s * 1_000_000 / TICK_US;
                        let until = tick + wait;
                        // The pacer says whether this 429 starts a pause and how long the pool
                        // waits; the throttled request itself waits out its Retry-After.
                        if let Some(pause) = pacer.on_throttled(at(tick), at(until)) {
                            paused_until = ticks(pause.until.duration_since(t0)) + 1;
                            if pause.change.is_some() {
                                // Nothing goes out during the pause: the new limiter starts full.
                                next_cell = Some(now);
                            }
                        }
                        *worker = Worker::Sleeping(until);
                    }
                }
                _ => {}
            }
        }
        // Sends: none during a pause; otherwise first come, first served, one per cell.
        let sending = tick >= paused_until;
        while let (true, Some(&head)) = (sending, queue.front()) {
            if let Some(cell) = next_cell {
                if now < cell {
                    break;
                }
            }
            queue.pop_front();
            // governor with burst 1: the next cell is one period after this one. A new rate
            // applied right after a send starts one period later too (its burst is spent).
            let deciding = pacer.pending.is_some();
            pacer.on_send(at(tick));
            if let (true, None, Some(hold)) = (deciding, pacer.pending, scenario.fixed_hold) {
                pacer.grow_from = at(tick) + hold;
            }
            next_cell = pacer.rate().map(|r| now + 1.0 / r.max(0.01));
            // The service: admission at arrival.
            let sim_now = scenario.offset + now + arrivals.f64() * arrival_jitter;
            requests += 1;
            sent.push(now);
            let (accepted, wait_s) = match scenario.quota_at(sim_now) {
                None => (true, 0),
                Some(_) => {
                    // Refill in small steps so that a scheduled change lands where it should.
                    while refilled_at < sim_now {
                        let step = (sim_now - refilled_at).min(1e-3);
                        tokens = (tokens + scenario.quota_at(refilled_at).unwrap_or(0.0) * step)
                            .min(scenario.burst);
                        refilled_at += step;
                    }
                    if tokens >= 1.0 {
                        tokens -= 1.0;
                        (true, 0)
                    } else {
                        let rate = scenario.quota_at(sim_now).unwrap_or(1.0);
                        let wait = (1.0 - tokens) / rate;
                        // Whole seconds, at least one, as the simulator answers; bounded
                        // because a quota's rate is above 0.
                        (false, wait.ceil().clamp(1.0, 3600.0) as u64)
                    }
                }
            };
            if !accepted {
                throttled += 1;
            }
            workers[head] = Worker::InFlight {
                sent_at: tick,
                answer: tick + latency_ticks + rng.u64(0..=jitter_ticks),
                accepted,
                wait_s,
            };
        }
        tick += 1;
    }
    let first = sent.first().copied().unwrap_or(0.0);
    let last = sent.last().copied().unwrap_or(0.0);
    Outcome {
        took: last - first,
        best: scenario.best(scenario.offset + first),
        requests,
        throttled,
        sent: sent.iter().map(|s| s - first).collect(),
    }
}

/// A quota of `rate`/s holding `burst`, changing as `changes` says, for `rows` rows answered
/// after `latency_ms`, 16 workers.
pub(crate) fn shape(
    rate: f64,
    burst: f64,
    changes: &[(f64, f64)],
    rows: usize,
    latency_ms: u64,
    mode: RateMode,
) -> Scenario {
    Scenario {
        quota_rate: Some(rate),
        burst,
        changes: changes.to_vec(),
        offset: 0.07,
        startup: 0.0,
        rows,
        concurrency: 16,
        latency: Duration::from_millis(latency_ms),
        mode,
        jitter: Duration::ZERO,
        arrival_jitter: Duration::ZERO,
        seed: 0,
        fixed_hold: None,
    }
}

/// The quota that drops (issue 13): 15/s (burst 15), 6/s after 20 s, 500 rows, 30 ms.
pub(crate) fn drop_quota(mode: RateMode) -> Scenario {
    shape(15.0, 15.0, &[(20.0, 6.0)], 500, 30, mode)
}

/// The steady quota (issue 13): 10/s (burst 10), 600 rows, 30 ms.
pub(crate) fn steady_quota(mode: RateMode) -> Scenario {
    shape(10.0, 10.0, &[], 600, 30, mode)
}

/// Issue 23's shapes, with the bench's names: the two above, then the ones `--rate auto` was not
/// tuned on.
pub(crate) fn shapes(mode: RateMode) -> Vec<(&'static str, Scenario)> {
    vec![
        ("drop", drop_quota(mode)),
        ("steady", steady_quota(mode)),
        ("rising", shape(10.0, 10.0, &[(15.0, 20.0)], 600, 30, mode)),
        ("burst3", shape(10.0, 3.0, &[], 600, 30, mode)),
        ("burst1", shape(10.0, 1.0, &[], 600, 30, mode)),
        ("slow-steady", shape(10.0, 10.0, &[], 600, 200, mode)),
        (
            "slow-drop",
            shape(15.0, 15.0, &[(20.0, 6.0)], 500, 200, mode),
        ),
        (
            "early-drop",
            shape(20.0, 20.0, &[(10.0, 8.0)], 500, 30, mode),
        ),
    ]
}

/// Seconds from the first request until a 250 ms window holds `share` of `bound` requests/s.
pub(crate) fn ramp(o: &Outcome, bound: f64, share: f64) -> Option<f64> {
    let mut j = 0;
    for (i, &t) in o.sent.iter().enumerate() {
        while o.sent[j] < t - 0.25 {
            j += 1;
        }
        if (i - j + 1) as f64 / 0.25 >= share * bound {
            return Some(t);
        }
    }
    None
}

/// No quota: the sandbox at 20 ms, 16 in flight, 6,000 rows.
pub(crate) fn no_quota(mode: RateMode) -> Scenario {
    Scenario {
        quota_rate: None,
        burst: 0.0,
        changes: Vec::new(),
        offset: 0.07,
        startup: 0.0,
        rows: 6000,
        concurrency: 16,
        latency: Duration::from_millis(20),
        mode,
        jitter: Duration::ZERO,
        arrival_jitter: Duration::ZERO,
        seed: 0,
        fixed_hold: None,
    }
}

/// The median and the worst of a scenario over variations of start-up time, latency and jitter.
#[derive(Debug)]
pub(crate) struct Spread {
    /// The median `best / took`: what one run of the bench is likely to see.
    pub ratio_median: f64,
    /// The lowest.
    pub ratio_worst: f64,
    /// The highest share of 429s, percent.
    pub throttled_worst: f64,
}

/// Runs `n` variations of `base`, each relative to it: the tool created up to 100 ms later on
/// the simulator's clock, up to 2 s more of sign-in and checks before the first row, latency
/// from 0.85 to 1.35 times the base's, and jitter of up to a third of the base latency.
pub(crate) fn spread(base: &Scenario, n: u64) -> Spread {
    let mut ratios = Vec::new();
    let mut pcts = Vec::new();
    for seed in 0..n {
        let mut s = base.clone();
        let mut rng = fastrand::Rng::with_seed(seed);
        s.offset = base.offset + rng.f64() * 0.1;
        s.startup = base.startup + rng.f64() * 2.0;
        s.latency = base.latency.mul_f64(0.85 + rng.f64() * 0.5);
        s.jitter = base.latency.mul_f64(rng.f64() / 3.0);
        s.seed = seed;
        let o = run(&s);
        ratios.push(o.ratio());
        pcts.push(o.throttled_pct());
    }
    ratios.sort_by(f64::total_cmp);
    Spread {
        ratio_median: ratios[ratios.len() / 2],
        ratio_worst: ratios[0],
        throttled_worst: pcts.iter().copied().fold(0.0, f64::max),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUTO: RateMode = RateMode::Auto {
        start: 5.0,
        max: None,
    };

    /// How far the model ran ahead of the simulator in the runs compared (see the module's
    /// documentation): a model median must clear the target by this much to promise it there.
    const MODEL_BIAS: f64 = 0.007;

    /// Per shape: the lowest median ratio to best, the lowest ratio of any variation, the
    /// highest share of 429s (percent) of any. Issue 23's targets are a median of 0.95 plus the
    /// bias, every variation 0.95, at most 2 %; where the pacer does not meet them
    /// (docs/throttling.md says which), the bound is what it reaches, so that a change that
    /// makes it worse fails here.
    const BOUNDS: [(&str, f64, f64, f64); 8] = [
        // Misses the 2 % target: reaches 2.91 %.
        ("drop", 0.95 + MODEL_BIAS, 0.95, 3.0),
        // Reaches 1.80 % (1.64 % before HOLD_FOUND).
        ("steady", 0.95 + MODEL_BIAS, 0.95, 1.9),
        // Meets the targets since HOLD_FOUND (0.936, worst 0.908 before it).
        ("rising", 0.95 + MODEL_BIAS, 0.95, 2.0),
        // 1.48 % since FEW_BUCKET (one 429 more in the worst variation; its worst time 0.977
        // before, 0.985 since); 1.32 % before it.
        ("burst3", 0.95 + MODEL_BIAS, 0.95, 1.5),
        // Meets the targets since SMALL_BUCKET: 0.961 (worst 0.952), 1.48 %; 0.959 (worst
        // 0.951) since SMALL_PROBE_MIN, which holds it with arrivals spread (the test below).
        // Before SMALL_BUCKET 0.943 (worst 0.936); 0.935 (worst 0.927) before FOUND_MARGIN;
        // 1.32 % before HOLD_FOUND.
        ("burst1", 0.95 + MODEL_BIAS, 0.95, 1.5),
        // Meets the targets since the steps stretch with the slowness (3.69 % before).
        ("slow-steady", 0.95 + MODEL_BIAS, 0.95, 2.0),
        // Misses both targets: reaches 0.947 (worst 0.917), 3.47 % (0.948 before STEP_MAX).
        // Before the steps stretched with the slowness: 0.967 (worst 0.960), 6.54 %.
        ("slow-drop", 0.945, 0.91, 3.5),
        // Misses the 2 % target: reaches 3.10 % (2.91 % before HOLD_FOUND).
        ("early-drop", 0.95 + MODEL_BIAS, 0.95, 3.2),
    ];

    /// Eight variations per shape, or `PCQ_MODEL_VARIATIONS` of them: a rule change is judged
    /// over more (24) before its figures are quoted, since eight leave a row's worst to one seed.
    /// The bounds are set for eight; with more, read the printed table (a bound may fail).
    fn variations() -> u64 {
        std::env::var("PCQ_MODEL_VARIATIONS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(8)
            .max(1)
    }

    // Every shape over eight variations (sign-ins of up to 2 s, which move a quota's change
    // against the tool's own timeline; latency; jitter). `cargo test --lib pacer::model --
    // --nocapture` prints the table, `--rate 0` beside `--rate auto`.
    #[test]
    fn every_shape_is_held_to_its_bounds() {
        let mut failed = Vec::new();
        let unlimited = shapes(RateMode::Unlimited);
        for (((name, s), (_, u)), bound) in shapes(AUTO).iter().zip(&unlimited).zip(BOUNDS) {
            assert_eq!(*name, bound.0);
            let (a, z) = (spread(s, variations()), spread(u, variations()));
            let line = format!(
                "{name:12} auto {:.3} (worst {:.3}), 429 {:.2} % | rate 0 {:.3} (worst {:.3}), 429 {:.2} %",
                a.ratio_median, a.ratio_worst, a.throttled_worst,
                z.ratio_median, z.ratio_worst, z.throttled_worst
            );
            println!("{line}");
            if a.ratio_median < bound.1 || a.ratio_worst < bound.2 || a.throttled_worst > bound.3 {
                failed.push(line);
            }
        }
        assert!(failed.is_empty(), "{failed:#?}");
    }

    /// Why issue 23's rising-quota and 2 % targets pull against each other: on a quota that has
    /// not changed, every probe ends in a 429 (the bucket holds only what the margin saved), so
    /// the steady quota's 429 share caps how often the pacer may probe, and the time a rise
    /// waits for the next probe caps the rising quota's ratio. With a fixed hold after each
    /// 429 instead of the pacer's own, no hold from 2 to 12 s meets both; the pacer's holds
    /// (short after a find, doubling after probes that find nothing) are the way between. If a
    /// change ever makes some fixed hold meet both, this fails and docs/throttling.md's account
    /// of the trade-off is out of date.
    #[test]
    fn no_fixed_hold_meets_both_the_steady_429_and_the_rising_time_target() {
        let rising = shapes(AUTO)
            .into_iter()
            .find(|(name, _)| *name == "rising")
            .map(|(_, s)| s)
            .expect("a shape");
        let steady = steady_quota(AUTO);
        for secs in 2..=12 {
            let held = |base: &Scenario| {
                let fixed_hold = Some(Duration::from_secs(secs));
                spread(
                    &Scenario {
                        fixed_hold,
                        ..base.clone()
                    },
                    variations(),
                )
            };
            let (s, r) = (held(&steady), held(&rising));
            println!(
                "hold {secs:2} s: steady 429 {:.2} % | rising {:.3} (worst {:.3}), 429 {:.2} %",
                s.throttled_worst, r.ratio_median, r.ratio_worst, r.throttled_worst
            );
            let both = s.throttled_worst <= 2.0 && r.ratio_median >= 0.95 + MODEL_BIAS;
            assert!(!both, "a fixed hold of {secs} s meets both");
        }
    }

    #[test]
    fn a_slow_sign_in_costs_the_measurement_nothing() {
        // Three seconds between the pacer's creation and the first row (a slow token endpoint,
        // the pre-flight reads): the first 429 must still measure the quota, not a third of it.
        let mut s = steady_quota(AUTO);
        s.startup = 3.0;
        let o = run(&s);
        assert!(o.ratio() >= 0.95 + MODEL_BIAS, "{}", o.ratio());
    }

    #[test]
    fn without_a_quota_the_concurrency_bound_is_reached_within_3_s() {
        let o = run(&no_quota(AUTO));
        // 16 in flight at 20 ms: 800/s.
        let reached = ramp(&o, 800.0, 0.9);
        assert!(reached.is_some_and(|t| t <= 3.0), "{reached:?}");
    }

    #[test]
    fn the_default_fixed_rate_leaves_most_of_the_quota_unused() {
        // The baseline, as a check on the model itself: --rate 5 against 15/s then 6/s
        // takes about twice the best and is never refused.
        let o = run(&drop_quota(RateMode::Fixed(5.0)));
        assert!(o.ratio() < 0.6, "{}", o.ratio());
        assert_eq!(o.throttled, 0);
        assert_eq!(o.requests, 500);
    }

    #[test]
    fn every_row_is_sent_until_it_is_accepted() {
        let o = run(&drop_quota(AUTO));
        assert_eq!(o.requests - o.throttled, 500);
    }

    /// A bucket of two requests: not one of issue 23's rows, but inside the "burst 1-3" its
    /// account of small buckets names. Held under the quota, it overflows, and each probe's
    /// count read the rate held: 0.920 (worst 0.905) of best over 24 variations before
    /// `FEW_BUCKET`, 0.967 (worst 0.957) since. The bench gains less, and misses the target:
    /// 0.855 and 0.859 before, 0.894 and 0.894 since (docs/throttling.md, round ten).
    #[test]
    fn a_two_request_bucket_meets_the_targets_in_the_model() {
        let s = shape(10.0, 2.0, &[], 600, 30, AUTO);
        let a = spread(&s, variations());
        println!(
            "burst2       auto {:.3} (worst {:.3}), 429 {:.2} %",
            a.ratio_median, a.ratio_worst, a.throttled_worst
        );
        assert!(
            a.ratio_median >= 0.95 + MODEL_BIAS
                && a.ratio_worst >= 0.95
                && a.throttled_worst <= 2.0,
            "{a:?}"
        );
    }

    /// What the slow service's stretched steps cost (docs/throttling.md): a quota that rises at
    /// 200 ms is found later than at 30 ms. Not one of issue 23's rows; held to what the pacer
    /// reaches, so that a change making it worse fails here.
    #[test]
    fn a_rising_quota_at_200_ms_is_held_to_what_it_reaches() {
        let s = shape(10.0, 10.0, &[(15.0, 20.0)], 600, 200, AUTO);
        let a = spread(&s, variations());
        println!(
            "slow-rising  auto {:.3} (worst {:.3}), 429 {:.2} %",
            a.ratio_median, a.ratio_worst, a.throttled_worst
        );
        assert!(
            a.ratio_median >= 0.84 && a.ratio_worst >= 0.80 && a.throttled_worst <= 2.0,
            "{a:?}"
        );
    }

    /// A one-request bucket refuses every request that arrives early by any amount, and at
    /// 0.99 of the quota a millisecond is enough: with a spread of 1 ms, the rules before
    /// `SMALL_PROBE_MIN` left one variation in eight at 0.695 of best, paced at about 0.72 of the
    /// quota for the rest of the run, and bench runs at 0.93 after a stray 429 (round ten in
    /// docs/throttling.md). Issue 23's targets, with arrivals spread by 1 ms; 2 and 3 ms are
    /// printed, not held (docs/throttling.md, round eleven).
    #[test]
    fn a_one_request_bucket_is_not_left_low_by_requests_arriving_early() {
        let mut held = None;
        for ms in [1, 2, 3] {
            let mut s = shape(10.0, 1.0, &[], 600, 30, AUTO);
            s.arrival_jitter = Duration::from_millis(ms);
            let a = spread(&s, variations());
            println!(
                "burst1 +{ms} ms auto {:.3} (worst {:.3}), 429 {:.2} %",
                a.ratio_median, a.ratio_worst, a.throttled_worst
            );
            held.get_or_insert(a);
        }
        let a = held.expect("the 1 ms spread ran");
        assert!(
            a.ratio_median >= 0.95 && a.ratio_worst >= 0.94 && a.throttled_worst <= 2.0,
            "{a:?}"
        );
    }

    /// Not one of issue 23's shapes: quotas under `--rate-start` (5/s), whose first 429 comes
    /// in slow start's second step. Read as one-request buckets, a bucket of two at 2/s was
    /// refused 17.53 % of the time and one of three at 3/s 12.79 % (`READ_STEPS`); the bounds
    /// are what the pacer reaches since (5.51 % and 4.46 %), so that a change making them worse
    /// fails here. The price is paid by a one-request bucket at 5/s, which the one-request
    /// rules were for and which is no longer read as one: 0.875 of best (worst 0.798), 3.23 %,
    /// where it reached 0.934 (worst 0.886), 3.54 %; its bound is what it reaches now.
    #[test]
    fn a_quota_under_the_starting_rate_is_not_refused_once_a_second() {
        for (rate, burst, rows, worst, pct) in [
            (2.0, 2.0, 240, 0.94, 6.0),
            (3.0, 3.0, 300, 0.98, 5.0),
            (5.0, 1.0, 300, 0.79, 3.5),
        ] {
            let s = shape(rate, burst, &[], rows, 30, AUTO);
            holds(&format!("{rate}/s burst {burst}"), &s, worst, pct);
        }
    }

    /// Prints `what`'s spread and fails unless its worst ratio is at least `worst` and its
    /// worst 429 share at most `pct`.
    fn holds(what: &str, s: &Scenario, worst: f64, pct: f64) {
        let a = spread(s, variations());
        println!(
            "{what} auto {:.3} (worst {:.3}), 429 {:.2} %",
            a.ratio_median, a.ratio_worst, a.throttled_worst
        );
        assert!(
            a.ratio_worst >= worst && a.throttled_worst <= pct,
            "{what}: {a:?}"
        );
    }

    /// Not one of issue 23's shapes: a service that answers in half a second or a second.
    /// Round six's stretch grows a probe step with the 1.5th power of the slowness: 134 s at
    /// 1 s, so no probe came and the run held its first figure, 0.740 (worst 0.731) of best;
    /// 0.893 (0.809) at 500 ms. `STEP_MAX` caps the stretch; the bounds are what the pacer
    /// reaches since (0.914 (0.909) and 0.970 (0.939), 2.28 % of 429s each).
    #[test]
    fn a_service_answering_in_a_second_is_still_probed() {
        for (ms, worst, pct) in [(500, 0.93, 2.5), (1000, 0.90, 2.5)] {
            let s = shape(10.0, 10.0, &[], 600, ms, AUTO);
            holds(&format!("10/s burst 10 at {ms} ms"), &s, worst, pct);
        }
    }
}
