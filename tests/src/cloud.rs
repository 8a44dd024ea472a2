//! The real cloud API, served in process over TLS (client certificates optional, signed by its CA),
//! on a free port, with helpers to seed it, to issue gateway credentials, to reach it in process as a
//! lab's gateway, and to start a gateway that follows it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use diesel_async::SimpleAsyncConnection;
use labedge_api::demo::{SeedArgs, SeedSummary};
use labedge_edge_gateway::config::{Config as GatewayConfig, Endpoint, UpstreamConfig};
use labedge_edge_gateway::sync::{self, upstream::Upstreams};
use labedge_protocol::relay::RelayedMutation;
use labedge_schema::db::Database;
use labedge_service::pki::write_private;
use uuid::Uuid;

use crate::app::TestApp;
use crate::db::TestDb;
use crate::fixtures::{TestPki, api_config, tls_listener};
use crate::gateway::TestGateway;

/// A scheduled visit of a lab in the cloud's database, as the intake tests select it (`l.id AS lab,
/// a.id AS appointment, … s.id AS staff, a.version`).
#[derive(diesel::QueryableByName, Clone, Copy, Debug)]
pub struct Visit {
    /// The lab.
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub lab: Uuid,
    /// The appointment.
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub appointment: Uuid,
    /// Its patient.
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub patient: Uuid,
    /// Its prescription.
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub prescription: Uuid,
    /// A nurse of the lab.
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub staff: Uuid,
    /// The appointment's version.
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub version: i64,
}

/// A mutation `op` (its JSON, `kind` included) recorded now by `staff` on a new device, as a gateway
/// relays it.
pub fn relayed(staff: Uuid, op: serde_json::Value) -> RelayedMutation {
    RelayedMutation {
        mutation_id: Uuid::now_v7(),
        recorded_at: time::OffsetDateTime::now_utc(),
        staff_id: Some(staff),
        device_id: Some(Uuid::now_v7()),
        op: serde_json::from_value(op).expect("a relayed operation"),
    }
}

/// A collection at `visit` by its nurse, with one EDTA tube `barcode` (see [`relayed`]).
pub fn relayed_collection(visit: &Visit, barcode: &str) -> RelayedMutation {
    relayed(
        visit.staff,
        serde_json::json!({
            "kind": "collection.create",
            "collection": {
                "id": Uuid::now_v7(), "patient_id": visit.patient, "appointment_id": visit.appointment,
                "prescription_id": visit.prescription, "collected_at": "2026-11-28T08:00:00Z",
                "identity_checked": true, "identity_check_method": "health_card",
                "tubes": [{"barcode": barcode, "tube_type": "EDTA"}]
            }
        }),
    )
}

/// A running cloud API.
#[derive(Debug)]
pub struct TestCloud {
    /// Its database.
    pub db: TestDb,
    /// Its folder (CA, certificates).
    pub dir: tempfile::TempDir,
    /// Its CA.
    pub pki: TestPki,
    /// Where it listens.
    pub addr: SocketAddr,
    handle: std::sync::Mutex<ServerHandle>,
    config: labedge_api::config::Config,
}

/// A gateway's credential files.
#[derive(Clone, Debug)]
pub struct Credential {
    /// The cloud CA.
    pub ca: PathBuf,
    /// The client certificate.
    pub cert: PathBuf,
    /// Its key.
    pub key: PathBuf,
    /// The certificate in DER.
    pub der: Vec<u8>,
}

impl Credential {
    /// A gateway's upstream configuration towards the cloud at `url` (one endpoint, `cloud`), with
    /// this credential.
    pub fn upstream(&self, url: String, request_timeout_ms: u64) -> UpstreamConfig {
        UpstreamConfig {
            endpoints: vec![Endpoint {
                name: "cloud".into(),
                url,
            }],
            ca: self.ca.clone(),
            cert: self.cert.clone(),
            key: self.key.clone(),
            request_timeout_ms,
        }
    }
}

impl TestCloud {
    /// A cloud on a migrated, empty database.
    pub async fn start() -> Self {
        labedge_service::tls::install_crypto_provider();
        let db = TestDb::migrated(Database::Cloud).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = TestPki::new(&dir.path().join("pki"));
        let (cert, key) = pki.server("api-server");
        let mut config = api_config(db.url(), &pki.dir);
        config.http = tls_listener(&cert, &key, Some(&pki.ca_path()));
        config.http.workers = Some(2);
        config.http.shutdown_timeout_s = 1;
        let app = labedge_api::startup::Application::build(config.clone())
            .await
            .expect("cloud API");
        let addr = app.addr();
        config.http.addr = addr;
        let handle = std::sync::Mutex::new(app.handle());
        tokio::spawn(app.run_until_stopped());
        Self {
            db,
            dir,
            pki,
            addr,
            handle,
            config,
        }
    }

    /// A cloud seeded with a network of `patients` patients and `proximity_labs` proximity labs (the
    /// generator's defaults otherwise).
    pub async fn seeded(patients: u32, proximity_labs: u8) -> (Self, SeedSummary) {
        let cloud = Self::start().await;
        let summary = cloud
            .seed(&SeedArgs {
                patients,
                proximity_labs,
                ..SeedArgs::default()
            })
            .await;
        (cloud, summary)
    }

