#!/usr/bin/env python3
"""The benchmark matrix. Run it through bench/run.sh (which installs the generators and builds the
binaries); this file only orchestrates: it starts the upstream stub and the proxy, drives load with
oha (fixed rates) and wrk (saturation), reads the proxy's CPU time and memory from /proc, and
writes bench/results/latest.md (the tables) and latest.json (every number).

Every proxy number has a "direct" twin: the same generator, settings and connections sent straight
to the stub. The report's point is the difference and the ratio, not the absolute times, which on a
shared 2-core machine move from run to run.

Environment: PROXY_BIN, STUB_BIN (default: the release builds), BENCH_DURATION (seconds per point,
default 10), BENCH_RATE (fixed rate, default 1000), BENCH_CONNS (default "1,64,1024"),
BENCH_REPEAT (fixed-rate and variant points are run this many times, interleaved, and the median
shown; 3),
BENCH_MAX_LOAD (wait until the 1-minute load average is below this, default 1.0; at most
BENCH_LOAD_WAIT seconds, default 300), BENCH_COMMIT (the commit to print, default from git),
BENCH_PROXY_ENV (KEY=VALUE pairs for the proxy process only, for experiments such as
TOKIO_WORKER_THREADS=1 or LD_PRELOAD of another allocator).
Standard library only."""

import datetime
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
OUT = os.path.join(BENCH, "results")
WORK = os.path.join(OUT, "work")


def release_binary(manifest_dir, name):
    """Where `cargo build --release` puts `name` for the package in `manifest_dir`: cargo's
    target directory (CARGO_TARGET_DIR, build.target-dir, else ./target), as cargo reports it."""
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps", "--manifest-path",
         os.path.join(manifest_dir, "Cargo.toml")],
        capture_output=True, text=True, check=True).stdout
    return os.path.join(json.loads(out)["target_directory"], "release", name)


PROXY_BIN = os.environ.get("PROXY_BIN") or release_binary(ROOT, "kick-oauth-proxy")
STUB_BIN = os.environ.get("STUB_BIN") or release_binary(
    os.path.join(BENCH, "stub"), "kick-bench-stub")
DURATION = int(os.environ.get("BENCH_DURATION", "10"))
RATE = int(os.environ.get("BENCH_RATE", "1000"))
CONNS = [int(c) for c in os.environ.get("BENCH_CONNS", "1,64,1024").split(",")]
BIG = max(CONNS)
MAX_LOAD = float(os.environ.get("BENCH_MAX_LOAD", "1.0"))
LOAD_WAIT = int(os.environ.get("BENCH_LOAD_WAIT", "300"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))

CLK_TCK = os.sysconf("SC_CLK_TCK")
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
REDIRECT = "http://localhost:1420/auth/callback"
NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def log(message):
    print(message, file=sys.stderr, flush=True)


def loadavgs():
    """The 1, 5 and 15 minute load averages, as /proc/loadavg prints them."""
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def prepare(binaries):
    """What every bench script does first: refuse to start without its `binaries`, raise the
    open-file limit (inherited by every child: 1,024 connections need it), make WORK."""
    import resource
    for binary in binaries:
        if not os.access(binary, os.X_OK):
            raise SystemExit(f"{binary} missing: build it first (bench/run.sh builds the proxy "
                             "and the stub; see bench/README.md for the others)")
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(65536, hard), hard))
    os.makedirs(WORK, exist_ok=True)


