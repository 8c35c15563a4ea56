//! Byte sizes on the command line: `1073741824`, `512Mi`, `1Gi`, `1G`, `1GB` (Kubernetes
//! quantity spellings, binary and decimal).

/// Parses a byte size.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size (e.g. 512Mi, 1G)"))?;
    let factor: u64 = match unit {
        "" => 1,
        "k" | "K" | "KB" => 1000,
        "Ki" | "KiB" => 1 << 10,
        "M" | "MB" => 1000 * 1000,
        "Mi" | "MiB" => 1 << 20,
        "G" | "GB" => 1000 * 1000 * 1000,
        "Gi" | "GiB" => 1 << 30,
        "T" | "TB" => 1000u64.pow(4),
        "Ti" | "TiB" => 1 << 40,
        _ => return Err(format!("unknown size unit {unit:?} in {text:?}")),
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("{text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("1Gi"), Ok(1 << 30));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        assert_eq!(parse_size("512Mi"), Ok(512 << 20));
        assert!(parse_size("1Xi").is_err());
        assert!(parse_size("G").is_err());
        assert!(parse_size("99999999999Ti").is_err());
    }
}
