//! `kick-bench-alloc serve --config FILE`: the proxy's real app, in-process, under a counting
//! global allocator; counters on a side port for bench/alloc.py.
//!
//! Bench only (see Cargo.toml): never linked into the product. The counting allocator is a thin
//! wrapper around the system allocator (glibc malloc, what the release binary uses), so the
//! counts are the product's, plus one relaxed atomic add per call.
//!
//! Counters: `GET /` on `ALLOC_STATS_ADDR` (default 127.0.0.1:0, the port printed on stderr as
//! `alloc-stats <addr>`), one JSON object: calls to alloc (+ alloc_zeroed), realloc and dealloc,
//! bytes requested (alloc sizes + realloc new sizes), bytes live, and tokio's stable runtime
//! metrics (worker parks and park/unpark transitions, busy time, alive tasks); built with
//! `--cfg tokio_unstable`, also `spawned_tasks`, `remote_schedules` and `polls`. Served by a plain
//! std thread (not the runtime) with a fixed buffer, so reading the counters adds a handful of
//! allocations per read, not per exchange.
// The one place in the project with `unsafe`: implementing `GlobalAlloc` is an unsafe trait.
#![allow(unsafe_code)]

use kick_oauth_proxy::config::Settings;
use kick_oauth_proxy::server::Application;
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static REALLOCS: AtomicU64 = AtomicU64::new(0);
static FREES: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);
static LIVE: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to `System`; the wrapper only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(layout.size() as u64, Relaxed);
        LIVE.fetch_add(layout.size() as u64, Relaxed);
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(layout.size() as u64, Relaxed);
        LIVE.fetch_add(layout.size() as u64, Relaxed);
        System.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        FREES.fetch_add(1, Relaxed);
        LIVE.fetch_sub(layout.size() as u64, Relaxed);
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        REALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(new_size as u64, Relaxed);
        LIVE.fetch_add(new_size as u64, Relaxed);
        LIVE.fetch_sub(layout.size() as u64, Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn snapshot(metrics: &tokio::runtime::RuntimeMetrics) -> String {
    let workers = metrics.num_workers();
    let (mut parks, mut unparks, mut busy_ns) = (0u64, 0u64, 0u128);
    for w in 0..workers {
        parks += metrics.worker_park_count(w);
        unparks += metrics.worker_park_unpark_count(w);
        busy_ns += metrics.worker_total_busy_duration(w).as_nanos();
    }
    #[cfg(tokio_unstable)]
    let unstable = {
        let polls: u64 = (0..workers).map(|w| metrics.worker_poll_count(w)).sum();
        format!(
            ",\"spawned_tasks\":{},\"remote_schedules\":{},\"polls\":{}",
            metrics.spawned_tasks_count(),
            metrics.remote_schedule_count(),
            polls
        )
    };
    #[cfg(not(tokio_unstable))]
    let unstable = String::new();
    format!(
        "{{\"allocs\":{},\"reallocs\":{},\"frees\":{},\"bytes\":{},\"live_bytes\":{},\
         \"workers\":{},\"worker_parks\":{},\"worker_park_unparks\":{},\"worker_busy_ns\":{},\
         \"alive_tasks\":{},\"tokio_unstable\":{}{}}}",
        ALLOCS.load(Relaxed),
        REALLOCS.load(Relaxed),
        FREES.load(Relaxed),
        BYTES.load(Relaxed),
        LIVE.load(Relaxed),
        workers,
        parks,
        unparks,
        busy_ns,
        metrics.num_alive_tasks(),
        cfg!(tokio_unstable),
        unstable
    )
}

/// The side port: answers every connection with the counters, read at the moment it connects.
fn serve_stats(listener: TcpListener, metrics: tokio::runtime::RuntimeMetrics) {
    let mut buf = [0u8; 1024];
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let _ = stream.read(&mut buf);
        let body = snapshot(&metrics);
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n{}",
            body.len(),
            body
        );
    }
}

fn main() -> ExitCode {
    // Same arguments as the proxy's `serve`, so bench.py's Proxy can start it.
    let args: Vec<String> = std::env::args().collect();
    let config = match args.as_slice() {
        [_, serve, flag, path] if serve == "serve" && flag == "--config" => PathBuf::from(path),
        _ => {
            eprintln!("usage: kick-bench-alloc serve --config FILE");
            return ExitCode::from(2);
        }
    };
    let settings = match Settings::load(&config) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("invalid config: {error}");
            return ExitCode::from(2);
        }
    };
    // The runtime `#[tokio::main]` builds for the proxy: multi-thread, one worker per core.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let addr = std::env::var("ALLOC_STATS_ADDR").unwrap_or_else(|_| "127.0.0.1:0".into());
    let listener = TcpListener::bind(&addr).expect("bind ALLOC_STATS_ADDR");
    eprintln!("alloc-stats {}", listener.local_addr().expect("local addr"));
    let metrics = runtime.metrics();
    std::thread::spawn(move || serve_stats(listener, metrics));
    runtime.block_on(async {
        kick_oauth_proxy::telemetry::init(&settings.log);
        let app = match Application::build(settings).await {
            Ok(app) => app,
            Err(error) => {
                eprintln!("cannot start: {error}");
                return ExitCode::FAILURE;
            }
        };
        match app.run_until_stopped().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("server failed: {error}");
                ExitCode::FAILURE
            }
        }
    })
}
