//! The feed's HTTP handlers: authenticate the gateway, check the query, call the feed, answer JSON.
//! Authentication comes before the query is read, so a caller without a credential learns nothing
//! from the validation of its parameters.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, web};
use labedge_schema::db::PooledConnection;
use labedge_schema::sync::{Entity, FeedHead};
use labedge_service::http::parse_query;
use mobile_contracts::problem::{ErrorCode, FieldError, Problem};
use serde::{Deserialize, Serialize};
use validator::Validate;

use super::credential::{GatewayCredential, authorize};
use super::snapshot::SnapshotRequest;
use crate::ApiError;
use crate::config::FeedConfig;
use crate::state::AppState;

/// `limit` of a change-feed page when the query has none.
pub const DEFAULT_CHANGES_LIMIT: u32 = 500;
/// `limit` of a snapshot page when the query has none.
pub const DEFAULT_SNAPSHOT_LIMIT: u32 = 1_000;

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(changes_head)
        .service(changes)
        .service(snapshot)
        .service(checksums);
}

/// `?after=N&limit=M` of `GET /v1/labs/{lab}/changes`.
#[derive(Debug, Deserialize, Validate)]
#[serde(deny_unknown_fields)]
pub struct ChangesQuery {
    /// The last position the gateway applied (0 to start from the beginning).
    #[serde(default)]
    #[validate(range(min = 0, message = "must be 0 or more"))]
    pub after: i64,
    /// Entries at most (500 by default; at most `feed.max_changes_page`).
    #[validate(range(min = 1, message = "must be 1 or more"))]
    pub limit: Option<i64>,
}

/// `?after=KEY&limit=M&bucket=xx` of `GET /v1/labs/{lab}/snapshot/{entity}`.
#[derive(Debug, Deserialize, Validate)]
#[serde(deny_unknown_fields)]
pub struct SnapshotQuery {
    /// The last key already read.
    #[validate(length(min = 1, max = 64, message = "must be a key of the table"))]
    pub after: Option<String>,
    /// Rows at most (1000 by default; at most `feed.max_snapshot_page`).
    #[validate(range(min = 1, message = "must be 1 or more"))]
    pub limit: Option<i64>,
    /// Only the rows of this reconciliation bucket: two lower-case hex digits.
    pub bucket: Option<String>,
}

/// `?entity=E&buckets=true` of `GET /v1/labs/{lab}/checksums`.
#[derive(Debug, Deserialize, Validate)]
#[serde(deny_unknown_fields)]
pub struct ChecksumsQuery {
    /// Only this table.
    pub entity: Option<String>,
    /// With the per-bucket digests.
    #[serde(default)]
    pub buckets: bool,
}

fn invalid(pointer: &str, code: &str, message: impl Into<String>) -> ApiError {
    Problem::new(ErrorCode::ValidationFailed)
        .with_detail("the query string does not match the contract")
        .with_errors(vec![FieldError::new(pointer, code, message)])
        .into()
}

/// The page size asked, or the default, checked against the configured cap.
fn page_limit(asked: Option<i64>, default: u32, max: u32) -> Result<i64, ApiError> {
    let max = i64::from(max);
    match asked {
        Some(limit) if limit > max => Err(invalid("/limit", "range", format!("must be at most {max}"))),
        Some(limit) => Ok(limit),
        None => Ok(i64::from(default).min(max)),
    }
}

fn json<T: Serialize>(body: &T) -> HttpResponse {
    // Patient data: never kept by a cache on the way.
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body)
}

fn feed_config(state: &AppState) -> &FeedConfig {
    &state.config.feed
}

/// A feed read: a connection, the authenticated gateway ([`authorize`]) and the parsed query string.
async fn authorized_query<Q: serde::de::DeserializeOwned + Validate>(
    state: &AppState,
    req: &HttpRequest,
    lab: &str,
) -> Result<(PooledConnection, GatewayCredential, Q), ApiError> {
    let mut conn = state.pool.get().await?;
    let gateway = authorize(req, &mut conn, lab).await?;
    Ok((conn, gateway, parse_query(req.query_string())?))
}

/// The newest committed position: where a bootstrap's snapshot starts following the feed.
#[get("/v1/labs/{lab}/changes/head")]
async fn changes_head(
    state: web::Data<AppState>,
    lab: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let mut conn = state.pool.get().await?;
    authorize(&req, &mut conn, &lab).await?;
    let position = super::changes::head(&mut conn).await?;
    let window = super::scope::Window::at(&mut conn, feed_config(&state), None).await?;
    Ok(json(&FeedHead {
        position,
        window_ends: Some(window.to),
    }))
}

/// A page of the lab's change feed after a position.
#[get("/v1/labs/{lab}/changes")]
async fn changes(
    state: web::Data<AppState>,
    lab: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (mut conn, gateway, query): (_, _, ChangesQuery) = authorized_query(&state, &req, &lab).await?;
    let feed = feed_config(&state);
    let limit = page_limit(query.limit, DEFAULT_CHANGES_LIMIT, feed.max_changes_page)?;
    let page = super::read_changes(
        &mut conn,
        feed,
        gateway.lab_id,
        &gateway.lab_code,
        query.after,
        limit,
        None,
    )
    .await?;
    Ok(json(&page))
}

/// A page of one table of the lab's scope, by key.
#[get("/v1/labs/{lab}/snapshot/{entity}")]
async fn snapshot(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (lab, entity) = path.into_inner();
    let mut conn = state.pool.get().await?;
    let gateway = authorize(&req, &mut conn, &lab).await?;
    // An unknown table is a 404 before anything about its query.
    let entity = Entity::parse(&entity).ok_or_else(ApiError::not_found)?;
    let query: SnapshotQuery = parse_query(req.query_string())?;
    let feed = feed_config(&state);
    let limit = page_limit(query.limit, DEFAULT_SNAPSHOT_LIMIT, feed.max_snapshot_page)?;
    if let Some(after) = &query.after
        && !super::records::valid_key(entity, after)
    {
        return Err(invalid("/after", "key", "must be a key of the table"));
    }
    if let Some(bucket) = &query.bucket
        && !(bucket.len() == 2 && bucket.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    {
        return Err(invalid("/bucket", "bucket", "must be two lower-case hex digits"));
    }
    let request = SnapshotRequest {
        after: query.after.as_deref(),
        bucket: query.bucket.as_deref(),
        limit,
    };
    let page = super::read_snapshot(&mut conn, feed, gateway.lab_id, entity, request, None).await?;
    Ok(json(&page))
}

/// Counts and checksums of the lab's scope, per table (and per bucket when asked).
#[get("/v1/labs/{lab}/checksums")]
async fn checksums(
    state: web::Data<AppState>,
    lab: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (mut conn, gateway, query): (_, _, ChecksumsQuery) = authorized_query(&state, &req, &lab).await?;
    let entities = match &query.entity {
        None => Entity::ALL.to_vec(),
        Some(name) => vec![Entity::parse(name).ok_or_else(|| invalid("/entity", "entity", "not a replicated table"))?],
    };
    let sums = super::read_checksums(
        &mut conn,
        feed_config(&state),
        gateway.lab_id,
        &gateway.lab_code,
        &entities,
        query.buckets,
        None,
    )
    .await?;
    Ok(json(&sums))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_default_and_cap() {
        assert_eq!(page_limit(None, 500, 5_000).ok(), Some(500));
        assert_eq!(page_limit(None, 500, 100).ok(), Some(100));
        assert_eq!(page_limit(Some(5_000), 500, 5_000).ok(), Some(5_000));
        assert!(page_limit(Some(5_001), 500, 5_000).is_err());
    }
}
