//! Adversarial requests (issue 5): attacks and mixtures, not the input rules one by one (those are
//! in `validation.rs` and `redirect_allowlist.rs`). One file per subject: malformed JSON, form
//! encodings, duplicates, header and framing tricks over raw TCP, request smuggling, path tricks,
//! redirect look-alikes, slow and oversized requests, method overrides, injection payloads, and bad
//! input meeting a hanging or failing provider.
//!
//! Every case asserts the exact status and `error` code, that the provider was (or was not)
//! called, and that the service still answers `/healthz` afterwards (`helpers::cases`). Where
//! hyper refuses a message it cannot frame, it answers with its own bodyless error before the
//! application ever sees the request: that is acceptable (no field was read, nothing reached the
//! provider), and the case says so. Behaviour that breaks the contract is written as it should be
//! and `#[ignore]`d with the reason prefixed `BUG:`.

mod duplicates;
mod form_encoding;
mod framing;
mod hostile_upstreams;
mod injection;
mod malformed_json;
mod method_overrides;
mod paths;
mod redirect_lookalikes;
mod slow_clients;
mod smuggling;
