//! Counters that say where the scheduler's time goes; read by the benchmark
//! and logged periodically.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Debug, Default)]
pub struct Stats {
    pub cycles: AtomicU64,
    pub cycle_nanos: AtomicU64,
    pub updates: AtomicU64,
    pub apply_nanos: AtomicU64,
    pub bound: AtomicU64,
    pub bind_errors: AtomicU64,
    pub unschedulable: AtomicU64,
    /// Time from the start until every informer had listed, in nanoseconds.
    pub synced_nanos: AtomicU64,
}

impl Stats {
    pub fn add_cycle(&self, d: Duration) {
        self.cycles.fetch_add(1, Ordering::Relaxed);
        self.cycle_nanos.fetch_add(nanos(d), Ordering::Relaxed);
    }

    pub fn add_apply(&self, n: u64, d: Duration) {
        self.updates.fetch_add(n, Ordering::Relaxed);
        self.apply_nanos.fetch_add(nanos(d), Ordering::Relaxed);
    }

    pub fn add_bound(&self) {
        self.bound.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add_bind_error(&self) {
        self.bind_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add_unschedulable(&self) {
        self.unschedulable.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_synced(&self, d: Duration) {
        self.synced_nanos.store(nanos(d), Ordering::Relaxed);
    }

    pub fn get(v: &AtomicU64) -> u64 {
        v.load(Ordering::Relaxed)
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