def write_report(path, info, points, text):
    """Writes the run's figures as JSON to `path` and prints its Markdown `text`."""
    with open(path, "w") as f:
        json.dump({"machine": info, "points": points}, f, indent=1)
    print(text)
    log(f"written: {path}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=2.0):
    with NO_PROXY_OPENER.open(url, timeout=timeout) as response:
        return response.status, response.read()


def wait_http(url, what, seconds=20):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if http_get(url)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{what} did not come up at {url}")


# --- /proc ---------------------------------------------------------------------------------------

def cpu_seconds(pid):
    """utime + stime of the whole process (all threads), seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Threads"):
                out[key] = int(value.split()[0])
    return out  # kB (Threads: a count)


def open_fds(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


class Sampler:
    """Samples a process's RSS and open file descriptors every 100 ms while a run lasts."""

    def __init__(self, pid):
        self.pid, self.rss_kb, self.fds, self._stop = pid, 0, 0, threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        while not self._stop.is_set():
            try:
                self.rss_kb = max(self.rss_kb, proc_status(self.pid)["VmRSS"])
                self.fds = max(self.fds, open_fds(self.pid))
            except (OSError, KeyError):
                pass
            self._stop.wait(0.1)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


# --- processes -----------------------------------------------------------------------------------

class Stub:
    def __init__(self):
        self.http, self.https, self.stats_port = free_port(), free_port(), free_port()
        self.cert_dir = os.path.join(WORK, "certs")
        self.ca_path = os.path.join(self.cert_dir, "ca.pem")
        self.proc = subprocess.Popen(
            [STUB_BIN, "serve", "--http", f"127.0.0.1:{self.http}",
             "--https", f"127.0.0.1:{self.https}", "--stats", f"127.0.0.1:{self.stats_port}",
             "--cert-dir", self.cert_dir, "--threads", "2"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(WORK, "stub.log"), "w"))
        wait_http(self.stats_url, "the stub")

    @property
    def stats_url(self):
        return f"http://127.0.0.1:{self.stats_port}/stats"

    def stats(self):
        return json.loads(http_get(self.stats_url)[1])

    def url(self, tls=False):
        return (f"https://127.0.0.1:{self.https}/oauth/token" if tls
                else f"http://127.0.0.1:{self.http}/oauth/token")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


class Proxy:
    def __init__(self, name, stub, log_filter="warn", replay_secs=0, limits=(8192, 8192),
                 upstream_tls=False, extra="", rate_per_minute=0):
        self.name, self.port = name, free_port()
        # Over TLS the proxy trusts the stub's test CA through `ca_file`, as a deployment behind a
        # re-signing egress proxy would; the built-in roots stay.
        ca_line = (f'ca_file = "{os.path.join(stub.cert_dir, "ca.pem")}"\n'
                   if upstream_tls else "")
        self.config = os.path.join(WORK, f"proxy-{name}.toml")
        with open(self.config, "w") as f:
            f.write(f"""# Generated by bench/bench.py: proxy under test, {name}.
[server]
listen = "127.0.0.1:{self.port}"

[replay]
window_secs = {replay_secs}

[limits]
# Room for 1,024 client connections and as many upstream calls: the benchmark measures cost, not
# the overload answers (the defaults, 1024 and 256, are measured once as "proxy-defaults").
max_concurrent_requests = {limits[0]}
max_upstream_calls = {limits[1]}
breaker_failures = 0

[rate_limit]
token = {{ per_minute = {rate_per_minute}, burst = {max(1, rate_per_minute)} }}
refresh = {{ per_minute = 0, burst = 1 }}
revoke = {{ per_minute = 0, burst = 1 }}

[log]
format = "json"
filter = "{log_filter}"

[providers.kick]
client_id = "bench-client-id"
client_secret = "bench-client-secret"
allowed_redirect_uris = ["{REDIRECT}"]
token_url = "{stub.url(upstream_tls)}"
revoke_url = "http://127.0.0.1:{stub.http}/oauth/revoke"
timeout_secs = 10
{ca_line}{extra}""")
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("KICK_PROXY_") and k != "RUST_LOG"}
        # reqwest honours HTTP(S)_PROXY: the upstream is on loopback and must be reached directly.
        env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
        # Experiments: BENCH_PROXY_ENV="TOKIO_WORKER_THREADS=1 LD_PRELOAD=/usr/lib/...so"
        for pair in os.environ.get("BENCH_PROXY_ENV", "").split():
            key, _, value = pair.partition("=")
            env[key] = value
        self.log_path = os.path.join(WORK, f"proxy-{name}.log")
        self.proc = subprocess.Popen([PROXY_BIN, "serve", "--config", self.config],
                                     stdout=open(self.log_path, "w"), stderr=subprocess.STDOUT,
                                     env=env)
        wait_http(f"http://127.0.0.1:{self.port}/healthz", f"the proxy ({name})")
        self.rss_start_kb = proc_status(self.proc.pid)["VmRSS"]

    def url(self):
        return f"http://127.0.0.1:{self.port}/api/v1/kick/token"

    def log_bytes(self):
        return os.path.getsize(self.log_path)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(30)


# --- generators ----------------------------------------------------------------------------------

def bodies_file(count=200_000):
    """Distinct exchange bodies for oha's -Z (it picks a random line per request)."""
    path = os.path.join(WORK, "bodies.jsonl")
    with open(path, "w") as f:
        for i in range(count):
            f.write(f'{{"code":"OHA-{os.getpid()}-{i}","code_verifier":"{VERIFIER}",'
                    f'"redirect_uri":"{REDIRECT}"}}\n')
    return path


def run_wrk(url, conns, duration, pace_ms=None, threads=None, env=None):
    """wrk with token.lua; `pace_ms`: token.lua's paced mode (mean wait before each request on
    each connection, ms) instead of the closed loop; `threads` (default min(2, conns)); `env`:
    wrk's whole environment (per_core.py passes WRK_SPLIT_PORTS)."""
    threads = threads or min(2, conns)
    cmd = ["wrk", "-t", str(threads), "-c", str(conns), "-d", f"{duration}s", "--timeout", "10s",
           "-s", os.path.join(BENCH, "token.lua"), url]
    if pace_ms:
        cmd += ["--", str(pace_ms)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60, env=env)
    line = next((l for l in out.stdout.splitlines() if l.startswith("WRKJSON ")), None)
    if line is None:
        raise SystemExit(f"wrk failed: {out.stdout}\n{out.stderr}")
    r = json.loads(line[len("WRKJSON "):])
    errors = r["err_connect"] + r["err_read"] + r["err_write"] + r["err_timeout"] + r["err_status"]
    return {
        "requests": r["requests"], "ok": r["requests"] - r["err_status"], "errors": errors,
        "rps": r["requests"] / (r["duration_us"] / 1e6),
        "p50_ms": r["p50_us"] / 1e3, "p99_ms": r["p99_us"] / 1e3, "p999_ms": r["p999_us"] / 1e3,
        "max_ms": r["max_us"] / 1e3,
    }


