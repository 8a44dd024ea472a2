//! What the lab admin's web console needs besides its routes (`routes::console`): the history its
//! charts draw ([`history`]), the enrollment QR code ([`qr`]) and the queries of its own routes
//! ([`queries`]). The page itself (HTML, CSS, plain JS) is embedded in the binary from
//! `edge-gateway/assets/admin/`: a lab network has no internet, so nothing is fetched from elsewhere.

pub mod history;
pub mod qr;
pub mod queries;
