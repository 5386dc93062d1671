#!/usr/bin/env bash
# tokengate vs nginx: bounded, loopback-only proxy benchmark. Method and results: loadtest/README.md.
#
# Placement (2-core box, see the README):
#   CPU0: origin (nginx, 1 worker, `return 200 "ok\n"`) + the load generator (wrk / hey / oha)
#   CPU1: the server under test, one worker: tokengate `[server] threads = 1`, nginx `worker_processes 1`
# Scenarios: <server>_proxy (GET / proxied to the origin) and <server>_local (GET /local answered by the
# server itself: tokengate direct-response route, nginx `return 200`).
# --bare adds a third server, a bare Pingora proxy built from this crate (examples/bare_proxy.rs),
# so one run shows tokengate, what Pingora alone costs, and nginx.
#
# Every load is bounded (-d / -z), every socket is on 127.0.0.1, every port is picked free at start, and
# every process started here is stopped on exit.
#
# Usage: loadtest/run.sh [options]      (loadtest/run.sh --help)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ORIG_ARGS="$*"
ROOT=$(cd "$HERE/.." && pwd)

PASSES=3
DURATION=8s
WARMUP=1s
CONNS=50
MODES="proxy local"
FIXED=0
FIXED_DURATION=10s
FIXED_PCT=50
FIXED_RPS=""
BIN=""
OUT=""
KEEP=0
INSTALL=1
VARIANTS=()
PRELOADS=()
OTHERS=()
BARE=0
BARE_BIN=""

usage() {
  cat <<EOF
Usage: $0 [options]
  --passes N          interleaved passes per scenario (default $PASSES)
  --duration D        wrk duration per run (default $DURATION; a ${WARMUP} warm-up precedes each run)
  --conns N           wrk connections (default $CONNS)
  --modes "M..."      any of: proxy local (default "$MODES")
  --bin PATH          tokengate binary (default: a private copy of target/release/tokengate,
                      or \$TOKENGATE_BIN). It is copied before use, so a rebuild cannot swap it mid-run.
  --variant NAME=TOML extra tokengate instance with these [server] lines (';' separates lines), e.g.
                      --variant 'nows=work_stealing = false'
                      --variant 'pool16=upstream_keepalive_pool_size = 16'   (repeatable)
  --other NAME=BIN     extra tokengate instance run from another binary (before/after a change in the
                      same run), e.g. --other base=/tmp/tokengate-main (repeatable)
  --bare              also run the bare Pingora proxy (examples/bare_proxy.rs: mimalloc, one worker,
                      no work stealing, one upstream, no tokengate hooks) as server
                      "bare"; built with cargo build --release --example bare_proxy unless --bare-bin
  --bare-bin PATH     the bare proxy binary to use (implies --bare)
  --preload NAME=LIB[:TOML]
                      extra tokengate instance run with LD_PRELOAD=LIB (allocator A/B without a rebuild),
                      optionally with [server] lines too, e.g. (repeatable)
                      --preload jemalloc=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
                      --preload 'mi-nows=/usr/lib/x86_64-linux-gnu/libmimalloc.so.2:work_stealing = false'
  --fixed-rate        also run a fixed-rate latency test (oha if installed, else hey) at
                      --fixed-pct % of nginx's measured max req/s in the same mode
  --fixed-pct N       default $FIXED_PCT
  --fixed-rps N       fixed rate in req/s instead of --fixed-pct (e.g. what the generator can hold)
  --fixed-duration D  default $FIXED_DURATION
  --out DIR           keep raw results here (default: a temp dir, printed at the end)
  --keep              keep the temp dir with configs and logs
  --no-install        do not apt-get install nginx / wrk / hey when missing
EOF
}

while [ $# -gt 0 ]; do
  case "$1" in
    --passes) PASSES=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --conns) CONNS=$2; shift 2 ;;
    --modes) MODES=$2; shift 2 ;;
    --bin) BIN=$2; shift 2 ;;
    --variant) VARIANTS+=("$2"); shift 2 ;;
    --preload) PRELOADS+=("$2"); shift 2 ;;
    --other) OTHERS+=("$2"); shift 2 ;;
    --bare) BARE=1; shift ;;
    --bare-bin) BARE=1; BARE_BIN=$2; shift 2 ;;
    --fixed-rate) FIXED=1; shift ;;
    --fixed-pct) FIXED_PCT=$2; shift 2 ;;
    --fixed-rps) FIXED_RPS=$2; FIXED=1; shift 2 ;;
    --fixed-duration) FIXED_DURATION=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --no-install) INSTALL=0; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
  esac
