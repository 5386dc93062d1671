#!/usr/bin/env bash
# Routing at scale, over loopback, with the layout of run.sh (origin + wrk on CPU0, the gateway's
# one worker on CPU1):
#   1. throughput: requests per server CPU-second for the first and the last of N prefix routes
#      (default 10,000, each proxied to the origin with its own `headers` policy) and for a config
#      with one such route; interleaved passes (A B C, C B A, ...);
#   2. reload under load: wrk on the last route while the config is changed and reloaded R times
#      (default 100) through `POST /admin/reload`; every request must succeed. Reports the time
#      each reload took (read + parse + compile + swap, as the admin call saw it), wrk's errors
#      and latency against a pass without reloads, and the gateway's RSS before and after.
#
# Usage: loadtest/routes.sh [--bin target/release/tokengate] [--routes N] [--passes P]
#                           [--duration 8] [--reloads R] [--out DIR]
# Loopback only; every process started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release/tokengate ROUTES=10000 PASSES=3 DUR=8 RELOADS=100 OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) BIN=$2; shift 2 ;;
    --routes) ROUTES=$2; shift 2 ;;
    --passes) PASSES=$2; shift 2 ;;
    --duration) DUR=$2; shift 2 ;;
    --reloads) RELOADS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    *) sed -n 2,16p "$0"; exit 2 ;;
  esac