def run_oha(url, conns, duration, rate, bodies, cacert=None):
    cmd = ["oha", "-z", f"{duration}s", "-c", str(conns), "-q", str(rate), "--latency-correction", "-w",
           "--no-tui", "--output-format", "json", "-t", "10s", "-m", "POST",
           "-T", "application/json", "-H", "Accept: application/json", "-Z", bodies, url]
    if cacert:
        cmd[1:1] = ["--cacert", cacert]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    try:
        r = json.loads(out.stdout)
    except json.JSONDecodeError:
        raise SystemExit(f"oha failed: {out.stdout[:2000]}\n{out.stderr[:2000]}")
    codes = r.get("statusCodeDistribution", {})
    ok = codes.get("200", 0)
    total = sum(codes.values()) + sum(r.get("errorDistribution", {}).values())
    lat = r["latencyPercentiles"]
    return {
        "requests": total, "ok": ok, "errors": total - ok,
        "rps": r["summary"]["requestsPerSec"],
        "p50_ms": lat["p50"] * 1e3, "p99_ms": lat["p99"] * 1e3, "p999_ms": lat["p99.9"] * 1e3,
        "max_ms": r["summary"]["slowest"] * 1e3, "error_kinds": r.get("errorDistribution", {}),
    }


def log_latencies(path, offset):
    """Percentiles (ms) of `latency_ms` over the request lines a proxy's JSON log gained after
    byte `offset`; every request line counts, whatever its status."""
    values = []
    with open(path) as f:
        f.seek(offset)
        for line in f:
            if '"latency_ms"' in line:
                try:
                    values.append(float(json.loads(line)["latency_ms"]))
                except (ValueError, KeyError):
                    pass
    if not values:
        raise SystemExit(f"no request lines with latency_ms in {path} after byte {offset}")
    values.sort()

    def pick(q):
        return values[min(len(values) - 1, int(len(values) * q))]
    return {"n": len(values), "p50_ms": pick(0.5), "p99_ms": pick(0.99), "p999_ms": pick(0.999)}


# --- one point -----------------------------------------------------------------------------------

RESULTS = []


def point(section, target, stub, gen, conns, tls=False, bodies=None, tag=None):
    """One run: `target` is "direct" (generator -> stub) or a Proxy (generator -> proxy -> stub).
    `tls`: the stub's counters to read are its TLS listener's (direct over TLS, or a proxy whose
    upstream is the TLS port)."""
    url = stub.url(tls) if target == "direct" else target.url()
    h2_0 = stub.stats()["h2_connections"]
    pid = None if target == "direct" else target.proc.pid
    watched = pid or stub.proc.pid
    s0, stub0, p0, l0 = stub.stats(), cpu_seconds(stub.proc.pid), pid and cpu_seconds(pid), loadavg()
    with Sampler(watched) as sampler:
        if gen == "oha":
            # Straight to the stub's TLS port: trust its test CA.
            cacert = stub.ca_path if tls and target == "direct" else None
            r = run_oha(url, conns, DURATION, RATE, bodies, cacert)
        else:
            r = run_wrk(url, conns, DURATION)
    s1, stub1 = stub.stats(), cpu_seconds(stub.proc.pid)
    n = max(r["ok"], 1)
    r.update({
        "section": section, "target": "direct" if target == "direct" else target.name,
        "tag": tag, "generator": gen, "conns": conns, "tls": tls,
        "rate": RATE if gen == "oha" else None, "duration_s": DURATION,
        "stub_cpu_us_per_req": (stub1 - stub0) * 1e6 / n,
        "upstream_requests": (s1["https_requests"] - s0["https_requests"]) if tls
        else (s1["http_requests"] - s0["http_requests"]),
        "upstream_connections": (s1["https_connections"] - s0["https_connections"]) if tls
        else (s1["http_connections"] - s0["http_connections"]),
        "tls_full_handshakes": s1["tls_full_handshakes"] - s0["tls_full_handshakes"],
        "tls_resumed_handshakes": s1["tls_resumed_handshakes"] - s0["tls_resumed_handshakes"],
        "h2_connections": s1["h2_connections"] - h2_0,
        "loadavg_before": l0, "loadavg_after": loadavg(),
        "peak_rss_kib": sampler.rss_kb, "peak_fds": sampler.fds,
    })
    if pid:
        r["proxy_cpu_us_per_req"] = (cpu_seconds(pid) - p0) * 1e6 / n
        r["proxy_hwm_kib"] = proc_status(pid)["VmHWM"]
        r["proxy_log_bytes"] = target.log_bytes()
    RESULTS.append(r)
    log(f"  {section:<10} {r['target']:<14} {gen} c={conns:<5} {r['rps']:>9.0f} req/s  "
        f"p50 {r['p50_ms']:.3f}  p99 {r['p99_ms']:.3f}  p99.9 {r['p999_ms']:.3f} ms  "
        f"errors {r['errors']}"
        + (f"  proxy {r['proxy_cpu_us_per_req']:.1f} us/req" if pid else "")
        + f"  stub {r['stub_cpu_us_per_req']:.1f} us/req  upstream {r['upstream_requests']}")
    time.sleep(1)
    return r


