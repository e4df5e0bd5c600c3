//! Integration tests: the real application on a real port, a wiremock provider behind it.

mod config;
mod helpers;
mod lifecycle;
mod revoke;
mod token;
mod upstream_faults;
