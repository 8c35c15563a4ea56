//! Byte quantities as the seed's `NS_DISK_QUOTA` is written: Kubernetes quantity syntax
//! (`1G`, `512Mi`, `1.5Gi`, `1e9`, `1500M`) and, because the seed's own default is `1GB`, the
//! same suffixes followed by `B` (`1GB`, `512MiB`). Only whole bytes come out: a fractional
//! result is rounded up, as Kubernetes rounds quantities it turns into integers. The one grammar
//! of every byte flag (`NS_DISK_QUOTA`, the GC's size retention, the crash-loop limits, what
//! `deploy` checks); [`parse_bytes`] is a clap `value_parser` as it is.

/// Why a quantity does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a byte quantity (e.g. 1GB, 1Gi, 512Mi, 1e9): {why}")]
pub struct QuantityError {
    /// The text given.
    pub text: String,
    /// What is wrong with it.
    pub why: &'static str,
}

/// Parses a byte quantity.
pub fn parse_bytes(text: &str) -> Result<u64, QuantityError> {
    let err = |why| QuantityError {
        text: text.to_string(),
        why,
    };
    let t = text.trim();
    let number_end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+'))
        .unwrap_or(t.len());
    let (number, suffix) = t.split_at(number_end);
    let number = number.strip_prefix('+').unwrap_or(number);
    if number.is_empty() || number.starts_with('.') && number.len() == 1 {
        return Err(err("no number"));
    }
    let (int_part, frac_part) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number, ""),
    };
    if !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(err("malformed number"));
    }
    let (multiplier, exp10) = multiplier(suffix).ok_or_else(|| err("unknown suffix"))?;
    // value = (int.frac) * multiplier * 10^exp10, computed exactly in u128.
    let digits = format!("{int_part}{frac_part}");
    let digits = digits.trim_start_matches('0');
    if digits.len() > 30 {
        return Err(err("too large"));
    }
    let mantissa: u128 = if digits.is_empty() {
        0
    } else {
        digits.parse().map_err(|_| err("too large"))?
    };
    let scale = i64::from(exp10) - frac_part.len() as i64;
    let mut value = mantissa
        .checked_mul(multiplier)
        .ok_or_else(|| err("too large"))?;
    if scale >= 0 {
        let factor = 10u128
            .checked_pow(u32::try_from(scale).map_err(|_| err("too large"))?)
            .ok_or_else(|| err("too large"))?;
        value = value.checked_mul(factor).ok_or_else(|| err("too large"))?;
    } else {
        let divisor = 10u128
            .checked_pow(u32::try_from(-scale).map_err(|_| err("too precise"))?)
            .ok_or_else(|| err("too precise"))?;
        value = value.div_ceil(divisor);
    }
    u64::try_from(value).map_err(|_| err("too large"))
}

/// Binary multiplier and decimal exponent of a suffix.
fn multiplier(suffix: &str) -> Option<(u128, u32)> {
    let s = suffix
        .strip_suffix('B')
        .filter(|s| !s.is_empty())
        .unwrap_or(suffix);
    let binary = |power: u32| Some((1u128 << (10 * power), 0));
    match s {
        "" | "B" => Some((1, 0)),
        "Ki" | "KiB" => binary(1),
        "Mi" => binary(2),
        "Gi" => binary(3),
        "Ti" => binary(4),
        "Pi" => binary(5),
        "Ei" => binary(6),
        "k" | "K" => Some((1, 3)),
        "M" => Some((1, 6)),
        "G" => Some((1, 9)),
        "T" => Some((1, 12)),
        "P" => Some((1, 15)),
        "E" => Some((1, 18)),
        _ => {
            let exp = s.strip_prefix(['e', 'E'])?;
            let exp: u32 = exp.strip_prefix('+').unwrap_or(exp).parse().ok()?;
            (exp <= 30).then_some((1, exp))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_and_kubernetes_spellings() {
        for (text, want) in [
            ("1GB", 1_000_000_000),
            ("1G", 1_000_000_000),
            ("1Gi", 1 << 30),
            ("1GiB", 1 << 30),
            ("512Mi", 512 << 20),
            ("512MB", 512_000_000),
            ("1.5Gi", 3 << 29),
            ("1e9", 1_000_000_000),
            ("1E3", 1000),
            ("100k", 100_000),
            ("100K", 100_000),
            ("123", 123),
            ("0", 0),
            (" 2Ki ", 2048),
            ("+1M", 1_000_000),
            ("0.1", 1),
            ("1.0000001k", 1001),
            ("15Ei", 15 << 60),
        ] {
            assert_eq!(parse_bytes(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn refusals() {
        for text in [
            "", "G", "1X", "1..5G", "-1G", "1 G", "1Gb", ".", "1e31", "16Ei", "1m",
        ] {
            assert!(parse_bytes(text).is_err(), "{text:?} must be refused");
        }
        assert_eq!(
            parse_bytes("1X").unwrap_err().to_string(),
            "\"1X\" is not a byte quantity (e.g. 1GB, 1Gi, 512Mi, 1e9): unknown suffix"
        );
    }
}
