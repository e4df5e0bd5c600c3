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
#        PROXY_PORT, EMULATOR_PORT  default 18080, 18081
# Needs: python3 with venv, and PyPI: schemathesis goes into target/schemathesis-venv.
#
# Dev mode builds its own config, with the default rate limits (`/token` 30 a minute, burst 10),
# so the run uses `--rate-limit auto`: on a 429 (itself checked against the document) schemathesis
# waits `Retry-After` and sends again, so the handlers behind the limit get tested too. That wait is
# most of the run time (about 2 minutes). scripts/schemathesis.toml steers part of the data to the
# `kick` provider, an allowed redirect URI and a live refresh token obtained below.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
VENV=target/schemathesis-venv
PROXY_PORT=${PROXY_PORT:-18080}
EMULATOR_PORT=${EMULATOR_PORT:-18081}
MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-20}
BIN=target/debug/kick-oauth-proxy
PROXY=http://127.0.0.1:$PROXY_PORT
EMULATOR=http://127.0.0.1:$EMULATOR_PORT
LOG=target/schemathesis-server.log

if [[ ! -x $VENV/bin/schemathesis ]] ||
    [[ "$("$VENV/bin/schemathesis" --version 2>/dev/null)" != *"$SCHEMATHESIS_VERSION"* ]]; then
    echo "== installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
PYTHON=$VENV/bin/python

cargo build --locked --bin kick-oauth-proxy   # a no-op after `cargo test`

# Loopback only: a proxy from the environment must not intercept.
export NO_PROXY="127.0.0.1,localhost,::1${NO_PROXY:+,$NO_PROXY}"
unset RUST_LOG

"$BIN" dev --listen "127.0.0.1:$PROXY_PORT" --emulator-listen "127.0.0.1:$EMULATOR_PORT" >"$LOG" 2>&1 &
SERVER=$!
stop_server() {
    kill "$SERVER" 2>/dev/null || true
    wait "$SERVER" 2>/dev/null || true
}
trap stop_server EXIT

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
"$PYTHON" - "$PROXY" "$EMULATOR" target/schemathesis-refresh-token.dict <<'PY'
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
    --config-file scripts/schemathesis.toml
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
fi
exit "$status"
