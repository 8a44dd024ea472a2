//! Configurations and certificates for tests.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use labedge_service::config::{
    ClientAuth, DatabaseConfig, ListenConfig, LogConfig, LogFormat, Profile, RedisConfig, SecretString, ServerTlsConfig,
};
use labedge_service::pki::{CertAuthority, write_private};

/// A CA in a folder, with helpers to write certificates next to it.
#[derive(Debug)]
pub struct TestPki {
    /// The CA.
    pub ca: CertAuthority,
    /// Its folder (`ca.pem`, `ca.key`).
    pub dir: PathBuf,
}

impl TestPki {
    /// A new CA in `dir`.
    pub fn new(dir: &Path) -> Self {
        let ca = CertAuthority::load_or_create(dir, "LabEdge test CA").expect("test CA");
        Self {
            ca,
            dir: dir.to_owned(),
        }
    }

    /// The CA certificate file.
    pub fn ca_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// Writes a server certificate for localhost/127.0.0.1 as `<name>.pem` / `<name>.key`.
    pub fn server(&self, name: &str) -> (PathBuf, PathBuf) {
        let cert = self
            .ca
            .issue_server("test server", &["localhost".into(), "127.0.0.1".into()], 30)
            .expect("server cert");
        self.write(name, &cert)
    }

    /// Writes a client certificate (organisational unit `unit`) as `<name>.pem` / `<name>.key`.
    pub fn client(&self, name: &str, unit: &str) -> (PathBuf, PathBuf) {
        let cert = self
            .ca
            .issue_client(&format!("test client {unit}"), unit, 30)
            .expect("client cert");
        self.write(name, &cert)
    }

    fn write(&self, name: &str, cert: &labedge_service::pki::IssuedCert) -> (PathBuf, PathBuf) {
        let cert_path = self.dir.join(format!("{name}.pem"));
        let key_path = self.dir.join(format!("{name}.key"));
        std::fs::write(&cert_path, &cert.cert_pem).expect("write cert");
        write_private(&key_path, cert.key_pem.as_deref().expect("key")).expect("write key");
        (cert_path, key_path)
    }

    /// A reqwest client trusting this CA, presenting `identity` when given.
    pub fn client_for(&self, identity: Option<(&Path, &Path)>) -> reqwest::Client {
        labedge_service::tls::install_crypto_provider();
        let tls = labedge_service::tls::client_config(&self.ca_path(), identity).expect("client TLS");
        reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .build()
            .expect("client")
    }
}

/// A plain-HTTP listener on a free port (in-process tests never bind it).
pub fn plain_listener() -> ListenConfig {
    ListenConfig::plain(SocketAddr::from(([127, 0, 0, 1], 0)))
}

/// An HTTPS listener on a free port with this certificate, asking for optional client certificates
/// signed by `client_ca`.
pub fn tls_listener(cert: &Path, key: &Path, client_ca: Option<&Path>) -> ListenConfig {
    let mut listen = plain_listener();
    listen.plain_http = false;
    listen.tls = Some(ServerTlsConfig {
        cert: cert.to_owned(),
        key: key.to_owned(),
        client_ca: client_ca.map(Path::to_owned),
        client_auth: if client_ca.is_some() {
            ClientAuth::Optional
        } else {
            ClientAuth::None
        },
    });
    listen
}

/// The API's config for a test database.
pub fn api_config(database_url: &str, pki_dir: &Path) -> labedge_api::config::Config {
    labedge_api::config::Config {
        profile: Profile::Sandbox,
        http: plain_listener(),
        database: DatabaseConfig::new(database_url),
        log: LogConfig {
            format: LogFormat::Json,
            filter: "info".into(),
        },
        pki: labedge_api::config::PkiConfig {
            dir: pki_dir.to_owned(),
            cert_days: 30,
        },
        provisioning: labedge_api::config::ProvisioningConfig::default(),
        central: labedge_api::config::CentralConfig::default(),
        monitoring: Default::default(),
        feed: Default::default(),
    }
}

/// A gateway's config for a test database, Redis prefix and lab CA folder. Tablets come from the
/// test VPN range 10.8.0.0/16 (where `TestApp` puts its requests), the admin console from
/// 192.168.10.0/24, supervision from 127.0.0.0/8.
pub fn gateway_config(
    lab: &str,
    database_url: &str,
    redis_prefix: &str,
    pki_dir: &Path,
) -> labedge_edge_gateway::config::Config {
    labedge_edge_gateway::config::Config {
        profile: Profile::Sandbox,
        lab: lab.into(),
        timezone: "Europe/Paris".into(),
        http: plain_listener(),
        admin: Default::default(),
        monitoring: Default::default(),
        database: DatabaseConfig::new(database_url),
        redis: RedisConfig {
            url: SecretString::new(crate::redis::server_url()),
            key_prefix: redis_prefix.into(),
            ..RedisConfig::default()
        },
        log: LogConfig::default(),
        upstream: labedge_edge_gateway::config::UpstreamConfig {
            endpoints: vec![labedge_edge_gateway::config::Endpoint {
                name: "cloud".into(),
                url: "https://127.0.0.1:1".into(),
            }],
            ca: "/nonexistent/ca.pem".into(),
            cert: "/nonexistent/cert.pem".into(),
            key: "/nonexistent/key.pem".into(),
            request_timeout_ms: 2_000,
        },
        access: labedge_edge_gateway::config::AccessConfig {
            tablet_ranges: vec!["10.8.0.0/16".parse().expect("net")],
            admin_ranges: vec!["192.168.10.0/24".parse().expect("net")],
            monitoring_ranges: vec!["127.0.0.0/8".parse().expect("net")],
            trusted_proxies: Vec::new(),
        },
        // A fresh key-encryption key per gateway: never a committed one.
        auth: labedge_edge_gateway::config::AuthConfig {
            key_encryption_key: Some(SecretString::new(
                labedge_edge_gateway::auth::keys::Kek::generate_base64(),
            )),
            ..Default::default()
        },
        pki: labedge_edge_gateway::config::PkiConfig {
            dir: pki_dir.to_owned(),
        },
        // Tests drive the sync and the relay themselves.
        sync: labedge_edge_gateway::config::SyncConfig {
            enabled: false,
            ..Default::default()
        },
        relay: labedge_edge_gateway::config::RelayConfig {
            enabled: false,
            ..Default::default()
        },
        audit: labedge_edge_gateway::config::AuditConfig::default(),
        console: labedge_edge_gateway::config::ConsoleConfig::default(),
        shutdown: labedge_edge_gateway::config::ShutdownConfig::default(),
    }
}
