//! A fake upstream API whose behaviour a test changes mid-run: it accepts, answers 500 or 429,
//! hangs, rejects part of a batch, or says it is a standby. It speaks TLS with a certificate of the
//! test CA, like the real API, and records what it received.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpResponse, HttpServer, web};
use labedge_protocol::relay::{AckOutcome, MutationAck, MutationAcks, MutationBatch};
use mobile_contracts::ops::{DatabaseRole, Readiness};
use uuid::Uuid;

use crate::fixtures::TestPki;

/// What the fake does with the next requests.
#[derive(Clone, Debug, PartialEq)]
pub enum Behaviour {
    /// Applies every mutation once; a mutation seen before is a duplicate.
    Accept,
    /// Answers this status (with `Retry-After` when given) to every batch.
    Status(u16, Option<u64>),
    /// Waits this long before accepting.
    Slow(Duration),
    /// Rejects the mutations at odd positions of each batch, accepts the others.
    RejectOdd,
}

/// What the fake has seen.
#[derive(Debug)]
pub struct FakeState {
    /// The behaviour now.
    pub behaviour: Behaviour,
    /// Whether `/readyz` says primary.
    pub primary: bool,
    /// How many times each mutation was applied.
    pub applied: HashMap<Uuid, u32>,
    /// Mutation ids in the order received (every batch, applied or not).
    pub received: Vec<Uuid>,
    /// When each batch arrived, and its size.
    pub batches: Vec<(Instant, usize)>,
}

/// A running fake.
#[derive(Debug)]
pub struct FakeUpstream {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its state, to change and to read.
    pub state: Arc<Mutex<FakeState>>,
    handle: ServerHandle,
}

impl FakeUpstream {
    /// Starts a fake with a server certificate from `pki`.
    pub async fn start(pki: &TestPki, name: &str) -> Self {
        labedge_service::tls::install_crypto_provider();
        let (cert, key) = pki.server(name);
        let state = Arc::new(Mutex::new(FakeState {
            behaviour: Behaviour::Accept,
            primary: true,
            applied: HashMap::new(),
            received: Vec::new(),
            batches: Vec::new(),
        }));
        let shared = Arc::clone(&state);
        let tls = labedge_service::tls::server_config(&labedge_service::config::ServerTlsConfig {
            cert,
            key,
            client_ca: Some(pki.ca_path()),
            client_auth: labedge_service::config::ClientAuth::Optional,
        })
        .expect("fake TLS");
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(Arc::clone(&shared)))
                .app_data(web::JsonConfig::default().limit(32 * 1024 * 1024))
                .route("/readyz", web::get().to(readyz))
                .route("/v1/labs/{lab}/mutations", web::post().to(mutations))
        })
        .workers(1)
        .shutdown_timeout(1)
        .listen_rustls_0_23(std::net::TcpListener::bind("127.0.0.1:0").expect("bind"), tls)
        .expect("listen");
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Self { addr, state, handle }
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    /// Changes what it does.
    pub fn set(&self, behaviour: Behaviour) {
        self.state.lock().expect("fake state").behaviour = behaviour;
    }

    /// Says it is a standby (or the primary again).
    pub fn set_primary(&self, primary: bool) {
        self.state.lock().expect("fake state").primary = primary;
    }

    /// How many distinct mutations it applied, and whether any was applied twice.
    pub fn applied(&self) -> (usize, bool) {
        let state = self.state.lock().expect("fake state");
        (state.applied.len(), state.applied.values().any(|n| *n > 1))
    }

    /// Stops it (connections are refused from now on).
    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

async fn readyz(state: web::Data<Arc<Mutex<FakeState>>>) -> HttpResponse {
    let primary = state.lock().map(|s| s.primary).unwrap_or(true);
    HttpResponse::Ok().json(Readiness {
        ready: true,
        role: Some(if primary {
            DatabaseRole::Primary
        } else {
            DatabaseRole::Standby
        }),
        checks: Vec::new(),
    })
}

async fn mutations(state: web::Data<Arc<Mutex<FakeState>>>, batch: web::Json<MutationBatch>) -> HttpResponse {
    let behaviour = {
        let mut s = state.lock().expect("fake state");
        s.batches.push((Instant::now(), batch.mutations.len()));
        s.received.extend(batch.mutations.iter().map(|m| m.mutation_id));
        s.behaviour.clone()
    };
    match behaviour {
        Behaviour::Status(status, retry_after) => {
            let mut response = HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status"));
            if let Some(seconds) = retry_after {
                response.insert_header(("retry-after", seconds.to_string()));
            }
            return response.content_type("application/problem+json").body(format!(
                r#"{{"type":"urn:labedge:problem:service_unavailable","title":"fake","status":{status},"code":"service_unavailable"}}"#
            ));
        }
        Behaviour::Slow(wait) => tokio::time::sleep(wait).await,
        Behaviour::Accept | Behaviour::RejectOdd => {}
    }
    let reject_odd = behaviour == Behaviour::RejectOdd;
    let mut s = state.lock().expect("fake state");
    let results = batch
        .mutations
        .iter()
        .enumerate()
        .map(|(i, m)| {
            if reject_odd && i % 2 == 1 {
                return MutationAck {
                    mutation_id: m.mutation_id,
                    outcome: AckOutcome::Rejected,
                    current_version: None,
                    current: None,
                    reason: Some("invalid: refused by the fake".into()),
                };
            }
            let count = s.applied.entry(m.mutation_id).or_insert(0);
            *count += 1;
            let outcome = if *count == 1 {
                AckOutcome::Applied
            } else {
                AckOutcome::Duplicate
            };
            if *count > 1 {
                // A duplicate is acknowledged but not applied again.
                *count -= 1;
            }
            MutationAck {
                mutation_id: m.mutation_id,
                outcome,
                current_version: None,
                current: None,
                reason: None,
            }
        })
        .collect();
    HttpResponse::Ok().json(MutationAcks { results })
}
