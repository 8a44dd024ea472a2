//! Calendar dates on the wire as `YYYY-MM-DD`, for `#[serde(with = "...")]`.
//!
//! `time` only ships serde helpers for timestamps in well-known formats; a birth date or a round date
//! is a calendar date without a time zone, so it gets its own plain ISO 8601 form.

use serde::{Deserialize, Deserializer, Serializer, de::Error as _, ser::Error as _};
use time::Date;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

/// The one date format of the API: `YYYY-MM-DD`.
pub const FORMAT: &[BorrowedFormatItem<'static>] = format_description!("[year]-[month]-[day]");

/// Formats `date` as `YYYY-MM-DD`.
pub fn format(date: Date) -> Result<String, time::error::Format> {
    date.format(FORMAT)
}

/// Parses exactly `YYYY-MM-DD`.
pub fn parse(text: &str) -> Result<Date, time::error::Parse> {
    Date::parse(text, FORMAT)
}

/// Serializes a [`Date`] as `YYYY-MM-DD`.
pub fn serialize<S: Serializer>(date: &Date, serializer: S) -> Result<S::Ok, S::Error> {
    let text = format(*date).map_err(S::Error::custom)?;
    serializer.serialize_str(&text)
}

/// Deserializes a [`Date`] from `YYYY-MM-DD`.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Date, D::Error> {
    // Borrowing would fail on escaped strings; dates are short, so an owned copy costs nothing.
    let text = String::deserialize(deserializer)?;
    parse(&text).map_err(|_| D::Error::custom("expected a date formatted as YYYY-MM-DD"))
}

/// The same format for `Option<Date>`; pair it with `#[serde(default)]` so a missing field is `None`.
pub mod option {
    use super::{Date, Deserialize, Deserializer, Serializer};

    /// Serializes `Some(date)` as `YYYY-MM-DD` and `None` as `null`.
    pub fn serialize<S: Serializer>(date: &Option<Date>, serializer: S) -> Result<S::Ok, S::Error> {
        match date {
            Some(date) => super::serialize(date, serializer),
            None => serializer.serialize_none(),
        }
    }

    /// Deserializes `null` as `None` and `YYYY-MM-DD` as `Some(date)`.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Date>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapper(#[serde(with = "super")] Date);
        let wrapped = Option::<Wrapper>::deserialize(deserializer)?;
        Ok(wrapped.map(|Wrapper(date)| date))
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};
    use time::macros::date;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Holder {
        #[serde(with = "super")]
        day: time::Date,
        #[serde(with = "super::option", default)]
        maybe: Option<time::Date>,
    }

    #[test]
    fn round_trips_plain_and_optional_dates() {
        let value = Holder {
            day: date!(2024 - 02 - 29),
            maybe: Some(date!(1950 - 01 - 05)),
        };
        let json = serde_json::to_string(&value).expect("serialize");
        assert_eq!(json, r#"{"day":"2024-02-29","maybe":"1950-01-05"}"#);
        assert_eq!(serde_json::from_str::<Holder>(&json).expect("deserialize"), value);
    }

    #[test]
    fn missing_or_null_optional_date_is_none() {
        let missing: Holder = serde_json::from_str(r#"{"day":"2024-01-01"}"#).expect("missing");
        assert_eq!(missing.maybe, None);
        let null: Holder = serde_json::from_str(r#"{"day":"2024-01-01","maybe":null}"#).expect("null");
        assert_eq!(null.maybe, None);
        assert_eq!(
            serde_json::to_string(&null).expect("serialize"),
            r#"{"day":"2024-01-01","maybe":null}"#
        );
    }

    #[test]
    fn optional_timestamps_use_time_rfc3339_option() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Stamped {
            #[serde(with = "time::serde::rfc3339::option", default)]
            at: Option<time::OffsetDateTime>,
        }
        let stamped = Stamped {
            at: Some(time::macros::datetime!(2025-03-14 08:30 +01:00)),
        };
        let json = serde_json::to_string(&stamped).expect("serialize");
        assert_eq!(json, r#"{"at":"2025-03-14T08:30:00+01:00"}"#);
        assert_eq!(serde_json::from_str::<Stamped>(&json).expect("deserialize"), stamped);
        assert_eq!(
            serde_json::from_str::<Stamped>("{}").expect("missing"),
            Stamped { at: None }
        );
    }

    #[test]
    fn rejects_other_formats() {
        for bad in ["2024-2-29", "29/02/2024", "2024-02-30", "2024-02-29T00:00:00Z", ""] {
            let json = format!(r#"{{"day":"{bad}"}}"#);
            let error = serde_json::from_str::<Holder>(&json).expect_err(bad);
            assert!(error.to_string().contains("YYYY-MM-DD"), "{error}");
        }
    }
}
