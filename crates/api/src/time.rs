//! Timestamps as Kubernetes writes them (RFC 3339, UTC, whole seconds) and the human-readable
//! ages kubectl shows in the `AGE` column.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Parses an RFC 3339 timestamp.
pub fn parse_rfc3339(value: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(value, &Rfc3339).ok()
}

/// Formats a time the way Kubernetes serializes `metav1.Time`: UTC, whole seconds, `Z`.
pub fn format_rfc3339(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Human-readable duration, in the same steps kubectl uses for ages: seconds below 2 minutes,
/// minutes (with seconds below 10 minutes) below 3 hours, hours (with minutes below 8 hours)
/// below 2 days, days (with hours below 8 days) below 2 years, then years (with days below 8
/// years). A small negative skew reads `0s`; a larger one `<invalid>`.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".to_owned();
    }
    if seconds < 0 {
        return "0s".to_owned();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        return with_rest(minutes, "m", seconds % 60, "s");
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        return with_rest(hours, "h", minutes % 60, "m");
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        return with_rest(days, "d", hours % 24, "h");
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    let years = days / 365;
    if hours < 24 * 365 * 8 {
        return with_rest(years, "y", days % 365, "d");
    }
    format!("{years}y")
}

fn with_rest(major: i64, major_unit: &str, minor: i64, minor_unit: &str) -> String {
    if minor == 0 {
        format!("{major}{major_unit}")
    } else {
        format!("{major}{major_unit}{minor}{minor_unit}")
    }
}

/// Age of an object created at `created` (RFC 3339) as seen at `now`; `<unknown>` when absent
/// or unparsable.
pub fn age(created: Option<&str>, now: OffsetDateTime) -> String {
    match created.and_then(parse_rfc3339) {
        Some(t) => human_duration((now - t).whole_seconds()),
        None => "<unknown>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_follow_kubectl_steps() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (119, "119s"),
            (120, "2m"),
            (125, "2m5s"),
            (599, "9m59s"),
            (600, "10m"),
            (179 * 60 + 59, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 60 * 7, "3h7m"),
            (8 * 3600, "8h"),
            (47 * 3600, "47h"),
            (48 * 3600, "2d"),
            (50 * 3600, "2d2h"),
            (8 * 86400, "8d"),
            (729 * 86400, "729d"),
            (730 * 86400, "2y"),
            (731 * 86400, "2y1d"),
            (8 * 365 * 86400, "8y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(secs), want, "{secs}");
        }
    }

    #[test]
    fn format_and_parse_round_trip() {
        let t = parse_rfc3339("2024-05-01T10:00:07.123+02:00").unwrap();
        assert_eq!(format_rfc3339(t), "2024-05-01T08:00:07Z");
        assert_eq!(
            parse_rfc3339("2024-05-01T08:00:07Z")
                .unwrap()
                .unix_timestamp(),
            1_714_550_407
        );
        assert!(parse_rfc3339("2024-05-01").is_none());
    }

    #[test]
    fn ages() {
        let now = parse_rfc3339("2024-05-01T10:00:00Z").unwrap();
        assert_eq!(age(Some("2024-05-01T09:59:00Z"), now), "60s");
        assert_eq!(age(Some("2024-04-30T10:00:00Z"), now), "24h");
        assert_eq!(age(None, now), "<unknown>");
        assert_eq!(age(Some("garbage"), now), "<unknown>");
    }
}
