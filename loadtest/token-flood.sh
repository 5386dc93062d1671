#!/usr/bin/env bash
# A neighbouring route's latency while the token endpoint is flooded with bad client credentials,
# loopback, bounded:
#   gateway : one worker thread; /hello a direct response; the token service with one client
#             whose secret is pbkdf2-sha256 at 600 000 iterations (the default), so an unknown
#             client id costs the same through the dummy hash
#   neighbour: wrk -t1 -c2 --timeout 30s --latency GET /hello for NEIGHBOUR (report.lua: p50/p99
#             in µs; a stalled worker shows as latency, not as wrk timeouts)
#   flood   : wrk -t1 -c FLOOD_CONNS (default 32) for FLOOD, POST /oauth2/token with bad
#             credentials (wrk/flood.lua): `distinct` = a new unknown client id per request (a
#             hash each, the backoff never locks), `same` = one unknown client id (backoff 429
#             after 5 failures)
#   phases  : baseline (no flood), then per flood mode: flood starts, 3 s later the neighbour
#             is measured while the flood runs; the flood's rate and status counts are printed
# Usage: loadtest/token-flood.sh [NEIGHBOUR] [FLOOD]   (defaults 10s 20s; needs
#        target/release/tokengate, wrk, curl). TOKENGATE_BIN picks another binary.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${TOKENGATE_BIN:-$ROOT/target/release/tokengate}
NEIGHBOUR=${1:-10s}
FLOOD=${2:-20s}
CONNS=${FLOOD_CONNS:-32}
DIR=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$DIR"; }
trap cleanup EXIT
source "$ROOT/loadtest/lib.sh"
# The binary is copied, so a rebuild cannot swap it mid-run.
cp "$BIN" "$DIR/tokengate"
GP=$(free); GA=$(free)
HASH=$(echo bench-secret | "$DIR/tokengate" hash-secret --iterations 600000)
{ common gw "$GA" "$GP"; cat <<T
[[routes]]
name = "hello"
match = { path_exact = "/hello" }
respond = { status = 200, body = "hello\\n" }
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
T
} > "$DIR/gw.toml"
"$DIR/tokengate" run -c "$DIR/gw.toml" >"$DIR/gw.log" 2>&1 & PIDS+=($!)
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$GA/healthz" >/dev/null && break; sleep 0.1; done
[ "$(curl -s "http://127.0.0.1:$GP/hello")" = hello ]
[ "$(curl -s -o /dev/null -w '%{http_code}' -u bench:bench-secret -d grant_type=client_credentials \
  "http://127.0.0.1:$GP/oauth2/token")" = 200 ]
if [ -z "${TOKENGATE_BIN:-}" ]; then
  FROM="commit $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- src || echo '+dirty')"
else
  FROM="TOKENGATE_BIN (commit not known here)"
fi
echo "binary: $BIN (sha256 $(sha256sum "$BIN" | cut -c1-16)), $FROM"
echo "nproc: $(nproc); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
neighbour() {
  wrk -t1 -c2 -d"$NEIGHBOUR" --timeout 30s --latency -s "$ROOT/loadtest/wrk/report.lua" "http://127.0.0.1:$GP/hello" \
    | tee "$DIR/hello-$1.txt"
}
wrk -t1 -c2 -d1s "http://127.0.0.1:$GP/hello" >/dev/null
echo "=== baseline: /hello, no flood"
neighbour none
for mode in distinct same; do
  echo "=== flood $mode: /hello while POST /oauth2/token is flooded"
  MODE=$mode wrk -t1 -c$CONNS -d"$FLOOD" --timeout 10s -s "$ROOT/loadtest/wrk/flood.lua" \
    "http://127.0.0.1:$GP/oauth2/token" >"$DIR/flood-$mode.txt" 2>&1 &
  FP=$!
  sleep 3
  neighbour "$mode"
  wait "$FP"
  echo "--- flood $mode (wrk -t1 -c$CONNS -d$FLOOD --timeout 10s):"
  cat "$DIR/flood-$mode.txt"
  # Let the queued checks drain and the lockouts of this mode not reach the next.
  sleep 3
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "=== summary"
printf 'flood\thello_p50_us\thello_p99_us\thello_rps\tflood_rps\tflood_401\tflood_429\tflood_503\tflood_other\n'
for m in none distinct same; do
  H=$(grep WRK_RESULT "$DIR/hello-$m.txt")
  F=$(grep WRK_FLOOD "$DIR/flood-$m.txt" 2>/dev/null || echo "rps=- s401=- s429=- s503=- other=-")
  v() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"; }
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$m" "$(v "$H" p50_us)" "$(v "$H" p99_us)" "$(v "$H" rps)" \
    "$(v "$F" rps)" "$(v "$F" s401)" "$(v "$F" s429)" "$(v "$F" s503)" "$(v "$F" other)"
done
