#!/usr/bin/env bash
# Schema-driven fuzzing: runs schemathesis (from PyPI) against `kick-oauth-proxy dev` (the proxy
# with the Kick emulator behind it, on loopback) using the OpenAPI document the server serves at
# /api/v1/openapi.json, and fails on any 5xx or any response the document does not describe
# (status code, content type, body schema).
#
# Usage: bash scripts/schemathesis.sh [schemathesis run options, e.g. --report har]
#        (from anywhere; builds the binary first, a no-op when it is up to date)
# Env:   SCHEMATHESIS_MAX_EXAMPLES  test cases per operation and phase (default 20)
#        SCHEMATHESIS_SEED          replay a run (every run prints its seed)
#        PROXY_PORT, EMULATOR_PORT  fixed loopback ports; by default each run binds port 0 and
#                                   reads the ports `dev` prints, so runs never collide
# Needs: python3 with venv, and PyPI: schemathesis goes into <target dir>/schemathesis-venv, where
#        <target dir> is cargo's (CARGO_TARGET_DIR, build.target-dir, else ./target), as asked from
#        `cargo metadata`; the binary is the one `cargo build` reports.
#
# Dev mode builds its own config, with the default rate limits (`/token` 30 a minute, burst 10),
# so the run uses `--rate-limit auto`: on a 429 (itself checked against the document) schemathesis
# waits `Retry-After` and sends again, so the handlers behind the limit get tested too. That wait is
# most of the run time (about 2 minutes). scripts/schemathesis.toml steers part of the data to the
# `kick` provider, an allowed redirect URI and a live refresh token obtained below.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-20}

# Loopback only: a proxy from the environment must not intercept.
export NO_PROXY="127.0.0.1,localhost,::1${NO_PROXY:+,$NO_PROXY}"
unset RUST_LOG

