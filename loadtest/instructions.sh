#!/usr/bin/env bash
# Instructions per request under callgrind: a noise-free before/after figure for a change on the
# request path (timings on this shared box move by ±10 %; instruction counts do not).
#
# Usage: loadtest/instructions.sh BIN [BIN...]     (e.g. a build of main and one of the change)
# For each binary: run it under `valgrind --tool=callgrind` (one worker, no access log), send N1
# then N2 keep-alive requests from one client to a direct-response route and to a proxied route
# (a loopback Python origin), and report (Ir(N2) - Ir(N1)) / (N2 - N1): the start-up cost cancels.
# Loopback only; every process started here is stopped on exit.
set -euo pipefail
N1=${N1:-2000}
N2=${N2:-6000}
[ $# -ge 1 ] || { echo "usage: $0 BIN [BIN...]" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install -y valgrind)" >&2; exit 1; }
WORK=$(mktemp -d)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

ORIGIN=$(free_port)
python3 - "$ORIGIN" <<'PY' &
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200); self.send_header("content-length", "3"); self.end_headers(); self.wfile.write(b"ok\n")
    def log_message(self, *a): pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
PIDS+=($!)

# One keep-alive client: N requests to PATH, then exit.
client() { # port path n
  python3 - "$@" <<'PY'
import http.client, sys
port, path, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
for _ in range(n):
    c.request("GET", path, headers={"host": "127.0.0.1"})
    r = c.getresponse(); r.read()
    assert r.status == 200, r.status
PY
}

measure() { # bin path n -> total Ir
  local bin=$1 path=$2 n=$3 port admin d
  port=$(free_port); admin=$(free_port); d=$WORK/run-$RANDOM
  mkdir -p "$d"
  cat >"$d/tg.toml" <<TOML
[server]
threads = 1
pid_file = "$d/tg.pid"
upgrade_sock = "$d/up.sock"
reload_poll_interval = "0s"
[admin]
listen = "127.0.0.1:$admin"
[access_log]
enabled = false
[[listeners]]
address = "127.0.0.1:$port"
[upstreams.origin]
targets = ["127.0.0.1:$ORIGIN"]
[[routes]]
name = "local"
match = { path_exact = "/local" }
respond = { status = 200, body = "ok\n" }
[[routes]]
name = "proxy"
upstream = "origin"
TOML
  valgrind --tool=callgrind --callgrind-out-file="$d/cg.out" "$bin" run -c "$d/tg.toml" >"$d/log" 2>&1 &
  local vp=$!
  for _ in $(seq 1 600); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  client "$port" "$path" "$n"
  kill -INT "$vp"; wait "$vp" || true
  grep -m1 '^summary:\|^totals:' "$d/cg.out" | awk '{print $2}'
}

printf 'binary\tpath\tIr_per_request\n'
for bin in "$@"; do
  for path in /local /proxied; do
    a=$(measure "$bin" "$path" "$N1")
    b=$(measure "$bin" "$path" "$N2")
    printf '%s\t%s\t%s\n' "$bin" "$path" "$(( (b - a) / (N2 - N1) ))"
  done
done
