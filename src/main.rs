//! `kick-oauth-proxy`: wiring only; everything lives in the library so tests run the real app.

use clap::Parser;
use kick_oauth_proxy::cli::{run, Cli};
use std::process::ExitCode;

/// mimalloc instead of glibc's malloc: each exchange allocates ~100 times (hyper's buffers and
/// header maps on two connections), and glibc spent ~11 % of the CPU there, `malloc_consolidate`
/// included, at saturation. Measured in `bench/RESULTS.md` (issue #15). Only the binary: the
/// library, its tests and the allocation-counting bench build keep their own allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    run(Cli::parse()).await
}