done
for c in nginx wrk taskset curl python3; do
  command -v "$c" >/dev/null || [ -x "/usr/sbin/$c" ] || { echo "missing $c (apt-get install -y nginx wrk)" >&2; exit 1; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
DIR=$(mktemp -d)
OUT=${OUT:-loadtest/results/routes-$(date -u +%Y%m%dT%H%M)}
mkdir -p "$OUT"
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$DIR"' EXIT
source loadtest/lib.sh
cp "$BIN" "$DIR/tokengate"
wait_port() { for _ in $(seq 1 600); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "nothing on :$1" >&2; exit 1; }
ticks() { local s f; s=$(<"/proc/$1/stat"); s=${s##*) }; read -ra f <<<"$s"; echo $((f[11] + f[12])); }
HZ=$(getconf CLK_TCK)

ORIGIN=$(free)
mkdir -p "$DIR/ng/tmp"
cat >"$DIR/ng/nginx.conf" <<EOF
worker_processes 1;
worker_cpu_affinity 01;
daemon off;
pid $DIR/ng/nginx.pid;
error_log $DIR/ng/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $DIR/ng/tmp/body; proxy_temp_path $DIR/ng/tmp/proxy;
  fastcgi_temp_path $DIR/ng/tmp/f; uwsgi_temp_path $DIR/ng/tmp/u; scgi_temp_path $DIR/ng/tmp/s;
  server { listen 127.0.0.1:$ORIGIN; location / { return 200 "ok\n"; } }
}
EOF
taskset -c 0 "$NGINX" -p "$DIR/ng" -c "$DIR/ng/nginx.conf" >"$DIR/ng/out" 2>&1 &
PIDS+=($!)
wait_port "$ORIGIN"

# config NAME ROUTES [GEN]: N prefix routes /r/0.. each with a headers policy; GEN varies the
# last route's header value so that a rewrite is a change.
config() {
  local name=$1 n=$2 gen=${3:-0}
  { common "$name" "$(cat "$DIR/$name.admin")" "$(cat "$DIR/$name.port")"
    echo "[upstreams.origin]"
    echo "targets = [\"127.0.0.1:$ORIGIN\"]"
    python3 - "$n" "$gen" <<'PY'
import sys
n, gen = int(sys.argv[1]), sys.argv[2]
for i in range(n):
    v = f"r{i}-{gen}" if i == n - 1 else f"r{i}"
    print(f'[[routes]]\nname = "r{i}"\nmatch = {{ path_prefix = "/r/{i}" }}\nupstream = "origin"')
    print(f'policies = [{{ type = "headers", request = {{ set = {{ "x-route" = "{v}" }} }} }}]')
PY
  } >"$DIR/$name.toml.new"
  mv "$DIR/$name.toml.new" "$DIR/$name.toml"
}
start() { # name routes
  free >"$DIR/$1.port"; free >"$DIR/$1.admin"
  config "$1" "$2"
  taskset -c 1 "$DIR/tokengate" run -c "$DIR/$1.toml" >"$DIR/$1.log" 2>&1 &
  PIDS+=($!)
  echo $! >"$DIR/$1.pid.run"
  wait_port "$(cat "$DIR/$1.port")"
}
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
wrk_run() { # port path seconds -> WRK_RESULT line
  taskset -c 0 wrk -t1 -c50 -d"$3"s --latency -s loadtest/wrk/report.lua "http://127.0.0.1:$1$2" | grep '^WRK_RESULT'
}
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"; }

start one 1
start many "$ROUTES"
ONE=$(cat "$DIR/one.pid.run"); MANY=$(cat "$DIR/many.pid.run")
LAST=$((ROUTES - 1))
echo "many: $ROUTES routes, RSS $(rss_kib "$MANY") KiB; one: 1 route, RSS $(rss_kib "$ONE") KiB" | tee "$OUT/summary.txt"

# 1. Throughput, interleaved.
SCEN=("one /r/0/x" "many /r/0/x" "many /r/$LAST/x")
printf 'pass\tscenario\trequests\tcpu_s\treq_per_cpu_s\tnon2xx\terrors\n' >"$OUT/runs.tsv"
for p in $(seq 1 "$PASSES"); do
  order=(0 1 2); [ $((p % 2)) = 0 ] && order=(2 1 0)
  for k in "${order[@]}"; do
    read -r name path <<<"${SCEN[$k]}"
    pid=$(cat "$DIR/$name.pid.run"); port=$(cat "$DIR/$name.port")
    wrk_run "$port" "$path" 1 >/dev/null
    t0=$(ticks "$pid"); r=$(wrk_run "$port" "$path" "$DUR"); t1=$(ticks "$pid")
    req=$(field "$r" requests)
    cpu=$(python3 -c "print(($t1-$t0)/$HZ)")
    errs=$(( $(field "$r" err_connect) + $(field "$r" err_read) + $(field "$r" err_write) + $(field "$r" err_timeout) ))
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$p" "$name:$path" "$req" "$cpu" \
      "$(python3 -c "print(round($req/$cpu) if $cpu else 0)")" "$(field "$r" non2xx)" "$errs" >>"$OUT/runs.tsv"
  done
done
python3 - "$OUT/runs.tsv" <<'PY' | tee -a "$OUT/summary.txt"
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
med = {}
for s in dict.fromkeys(r["scenario"] for r in rows):
    v = [int(r["req_per_cpu_s"]) for r in rows if r["scenario"] == s]
    med[s] = statistics.median(v)
    print(f"{s:24} req/CPU-s median {med[s]:>9.0f}  runs {v}  non2xx {sum(int(r['non2xx']) for r in rows if r['scenario']==s)}  errors {sum(int(r['errors']) for r in rows if r['scenario']==s)}")
base = med[next(iter(med))]
for s, m in med.items():
    print(f"{s:24} / one-route: {m / base:.3f}")
PY

# 2. Reload under load: a quiet pass, then the same pass with reloads (--reloads 0: skipped).
[ "$RELOADS" -gt 0 ] || exit 0
port=$(cat "$DIR/many.port"); admin=$(cat "$DIR/many.admin")
quiet=$(wrk_run "$port" "/r/$LAST/x" 10)
echo "without reloads: $quiet" | tee -a "$OUT/summary.txt"
rss0=$(rss_kib "$MANY")
# wrk itself in the background (taskset execs it), so that SIGINT reaches it.
taskset -c 0 wrk -t1 -c50 -d600s --latency -s loadtest/wrk/report.lua "http://127.0.0.1:$port/r/$LAST/x" >"$DIR/wrk-reload" &
WRK=$!
PIDS+=($WRK)
sleep 1
: >"$OUT/reloads.tsv"
for g in $(seq 1 "$RELOADS"); do
  config many "$ROUTES" "$g"
  curl -s -o "$DIR/reload.json" -w '%{http_code}\t%{time_total}\n' -X POST -H 'content-type: application/json' "http://127.0.0.1:$admin/admin/reload" >>"$OUT/reloads.tsv"
  grep -q '"applied"' "$DIR/reload.json" || { echo "reload $g: $(cat "$DIR/reload.json")" >&2; exit 1; }
done
# Stop wrk with SIGINT so that it prints its summary.
kill -INT "$WRK"; wait "$WRK" || true
loaded=$(grep '^WRK_RESULT' "$DIR/wrk-reload")
rss1=$(rss_kib "$MANY")
curl -s "http://127.0.0.1:$port/r/$LAST/x" -o /dev/null -w '%{http_code}' | grep -q 200
python3 - "$OUT/reloads.tsv" "$RELOADS" <<'PY' | tee -a "$OUT/summary.txt"
import statistics, sys
t = [float(l.split("\t")[1]) * 1000 for l in open(sys.argv[1]) if l.strip()]
ok = sum(1 for l in open(sys.argv[1]) if l.startswith("200"))
t.sort()
print(f"{ok}/{sys.argv[2]} reloads applied; reload call ms: p50 {statistics.median(t):.0f}, p90 {t[int(len(t)*0.9)-1]:.0f}, max {t[-1]:.0f}")
PY
{ echo "with $RELOADS reloads: $loaded"
  echo "RSS before the reloads $rss0 KiB, after $rss1 KiB"; } | tee -a "$OUT/summary.txt"
