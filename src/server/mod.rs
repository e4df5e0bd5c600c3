//! Running the service: everything between the socket and the first front-door layer.
//!
//! - [`startup`]: [`Application`] binds the public and admin listeners, drains on SIGTERM,
//!   reloads on SIGHUP;
//! - [`listener`]: one way of serving a connection on every listener: header cap, header
//!   deadline, connection cap with the longest-idle connection closed first, optional TLS;
//! - [`tls`]: TLS termination with a reloadable certificate;
//! - [`router`]: the routes and their layers, in request order; [`App`], what a listener serves:
//!   the three OAuth endpoints on a direct path past axum's routing, the rest through the router;
//! - [`access_log`]: the per-request log line and `x-request-id`.

pub mod access_log;
pub mod listener;
pub mod router;
pub mod startup;
pub mod tls;

pub use router::{router, App};
pub use startup::Application;
