//! Binding a service's listener: HTTPS through rustls, or plain HTTP when the config says so.

use std::fmt;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use actix_http::Request;
use actix_service::{IntoServiceFactory, Service, ServiceFactory};
use actix_web::body::MessageBody;
use actix_web::dev::{AppConfig, Response};
use actix_web::{Error, HttpServer};

use super::config::ListenConfig;
use super::tls::{self, TlsError};

/// A listener that could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The TLS material is unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// A server bound to its listener, and the address it got.
pub type Bound<F, I, S, B> = (HttpServer<F, I, S, B>, SocketAddr);

/// Binds `listen.addr` (port 0 picks a free port) with the listener's TLS, timeouts and workers, and
/// records each connection's peer address and client certificate for the handlers. Returns the server
/// and the address it is bound to.
pub fn bind<F, I, S, B>(server: HttpServer<F, I, S, B>, listen: &ListenConfig) -> Result<Bound<F, I, S, B>, ListenError>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<Error> + 'static,
    S::InitError: fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    <S::Service as Service<Request>>::Future: 'static,
    S::Service: 'static,
    B: MessageBody + 'static,
{
    let listener = TcpListener::bind(listen.addr).map_err(|source| ListenError::Bind {
        addr: listen.addr,
        source,
    })?;
    let addr = listener.local_addr().map_err(|source| ListenError::Bind {
        addr: listen.addr,
        source,
    })?;
    let mut server = server
        .on_connect(tls::on_connect)
        .shutdown_timeout(listen.shutdown_timeout_s)
        .client_request_timeout(Duration::from_millis(listen.client_request_timeout_ms))
        .client_disconnect_timeout(Duration::from_secs(2));
    if let Some(workers) = listen.workers {
        server = server.workers(workers);
    }
    let server = match &listen.tls {
        Some(tls_config) if !listen.plain_http => {
            let config = tls::server_config(tls_config)?;
            server.listen_rustls_0_23(listener, config)
        }
        _ => server.listen(listener),
    }
    .map_err(|source| ListenError::Bind { addr, source })?;
    Ok((server, addr))
}
