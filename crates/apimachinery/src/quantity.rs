//! Kubernetes resource quantities (`100m`, `1.5Gi`, `2e3`, `128974848`): parsed
//! exactly into nano-units, compared, added, and printed back in canonical form.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// The notation a quantity was written in; canonical output keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// `Ki`, `Mi`, … powers of 1024.
    BinarySI,
    /// `n`, `u`, `m`, ``, `k`, `M`, … powers of 1000.
    DecimalSI,
    /// `e3`, `E-2`.
    DecimalExponent,
}

/// A quantity held as an exact count of nano-units (10⁻⁹). Like Kubernetes,
/// anything finer than one nano-unit is rounded up (away from zero).
#[derive(Debug, Clone, Copy)]
pub struct Quantity {
    nanos: i128,
    format: Format,
}

/// Why a string is not a quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// The text does not have the shape of a quantity.
    #[error(
        "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    )]
    Format,
    /// The suffix is not one Kubernetes knows.
    #[error("unable to parse quantity's suffix")]
    Suffix,
    /// The value does not fit the range this implementation holds (about ±1.7e29).
    #[error("quantity is too large")]
    TooLarge,
}

const NANO: i128 = 1_000_000_000;

fn pow10(n: u32) -> Option<i128> {
    10i128.checked_pow(n)
}

impl Quantity {
    pub fn parse(s: &str) -> Result<Self, QuantityError> {
        let b = s.as_bytes();
        if b.is_empty() {
            return Err(QuantityError::Format);
        }
        let mut pos = 0;
        let negative = match b[0] {
            b'+' => {
                pos = 1;
                false
            }
            b'-' => {
                pos = 1;
                true
            }
            _ => false,
        };
        let mut digits = String::new();
        let mut frac_len: i32 = 0;
        let mut seen_dot = false;
        let mut any_digit = false;
        while pos < b.len() {
            match b[pos] {
                c @ b'0'..=b'9' => {
                    digits.push(c as char);
                    any_digit = true;
                    if seen_dot {
                        frac_len += 1;
                    }
                }
                b'.' if !seen_dot => seen_dot = true,
                _ => break,
            }
            pos += 1;
        }
        if !any_digit {
            return Err(QuantityError::Format);
        }
        let (format, exp10, pow1024) = parse_suffix(&s[pos..])?;
        let exp10 = exp10.checked_sub(frac_len).ok_or(QuantityError::TooLarge)?;
        let magnitude = scale(&digits, exp10, pow1024)?;
        let nanos = if negative { -magnitude } else { magnitude };
        Ok(Self { nanos, format })
    }

    /// A quantity of `milli` thousandths in the given notation.
    pub fn from_milli(milli: i128, format: Format) -> Self {
        Self {
            nanos: milli.saturating_mul(1_000_000),
            format,
        }
    }

    /// A whole-number quantity in the given notation.
    pub fn from_value(value: i128, format: Format) -> Self {
        Self {
            nanos: value.saturating_mul(NANO),
            format,
        }
    }

    pub fn nanos(&self) -> i128 {
        self.nanos
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// The value in thousandths, rounded up as Kubernetes' `MilliValue` does.
    pub fn milli_value(&self) -> i128 {
        ceil_div(self.nanos, 1_000_000)
    }

    /// The value in whole units, rounded up as Kubernetes' `Value` does.
    pub fn value(&self) -> i128 {
        ceil_div(self.nanos, NANO)
    }

    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    pub fn is_negative(&self) -> bool {
        self.nanos < 0
    }

    pub fn checked_add(&self, other: &Self) -> Option<Self> {
        Some(Self {
            nanos: self.nanos.checked_add(other.nanos)?,
            format: self.format,
        })
    }

    pub fn checked_sub(&self, other: &Self) -> Option<Self> {
        Some(Self {
            nanos: self.nanos.checked_sub(other.nanos)?,
            format: self.format,
        })
    }

    /// The canonical text, as Kubernetes serializes a quantity.
    pub fn to_canonical_string(&self) -> String {
        if self.nanos == 0 {
            return "0".to_string();
        }
        let sign = if self.nanos < 0 { "-" } else { "" };
        let abs = self.nanos.unsigned_abs();
        let whole = abs.is_multiple_of(NANO as u128);
        if self.format == Format::BinarySI && abs >= 1024 * NANO as u128 && whole {
            let mut v = abs / NANO as u128;
            let mut exp = 0;
            while exp < 6 && v.is_multiple_of(1024) {
                v /= 1024;
                exp += 1;
            }
            let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][exp];
            return format!("{sign}{v}{suffix}");
        }
        // Largest power of 1000 (from 10⁻⁹ up to 10¹⁸) that keeps the mantissa whole.
        let mut mantissa = abs;
        let mut exp: i32 = -9;
        while exp < 18 && mantissa.is_multiple_of(1000) {
            mantissa /= 1000;
            exp += 3;
        }
        let suffix = if self.format == Format::DecimalExponent {
            if exp == 0 {
                String::new()
            } else {
                format!("e{exp}")
            }
        } else {
            match exp {
                -9 => "n",
                -6 => "u",
                -3 => "m",
                0 => "",
                3 => "k",
                6 => "M",
                9 => "G",
                12 => "T",
                15 => "P",
                _ => "E",
            }
            .to_string()
        };
        format!("{sign}{mantissa}{suffix}")
    }
}

fn ceil_div(n: i128, d: i128) -> i128 {
    let q = n / d;
    if n % d > 0 { q + 1 } else { q }
}

