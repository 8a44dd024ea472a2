//! Local time in Lyon (Europe/Paris) without a time-zone database: the EU rule (summer time from the
//! last Sunday of March to the last Sunday of October, switching at 01:00 UTC) is all the demo needs.

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset, Weekday};

const WINTER: UtcOffset = match UtcOffset::from_hms(1, 0, 0) {
    Ok(offset) => offset,
    Err(_) => UtcOffset::UTC,
};
const SUMMER: UtcOffset = match UtcOffset::from_hms(2, 0, 0) {
    Ok(offset) => offset,
    Err(_) => UtcOffset::UTC,
};

fn last_sunday(year: i32, month: Month) -> Date {
    let mut day = Date::from_calendar_date(year, month, month.length(year)).unwrap_or(Date::MIN);
    while day.weekday() != Weekday::Sunday {
        day = day.previous_day().unwrap_or(Date::MIN);
    }
    day
}

/// The Paris offset at an instant.
pub fn offset_at(instant: OffsetDateTime) -> UtcOffset {
    let utc = instant.to_offset(UtcOffset::UTC);
    let year = utc.year();
    let one_am = Time::from_hms(1, 0, 0).unwrap_or(Time::MIDNIGHT);
    let start = PrimitiveDateTime::new(last_sunday(year, Month::March), one_am).assume_utc();
    let end = PrimitiveDateTime::new(last_sunday(year, Month::October), one_am).assume_utc();
    if utc >= start && utc < end { SUMMER } else { WINTER }
}

/// Today's date in Paris.
pub fn today(now: OffsetDateTime) -> Date {
    now.to_offset(offset_at(now)).date()
}

/// The instant of a Paris wall-clock time on a date. Only meant for daytime (the switch happens at
/// night, so the ambiguous and missing hours never come up).
pub fn paris(date: Date, time: Time) -> OffsetDateTime {
    let guess = PrimitiveDateTime::new(date, time).assume_offset(WINTER);
    PrimitiveDateTime::new(date, time).assume_offset(offset_at(guess))
}

#[cfg(test)]
mod tests {
    use time::macros::{date, datetime, time};

    use super::*;

    #[test]
    fn summer_and_winter_time() {
        assert_eq!(
            paris(date!(2026 - 01 - 15), time!(7:00)),
            datetime!(2026-01-15 6:00 UTC)
        );
        assert_eq!(
            paris(date!(2026 - 07 - 15), time!(7:00)),
            datetime!(2026-07-15 5:00 UTC)
        );
        // 2026: summer time from 29 March to 25 October.
        assert_eq!(
            paris(date!(2026 - 03 - 29), time!(7:00)),
            datetime!(2026-03-29 5:00 UTC)
        );
        assert_eq!(
            paris(date!(2026 - 03 - 28), time!(7:00)),
            datetime!(2026-03-28 6:00 UTC)
        );
        assert_eq!(
            paris(date!(2026 - 10 - 25), time!(7:00)),
            datetime!(2026-10-25 6:00 UTC)
        );
        assert_eq!(
            paris(date!(2026 - 10 - 24), time!(7:00)),
            datetime!(2026-10-24 5:00 UTC)
        );
        assert_eq!(today(datetime!(2026-11-27 23:30 UTC)), date!(2026 - 11 - 28));
        assert_eq!(today(datetime!(2026-06-27 22:30 UTC)), date!(2026 - 06 - 28));
        assert_eq!(today(datetime!(2026-06-27 21:30 UTC)), date!(2026 - 06 - 27));
    }
}
