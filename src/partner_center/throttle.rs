//! The process-wide request pacer: one rate limit for every HTTP call, a pool-wide pause after a
//! 429, and the rate [`crate::partner_center::pacer::Pacer`] decides, applied through governor's limiter.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::time::Instant;

use crate::partner_center::pacer::{Change, Pacer, RateMode};

/// The slowest rate governor is asked for (the pacer's floor is higher; this only guards the
/// arithmetic).
const MIN_RATE: f64 = 0.01;
/// A rate rise is logged at info level once it differs this much from the last one logged.
const LOG_STEP: f64 = 0.25;

/// What the pacer did over a run, for the summary and the metrics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateFigures {
    /// How the rate was chosen.
    pub mode: RateMode,
    /// The rate in force at the end (`None` = unlimited).
    pub last: Option<f64>,
    /// The lowest rate in force.
    pub min: Option<f64>,
    /// The highest rate in force.
    pub max: Option<f64>,
    /// The rate no 429 pushes it below.
    pub floor: f64,
}

/// Paces every HTTP request the process sends (retries and reads included).
pub struct Throttle {
    burst: NonZeroU32,
    limiter: RwLock<Option<Arc<DefaultDirectRateLimiter>>>,
    /// Waiters for the limiter, served first come, first served.
    queue: tokio::sync::Mutex<()>,
    pacer: Mutex<Pacer>,
    /// The last rate logged at info level.
    logged: Mutex<Option<f64>>,
    pauses: AtomicU64,
}

impl Throttle {
    /// A pacer for `mode` with bursts of `burst`.
    pub fn new(mode: RateMode, burst: u32) -> Self {
        let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let pacer = Pacer::new(mode, Instant::now().into_std());
        let rate = pacer.rate();
        Throttle {
            burst,
            limiter: RwLock::new(rate.map(|r| Arc::new(limiter_for(r, burst)))),
            queue: tokio::sync::Mutex::new(()),
            pacer: Mutex::new(pacer),
            logged: Mutex::new(rate),
            pauses: AtomicU64::new(0),
        }
    }

    /// Waits until this process may send one more request.
    pub async fn acquire(&self) {
        loop {
            while let Some(until) = self.pause_end() {
                tokio::time::sleep_until(until).await;
            }
            let _turn = if self.limiter.read().is_ok_and(|l| l.is_some()) {
                // governor wakes every waiter at the same instant and the first to look takes the
                // cell, so one worker can lose round after round while its row (and its token)
                // grows old. tokio's mutex is fair: the limiter serves the workers in the order
                // they asked.
                let turn = self.queue.lock().await;
                // Read after the turn is ours: a worker queued behind fifteen others must use the
                // rate in force now, not the one in force when it joined the queue.
                let limiter = self.limiter.read().map(|l| l.clone()).unwrap_or_default();
                if let Some(limiter) = limiter {
                    limiter.until_ready().await;
                }
                Some(turn)
            } else {
                None
            };
            // One look at the pacer per send. A 429 that arrived while this worker waited
            // forfeits the cell, or every worker holding one would go out together the moment
            // the pause ends. Otherwise the send is recorded (and a raised rate applied) while
            // this worker still holds its turn: the new limiter then starts from this very send.
            let now = Instant::now();
            let mut change = None;
            let paused = self.pacer(|p| {
                let paused = Instant::from_std(p.paused_until()) > now;
                if !paused {
                    change = p.on_send(now.into_std());
                }
                paused
            });
            if paused == Some(true) {
                continue;
            }
            if let Some(change) = change {
                self.apply(change, true);
            }
            return;
        }
    }

    /// Runs `f` on the pacer (`None` if a panic poisoned its lock).
    fn pacer<T>(&self, f: impl FnOnce(&mut Pacer) -> T) -> Option<T> {
        self.pacer.lock().ok().map(|mut p| f(&mut p))
    }