done

log() { printf '[run.sh %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------------------------------------- tools
apt_install() {
  [ "$INSTALL" = 1 ] || die "missing $*; install with: apt-get install -y $*"
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || die "missing $*; run as root or: sudo apt-get install -y $*"
    sudo=sudo
  fi
  log "installing $* (Debian packages)"
  # Keep the packaged nginx service from starting on :80 during install.
  local rcd=/usr/sbin/policy-rc.d made_rcd=0
  if [ ! -e "$rcd" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$rcd" >/dev/null && $sudo chmod +x "$rcd" && made_rcd=1
  fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" >&2 ||
    { $sudo apt-get update >&2 && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" >&2; }
  if [ "$made_rcd" = 1 ]; then $sudo rm -f "$rcd"; fi
}

need=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v wrk >/dev/null || need+=(wrk)
if [ "$FIXED" = 1 ] && ! command -v oha >/dev/null && ! command -v hey >/dev/null; then need+=(hey); fi
if [ ${#need[@]} -gt 0 ]; then apt_install "${need[@]}"; fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
for t in taskset python3 curl; do command -v "$t" >/dev/null || die "missing $t"; done
CLK_TCK=$(getconf CLK_TCK)

# ---------------------------------------------------------------------------------------------- state
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tokengate-loadtest.XXXXXX")
[ -n "$OUT" ] || OUT=$WORK/results
mkdir -p "$OUT"
RESULTS=$OUT/runs.tsv
FIXED_RESULTS=$OUT/fixed.tsv
PIDS=()

cleanup() {
  local rc=$? pid
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ "$KEEP" = 1 ]; then log "kept $WORK"; else
    case "$OUT" in "$WORK"/*) cp -r "$OUT" "${WORK}.results" 2>/dev/null && log "raw results: ${WORK}.results" ;; esac
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# N distinct free loopback ports (all sockets held open until every port is chosen).
free_ports() {
  python3 -c '
import socket, sys
ss = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); ss.append(s)
print(" ".join(str(s.getsockname()[1]) for s in ss))' "$1"
}

wait_port() { # port [what]
  local i
  for i in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  die "${2:-server} did not listen on 127.0.0.1:$1 (i=$i)"
}

# "utime stime" in clock ticks, summed over all threads of the process; comm is stripped first.
cpu_ticks() {
  local s f
  s=$(<"/proc/$1/stat")
  s=${s##*) }
  read -ra f <<<"$s"
  echo "${f[11]} ${f[12]}"
}

# ---------------------------------------------------------------------------------------------- nginx
nginx_conf() { # dir cpumask port http-body
  mkdir -p "$1/tmp"
  cat >"$1/nginx.conf" <<EOF
worker_processes 1;
worker_cpu_affinity $2;
daemon off;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    client_body_temp_path $1/tmp/body;
    proxy_temp_path $1/tmp/proxy;
    fastcgi_temp_path $1/tmp/fastcgi;
    uwsgi_temp_path $1/tmp/uwsgi;
    scgi_temp_path $1/tmp/scgi;
$4
}
EOF
}

start_nginx() { # name cpu cpumask port http-body -> sets NG_MASTER / NG_WORKER
  local d=$WORK/$1 i
  nginx_conf "$d" "$3" "$4" "$5"
  "$NGINX" -t -q -p "$d" -c "$d/nginx.conf" 2>"$d/check.log" || { cat "$d/check.log" >&2; die "nginx config $1"; }
  taskset -c "$2" "$NGINX" -p "$d" -c "$d/nginx.conf" >"$d/stdout.log" 2>&1 &
  NG_MASTER=$!
  PIDS+=("$NG_MASTER")
  wait_port "$4" "$1"
  NG_WORKER=""
  for i in $(seq 1 50); do
    NG_WORKER=$(pgrep -P "$NG_MASTER" | head -n1 || true)
    [ -n "$NG_WORKER" ] && break
    sleep 0.1
  done
  [ -n "$NG_WORKER" ] || die "no nginx worker for $1 (i=$i)"
}

# ---------------------------------------------------------------------------------------------- tokengate
start_tokengate() { # name port admin_port extra-server-toml [LD_PRELOAD] [binary] -> sets TG_PID
  local d=$WORK/$1 bin=${6:-$TG_BIN}
  mkdir -p "$d"
  cat >"$d/tokengate.toml" <<EOF
[server]
threads = 1
pid_file = "$d/tokengate.pid"
upgrade_sock = "$d/upgrade.sock"
reload_poll_interval = "0s"
$4

[admin]
listen = "127.0.0.1:$3"

[access_log]
enabled = false

[[listeners]]
address = "127.0.0.1:$2"

[upstreams.origin]
targets = ["127.0.0.1:$ORIGIN_PORT"]

[[routes]]
name = "local"
match = { path_exact = "/local" }
respond = { status = 200, headers = { "content-type" = "text/plain" }, body = "ok\n" }

[[routes]]
name = "proxy"
match = { path_prefix = "/" }
upstream = "origin"
EOF
  "$bin" check "$d/tokengate.toml" >"$d/check.log" 2>&1 || { cat "$d/check.log" >&2; die "tokengate config $1"; }
  local pre=()
  if [ -n "${5:-}" ]; then pre=("LD_PRELOAD=$5"); fi
  taskset -c 1 env RUST_LOG=warn "${pre[@]}" "$bin" run -c "$d/tokengate.toml" >"$d/tokengate.log" 2>&1 &
  TG_PID=$!
  PIDS+=("$TG_PID")
  wait_port "$2" "$1"
}

# ---------------------------------------------------------------------------------------------- bare Pingora
start_bare() { # name port binary -> sets TG_PID
  local d=$WORK/$1
  mkdir -p "$d"
  taskset -c 1 env RUST_LOG=warn TMPDIR="$d" "$3" --listen "127.0.0.1:$2" --upstream "127.0.0.1:$ORIGIN_PORT" \
    --threads 1 >"$d/bare.log" 2>&1 &
  TG_PID=$!
  PIDS+=("$TG_PID")
  wait_port "$2" "$1"
}

# ---------------------------------------------------------------------------------------------- setup
read -r ORIGIN_PORT NGX_PORT TG_PORT TG_ADMIN <<<"$(free_ports 4)"

if [ -z "$BIN" ]; then BIN=${TOKENGATE_BIN:-$ROOT/target/release/tokengate}; fi
[ -x "$BIN" ] || die "no tokengate binary at $BIN (cargo build --release, or --bin PATH)"
mkdir -p "$WORK/bin"
TG_BIN=$WORK/bin/tokengate
cp "$BIN" "$TG_BIN"
if [ "$BARE" = 1 ]; then
  if [ -z "$BARE_BIN" ]; then
    log "building the bare Pingora proxy: cargo build --release --example bare_proxy"
    (cd "$ROOT" && cargo build --release --example bare_proxy >&2) || die "cargo build --release --example bare_proxy"
    BARE_BIN=$ROOT/target/release/examples/bare_proxy
  fi
  [ -x "$BARE_BIN" ] || die "no bare proxy binary at $BARE_BIN"
  cp "$BARE_BIN" "$WORK/bin/bare_proxy"
fi

log "origin :$ORIGIN_PORT  nginx :$NGX_PORT  tokengate :$TG_PORT (admin :$TG_ADMIN)  work dir $WORK"
start_nginx origin 0 01 "$ORIGIN_PORT" "    server { listen 127.0.0.1:$ORIGIN_PORT; location / { return 200 \"ok\\n\"; } }"
ORIGIN_WORKER=$NG_WORKER

start_nginx nginx 1 10 "$NGX_PORT" "    upstream origin { server 127.0.0.1:$ORIGIN_PORT; keepalive 64; keepalive_requests 1000000; keepalive_timeout 75s; }
    server {
        listen 127.0.0.1:$NGX_PORT;
        location = /local { return 200 \"ok\\n\"; }
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }
    }"

# Servers: name|port|pid-to-measure
SERVERS=("nginx|$NGX_PORT|$NG_WORKER")
start_tokengate tokengate "$TG_PORT" "$TG_ADMIN" ""
SERVERS+=("tokengate|$TG_PORT|$TG_PID")
if [ "$BARE" = 1 ]; then
  read -r vp <<<"$(free_ports 1)"
  start_bare bare "$vp" "$WORK/bin/bare_proxy"
  SERVERS+=("bare|$vp|$TG_PID")
  log "bare Pingora proxy :$vp  $BARE_BIN sha256=$(sha256sum "$BARE_BIN" | cut -c1-12)"
fi
for v in "${VARIANTS[@]}"; do
  vname=${v%%=*}
  vtoml=${v#*=}
  if [ -z "$vname" ] || [ "$vname" = "$v" ]; then die "--variant wants NAME=TOML, got: $v"; fi
  read -r vp va <<<"$(free_ports 2)"
  start_tokengate "tokengate-$vname" "$vp" "$va" "${vtoml//;/$'\n'}"
  SERVERS+=("tokengate-$vname|$vp|$TG_PID")
  log "variant tokengate-$vname :$vp  [server] ${vtoml}"
done
for v in "${OTHERS[@]}"; do
  vname=${v%%=*}
  vbin=${v#*=}
  if [ -z "$vname" ] || [ "$vname" = "$v" ] || [ ! -x "$vbin" ]; then die "--other wants NAME=/path/to/tokengate (executable), got: $v"; fi
  cp "$vbin" "$WORK/bin/tokengate-$vname"
  read -r vp va <<<"$(free_ports 2)"
  start_tokengate "tokengate-$vname" "$vp" "$va" "" "" "$WORK/bin/tokengate-$vname"
  SERVERS+=("tokengate-$vname|$vp|$TG_PID")
  log "other tokengate-$vname :$vp  $vbin sha256=$(sha256sum "$vbin" | cut -c1-12)"
done
for v in "${PRELOADS[@]}"; do
  vname=${v%%=*}
  vlib=${v#*=}
  vtoml=""
  case "$vlib" in *:*) vtoml=${vlib#*:}; vlib=${vlib%%:*} ;; esac
  if [ -z "$vname" ] || [ "$vname" = "$v" ] || [ ! -f "$vlib" ]; then die "--preload wants NAME=/path/lib.so[:TOML] (existing), got: $v"; fi
  read -r vp va <<<"$(free_ports 2)"
  start_tokengate "tokengate-$vname" "$vp" "$va" "${vtoml//;/$'\n'}" "$vlib"
  grep -qF "$(basename "$vlib")" "/proc/$TG_PID/maps" || die "$vlib is not mapped into tokengate-$vname"
  SERVERS+=("tokengate-$vname|$vp|$TG_PID")
  log "variant tokengate-$vname :$vp  LD_PRELOAD=$vlib  [server] $vtoml"
done

# Sanity: every server answers 200 "ok" on both paths (and through the proxy).
for s in "${SERVERS[@]}"; do
  IFS='|' read -r name port _ <<<"$s"
  for path in / /local; do
    body=$(curl -fsS --max-time 5 "http://127.0.0.1:$port$path") || die "$name $path failed"
    [ "$body" = "ok" ] || die "$name $path answered '$body'"
  done
done

{
  echo "date_utc: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "host: $(uname -srm), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
  echo "load1_before: $(cut -d' ' -f1 /proc/loadavg)"
  echo "nginx: $("$NGINX" -v 2>&1 | sed 's/.*version: //')"
  echo "wrk: $(wrk -v 2>&1 | head -n1 | awk '{print $1, $2}')"
  echo "tokengate: $("$TG_BIN" --version 2>&1 | head -n1) sha256=$(sha256sum "$TG_BIN" | cut -c1-12)"
  if [ "$BARE" = 1 ]; then echo "bare: examples/bare_proxy.rs sha256=$(sha256sum "$WORK/bin/bare_proxy" | cut -c1-12)"; fi
  echo "load: taskset -c 0 wrk -t1 -c$CONNS -d$DURATION --latency (after -d$WARMUP warm-up), $PASSES passes, interleaved"
  echo "command: $0 $ORIG_ARGS"
} | tee "$OUT/env.txt" >&2

printf 'pass\tserver\tmode\tload1\trequests\tduration_s\trps\tcpu_s\treq_per_cpu_s\tcpu_util\tp50_us\tp99_us\tp999_us\tnon2xx\tsock_err\torigin_cpu_s\ttw_delta\tuser_us_per_req\tsys_us_per_req\n' >"$RESULTS"

tw_count() { ss -Htan state time-wait "( dport = :$ORIGIN_PORT )" 2>/dev/null | wc -l; }

run_one() { # pass name port pid mode
  local pass=$1 name=$2 port=$3 pid=$4 mode=$5 url out line u0 s0 u1 s1 ou0 os0 ou1 os1 tw0 tw1 load1
  url="http://127.0.0.1:$port/"
  [ "$mode" = local ] && url="http://127.0.0.1:$port/local"
  taskset -c 0 wrk -t1 -c"$CONNS" -d"$WARMUP" "$url" >/dev/null
  load1=$(cut -d' ' -f1 /proc/loadavg)
  tw0=$(tw_count)
  read -r u0 s0 <<<"$(cpu_ticks "$pid")"
  read -r ou0 os0 <<<"$(cpu_ticks "$ORIGIN_WORKER")"
  out=$(taskset -c 0 wrk -t1 -c"$CONNS" -d"$DURATION" --latency -s "$HERE/wrk/report.lua" "$url")
  read -r u1 s1 <<<"$(cpu_ticks "$pid")"
  read -r ou1 os1 <<<"$(cpu_ticks "$ORIGIN_WORKER")"
  tw1=$(tw_count)
  printf '%s\n' "$out" >"$OUT/wrk_p${pass}_${name}_${mode}.txt"
  line=$(grep '^WRK_RESULT' <<<"$out") || die "no WRK_RESULT from wrk for $name/$mode"
  python3 - "$pass" "$name" "$mode" "$load1" "$((u1 - u0))" "$((s1 - s0))" "$((ou1 + os1 - ou0 - os0))" "$CLK_TCK" "$((tw1 - tw0))" "$line" >>"$RESULTS" <<'EOF'
import sys
p, name, mode, load1, du, ds, do, tck, tw, line = sys.argv[1:]
dt = int(du) + int(ds)
kv = dict(x.split("=", 1) for x in line.split()[1:])
req = int(kv["requests"]); dur = int(kv["duration_us"]) / 1e6
cpu = int(dt) / int(tck); ocpu = int(do) / int(tck)
err = sum(int(kv[k]) for k in ("err_connect", "err_read", "err_write", "err_timeout"))
print("\t".join(map(str, [p, name, mode, load1, req, f"{dur:.3f}", f"{req/dur:.0f}", f"{cpu:.2f}",
      f"{req/cpu:.0f}" if cpu > 0 else "nan", f"{cpu/dur:.2f}", kv["p50_us"], kv["p99_us"], kv["p999_us"],
      kv["non2xx"], err, f"{ocpu:.2f}", tw,
      f"{int(du) / int(tck) / req * 1e6:.1f}", f"{int(ds) / int(tck) / req * 1e6:.1f}"])))
EOF
  tail -n1 "$RESULTS" | awk -F'\t' '{printf "  pass %s %-24s %-5s load1 %-5s %7s req/s  %7s req/cpu-s (user %s + sys %s us/req)  util %s  p50 %sus p99 %sus  non2xx %s err %s tw+%s\n",
    $1, $2, $3, $4, $7, $9, $18, $19, $10, $11, $12, $14, $15, $17}' >&2
}

# ---------------------------------------------------------------------------------------------- max-throughput runs
log "max-throughput runs: ${#SERVERS[@]} servers x [$MODES] x $PASSES passes"
for pass in $(seq 1 "$PASSES"); do
  order=("${SERVERS[@]}")
  if [ $((pass % 2)) = 0 ]; then # reverse on even passes: A B, B A, A B ...
    order=()
    for ((i = ${#SERVERS[@]} - 1; i >= 0; i--)); do order+=("${SERVERS[$i]}"); done
  fi
  for mode in $MODES; do
    for s in "${order[@]}"; do
      IFS='|' read -r name port pid <<<"$s"
      run_one "$pass" "$name" "$port" "$pid" "$mode"
    done
  done
done

# ---------------------------------------------------------------------------------------------- fixed-rate runs
if [ "$FIXED" = 1 ]; then
  if command -v oha >/dev/null; then GEN=oha; elif command -v hey >/dev/null; then GEN=hey; else GEN=""; fi
  if [ -z "$GEN" ]; then
    log "fixed-rate skipped: neither oha nor hey found. Get one: apt-get install -y hey   or   cargo install oha (slow build)"
  else
    if [ "$GEN" = hey ]; then log "fixed-rate with hey (oha not found; for latency-corrected percentiles: cargo install oha)"; fi
    printf 'server\tmode\tgen\ttarget_rps\tachieved_rps\tp50_us\tp99_us\tp999_us\tnon200\n' >"$FIXED_RESULTS"
    for mode in $MODES; do
      target=$(python3 -c '
import csv, statistics, sys
rs = [float(r["rps"]) for r in csv.DictReader(open(sys.argv[1]), delimiter="\t") if r["server"] == "nginx" and r["mode"] == sys.argv[2]]
print(int(statistics.median(rs) * float(sys.argv[3]) / 100))' "$RESULTS" "$mode" "$FIXED_PCT")
      if [ -n "$FIXED_RPS" ]; then target=$FIXED_RPS; fi
      for s in "${SERVERS[@]}"; do
        IFS='|' read -r name port _ <<<"$s"
        url="http://127.0.0.1:$port/"
        [ "$mode" = local ] && url="http://127.0.0.1:$port/local"
        taskset -c 0 wrk -t1 -c"$CONNS" -d"$WARMUP" "$url" >/dev/null
        ffile=$OUT/fixed_${GEN}_${name}_${mode}.txt
        if [ "$GEN" = oha ]; then
          taskset -c 0 oha -z "$FIXED_DURATION" -c "$CONNS" -q "$target" --latency-correction --no-tui "$url" >"$ffile" 2>&1 || true
        else
          per=$(python3 -c "print(round($target / $CONNS, 2))")
          taskset -c 0 hey -z "$FIXED_DURATION" -c "$CONNS" -q "$per" -cpus 1 "$url" >"$ffile" 2>&1 || true
        fi
        python3 - "$name" "$mode" "$GEN" "$target" "$ffile" >>"$FIXED_RESULTS" <<'EOF'
import re, sys
name, mode, gen, target, f = sys.argv[1:]
t = open(f).read()
def pct(p):
    m = re.search(r"^\s*" + p + r"(?:\.?0*)% in ([0-9.]+) secs", t, re.M)
    return str(round(float(m.group(1)) * 1e6)) if m else "nan"
m = re.search(r"Requests/sec:\s*([0-9.]+)", t)
rps = m.group(1) if m else "nan"
codes = re.findall(r"\[(\d{3})\]\s+(\d+) responses", t)
non200 = sum(int(n) for c, n in codes if c != "200")
print("\t".join([name, mode, gen, target, rps, pct("50"), pct("99"), pct(r"99\.9"), str(non200)]))
EOF
        tail -n1 "$FIXED_RESULTS" | awk -F'\t' '{printf "  fixed %-24s %-5s %s target %s achieved %s req/s  p50 %sus p99 %sus p99.9 %sus non200 %s\n",
          $1, $2, $3, $4, $5, $6, $7, $8, $9}' >&2
      done
    done
  fi
else
  command -v oha >/dev/null || command -v hey >/dev/null ||
    log "tip: --fixed-rate needs oha (cargo install oha) or hey (apt-get install -y hey)"
fi

# ---------------------------------------------------------------------------------------------- summary
python3 - "$RESULTS" "$FIXED_RESULTS" <<'EOF' | tee "$OUT/summary.md"
import csv, os, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
def f(x):
    try: return float(x)
    except ValueError: return float("nan")
groups = {}
for r in rows:
    groups.setdefault((r["server"], r["mode"]), []).append(r)
def k(v): return f"{v/1000:.1f}k"
def ms(us): return "n/a" if us != us else f"{us/1000:.2f}ms"
med = {}
print("\n| scenario | n | wall req/s median (min-max) | req per server CPU-s median (min-max) | user + sys us/req | p50 / p99 (median of passes) | server CPU util | non2xx+err |")
print("|---|---:|---|---|---|---|---:|---:|")
order = sorted(groups, key=lambda g: (g[1] != "proxy", g[0] != "nginx", g[0] != "bare", g[0]))
lowutil = False
for g in order:
    rs = groups[g]
    rps = [f(r["rps"]) for r in rs]; rpc = [f(r["req_per_cpu_s"]) for r in rs]
    p50 = statistics.median(f(r["p50_us"]) for r in rs); p99 = statistics.median(f(r["p99_us"]) for r in rs)
    util = statistics.median(f(r["cpu_util"]) for r in rs)
    bad = sum(int(r["non2xx"]) + int(r["sock_err"]) for r in rs)
    us = statistics.median(f(r["user_us_per_req"]) for r in rs); sy = statistics.median(f(r["sys_us_per_req"]) for r in rs)
    med[g] = (statistics.median(rps), statistics.median(rpc), p99)
    low = util < 0.9
    lowutil |= low
    print(f"| {g[0]}_{g[1]} | {len(rs)} | {k(med[g][0])} ({k(min(rps))}-{k(max(rps))}) | {k(med[g][1])} ({k(min(rpc))}-{k(max(rpc))}) "
          f"| {us:.1f} + {sy:.1f} | {ms(p50)} / {ms(p99)} | {util:.2f}{' *' if low else ''} | {bad} |")
if lowutil:
    print("\n\\* server CPU util < 0.9: the server was not saturated (the load generator on CPU0 was the limit, or")
    print("  CPU1 was shared). Its req/s is a floor, and its req per CPU-s is flattered by larger batches per wake-up.")
print("\n| ratio vs nginx (same mode) | req/s | req per CPU-s | per-request CPU (us) | p99 |")
print("|---|---:|---:|---:|---:|")
for g in order:
    if g[0] == "nginx" or ("nginx", g[1]) not in med: continue
    n = med[("nginx", g[1])]; t = med[g]
    print(f"| {g[0]}/nginx {g[1]} | {t[0]/n[0]:.2f} | {t[1]/n[1]:.2f} | {1e6/t[1]:.1f} vs {1e6/n[1]:.1f} | {t[2]/n[2]:.2f}x |")
if any(g[0] == "bare" for g in med):
    # What tokengate's own work costs: every tokengate instance against the bare Pingora proxy.
    print("\n| ratio vs bare Pingora (same mode) | req/s | req per CPU-s | per-request CPU (us) | p99 |")
    print("|---|---:|---:|---:|---:|")
    for g in order:
        if not g[0].startswith("tokengate") or ("bare", g[1]) not in med: continue
        n = med[("bare", g[1])]; t = med[g]
        print(f"| {g[0]}/bare {g[1]} | {t[0]/n[0]:.2f} | {t[1]/n[1]:.2f} | {1e6/t[1]:.1f} vs {1e6/n[1]:.1f} | {t[2]/n[2]:.2f}x |")
fx = sys.argv[2]
if os.path.exists(fx):
    fr = list(csv.DictReader(open(fx), delimiter="\t"))
    if fr:
        print("\n| fixed rate | generator | target req/s | achieved req/s | p50 | p99 | p99.9 | non200 |")
        print("|---|---|---:|---:|---:|---:|---:|---:|")
        short = False
        for r in fr:
            a, t = f(r["achieved_rps"]), f(r["target_rps"])
            flag = " (!)" if a < 0.95 * t else ""
            short |= bool(flag)
            print(f"| {r['server']}_{r['mode']} | {r['gen']} | {r['target_rps']} | {a:.0f}{flag} | {ms(f(r['p50_us']))} | {ms(f(r['p99_us']))} | {ms(f(r['p999_us']))} | {r['non200']} |")
        if short:
            print("\n(!) achieved < 95% of the target: the generator (or the server) could not hold the rate, so that row is")
            print("    closer to a closed-loop result. Lower the rate with --fixed-pct / --fixed-rps, or use oha / k6 on other cores.")
EOF
if [ "$FIXED" = 1 ]; then log "raw: $RESULTS $FIXED_RESULTS"; else log "raw: $RESULTS"; fi