/// Returns the notation, the power of ten and the power of 1024 a suffix stands for.
fn parse_suffix(suffix: &str) -> Result<(Format, i32, u32), QuantityError> {
    let decimal = |e| Ok((Format::DecimalSI, e, 0));
    let binary = |p| Ok((Format::BinarySI, 0, p));
    match suffix {
        "" => decimal(0),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        "Ki" => binary(1),
        "Mi" => binary(2),
        "Gi" => binary(3),
        "Ti" => binary(4),
        "Pi" => binary(5),
        "Ei" => binary(6),
        s if s.starts_with(['e', 'E']) => {
            let rest = &s[1..];
            let digits = rest.strip_prefix(['+', '-']).unwrap_or(rest);
            if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
                return Err(QuantityError::Suffix);
            }
            let e: i32 = rest.parse().map_err(|_| QuantityError::TooLarge)?;
            Ok((Format::DecimalExponent, e, 0))
        }
        s if s.bytes().all(|c| b"eEinumkKMGTP+-0123456789".contains(&c)) => {
            Err(QuantityError::Suffix)
        }
        _ => Err(QuantityError::Format),
    }
}

/// `digits × 10^exp10 × 1024^pow1024` in nano-units, rounded up.
fn scale(digits: &str, exp10: i32, pow1024: u32) -> Result<i128, QuantityError> {
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        return Ok(0);
    }
    let shift = exp10.checked_add(9).ok_or(QuantityError::TooLarge)?;
    let binary = 1024i128.pow(pow1024);
    if shift >= 0 {
        let m: i128 = digits.parse().map_err(|_| QuantityError::TooLarge)?;
        let p = pow10(shift as u32).ok_or(QuantityError::TooLarge)?;
        return m
            .checked_mul(binary)
            .and_then(|v| v.checked_mul(p))
            .ok_or(QuantityError::TooLarge);
    }
    let mut down = shift.unsigned_abs() as usize;
    // Digits beyond what an i128 holds only matter for rounding up.
    let mut keep = digits.len();
    let mut remainder = false;
    if keep > 36 {
        let drop = (keep - 36).min(down);
        remainder = digits[keep - drop..].bytes().any(|c| c != b'0');
        keep -= drop;
        down -= drop;
    }
    let m: i128 = digits[..keep]
        .parse()
        .map_err(|_| QuantityError::TooLarge)?;
    let m = m.checked_mul(binary).ok_or(QuantityError::TooLarge)?;
    let (q, r) = match pow10(down as u32) {
        Some(p) if down <= 38 => (m / p, m % p != 0),
        _ => (0, m != 0),
    };
    Ok(if r || remainder { q + 1 } else { q })
}

impl FromStr for Quantity {
    type Err = QuantityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_canonical_string())
    }
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_canonicalizes() {
        let cases = [
            ("0", "0", 0),
            ("100m", "100m", 100),
            ("0.1", "100m", 100),
            ("1", "1", 1000),
            ("1.5", "1500m", 1500),
            ("1.5Gi", "1536Mi", 1_610_612_736_000),
            ("1Gi", "1Gi", 1_073_741_824_000),
            ("1024", "1024", 1_024_000),
            ("1024Mi", "1Gi", 1_073_741_824_000),
            ("0.5Ki", "512", 512_000),
            ("2e3", "2e3", 2_000_000),
            ("2E3", "2e3", 2_000_000),
            ("1e-3", "1e-3", 1),
            ("128974848", "128974848", 128_974_848_000),
            ("129e6", "129e6", 129_000_000_000),
            ("129M", "129M", 129_000_000_000),
            ("123Mi", "123Mi", 128_974_848_000),
            ("1000", "1k", 1_000_000),
            ("1k", "1k", 1_000_000),
            ("-1.5", "-1500m", -1500),
            ("+5", "5", 5000),
            ("1n", "1n", 1),
            ("0.0000000001", "1n", 1),
            ("5.", "5", 5000),
            (".5", "500m", 500),
            ("1E", "1E", 1_000_000_000_000_000_000_000),
            ("0.00000000000000000000000000000000000000000000001", "1n", 1),
            (
                "1.000000000000000000000000000000000000000000001",
                "1000000001n",
                1001,
            ),
        ];
        for (input, canonical, milli) in cases {
            let q = Quantity::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(q.to_string(), canonical, "{input}");
            assert_eq!(q.milli_value(), milli, "{input}");
        }
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "", "m", "Gi", ".", "-", "1.2.3", "1Gb", "1 Gi", "1e", "1e+", "1ee3", "1Kii", "abc",
            "1x", "--1",
        ] {
            assert!(Quantity::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Quantity::parse("1Mk"), Err(QuantityError::Suffix));
        assert_eq!(Quantity::parse("1e99"), Err(QuantityError::TooLarge));
        assert_eq!(Quantity::parse("1x"), Err(QuantityError::Format));
    }

    #[test]
    fn compares_and_adds() {
        let a: Quantity = "500m".parse().expect("q");
        let b: Quantity = "0.5".parse().expect("q");
        assert_eq!(a, b);
        assert!(Quantity::parse("1Gi").expect("q") > Quantity::parse("1G").expect("q"));
        let sum = a
            .checked_add(&Quantity::parse("1").expect("q"))
            .expect("sum");
        assert_eq!(sum.to_string(), "1500m");
        assert_eq!(
            Quantity::from_milli(250, Format::DecimalSI).to_string(),
            "250m"
        );
        assert_eq!(
            Quantity::from_value(2048, Format::BinarySI).to_string(),
            "2Ki"
        );
        assert_eq!(Quantity::parse("1.5m").expect("q").milli_value(), 2);
        assert_eq!(Quantity::parse("100m").expect("q").value(), 1);
    }
}
