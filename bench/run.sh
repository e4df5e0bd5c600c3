#!/usr/bin/env bash
# The benchmark, in one command: bench/run.sh
#
# Installs the load generators if missing (wrk from Debian, oha from crates.io), builds the proxy
# and the upstream stub in release mode, runs the matrix (bench/bench.py) and prints the Markdown
# tables; they are also written to bench/results/latest.md (and every number to latest.json).
# About 15 minutes once built; the first oha install compiles for several more. Not part of CI.
#
# Knobs (environment): BENCH_DURATION (s per point, 10), BENCH_RATE (1000), BENCH_CONNS
# ("1,64,1024"), BENCH_MAX_LOAD (1.0: wait for a quiet machine), PROXY_BIN / STUB_BIN (skip the
# build and use these binaries; by default the release builds, wherever cargo puts them),
# OHA_VERSION (1.16.0). See bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."

export PATH="$HOME/.cargo/bin:$PATH"
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v wrk >/dev/null; then
    echo "== installing wrk (Debian)" >&2
    as_root apt-get update -qq
    as_root apt-get install -y -qq wrk >/dev/null
fi
if ! command -v oha >/dev/null; then
    echo "== installing oha ${OHA_VERSION:-1.16.0} (crates.io; compiles once, several minutes)" >&2
    cargo install oha --locked --version "${OHA_VERSION:-1.16.0}"
fi
if ! command -v python3 >/dev/null; then
    as_root apt-get update -qq
    as_root apt-get install -y -qq python3 >/dev/null
fi

# The executable `cargo build ARGS` produced for the binary target NAME, at the path cargo reports
# (CARGO_TARGET_DIR and build.target-dir respected).
built() {
    local name=$1
    shift
    cargo build "$@" --message-format=json-render-diagnostics | python3 -c '
import json, sys
for line in sys.stdin:
    message = json.loads(line)
    if message.get("reason") == "compiler-artifact" and message.get("executable") \
            and message["target"]["name"] == sys.argv[1]:
        print(message["executable"])
' "$name"
}
if [ -z "${PROXY_BIN:-}" ]; then
    echo "== building the proxy (release)" >&2
    PROXY_BIN=$(built kick-oauth-proxy --release --locked --bin kick-oauth-proxy)
    export PROXY_BIN
fi
if [ -z "${STUB_BIN:-}" ]; then
    echo "== building the upstream stub (release)" >&2
    STUB_BIN=$(built kick-bench-stub --release --locked --manifest-path bench/stub/Cargo.toml)
    export STUB_BIN
fi

# 1,024 client connections, as many upstream ones, and the generator's: well over 1,024 files.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

echo "== running the matrix" >&2
exec python3 bench/bench.py
