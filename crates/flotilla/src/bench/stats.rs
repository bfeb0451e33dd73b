//! Latency samples and their percentiles. A sorted vector is exact and small
//! enough here: a run records at most a few hundred thousand samples per verb.

use std::time::Duration;

#[derive(Clone, Debug, Default)]
pub struct Samples {
    micros: Vec<u64>,
    sorted: bool,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Summary {
    pub count: usize,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Samples {
    pub fn record(&mut self, d: Duration) {
        self.micros
            .push(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        self.sorted = false;
    }

    pub fn merge(&mut self, other: Samples) {
        self.micros.extend(other.micros);
        self.sorted = false;
    }

    pub fn summary(&mut self) -> Summary {
        if !self.sorted {
            self.micros.sort_unstable();
            self.sorted = true;
        }
        // Nearest rank: the smallest sample with at least q of all at or below it.
        let at = |q: f64| {
            if self.micros.is_empty() {
                return Duration::ZERO;
            }
            let rank = ((q * self.micros.len() as f64).ceil() as usize).max(1);
            Duration::from_micros(self.micros[rank.min(self.micros.len()) - 1])
        };
        Summary {
            count: self.micros.len(),
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut s = Samples::default();
        for ms in (1..=100).rev() {
            s.record(Duration::from_millis(ms));
        }
        let sum = s.summary();
        assert_eq!(sum.count, 100);
        assert_eq!(sum.p50, Duration::from_millis(50));
        assert_eq!(sum.p90, Duration::from_millis(90));
        assert_eq!(sum.p99, Duration::from_millis(99));
        assert_eq!(sum.max, Duration::from_millis(100));
        assert_eq!(Samples::default().summary().p99, Duration::ZERO);
    }
}
