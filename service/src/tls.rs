//! rustls everywhere: server configs for the listeners, client configs for the gateway's upstreams.
//! Certificates are always verified; there is no "accept anything" switch.

use std::any::Any;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use actix_web::dev::Extensions;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use sha2::{Digest, Sha256};

use super::config::{ClientAuth, ServerTlsConfig};

/// TLS material that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or parsed.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// rustls refused the material.
    #[error("TLS configuration refused: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client CA list is unusable.
    #[error("client CA: {0}")]
    ClientCa(String),
}

/// Installs ring as the process's crypto provider. Call first in `main` and in each test; a second
/// call is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Reads every certificate of a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| file_error(path, e))?;
    if certs.is_empty() {
        return Err(TlsError::File {
            path: path.display().to_string(),
            reason: "no certificate in file".into(),
        });
    }
    Ok(certs)
}

/// Parses every certificate of a PEM string.
pub fn parse_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::File {
            path: "<pem>".into(),
            reason: e.to_string(),
        })
}

/// Reads the private key of a PEM file.
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| file_error(path, e))
}

fn file_error(path: &Path, error: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.display().to_string(),
        reason: error.to_string(),
    }
}

/// A root store holding the CA certificates of a PEM file.
pub fn root_store(ca_path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(ca_path)? {
        roots.add(cert).map_err(|e| TlsError::ClientCa(e.to_string()))?;
    }
    Ok(roots)
}

/// The server config of a listener: HTTP/2 and HTTP/1.1, client certificates as configured.
pub fn server_config(config: &ServerTlsConfig) -> Result<ServerConfig, TlsError> {
    let certs = load_certs(&config.cert)?;
    let key = load_private_key(&config.key)?;
    let builder = ServerConfig::builder();
    let builder = match (config.client_auth, &config.client_ca) {
        (ClientAuth::None, _) | (_, None) => builder.with_no_client_auth(),
        (mode, Some(ca)) => {
            let verifier = WebPkiClientVerifier::builder(Arc::new(root_store(ca)?));
            let verifier = if mode == ClientAuth::Optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| TlsError::ClientCa(e.to_string()))?)
        }
    };
    let mut server = builder.with_single_cert(certs, key)?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(server)
}

/// A client config trusting only `ca_path`, presenting `identity` (certificate chain and key files)
/// when given: how a gateway speaks to its upstreams.
pub fn client_config(ca_path: &Path, identity: Option<(&Path, &Path)>) -> Result<ClientConfig, TlsError> {
    let builder = ClientConfig::builder().with_root_certificates(root_store(ca_path)?);
    let config = match identity {
        Some((cert, key)) => builder.with_client_auth_cert(load_certs(cert)?, load_private_key(key)?)?,
        None => builder.with_no_client_auth(),
    };
    Ok(config)
}

/// Hex SHA-256 of a DER certificate: its fingerprint, and RFC 8705's `x5t#S256` before base64url.
pub fn sha256_hex(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// The client certificate a peer presented on this connection, if any.
#[derive(Clone, Debug)]
pub struct PeerCertificate(pub CertificateDer<'static>);

/// The client certificate of a request's connection: from the TLS handshake, or set in the request's
/// extensions by an in-process test (clients cannot set extensions).
pub fn peer_certificate(req: &actix_web::HttpRequest) -> Option<PeerCertificate> {
    use actix_web::HttpMessage;
    req.conn_data::<PeerCertificate>()
        .cloned()
        .or_else(|| req.extensions().get::<PeerCertificate>().cloned())
}

/// The socket peer of this connection (kept even behind TLS, for the VPN gate).
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub Option<SocketAddr>);

/// `HttpServer::on_connect` hook: stores the peer certificate and address in the connection's
/// extensions, where handlers read them with `req.conn_data::<PeerCertificate>()`.
pub fn on_connect(connection: &dyn Any, extensions: &mut Extensions) {
    use actix_tls::accept::rustls_0_23::TlsStream;
    use actix_web::rt::net::TcpStream;
    if let Some(tls) = connection.downcast_ref::<TlsStream<TcpStream>>() {
        let (tcp, session) = tls.get_ref();
        extensions.insert(PeerAddr(tcp.peer_addr().ok()));
        if let Some(cert) = session.peer_certificates().and_then(|certs| certs.first()) {
            extensions.insert(PeerCertificate(cert.clone().into_owned()));
        }
    } else if let Some(tcp) = connection.downcast_ref::<TcpStream>() {
        extensions.insert(PeerAddr(tcp.peer_addr().ok()));
    }
}

/// A client configuration trusting the CA certificates of `ca_path` and presenting an identity held
/// in memory (PEM), for a service that issues its own client certificate at start.
pub fn client_config_pem(ca_path: &Path, cert_pem: &str, key_pem: &str) -> Result<ClientConfig, TlsError> {
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| TlsError::File {
        path: "<pem>".into(),
        reason: e.to_string(),
    })?;
    Ok(ClientConfig::builder()
        .with_root_certificates(root_store(ca_path)?)
        .with_client_auth_cert(parse_certs(cert_pem)?, key)?)
}
