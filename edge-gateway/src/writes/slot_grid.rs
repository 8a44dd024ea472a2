//! A day's slots, computed in the process from the lab's booking rules, and the places taken in each.
//!
//! Why not in SQL: the desk asks for the list at every screen and before every booking. Written as one
//! SQL text it was planned again at each call (diesel keeps prepared statements only for queries built
//! with its DSL): 2 ms of planning for 0.8 ms of work, and a slot list at 109 answers/s on 2 cores
//! (docs/performance.md, benchmark 9). The rules are a few bytes of the lab's row and the grid is
//! arithmetic; PostgreSQL is left with one prepared query that lists the day's bookings.
//!
//! Time zones come from the system's tz database (`/usr/share/zoneinfo`, Debian's `tzdata`), the files
//! PostgreSQL reads too, so that the grid and the reads that count a local day in SQL agree. A
//! wall-clock time that a daylight-saving change skips or repeats resolves by jiff's `compatible` rule
//! (a skipped time moves forward by the gap, a repeated one is its first occurrence): opening hours
//! seldom fall at 02:00, but the answer must still be defined.

use jiff::civil;
use jiff::tz::TimeZone;
use serde_json::Value;
use time::{Date, Duration, OffsetDateTime};
use uuid::Uuid;

/// One slot with its places.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotRow {
    /// Start.
    pub start_at: OffsetDateTime,
    /// End (exclusive).
    pub end_at: OffsetDateTime,
    /// Patients it takes.
    pub capacity: i32,
    /// Patients booked.
    pub taken: i32,
    /// Slot length, minutes.
    pub minutes: i32,
}

impl SlotRow {
    /// Places left.
    pub fn free(&self) -> i32 {
        (self.capacity - self.taken).max(0)
    }
}

/// The weekday key of the booking rules.
pub fn weekday_key(day: Date) -> &'static str {
    match day.weekday() {
        time::Weekday::Monday => "mon",
        time::Weekday::Tuesday => "tue",
        time::Weekday::Wednesday => "wed",
        time::Weekday::Thursday => "thu",
        time::Weekday::Friday => "fri",
        time::Weekday::Saturday => "sat",
        time::Weekday::Sunday => "sun",
    }
}

/// `HH:MM`, 00:00 to 23:59, as the rules write a time of day.
fn hh_mm(value: &Value) -> Option<(i8, i8)> {
    let (hours, minutes) = value.as_str()?.split_once(':')?;
    let digits = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(hours) || !digits(minutes) {
        return None;
    }
    let (hours, minutes) = (hours.parse::<i8>().ok()?, minutes.parse::<i8>().ok()?);
    (hours < 24 && minutes < 60).then_some((hours, minutes))
}

fn civil_date(day: Date) -> Option<civil::Date> {
    let month = i8::try_from(u8::from(day.month())).ok()?;
    let dom = i8::try_from(day.day()).ok()?;
    civil::Date::new(i16::try_from(day.year()).ok()?, month, dom).ok()
}

/// The instant of the wall-clock time `at` of `day` in `zone`.
fn instant(zone: &TimeZone, day: civil::Date, (hours, minutes): (i8, i8)) -> Option<OffsetDateTime> {
    let timestamp = zone.to_timestamp(day.at(hours, minutes, 0, 0)).ok()?;
    OffsetDateTime::from_unix_timestamp(timestamp.as_second()).ok()
}

/// The local day of `at` in `zone`.
pub fn local_day(at: OffsetDateTime, zone: &TimeZone) -> Option<Date> {
    let local = zone
        .to_datetime(jiff::Timestamp::from_second(at.unix_timestamp()).ok()?)
        .date();
    let month = time::Month::try_from(u8::try_from(local.month()).ok()?).ok()?;
    Date::from_calendar_date(i32::from(local.year()), month, u8::try_from(local.day()).ok()?).ok()
}

