//! Resource quantities (`500m`, `128Mi`, `2`, `1e3`) as Kubernetes writes them, read into an
//! exact integer of thousandths, so that sums and comparisons of CPU and memory never round.
//!
//! Worked examples: `500m` → 500, `2` → 2000, `1.5` → 1500, `128Mi` → 134217728000,
//! `1k` → 1000000, `1e3` → 1000000.
//!
//! Values below a thousandth (`1n`, `1u`) round up to one thousandth, as Kubernetes rounds a
//! request up rather than letting it vanish.

use std::fmt;

/// A quantity in thousandths of its unit (millicores for CPU, millibytes for memory).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Milli(pub i128);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$', got {0:?}"
)]
pub struct QuantityError(pub String);

impl Milli {
    pub fn parse(text: &str) -> Result<Milli, QuantityError> {
        let err = || QuantityError(text.to_owned());
        let s = text.trim();
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
            .unwrap_or(s.len());
        let (number, suffix) = s.split_at(split);
        if number.is_empty() {
            return Err(err());
        }
        let (negative, digits) = match number.as_bytes()[0] {
            b'-' => (true, &number[1..]),
            b'+' => (false, &number[1..]),
            _ => (false, number),
        };
        let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
        if whole.is_empty() && frac.is_empty()
            || !whole
                .bytes()
                .chain(frac.bytes())
                .all(|b| b.is_ascii_digit())
        {
            return Err(err());
        }
        // value = mantissa / 10^scale, with the mantissa exact.
        let mantissa: i128 = format!("{whole}{frac}")
            .trim_start_matches('0')
            .parse()
            .unwrap_or(0);
        let scale = frac.len() as i32;
        // The suffix multiplies by base^exp.
        let (base, exp): (i128, i32) = match suffix {
            "" => (10, 0),
            "n" => (10, -9),
            "u" => (10, -6),
            "m" => (10, -3),
            "k" => (10, 3),
            "M" => (10, 6),
            "G" => (10, 9),
            "T" => (10, 12),
            "P" => (10, 15),
            "E" => (10, 18),
            "Ki" => (2, 10),
            "Mi" => (2, 20),
            "Gi" => (2, 30),
            "Ti" => (2, 40),
            "Pi" => (2, 50),
            "Ei" => (2, 60),
            e if e.starts_with(['e', 'E']) => (10, e[1..].parse::<i32>().map_err(|_| err())?),
            _ => return Err(err()),
        };
        // thousandths = mantissa * base^exp * 1000 / 10^scale, rounded up.
        let mut num = mantissa.checked_mul(1000).ok_or_else(err)?;
        let mut den: i128 = 10i128.checked_pow(scale as u32).ok_or_else(err)?;
        if exp >= 0 {
            num = num
                .checked_mul(base.checked_pow(exp as u32).ok_or_else(err)?)
                .ok_or_else(err)?;
        } else {
            den = den
                .checked_mul(base.checked_pow((-exp) as u32).ok_or_else(err)?)
                .ok_or_else(err)?;
        }
        let value = (num + den - 1) / den;
        Ok(Milli(if negative { -value } else { value }))
    }

    /// Reads a quantity from JSON (a string, or a plain number).
    pub fn from_json(v: &serde_json::Value) -> Option<Milli> {
        match v {
            serde_json::Value::String(s) => Milli::parse(s).ok(),
            serde_json::Value::Number(n) => Milli::parse(&n.to_string()).ok(),
            _ => None,
        }
    }
}

impl fmt::Display for Milli {
    /// Whole units when exact, else thousandths with `m` (how Kubernetes prints CPU).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 % 1000 == 0 {
            write!(f, "{}", self.0 / 1000)
        } else {
            write!(f, "{}m", self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worked_examples() {
        for (text, milli) in [
            ("500m", 500),
            ("2", 2000),
            ("1.5", 1500),
            ("0.1", 100),
            ("128Mi", 134_217_728_000),
            ("1Gi", 1_073_741_824_000),
            ("1k", 1_000_000),
            ("1e3", 1_000_000),
            ("1n", 1),
            ("100u", 1),
            ("-1", -1000),
            ("0", 0),
        ] {
            assert_eq!(Milli::parse(text), Ok(Milli(milli)), "{text}");
        }
        for bad in ["", "abc", "1x", "Mi", "1.2.3", "--1"] {
            assert!(Milli::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(Milli(1500).to_string(), "1500m");
        assert_eq!(Milli(2000).to_string(), "2");
        assert_eq!(Milli::from_json(&serde_json::json!(2)), Some(Milli(2000)));
    }
}
