//! Run-wide counters shared by the workers and the writer: fixed-size, lock-free, so they cost
//! nothing per row and do not grow with the input.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::domain::model::Outcome;

/// Latency buckets grow by 5 % each, from 1 µs up to about 15 minutes.
const LATENCY_BUCKETS: usize = 420;
const BUCKET_GROWTH: f64 = 1.05;

/// Counters for one run.
#[derive(Default)]
pub struct Stats {
    statuses: Counters<600>,
    transport_errors: AtomicU64,
    retries: AtomicU64,
    throttled: AtomicU64,
    /// By `Outcome as usize` (`Outcome::ALL` lists the variants in declaration order).
    outcomes: Counters<{ Outcome::ALL.len() }>,
    latency: Counters<LATENCY_BUCKETS>,
    latency_max_us: AtomicU64,
    /// Customers an export has written.
    customers: AtomicU64,
    /// Vetting statuses are an open set, so they are counted by name (by the writer thread only).
    vetting: Mutex<BTreeMap<String, u64>>,
}

/// A fixed array of counters (std derives `Default` for arrays of at most 32).
struct Counters<const N: usize>([AtomicU64; N]);

impl<const N: usize> Default for Counters<N> {
    fn default() -> Self {
        Counters(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

impl Stats {
    /// Records one customer written by an export (with all its rows).
    pub fn record_customer(&self) {
        self.customers.fetch_add(1, Ordering::Relaxed);
    }

    /// Customers an export has written so far.
    pub fn customers(&self) -> u64 {
        self.customers.load(Ordering::Relaxed)
    }

    /// Records one HTTP answer and how long the exchange took.
    pub fn record_answer(&self, status: u16, latency: Duration) {
        if let Some(counter) = self.statuses.0.get(usize::from(status)) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        if status == 429 {
            self.throttled.fetch_add(1, Ordering::Relaxed);
        }
        self.record_latency(latency);
    }

    /// Records a send that got no HTTP answer.
    pub fn record_transport_error(&self) {
        self.transport_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Records that a call is being sent again.
    pub fn record_retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a row's final outcome.
    pub fn record_outcome(&self, outcome: Outcome) {
        self.outcomes.0[outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Records a finished row's vetting status (rows without one count as `none`).
    pub fn record_vetting(&self, status: Option<&str>) {
        let status = status.filter(|s| !s.is_empty()).unwrap_or("none");
        // Looked up by `&str` first: a row allocates only for a status not seen before.
        if let Ok(mut counts) = self.vetting.lock() {
            match counts.get_mut(status) {
                Some(n) => *n += 1,
                None => {
                    counts.insert(status.to_string(), 1);
                }
            }
        }
    }

    /// Rows by vetting status, in name order.
    pub fn vetting(&self) -> Vec<(String, u64)> {
        self.vetting
            .lock()
            .map(|c| c.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default()
    }

    fn record_latency(&self, latency: Duration) {
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        let bucket = ((us as f64).ln() / BUCKET_GROWTH.ln()) as usize;
        self.latency.0[bucket.min(LATENCY_BUCKETS - 1)].fetch_add(1, Ordering::Relaxed);
        self.latency_max_us.fetch_max(us, Ordering::Relaxed);
    }

    /// Rows with `outcome` so far.
    pub fn outcome(&self, outcome: Outcome) -> u64 {
        self.outcomes.0[outcome as usize].load(Ordering::Relaxed)
    }

    /// Answers by HTTP status, in status order.
    pub fn statuses(&self) -> Vec<(u16, u64)> {
        (0u16..)
            .zip(self.statuses.0.iter())
            .map(|(s, c)| (s, c.load(Ordering::Relaxed)))
            .filter(|(_, c)| *c > 0)
            .collect()
    }

    /// Sends that got no HTTP answer.
    pub fn transport_errors(&self) -> u64 {
        self.transport_errors.load(Ordering::Relaxed)
    }

    /// Resends of any call.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// 429 answers.
    pub fn throttled(&self) -> u64 {
        self.throttled.load(Ordering::Relaxed)
    }

    /// Every HTTP request sent, answered or not.
    pub fn requests(&self) -> u64 {
        self.statuses().iter().map(|(_, c)| c).sum::<u64>() + self.transport_errors()
    }

    /// The latency below which a fraction `q` of answers fell (bucket upper bound), if any.
    pub fn latency_quantile(&self, q: f64) -> Option<Duration> {
        let loads = self.latency.0.iter().map(|c| c.load(Ordering::Relaxed));
        let counts: Vec<u64> = loads.collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let target = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        let bucket = counts.iter().position(|count| {
            seen += count;
            seen >= target
        });
        let upper = bucket.map_or(u64::MAX, |i| BUCKET_GROWTH.powi(i as i32 + 1) as u64);
        Some(self.latency_max().min(Duration::from_micros(upper)))
    }

    /// The slowest answer.
    pub fn latency_max(&self) -> Duration {
        Duration::from_micros(self.latency_max_us.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_land_within_five_percent() {
        let stats = Stats::default();
        for ms in 1..=100u64 {
            stats.record_answer(201, Duration::from_millis(ms));
        }
        let p50 = stats.latency_quantile(0.5).expect("p50").as_secs_f64() * 1000.0;
        assert!((47.5..=52.5).contains(&p50), "{p50}");
        assert_eq!(stats.latency_max(), Duration::from_millis(100));
        assert_eq!(stats.statuses(), vec![(201, 100)]);
        assert_eq!(stats.requests(), 100);
    }
}
