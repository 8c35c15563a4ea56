//! Durations as the seed's `--gc-threshold=30m` writes them: Go's `time.ParseDuration` syntax
//! (`300ms`, `90s`, `30m`, `1h30m`, `1.5h`, `0`), without signs (a negative threshold makes no
//! sense). The one grammar of every duration flag: the GC's thresholds, the API server's
//! compaction interval and what `deploy` checks before writing them into a manifest.
//! [`parse_duration`] is a clap `value_parser` as it is.

use std::time::Duration;

/// Why a duration does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a duration (e.g. 30m, 1h30m, 90s, 1.5h): {why}")]
pub struct DurationError {
    /// The text given.
    pub text: String,
    /// What is wrong with it.
    pub why: &'static str,
}

/// Parses a Go-style duration.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let err = |why| DurationError {
        text: text.to_string(),
        why,
    };
    let mut rest = text.trim();
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(err("empty"));
    }
    let mut total_nanos: u128 = 0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| err("missing unit"))?;
        if number_len == 0 {
            return Err(err("expected a number"));
        }
        let (number, after) = rest.split_at(number_len);
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "µs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(err("unknown unit")),
        };
        let (int, frac) = number.split_once('.').unwrap_or((number, ""));
        if int.is_empty() && frac.is_empty() || frac.contains('.') {
            return Err(err("malformed number"));
        }
        let int: u128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| err("too large"))?
        };
        let mut value = int
            .checked_mul(unit_nanos)
            .ok_or_else(|| err("too large"))?;
        let mut scale = unit_nanos;
        for digit in frac.bytes().take(30) {
            scale /= 10;
            value += u128::from(digit - b'0') * scale;
        }
        total_nanos = total_nanos
            .checked_add(value)
            .ok_or_else(|| err("too large"))?;
        rest = after;
    }
    let secs = u64::try_from(total_nanos / 1_000_000_000).map_err(|_| err("too large"))?;
    let nanos = u32::try_from(total_nanos % 1_000_000_000).map_err(|_| err("too large"))?;
    Ok(Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_spellings() {
        for (text, want) in [
            ("30m", Duration::from_secs(1800)),
            ("1h30m", Duration::from_secs(5400)),
            ("1.5h", Duration::from_secs(5400)),
            ("90s", Duration::from_secs(90)),
            ("300ms", Duration::from_millis(300)),
            ("1m0.5s", Duration::from_millis(60_500)),
            ("2h45m30s", Duration::from_secs(9930)),
            ("10us", Duration::from_micros(10)),
            ("7ns", Duration::from_nanos(7)),
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            (".5s", Duration::from_millis(500)),
        ] {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn refusals() {
        for text in ["", "30", "m", "30x", "-5m", "1..5h", "1.2.3s", "5 m", "h1"] {
            assert!(parse_duration(text).is_err(), "{text:?} must be refused");
        }
        assert_eq!(
            parse_duration("30").unwrap_err().to_string(),
            "\"30\" is not a duration (e.g. 30m, 1h30m, 90s, 1.5h): missing unit"
        );
    }
}
