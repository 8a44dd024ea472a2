//! The central view's queries: every lab's gateway as it last reported itself, and the storing of a
//! report.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use labedge_protocol::status::GatewayReport;
use labedge_schema::cloud::schema::gateways;
use time::OffsetDateTime;
use uuid::Uuid;

/// One lab and its gateway's last report, read with the database's clock.
#[derive(Clone, Debug, QueryableByName)]
pub struct GatewayRow {
    /// The lab's code.
    #[diesel(sql_type = Text)]
    pub lab: String,
    /// The lab's name.
    #[diesel(sql_type = Text)]
    pub lab_name: String,
    /// The database's clock when the row was read.
    #[diesel(sql_type = Timestamptz)]
    pub now: OffsetDateTime,
    /// When the gateway last reached the cloud (any authenticated call, or a report).
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub last_contact_at: Option<OffsetDateTime>,
    /// Seconds since then.
    #[diesel(sql_type = Nullable<Double>)]
    pub last_contact_age_s: Option<f64>,
    /// `online`, `failover` or `degraded`, as last reported.
    #[diesel(sql_type = Nullable<Text>)]
    pub reported_state: Option<String>,
    /// Outbox entries not yet acknowledged.
    #[diesel(sql_type = Nullable<BigInt>)]
    pub reported_backlog: Option<i64>,
    /// Age of the oldest of them, in seconds.
    #[diesel(sql_type = Nullable<BigInt>)]
    pub reported_oldest_unsent_s: Option<i64>,
    /// Seconds since the gateway's last successful pull of the change feed.
    #[diesel(sql_type = Nullable<BigInt>)]
    pub reported_feed_lag_s: Option<i64>,
    /// The end of its credential's validity.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub cert_not_after: Option<OffsetDateTime>,
}

/// Every proximity lab (and any other lab with a gateway), by code, with its gateway credential:
/// the valid one heard from last when a rotation left several.
pub async fn overview(conn: &mut AsyncPgConnection) -> QueryResult<Vec<GatewayRow>> {
    diesel::sql_query(
        "SELECT l.code AS lab, l.name AS lab_name, now() AS now, \
                g.last_contact_at, extract(epoch FROM now() - g.last_contact_at)::float8 AS last_contact_age_s, \
                g.reported_state, g.reported_backlog, g.reported_oldest_unsent_s, g.reported_feed_lag_s, \
                g.cert_not_after \
         FROM labs l \
         LEFT JOIN LATERAL ( \
             SELECT * FROM gateways g \
             WHERE g.lab_id = l.id AND g.revoked_at IS NULL \
             ORDER BY g.last_contact_at DESC NULLS LAST, g.created_at DESC \
             LIMIT 1 \
         ) g ON true \
         WHERE l.kind = 'proximity' OR g.id IS NOT NULL \
         ORDER BY l.code",
    )
    .load(conn)
    .await
}

/// Stores `report` as gateway `gateway_id`'s state and contact, now; returns when (the database's
/// clock) and the state it reported before.
pub async fn record_report(
    conn: &mut AsyncPgConnection,
    gateway_id: Uuid,
    report: &GatewayReport,
) -> QueryResult<(OffsetDateTime, Option<String>)> {
    let previous: Option<String> = gateways::table
        .find(gateway_id)
        .select(gateways::reported_state)
        .first(conn)
        .await?;
    let recorded_at: Option<OffsetDateTime> = diesel::update(gateways::table.find(gateway_id))
        .set((
            gateways::last_contact_at.eq(diesel::dsl::now),
            gateways::reported_state.eq(report.state.as_str()),
            gateways::reported_backlog.eq(report.backlog),
            gateways::reported_oldest_unsent_s.eq(report.oldest_unsent_s),
            gateways::reported_feed_lag_s.eq(report.feed_lag_s),
        ))
        .returning(gateways::last_contact_at)
        .get_result(conn)
        .await?;
    Ok((recorded_at.unwrap_or_else(OffsetDateTime::now_utc), previous))
}
