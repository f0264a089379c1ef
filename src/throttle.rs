//! The process-wide request pacer: one rate limit for every HTTP call, a pool-wide pause after a
//! 429, and an effective rate that halves on throttling and climbs back while calls succeed.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::time::Instant;

/// How long calls must keep succeeding before the effective rate is raised one step.
const RECOVERY_INTERVAL: Duration = Duration::from_secs(5);
/// The effective rate never drops below this many calls per second.
const MIN_RATE: f64 = 0.1;

/// Paces every HTTP request the process sends (retries and reads included).
pub struct Throttle {
    /// `--rate`; `None` means unlimited.
    ceiling: Option<f64>,
    burst: NonZeroU32,
    limiter: RwLock<Option<Arc<DefaultDirectRateLimiter>>>,
    /// Waiters for the limiter, served first come, first served.
    queue: tokio::sync::Mutex<()>,
    state: Mutex<AdaptState>,
    /// Set while the effective rate is below the ceiling, so the success path can skip the lock.
    reduced: AtomicBool,
    paused_until: Mutex<Option<Instant>>,
    pauses: AtomicU64,
    sent: AtomicU64,
    started: Instant,
}

struct AdaptState {
    /// The effective rate, `None` while unlimited.
    rate: Option<f64>,
    last_change: Instant,
    /// For an unlimited ceiling: the rate at which throttling first hit, to know when to let go.
    observed: f64,
}

impl Throttle {
    /// A pacer allowing `rate` requests/s (0 = unlimited) with bursts of `burst`.
    pub fn new(rate: f64, burst: u32) -> Self {
        let ceiling = (rate > 0.0).then_some(rate);
        let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let now = Instant::now();
        Throttle {
            ceiling,
            burst,
            limiter: RwLock::new(ceiling.map(|r| Arc::new(limiter_for(r, burst)))),
            queue: tokio::sync::Mutex::new(()),
            state: Mutex::new(AdaptState {
                rate: ceiling,
                last_change: now,
                observed: 0.0,
            }),
            reduced: AtomicBool::new(false),
            paused_until: Mutex::new(None),
            pauses: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            started: now,
        }
    }

    /// Waits until this process may send one more request.
    pub async fn acquire(&self) {
        self.wait_out_pause().await;
        let limiter = self.limiter.read().map(|l| l.clone()).unwrap_or_default();
        if let Some(limiter) = limiter {
            // governor wakes every waiter at the same instant and the first to look takes the cell,
            // so one worker can lose round after round while its row (and its token) grows old.
            // tokio's mutex is fair: the limiter serves the workers in the order they asked.
            let _turn = self.queue.lock().await;
            limiter.until_ready().await;
        }
        // A 429 may have arrived while this call waited for its slot; it must not go out during the pause.
        self.wait_out_pause().await;
        self.sent.fetch_add(1, Ordering::Relaxed);
    }

    async fn wait_out_pause(&self) {
        loop {
            let until = self.paused_until.lock().map(|p| *p).unwrap_or(None);
            match until {
                Some(until) if until > Instant::now() => tokio::time::sleep_until(until).await,
                _ => return,
            }
        }
    }

    /// Whether a 429 pause is in force now.
    pub fn is_paused(&self) -> bool {
        matches!(self.paused_until.lock().map(|p| *p), Ok(Some(until)) if until > Instant::now())
    }

    /// Number of distinct pool-wide pauses so far.
    pub fn pauses(&self) -> u64 {
        self.pauses.load(Ordering::Relaxed)
    }

    /// The effective rate now (`None` = unlimited).
    pub fn current_rate(&self) -> Option<f64> {
        self.state.lock().ok().and_then(|s| s.rate)
    }

