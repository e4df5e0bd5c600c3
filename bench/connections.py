#!/usr/bin/env python3
"""What open connections cost the proxy before any request exists: its RSS with N connections each
holding a partial header block, with N idle connections, and after they are gone.

    python3 bench/connections.py [--conns 1000] [--reference-bin PATH] [--json FILE]

Scenarios, each on a fresh proxy process (plain HTTP, and TLS when `openssl` is on the PATH):
- idle: the process alone;
- partial-max: N connections, each sending the largest partial header block the proxy still
  accepts (`max_header_bytes` - 1 = 16,383 bytes by default, no line end);
- partial-390k: N connections each sending 390,000 bytes of an unterminated header (the attack of
  issue #12: the proxy answers 431 at 16 KiB and closes; a proxy without the cap buffers it all);
- idle-conns: N connections that send nothing;
and after each, the RSS 3 s after the client closed them all, then the same N connections once more
(freed memory is kept by the allocator for reuse: the second round must not grow the process).

`--reference-bin` runs the same scenarios on another build (e.g. the commit before the connection
rules) in the same run, side by side. The binary under test is PROXY_BIN or the release build in
cargo's target directory (CARGO_TARGET_DIR honoured). Ports: every process binds port 0. Loopback
only; bounded in count and time. Standard library only.
"""

import argparse
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
PARTIAL_HEAD = b"POST /api/v1/kick/token HTTP/1.1\r\nHost: x\r\nX-Filler: "
MAX_HEADER_BYTES = 16384


def log(message):
    print(message, file=sys.stderr, flush=True)


def release_binary():
    if os.environ.get("PROXY_BIN"):
        return os.environ["PROXY_BIN"]
    meta = json.loads(subprocess.check_output(
        ["cargo", "metadata", "--format-version", "1", "--no-deps"], cwd=ROOT))
    return os.path.join(meta["target_directory"], "release", "kick-oauth-proxy")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Proxy:
    """The proxy on 127.0.0.1:0 with a long header deadline, so held connections stay held."""

    def __init__(self, binary, work, tls):
        self.tls = tls
        config = os.path.join(work, "proxy.toml")
        tls_table = (f'[server.tls]\ncert_file = "{work}/tls.crt"\nkey_file = "{work}/tls.key"\n'
                     if tls else "")
        with open(config, "w") as f:
            f.write(f"""[server]
listen = "127.0.0.1:0"
header_read_timeout_secs = 60
{tls_table}
[log]
format = "json"
filter = "info"

[providers.kick]
client_id = "bench-client-id"
client_secret = "bench-client-secret"
allowed_redirect_uris = ["http://localhost:1420/auth/callback"]
token_url = "http://127.0.0.1:9/oauth/token"
""")
        self.log_path = os.path.join(work, "proxy.log")
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("KICK_PROXY_") and k != "RUST_LOG"}
        # Experiments: BENCH_PROXY_ENV="MALLOC_ARENA_MAX=2 MALLOC_TRIM_THRESHOLD_=65536"
        for pair in os.environ.get("BENCH_PROXY_ENV", "").split():
            key, _, value = pair.partition("=")
            env[key] = value
        self.proc = subprocess.Popen([binary, "serve", "--config", config],
                                     stdout=open(self.log_path, "w"), stderr=subprocess.STDOUT,
                                     env=env)
        self.port = self._wait_for_port()

    def _wait_for_port(self):
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"the proxy exited: {open(self.log_path).read()[-2000:]}")
            with open(self.log_path) as f:
                match = re.search(r'"addr":"127\.0\.0\.1:(\d+)"', f.read())
            if match:
                return int(match.group(1))
            time.sleep(0.05)
        raise SystemExit("the proxy did not log its address")

    def connect(self, context):
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        if context is not None:
            sock = context.wrap_socket(sock, server_hostname="localhost")
        return sock

    def rss(self):
        return rss_kib(self.proc.pid)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(30)


