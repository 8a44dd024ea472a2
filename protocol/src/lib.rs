//! # labedge-protocol
//!
//! What a lab's gateway and the cloud say to each other, and nothing else:
//!
//! - [`relay`]: the mutations a gateway relays from its outbox (`POST /v1/labs/{lab}/mutations`) and
//!   the cloud's answer for each.
//! - [`status`]: the gateway's periodic status report and the cloud's receipt.
//!
//! Its own crate, apart from `labedge-schema` (the databases) and `labedge-service` (the server
//! plumbing), so that both services and the tests speak one set of types without depending on a
//! database or a server: it needs only serde, uuid, time, validator and the tablet contract whose
//! operations it carries. Not in `mobile-contracts`: a tablet never sees these types, and the tablet
//! team's crate should not change when the gateway-to-cloud protocol does.

pub mod relay;
pub mod status;
