//! End-to-end behaviour of the client against a fake proxy (wiremock) and a fake browser (reqwest).

mod helpers;
mod login;
mod manager;
mod proxy;