    /// Records a 429: pauses every worker for `wait` and lowers the effective rate.
    pub fn on_throttled(&self, wait: Duration) {
        let now = Instant::now();
        let new_pause = {
            let Ok(mut paused) = self.paused_until.lock() else {
                return;
            };
            let already = matches!(*paused, Some(until) if until > now);
            let until = now + wait;
            if paused.is_none_or(|p| p < until) {
                *paused = Some(until);
            }
            !already
        };
        if !new_pause {
            // Answers to requests that were already in flight: one pause, one rate cut.
            return;
        }
        self.pauses.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            wait_ms = wait.as_millis() as u64,
            "throttled (429): pausing every worker"
        );
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let current = match state.rate {
            Some(rate) => rate,
            None => {
                let elapsed = self.started.elapsed().as_secs_f64().max(1.0);
                let observed = self.sent.load(Ordering::Relaxed) as f64 / elapsed;
                state.observed = observed.max(MIN_RATE * 2.0);
                state.observed
            }
        };
        let lowered = (current / 2.0).max(MIN_RATE);
        self.set_rate(&mut state, Some(lowered), now);
    }

    /// Records a successful call; after a calm spell the effective rate is raised a step.
    pub fn on_success(&self) {
        if !self.reduced.load(Ordering::Relaxed) {
            return;
        }
        let now = Instant::now();
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if now.duration_since(state.last_change) < RECOVERY_INTERVAL || self.is_paused() {
            return;
        }
        let Some(rate) = state.rate else { return };
        let next = match self.ceiling {
            Some(ceiling) => {
                let raised = rate + (ceiling * 0.1).max(0.1);
                (raised < ceiling).then_some(raised)
            }
            // Unlimited: grow by a quarter until well past the rate that was throttled, then let go.
            None => {
                let raised = rate * 1.25;
                (raised < state.observed * 2.0).then_some(raised)
            }
        };
        let target = next.or(self.ceiling);
        self.set_rate(&mut state, target, now);
    }

    fn set_rate(&self, state: &mut AdaptState, rate: Option<f64>, now: Instant) {
        state.rate = rate;
        state.last_change = now;
        let reduced = match (rate, self.ceiling) {
            (Some(r), Some(c)) => r < c,
            (Some(_), None) => true,
            (None, _) => false,
        };
        self.reduced.store(reduced, Ordering::Relaxed);
        match rate {
            Some(r) => tracing::info!(rate = format!("{r:.2}"), "effective request rate changed"),
            None => tracing::info!("effective request rate back to unlimited"),
        }
        if let Ok(mut limiter) = self.limiter.write() {
            *limiter = rate.map(|r| Arc::new(limiter_for(r, self.burst)));
        }
    }
}

/// A GCRA limiter for a fractional rate: one cell every `1/rate` seconds, `burst` at once.
fn limiter_for(rate: f64, burst: NonZeroU32) -> DefaultDirectRateLimiter {
    let period = Duration::from_secs_f64(1.0 / rate.max(MIN_RATE));
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
        let throttle = Arc::new(Throttle::new(100.0, 1));
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
    async fn a_429_halves_the_rate_and_pauses() {
        let throttle = Throttle::new(10.0, 1);
        throttle.on_throttled(Duration::from_millis(50));
        assert!(throttle.is_paused());
        assert_eq!(throttle.current_rate(), Some(5.0));
        // A second 429 inside the same pause (an in-flight answer) does not cut again.
        throttle.on_throttled(Duration::from_millis(50));
        assert_eq!(throttle.current_rate(), Some(5.0));
        assert_eq!(throttle.pauses(), 1);
        let start = Instant::now();
        throttle.acquire().await;
        assert!(start.elapsed() >= Duration::from_millis(45));
        assert!(!throttle.is_paused());
    }

    #[tokio::test(start_paused = true)]
    async fn the_rate_recovers_stepwise_and_never_passes_the_ceiling() {
        let throttle = Throttle::new(10.0, 1);
        throttle.on_throttled(Duration::from_millis(10));
        assert_eq!(throttle.current_rate(), Some(5.0));
        throttle.on_success();
        assert_eq!(throttle.current_rate(), Some(5.0), "too early to raise");
        for _ in 0..10 {
            tokio::time::advance(RECOVERY_INTERVAL).await;
            throttle.on_success();
        }
        assert_eq!(throttle.current_rate(), Some(10.0));
    }

    #[tokio::test(start_paused = true)]
    async fn an_unlimited_pacer_is_bounded_after_a_429_and_later_let_go() {
        let throttle = Throttle::new(0.0, 1);
        assert_eq!(throttle.current_rate(), None);
        throttle.on_throttled(Duration::from_millis(10));
        assert!(throttle.current_rate().is_some());
        for _ in 0..40 {
            tokio::time::advance(RECOVERY_INTERVAL).await;
            throttle.on_success();
        }
        assert_eq!(throttle.current_rate(), None);
    }
}
