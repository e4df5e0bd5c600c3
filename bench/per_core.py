#!/usr/bin/env python3
"""One proxy process with N tokio workers against N processes of one worker each, in one run.

    python3 bench/per_core.py [PROXY_BIN]

What a thread-per-core design (one single-threaded event loop per CPU, as nginx's workers) would
gain over tokio's work-stealing workers, measured without building one: the N one-worker
processes share the stub and nothing else, and wrk's thread i sends only to process i (token.lua's
split mode, WRK_SPLIT_PORTS). The "one process" side is bench.py's "proxy" with
TOKIO_WORKER_THREADS=N; the other side is N of them with TOKIO_WORKER_THREADS=1. wrk runs N
threads on either side. Per side and repetition: req/s, p99, the proxy CPU µs per answered request
(all processes of the side), and that divided by the stub's CPU in the same point (bench/ab.py
explains why). Any wrk error (connect, read, write, timeout, non-2xx) stops the run. Medians and
split / one ratios are printed (no JSON report).

Environment: STUB_BIN, PROXY_BIN (or the argument), BENCH_CONNS (here default "64"; each at least
N), BENCH_DURATION (6), BENCH_REPEAT (5), BENCH_WORKERS (N, default 2), BENCH_MAX_LOAD /
BENCH_LOAD_WAIT as bench.py. Standard library only."""

import os
import statistics
import sys

if len(sys.argv) > 1:
    os.environ["PROXY_BIN"] = os.path.abspath(sys.argv[1])
os.environ.setdefault("BENCH_CONNS", "64")
os.environ.setdefault("BENCH_DURATION", "6")
os.environ.setdefault("BENCH_REPEAT", "5")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
if WORKERS < 1 or any(c < WORKERS for c in bench.CONNS):
    raise SystemExit(f"BENCH_WORKERS ({WORKERS}) must be at least 1 and at most every BENCH_CONNS")


def wrk(ports, conns, duration):
    """bench.run_wrk with WORKERS threads, thread i to ports[i]; stops on any error."""
    env = dict(os.environ, WRK_SPLIT_PORTS=",".join(map(str, ports)))
    r = bench.run_wrk(f"http://127.0.0.1:{ports[0]}/api/v1/kick/token", conns, duration,
                      threads=WORKERS, env=env)
    if r["errors"]:
        raise SystemExit(f"wrk saw {r['errors']} errors: {r}")
    return r


def measure(procs, stub, conns):
    ports = [p.port for p in procs] if len(procs) > 1 else [procs[0].port] * WORKERS
    cpu0 = sum(bench.cpu_seconds(p.proc.pid) for p in procs)
    stub0 = bench.cpu_seconds(stub.proc.pid)
    r = wrk(ports, conns, bench.DURATION)
    cpu = sum(bench.cpu_seconds(p.proc.pid) for p in procs) - cpu0
    stub_cpu = bench.cpu_seconds(stub.proc.pid) - stub0
    r["cpu_us"] = cpu / r["requests"] * 1e6
    r["per_stub"] = cpu / stub_cpu
    return r


def main():
    bench.prepare((bench.PROXY_BIN, bench.STUB_BIN))
    bench.wait_for_quiet()
    stub = bench.Stub()
    common = os.environ.get("BENCH_PROXY_ENV", "")
    sides = {}
    try:
        os.environ["BENCH_PROXY_ENV"] = f"{common} TOKIO_WORKER_THREADS={WORKERS}".strip()
        sides["one"] = [bench.Proxy("one", stub)]
        os.environ["BENCH_PROXY_ENV"] = f"{common} TOKIO_WORKER_THREADS=1".strip()
        sides["split"] = [bench.Proxy(f"split{i}", stub) for i in range(WORKERS)]
        os.environ["BENCH_PROXY_ENV"] = common
        for procs in sides.values():  # warm-up
            measure(procs, stub, 64)
        rows = {c: {side: [] for side in sides} for c in bench.CONNS}
        for c in bench.CONNS:
            for i in range(bench.REPEAT):
                for side, procs in sides.items():
                    r = measure(procs, stub, c)
                    rows[c][side].append(r)
                    bench.log(f"  c={c} {side:5s} #{i + 1}: {r['rps']:,.0f} req/s, p99 "
                              f"{r['p99_ms']:.2f} ms, {r['cpu_us']:.1f} µs/req, ÷ stub "
                              f"{r['per_stub']:.2f}")
    finally:
        for procs in sides.values():
            for p in procs:
                p.stop()
        stub.stop()
    print(f"\n{WORKERS} workers: one process against {WORKERS} one-worker processes, medians of "
          f"{bench.REPEAT} × {bench.DURATION} s\n")
    print("| conns | side | req/s | p99 ms | CPU µs/req | proxy ÷ stub CPU |")
    print("|---:|---|---:|---:|---:|---:|")
    for c, by_side in rows.items():
        med = {side: {k: statistics.median(r[k] for r in rs)
                      for k in ("rps", "p99_ms", "cpu_us", "per_stub")}
               for side, rs in by_side.items()}
        for side, m in med.items():
            print(f"| {c} | {side} | {m['rps']:,.0f} | {m['p99_ms']:.2f} | {m['cpu_us']:.1f} "
                  f"| {m['per_stub']:.3f} |")
        ratio = {k: med["split"][k] / med["one"][k] for k in med["one"]}
        print(f"| {c} | **split / one** | **{ratio['rps']:.3f}** | **{ratio['p99_ms']:.3f}** "
              f"| **{ratio['cpu_us']:.3f}** | **{ratio['per_stub']:.3f}** |")


if __name__ == "__main__":
    main()