def probe(stub, concurrency, requests, fresh=False):
    cmd = [STUB_BIN, "probe", "--url", stub.url(tls=True), "--ca",
           os.path.join(stub.cert_dir, "ca.pem"), "--stats", stub.stats_url,
           "--requests", str(requests), "--concurrency", str(concurrency)]
    if fresh:
        cmd.append("--fresh")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    try:
        r = json.loads(out.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        raise SystemExit(f"probe failed: {out.stdout}\n{out.stderr}")
    log(f"  probe      {r['mode']:<14} c={concurrency:<5} {r['rps']:>9.0f} req/s  "
        f"p50 {r['p50_ms']:.3f}  p99 {r['p99_ms']:.3f} ms  handshakes {r['tls_full_handshakes']}"
        f"+{r['tls_resumed_handshakes']} resumed for {r['requests']} requests ({r['version']})")
    return r


# --- the machine ---------------------------------------------------------------------------------

def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True,
                              timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine():
    cpu = sh("lscpu | sed -n 's/^Model name:[[:space:]]*//p'") or platform.processor()
    commit = os.environ.get("BENCH_COMMIT") or sh(f"git -C {ROOT} rev-parse --short HEAD")
    if not os.environ.get("BENCH_COMMIT") and commit and sh(
            f"git -C {ROOT} status --porcelain --untracked-files=no -- src Cargo.toml Cargo.lock"):
        commit += " (with uncommitted changes in src/)"
    mem_kib = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(), "cpu": cpu, "memory_gib": round(mem_kib / 2**20, 1),
        "kernel": platform.release(), "commit": commit or "unknown",
        "wrk": sh("wrk -v 2>&1 | head -1").split(" Copyright")[0],
        "oha": sh("oha --version"), "rustc": sh("rustc --version"),
    }


def wait_for_quiet():
    waited = 0
    while loadavg() > MAX_LOAD and waited < LOAD_WAIT:
        if waited == 0:
            log(f"load average {loadavg():.2f} > {MAX_LOAD}: waiting up to {LOAD_WAIT}s "
                "for the machine to calm down (BENCH_MAX_LOAD, BENCH_LOAD_WAIT)")
        time.sleep(10)
        waited += 10
    if loadavg() > MAX_LOAD:
        log(f"load average still {loadavg():.2f}: measuring anyway; ratios stay meaningful, "
            "absolute numbers do not")


# --- report --------------------------------------------------------------------------------------

SUMMED = ("requests", "ok", "errors", "upstream_requests", "upstream_connections",
          "tls_full_handshakes", "tls_resumed_handshakes")


def find(section, target, conns, tag=None):
    """The point's result; for a repeated point, the median of each number (counts summed)."""
    rs = [r for r in RESULTS if r["section"] == section and r["target"] == target
          and r["conns"] == conns and r["tag"] == tag]
    if len(rs) <= 1:
        return rs[0] if rs else None
    out = dict(rs[0], reps=len(rs))
    for key, value in rs[0].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            values = [r[key] for r in rs if key in r]
            out[key] = sum(values) if key in SUMMED else statistics.median(values)
    return out


def f1(x):
    return "n/a" if x is None else f"{x:,.0f}" if abs(x) >= 100 else f"{x:.1f}"


def ms(x):
    return f"{x:.3f}"


def mib(kib):
    return f"{kib / 1024:.1f}"


