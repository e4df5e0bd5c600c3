#!/usr/bin/env python3
"""The Redis-on column (issue #14): the proxy with `[state] backend = "redis"` against a local
`redis-server`, beside the same proxy with the memory backend, in one run.

    python3 bench/store.py [--json FILE]

Starts bench.py's stub, a `redis-server` (Debian's; on a free loopback port, in a temporary
directory, no persistence: `--save "" --appendonly no`; as `nobody` when started as root) and four
proxies (the release binary, bench.py's configuration otherwise):
- `memory`, `redis`: replay off, rate limits off (bench.py's `proxy`). With Redis each exchange
  claims its flight in the store and completes it: two store round trips per exchange.
- `memory-full`, `redis-full`: replay on (60 s window) and the token endpoint's rate limit on, at
  6,000,000 a minute so that it never refuses (the bucket is consulted, locally and with Redis in
  the store, on every request).
`[state]` for the Redis ones: a random 48-byte secret, `op_timeout_ms = 100`, `redis://` on
loopback. All warmed up (wrk, 64 connections, 3 s).

Points, BENCH_REPEAT times each, interleaved (direct, memory, redis, memory-full, redis-full):
- paced, about BENCH_RATE req/s (1,000): wrk with token.lua's paced mode (each of BENCH_CONNS
  connections, default 64, waits an exponential random time of mean conns × 1000 / rate ms before
  each request). Not a fixed-rate generator with latency correction like oha: latency counts
  from the send, so a stall is not charged to the requests queued behind it; at this load
  (a fraction of a millisecond per request, under a request in flight on average) the two
  rarely differ. Reported: req/s reached, p50 / p99 / p99.9, *added* against memory (the cost of
  the store) and against direct, proxy CPU µs/req, redis-server CPU µs/req, store commands per
  request (redis `total_commands_processed`).
- saturation: wrk closed loop, 64 connections: req/s, p99, CPU µs/req of the proxy and of Redis.

Environment: PROXY_BIN, STUB_BIN (as bench.py), REDIS_SERVER (default `redis-server` on the
PATH), BENCH_RATE (1000), BENCH_CONNS ("64"), BENCH_DURATION (10), BENCH_REPEAT (3),
BENCH_MAX_LOAD / BENCH_LOAD_WAIT, BENCH_STORE_SATURATION=0 to skip the saturation points.
Standard library only."""

import os
import pwd
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if len(sys.argv) not in (1, 3) or (len(sys.argv) == 3 and sys.argv[1] != "--json"):
    raise SystemExit(__doc__)
sys.path.insert(0, HERE)
os.environ.setdefault("BENCH_CONNS", "64")
import bench  # noqa: E402

JSON_OUT = sys.argv[2] if len(sys.argv) == 3 else os.path.join(bench.OUT, "store.json")
REDIS_SERVER = os.environ.get("REDIS_SERVER") or shutil.which("redis-server")
SATURATION = os.environ.get("BENCH_STORE_SATURATION", "1") != "0"
NAMES = ["direct", "memory", "redis", "memory-full", "redis-full"]


