//! When a cron schedule fires, in a time zone: the next time after an instant,
//! and the latest time missed since one.

use apimachinery::cron::CronSchedule;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

/// How far ahead a schedule is searched: a schedule that never fires (Feb 30)
/// gives up rather than loops.
const HORIZON_DAYS: i64 = 5 * 366;

/// A schedule with its zone: `CRON_TZ=`/`TZ=` in the schedule wins over
/// `spec.timeZone`, which wins over UTC.
pub struct Schedule {
    cron: CronSchedule,
    tz: TimeZone,
}

impl Schedule {
    pub fn parse(spec: &str, time_zone: Option<&str>) -> Result<Schedule, String> {
        let spec = spec.trim();
        let (zone, rest) = match spec.split_once(' ') {
            Some((first, rest)) if first.starts_with("CRON_TZ=") || first.starts_with("TZ=") => {
                (Some(first.split_once('=').map_or("", |(_, z)| z)), rest)
            }
            _ => (time_zone, spec),
        };
        let tz = match zone {
            None | Some("" | "UTC" | "Etc/UTC") => TimeZone::UTC,
            Some(z) => TimeZone::get(z).map_err(|e| format!("unknown time zone {z}: {e}"))?,
        };
        Ok(Schedule {
            cron: CronSchedule::parse(rest)?,
            tz,
        })
    }

    fn matches(&self, t: Timestamp) -> Step {
        let z = t.to_zoned(self.tz.clone());
        let (minute, hour) = (z.minute() as u32, z.hour() as u32);
        let has = |bits: u64, v: u32| bits & (1 << v) != 0;
        let weekday = z.weekday().to_sunday_zero_offset() as u32;
        let day_ok = {
            let dom = has(self.cron.days_of_month, z.day() as u32);
            let dow = has(self.cron.days_of_week, weekday);
            if self.cron.dom_star || self.cron.dow_star {
                dom && dow
            } else {
                dom || dow
            }
        };
        if !has(self.cron.months, z.month() as u32) || !day_ok {
            Step::Minutes(i64::from(24 * 60 - hour * 60 - minute))
        } else if !has(self.cron.hours, hour) {
            Step::Minutes(i64::from(60 - minute))
        } else if !has(self.cron.minutes, minute) {
            Step::Minutes(1)
        } else {
            Step::Fires
        }
    }

    /// The first firing strictly after `after`.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let start = truncate_to_minute(after)
            .checked_add(SignedDuration::from_mins(1))
            .ok()?;
        let limit = start
            .checked_add(SignedDuration::from_hours(24 * HORIZON_DAYS))
            .ok()?;
        let mut t = start;
        while t <= limit {
            match self.matches(t) {
                Step::Fires => return Some(t),
                Step::Minutes(m) => {
                    t = truncate_to_minute(t.checked_add(SignedDuration::from_mins(m.max(1))).ok()?)
                }
            }
        }
        None
    }

    /// The latest firing in `(since, now]` and how many there were (counting
    /// stops past 100, as Kubernetes warns about too many missed starts).
    pub fn last_missed(&self, since: Timestamp, now: Timestamp) -> (Option<Timestamp>, usize) {
        let (last, count, complete) = self.scan(since, now, 100);
        if complete {
            return (last, count);
        }
        // Far behind (a long suspension): only the latest matters, so look back
        // over growing windows until one holds a firing.
        for days in [1, 31, 366] {
            let from = now
                .checked_sub(SignedDuration::from_hours(24 * days))
                .unwrap_or(since)
                .max(since);
            let (latest, _, _) = self.scan(from, now, usize::MAX);
            if latest.is_some() {
                return (latest, count);
            }
        }
        (last, count)
    }

    /// Firings in `(since, now]`, at most `limit` of them; whether all were seen.
    fn scan(
        &self,
        since: Timestamp,
        now: Timestamp,
        limit: usize,
    ) -> (Option<Timestamp>, usize, bool) {
        let mut last = None;
        let mut count = 0;
        let mut t = since;
        while let Some(next) = self.next_after(t) {
            if next > now {
                return (last, count, true);
            }
            if count >= limit {
                return (last, count, false);
            }
            last = Some(next);
            count += 1;
            t = next;
        }
        (last, count, true)
    }
}

enum Step {
    Fires,
    Minutes(i64),
}

fn truncate_to_minute(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second() - t.as_second().rem_euclid(60)).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    #[test]
    fn finds_the_next_firing() {
        let s = Schedule::parse("*/15 9-17 * * mon-fri", None).expect("schedule");
        // Saturday → Monday 09:00.
        assert_eq!(
            s.next_after(at("2026-11-28T10:07:00Z")),
            Some(at("2026-11-30T09:00:00Z"))
        );
        assert_eq!(
            s.next_after(at("2026-11-30T09:00:00Z")),
            Some(at("2026-11-30T09:15:00Z"))
        );
        let every_minute = Schedule::parse("* * * * *", None).expect("schedule");
        assert_eq!(
            every_minute.next_after(at("2026-11-30T09:00:30Z")),
            Some(at("2026-11-30T09:01:00Z"))
        );
        let never = Schedule::parse("0 0 30 2 *", None).expect("schedule");
        assert_eq!(never.next_after(at("2026-01-01T00:00:00Z")), None);
    }

    #[test]
    fn finds_the_latest_missed_firing() {
        let s = Schedule::parse("@hourly", None).expect("schedule");
        let (last, n) = s.last_missed(at("2026-11-30T09:30:00Z"), at("2026-11-30T12:10:00Z"));
        assert_eq!((last, n), (Some(at("2026-11-30T12:00:00Z")), 3));
        let (none, n) = s.last_missed(at("2026-11-30T09:30:00Z"), at("2026-11-30T09:59:00Z"));
        assert_eq!((none, n), (None, 0));
        let every_minute = Schedule::parse("* * * * *", None).expect("schedule");
        let (last, n) =
            every_minute.last_missed(at("2026-11-01T00:00:00Z"), at("2026-11-30T12:10:30Z"));
        assert_eq!(last, Some(at("2026-11-30T12:10:00Z")));
        assert_eq!(n, 100);
    }

    #[test]
    fn honours_time_zones() {
        let s = Schedule::parse("CRON_TZ=UTC 30 6 * * *", Some("Europe/Paris")).expect("schedule");
        assert_eq!(
            s.next_after(at("2026-11-30T00:00:00Z")),
            Some(at("2026-11-30T06:30:00Z"))
        );
        if let Ok(paris) = Schedule::parse("30 6 * * *", Some("Europe/Paris")) {
            // 06:30 in Paris is 05:30 UTC in winter.
            assert_eq!(
                paris.next_after(at("2026-11-30T00:00:00Z")),
                Some(at("2026-11-30T05:30:00Z"))
            );
        }
        assert!(Schedule::parse("* * * *", None).is_err());
    }
}