def report(info, mem, probes):
    L = []
    w = L.append
    w(f"Run {info['date']} on {info['nproc']} CPUs ({info['cpu']}), {info['memory_gib']} GiB, "
      f"Linux {info['kernel']}; commit {info['commit']}; {info['wrk']}, {info['oha']}, "
      f"{info['rustc']}. {DURATION} s per point; load average "
      f"{info['load_start']:.2f} at start, {info['load_end']:.2f} at end. Generator, proxy and stub "
      "share the same cores.")
    w("")
    w(f"**Fixed rate, {RATE:,} req/s** (oha, latency measured from the scheduled send time; "
      "distinct codes). Latencies in ms; *added* = proxy − direct.")
    w("")
    w("| conns | direct p50 / p99 / p99.9 | proxy p50 / p99 / p99.9 | added p50 / p99 / p99.9 "
      "| proxy CPU µs/req | stub CPU µs/req | errors |")
    w("|---:|---|---|---|---:|---:|---:|")
    for c in CONNS:
        d, p = find("fixed", "direct", c), find("fixed", "proxy", c)
        if not (d and p):
            continue
        w(f"| {c} | {ms(d['p50_ms'])} / {ms(d['p99_ms'])} / {ms(d['p999_ms'])} "
          f"| {ms(p['p50_ms'])} / {ms(p['p99_ms'])} / {ms(p['p999_ms'])} "
          f"| {p['p50_ms'] - d['p50_ms']:+.3f} / {p['p99_ms'] - d['p99_ms']:+.3f} / "
          f"{p['p999_ms'] - d['p999_ms']:+.3f} "
          f"| {f1(p['proxy_cpu_us_per_req'])} | {f1(d['stub_cpu_us_per_req'])} "
          f"| {d['errors']} / {p['errors']} |")
    inside = mem.get("inside")
    if inside:
        g, p = inside["generator"], inside["proxy"]
        w("")
        w(f"Inside the proxy at {inside['conns']:,} connections, {RATE:,}/s (the `info` variant's "
          "own `latency_ms`, from its first middleware to the response, upstream call included) "
          f"vs what the generator saw: p50 {ms(p['p50_ms'])} / p99 {ms(p['p99_ms'])} / p99.9 "
          f"{ms(p['p999_ms'])} ms inside, {ms(g['p50_ms'])} / {ms(g['p99_ms'])} / "
          f"{ms(g['p999_ms'])} ms at the generator ({p['n']:,} requests). The difference is "
          "time before the router runs (waiting for a worker, reading the request) and after it "
          "(writing the answer).")
    w("")
    w("**Saturation** (wrk, closed loop, distinct codes). *capacity* = 2 cores ÷ proxy CPU per "
      "request: what the proxy alone could serve on 2 cores without the generator and the stub "
      "beside it.")
    w("")
    w("| conns | direct req/s | proxy req/s | proxy/direct | direct p50 / p99 | proxy p50 / p99 "
      "| proxy CPU µs/req | CPU vs stub | capacity on 2 cores | upstream conns opened | errors |")
    w("|---:|---:|---:|---:|---|---|---:|---:|---:|---:|---:|")
    for c in CONNS:
        d, p = find("saturation", "direct", c), find("saturation", "proxy", c)
        if not (d and p):
            continue
        cpu = p["proxy_cpu_us_per_req"]
        w(f"| {c} | {f1(d['rps'])} | {f1(p['rps'])} | {p['rps'] / d['rps']:.2f} "
          f"| {ms(d['p50_ms'])} / {ms(d['p99_ms'])} | {ms(p['p50_ms'])} / {ms(p['p99_ms'])} "
          f"| {f1(cpu)} | {cpu / d['stub_cpu_us_per_req']:.1f}× "
          f"| {f1(2e6 / cpu) if cpu else 'n/a'} /s | {p['upstream_connections']} "
          f"| {d['errors']} / {p['errors']} |")
    w("")
    w("**Memory** (proxy, VmRSS / VmHWM from /proc, MiB)")
    w("")
    w(f"| at start | idle after warm-up | {BIG:,} connections at {RATE:,}/s | {BIG:,} connections "
      "at saturation (VmHWM) | after the load | open fds at peak |")
    w("|---:|---:|---:|---:|---:|---:|")
    w(f"| {mib(mem['start'])} | {mib(mem['idle'])} | {mib(mem['open'])} | {mib(mem['peak'])} "
      f"| {mib(mem['after'])} | {mem['fds']} |")
    if "capped" in mem:
        w("")
        w(f"With the shipped limits (`max_concurrent_requests = 1024`, `max_upstream_calls = 256`) "
          f"at saturation with {BIG:,} connections: peak {mib(mem['capped'])} MiB, "
          f"{mem['capped_rps']:,.0f} answers/s of which {mem['capped_errors']:,} of "
          f"{mem['capped_requests']:,} were 503 (upstream cap reached).")
    w("")
    w("**Proxy → TLS upstream** (a fresh proxy whose `token_url` is the stub's HTTPS port, "
      "test CA via `ca_file`; the client → proxy leg stays plain HTTP). Fixed-rate points run "
      f"{REPEAT} times, interleaved with oha sent straight to the stub over TLS (its test CA "
      "via `--cacert`), median shown; saturation points once. *added vs plain* = proxy over TLS − "
      "the direct plain-HTTP median (the TLS work of both ends counts as added); *added vs TLS* = "
      "proxy over TLS − direct over TLS (what a client that would otherwise talk HTTPS to the "
      "provider itself sees added). Handshakes and connections are the stub's counters for the "
      "proxy's runs.")
    w("")
    w("| load | conns | req/s | p50 / p99 / p99.9 ms | direct TLS p50 / p99 / p99.9 ms "
      "| added p99 vs plain / vs TLS, ms | proxy CPU µs/req | upstream requests "
      "| upstream conns opened (h2) | TLS handshakes full+resumed | errors |")
    w("|---|---:|---:|---|---|---|---:|---:|---:|---:|---:|")
    wu = mem.get("tls_warmup")
    if wu:
        w(f"| warm-up (wrk, 2 s) | 64 | | | | | | {wu['https_requests']:,} "
          f"| {wu['https_connections']} ({wu['h2_connections']}) "
          f"| {wu['tls_full_handshakes']}+{wu['tls_resumed_handshakes']} | {wu['errors']} |")
    for section, load in (("fixed", f"{RATE:,}/s"), ("saturation", "saturation")):
        for c in CONNS:
            t = find("proxy-tls", "proxy-tls", c, section)
            d = find(section, "direct", c)
            dt = find("proxy-tls", "direct", c, section)
            if not t:
                continue
            # Closed-loop saturation latency is queueing, not cost: no "added" there.
            added = ""
            if d and section == "fixed":
                added = f"{t['p99_ms'] - d['p99_ms']:+.3f}"
                if dt:
                    added += f" / {t['p99_ms'] - dt['p99_ms']:+.3f}"
            direct_tls = (f"{ms(dt['p50_ms'])} / {ms(dt['p99_ms'])} / {ms(dt['p999_ms'])}"
                          if dt else "")
            w(f"| {load} | {c} | {f1(t['rps'])} | {ms(t['p50_ms'])} / {ms(t['p99_ms'])} / "
              f"{ms(t['p999_ms'])} | {direct_tls} | {added} | {f1(t['proxy_cpu_us_per_req'])} "
              f"| {t['upstream_requests']:,} | {t['upstream_connections']} ({t['h2_connections']}) "
              f"| {t['tls_full_handshakes']}+{t['tls_resumed_handshakes']} | {t['errors']} |")
    w("")
    w("**TLS baselines** — direct to the stub over TLS (wrk, one handshake per connection) and the "
      "proxy's reqwest client settings outside the proxy (probe): pooled, and a fresh client per "
      "request (what per-request client setup would cost):")
    w("")
    w("| run | conns | req/s | p50 / p99 ms | TLS handshakes (full+resumed) | requests |")
    w("|---|---:|---:|---|---:|---:|")
    for c in CONNS:
        t, d = find("tls", "direct", c), find("saturation", "direct", c)
        if t:
            w(f"| wrk → stub HTTPS (plain: {f1(d['rps']) if d else 'n/a'} req/s) | {c} "
              f"| {f1(t['rps'])} | {ms(t['p50_ms'])} / {ms(t['p99_ms'])} "
              f"| {t['tls_full_handshakes']}+{t['tls_resumed_handshakes']} | {t['requests']:,} |")
    for pr in probes:
        w(f"| proxy's client, {pr['mode']} ({pr['version']}) | {pr['concurrency']} "
          f"| {f1(pr['rps'])} | {ms(pr['p50_ms'])} / {ms(pr['p99_ms'])} "
          f"| {pr['tls_full_handshakes']}+{pr['tls_resumed_handshakes']} | {pr['requests']:,} |")
    w("")
    w("**Variants** (64 connections, interleaved, median of the repetitions): logging at the "
      "default `info` (one JSON line per request, to a file) and replay on (window 60 s).")
    w("")
    w("| proxy | sat. req/s | sat. p99 ms | sat. CPU µs/req | 1,000/s p99 ms | 1,000/s CPU µs/req "
      "| log bytes/req |")
    w("|---|---:|---:|---:|---:|---:|---:|")
    for name in ("proxy-warn", "proxy-info", "proxy-replay"):
        s, fx = find("variant", name, 64, "sat"), find("variant", name, 64, "fixed")
        if not (s and fx):
            continue
        w(f"| {name} | {f1(s['rps'])} | {ms(s['p99_ms'])} | {f1(s['proxy_cpu_us_per_req'])} "
          f"| {ms(fx['p99_ms'])} | {f1(fx['proxy_cpu_us_per_req'])} "
          f"| {s.get('log_bytes_per_req', 0):.0f} |")
    w("")
    w("**Targets**")
    w("")
    w("| target | measured | verdict |")
    w("|---|---|---|")
    for t in targets(mem, probes):
        w(f"| {t[0]} | {t[1]} | {t[2]} |")
    return "\n".join(L) + "\n"


