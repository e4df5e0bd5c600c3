//! Integration tests: the real application on a real port, a wiremock provider behind it.

mod adversarial;
mod client_manager;
mod config;
mod connections;
mod e2e;
mod grant_type;
mod helpers;
mod lifecycle;
mod limits;
mod login_command;
mod metrics;
mod oauth2_crate;
mod openapi;
mod provider_descriptions;
mod providers;
mod redirect_allowlist;
mod replay;
mod revoke;
mod rotation;
mod tls;
mod token;
mod upstream_ca;
mod upstream_faults;
mod validation;
