#!/usr/bin/env python3
"""Allocations, bytes allocated and runtime hand-offs per exchange (issue #15, "count first").

    python3 bench/alloc.py [--json FILE]

Runs `kick-bench-alloc` (bench/alloc/: the real app, `kick_oauth_proxy::server::Application`,
in-process under a counting wrapper around the system allocator; a bench-only crate outside the
workspace, never linked into the product) with bench.py's proxy configuration (replay off, rate
limits and breaker off, limits 8192, `warn` JSON logs) and bench.py's stub as the upstream. wrk
with token.lua (distinct codes) warms it up (64 connections, 3 s), then per connection count,
BENCH_REPEAT times: read the counters, run wrk for BENCH_DURATION seconds over keep-alive
connections, wait 1 s for the exchanges in flight to finish, read the counters again. The
divisor is the stub's count of upstream calls during the point (every exchange reached it: replay
and single-flight never merge distinct codes), so an exchange cut short when wrk stopped still
counts its allocations. The load generator and the stub are other processes: nothing of theirs
is counted. An idle point (no load, same duration) shows the background rate.

Per exchange: allocations (alloc + alloc_zeroed), reallocs, frees, bytes requested (alloc sizes
plus realloc new sizes), growth of live bytes; tokio's stable runtime metrics: worker park/unpark
transitions (a worker going to sleep and being woken) and worker busy time. Tasks spawned, task
polls and remote schedules need tokio's unstable metrics: build the binary with
`RUSTFLAGS="--cfg tokio_unstable"` (README) and they are reported too.

Environment: ALLOC_BIN (default: bench/alloc's release build), STUB_BIN, BENCH_CONNS (default
"1,64,1024"), BENCH_DURATION (10), BENCH_REPEAT (3), BENCH_MAX_LOAD / BENCH_LOAD_WAIT (as
bench.py). Standard library only."""

import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if len(sys.argv) not in (1, 3) or (len(sys.argv) == 3 and sys.argv[1] != "--json"):
    raise SystemExit(__doc__)
sys.path.insert(0, HERE)
os.environ.setdefault("BENCH_CONNS", "1,64,1024")
# bench.py resolves PROXY_BIN at import (cargo metadata otherwise); set below to the alloc binary.
os.environ["PROXY_BIN"] = os.environ.get("ALLOC_BIN") or "kick-bench-alloc"
import bench  # noqa: E402

ALLOC_BIN = os.path.abspath(os.environ.get("ALLOC_BIN") or bench.release_binary(
    os.path.join(HERE, "alloc"), "kick-bench-alloc"))
bench.PROXY_BIN = ALLOC_BIN  # bench.Proxy starts PROXY_BIN serve --config FILE
JSON_OUT = sys.argv[2] if len(sys.argv) == 3 else os.path.join(bench.OUT, "alloc.json")
STATS_PORT = bench.free_port()
os.environ["BENCH_PROXY_ENV"] = (os.environ.get("BENCH_PROXY_ENV", "") +
                                 f" ALLOC_STATS_ADDR=127.0.0.1:{STATS_PORT}").strip()
STATS_URL = f"http://127.0.0.1:{STATS_PORT}/"
COUNTERS = ("allocs", "reallocs", "frees", "bytes", "live_bytes", "worker_parks",
            "worker_park_unparks", "worker_busy_ns", "spawned_tasks", "remote_schedules", "polls")


def counters():
    return json.loads(bench.http_get(STATS_URL)[1])


