//! Standard five-field cron schedules (`*/5 * * * *`, `@hourly`), as CronJobs use.

/// A parsed schedule: the allowed values of each field as bit sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronSchedule {
    pub minutes: u64,
    pub hours: u64,
    pub days_of_month: u64,
    pub months: u64,
    pub days_of_week: u64,
    /// True when day-of-month or day-of-week was `*` (cron then matches on the other alone).
    pub dom_star: bool,
    pub dow_star: bool,
}

const MONTHS: &[&str] = &[
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

fn value(s: &str, min: u32, max: u32, names: &[&str], name_base: u32) -> Result<u32, String> {
    if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
        return Ok(i as u32 + name_base);
    }
    let v: u32 = s
        .parse()
        .map_err(|_| format!("failed to parse int from {s}"))?;
    if v < min || v > max {
        return Err(format!("value ({v}) out of range [{min}, {max}]"));
    }
    Ok(v)
}

fn field(expr: &str, min: u32, max: u32, names: &[&str], name_base: u32) -> Result<u64, String> {
    let mut bits = 0u64;
    for part in expr.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s
                    .parse()
                    .map_err(|_| format!("failed to parse int from {s}"))?;
                if step == 0 {
                    return Err(format!("step of range should be a positive number: {part}"));
                }
                (r, Some(step))
            }
            None => (part, None),
        };
        let (lo, hi) = if range == "*" || range == "?" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (
                value(a, min, max, names, name_base)?,
                value(b, min, max, names, name_base)?,
            )
        } else {
            let v = value(range, min, max, names, name_base)?;
            (v, if step.is_some() { max } else { v })
        };
        if lo > hi {
            return Err(format!(
                "beginning of range ({lo}) beyond end of range ({hi}): {part}"
            ));
        }
        let step = step.unwrap_or(1);
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok(bits)
}

impl CronSchedule {
    pub fn parse(spec: &str) -> Result<Self, String> {
        let spec = spec.trim();
        let expanded = match spec {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            s if s.starts_with('@') => return Err(format!("unrecognized descriptor: {s}")),
            s => s,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let [min, hour, dom, month, dow] = fields.as_slice() else {
            return Err(format!(
                "expected exactly 5 fields, found {}: [{}]",
                fields.len(),
                fields.join(" ")
            ));
        };
        let mut days_of_week = field(dow, 0, 7, DAYS, 0)?;
        if days_of_week & (1 << 7) != 0 {
            days_of_week = (days_of_week | 1) & !(1 << 7);
        }
        Ok(Self {
            minutes: field(min, 0, 59, &[], 0)?,
            hours: field(hour, 0, 23, &[], 0)?,
            days_of_month: field(dom, 1, 31, &[], 0)?,
            months: field(month, 1, 12, MONTHS, 1)?,
            days_of_week,
            dom_star: dom.starts_with('*') || dom.starts_with('?'),
            dow_star: dow.starts_with('*') || dow.starts_with('?'),
        })
    }

    /// Whether the schedule fires at this minute (`weekday` 0 = Sunday).
    pub fn matches(&self, minute: u32, hour: u32, day: u32, month: u32, weekday: u32) -> bool {
        let has = |bits: u64, v: u32| v < 64 && bits & (1 << v) != 0;
        let dom = has(self.days_of_month, day);
        let dow = has(self.days_of_week, weekday);
        let day_ok = if self.dom_star || self.dow_star {
            dom && dow
        } else {
            dom || dow
        };
        has(self.minutes, minute) && has(self.hours, hour) && has(self.months, month) && day_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_schedules() {
        let s = CronSchedule::parse("*/15 9-17 * * mon-fri").expect("valid");
        assert!(s.matches(30, 10, 5, 3, 1));
        assert!(!s.matches(31, 10, 5, 3, 1));
        assert!(!s.matches(30, 10, 5, 3, 0));
        let h = CronSchedule::parse("@hourly").expect("valid");
        assert!(h.matches(0, 5, 1, 1, 3) && !h.matches(1, 5, 1, 1, 3));
        let sunday = CronSchedule::parse("0 0 * * 7").expect("valid");
        assert!(sunday.matches(0, 0, 7, 1, 0));
        assert!(
            CronSchedule::parse("0 0 1,15 * 1")
                .expect("valid")
                .matches(0, 0, 3, 1, 1)
        );
        for bad in [
            "",
            "* * * *",
            "60 * * * *",
            "* * * * * *",
            "*/0 * * * *",
            "5-1 * * * *",
            "@often",
            "a * * * *",
        ] {
            assert!(CronSchedule::parse(bad).is_err(), "{bad}");
        }
    }
}
