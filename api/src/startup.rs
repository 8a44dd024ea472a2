//! Building and running the API: `Application::build` checks the database, binds the listener and
//! starts the background workers (the feed horizon, the FHIR notifier), which `run_until_stopped` stops after the HTTP
//! drain; [`app`] is the actix `App` both the server and the in-process tests use.

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::{Compress, from_fn};
use actix_web::{App, HttpServer, web};
use labedge_schema::db::{self, Database};
use labedge_service::http::{BodyLimit, localize_problems, not_found, path_config, request_telemetry};
use labedge_service::startup::ensure_migrated;
use labedge_service::workers::Workers;
use labedge_service::{metrics, server};

use crate::config::Config;
use crate::routes;
use crate::state::AppState;

pub use labedge_service::startup::StartError;

/// A built, bound, not yet running API.
pub struct Application {
    server: Server,
    addr: SocketAddr,
    state: AppState,
    workers: Workers,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Checks migrations, builds the state, binds the listener and starts the background workers.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        ensure_migrated(config.database.url.expose_secret(), Database::Cloud, "api").await?;
        let state = build_state(config)?;
        let listen = state.config.http.clone();
        let app_state = state.clone();
        let server = HttpServer::new(move || app(app_state.clone()));
        let (server, addr) = server::bind(server, &listen)?;
        let mut workers = Workers::new();
        // Appointments entering the feed window as days pass: announced at start, then periodically.
        let (pool, feed) = (state.pool.clone(), state.config.feed.clone());
        workers.spawn("feed horizon", |stop| crate::feed::horizon::run(pool, feed, stop));
        // FHIR Subscriptions: the LIS's endpoints hear of new Specimens and Appointment versions.
        let (pool, pki_dir) = (state.pool.clone(), state.config.pki.dir.clone());
        workers.spawn("fhir notifier", |stop| {
            crate::fhir::subscription::run(pool, pki_dir, stop)
        });
        Ok(Self {
            server: server.run(),
            addr,
            state,
            workers,
        })
    }

    /// A handle that stops the server (tests stop a cloud or a gateway mid-run).
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// The address the listener is bound to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The shared state (tests read the pool from it).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until SIGTERM or SIGINT, then stops gracefully: no new connections, in-flight requests
    /// finish within `http.shutdown_timeout_s`; then the background workers are stopped and awaited
    /// up to [`STOP_TIMEOUT`](labedge_service::workers::STOP_TIMEOUT).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        tracing::info!(addr = %self.addr, "api listening");
        self.workers.stop_after(self.server).await
    }
}

/// Builds the state: pool (lazy: the database may come up later), metrics recorder.
pub fn build_state(config: Config) -> Result<AppState, db::DbError> {
    let pool = db::build_pool(&config.database.pool_settings())?;
    let metrics = metrics::install();
    Ok(AppState {
        config: Arc::new(config),
        pool,
        metrics,
    })
}

/// The API's actix application.
pub fn app(
    state: AppState,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let limit = state.config.http.max_body_bytes;
    App::new()
        .app_data(web::Data::new(state))
        .app_data(BodyLimit(limit))
        .app_data(path_config())
        .configure(routes::configure)
        .default_service(web::to(not_found))
        .wrap(Compress::default())
        .wrap(from_fn(localize_problems))
        .wrap(from_fn(request_telemetry))
}
