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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match runtime() {
        Ok(runtime) => runtime.block_on(run(cli)),
        Err(message) => {
            eprintln!("kick-oauth-proxy: {message}");
            ExitCode::FAILURE
        }
    }
}

/// tokio's multi-threaded runtime, as `#[tokio::main]` builds it: one worker thread per CPU this
/// process may use (a cgroup CPU limit counts, rounded down, at least one), or
/// `TOKIO_WORKER_THREADS` of them. That variable is checked here first, the way tokio reads it:
/// tokio itself would panic on a value that is not a whole number above 0.
fn runtime() -> Result<tokio::runtime::Runtime, String> {
    match std::env::var("TOKIO_WORKER_THREADS") {
        Ok(value) if !value.parse::<usize>().is_ok_and(|threads| threads > 0) => {
            return Err(format!(
                "TOKIO_WORKER_THREADS must be a whole number of worker threads, 1 or more \
                 (it is {value:?}); unset it for one per CPU"
            ));
        }
        Err(std::env::VarError::NotUnicode(_)) => {
            return Err("TOKIO_WORKER_THREADS is not valid Unicode".to_owned());
        }
        _ => {}
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("the async runtime could not start: {error}"))
}
