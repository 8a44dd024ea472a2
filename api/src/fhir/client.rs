//! Integration clients: who may call the FHIR interface. A client is a certificate signed by the
//! cloud CA (mutual TLS), recorded in `integration_clients` with its scopes; gateway credentials
//! are refused here, and integration credentials are refused by the gateway routes (their
//! fingerprints are in different tables). Scopes follow SMART's system scopes:
//! `system/Patient.read`, `system/Appointment.write`, `system/*.read`.

use std::path::PathBuf;

use actix_web::HttpRequest;
use actix_web::http::StatusCode;
use anyhow::{Context, bail};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use labedge_schema::cloud::schema::{audit_log, integration_clients};
use labedge_service::pki::{CertAuthority, write_private};
use labedge_service::tls::{peer_certificate, sha256_hex};
use time::OffsetDateTime;
use uuid::Uuid;

use super::outcome::FhirError;
use super::resources::Kind;
use crate::config::Config;
use crate::provision::CLOUD_CA_NAME;

/// Read or write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// An authenticated integration client.
#[derive(Clone, Debug)]
pub struct IntegrationClient {
    pub id: Uuid,
    pub name: String,
    scopes: Vec<String>,
}

impl IntegrationClient {
    /// Whether its scopes allow `access` to `kind`.
    pub fn may(&self, kind: Kind, access: Access) -> bool {
        let verb = match access {
            Access::Read => "read",
            Access::Write => "write",
        };
        self.scopes.iter().any(|scope| {
            let Some(rest) = scope.strip_prefix("system/") else {
                return false;
            };
            let Some((resource, granted)) = rest.split_once('.') else {
                return false;
            };
            (resource == "*" || resource == kind.name()) && (granted == "*" || granted == verb)
        })
    }

    /// 403 unless its scopes allow `access` to `kind`.
    pub fn require(&self, kind: Kind, access: Access) -> Result<(), FhirError> {
        if self.may(kind, access) {
            return Ok(());
        }
        security_event(Some(&self.name), "scope_refused");
        Err(FhirError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "this client's scopes do not allow {} of {}",
                if access == Access::Read { "reading" } else { "writing" },
                kind.name()
            ),
        ))
    }
}

/// The request's integration client, from its certificate: 401 without one that is known, valid and
/// not revoked.
pub async fn authenticate(req: &HttpRequest, conn: &mut AsyncPgConnection) -> Result<IntegrationClient, FhirError> {
    let refused = |reason: &'static str| {
        security_event(None, reason);
        FhirError::new(
            StatusCode::UNAUTHORIZED,
            "security",
            "an integration client certificate is required (api create-integration-client)",
        )
    };
    let Some(cert) = peer_certificate(req) else {
        return Err(refused("no_certificate"));
    };
    let fingerprint = sha256_hex(cert.0.as_ref());
    type Row = (Uuid, String, String, OffsetDateTime, Option<OffsetDateTime>);
    let found: Option<Row> = integration_clients::table
        .filter(integration_clients::cert_sha256.eq(&fingerprint))
        .select((
            integration_clients::id,
            integration_clients::name,
            integration_clients::scopes,
            integration_clients::cert_not_after,
            integration_clients::revoked_at,
        ))
        .first(conn)
        .await
        .optional()?;
    match found {
        None => Err(refused("unknown_certificate")),
        Some((.., Some(_))) => Err(refused("revoked")),
        Some((_, _, _, not_after, _)) if not_after <= OffsetDateTime::now_utc() => Err(refused("expired")),
        Some((id, name, scopes, _, None)) => Ok(IntegrationClient {
            id,
            name,
            scopes: scopes.split_whitespace().map(str::to_owned).collect(),
        }),
    }
}