    /// The end of the 429 pause in force now, if one is.
    fn pause_end(&self) -> Option<Instant> {
        let until = self.pacer(|p| Instant::from_std(p.paused_until()));
        until.filter(|&until| until > Instant::now())
    }

    /// Whether a 429 pause is in force now.
    pub fn is_paused(&self) -> bool {
        self.pause_end().is_some()
    }

    /// Number of distinct pool-wide pauses so far.
    pub fn pauses(&self) -> u64 {
        self.pauses.load(Ordering::Relaxed)
    }

    /// The rate in force now (`None` = unlimited).
    pub fn current_rate(&self) -> Option<f64> {
        self.pacer(|p| p.rate()).flatten()
    }

    /// The rate's course over the run so far.
    pub fn figures(&self) -> Option<RateFigures> {
        self.pacer(|p| p.figures())
    }

    /// The rows start flowing now (see [`Pacer::begin`]): called once the sign-in and the
    /// pre-flight checks are over, right before the first row is handed to a worker.
    pub fn begin(&self) {
        self.pacer(Pacer::begin);
    }

    /// Records an answer's time to its status line (a slow service gets longer rate steps)
    /// and, unless it is a 429 (see [`Throttle::on_throttled`]), that the service took the
    /// request into its quota: one look at the pacer per answer.
    pub fn on_answer(&self, latency: Duration, status: u16) {
        self.pacer(|p| {
            p.on_answer(latency);
            if status != 429 {
                p.on_accepted();
            }
        });
    }

    /// Records a request that got no answer (a timeout, a cut connection, an unread body).
    pub fn on_unanswered(&self) {
        self.pacer(Pacer::on_unanswered);
    }

    /// Records a 429 asking to wait `wait`: the pacer decides whether it starts a pool-wide
    /// pause (answers to requests already in flight do not), how long, and the rate.
    pub fn on_throttled(&self, wait: Duration) {
        let now = Instant::now();
        let until = now.checked_add(wait).unwrap_or(now);
        let pause = self.pacer(|p| p.on_throttled(now.into_std(), until.into_std()));
        let Some(pause) = pause.flatten() else {
            return;
        };
        self.pauses.fetch_add(1, Ordering::Relaxed);
        let pause_ms = pause
            .until
            .saturating_duration_since(now.into_std())
            .as_millis();
        tracing::info!(
            wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            pause_ms = u64::try_from(pause_ms).unwrap_or(u64::MAX),
            "throttled (429): pausing every worker"
        );
        if let Some(change) = pause.change {
            // Nothing goes out during the pause, so the new limiter may start with its burst.
            self.apply(change, false);
        }
    }

    /// Swaps in a limiter for the new rate. `drain`: the caller has just sent, so the new
    /// limiter's first cell is one period away, as the old one's would have been; otherwise the
    /// change came with a pause.
    fn apply(&self, change: Change, drain: bool) {
        let limiter = limiter_for(change.rate, self.burst);
        if drain {
            // Spends the fresh limiter's burst; an error only means less was there to spend.
            let _ = limiter.check_n(self.burst);
        }
        if let Ok(mut slot) = self.limiter.write() {
            *slot = Some(Arc::new(limiter));
        }
        let Ok(mut logged) = self.logged.lock() else {
            return;
        };
        let rate = format!("{:.2}", change.rate);
        if !drain && change.accepted.is_none() {
            // The provisional limit of a pause, before anything was measured.
            tracing::debug!(rate, "provisional request rate during the pause");
            return;
        }
        let noteworthy = change.accepted.is_some()
            || logged.is_none_or(|l| (change.rate - l).abs() >= l * LOG_STEP);
        if !noteworthy {
            tracing::debug!(rate, "request rate raised");
            return;
        }
        *logged = Some(change.rate);
        match change.accepted {
            Some(accepted) => tracing::info!(
                rate,
                accepted = format!("{accepted:.2}"),
                "request rate set from what the service accepted"
            ),
            None => tracing::info!(rate, "request rate raised"),
        }
    }
}

