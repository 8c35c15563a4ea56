//! Checks of option values, so a typo is reported by `deploy` instead of by `kubectl create`
//! (names) or by a crash-looping pod (sizes, durations, paths) much later.

/// A DNS-1123 label (namespace names): at most 63 of `[a-z0-9-]`, alphanumeric at both ends.
pub(crate) fn dns1123_label(value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > 63 {
        return Err("must be 1 to 63 characters".into());
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err("may hold only lowercase letters, digits and '-'".into());
    }
    if value.starts_with('-') || value.ends_with('-') {
        return Err("must start and end with a letter or digit".into());
    }
    Ok(())
}

/// A DNS-1035 label (Service names): a DNS-1123 label that starts with a letter.
pub(crate) fn dns1035_label(value: &str) -> Result<(), String> {
    dns1123_label(value)?;
    if !value.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err("must start with a lowercase letter".into());
    }
    Ok(())
}

/// A byte size as the agent reads `NS_DISK_QUOTA`: digits and an optional unit, binary or
/// decimal (`1073741824`, `512Mi`, `1Gi`, `1G`, `1GB`).
pub(crate) fn size(value: &str) -> Result<(), String> {
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (digits, unit) = value.split_at(split);
    if digits.is_empty() {
        return Err("must start with a number (e.g. 1GB, 512Mi)".into());
    }
    const UNITS: [&str; 18] = [
        "", "k", "K", "KB", "Ki", "KiB", "M", "MB", "Mi", "MiB", "G", "GB", "Gi", "GiB", "T", "TB",
        "Ti", "TiB",
    ];
    if UNITS.contains(&unit) {
        Ok(())
    } else {
        Err(format!(
            "unknown unit {unit:?} (use k, M, G, T, Ki, Mi, Gi, Ti)"
        ))
    }
}

/// A Go duration as the seed's `--gc-threshold` took it: one or more `<number><unit>` with
/// units `ns`, `us`, `µs`, `ms`, `s`, `m`, `h` (`30m`, `1h30m`, `90s`).
pub(crate) fn duration(value: &str) -> Result<(), String> {
    const UNITS: [&str; 7] = ["ns", "us", "µs", "ms", "s", "m", "h"];
    let bad = || format!("not a duration (e.g. 30m, 1h30m): {value:?}");
    let mut rest = value;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let number = &rest[..number_len];
        if number.is_empty() || number.parse::<f64>().is_err() {
            return Err(bad());
        }
        rest = &rest[number_len..];
        // Longest unit first so `ms` is not read as `m` followed by garbage.
        let unit = UNITS
            .iter()
            .filter(|u| rest.starts_with(**u))
            .max_by_key(|u| u.len())
            .ok_or_else(bad)?;
        rest = &rest[unit.len()..];
    }
    Ok(())
}

/// An absolute path without `..` (a hostPath or mount path in a pod spec).
pub(crate) fn absolute_path(value: &str) -> Result<(), String> {
    if !value.starts_with('/') {
        return Err("must be an absolute path".into());
    }
    if value.split('/').any(|part| part == "..") {
        return Err("must not contain '..'".into());
    }
    Ok(())
}

/// A container image reference: non-empty, no whitespace or control characters.
pub(crate) fn image(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain whitespace".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(dns1123_label("default"), Ok(()));
        assert_eq!(dns1123_label("9lives-ns"), Ok(()));
        assert!(dns1123_label("").is_err());
        assert!(dns1123_label("Upper").is_err());
        assert!(dns1123_label("dot.ted").is_err());
        assert!(dns1123_label("-lead").is_err());
        assert!(dns1123_label("trail-").is_err());
        assert!(dns1123_label(&"a".repeat(64)).is_err());
        assert_eq!(dns1123_label(&"a".repeat(63)), Ok(()));
        assert_eq!(dns1035_label("coredump"), Ok(()));
        assert!(dns1035_label("1coredump").is_err());
    }

    #[test]
    fn sizes() {
        for ok in ["1GB", "1G", "1Gi", "512Mi", "1073741824", "10TiB"] {
            assert_eq!(size(ok), Ok(()), "{ok}");
        }
        for bad in ["", "GB", "1 GB", "1gb", "1.5G", "-1G", "1Xi"] {
            assert!(size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        for ok in ["30m", "1h30m", "90s", "1.5h", "250ms", "10µs", "1h0m0s"] {
            assert_eq!(duration(ok), Ok(()), "{ok}");
        }
        for bad in ["", "30", "m", "30 m", "30min", "1d", "-5m", "1h30"] {
            assert!(duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn paths_and_images() {
        assert_eq!(absolute_path("/tmp/coredump-backend-storage"), Ok(()));
        assert!(absolute_path("tmp/x").is_err());
        assert!(absolute_path("/tmp/../etc").is_err());
        assert_eq!(image("quay.io/coreos/etcd:v3.6.4"), Ok(()));
        assert!(image("").is_err());
        assert!(image("a b").is_err());
    }
}
