#!/usr/bin/env bash
# Instructions per request under callgrind: a noise-free before/after figure for a change on the
# request path (timings on this shared box move by ±10 %; instruction counts do not).
#
# Usage: loadtest/instructions.sh BIN [BIN...]     (e.g. a build of main and one of the change)
#        loadtest/instructions.sh target/release/tokengate bare:target/release/examples/bare_proxy
# A `bare:PATH` argument is the bare Pingora proxy (examples/bare_proxy.rs: `--listen`,
# `--upstream`, `/local` answered by itself), measured the same way.
# CG_KEEP=DIR keeps the data-plane thread's callgrind output as DIR/NAME-PATH.out;
# `loadtest/cg_per_request.py N LABEL=FILE ...` turns them into instructions per request by function.
# For each binary: run it under `valgrind --tool=callgrind --separate-threads=yes` (one worker, no
# access log), send WARMUP keep-alive requests (default 200), zero the counters, send N more
# (default 3000) from one client to a direct-response route and to a proxied route (a loopback
# Python origin; PATHS="/local /proxied" picks them), dump, and report instructions / N: for all
# threads (Ir_per_request) and for the data-plane worker thread alone (Ir_data_plane, the figure
# to compare: the other threads do work per unit of time, which valgrind's slowdown inflates).
# ROUTES=N puts N prefix routes `/r/0` .. `/r/N-1` ahead of those two, each proxied to the origin
# with its own `headers` policy (routing at scale: PATHS="/r/0/x /r/9999/x" for the first and
# the last of 10,000; ROUTES=1 for the one-route baseline).
# Loopback only; every process started here is stopped on exit.
set -euo pipefail
WARMUP=${WARMUP:-200}
N=${N:-3000}
ROUTES=${ROUTES:-0}
PATHS=${PATHS:-/local /proxied}
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

measure() { # bin path n -> "Ir_all_threads Ir_data_plane_thread" for n requests
  local bin=$1 path=$2 n=$3 port admin d cmd
  port=$(free_port); admin=$(free_port); d=$WORK/run-$RANDOM
  mkdir -p "$d"
  case "$bin" in
    bare:*) cmd=("${bin#bare:}" --listen "127.0.0.1:$port" --upstream "127.0.0.1:$ORIGIN") ;;
    *) cmd=("$bin" run -c "$d/tg.toml") ;;
  esac
  python3 - "$ROUTES" >"$d/routes.toml" <<'PY'
import sys
for i in range(int(sys.argv[1])):
    print(f'[[routes]]\nname = "r{i}"\nmatch = {{ path_prefix = "/r/{i}" }}\nupstream = "origin"')
    print(f'policies = [{{ type = "headers", request = {{ set = {{ "x-route" = "r{i}" }} }} }}]')
PY
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
$(cat "$d/routes.toml")
[[routes]]
name = "local"
match = { path_exact = "/local" }
respond = { status = 200, headers = { "content-type" = "text/plain" }, body = "ok\n" }
[[routes]]
name = "proxy"
upstream = "origin"
TOML
  valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$d/cg.out" "${cmd[@]}" >"$d/log" 2>&1 &
  local vp=$!
  PIDS+=("$vp")
  # Start-up under valgrind takes a minute or more on a busy box.
  local up=0
  for _ in $(seq 1 3000); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && { up=1; break; }; sleep 0.1; done
  [ "$up" = 1 ] || { echo "$bin did not listen on :$port within 300 s (log: $d/log)" >&2; exit 1; }
  # Warm-up first (connections, the upstream pool, lazily built state such as the request id
  # prefix, whose seeding cost varies from run to run), then zero the counters, count N
  # requests and dump.
  client "$port" "$path" "$WARMUP"
  callgrind_control -z "$vp" >/dev/null 2>&1
  client "$port" "$path" "$n"
  callgrind_control -d "$vp" >/dev/null 2>&1
  kill -INT "$vp"; wait "$vp" || true
  # One file per thread. The data-plane worker is the thread that runs the listening service;
  # the others (Pingora's timer clock, tokengate's maintenance loop, admin) do work per unit
  # of time, not per request, and valgrind's slowdown (worse on a busy box) inflates it.
  local all=0 dp="" f t
  for f in "$d"/cg.out.1-*; do
    t=$(grep -m1 '^summary:\|^totals:' "$f" | awk '{print $2}')
    all=$((all + t))
    if grep -q 'run_endpoint' "$f"; then
      dp=$((${dp:-0} + t))
      if [ -n "${CG_KEEP:-}" ]; then
        mkdir -p "$CG_KEEP"
        cp "$f" "$CG_KEEP/$(basename "${bin#bare:}")-${path#/}.out"
      fi
    fi
  done
  echo "$all ${dp:-0}"
}

# Ir_per_request: all threads, as this script always reported. Ir_data_plane: the data-plane
# worker thread alone, the figure to compare between binaries.
printf 'binary\tpath\tIr_per_request\tIr_data_plane\n'
for bin in "$@"; do
  for path in $PATHS; do
    read -r a adp <<<"$(measure "$bin" "$path" "$N")"
    printf '%s\t%s\t%s\t%s\n' "$bin" "$path" "$((a / N))" "$((adp / N))"
  done
done