/// The slots `[start, end)` of the local day `day` in `zone` by `hours` (the rules' map of weekday to
/// ranges, `{"mon": [["07:00", "12:00"], …], …}`): every `minutes` from each range's opening while
/// the slot ends by its closing, by start, each once. Entries that are not `HH:MM` pairs are skipped
/// rather than failing the desk: a bad rule in the cloud must not make the gateway answer 500.
pub fn day_grid(hours: &Value, minutes: i16, day: Date, zone: &TimeZone) -> Vec<(OffsetDateTime, OffsetDateTime)> {
    let Some(ranges) = hours.get(weekday_key(day)).and_then(Value::as_array) else {
        return Vec::new();
    };
    let Some(civil_day) = civil_date(day).filter(|_| minutes > 0) else {
        return Vec::new();
    };
    let step = Duration::minutes(i64::from(minutes));
    let mut grid = Vec::new();
    for range in ranges.iter().filter_map(Value::as_array) {
        let (Some(opens), Some(closes)) = (range.first().and_then(hh_mm), range.get(1).and_then(hh_mm)) else {
            continue;
        };
        let (Some(mut start), Some(close)) = (instant(zone, civil_day, opens), instant(zone, civil_day, closes)) else {
            continue;
        };
        while start + step <= close {
            grid.push((start, start + step));
            start += step;
        }
    }
    grid.sort_unstable();
    grid.dedup();
    grid
}

