#!/usr/bin/env python3
"""User-space instructions per exchange, counted exactly: each proxy binary under valgrind's
callgrind, its counters zeroed after a warm-up and dumped after exactly BENCH_EXCHANGES exchanges.

    python3 bench/instructions.py BIN [BIN ...] [--json FILE]

Why: on a shared or virtual machine one run's CPU time moves by several per cent (ab.py's proxy ÷
stub ratio by about ±2 %), so a step worth 1 % cannot be seen in it. An instruction count does not
drift: the same binary gives the same count to about 0.2 % from run to run. It counts the proxy's
user space only (not the kernel's half, not cache misses or lock contention), so it ranks the
steps that remove work; whether a step pays on the clock is still ab.py's to say.

How: bench.py's stub and proxy configuration (replay off, `warn` logs); the proxy is started as
`valgrind --tool=callgrind BIN serve ...` (through a wrapper script as bench.py's PROXY_BIN).
BENCH_CONCURRENCY (16) keep-alive connections each send BENCH_WARMUP (20) requests, then the
counters are zeroed (`callgrind_control -z`), then each sends BENCH_EXCHANGES / BENCH_CONCURRENCY
more (4,800 in all by default), then the counters are dumped (`callgrind_control -d`). Every
request is `POST /api/v1/kick/token` with a distinct code, as token.lua's, and every answer must
be 200. Valgrind hides the CPU's SHA extensions, so sha2 runs its portable code under it and its
count is far above what it costs on the machine: it is reported apart (`sha256`), and
`without sha256` is the figure to compare. Prints, per binary, instructions per exchange and the
functions with the most instructions of their own; writes every number to
bench/results/instructions.json (or --json FILE).

Needs valgrind (`apt-get install -y valgrind`); about 30 s per binary. Standard library only."""

import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time

args = sys.argv[1:]
JSON_OUT = None
if "--json" in args:
    at = args.index("--json")
    if at + 1 >= len(args):
        raise SystemExit(__doc__)
    JSON_OUT = args[at + 1]
    del args[at:at + 2]
if not args:
    raise SystemExit(__doc__)
BINS = [os.path.abspath(b) for b in args]
# bench.py resolves PROXY_BIN at import (cargo metadata otherwise); each run below sets its own.
os.environ["PROXY_BIN"] = BINS[0]
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "16"))
EXCHANGES = int(os.environ.get("BENCH_EXCHANGES", "4800"))
WARMUP = int(os.environ.get("BENCH_WARMUP", "20"))
TOP = int(os.environ.get("BENCH_TOP", "25"))
JSON_OUT = JSON_OUT or os.path.join(bench.OUT, "instructions.json")

BODY = ('{"code":"%s","code_verifier":"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",'
        '"redirect_uri":"' + bench.REDIRECT + '"}')


async def connection(port, count, tag):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for i in range(count):
        body = (BODY % f"I{tag}-{i}-{time.time_ns()}").encode()
        writer.write(b"POST /api/v1/kick/token HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/json\r\nAccept: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body) + body)
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200 "):
            raise SystemExit(f"the proxy answered {head[:200]!r}")
        length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
        if length is None:
            raise SystemExit(f"an answer without Content-Length: {head[:200]!r}")
        await reader.readexactly(int(length.group(1)))
    writer.close()


def load(port, per_connection, tag):
    async def all_connections():
        await asyncio.gather(*(connection(port, per_connection, f"{tag}{c}")
                               for c in range(CONCURRENCY)))
    asyncio.run(all_connections())


def self_costs(profile):
    """The window's total instructions, and each function's own (callgrind_annotate)."""
    out = subprocess.run(["callgrind_annotate", "--threshold=100", "--inclusive=no", profile],
                         capture_output=True, text=True, check=True).stdout
    total, costs = None, []
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+) \([\s\d.]+%\)\s+(\S.*?)(?: \[[^\]]*\])?$", line)
        if not m:
            continue
        cost = int(m.group(1).replace(",", ""))
        if "PROGRAM TOTALS" in line:
            total = cost
            continue
        name = m.group(2)
        name = name.split(":", 1)[1] if name.startswith(("???:", "./", "/")) else name
        costs.append((cost, name))
    if total is None:
        raise SystemExit(f"no PROGRAM TOTALS in callgrind_annotate's output for {profile}")
    # callgrind_annotate lists the threads' entry points (`start_thread`, the runtime's worker
    # loop) with everything under them: those lines are not a function's own work.
    return total, [(cost, name) for cost, name in costs if cost < total / 2]