# Cargo's output directory, wherever it is configured to be.
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps --locked |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
# The binary cargo built (a no-op after `cargo test`), at the path cargo reports.
BIN=$(cargo build --locked --bin kick-oauth-proxy --message-format=json-render-diagnostics |
    python3 -c '
import json, sys
for line in sys.stdin:
    message = json.loads(line)
    if message.get("reason") == "compiler-artifact" and message.get("executable") \
            and message["target"]["name"] == "kick-oauth-proxy":
        print(message["executable"])
')
[[ -x $BIN ]] || { echo "cargo build reported no kick-oauth-proxy executable" >&2; exit 1; }

VENV=$TARGET_DIR/schemathesis-venv
# This run's files: the server's output, the refresh-token dictionary and, beside it, the copy of
# scripts/schemathesis.toml that reads it (its `from-file` is relative to the config file).
RUN_DIR=$(mktemp -d "$TARGET_DIR/schemathesis-run.XXXXXX")
LOG=$RUN_DIR/server.log
DICTIONARY=$RUN_DIR/refresh-token.dict
cp scripts/schemathesis.toml "$RUN_DIR/schemathesis.toml"
SERVER=
cleanup() {
    if [[ -n $SERVER ]]; then
        kill "$SERVER" 2>/dev/null || true
        wait "$SERVER" 2>/dev/null || true
    fi
    rm -rf "$RUN_DIR"
}
trap cleanup EXIT

# One installer at a time when several runs share the venv.
exec 9>"$TARGET_DIR/schemathesis-venv.lock"
command -v flock >/dev/null && flock 9
if [[ ! -x $VENV/bin/schemathesis ]] ||
    [[ "$("$VENV/bin/schemathesis" --version 2>/dev/null)" != *"$SCHEMATHESIS_VERSION"* ]]; then
    echo "== installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
command -v flock >/dev/null && flock -u 9
PYTHON=$VENV/bin/python

"$BIN" dev --listen "127.0.0.1:${PROXY_PORT:-0}" --emulator-listen "127.0.0.1:${EMULATOR_PORT:-0}" \
    >"$LOG" 2>&1 &
SERVER=$!

# `dev` prints where it listens first ("Kick emulator  http://…", "proxy          http://…").
PROXY= EMULATOR=
for _ in $(seq 1 150); do
    EMULATOR=$(sed -n 's|^Kick emulator  *\(http://[^ ]*\).*|\1|p' "$LOG" | head -n 1)
    PROXY=$(sed -n 's|^proxy  *\(http://[^ ]*\).*|\1|p' "$LOG" | head -n 1)
    [[ -n $PROXY && -n $EMULATOR ]] && break
    if ! kill -0 "$SERVER" 2>/dev/null; then
        echo "kick-oauth-proxy dev exited; its output:" >&2
        cat "$LOG" >&2
        exit 1
    fi
    sleep 0.2
done
[[ -n $PROXY && -n $EMULATOR ]] ||
    { echo "kick-oauth-proxy dev never printed its addresses; its output:" >&2; cat "$LOG" >&2; exit 1; }

healthy() {
    "$PYTHON" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
        "$PROXY/healthz" >/dev/null 2>&1
}
for _ in $(seq 1 150); do
    healthy && break
    if ! kill -0 "$SERVER" 2>/dev/null; then
        echo "kick-oauth-proxy dev exited; its output:" >&2
        cat "$LOG" >&2
        exit 1
    fi
    sleep 0.2
done
healthy || { echo "the proxy never became healthy; its output:" >&2; cat "$LOG" >&2; exit 1; }

# A live refresh token for scripts/schemathesis.toml: authorize at the emulator (it approves at
# once), exchange the code through the proxy, write the token as a libFuzzer dictionary.
"$PYTHON" - "$PROXY" "$EMULATOR" "$DICTIONARY" <<'PY'
import base64, hashlib, json, secrets, sys, urllib.error, urllib.parse, urllib.request

proxy, emulator, dictionary = sys.argv[1:4]
redirect_uri = "http://localhost:1420/auth/callback"
verifier = secrets.token_urlsafe(48)
challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
query = urllib.parse.urlencode({
    "client_id": "emulator-client-id", "response_type": "code", "redirect_uri": redirect_uri,
    "scope": "user:read channel:read", "state": "schemathesis",
    "code_challenge": challenge, "code_challenge_method": "S256",
})

class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None

try:
    urllib.request.build_opener(NoRedirect).open(f"{emulator}/oauth/authorize?{query}")
    sys.exit("the emulator did not redirect")
except urllib.error.HTTPError as redirect:
    location = redirect.headers["Location"]
code = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)["code"][0]
body = json.dumps({"code": code, "code_verifier": verifier, "redirect_uri": redirect_uri}).encode()
request = urllib.request.Request(f"{proxy}/api/v1/kick/token", data=body,
                                 headers={"content-type": "application/json"})
token = json.load(urllib.request.urlopen(request, timeout=15))["refresh_token"]
with open(dictionary, "w", encoding="ascii") as f:
    f.write('"' + token.replace("\\", "\\\\").replace('"', '\\"') + '"\n')
PY

args=(
    --config-file "$RUN_DIR/schemathesis.toml"
    run "$PROXY/api/v1/openapi.json"
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance
    --max-examples "$MAX_EXAMPLES"
    --rate-limit auto
    --workers 2
    --request-timeout 15
    --generation-database none
    --no-color
)
[[ -n ${SCHEMATHESIS_SEED:-} ]] && args+=(--seed "$SCHEMATHESIS_SEED")
args+=("$@")

echo "== schemathesis $SCHEMATHESIS_VERSION against $PROXY (kick-oauth-proxy dev)"
started=$SECONDS
status=0
"$VENV/bin/schemathesis" "${args[@]}" || status=$?
echo "schemathesis finished in $((SECONDS - started)) s with exit code $status"
if ! kill -0 "$SERVER" 2>/dev/null; then
    echo "the proxy died during the run; its output:" >&2
    tail -n 50 "$LOG" >&2
    status=1
elif [[ $status != 0 ]]; then
    echo "the proxy's last lines:" >&2
    tail -n 20 "$LOG" >&2
fi
exit "$status"