/// The slots of `grid` with their places: `capacity` each, taken by the `booked` visits starting in
/// them (their start and, for home visits, their sampler). A home slot's place is a sampler, so it
/// counts the distinct samplers busy in it; a lab slot counts the visits.
pub fn with_places(
    grid: &[(OffsetDateTime, OffsetDateTime)],
    booked: &[(OffsetDateTime, Option<Uuid>)],
    capacity: i32,
    by_sampler: bool,
) -> Vec<SlotRow> {
    let minutes = grid.first().map_or(0, |(start, end)| {
        i32::try_from((*end - *start).whole_minutes()).unwrap_or(0)
    });
    grid.iter()
        .map(|&(start_at, end_at)| {
            let mut inside: Vec<Option<Uuid>> = booked
                .iter()
                .filter(|(at, _)| start_at <= *at && *at < end_at)
                .map(|(_, sampler)| *sampler)
                .collect();
            if by_sampler {
                inside.sort_unstable();
                inside.dedup();
            }
            SlotRow {
                start_at,
                end_at,
                capacity,
                taken: i32::try_from(inside.len()).unwrap_or(i32::MAX),
                minutes,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use time::macros::{date, datetime};

    use super::*;

    fn paris() -> TimeZone {
        TimeZone::get("Europe/Paris").expect("the system's tz database has Europe/Paris")
    }

    fn every_day(ranges: Value) -> Value {
        let mut week = serde_json::Map::new();
        for day in ["mon", "tue", "wed", "thu", "fri", "sat", "sun"] {
            week.insert(day.into(), ranges.clone());
        }
        Value::Object(week)
    }

    #[test]
    fn a_winter_day_is_one_hour_ahead_of_utc_and_a_summer_day_two() {
        let hours = every_day(serde_json::json!([["07:00", "08:00"]]));
        let winter = day_grid(&hours, 30, date!(2026 - 12 - 07), &paris());
        assert_eq!(
            winter,
            vec![
                (datetime!(2026-12-07 06:00 UTC), datetime!(2026-12-07 06:30 UTC)),
                (datetime!(2026-12-07 06:30 UTC), datetime!(2026-12-07 07:00 UTC)),
            ]
        );
        let summer = day_grid(&hours, 30, date!(2027 - 07 - 07), &paris());
        assert_eq!(summer[0].0, datetime!(2027-07-07 05:00 UTC));
    }

    #[test]
    fn the_night_clocks_move_keeps_slots_in_absolute_time() {
        // 2027-03-28: at 02:00 the clocks in Paris jump to 03:00, so 01:00–04:00 local lasts two hours.
        let hours = every_day(serde_json::json!([["01:00", "04:00"]]));
        let grid = day_grid(&hours, 60, date!(2027 - 03 - 28), &paris());
        assert_eq!(
            grid,
            vec![
                (datetime!(2027-03-28 00:00 UTC), datetime!(2027-03-28 01:00 UTC)),
                (datetime!(2027-03-28 01:00 UTC), datetime!(2027-03-28 02:00 UTC)),
            ]
        );
        // A range opening in the skipped hour opens at the first instant after the gap (03:00 CEST).
        let skipped = every_day(serde_json::json!([["02:30", "04:00"]]));
        let grid = day_grid(&skipped, 30, date!(2027 - 03 - 28), &paris());
        assert_eq!(grid.first().map(|s| s.0), Some(datetime!(2027-03-28 01:30 UTC)));
    }

    #[test]
    fn ranges_are_cut_into_whole_slots_sorted_and_each_given_once() {
        let hours = every_day(serde_json::json!([
            ["14:00", "15:10"],
            ["07:00", "07:30"],
            ["07:00", "07:30"]
        ]));
        let grid = day_grid(&hours, 30, date!(2026 - 12 - 07), &paris());
        let starts: Vec<_> = grid.iter().map(|s| s.0).collect();
        assert_eq!(
            starts,
            vec![
                datetime!(2026-12-07 06:00 UTC),
                datetime!(2026-12-07 13:00 UTC),
                datetime!(2026-12-07 13:30 UTC),
            ]
        );
    }

    #[test]
    fn bad_rules_give_no_slots_rather_than_an_error() {
        let day = date!(2026 - 12 - 07);
        for hours in [
            serde_json::json!({"mon": "07:00-12:00"}),
            serde_json::json!({"mon": [["7:00", "12:00"]]}),
            serde_json::json!({"mon": [["07:00", "24:00"]]}),
            serde_json::json!({"mon": [["07:60", "12:00"]]}),
            serde_json::json!({"mon": [[700, 1200]]}),
            serde_json::json!({"mon": [["07:00"]]}),
            serde_json::json!({"mon": [["12:00", "07:00"]]}),
            serde_json::json!({"tue": [["07:00", "12:00"]]}),
            serde_json::json!(null),
        ] {
            assert_eq!(day_grid(&hours, 15, day, &paris()), vec![], "{hours}");
        }
        let good = serde_json::json!({"mon": [["07:00", "12:00"]]});
        assert_eq!(day_grid(&good, 0, day, &paris()), vec![]);
        assert_eq!(day_grid(&good, -15, day, &paris()), vec![]);
        assert_eq!(day_grid(&good, 15, day, &paris()).len(), 20);
    }

    #[test]
    fn the_local_day_of_an_instant_follows_the_zone() {
        assert_eq!(
            local_day(datetime!(2026-12-06 23:30 UTC), &paris()),
            Some(date!(2026 - 12 - 07))
        );
        assert_eq!(
            local_day(datetime!(2026-12-06 22:30 UTC), &paris()),
            Some(date!(2026 - 12 - 06))
        );
    }

    #[test]
    fn lab_slots_count_visits_and_home_slots_count_busy_samplers() {
        let grid = [
            (datetime!(2026-12-07 06:00 UTC), datetime!(2026-12-07 06:15 UTC)),
            (datetime!(2026-12-07 06:15 UTC), datetime!(2026-12-07 06:30 UTC)),
        ];
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let booked = [
            (datetime!(2026-12-07 06:00 UTC), Some(a)),
            (datetime!(2026-12-07 06:05 UTC), Some(a)),
            (datetime!(2026-12-07 06:14:59 UTC), Some(b)),
            (datetime!(2026-12-07 06:30 UTC), Some(b)),
        ];
        let lab = with_places(&grid, &booked, 4, false);
        assert_eq!(
            lab.iter().map(|s| (s.taken, s.free())).collect::<Vec<_>>(),
            vec![(3, 1), (0, 4)]
        );
        assert_eq!(lab[0].minutes, 15);
        let home = with_places(&grid, &booked, 2, true);
        assert_eq!(home.iter().map(|s| s.taken).collect::<Vec<_>>(), vec![2, 0]);
        let full = with_places(&grid[..1], &booked, 2, false);
        assert_eq!(
            full[0].free(),
            0,
            "an overbooked slot has no place left, not a negative count"
        );
    }
}
