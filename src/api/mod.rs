//! The HTTP API: what a request is and whether it may go on.
//!
//! - [`extract`]: the one body extractor (JSON or form, size cap, body-read deadline);
//! - [`input`]: the contract's input rules, one typed input per grant;
//! - [`handlers`]: `POST /api/v1/{provider}/token`, `/refresh` and `/revoke`, handing validated
//!   grants to [`crate::exchange`];
//! - [`health`]: `GET /healthz`, `GET /readyz`;
//! - [`state`]: [`AppState`], what every handler can reach;
//! - [`docs`] and [`openapi`]: the OpenAPI document, served at `GET /api/v1/openapi.json`.

pub mod docs;
pub mod extract;
pub mod handlers;
pub mod health;
pub mod input;
pub mod openapi;
pub mod state;

pub use state::AppState;
