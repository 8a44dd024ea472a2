//! Building and running the gateway: `Application::build` checks the database, binds the tablet
//! listener, and the console's and supervision's own listeners when the config gives them, and
//! starts the background workers (the sync and the relay when configured, the audit maintenance,
//! housekeeping, gauges, the console's history); `run_until_stopped` drains the listeners on SIGTERM,
//! then stops the workers. [`app`] is the actix `App` both the server and the in-process tests use.

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServerHandle, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::ConnectionType;
use actix_web::middleware::{Compress, Next, from_fn};
use actix_web::{App, HttpServer, web};
use labedge_schema::db::{self, Database};
use labedge_service::http::{
    BodyLimit, localize_problems, method_not_allowed_problem, not_found, path_config, request_telemetry,
};
use labedge_service::startup::ensure_migrated;
use labedge_service::workers::Workers;
use labedge_service::{metrics, server};
use std::sync::atomic::{AtomicBool, Ordering};

use std::time::Duration;

use labedge_service::config::{ClientAuth, ConfigError, ConfigIssue, ListenConfig};
use labedge_service::pki::CertAuthority;
use tokio::sync::OnceCell;

use crate::audit::AuditLog;
use crate::auth::keys::{Kek, KeyRing};
use crate::auth::revocation::Revocations;
use crate::auth::tokens::Tokens;
use crate::cache::Redis;
use crate::config::Config;
use crate::console::history::History;
use crate::ratelimit::RateLimiter;
use crate::relay::{DrainState, Relay};
use crate::routes::{self, Surface};
use crate::security_events::SecurityLog;
use crate::state::AppState;
use crate::sync::health::UpstreamHealth;
use crate::sync::upstream::Upstreams;
use crate::sync::{SyncStatus, Worker};
use crate::vpn_gate::vpn_gate;
use std::sync::RwLock;
use tokio::sync::Notify;

pub use labedge_service::startup::StartError;

/// A built, bound, not yet running gateway.
pub struct Application {
    server: Server,
    addr: SocketAddr,
    /// The console's and supervision's listeners, when they have their own: (name, server, address).
    side: Vec<(&'static str, Server, SocketAddr)>,
    state: AppState,
    workers: Workers,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("addr", &self.addr)
            .field("workers", &self.workers.names())
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Checks migrations, builds the state (Redis connects in the background), binds the listeners
    /// and starts the background workers.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        ensure_migrated(config.database.url.expose_secret(), Database::Edge, "edge-gateway").await?;
        let state = build_state(config).await?;
        let listen = tablet_listener(&state.config);
        let app_state = state.clone();
        // actix's own signal handling would stop accepting at once on SIGTERM, while `/readyz` still
        // said ready: `run_until_stopped` handles the signals itself, to drain first.
        let server = HttpServer::new(move || app(app_state.clone())).disable_signals();
        let (server, addr) = server::bind(server, &listen)?;
        let side = side_listeners(&state)?;
        let workers = start_workers(&state)?;
        Ok(Self {
            server: server.run(),
            addr,
            side,
            state,
            workers,
        })
    }

    /// The address of the console's own listener, when it has one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.side_addr("admin console")
    }

    /// The address of the supervision listener, when it has one.
    pub fn monitoring_addr(&self) -> Option<SocketAddr> {
        self.side_addr("metrics")
    }

    fn side_addr(&self, name: &str) -> Option<SocketAddr> {
        self.side.iter().find(|(n, ..)| *n == name).map(|(.., addr)| *addr)
    }

    /// A handle that stops the server (tests stop a cloud or a gateway mid-run).
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// The address the tablet listener is bound to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The shared state.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until SIGTERM or SIGINT, then stops gracefully: not ready first (`/readyz` answers 503
    /// and each connection is closed after its next answer) for `shutdown.drain_delay_ms` while still
    /// serving, then no new connections, and in-flight requests get `http.shutdown_timeout_s` to
    /// finish. A second signal during the drain skips the rest of it. The background workers are
    /// stopped last, once no request is left that could still need them (the relay sends what the
    /// last writes queued), and awaited up to
    /// [`STOP_TIMEOUT`](labedge_service::workers::STOP_TIMEOUT).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        tracing::info!(addr = %self.addr, lab = %self.state.config.lab, "edge gateway listening");
        for (name, _, addr) in &self.side {
            tracing::info!(addr = %addr, "{name} listening");
        }
        let side_handles = self.side.iter().map(|(_, server, _)| server.handle()).collect();
        tokio::spawn(drain_on_signal(self.state.clone(), self.server.handle(), side_handles));
        let side = futures_util::future::try_join_all(self.side.into_iter().map(|(_, server, _)| server));
        let (tablet, side) = self.workers.stop_after(async { tokio::join!(self.server, side) }).await;
        tablet.and(side.map(|_| ()))
    }
}

