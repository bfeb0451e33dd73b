//! Text forms of the apimachinery types whose JSON is not their protobuf fields: the
//! strings Go's `MarshalJSON` methods print.

/// Seconds from the Unix epoch to 0001-01-01T00:00:00Z, Go's zero `time.Time`.
const GO_ZERO_TIME: i64 = -62_135_596_800;

/// `metav1.Time` as JSON: RFC 3339 in UTC without fractional seconds, or `None` for Go's
/// zero time (printed as `null`). The nanos are ignored, as `metav1.Time.Unmarshal` does.
pub fn time(seconds: i64) -> Result<Option<String>, String> {
    if seconds == GO_ZERO_TIME {
        return Ok(None);
    }
    let t = utc(seconds)?;
    Ok(Some(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )))
}

/// `metav1.MicroTime` as JSON: RFC 3339 in UTC with exactly six fractional digits, or
/// `None` for Go's zero time. Nanos outside 0..1e9 carry into the seconds, as Go's
/// `time.Unix` does; the remainder is truncated to microseconds.
pub fn micro_time(seconds: i64, nanos: i32) -> Result<Option<String>, String> {
    let nanos = i64::from(nanos);
    let seconds = seconds
        .checked_add(nanos.div_euclid(1_000_000_000))
        .ok_or_else(|| format!("seconds {seconds} out of range"))?;
    let micros = nanos.rem_euclid(1_000_000_000) / 1_000;
    if seconds == GO_ZERO_TIME && micros == 0 {
        return Ok(None);
    }
    let t = utc(seconds)?;
    Ok(Some(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        micros
    )))
}

fn utc(seconds: i64) -> Result<time::OffsetDateTime, String> {
    // Go prints four-digit years only; RFC 3339 cannot express the rest.
    time::OffsetDateTime::from_unix_timestamp(seconds)
        .ok()
        .filter(|t| (0..=9999).contains(&t.year()))
        .ok_or_else(|| format!("time {seconds}s since the epoch is outside years 0 to 9999"))
}

/// A Go `time.Duration` (nanoseconds) as `Duration.String()` prints it: `1h2m3.5s`,
/// `1.5ms`, `0s`.
pub fn duration(nanos: i64) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let u = nanos.unsigned_abs();
    if u == 0 {
        return "0s".into();
    }
    if u < 1_000_000_000 {
        let (digits, unit) = match u {
            0..1_000 => (0, "ns"),
            1_000..1_000_000 => (3, "µs"),
            _ => (6, "ms"),
        };
        let scale = 10u64.pow(digits);
        return format!(
            "{sign}{}{}{unit}",
            u / scale,
            fraction(u % scale, digits as usize)
        );
    }
    let frac = fraction(u % 1_000_000_000, 9);
    let total_seconds = u / 1_000_000_000;
    let (h, m, s) = (
        total_seconds / 3600,
        total_seconds / 60 % 60,
        total_seconds % 60,
    );
    if h > 0 {
        format!("{sign}{h}h{m}m{s}{frac}s")
    } else if m > 0 {
        format!("{sign}{m}m{s}{frac}s")
    } else {
        format!("{sign}{s}{frac}s")
    }
}

/// `.ddd` with trailing zeros removed, or nothing when the fraction is zero (Go's
/// `fmtFrac`).
fn fraction(value: u64, digits: usize) -> String {
    if value == 0 {
        return String::new();
    }
    let s = format!(".{value:0digits$}");
    s.trim_end_matches('0').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_like_go() {
        assert_eq!(
            time(0).ok().flatten().as_deref(),
            Some("1970-01-01T00:00:00Z")
        );
        assert_eq!(
            time(1_700_000_000).ok().flatten().as_deref(),
            Some("2023-11-14T22:13:20Z")
        );
        assert_eq!(time(GO_ZERO_TIME), Ok(None));
        assert_eq!(
            time(GO_ZERO_TIME + 1).ok().flatten().as_deref(),
            Some("0001-01-01T00:00:01Z")
        );
        assert!(time(i64::MAX).is_err());
        assert!(time(-70_000_000_000).is_err());
    }

    #[test]
    fn micro_times_truncate_and_carry() {
        assert_eq!(
            micro_time(1_700_000_000, 123_456_789)
                .ok()
                .flatten()
                .as_deref(),
            Some("2023-11-14T22:13:20.123456Z")
        );
        assert_eq!(
            micro_time(0, 0).ok().flatten().as_deref(),
            Some("1970-01-01T00:00:00.000000Z")
        );
        assert_eq!(
            micro_time(0, -1_000).ok().flatten().as_deref(),
            Some("1969-12-31T23:59:59.999999Z")
        );
        assert_eq!(micro_time(GO_ZERO_TIME, 999), Ok(None));
        assert!(micro_time(i64::MAX, 1_000_000_000).is_err());
    }

    #[test]
    fn durations_print_like_go() {
        for (ns, want) in [
            (0, "0s"),
            (1, "1ns"),
            (1_500, "1.5µs"),
            (1_000_000, "1ms"),
            (1_234_567, "1.234567ms"),
            (1_000_000_000, "1s"),
            (90_000_000_000, "1m30s"),
            (3_600_000_000_000, "1h0m0s"),
            (3_723_500_000_000, "1h2m3.5s"),
            (-1_500_000_000, "-1.5s"),
            (i64::MIN, "-2562047h47m16.854775808s"),
        ] {
            assert_eq!(duration(ns), want, "{ns}");
        }
    }
}