def targets(mem, probes):
    out = []
    added = [(c, find("fixed", "proxy", c)["p99_ms"] - find("fixed", "direct", c)["p99_ms"])
             for c in CONNS if find("fixed", "proxy", c) and find("fixed", "direct", c)]
    if added:
        worst = max(a for _, a in added)
        out.append((f"added p99 < 1 ms at {RATE:,} req/s",
                    ", ".join(f"{a:+.3f} ms at {c}" for c, a in added),
                    "met" if worst < 1.0 else "**missed**"))
    for base, label in (("fixed", "plain"), ("proxy-tls", "TLS")):
        tls_added = [(c, find("proxy-tls", "proxy-tls", c, "fixed")["p99_ms"]
                      - find(base, "direct", c, "fixed" if base == "proxy-tls" else None)["p99_ms"])
                     for c in CONNS if find("proxy-tls", "proxy-tls", c, "fixed")
                     and find(base, "direct", c, "fixed" if base == "proxy-tls" else None)]
        if tls_added:
            worst = max(a for _, a in tls_added)
            out.append((f"added p99 < 1 ms at {RATE:,} req/s, TLS upstream, vs direct {label}",
                        ", ".join(f"{a:+.3f} ms at {c}" for c, a in tls_added),
                        "met" if worst < 1.0 else f"**missed** by {worst - 1.0:.2f} ms"))
    sat = [find("saturation", "proxy", c) for c in CONNS]
    sat = [r for r in sat if r]
    if sat:
        best = max(sat, key=lambda r: r["rps"])
        cap = 2e6 / min(r["proxy_cpu_us_per_req"] for r in sat)
        verdict = "met" if best["rps"] >= 10_000 else (
            "missed as measured (generator and stub share the 2 cores); "
            + ("met by CPU cost" if cap >= 10_000 else "**missed** by CPU cost too"))
        out.append(("≥ 10,000 exchanges/s at saturation on 2 cores, plain-HTTP upstream",
                    f"{best['rps']:,.0f} req/s measured at {best['conns']} conns; "
                    f"{cap:,.0f}/s by CPU cost", verdict))
    out.append(("idle RSS < 20 MiB", f"{mib(mem['idle'])} MiB after warm-up "
                f"({mib(mem['start'])} at start)", "met" if mem["idle"] < 20 * 1024 else
                "**missed**"))
    limit = 64 * 1024
    out.append((f"RSS < 64 MiB with {BIG:,} open connections",
                f"{mib(mem['open'])} MiB at {RATE:,} req/s; {mib(mem['peak'])} MiB at saturation"
                + (f" ({mib(mem['capped'])} MiB with the shipped limits)" if "capped" in mem else ""),
                "met" if mem["peak"] < limit else
                f"met at the fixed rate, **missed** at saturation by "
                f"{mib(mem['peak'] - limit)} MiB" if mem["open"] < limit else "**missed**"))
    tls = [r for r in RESULTS if r["section"] == "proxy-tls" and r["target"] != "direct"]
    if tls:
        hs = sum(r["tls_full_handshakes"] + r["tls_resumed_handshakes"] for r in tls)
        n = sum(r["upstream_requests"] for r in tls)
        worst = max(r["upstream_connections"] for r in tls)
        wu = mem.get("tls_warmup", {})
        out.append(("no upstream TLS handshake per request once warm",
                    f"through the proxy: {hs:,} TLS handshakes for {n:,} upstream requests over "
                    f"{len(tls)} runs (at most {worst} new connections in one run), after "
                    f"{wu.get('tls_full_handshakes', 0) + wu.get('tls_resumed_handshakes', 0)} "
                    f"in the warm-up's {wu.get('https_requests', 0):,}",
                    # Once warm: no handshake without a new connection, and new connections
                    # (and so handshakes) a vanishing share of the requests.
                    "met" if hs <= sum(r["upstream_connections"] for r in tls) and hs * 1000 < n
                    else "**missed**"))
    return out


