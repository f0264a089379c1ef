//! The partner's request quota: a token bucket (governor's GCRA, the same limiter the client
//! paces with) of `rate` requests per second holding up to `burst`, whose rate may change on a
//! schedule, as Partner Center's unpublished per-partner quota does without notice.
//!
//! The simulator serves one partner tenant, so there is one bucket. A request past the quota is
//! answered 429; it does not use up quota (governor refuses without spending).

use std::num::{NonZeroU32, ParseFloatError};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota as GovernorQuota, RateLimiter};

use super::SimError;

type Limiter<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// A change of the quota's rate part-way through.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateChange {
    /// Time since the simulator started.
    pub after: Duration,
    /// The new rate, requests per second (more than 0).
    pub rate: f64,
}

/// The quota as configured: `rate` per second, `burst` at once, then the scheduled changes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct QuotaPlan {
    pub rate: f64,
    pub burst: u32,
    pub changes: Vec<RateChange>,
}

/// The live bucket.
pub(crate) struct Quota<C: Clock = DefaultClock> {
    plan: QuotaPlan,
    clock: C,
    started: C::Instant,
    /// Index into `plan.changes` of the next change not yet applied.
    next: usize,
    burst: NonZeroU32,
    limiter: Limiter<C>,
}

impl Quota<DefaultClock> {
    /// A quota on the real clock.
    pub fn new(plan: QuotaPlan) -> Result<Self, SimError> {
        Quota::with_clock(plan, DefaultClock::default())
    }
}

impl<C: Clock + Clone> Quota<C> {
    /// A quota on `clock`, full at the start.
    pub fn with_clock(mut plan: QuotaPlan, clock: C) -> Result<Self, SimError> {
        let bad = |what: String| Err(SimError::Config(what));
        for rate in std::iter::once(plan.rate).chain(plan.changes.iter().map(|c| c.rate)) {
            if !(rate.is_finite() && rate > 0.0 && rate <= 1e6) {
                return bad(format!(
                    "a quota rate must be above 0 and at most 1000000 per second, got {rate}"
                ));
            }
        }
        let Some(burst) = NonZeroU32::new(plan.burst) else {
            return bad("the quota's burst must be 1 or more".into());
        };
        plan.changes.sort_by_key(|c| c.after);
        let started = clock.now();
        let limiter = limiter(plan.rate, burst, clock.clone());
        Ok(Quota {
            plan,
            clock,
            started,
            next: 0,
            burst,
            limiter,
        })
    }

    /// Takes one request from the quota: `Ok` to serve it, `Err(wait)` (until a request would
    /// fit again) to answer 429.
    pub fn admit(&mut self) -> Result<(), Duration> {
        let now = self.clock.now();
        let elapsed: Duration = now.duration_since(self.started).into();
        while let Some(change) = self.plan.changes.get(self.next) {
            if change.after > elapsed {
                break;
            }
            self.next += 1;
            self.switch(change.rate);
        }
        self.limiter
            .check()
            .map_err(|not_until| not_until.wait_time_from(now))
    }

    /// Moves to a new rate keeping what the bucket holds: a rate change neither refills the
    /// bucket (which would flatter a client) nor empties it.
    fn switch(&mut self, rate: f64) {
        let mut held = 0u32;
        while held < self.burst.get() && self.limiter.check().is_ok() {
            held += 1;
        }
        let fresh = limiter(rate, self.burst, self.clock.clone());
        if let Some(spend) = NonZeroU32::new(self.burst.get() - held) {
            // The fresh limiter holds `burst`; `spend` is at most that, so this cannot fail.
            let _ = fresh.check_n(spend);
        }
        self.limiter = fresh;
    }
}

fn limiter<C: Clock>(rate: f64, burst: NonZeroU32, clock: C) -> Limiter<C> {
    // The rate was checked to lie in (0, 1e6], so the period is a valid, non-zero duration.
    let period = Duration::try_from_secs_f64(1.0 / rate).unwrap_or(Duration::from_secs(1));
    let quota = GovernorQuota::with_period(period)
        .unwrap_or_else(|| GovernorQuota::per_second(NonZeroU32::MAX))
        .allow_burst(burst);
    RateLimiter::direct_with_clock(quota, clock)
}

/// Why a `--throttle-change` value was not accepted; each names the value as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RateChangeError {
    /// No `:` between the time and the rate.
    #[error("{text:?}: expected AFTER:RATE, e.g. 20:6 (after 20 s, 6/s)")]
    Format {
        /// The value as given.
        text: String,
    },
    /// The time is not a number, or is negative, not finite or too large for a duration.
    #[error("{text:?}: the time must be 0 or more seconds")]
    After {
        /// The value as given.
        text: String,
        /// The parse error when the time is not a number at all.
        #[source]
        source: Option<ParseFloatError>,
    },
    /// The rate is not a number, or lies outside (0, 1e6].
    #[error("{text:?}: the rate must be above 0 requests per second")]
    Rate {
        /// The value as given.
        text: String,
        /// The parse error when the rate is not a number at all.
        #[source]
        source: Option<ParseFloatError>,
    },
}

