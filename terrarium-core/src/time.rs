//! Times in output are RFC 3339 in UTC, whatever offset the source used.

use chrono::{DateTime, SecondsFormat, Utc};

/// Normalise an RFC 3339 time to UTC with a `Z`; pass through what does
/// not parse rather than invent a time.
pub fn rfc3339_utc(s: &str) -> String {
    DateTime::parse_from_rfc3339(s)
        .map(|t| utc(&t.with_timezone(&Utc)))
        .unwrap_or_else(|_| s.to_string())
}

/// A time as every output and record shows it: `2026-12-01T20:00:00Z`.
pub fn utc(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_utc() {
        assert_eq!(
            rfc3339_utc("2026-11-28T23:10:11.123456789+01:00"),
            "2026-11-28T22:10:11Z"
        );
        assert_eq!(rfc3339_utc("2026-11-28T23:10:11Z"), "2026-11-28T23:10:11Z");
        assert_eq!(rfc3339_utc("garbage"), "garbage");
    }
}
