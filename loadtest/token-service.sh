#!/usr/bin/env bash
# jwt_auth next to a plain proxy route (issue 6 item 11), loopback, bounded:
#   origin   : a second tokengate answering `ok` (direct response)
#   gateway  : /plain proxied to the origin; /auth the same route with jwt_auth (one repeated ES256 JWT);
#              token service on the embedded store (revocation looked up on every request)
#   load     : wrk -t1 -c50, PASSES interleaved passes of DURATION each, req/s printed per run
# Usage: loadtest/token-service.sh [PASSES] [DURATION]     (needs target/release/tokengate, wrk, curl)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${TOKENGATE_BIN:-$ROOT/target/release/tokengate}
PASSES=${1:-3}
DURATION=${2:-5s}
DIR=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$DIR"; }
trap cleanup EXIT
source "$ROOT/loadtest/lib.sh"
OP=$(free); OA=$(free); GP=$(free); GA=$(free)
{ common origin "$OA" "$OP"; printf '[[routes]]\nname = "ok"\nrespond = { status = 200, body = "ok\\n" }\n'; } > "$DIR/origin.toml"
HASH=$(echo bench-secret | "$BIN" hash-secret --iterations 1000)
{ common gw "$GA" "$GP"; cat <<T
[upstreams.o]
targets = ["127.0.0.1:$OP"]
[[routes]]
name = "plain"
match = { path_prefix = "/plain" }
upstream = "o"
[[routes]]
name = "auth"
match = { path_prefix = "/auth" }
upstream = "o"
policies = [{ type = "jwt_auth", audiences = ["api"], scopes = ["read"] }]
[token_service]
issuer = "https://bench.example"
require_tls = false
signing_alg = "ES256"
key_dir = "$DIR/keys"
[token_service.store]
path = "$DIR/tokens.redb"
[[token_service.clients]]
client_id = "bench"
secret_hash = "$HASH"
scopes = ["read"]
audience = ["api"]
T
} > "$DIR/gw.toml"
"$BIN" run -c "$DIR/origin.toml" >/dev/null 2>&1 & PIDS+=($!)
"$BIN" run -c "$DIR/gw.toml" >/dev/null 2>&1 & PIDS+=($!)
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$GA/healthz" >/dev/null && curl -sf "http://127.0.0.1:$OA/healthz" >/dev/null && break; sleep 0.1; done
TOKEN=$(curl -sf -u bench:bench-secret -d grant_type=client_credentials "http://127.0.0.1:$GP/oauth2/token" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$GP/auth")" = 200 ]
run() { wrk -t1 -c50 -d"$DURATION" "$@" | awk '/Requests\/sec/ {print $2}'; }
printf 'pass\tplain_rps\tjwt_auth_rps\tratio\n'
for i in $(seq 1 "$PASSES"); do
  wrk -t1 -c50 -d1s "http://127.0.0.1:$GP/plain" >/dev/null
  P=$(run "http://127.0.0.1:$GP/plain")
  A=$(run -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$GP/auth")
  printf '%s\t%s\t%s\t%s\n' "$i" "$P" "$A" "$(python3 -c "print(round($A/$P, 3))")"
done