def hold(proxy, context, conns, payload):
    """Opens `conns` connections, each sending `payload`; returns them with the peak RSS seen."""
    held, closed_by_server = [], 0
    for _ in range(conns):
        sock = proxy.connect(context)
        try:
            if payload:
                sock.sendall(payload)
        except OSError:
            closed_by_server += 1
        held.append(sock)
    peak = proxy.rss()
    for _ in range(10):  # let the server read what was sent
        time.sleep(0.1)
        peak = max(peak, proxy.rss())
    return held, peak, closed_by_server


def scenario(binary, work, tls, name, conns, payload):
    proxy = Proxy(binary, work, tls)
    context = None
    if tls:
        context = ssl.create_default_context(cafile=os.path.join(work, "tls.crt"))
    try:
        time.sleep(0.5)
        idle = proxy.rss()
        held, peak, closed = hold(proxy, context, conns, payload)
        for sock in held:
            sock.close()
        time.sleep(3)
        after = proxy.rss()
        # The same again: freed memory is reused, so a second round must not grow the process.
        held, second_peak, _ = hold(proxy, context, conns, payload)
        for sock in held:
            sock.close()
        alive = proxy.proc.poll() is None
        return {"scenario": name, "tls": tls, "conns": conns, "idle_kib": idle,
                "held_kib": peak, "after_kib": after, "second_held_kib": second_peak,
                "closed_by_server": closed, "alive": alive}
    finally:
        proxy.stop()


def make_cert(work):
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "1", "-subj", "/CN=localhost", "-addext",
         "subjectAltName=DNS:localhost", "-keyout", os.path.join(work, "tls.key"),
         "-out", os.path.join(work, "tls.crt")],
        check=True, capture_output=True)


def run(binary, label, conns, tls_modes):
    rows = []
    filler = MAX_HEADER_BYTES - 1 - len(PARTIAL_HEAD)
    payloads = [
        ("partial-max", PARTIAL_HEAD + b"a" * filler),
        ("partial-390k", PARTIAL_HEAD + b"a" * 390_000),
        ("idle-conns", b""),
    ]
    with tempfile.TemporaryDirectory() as work:
        if True in tls_modes:
            make_cert(work)
        for tls in tls_modes:
            for name, payload in payloads:
                row = scenario(binary, work, tls, name, conns, payload)
                row["binary"] = label
                rows.append(row)
                log(f"  {label:<10} {'tls' if tls else 'plain':<5} {name:<13} idle "
                    f"{row['idle_kib'] / 1024:6.1f} MiB, held {row['held_kib'] / 1024:6.1f} MiB,"
                    f" after {row['after_kib'] / 1024:6.1f} MiB, again "
                    f"{row['second_held_kib'] / 1024:6.1f} MiB, closed by the server "
                    f"{row['closed_by_server']}, alive {row['alive']}")
    return rows


def table(rows, conns):
    out = [f"| binary | listener | scenario ({conns} connections) | idle RSS | held RSS | "
           "RSS 3 s after closing | held again | closed by the proxy | verdict (< 64 MiB held) |",
           "|---|---|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        held = r["held_kib"] / 1024
        worst = max(held, r["second_held_kib"] / 1024)
        verdict = "met" if worst < 64 and r["alive"] else "missed"
        out.append(f"| {r['binary']} | {'TLS' if r['tls'] else 'plain'} | {r['scenario']} | "
                   f"{r['idle_kib'] / 1024:.1f} MiB | {held:.1f} MiB | "
                   f"{r['after_kib'] / 1024:.1f} MiB | {r['second_held_kib'] / 1024:.1f} MiB | "
                   f"{r['closed_by_server']} | {verdict} |")
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conns", type=int, default=1000)
    parser.add_argument("--reference-bin", help="another build measured the same way")
    parser.add_argument("--json", help="write every number here")
    args = parser.parse_args()
    binary = release_binary()
    if not os.path.exists(binary):
        raise SystemExit(f"{binary} does not exist: cargo build --release --bin kick-oauth-proxy")
    tls_modes = [False, True] if shutil.which("openssl") else [False]
    rows = run(binary, "this build", args.conns, tls_modes)
    if args.reference_bin:
        rows += run(args.reference_bin, "reference", args.conns, tls_modes)
    print(table(rows, args.conns))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
