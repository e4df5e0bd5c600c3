//! Integration tests: the real application on a real port, a wiremock provider behind it.

mod client_manager;
mod config;
mod e2e;
mod helpers;
mod lifecycle;
mod limits;
mod login_command;
mod oauth2_crate;
mod redirect_allowlist;
mod replay;
mod revoke;
mod token;
mod upstream_faults;
mod validation;