/// Waits for SIGTERM or SIGINT, then drains (see [`Application::run_until_stopped`]) and stops the
/// servers.
async fn drain_on_signal(state: AppState, handle: ServerHandle, side_handles: Vec<ServerHandle>) {
    let stop_side = async || {
        for side in &side_handles {
            side.stop(true).await;
        }
    };
    let Ok(mut signals) = StopSignals::new() else {
        tracing::error!("cannot listen for SIGTERM/SIGINT; stopping now");
        handle.stop(true).await;
        stop_side().await;
        return;
    };
    signals.next().await;
    state.shutting_down.store(true, Ordering::Release);
    let drain = Duration::from_millis(state.config.shutdown.drain_delay_ms);
    tracing::info!(
        drain_ms = drain.as_millis() as u64,
        "shutdown asked: reporting not ready, draining"
    );
    // Whatever sends traffic here (a health-checking proxy, tablets reconnecting) has this
    // long to notice; requests keep being served meanwhile.
    let _ = tokio::time::timeout(drain, signals.next()).await;
    // Stop accepting first, and let the connections answered with `Connection: close`
    // during the drain finish closing, before the workers are told to stop: stopping them
    // straight away, while they were still being handed new connections, cut requests off
    // mid-way (`faults::sigterm_under_load_drains_first_and_loses_nothing` saw a few in 20
    // restarts; none since). What stays open (an idle keep-alive connection, a slow request)
    // then gets `http.shutdown_timeout_s`.
    handle.pause().await;
    tokio::time::sleep(CLOSE_GRACE).await;
    tracing::info!("drained: no new connections; in-flight requests finishing");
    handle.stop(true).await;
    stop_side().await;
}

/// The console's and supervision's own listeners, when the config gives them: the same certificate
/// and limits as the tablet listener, without asking browsers or Prometheus for a tablet
/// certificate.
fn side_listeners(state: &AppState) -> Result<Vec<(&'static str, Server, SocketAddr)>, StartError> {
    let mut side = Vec::new();
    for (name, addr, surface) in [
        ("admin console", state.config.admin.addr, Surface::ADMIN),
        ("metrics", state.config.monitoring.addr, Surface::MONITORING),
    ] {
        let Some(addr) = addr else { continue };
        let listen = ListenConfig {
            addr,
            ..state.config.http.clone()
        };
        let app_state = state.clone();
        let server = HttpServer::new(move || app_for(app_state.clone(), surface))
            .disable_signals()
            .workers(listen.workers.unwrap_or(1));
        let (server, addr) = server::bind(server, &listen)?;
        side.push((name, server.run(), addr));
    }
    Ok(side)
}

/// The background workers of a serving gateway. The sync and the relay run when the config enables
/// them (both need the upstreams).
fn start_workers(state: &AppState) -> Result<Workers, StartError> {
    let mut workers = Workers::new();
    crate::audit::start_maintenance(state, &mut workers);
    let pool = state.pool.clone();
    workers.spawn("housekeeping", |stop| crate::housekeeping::run(pool, stop));
    // Tablet counts, certificate expiries and the upstream state, refreshed every minute.
    crate::gauges::start(state, &mut workers);
    let sampled = state.clone();
    workers.spawn("console history", |stop| async move {
        // The sampler only reads and keeps its samples in memory: stopping it anywhere loses
        // nothing, so it is aborted rather than taught the stop signal.
        let sampler = crate::console::history::spawn_sampler(sampled);
        let abort = sampler.abort_handle();
        if stop.until(sampler).await.is_none() {
            abort.abort();
        }
    });
    let config = &state.config;
    if config.sync.enabled || config.relay.enabled {
        let upstreams = Upstreams::from_config(&config.upstream, Arc::clone(&state.upstream_health))?;
        if config.sync.enabled {
            let worker = Worker::new(state.clone(), upstreams.clone());
            workers.spawn("sync", |stop| worker.run(stop));
        }
        if config.relay.enabled {
            let relay = Relay::new(state.clone(), upstreams);
            workers.spawn("relay", |stop| relay.run(stop));
        }
    }
    Ok(workers)
}

/// Between no longer accepting and stopping the workers (see `run_until_stopped`).
const CLOSE_GRACE: Duration = Duration::from_millis(500);

