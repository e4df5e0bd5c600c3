#!/usr/bin/env python3
"""A/B of two proxy binaries on the saturation points, interleaved in one run.

    python3 bench/ab.py BEFORE_BIN AFTER_BIN [--json FILE]

Reuses bench.py's machinery (the stub, the proxy configuration, wrk with token.lua, the /proc
readings): one stub on free ports, one proxy per binary configured exactly as bench.py's "proxy"
(replay off, rate limits and breaker off, limits at 8192, `warn` JSON logs), both started and
warmed up (wrk, 64 connections, 3 s) before any measurement. Then for each connection count,
BENCH_REPEAT times: before, after (wrk, BENCH_DURATION seconds each, distinct codes). Per point:
req/s, p99, proxy CPU µs per answered request (utime + stime delta from /proc/<pid>/stat), the
proxy's CPU per request divided by the stub's in the same run (the stub does the same fixed work
per request, so this cancels the machine's drift: on a shared or virtual machine the CPU time of
one and the same binary moves by ±15 % between runs a minute apart, while proxy ÷ stub moves by
±2 %; valid only when both binaries give the stub the same work: a binary that opens more upstream
connections, or sends other headers, also moves the stub's CPU per request), the median of the repetitions and the after/before ratio of the medians, and the stub's count of
upstream calls minus wrk's answers (the exchanges in flight when wrk stopped: at most the
connection count, so every request reached the upstream). Prints a Markdown table and
writes every number to bench/results/ab.json (or --json FILE).

Environment: STUB_BIN (default: the stub's release build), BENCH_CONNS (here default "64,1024"),
BENCH_DURATION (10), BENCH_REPEAT (3), BENCH_MAX_LOAD / BENCH_LOAD_WAIT (wait for a quiet machine
first, as bench.py), BENCH_PROXY_ENV (as bench.py; applies to both binaries), BENCH_ENV_BEFORE /
BENCH_ENV_AFTER (the same form, one side only: the same binary twice A/Bs a setting). Build the binaries
first (`cargo build --release --bin kick-oauth-proxy` in each checkout). Standard library only."""

import os
import statistics
import sys
import time

if len(sys.argv) not in (3, 5) or (len(sys.argv) == 5 and sys.argv[3] != "--json"):
    raise SystemExit(__doc__)
BINS = {"before": os.path.abspath(sys.argv[1]), "after": os.path.abspath(sys.argv[2])}
# bench.py resolves PROXY_BIN at import (cargo metadata otherwise); each Proxy below sets its own.
os.environ["PROXY_BIN"] = BINS["before"]
os.environ.setdefault("BENCH_CONNS", "64,1024")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

JSON_OUT = sys.argv[4] if len(sys.argv) == 5 else os.path.join(bench.OUT, "ab.json")


COMMON_ENV = os.environ.get("BENCH_PROXY_ENV", "")


def start(name, stub):
    bench.PROXY_BIN = BINS[name]  # read by Proxy() when it spawns the process
    # BENCH_PROXY_ENV applies to both; BENCH_ENV_BEFORE / BENCH_ENV_AFTER to one side only (an A/B
    # of a setting on one binary: pass the same binary twice).
    side = os.environ.get(f"BENCH_ENV_{name.upper()}", "")
    os.environ["BENCH_PROXY_ENV"] = f"{COMMON_ENV} {side}".strip()
    try:
        return bench.Proxy(name, stub)
    finally:
        os.environ["BENCH_PROXY_ENV"] = COMMON_ENV


def runs(rows, key, fmt):
    return " / ".join(fmt.format(r[key]) for r in rows)


def med(rows, key):
    return statistics.median(r[key] for r in rows)


def main():
    bench.prepare((*BINS.values(), bench.STUB_BIN))
    bench.wait_for_quiet()
    info = bench.machine()
    info.update(commits=os.environ.get("BENCH_COMMITS", ""), binaries=BINS,
                load_start=bench.loadavgs())
    bench.log(f"load average at start: {info['load_start']}")
    stub = bench.Stub()
    proxies = {}
    try:
        for name in BINS:
            proxies[name] = start(name, stub)
        for name, p in proxies.items():  # warm-up: connections, the upstream pool, arenas
            bench.run_wrk(p.url(), 64, 3)
        time.sleep(3)
        for c in bench.CONNS:
            for _ in range(bench.REPEAT):
                for name in BINS:  # before, after, before, after, ...
                    bench.point("ab", proxies[name], stub, "wrk", c)
    finally:
        for p in proxies.values():
            p.stop()
        stub.stop()
    info["load_end"] = bench.loadavgs()
    bench.log(f"load average at end: {info['load_end']}")
    text = table(info)
    bench.write_report(JSON_OUT, info, bench.RESULTS, text)


def table(info):
    L = [f"Run {info['date']}, {info['nproc']} CPUs ({info['cpu']}), Linux {info['kernel']}, "
         f"{info['wrk']}; {bench.DURATION} s per point, {bench.REPEAT} runs each, interleaved; "
         f"load average (1/5/15 min) {info['load_start']} at start, {info['load_end']} at end.",
         "",
         "| conns | build | req/s per run | req/s median | p99 ms per run | p99 median "
         "| proxy CPU µs/req per run | CPU µs/req median | proxy ÷ stub CPU per run "
         "| proxy ÷ stub median | errors | upstream − answered | 1-min load per run |",
         "|---:|---|---|---:|---|---:|---|---:|---|---:|---:|---|---|"]
    for r in bench.RESULTS:
        # Upstream calls the stub saw minus the answers wrk counted: the exchanges still in flight
        # when wrk stopped (at most the connection count), so every request reached the stub.
        r["in_flight"] = r["upstream_requests"] - r["ok"]
        r["proxy_per_stub"] = r["proxy_cpu_us_per_req"] / r["stub_cpu_us_per_req"]
    for c in bench.CONNS:
        rows = {n: [r for r in bench.RESULTS if r["conns"] == c and r["target"] == n]
                for n in BINS}
        for n in BINS:
            rs = rows[n]
            L.append(
                f"| {c} | {n} | {runs(rs, 'rps', '{:,.0f}')} | {med(rs, 'rps'):,.0f} "
                f"| {runs(rs, 'p99_ms', '{:.2f}')} | {med(rs, 'p99_ms'):.2f} "
                f"| {runs(rs, 'proxy_cpu_us_per_req', '{:.1f}')} "
                f"| {med(rs, 'proxy_cpu_us_per_req'):.1f} "
                f"| {runs(rs, 'proxy_per_stub', '{:.2f}')} | {med(rs, 'proxy_per_stub'):.2f} "
                f"| {sum(r['errors'] for r in rs)} "
                f"| {runs(rs, 'in_flight', '{:,}')} "
                f"| {runs(rs, 'loadavg_before', '{:.2f}')} |")
        b, a = rows["before"], rows["after"]
        L.append(f"| {c} | **after / before** | | **{med(a, 'rps') / med(b, 'rps'):.3f}** | "
                 f"| **{med(a, 'p99_ms') / med(b, 'p99_ms'):.3f}** | "
                 f"| **{med(a, 'proxy_cpu_us_per_req') / med(b, 'proxy_cpu_us_per_req'):.3f}** "
                 f"| | **{med(a, 'proxy_per_stub') / med(b, 'proxy_per_stub'):.3f}** | | | |")
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    main()
