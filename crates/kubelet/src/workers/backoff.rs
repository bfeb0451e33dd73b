//! CrashLoopBackOff: a container that keeps exiting is restarted after 10 s,
//! then 20 s, 40 s, … up to 5 min; the delay resets once it has run for
//! 10 minutes, as the kubelet does.

use std::time::{Duration, SystemTime};

pub(crate) const INITIAL: Duration = Duration::from_secs(10);
pub(crate) const MAX: Duration = Duration::from_secs(300);
/// A container that ran at least this long restarts without delay.
pub(crate) const RESET_AFTER: Duration = Duration::from_secs(600);

/// The delay before restart number `restarts + 1` of a container that last
/// ran from `started` to `finished`: none before the first restart, then
/// 10 s, 20 s, … (the kubelet starts its back-off at the first restart).
pub(crate) fn delay(restarts: u32, started: Option<SystemTime>, finished: SystemTime) -> Duration {
    let ran = started.and_then(|s| finished.duration_since(s).ok());
    if restarts == 0 || ran.is_some_and(|r| r >= RESET_AFTER) {
        return Duration::ZERO;
    }
    let doublings = (restarts - 1).min(16);
    INITIAL.saturating_mul(1 << doublings).min(MAX)
}

/// How long from `now` until the restart may happen; zero when it may now.
pub(crate) fn remaining(
    restarts: u32,
    started: Option<SystemTime>,
    finished: SystemTime,
    now: SystemTime,
) -> Duration {
    let due = finished + delay(restarts, started, finished);
    due.duration_since(now).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_ten_seconds_to_five_minutes() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let started = Some(t - Duration::from_secs(1));
        let d = |n| delay(n, started, t).as_secs();
        assert_eq!(
            [d(0), d(1), d(2), d(3), d(5), d(6), d(30)],
            [0, 10, 20, 40, 160, 300, 300]
        );
    }

    #[test]
    fn a_long_run_resets_the_delay() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(10_000);
        assert_eq!(delay(7, Some(t - RESET_AFTER), t), Duration::ZERO);
        assert_eq!(
            remaining(
                2,
                Some(t - Duration::from_secs(1)),
                t,
                t + Duration::from_secs(5)
            ),
            Duration::from_secs(15)
        );
    }
}
