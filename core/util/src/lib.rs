//! Small helpers shared by Arcan's crates: unix-millisecond time, RFC 3339, sortable ids,
//! and the `humantime` form of durations in configuration files.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// RFC 3339 (UTC, milliseconds) of a unix-millisecond timestamp.
pub fn rfc3339(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

/// `now_ms` plus `secs` seconds, or `None` when the instant is not representable in
/// milliseconds since the epoch (an absurd ttl must be refused, never wrapped).
pub fn add_secs_ms(now_ms: i64, secs: u64) -> Option<i64> {
    i64::try_from(secs)
        .ok()
        .and_then(|s| s.checked_mul(1000))
        .and_then(|ms| now_ms.checked_add(ms))
}

/// A new sortable id.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// `#[serde(with = "arcan_util::duration")]`: a duration written as `humantime` text
/// (`10s`, `5m`, `1h 30m`).
pub mod net;

pub mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Parses a `humantime` duration.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(serde::de::Error::custom)
    }

    /// Writes a duration in the `humantime` form `deserialize` reads back (`1h 30m`).
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_secs_ms_refuses_overflow() {
        assert_eq!(add_secs_ms(1_000, 2), Some(3_000));
        assert_eq!(add_secs_ms(now_ms(), u64::MAX), None);
        assert_eq!(add_secs_ms(now_ms(), i64::MAX as u64 / 1000), None);
        assert_eq!(add_secs_ms(i64::MAX - 10, 1), None);
    }
}