def measure(binary, work):
    out_base = os.path.join(work, os.path.basename(binary))
    wrapper = os.path.join(work, "valgrind-proxy.sh")
    with open(wrapper, "w") as f:
        f.write(f'#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file={out_base}.%p '
                f'"{binary}" "$@"\n')
    os.chmod(wrapper, 0o755)
    bench.PROXY_BIN = wrapper
    stub = bench.Stub()
    try:
        proxy = bench.Proxy("instructions", stub)
        try:
            load(proxy.port, WARMUP, "w")
            pid = proxy.proc.pid
            before = stub.stats()["http_requests"]
            subprocess.run(["callgrind_control", "-z", str(pid)], check=True, capture_output=True)
            per_connection = EXCHANGES // CONCURRENCY
            load(proxy.port, per_connection, "m")
            subprocess.run(["callgrind_control", "-d", str(pid)], check=True, capture_output=True)
            upstream = stub.stats()["http_requests"] - before
        finally:
            proxy.stop()
    finally:
        stub.stop()
    exchanges = per_connection * CONCURRENCY
    if upstream != exchanges:
        raise SystemExit(f"{exchanges} exchanges, but the stub counted {upstream} calls")
    profile = f"{out_base}.{pid}.1"  # the first dump: the measured window
    total, costs = self_costs(profile)
    # compress256 with fat LTO; whatever sha2 function is left uninlined in another build.
    sha = sum(cost for cost, name in costs if name.startswith("sha2::"))
    return {
        "binary": binary, "exchanges": exchanges, "instructions": total,
        "per_exchange": total / exchanges, "sha256_per_exchange": sha / exchanges,
        "without_sha256_per_exchange": (total - sha) / exchanges,
        "top": [{"function": name, "per_exchange": cost / exchanges}
                for cost, name in sorted(costs, reverse=True)[:TOP]],
    }


def main():
    for tool in ("valgrind", "callgrind_control", "callgrind_annotate"):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode:
            raise SystemExit(f"{tool} is not on the PATH: apt-get install -y valgrind")
    bench.prepare((*BINS, bench.STUB_BIN))
    results = []
    with tempfile.TemporaryDirectory(prefix="kop-instructions-") as work:
        for binary in BINS:
            bench.log(f"{binary}: {EXCHANGES} exchanges under callgrind")
            results.append(measure(binary, work))
    first = results[0]["without_sha256_per_exchange"]
    print(f"\n{EXCHANGES} exchanges, {CONCURRENCY} keep-alive connections, after {WARMUP} each; "
          "user-space instructions per exchange (callgrind)\n")
    print("| binary | per exchange | sha256 | **without sha256** | ÷ first |")
    print("|---|---:|---:|---:|---:|")
    for r in results:
        print(f"| `{r['binary']}` | {r['per_exchange']:,.0f} | {r['sha256_per_exchange']:,.0f} | "
              f"**{r['without_sha256_per_exchange']:,.0f}** | "
              f"{r['without_sha256_per_exchange'] / first:.3f} |")
    for r in results:
        print(f"\nTop functions (own instructions per exchange), `{r['binary']}`:\n")
        for row in r["top"]:
            print(f"- {row['per_exchange']:8,.0f}  {row['function'][:160]}")
    os.makedirs(os.path.dirname(os.path.abspath(JSON_OUT)), exist_ok=True)
    with open(JSON_OUT, "w") as f:
        json.dump(results, f, indent=1)
    print(f"\nwritten: {JSON_OUT}")


if __name__ == "__main__":
    main()
