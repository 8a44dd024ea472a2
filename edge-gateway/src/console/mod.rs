//! What the lab admin's web console needs besides its routes (`routes::console`): the history its
//! charts draw ([`history`]) and the enrollment QR code ([`qr`]); the queries of its own routes are
//! [`crate::store::console`]. The page itself (HTML, CSS, plain JS) is embedded in the binary from
//! `edge-gateway/assets/admin/`: a lab network has no internet, so nothing is fetched from elsewhere.

pub mod history;
pub mod qr;
