//! A lab's scope as SQL: the appointment window at an instant, and per table the predicate that says
//! whether a row belongs to a lab's share of the data (see the rules in [`crate::feed`]).
//!
//! The predicates are SQL text, because [`labedge_schema::sync::digest`] takes a `FROM … WHERE …`
//! string. Only values that cannot carry SQL are written into them: a UUID and instants and dates
//! printed by this module, each as a typed literal. The time zone, the one free-form setting, is
//! only ever bound as a parameter (in [`Window::at`]).

use diesel::sql_types::{Integer, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use labedge_schema::sync::Entity;
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::config::FeedConfig;

/// The appointment window at one instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// The instant the window was taken at.
    pub now: OffsetDateTime,
    /// Earliest `scheduled_at` in scope: `now − window_back_days` (inclusive).
    pub from: OffsetDateTime,
    /// End of the `window_ahead_days`-th day after today, in the configured time zone (exclusive).
    pub to: OffsetDateTime,
    /// Earliest `issued_on` of an open prescription in scope: today − `window_back_days`.
    pub issued_since: Date,
}

#[derive(diesel::QueryableByName)]
struct WindowRow {
    #[diesel(sql_type = Timestamptz)]
    now: OffsetDateTime,
    #[diesel(sql_type = Timestamptz)]
    from_at: OffsetDateTime,
    #[diesel(sql_type = Timestamptz)]
    to_at: OffsetDateTime,
    #[diesel(sql_type = diesel::sql_types::Date)]
    issued_since: Date,
}

impl Window {
    /// The window at `now`, or at the database's `now()` (the transaction's start) when `None`.
    /// PostgreSQL does the calendar arithmetic, so days are local days of `feed.timezone`, daylight
    /// saving time included.
    pub async fn at(
        conn: &mut AsyncPgConnection,
        feed: &FeedConfig,
        now: Option<OffsetDateTime>,
    ) -> diesel::QueryResult<Self> {
        let row: WindowRow = diesel::sql_query(
            "SELECT n AS now, n - make_interval(days => $2) AS from_at, \
                    (date_trunc('day', n AT TIME ZONE $4) + make_interval(days => $3 + 1)) AT TIME ZONE $4 AS to_at, \
                    ((n AT TIME ZONE $4)::date - $2) AS issued_since \
             FROM (SELECT coalesce($1, now()) AS n) s",
        )
        .bind::<Nullable<Timestamptz>, _>(now)
        .bind::<Integer, _>(i32::from(feed.window_back_days))
        .bind::<Integer, _>(i32::from(feed.window_ahead_days))
        .bind::<Text, _>(&feed.timezone)
        .get_result(conn)
        .await?;
        Ok(Self {
            now: row.now,
            from: row.from_at,
            to: row.to_at,
            issued_since: row.issued_since,
        })
    }

    /// Whether an appointment scheduled at `at` is in the window.
    pub fn contains(&self, at: OffsetDateTime) -> bool {
        self.from <= at && at < self.to
    }
}

/// One lab's scope at one instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scope {
    /// The lab.
    pub lab_id: Uuid,
    /// The appointment window.
    pub window: Window,
}

impl Scope {
    /// Lab `lab_id`'s scope, its window at `now` (or the database's clock when `None`).
    pub async fn at(
        conn: &mut AsyncPgConnection,
        feed: &FeedConfig,
        lab_id: Uuid,
        now: Option<OffsetDateTime>,
    ) -> diesel::QueryResult<Self> {
        Ok(Self {
            lab_id,
            window: Window::at(conn, feed, now).await?,
        })
    }

    /// The SQL condition that a row of `entity`'s table, referred to as `t` (the table's name or an
    /// alias), is in this lab's scope.
    pub fn predicate(&self, entity: Entity, t: &str) -> String {
        let lab = self.lab();
        match entity {
            Entity::Lab => format!("{t}.id = {lab}"),
            Entity::Staff => format!("{t}.lab_id = {lab}"),
            Entity::TubeType | Entity::Exam => "true".to_owned(),
            Entity::Appointment => self.appointment(t),
            Entity::Prescription => self.prescription(t),
            // A walk-in registered at the lab is in its scope from its registration, before any
            // appointment or prescription names it, for as long as an appointment would be. A patient
            // merged into one in scope stays, marked, so that reads of its id lead to the survivor.
            Entity::Patient => {
                let named = format!(
                    "SELECT sa.patient_id FROM appointments sa WHERE {} \
                     UNION ALL SELECT sp.patient_id FROM prescriptions sp WHERE {}",
                    self.appointment("sa"),
                    self.prescription("sp"),
                );
                format!(
                    "({t}.id IN ({named}) OR {t}.merged_into IN ({named}) \
                     OR ({t}.registered_lab_id = {lab} AND {t}.registered_at >= {from}))",
                    from = instant(self.window.from),
                )
            }
        }
    }

    /// `FROM <table> t WHERE <in scope>`, for [`labedge_schema::sync::digest`].
    pub fn from_where(&self, entity: Entity) -> String {
        format!("FROM {} t WHERE {}", entity.table(), self.predicate(entity, "t"))
    }

    /// In-scope appointments of the lab whose prescription belongs to another lab: the ids whose
    /// prescription changes this lab must hear of although they are logged for the other lab.
    pub fn foreign_prescriptions_sql(&self) -> String {
        format!(
            "SELECT fa.prescription_id::text FROM appointments fa JOIN prescriptions fp ON fp.id = fa.prescription_id \
             WHERE {} AND fp.lab_id <> {}",
            self.appointment("fa"),
            self.lab()
        )
    }

    fn appointment(&self, t: &str) -> String {
        format!(
            "({t}.lab_id = {} AND {t}.scheduled_at >= {} AND {t}.scheduled_at < {})",
            self.lab(),
            instant(self.window.from),
            instant(self.window.to)
        )
    }

    fn prescription(&self, t: &str) -> String {
        format!(
            "(({t}.lab_id = {lab} AND {t}.status = 'open' AND {t}.issued_on >= {since}) \
             OR {t}.id IN (SELECT pa.prescription_id FROM appointments pa WHERE {appointment} \
                           AND pa.prescription_id IS NOT NULL))",
            lab = self.lab(),
            since = date(self.window.issued_since),
            appointment = self.appointment("pa"),
        )
    }

    fn lab(&self) -> String {
        format!("'{}'::uuid", self.lab_id.hyphenated())
    }
}

/// A `timestamptz` literal. RFC 3339 output is digits, `-`, `:`, `.`, `T`, `Z` and `+` only.
fn instant(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC).format(&Rfc3339).map_or_else(
        // Only years beyond 9999 have no RFC 3339 form.
        |_| format!("to_timestamp({})", at.unix_timestamp()),
        |text| format!("'{text}'::timestamptz"),
    )
}

/// A `date` literal (`YYYY-MM-DD`).
fn date(day: Date) -> String {
    format!("'{day}'::date")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_typed_and_quote_free() {
        let at = time::macros::datetime!(2026-03-29 01:30:00.123456 +02:00);
        assert_eq!(instant(at), "'2026-03-28T23:30:00.123456Z'::timestamptz");
        assert_eq!(date(time::macros::date!(2026 - 01 - 05)), "'2026-01-05'::date");
    }
}
