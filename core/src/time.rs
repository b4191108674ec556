//! Instants on the wire: epoch milliseconds inside, RFC 3339 UTC outside.
//!
//! Every build must print the same instant the same way, so a timestamp is
//! always written with exactly three fractional digits and a `Z`.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An instant with millisecond precision, serialized as RFC 3339 UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[cfg_attr(feature = "tsify", tsify(type = "string"))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
pub struct Timestamp(i64);

impl Timestamp {
    /// The instant `millis` milliseconds after the Unix epoch.
    pub const fn from_millis(millis: i64) -> Self {
        Self(millis)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// This instant plus `seconds`, saturating.
    pub fn plus_seconds(self, seconds: u64) -> Self {
        let millis = i64::try_from(seconds)
            .unwrap_or(i64::MAX)
            .saturating_mul(1000);
        Self(self.0.saturating_add(millis))
    }

    /// Parses an RFC 3339 string (any offset) into an instant.
    pub fn parse_rfc3339(text: &str) -> Option<Self> {
        DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|time| Self(time.timestamp_millis()))
    }

    /// The RFC 3339 UTC form, e.g. `2026-01-02T03:04:05.006Z`.
    pub fn to_rfc3339(self) -> String {
        match DateTime::<Utc>::from_timestamp_millis(self.0) {
            Some(time) => time.to_rfc3339_opts(SecondsFormat::Millis, true),
            // Out of chrono's range (±262,000 years): clamp rather than fail.
            None => String::from(if self.0 < 0 {
                "-262143-01-01T00:00:00.000Z"
            } else {
                "+262142-12-31T23:59:59.999Z"
            }),
        }
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse_rfc3339(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("`{text}` is not an RFC 3339 time")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_milliseconds_and_z() {
        assert_eq!(
            Timestamp::from_millis(1_767_323_045_006).to_rfc3339(),
            "2026-01-02T03:04:05.006Z"
        );
        assert_eq!(
            Timestamp::from_millis(0).to_rfc3339(),
            "1970-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn parses_any_offset_back_to_the_same_instant() {
        let t = Timestamp::parse_rfc3339("2026-01-02T04:04:05.006+01:00").unwrap();
        assert_eq!(t.as_millis(), 1_767_323_045_006);
        assert!(Timestamp::parse_rfc3339("yesterday").is_none());
    }

    #[test]
    fn adding_seconds_saturates() {
        assert_eq!(
            Timestamp::from_millis(i64::MAX - 1).plus_seconds(10),
            Timestamp::from_millis(i64::MAX)
        );
    }
}
