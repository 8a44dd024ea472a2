//! R4 `Subscription` (rest-hook) and its notifier: a LIS registers an HTTPS endpoint for new
//! `Specimen`s or `Appointment` versions; the notifier `PUT`s each resource to
//! `{endpoint}/{Type}/{id}` over mutual TLS (the API presents a client certificate of the cloud CA
//! and trusts only endpoints whose certificate that CA signed: `api create-integration-client
//! --endpoint-hostname` issues one). Delivery is at least once: the subscription's cursor moves only
//! after the endpoint acknowledged (2xx) every resource of a page, and each resource carries
//! `meta.versionId`, so that the LIS drops what it has seen. A failing endpoint is retried with a
//! backoff doubling from 1 s to 5 min; the subscription reads `status = error` meanwhile.

use std::time::Duration;

use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use labedge_schema::cloud::schema::fhir_subscriptions;
use labedge_schema::db::PgPool;
use labedge_service::workers::Stop;
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use super::json::{Obj, printable};
use super::outcome::FhirError;
use super::resources::{Kind, Search};
use super::store::{Expect, Stored, VersionedWrite, meta, precondition};

/// Resources a notification page holds at most.
const PAGE: usize = 100;
/// The longest wait between two attempts at a failing endpoint.
const MAX_BACKOFF_S: i64 = 300;

/// A subscription as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionRow {
    /// `Specimen` or `Appointment`.
    pub criteria: &'static str,
    /// The LIS's base URL (https).
    pub endpoint: String,
    /// `active` (requested or active) or not (`off`).
    pub active: bool,
}

/// Reads and checks a Subscription.
pub fn parse(value: &Value) -> Result<(SubscriptionRow, Vec<(String, String)>), FhirError> {
    let root = Obj::resource(value, "Subscription")?;
    root.allow_only(
        &["status", "reason", "criteria", "channel", "end", "contact", "error"],
        true,
    )?;
    let active = match root.req_str("status")? {
        "requested" | "active" => true,
        "off" => false,
        other => {
            return Err(FhirError::at(
                root.path_of("status"),
                format!("`{}`: a client sets requested, active or off", printable(other)),
            )
            .code("code-invalid"));
        }
    };
    let criteria = match root.req_str("criteria")? {
        "Specimen" => "Specimen",
        "Appointment" => "Appointment",
        other => {
            return Err(FhirError::at(
                root.path_of("criteria"),
                format!(
                    "`{}`: supported are Specimen and Appointment (every new one or new version)",
                    printable(other)
                ),
            )
            .code("not-supported"));
        }
    };
    let channel = root.req_obj("channel")?;
    channel.allow_only(&["type", "endpoint", "payload", "header"], false)?;
    if channel.req_str("type")? != "rest-hook" {
        return Err(FhirError::at(channel.path_of("type"), "only rest-hook is supported").code("not-supported"));
    }
    if !matches!(
        channel.str("payload")?,
        Some("application/fhir+json" | "application/json")
    ) {
        return Err(FhirError::at(
            channel.path_of("payload"),
            "application/fhir+json: notifications carry the resource",
        )
        .code("not-supported"));
    }
    if !channel.str_array("header")?.is_empty() {
        return Err(FhirError::at(
            channel.path_of("header"),
            "not supported: the endpoint authenticates the API by its client certificate",
        )
        .code("not-supported"));
    }
    let endpoint = channel.req_str("endpoint")?.trim_end_matches('/').to_owned();
    if !endpoint.starts_with("https://") || endpoint.len() > 500 || endpoint.contains(char::is_whitespace) {
        return Err(FhirError::at(
            channel.path_of("endpoint"),
            "an https URL of at most 500 characters",
        ));
    }
    Ok((
        SubscriptionRow {
            criteria,
            endpoint,
            active,
        },
        Vec::new(),
    ))
}

type Loaded = (Uuid, String, String, bool, i32, Option<String>, i64, OffsetDateTime);