/// Records a call in the cloud's audit log, in the caller's transaction when it writes (the record
/// commits with the change or not at all).
pub async fn audit(
    conn: &mut AsyncPgConnection,
    client: &IntegrationClient,
    action: &str,
    resource: &str,
    patient: Option<Uuid>,
    request_id: &str,
) -> Result<(), FhirError> {
    diesel::insert_into(audit_log::table)
        .values((
            audit_log::at.eq(OffsetDateTime::now_utc()),
            audit_log::actor.eq(format!("integration:{}", client.name)),
            audit_log::action.eq(action),
            audit_log::patient_id.eq(patient),
            audit_log::resource.eq(Some(resource)),
            audit_log::request_id.eq(Some(request_id)),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

fn security_event(client: Option<&str>, reason: &'static str) {
    tracing::event!(
        target: "security",
        tracing::Level::WARN,
        event.kind = "security",
        event.category = "authentication",
        event.action = "integration_refused",
        event.outcome = "failure",
        event.reason = reason,
        client.name = client.unwrap_or(""),
        "security event"
    );
    metrics::counter!(
        "labedge_security_events_total",
        "action" => "integration_refused",
        "outcome" => "failure",
        "reason" => reason
    )
    .increment(1);
}

/// `api create-integration-client`.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// The client's name (a-z 0-9 . _ -), as the audit log shows it.
    #[arg(long)]
    pub name: String,
    /// A SMART system scope, repeated: system/Patient.write, system/Specimen.read, system/*.read.
    #[arg(long = "scope", required = true)]
    pub scopes: Vec<String>,
    /// Directory the client's certificate, key and the cloud CA are written to.
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
    /// Host name of the client's Subscription endpoint, repeated: a server certificate for it is
    /// written too (the API's notifications trust only endpoints the cloud CA certified).
    #[arg(long = "endpoint-hostname")]
    pub endpoint_hostnames: Vec<String>,
}

/// Issues an integration client's certificate and records it with its scopes.
pub async fn create(config: &Config, args: &CreateArgs) -> anyhow::Result<String> {
    for scope in &args.scopes {
        let valid = scope
            .strip_prefix("system/")
            .and_then(|s| s.split_once('.'))
            .is_some_and(|(r, v)| (r == "*" || Kind::parse(r).is_some()) && matches!(v, "read" | "write" | "*"));
        if !valid {
            bail!("--scope {scope}: expected system/<Type or *>.<read, write or *>");
        }
    }
    let mut conn = AsyncPgConnection::establish(config.database.url.expose_secret())
        .await
        .context("connect to the cloud database")?;
    let ca = CertAuthority::load_or_create(&config.pki.dir, CLOUD_CA_NAME)?;
    let cert = ca.issue_client(
        &format!("LabEdge integration {}", args.name),
        "integration",
        config.pki.cert_days,
    )?;
    diesel::insert_into(integration_clients::table)
        .values((
            integration_clients::id.eq(Uuid::now_v7()),
            integration_clients::name.eq(&args.name),
            integration_clients::scopes.eq(args.scopes.join(" ")),
            integration_clients::cert_serial.eq(&cert.serial_hex),
            integration_clients::cert_sha256.eq(&cert.sha256_hex),
            integration_clients::cert_not_after.eq(cert.not_after),
        ))
        .execute(&mut conn)
        .await
        .map_err(|e| match e {
            diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _) => {
                anyhow::anyhow!("--name {}: an integration client has this name already", args.name)
            }
            diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::CheckViolation, _) => {
                anyhow::anyhow!(
                    "--name {}: 2 to 64 of a-z 0-9 . _ -, starting with a letter or digit",
                    args.name
                )
            }
            other => other.into(),
        })?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("create {}", args.out.display()))?;
    let cert_path = args.out.join(format!("{}.pem", args.name));
    let key_path = args.out.join(format!("{}.key", args.name));
    let ca_path = args.out.join("cloud-ca.pem");
    std::fs::write(&cert_path, &cert.cert_pem)?;
    if let Some(key) = &cert.key_pem {
        write_private(&key_path, key)?;
    }
    std::fs::write(&ca_path, ca.cert_pem())?;
    let mut endpoint = String::new();
    if !args.endpoint_hostnames.is_empty() {
        let server = ca.issue_server(
            &format!("LabEdge integration endpoint {}", args.name),
            &args.endpoint_hostnames,
            config.pki.cert_days,
        )?;
        let (cert, key) = (
            args.out.join(format!("{}-endpoint.pem", args.name)),
            args.out.join(format!("{}-endpoint.key", args.name)),
        );
        std::fs::write(&cert, &server.cert_pem)?;
        if let Some(pem) = &server.key_pem {
            write_private(&key, pem)?;
        }
        endpoint = format!("\n  endpoint    {} (key {})", cert.display(), key.display());
    }
    Ok(format!(
        "integration client {} created (scopes {}):\n  certificate {}\n  key         {}\n  cloud CA    {}{endpoint}",
        args.name,
        args.scopes.join(" "),
        cert_path.display(),
        key_path.display(),
        ca_path.display()
    ))
}
