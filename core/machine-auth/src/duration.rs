//! Durations in configs: `humantime` text (`60s`, `1h`) through `arcan_util::duration`, plus
//! the optional form and range checks.

use std::time::Duration;

use crate::error::ConfigError;
use crate::upstream::humanize;

/// `#[serde(with = "crate::duration::optional")]`: an optional `humantime` duration.
pub mod optional {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Parses `null` or a `humantime` duration.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) => humantime::parse_duration(&s)
                .map(Some)
                .map_err(serde::de::Error::custom),
        }
    }

    /// Writes `null` or the `humantime` form.
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            None => s.serialize_none(),
            Some(d) => arcan_util::duration::serialize(d, s),
        }
    }
}

/// Refuses `d` outside `min..=max`.
pub fn in_range(field: &str, d: Duration, min: Duration, max: Duration) -> Result<(), ConfigError> {
    if d < min || d > max {
        return Err(ConfigError::new(
            field,
            format!("must be between {} and {}", humanize(min), humanize(max)),
        ));
    }
    Ok(())
}