    /// The API again, in process on the same database (no certificate presented).
    pub async fn app(&self) -> TestApp {
        let state = labedge_api::startup::build_state(api_config(self.db.url(), &self.pki.dir)).expect("API state");
        TestApp::new(labedge_api::startup::app(state)).await
    }

    /// [`TestCloud::app`] as the gateway of lab `code` sees it: a credential of that lab, issued now,
    /// presented on every request.
    pub async fn gateway_app(&self, code: &str) -> TestApp {
        let mut app = self.app().await;
        app.certificate = Some(self.credential(code).await.der);
        app
    }

    /// A gateway of lab `code` with an empty database and a credential of that lab, whose upstream is
    /// this cloud (5 s request timeout), its configuration adjusted further by `adjust`; and its
    /// upstreams. The test bootstraps it when it wants ([`TestCloud::bootstrapped_gateway`] does).
    pub async fn gateway(&self, code: &str, adjust: impl FnOnce(&mut GatewayConfig)) -> (TestGateway, Upstreams) {
        let credential = self.credential(code).await;
        let url = self.url();
        let gw = TestGateway::start_empty(code, |c| {
            c.upstream = credential.upstream(url, 5_000);
            adjust(c);
        })
        .await;
        let upstreams = Upstreams::from_config(&gw.state.config.upstream, Arc::clone(&gw.state.upstream_health))
            .expect("upstreams");
        (gw, upstreams)
    }

    /// [`TestCloud::gateway`] of lab `code`, bootstrapped: the lab, its staff and its share of the
    /// network are on the gateway.
    pub async fn bootstrapped_gateway(&self, code: &str) -> (TestGateway, Upstreams) {
        let (gw, upstreams) = self.gateway(code, |_| {}).await;
        sync::bootstrap(&gw.state, &upstreams, &()).await.expect("bootstrap");
        (gw, upstreams)
    }

    /// Starts the API again after [`TestCloud::stop`], on the same address and database.
    pub async fn restart(&self) {
        let app = labedge_api::startup::Application::build(self.config.clone())
            .await
            .expect("cloud API again");
        *self.handle.lock().expect("handle") = app.handle();
        tokio::spawn(app.run_until_stopped());
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    /// Seeds the synthetic network.
    pub async fn seed(&self, args: &SeedArgs) -> SeedSummary {
        labedge_api::demo::seed_into(&mut self.db.conn().await, args)
            .await
            .expect("seed")
    }

    /// Issues a gateway credential of lab `code` and records it with its certificate, as
    /// `api provision-gateway` does.
    pub async fn credential(&self, code: &str) -> Credential {
        let issued = self
            .pki
            .ca
            .issue_client(&format!("LabEdge gateway {code}"), code, 30)
            .expect("credential");
        let cert = self.dir.path().join(format!("gateway-{code}.pem"));
        let key = self.dir.path().join(format!("gateway-{code}.key"));
        std::fs::write(&cert, &issued.cert_pem).expect("write cert");
        write_private(&key, issued.key_pem.as_deref().expect("key")).expect("write key");
        self.db
            .conn()
            .await
            .batch_execute(&format!(
                "INSERT INTO gateways (id, lab_id, cert_serial, cert_sha256, cert_not_after, cert_pem) \
                 SELECT gen_random_uuid(), id, '{}', '{}', now() + interval '30 days', '{}' FROM labs WHERE code = '{code}'",
                issued.serial_hex, issued.sha256_hex, issued.cert_pem
            ))
            .await
            .expect("record the credential");
        let der = labedge_service::tls::parse_certs(&issued.cert_pem)
            .expect("pem")
            .remove(0)
            .to_vec();
        Credential {
            ca: self.pki.ca_path(),
            cert,
            key,
            der,
        }
    }

    /// Issues an integration client of the FHIR interface with these scopes (space-separated), as
    /// `api create-integration-client` does, and returns an HTTPS client presenting it.
    pub async fn integration_client(&self, name: &str, scopes: &str) -> (reqwest::Client, Credential) {
        let (cert, key) = self.pki.client(&format!("integration-{name}"), "integration");
        let pem = std::fs::read_to_string(&cert).expect("read cert");
        let der = labedge_service::tls::parse_certs(&pem).expect("pem").remove(0).to_vec();
        let fingerprint = labedge_service::tls::sha256_hex(&der);
        self.db
            .conn()
            .await
            .batch_execute(&format!(
                "INSERT INTO integration_clients (id, name, scopes, cert_serial, cert_sha256, cert_not_after) \
                 VALUES (gen_random_uuid(), '{name}', '{scopes}', '{fingerprint}', '{fingerprint}', now() + interval '30 days')"
            ))
            .await
            .expect("record the integration client");
        let client = self.pki.client_for(Some((&cert, &key)));
        let credential = Credential {
            ca: self.pki.ca_path(),
            cert,
            key,
            der,
        };
        (client, credential)
    }

    /// Stops the API (the cloud is down from now on).
    pub async fn stop(&self) {
        let handle = self.handle.lock().expect("handle").clone();
        handle.stop(false).await;
    }
}
