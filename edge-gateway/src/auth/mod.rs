//! Tablet and staff authentication at the gateway, and the admin console's sessions.
//!
//! A tablet is an enrolled, revocable identity (`enroll`); a staff member logs in on it with a PIN
//! (`sessions`), which works offline; every request carries a short-lived access token (`tokens`,
//! signed by the `keys` ring) checked by the `Principal` extractor, including revocation
//! (`revocation`) on every request. A staff member's PIN change and reset, deactivation and
//! reactivation are `lifecycle`.

pub mod admin;
pub mod enroll;
pub mod keys;
pub mod lifecycle;
pub mod lockout;
pub mod manage;
pub mod principal;
pub mod revocation;
pub mod sessions;
pub mod tokens;

pub use principal::Principal;

/// Where a login, refresh or enrollment comes from, as the handler read it off the connection: the
/// services below decide with it (lockouts by address, the certificate a device was enrolled with)
/// without seeing the HTTP request.
#[derive(Clone, Debug, Default)]
pub struct Peer {
    /// The client's address (`X-Forwarded-For` read only behind a trusted proxy).
    pub ip: Option<std::net::IpAddr>,
    /// The client certificate of the TLS connection, if one was presented.
    pub certificate: Option<labedge_service::tls::PeerCertificate>,
}
