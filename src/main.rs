//! `kick-oauth-proxy`: wiring only; everything lives in the library so tests run the real app.

use clap::Parser;
use kick_oauth_proxy::cli::{run, Cli};
use std::process::ExitCode;

/// mimalloc instead of the system allocator: the benchmark (bench/RESULTS.md) measured about a
/// fifth less CPU per exchange, most of glibc malloc's cost being cross-thread frees between the
/// runtime's workers.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    run(Cli::parse()).await
}