def measure(stub, proxy, conns, idle=False):
    l0 = bench.loadavg()
    c0, s0, p0 = counters(), stub.stats(), bench.cpu_seconds(proxy.proc.pid)
    if idle:
        time.sleep(bench.DURATION)
        r = {"requests": 0, "ok": 0, "errors": 0, "rps": 0.0}
    else:
        r = bench.run_wrk(proxy.url(), conns, bench.DURATION)
        time.sleep(1)  # exchanges in flight when wrk stopped finish (or are dropped)
    c1, s1, p1 = counters(), stub.stats(), bench.cpu_seconds(proxy.proc.pid)
    n = s1["http_requests"] - s0["http_requests"]
    out = {"conns": conns, "idle": idle, "exchanges": n, "answered": r["ok"],
           "errors": r["errors"], "rps": r["rps"], "loadavg": l0,
           "cpu_us_per_exchange": (p1 - p0) * 1e6 / n if n else None}
    for key in COUNTERS:
        if key in c1:
            out[key] = c1[key] - c0[key]
            out[key + "_per_exchange"] = out[key] / n if n else None
    out["tokio_unstable"] = c1.get("tokio_unstable", False)
    bench.log(f"  c={conns:<5} {'idle' if idle else ''} exchanges {n:>7}  "
              + (f"allocs/ex {out['allocs_per_exchange']:.1f}  reallocs/ex "
                 f"{out['reallocs_per_exchange']:.1f}  bytes/ex {out['bytes_per_exchange']:,.0f}  "
                 f"unparks/ex {out['worker_park_unparks_per_exchange']:.2f}"
                 + (f"  spawned/ex {out['spawned_tasks_per_exchange']:.2f}"
                    if "spawned_tasks" in out else "")
                 if n else f"allocs {out['allocs']} in {bench.DURATION} s"))
    return out


def table(info, points):
    unstable = any(p["tokio_unstable"] for p in points)
    L = [f"Run {info['date']}, {info['nproc']} CPUs ({info['cpu']}), Linux {info['kernel']}, "
         f"commit {info['commit']}, {info['rustc']}, {info['wrk']}; {bench.DURATION} s per point, "
         f"{bench.REPEAT} runs each; load average (1/5/15 min) {info['load_start']} at start, "
         f"{info['load_end']} at end; tokio_unstable: {'yes' if unstable else 'no'}.", "",
         "| conns | exchanges per run | allocs/exchange per run | allocs/ex median "
         "| reallocs/ex | frees/ex | bytes/ex median | live-bytes growth/ex "
         "| worker park→unpark/ex | busy µs/ex |"
         + (" tasks spawned/ex | polls/ex | remote schedules/ex |" if unstable else ""),
         "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|" + ("---:|---:|---:|" if unstable else "")]
    for c in bench.CONNS:
        rs = [p for p in points if p["conns"] == c and not p["idle"]]
        if not rs:
            continue

        def med(key):
            return statistics.median(p[key] for p in rs)
        L.append(
            f"| {c} | {' / '.join(format(p['exchanges'], ',') for p in rs)} "
            f"| {' / '.join(format(p['allocs_per_exchange'], '.1f') for p in rs)} "
            f"| **{med('allocs_per_exchange'):.1f}** | {med('reallocs_per_exchange'):.1f} "
            f"| {med('frees_per_exchange'):.1f} | **{med('bytes_per_exchange'):,.0f}** "
            f"| {med('live_bytes_per_exchange'):+.1f} | {med('worker_park_unparks_per_exchange'):.2f} "
            f"| {med('worker_busy_ns_per_exchange') / 1e3:.1f} |"
            + (f" {med('spawned_tasks_per_exchange'):.2f} | {med('polls_per_exchange'):.1f} "
               f"| {med('remote_schedules_per_exchange'):.2f} |" if unstable else ""))
    idle = [p for p in points if p["idle"]]
    if idle:
        p = idle[0]
        L += ["", f"Idle, {bench.DURATION} s without requests: {p['allocs']} allocations, "
              f"{p['bytes']:,} bytes."]
    return "\n".join(L) + "\n"


def main():
    bench.prepare((ALLOC_BIN, bench.STUB_BIN))
    bench.wait_for_quiet()
    info = bench.machine()
    info["load_start"] = bench.loadavgs()
    bench.log(f"load average at start: {info['load_start']}")
    stub = bench.Stub()
    proxy = None
    points = []
    try:
        proxy = bench.Proxy("alloc", stub)
        bench.run_wrk(proxy.url(), 64, 3)  # warm-up: connections, the upstream pool, arenas
        time.sleep(2)
        points.append(measure(stub, proxy, 0, idle=True))
        for c in bench.CONNS:
            for _ in range(bench.REPEAT):
                points.append(measure(stub, proxy, c))
    finally:
        if proxy:
            proxy.stop()
        stub.stop()
    info["load_end"] = bench.loadavgs()
    text = table(info, points)
    bench.write_report(JSON_OUT, info, points, text)


if __name__ == "__main__":
    main()