def main():
    for tool in ("wrk", "oha"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} not found: run bench/run.sh, which installs it")
    for binary in (PROXY_BIN, STUB_BIN):
        if not os.access(binary, os.X_OK):
            raise SystemExit(f"{binary} missing: run bench/run.sh, which builds it")
    os.makedirs(WORK, exist_ok=True)
    wait_for_quiet()
    info = machine()
    info["load_start"] = loadavg()
    bodies = bodies_file()
    stub = Stub()
    proxies = []
    try:
        proxy = Proxy("proxy", stub)
        proxies.append(proxy)
        # Warm-up: connections, the upstream pool, allocator arenas. Then let it idle.
        run_wrk(proxy.url(), 64, 3)
        time.sleep(3)
        mem = {"start": proxy.rss_start_kb, "idle": proc_status(proxy.proc.pid)["VmRSS"]}
        log(f"proxy RSS: {mib(mem['start'])} MiB at start, {mib(mem['idle'])} MiB idle after "
            "warm-up")
        log(f"fixed rate {RATE}/s (oha):")
        for c in CONNS:
            for _ in range(REPEAT):  # interleaved, then the median: tail latency is noisy
                point("fixed", "direct", stub, "oha", c, bodies=bodies)
                point("fixed", proxy, stub, "oha", c, bodies=bodies)
        log("saturation (wrk):")
        for c in CONNS:
            point("saturation", "direct", stub, "wrk", c)
            point("saturation", proxy, stub, "wrk", c)
        mem["open"] = max(r["peak_rss_kib"] for r in RESULTS
                          if r["target"] == "proxy" and r["section"] == "fixed"
                          and r["conns"] == BIG)
        mem["peak"] = proc_status(proxy.proc.pid)["VmHWM"]
        mem["fds"] = max(r["peak_fds"] for r in RESULTS if r["target"] == "proxy")
        time.sleep(5)
        mem["after"] = proc_status(proxy.proc.pid)["VmRSS"]
        log("TLS (direct to the stub):")
        for c in CONNS:
            point("tls", "direct", stub, "wrk", c, tls=True)
        probes = [probe(stub, 1, 5000), probe(stub, 64, 20000), probe(stub, 1, 500, fresh=True)]
        log("proxy -> stub over TLS:")
        tls_proxy = Proxy("proxy-tls", stub, upstream_tls=True)
        proxies.append(tls_proxy)
        s0 = stub.stats()
        warm = run_wrk(tls_proxy.url(), 64, 2)  # warm-up: the pool's first handshakes
        s1 = stub.stats()
        mem["tls_warmup"] = {k: s1[k] - s0[k] for k in (
            "https_requests", "https_connections", "h2_connections", "tls_full_handshakes",
            "tls_resumed_handshakes")}
        mem["tls_warmup"]["errors"] = warm["errors"]
        log(f"  warm-up over TLS: {mem['tls_warmup']}")
        for c in CONNS:
            for _ in range(REPEAT):  # interleaved with a TLS baseline, then the median
                point("proxy-tls", "direct", stub, "oha", c, tls=True, bodies=bodies, tag="fixed")
                point("proxy-tls", tls_proxy, stub, "oha", c, tls=True, bodies=bodies, tag="fixed")
        for c in CONNS:
            point("proxy-tls", tls_proxy, stub, "wrk", c, tls=True, tag="saturation")
        tls_proxy.stop()
        proxies.remove(tls_proxy)
        log("variants (64 connections):")
        # Fresh processes for all three: the first proxy now holds the 1,024-connection run's
        # upstream pool and heap, which would bias the comparison.
        proxy.stop()
        proxies.remove(proxy)
        warn_proxy = Proxy("proxy-warn", stub)
        info_proxy = Proxy("proxy-info", stub, log_filter="info")
        replay_proxy = Proxy("proxy-replay", stub, replay_secs=60)
        proxies += [warn_proxy, info_proxy, replay_proxy]
        for p in (warn_proxy, info_proxy, replay_proxy):
            run_wrk(p.url(), 64, 2)  # warm-up
        for _ in range(REPEAT):  # interleaved, then the median: single runs differ by ±10 %
            for p in (warn_proxy, info_proxy, replay_proxy):
                before = p.log_bytes()
                r = point("variant", p, stub, "wrk", 64, tag="sat")
                r["log_bytes_per_req"] = (p.log_bytes() - before) / max(r["requests"], 1)
                point("variant", p, stub, "oha", 64, bodies=bodies, tag="fixed")
        # Where the time goes at BIG connections: the info proxy logs `latency_ms` per request
        # (from the router's first middleware to the response), so its own share of the
        # generator's latency is visible.
        before = info_proxy.log_bytes()
        r = point("variant", info_proxy, stub, "oha", BIG, bodies=bodies, tag="inside")
        mem["inside"] = {"conns": BIG, "generator": r,
                         "proxy": log_latencies(info_proxy.log_path, before)}
        # The shipped limits (1,024 requests, 256 upstream calls) at BIG connections: the upstream
        # pool, and so memory, stays bounded; the excess is answered 503 at once.
        capped = Proxy("proxy-defaults", stub, limits=(1024, 256))
        proxies.append(capped)
        r = point("variant", capped, stub, "wrk", BIG, tag="sat")
        mem["capped"] = r["proxy_hwm_kib"]
        mem["capped_rps"], mem["capped_errors"] = r["rps"], r["errors"]
        mem["capped_requests"] = r["requests"]
    finally:
        for p in proxies:
            p.stop()
        stub.stop()
    info["load_end"] = loadavg()
    text = report(info, mem, probes)
    with open(os.path.join(OUT, "latest.md"), "w") as f:
        f.write(text)
    with open(os.path.join(OUT, "latest.json"), "w") as f:
        json.dump({"machine": info, "memory_kib": mem, "probes": probes, "points": RESULTS}, f,
                  indent=1)
    print(text)
    log(f"written: {os.path.join(OUT, 'latest.md')} and latest.json")


def rerender(path):
    """`bench.py --report FILE.json`: the tables again from a recorded run's numbers (after a
    change to the report; the measurements are not repeated)."""
    global DURATION, RATE, CONNS, BIG
    with open(path) as f:
        data = json.load(f)
    RESULTS.extend(data["points"])
    fixed = [r for r in RESULTS if r["generator"] == "oha"]
    DURATION = RESULTS[0]["duration_s"]
    RATE = fixed[0]["rate"] if fixed else RATE
    CONNS = sorted({r["conns"] for r in RESULTS if r["section"] == "fixed"})
    BIG = max(CONNS)
    print(report(data["machine"], data["memory_kib"], data["probes"]))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--report":
        rerender(sys.argv[2])
    else:
        main()
