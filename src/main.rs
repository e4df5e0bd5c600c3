//! `kick-oauth-proxy`: wiring only; everything lives in the library so tests run the real app.

use clap::Parser;
use kick_oauth_proxy::cli::{run, Cli};
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    run(Cli::parse()).await
}