/// SIGTERM and SIGINT, whichever comes.
struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    async fn next(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

/// While the gateway drains before stopping, every answer closes its connection
/// (`Connection: close`): the client's next request opens a new connection, which is refused once the
/// listener closes — a clean, retryable error — instead of racing the server on an idle keep-alive
/// connection that the server drops under it.
async fn close_while_draining(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let draining = req
        .app_data::<web::Data<AppState>>()
        .is_some_and(|state| state.shutting_down.load(Ordering::Acquire));
    let mut response = next.call(req).await?;
    if draining {
        response
            .response_mut()
            .head_mut()
            .set_connection_type(ConnectionType::Close);
    }
    Ok(response)
}

/// The tablet listener: tablets may present a client certificate of the lab's CA (mutual TLS,
/// optional: a tablet enrolled without a CSR has none).
fn tablet_listener(config: &Config) -> ListenConfig {
    let mut listen = config.http.clone();
    if let Some(tls) = listen.tls.as_mut().filter(|tls| tls.client_ca.is_none()) {
        tls.client_ca = Some(config.pki.dir.join("ca.pem"));
        tls.client_auth = ClientAuth::Optional;
    }
    listen
}

/// Builds the state: pool (lazy), Redis (in the background), the lab's CA (created at the first
/// start), the signing key ring (loaded now if the database answers, else in the background),
/// revocation checks, metrics, the OpenAPI document.
pub async fn build_state(config: Config) -> Result<AppState, StartError> {
    let pool = db::build_pool(&config.database.pool_settings())?;
    let redis = Redis::connect_in_background(&config.redis);
    let lab_ca = CertAuthority::load_or_create(&config.pki.dir, &format!("LabEdge {} tablets CA", config.lab))?;
    let keys = Arc::new(KeyRing::new(Kek::from_config(&config.auth)?));
    let loaded = match pool.get().await {
        Ok(mut conn) => keys.reload(&mut conn).await,
        Err(e) => Err(e.into()),
    };
    if let Err(e) = loaded {
        tracing::warn!(
            error = format!("{e:#}"),
            "signing keys not loaded yet; tokens are refused with 503 until they are"
        );
    }
    keys.spawn_reload(pool.clone(), Duration::from_secs(30));
    let tokens = Arc::new(Tokens::new(Arc::clone(&keys), &config.lab, &config.auth));
    let revocations = Arc::new(Revocations::new(redis.clone(), pool.clone()));
    tokio::spawn(Arc::clone(&revocations).listen());
    let audit = AuditLog::start(pool.clone());
    let collections = crate::writes::CollectionWriter::start(pool.clone());
    let bookings = crate::writes::BookingWriter::start(pool.clone());
    let appointment_changes = crate::writes::ChangeWriter::start(pool.clone());
    let upstream_names = config.upstream.endpoints.iter().map(|e| e.name.clone()).collect();
    let history = Arc::new(History::new(Duration::from_secs(config.console.chart_interval_s)));
    // Checked by the config's validation already; looked up again here because the state keeps it.
    let zone = jiff::tz::TimeZone::get(&config.timezone).map_err(|_| {
        ConfigError::from(vec![ConfigIssue::new(
            "timezone",
            "is not in the system's tz database (tzdata)",
        )])
    })?;
    let state = AppState {
        zone,
        config: Arc::new(config),
        pool,
        limiter: Arc::new(RateLimiter::new(redis.clone())),
        redis,
        metrics: metrics::install(),
        openapi: mobile_contracts::openapi::document_json().into(),
        keys,
        tokens,
        revocations,
        security: Arc::new(SecurityLog::default()),
        lab_ca: Arc::new(lab_ca),
        lab: Arc::new(OnceCell::new()),
        audit,
        collections,
        bookings,
        appointment_changes,
        upstream_health: Arc::new(UpstreamHealth::new(upstream_names)),
        relay_wakeup: Arc::new(Notify::new()),
        slot_lists: Arc::default(),
        window: Arc::default(),
        drain: Arc::new(DrainState::default()),
        sync_status: Arc::new(RwLock::new(SyncStatus::default())),
        history,
        shutting_down: Arc::new(AtomicBool::new(false)),
    };
    Ok(state)
}

/// The gateway's actix application on its tablet listener: the console and `/metrics` too, unless
/// the config gives them listeners of their own.
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
    let surface = Surface {
        tablet: true,
        admin: state.config.admin.addr.is_none(),
        metrics: state.config.monitoring.addr.is_none(),
    };
    app_for(state, surface)
}

/// The gateway's actix application serving `surface`.
pub fn app_for(
    state: AppState,
    surface: Surface,
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
        .configure(move |cfg| routes::configure(cfg, surface))
        .default_service(web::to(not_found))
        .wrap(from_fn(routes::admin_no_store))
        .wrap(from_fn(method_not_allowed_problem))
        .wrap(Compress::default())
        .wrap(from_fn(vpn_gate))
        .wrap(from_fn(close_while_draining))
        .wrap(from_fn(localize_problems))
        .wrap(from_fn(request_telemetry))
}