/// The Subscription of this id, rendered.
pub async fn load(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<Stored>> {
    let row: Option<Loaded> = fhir_subscriptions::table
        .find(id)
        .select((
            fhir_subscriptions::id,
            fhir_subscriptions::criteria,
            fhir_subscriptions::endpoint,
            fhir_subscriptions::active,
            fhir_subscriptions::failures,
            fhir_subscriptions::last_error,
            fhir_subscriptions::version,
            fhir_subscriptions::updated_at,
        ))
        .first(conn)
        .await
        .optional()?;
    Ok(
        row.map(|(id, criteria, endpoint, active, failures, error, version, updated)| {
            let status = match (active, failures) {
                (false, _) => "off",
                (true, 0) => "active",
                (true, _) => "error",
            };
            let mut resource = json!({
                "resourceType": "Subscription",
                "id": id.to_string(),
                "meta": meta(version, updated),
                "status": status,
                "reason": format!("new {criteria} resources and versions for the LIS"),
                "criteria": criteria,
                "channel": {"type": "rest-hook", "endpoint": endpoint, "payload": "application/fhir+json"},
            });
            if let (true, Some(error)) = (failures > 0, error) {
                resource["error"] = json!(error);
            }
            Stored {
                id,
                version,
                last_updated: updated,
                resource,
            }
        }),
    )
}

/// Creates or replaces a subscription of `owner`. A new one starts at the feed's current end: the LIS
/// reads what came before with a search.
pub async fn write(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    owner: Uuid,
    row: &SubscriptionRow,
    expect: Expect,
) -> Result<VersionedWrite, FhirError> {
    let current: Option<(i64, Uuid, String)> = fhir_subscriptions::table
        .find(id)
        .select((
            fhir_subscriptions::version,
            fhir_subscriptions::client_id,
            fhir_subscriptions::criteria,
        ))
        .for_update()
        .first(conn)
        .await
        .optional()?;
    precondition(current.as_ref().map(|c| c.0), expect, "Subscription", id)?;
    let version = match current {
        None => {
            let cursor = head(conn, row.criteria).await?;
            diesel::insert_into(fhir_subscriptions::table)
                .values((
                    fhir_subscriptions::id.eq(id),
                    fhir_subscriptions::client_id.eq(owner),
                    fhir_subscriptions::criteria.eq(row.criteria),
                    fhir_subscriptions::endpoint.eq(&row.endpoint),
                    fhir_subscriptions::active.eq(row.active),
                    fhir_subscriptions::cursor.eq(cursor),
                ))
                .execute(conn)
                .await?;
            1
        }
        Some((_, client, _)) if client != owner => {
            return Err(FhirError::new(
                actix_web::http::StatusCode::FORBIDDEN,
                "forbidden",
                "this Subscription is another client's",
            ));
        }
        Some((_, _, criteria)) if criteria != row.criteria => {
            return Err(FhirError::at(
                "Subscription.criteria",
                "cannot change: create another subscription",
            ));
        }
        Some((v, _, _)) => {
            diesel::update(fhir_subscriptions::table.find(id))
                .set((
                    fhir_subscriptions::endpoint.eq(&row.endpoint),
                    fhir_subscriptions::active.eq(row.active),
                    // Reactivated or moved: try at once.
                    fhir_subscriptions::failures.eq(0),
                    fhir_subscriptions::next_attempt_at.eq(diesel::dsl::now),
                    fhir_subscriptions::version.eq(v + 1),
                    fhir_subscriptions::updated_at.eq(diesel::dsl::now),
                ))
                .execute(conn)
                .await?;
            v + 1
        }
    };
    Ok(VersionedWrite {
        version,
        created: current.is_none(),
    })
}

async fn head(conn: &mut AsyncPgConnection, criteria: &str) -> QueryResult<i64> {
    if criteria == "Specimen" {
        super::specimen::head(conn).await
    } else {
        use labedge_schema::cloud::schema::change_log;
        let head: Option<i64> = change_log::table
            .select(diesel::dsl::max(change_log::position))
            .first(conn)
            .await?;
        Ok(head.unwrap_or(0))
    }
}

/// The notifier: until the service stops, every half second, each due subscription gets its next
/// page. On a standby database it waits (its cursor cannot move there). A page in delivery is
/// finished before the stop is seen.
pub async fn run(pool: PgPool, pki_dir: std::path::PathBuf, stop: Stop) {
    // The client certificate is issued for 30 days: a new one every day.
    let mut made = std::time::Instant::now();
    let Some(mut http) = client(&pki_dir) else { return };
    loop {
        if made.elapsed() > Duration::from_secs(24 * 3600)
            && let Some(fresh) = client(&pki_dir)
        {
            http = fresh;
            made = std::time::Instant::now();
        }
        let delivered = match round(&pool, &http).await {
            Ok(delivered) => delivered,
            Err(e) => {
                tracing::warn!(error = %e, "fhir notifier: round failed");
                0
            }
        };
        let pause = if delivered > 0 {
            Duration::ZERO
        } else {
            Duration::from_millis(500)
        };
        if stop.is_stopped() || !stop.sleep(pause).await {
            return;
        }
    }
}

#[derive(diesel::QueryableByName)]
struct Recovery {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    in_recovery: bool,
}

/// One subscription's next page, if one is due; the number of resources delivered.
pub async fn round(pool: &PgPool, http: &reqwest::Client) -> anyhow::Result<usize> {
    let mut conn = pool.get().await?;
    let recovery: Recovery = diesel::sql_query("SELECT pg_is_in_recovery() AS in_recovery")
        .get_result(&mut conn)
        .await?;
    if recovery.in_recovery {
        return Ok(0);
    }
    // The row stays locked while its page is delivered: two API instances on one database never
    // deliver the same subscription at once (the other skips it).
    let delivered = conn
        .transaction::<_, anyhow::Error, _>(async |conn| {
            let due: Option<(Uuid, String, String, i64, i32)> = fhir_subscriptions::table
                .filter(fhir_subscriptions::active)
                .filter(fhir_subscriptions::next_attempt_at.le(diesel::dsl::now))
                .order(fhir_subscriptions::next_attempt_at)
                .select((
                    fhir_subscriptions::id,
                    fhir_subscriptions::criteria,
                    fhir_subscriptions::endpoint,
                    fhir_subscriptions::cursor,
                    fhir_subscriptions::failures,
                ))
                .for_update()
                .skip_locked()
                .first(conn)
                .await
                .optional()?;
            let Some((id, criteria, endpoint, cursor, failures)) = due else { return Ok(0) };
            let kind = if criteria == "Specimen" { Kind::Specimen } else { Kind::Appointment };
            let search = Search {
                cursor: Some(cursor),
                count: PAGE,
                ..Search::default()
            };
            let found = super::resources::search(conn, kind, &search)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let next = found.next_cursor.unwrap_or(cursor);
            let row = fhir_subscriptions::table.find(id);
            match deliver(http, &endpoint, kind, &found.resources).await {
                Ok(()) => {
                    // A full page: more may wait, come back at once; otherwise in a second.
                    let wait = if found.resources.len() >= PAGE { 0 } else { 1 };
                    diesel::update(row)
                        .set((
                            fhir_subscriptions::cursor.eq(next),
                            fhir_subscriptions::failures.eq(0),
                            fhir_subscriptions::last_error.eq(None::<String>),
                            fhir_subscriptions::next_attempt_at.eq(OffsetDateTime::now_utc() + time::Duration::seconds(wait)),
                        ))
                        .execute(conn)
                        .await?;
                    Ok(found.resources.len())
                }
                Err(error) => {
                    let backoff = (1i64 << failures.clamp(0, 9)).min(MAX_BACKOFF_S);
                    tracing::warn!(subscription = %id, failures = failures + 1, retry_in_s = backoff, error = %error, "fhir notification failed");
                    diesel::update(row)
                        .set((
                            fhir_subscriptions::failures.eq(failures + 1),
                            fhir_subscriptions::last_error.eq(Some(error)),
                            fhir_subscriptions::next_attempt_at
                                .eq(OffsetDateTime::now_utc() + time::Duration::seconds(backoff)),
                        ))
                        .execute(conn)
                        .await?;
                    Ok(0)
                }
            }
        })
        .await?;
    Ok(delivered)
}

/// PUTs each resource to `{endpoint}/{Type}/{id}`; the first refusal stops the page. The error
/// names the status or the kind of failure, never the endpoint's body.
async fn deliver(http: &reqwest::Client, endpoint: &str, kind: Kind, resources: &[Stored]) -> Result<(), String> {
    for stored in resources {
        let id = stored.resource.get("id").and_then(Value::as_str).unwrap_or_default();
        let answer = http
            .put(format!("{endpoint}/{}/{id}", kind.name()))
            .header("Content-Type", "application/fhir+json")
            .body(stored.resource.to_string())
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        match answer {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => return Err(format!("the endpoint answered {}", r.status().as_u16())),
            Err(e) if e.is_timeout() => return Err("the endpoint did not answer within 10 s".into()),
            Err(e) if e.is_connect() => return Err("the endpoint could not be reached".into()),
            Err(_) => return Err("the request to the endpoint failed".into()),
        }
    }
    Ok(())
}

/// The notifier's HTTPS client: a client certificate issued at start by the cloud CA, which must
/// also have signed the endpoint's certificate. `None` (and an error logged) without the CA.
pub fn client(pki_dir: &std::path::Path) -> Option<reqwest::Client> {
    let ca_path = pki_dir.join("ca.pem");
    if !ca_path.is_file() || !pki_dir.join("ca.key").is_file() {
        tracing::error!(dir = %pki_dir.display(), "fhir notifier off: no cloud CA in pki.dir (api init-pki)");
        return None;
    }
    let built = (|| -> anyhow::Result<reqwest::Client> {
        let ca = labedge_service::pki::CertAuthority::load_or_create(pki_dir, crate::provision::CLOUD_CA_NAME)?;
        let identity = ca.issue_client("LabEdge cloud API notifications", "api", 30)?;
        let key = identity.key_pem.as_deref().unwrap_or_default();
        let tls = labedge_service::tls::client_config_pem(&ca_path, &identity.cert_pem, key)?;
        Ok(reqwest::Client::builder().tls_backend_preconfigured(tls).build()?)
    })();
    match built {
        Ok(client) => Some(client),
        Err(e) => {
            tracing::error!(error = %e, "fhir notifier off: its client certificate could not be made");
            None
        }
    }
}