/// Parses `--throttle-change AFTER:RATE` (`20:6`, `20s:6`, `1500ms:6`).
pub fn parse_change(text: &str) -> Result<RateChange, RateChangeError> {
    let (after, rate) = text
        .split_once(':')
        .ok_or_else(|| RateChangeError::Format {
            text: text.to_string(),
        })?;
    let bad_after = |source| RateChangeError::After {
        text: text.to_string(),
        source,
    };
    let bad_rate = |source| RateChangeError::Rate {
        text: text.to_string(),
        source,
    };
    let after = after.trim();
    let (number, scale) = match after.strip_suffix("ms") {
        Some(ms) => (ms, 0.001),
        None => (after.strip_suffix('s').unwrap_or(after), 1.0),
    };
    let seconds = number
        .trim()
        .parse::<f64>()
        .map_err(|e| bad_after(Some(e)))?;
    // Refuses a negative, infinite or too large time (and NaN).
    let after = Duration::try_from_secs_f64(seconds * scale).map_err(|_| bad_after(None))?;
    let rate = rate.trim().parse::<f64>().map_err(|e| bad_rate(Some(e)))?;
    let rate = Some(rate)
        .filter(|r| r.is_finite() && *r > 0.0 && *r <= 1e6)
        .ok_or_else(|| bad_rate(None))?;
    Ok(RateChange { after, rate })
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    fn admitted(quota: &mut Quota<FakeRelativeClock>, tries: u32) -> u32 {
        (0..tries).filter(|_| quota.admit().is_ok()).count() as u32
    }

    #[test]
    fn the_burst_then_the_rate_then_the_scheduled_rate() {
        let clock = FakeRelativeClock::default();
        let plan = QuotaPlan {
            rate: 15.0,
            burst: 15,
            changes: vec![RateChange {
                after: Duration::from_secs(20),
                rate: 6.0,
            }],
        };
        let mut quota = Quota::with_clock(plan, clock.clone()).expect("valid");
        // The full burst at once, then nothing: a refusal says how long to wait.
        assert_eq!(admitted(&mut quota, 40), 15);
        let wait = quota.admit().expect_err("over the quota");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(67),
            "{wait:?}"
        );
        // 15 per second for the next 19 s.
        let mut served = 0;
        for _ in 0..19_000 {
            clock.advance(Duration::from_millis(1));
            served += admitted(&mut quota, 1);
        }
        assert!((284..=286).contains(&served), "{served}");
        // After 20 s: 6 per second, and the change did not refill the bucket.
        clock.advance(Duration::from_secs(1));
        let at_change = admitted(&mut quota, 100);
        assert!(at_change <= 15, "{at_change}");
        let mut served = 0;
        for _ in 0..10_000 {
            clock.advance(Duration::from_millis(1));
            served += admitted(&mut quota, 1);
        }
        assert!((59..=61).contains(&served), "{served}");
    }

    #[test]
    fn a_rate_change_keeps_what_the_bucket_holds() {
        let clock = FakeRelativeClock::default();
        let plan = QuotaPlan {
            rate: 10.0,
            burst: 10,
            changes: vec![RateChange {
                after: Duration::from_millis(500),
                rate: 1.0,
            }],
        };
        let mut quota = Quota::with_clock(plan, clock.clone()).expect("valid");
        assert_eq!(admitted(&mut quota, 100), 10);
        clock.advance(Duration::from_millis(500));
        // Half a second at 10/s put 5 back; the change to 1/s neither refills nor empties them.
        assert_eq!(admitted(&mut quota, 100), 5);
    }

    #[test]
    fn bad_plans_and_changes_are_refused() {
        let plan = |rate, burst| QuotaPlan {
            rate,
            burst,
            changes: Vec::new(),
        };
        assert!(Quota::new(plan(0.0, 1)).is_err());
        assert!(Quota::new(plan(f64::NAN, 1)).is_err());
        assert!(Quota::new(plan(5.0, 0)).is_err());
        assert!(Quota::new(plan(0.5, 1)).is_ok());
        assert_eq!(
            parse_change("20:6"),
            Ok(RateChange {
                after: Duration::from_secs(20),
                rate: 6.0
            })
        );
        assert_eq!(
            parse_change("1500ms:2.5").map(|c| c.after),
            Ok(Duration::from_millis(1500))
        );
        for bad in ["20", "x:6", "-1:6", "20:0", "20:inf", "1e300:5"] {
            assert!(parse_change(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_changes_say_which_half_is_wrong() {
        use std::error::Error as _;
        let err = parse_change("20").expect_err("no colon");
        assert_eq!(err, RateChangeError::Format { text: "20".into() });
        assert_eq!(
            err.to_string(),
            r#""20": expected AFTER:RATE, e.g. 20:6 (after 20 s, 6/s)"#
        );

        // A time that is not a number keeps the parse error; one out of range has no cause.
        let err = parse_change("xs:6").expect_err("not a number");
        assert!(
            matches!(
                &err,
                RateChangeError::After {
                    source: Some(_),
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            r#""xs:6": the time must be 0 or more seconds"#
        );
        assert_eq!(
            err.source().map(|e| e.to_string()).as_deref(),
            Some("invalid float literal")
        );
        for negative in ["-1:6", "1e300:5"] {
            let err = parse_change(negative).expect_err("out of range");
            assert!(
                matches!(&err, RateChangeError::After { source: None, .. }),
                "{negative}: {err:?}"
            );
        }

        let err = parse_change("20:fast").expect_err("not a number");
        assert!(
            matches!(
                &err,
                RateChangeError::Rate {
                    source: Some(_),
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            r#""20:fast": the rate must be above 0 requests per second"#
        );
        for bad in ["20:0", "20:inf", "20:2e6"] {
            let err = parse_change(bad).expect_err("out of range");
            assert!(
                matches!(&err, RateChangeError::Rate { source: None, .. }),
                "{bad}: {err:?}"
            );
        }
    }
}