class Redis:
    def __init__(self):
        self.port = bench.free_port()
        self.dir = tempfile.mkdtemp(prefix="bench-redis-")
        cmd = [REDIS_SERVER, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", self.dir,
               "--save", "", "--appendonly", "no", "--daemonize", "no",
               "--logfile", os.path.join(self.dir, "redis.log"), "--protected-mode", "yes"]
        if os.getuid() == 0:
            user = pwd.getpwnam("nobody")
            os.chown(self.dir, user.pw_uid, user.pw_gid)
            cmd = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}",
                   "--clear-groups", "--"] + cmd
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while True:
            try:
                if self.command("PING").startswith("+PONG"):
                    break
            except OSError:
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                raise SystemExit(f"redis-server did not start (log: {self.dir}/redis.log)")
            time.sleep(0.1)
        self.version = self.info("server").get("redis_version", "?")

    def command(self, line):
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            s.sendall(line.encode() + b"\r\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
                if data.startswith(b"$"):
                    head, _, rest = data.partition(b"\r\n")
                    if len(rest) >= int(head[1:]) + 2:
                        break
                elif data.endswith(b"\r\n"):
                    break
            return data.decode()

    def info(self, section):
        out = {}
        for line in self.command(f"INFO {section}").splitlines():
            key, sep, value = line.partition(":")
            if sep:
                out[key] = value
        return out

    def commands(self):
        return int(self.info("stats")["total_commands_processed"])

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def state_toml(redis, secret):
    return f"""
[state]
backend = "redis"
secret = "{secret}"
op_timeout_ms = 100

[state.redis]
url = "redis://127.0.0.1:{redis.port}"
"""


def point(stub, redis, target, conns, pace_ms, section):
    url = stub.url() if target == "direct" else target.url()
    pids = [] if target == "direct" else [target.proc.pid]
    l0 = bench.loadavg()
    s0, st0, r0, k0 = stub.stats(), bench.cpu_seconds(stub.proc.pid), \
        bench.cpu_seconds(redis.proc.pid), redis.commands()
    p0 = sum(bench.cpu_seconds(p) for p in pids)
    r = bench.run_wrk(url, conns, bench.DURATION, pace_ms=pace_ms)
    p1 = sum(bench.cpu_seconds(p) for p in pids)
    s1, st1, r1, k1 = stub.stats(), bench.cpu_seconds(stub.proc.pid), \
        bench.cpu_seconds(redis.proc.pid), redis.commands()
    n = max(r["ok"], 1)
    name = "direct" if target == "direct" else target.name
    r.update({
        "section": section, "target": name, "conns": conns, "pace_ms": pace_ms,
        "loadavg_before": l0,
        "proxy_cpu_us_per_req": (p1 - p0) * 1e6 / n if pids else None,
        "stub_cpu_us_per_req": (st1 - st0) * 1e6 / n,
        "redis_cpu_us_per_req": (r1 - r0) * 1e6 / n,
        # INFO itself counts as a command: minus the one this point's first reading made.
        "redis_commands_per_req": (k1 - k0 - 1) / n,
        "upstream_requests": s1["http_requests"] - s0["http_requests"],
    })
    bench.log(f"  {section:<10} {name:<12} c={conns:<5} {r['rps']:>8.0f} req/s  p50 "
              f"{r['p50_ms']:.3f}  p99 {r['p99_ms']:.3f}  p99.9 {r['p999_ms']:.3f} ms  errors "
              f"{r['errors']}  "
              + (f"proxy {r['proxy_cpu_us_per_req']:.1f} us/req  " if pids else "")
              + f"redis {r['redis_cpu_us_per_req']:.1f} us/req, "
              f"{r['redis_commands_per_req']:.2f} cmd/req  load {l0:.2f}")
    return r


def table(info, points):
    def rows(section, name, c):
        return [p for p in points if p["section"] == section and p["target"] == name
                and p["conns"] == c]

    def med(rs, key):
        values = [p[key] for p in rs if p.get(key) is not None]
        return statistics.median(values) if values else None

    def runs(rs, key, fmt):
        return " / ".join(format(p[key], fmt) for p in rs)

    L = [f"Run {info['date']}, {info['nproc']} CPUs ({info['cpu']}), Linux {info['kernel']}, "
         f"commit {info['commit']}, {info['wrk']}, Redis {info['redis']}; {bench.DURATION} s per "
         f"point, {bench.REPEAT} runs each, interleaved; load average (1/5/15 min) "
         f"{info['load_start']} at start, {info['load_end']} at end.", ""]
    for c in bench.CONNS:
        L += [f"**Paced, about {bench.RATE:,} req/s, {c} connections** (latency in ms; medians; "
              "*added vs memory* = the store's cost: redis − memory, redis-full − memory-full)", "",
              "| proxy | req/s | p50 | p99 per run | p99 | p99.9 | added vs memory p50 / p99 / p99.9 "
              "| added vs direct p99 | proxy CPU µs/req | redis CPU µs/req | store commands/req "
              "| errors | 1-min load per run |",
              "|---|---:|---:|---|---:|---:|---|---:|---:|---:|---:|---:|---|"]
        d = rows("paced", "direct", c)
        for name in NAMES:
            rs = rows("paced", name, c)
            if not rs:
                continue
            base = {"redis": "memory", "redis-full": "memory-full"}.get(name)
            added = ""
            if base and rows("paced", base, c):
                b = rows("paced", base, c)
                added = " / ".join(f"{med(rs, k) - med(b, k):+.3f}"
                                   for k in ("p50_ms", "p99_ms", "p999_ms"))
            vs_direct = (f"{med(rs, 'p99_ms') - med(d, 'p99_ms'):+.3f}"
                         if d and name != "direct" else "")
            cpu = med(rs, "proxy_cpu_us_per_req")
            redis_cpu = med(rs, "redis_cpu_us_per_req") if name.startswith("redis") else None
            L.append(
                f"| {name} | {med(rs, 'rps'):,.0f} | {med(rs, 'p50_ms'):.3f} "
                f"| {runs(rs, 'p99_ms', '.3f')} | {med(rs, 'p99_ms'):.3f} "
                f"| {med(rs, 'p999_ms'):.3f} | {added} | {vs_direct} "
                f"| {format(cpu, '.1f') if cpu else ''} "
                f"| {format(redis_cpu, '.1f') if redis_cpu is not None else ''} "
                f"| {format(med(rs, 'redis_commands_per_req'), '.2f') if name.startswith('redis') else ''} "
                f"| {sum(p['errors'] for p in rs)} | {runs(rs, 'loadavg_before', '.2f')} |")
        L.append("")
    sat = [p for p in points if p["section"] == "saturation"]
    if sat:
        L += ["**Saturation** (wrk closed loop, 64 connections; medians)", "",
              "| proxy | req/s per run | req/s | p99 ms | proxy CPU µs/req per run | proxy CPU µs/req "
              "| redis CPU µs/req | store commands/req | errors |",
              "|---|---|---:|---:|---|---:|---:|---:|---:|"]
        for name in NAMES[1:]:
            rs = rows("saturation", name, 64)
            if not rs:
                continue
            redis = name.startswith("redis")
            L.append(
                f"| {name} | {runs(rs, 'rps', ',.0f')} | {med(rs, 'rps'):,.0f} "
                f"| {med(rs, 'p99_ms'):.2f} | {runs(rs, 'proxy_cpu_us_per_req', '.1f')} "
                f"| {med(rs, 'proxy_cpu_us_per_req'):.1f} "
                f"| {format(med(rs, 'redis_cpu_us_per_req'), '.1f') if redis else ''} "
                f"| {format(med(rs, 'redis_commands_per_req'), '.2f') if redis else ''} "
                f"| {sum(p['errors'] for p in rs)} |")
    return "\n".join(L) + "\n"


def main():
    if not REDIS_SERVER:
        raise SystemExit("redis-server not found: apt-get install -y redis-server")
    bench.prepare((bench.PROXY_BIN, bench.STUB_BIN))
    bench.wait_for_quiet()
    info = bench.machine()
    info["load_start"] = bench.loadavgs()
    bench.log(f"load average at start: {info['load_start']}")
    stub = bench.Stub()
    redis = Redis()
    info["redis"] = redis.version
    secret = secrets.token_hex(24)  # 48 bytes of text
    proxies, points = [], []
    try:
        full = {"replay_secs": 60, "rate_per_minute": 6_000_000}
        proxies = [
            bench.Proxy("memory", stub),
            bench.Proxy("redis", stub, extra=state_toml(redis, secret)),
            bench.Proxy("memory-full", stub, **full),
            bench.Proxy("redis-full", stub, extra=state_toml(redis, secret), **full),
        ]
        for p in proxies:
            bench.run_wrk(p.url(), 64, 3)  # warm-up: connections, pools, the store connection
        time.sleep(3)
        for c in bench.CONNS:
            pace = c * 1000 / bench.RATE
            for _ in range(bench.REPEAT):
                for target in ["direct"] + proxies:
                    points.append(point(stub, redis, target, c, pace, "paced"))
        if SATURATION:
            for _ in range(bench.REPEAT):
                for target in proxies:
                    points.append(point(stub, redis, target, 64, None, "saturation"))
    finally:
        for p in proxies:
            p.stop()
        redis.stop()
        stub.stop()
    info["load_end"] = bench.loadavgs()
    text = table(info, points)
    bench.write_report(JSON_OUT, info, points, text)


if __name__ == "__main__":
    main()