/// A GCRA limiter for a fractional rate: one cell every `1/rate` seconds, `burst` at once.
fn limiter_for(rate: f64, burst: NonZeroU32) -> DefaultDirectRateLimiter {
    let period = Duration::try_from_secs_f64(1.0 / rate.max(MIN_RATE)).unwrap_or(Duration::MAX);
    let quota = Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
        .allow_burst(burst);
    RateLimiter::direct(quota)
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    #[test]
    fn fractional_quota_paces_one_cell_per_period() {
        let clock = FakeRelativeClock::default();
        let quota = Quota::with_period(Duration::from_secs_f64(1.0 / 2.5))
            .expect("period")
            .allow_burst(NonZeroU32::MIN);
        let limiter = RateLimiter::direct_with_clock(quota, clock.clone());
        assert!(limiter.check().is_ok());
        assert!(limiter.check().is_err());
        clock.advance(Duration::from_millis(399));
        assert!(limiter.check().is_err());
        clock.advance(Duration::from_millis(1));
        assert!(limiter.check().is_ok());
    }

    // One thread, so that each call is queued before the next is spawned, however busy the machine.
    #[tokio::test]
    async fn waiting_workers_are_served_in_the_order_they_asked() {
        let throttle = Arc::new(Throttle::new(RateMode::Fixed(100.0), 1));
        // Spend the burst so that every call below has to wait for a cell.
        throttle.acquire().await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..8 {
            let (throttle, order) = (throttle.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                throttle.acquire().await;
                order.lock().expect("order").push(i);
            }));
            // Spread the asks over several cells' time, as workers finishing their rows do.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        for task in tasks {
            task.await.expect("task");
        }
        assert_eq!(*order.lock().expect("order"), (0..8).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_429_pauses_and_sets_the_rate_once_per_pause() {
        let throttle = Throttle::new(RateMode::Fixed(10.0), 1);
        throttle.on_throttled(Duration::from_millis(50));
        assert!(throttle.is_paused());
        // Decided when the pause is over (answers sent before the 429 are still arriving).
        assert_eq!(throttle.current_rate(), Some(10.0));
        // A second 429 inside the same pause (an in-flight answer) decides nothing new.
        throttle.on_throttled(Duration::from_millis(50));
        assert_eq!(throttle.pauses(), 1);
        let start = Instant::now();
        throttle.acquire().await;
        assert!(start.elapsed() >= Duration::from_millis(45));
        assert!(!throttle.is_paused());
        // Nothing was accepted before it: the floor, a tenth of --rate.
        assert_eq!(throttle.current_rate(), Some(1.0));
        let figures = throttle.figures().expect("figures");
        assert_eq!(figures.min, Some(1.0));
        assert_eq!(figures.max, Some(10.0));
    }

    #[tokio::test]
    async fn an_unlimited_throttle_is_bounded_only_after_a_429() {
        let throttle = Throttle::new(RateMode::Unlimited, 1);
        for _ in 0..20 {
            throttle.acquire().await;
            throttle.on_answer(Duration::from_millis(1), 200);
        }
        assert_eq!(throttle.current_rate(), None);
        throttle.on_throttled(Duration::from_millis(1));
        throttle.acquire().await;
        let rate = throttle.current_rate().expect("limited after a 429");
        assert!(rate >= crate::partner_center::pacer::FLOOR_MIN, "{rate}");
    }

    // Real time: 60 requests (3 s at the starting rate) that the limiter paces and the service
    // accepts; the rate must have grown at least once.
    #[tokio::test]
    async fn an_auto_rate_rises_while_requests_are_accepted() {
        let throttle = Throttle::new(
            RateMode::Auto {
                start: 20.0,
                max: None,
            },
            1,
        );
        for _ in 0..60 {
            throttle.acquire().await;
            throttle.on_answer(Duration::from_millis(1), 200);
        }
        let rate = throttle.current_rate().expect("limited");
        assert!(rate > 20.0, "{rate}");
    }
}
