//! Expirations as RFC 3339 UTC timestamps (`2030-01-02T03:04:05Z`), which PostgreSQL reads
//! as `timestamp with time zone` in any `DateStyle` or `TimeZone` setting.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arcan_plugin_sdk::{Error, Result};

/// The last second of year 9999: RFC 3339 has four-digit years.
const MAX_UNIX: u64 = 253_402_300_799;

/// Now + `ttl`, from the wall clock WASI gives the engine.
pub fn expiration(ttl: Duration) -> Result<String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| Error::internal("the clock is before 1970"))?;
    let at = now.saturating_add(ttl);
    // Round up: a credential never expires before its lease.
    let secs = at
        .as_secs()
        .saturating_add(u64::from(at.subsec_nanos() > 0));
    Ok(rfc3339(secs))
}

/// `unix` seconds as `YYYY-MM-DDTHH:MM:SSZ` (clamped to year 9999).
pub fn rfc3339(unix: u64) -> String {
    let unix = unix.min(MAX_UNIX);
    let (days, rem) = (unix / 86_400, unix % 86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Year, month, day of a count of days since 1970-01-01 (H. Hinnant's algorithm, for
/// non-negative day counts).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_709_210_096), "2024-02-29T12:34:56Z");
        assert_eq!(rfc3339(4_102_444_799), "2099-12-31T23:59:59Z");
        assert_eq!(rfc3339(u64::MAX), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn expiration_is_in_the_future() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let e = expiration(Duration::from_secs(3600)).unwrap();
        assert!(e > rfc3339(now + 3599) && e <= rfc3339(now + 3602), "{e}");
        assert_eq!(expiration(Duration::MAX).unwrap(), "9999-12-31T23:59:59Z");
    }
}
