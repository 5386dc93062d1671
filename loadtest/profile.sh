#!/usr/bin/env bash
# Where tokengate's per-request CPU goes: callgrind instruction counts (load-independent, user space
# only) and a perf cpu-clock profile (user + kernel). Loopback only, bounded loads, own free ports.
#
#   loadtest/profile.sh [--bin PATH] [--callgrind-only | --perf-only] [--nginx] [--keep]
#
# callgrind: tokengate runs under valgrind; after a warm-up the counters are zeroed, a bounded wrk load
#   (-c10 -d10s) runs on / (proxied) and then on /local (direct response), and each window is dumped.
#   Reported: instructions (Ir) per request, Ir by crate/library, the inclusive Ir of each tokengate
#   hook, and malloc/free/memcpy calls per request. --nginx does the same for the nginx peer proxy.
# perf: native tokengate pinned to CPU1 under `wrk -c50 -d7s`; perf record -e cpu-clock for 5 s.
#   Reported: share by DSO (kernel / binary / libc) and the top symbols.
# Requests are counted by wrk (a few in-flight requests at the window edges: < 0.2 % error).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BIN=${TOKENGATE_BIN:-$ROOT/target/release/tokengate}
DO_CG=1
DO_PERF=1
DO_NGINX=0
KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) BIN=$2; shift 2 ;;
    --callgrind-only) DO_PERF=0; shift ;;
    --perf-only) DO_CG=0; shift ;;
    --nginx) DO_NGINX=1; shift ;;
    --keep) KEEP=1; shift ;;
    -h | --help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
done

log() { printf '[profile.sh %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
for t in nginx wrk taskset python3 curl; do command -v "$t" >/dev/null || die "missing $t (see loadtest/run.sh, which installs nginx and wrk)"; done
if [ "$DO_CG" = 1 ] && ! { command -v valgrind && command -v callgrind_control; } >/dev/null; then die "missing valgrind (apt-get install -y valgrind), or use --perf-only"; fi
if [ "$DO_PERF" = 1 ]; then command -v perf >/dev/null || die "missing perf (apt-get install -y linux-perf), or use --callgrind-only"; fi
[ -x "$BIN" ] || die "no tokengate binary at $BIN"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tokengate-profile.XXXXXX")
PIDS=()
cleanup() {
  local rc=$? pid
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ "$KEEP" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

read -r OP TP AP NP <<<"$(python3 -c '
import socket
ss = [socket.socket() for _ in range(4)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])')"

wait_url() { # url
  local i
  for i in $(seq 1 300); do curl -fsS -m 1 "$1" >/dev/null 2>&1 && return 0; sleep 0.2; done
  die "$1 not answering (i=$i)"
}

nginx_conf() { # dir body
  mkdir -p "$1/tmp"
  cat >"$1/nginx.conf" <<EOF
worker_processes 1;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $1/tmp/body; proxy_temp_path $1/tmp/proxy; fastcgi_temp_path $1/tmp/fastcgi;
    uwsgi_temp_path $1/tmp/uwsgi; scgi_temp_path $1/tmp/scgi;
$2
}
EOF
}

# Origin on CPU0.
nginx_conf "$WORK/origin" "    server { listen 127.0.0.1:$OP; location / { return 200 \"ok\\n\"; } }"
taskset -c 0 nginx -p "$WORK/origin" -c "$WORK/origin/nginx.conf" -g 'daemon off;' >/dev/null 2>&1 &
PIDS+=("$!")
wait_url "http://127.0.0.1:$OP/"

cat >"$WORK/tokengate.toml" <<EOF
[server]
threads = 1
pid_file = "$WORK/tokengate.pid"
upgrade_sock = "$WORK/upgrade.sock"
reload_poll_interval = "0s"
[admin]
listen = "127.0.0.1:$AP"
[access_log]
enabled = false
[[listeners]]
address = "127.0.0.1:$TP"
[upstreams.origin]
targets = ["127.0.0.1:$OP"]
[[routes]]
name = "local"
match = { path_exact = "/local" }
respond = { status = 200, headers = { "content-type" = "text/plain" }, body = "ok\n" }
[[routes]]
name = "proxy"
match = { path_prefix = "/" }
upstream = "origin"
EOF
cp "$BIN" "$WORK/tokengate"

# -------------------------------------------------------------------------------------------- callgrind
cg_window() { # pid name url -> prints "requests" ; dumps $WORK/cg.<pid>.out.N with trigger <name>
  taskset -c 0 wrk -t1 -c10 -d2s "$3" >/dev/null
  callgrind_control -z "$1" >/dev/null
  local out
  out=$(taskset -c 0 wrk -t1 -c10 -d10s "$3")
  callgrind_control -d "$2" "$1" >/dev/null
  sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' <<<"$out"
}

cg_report() { # file requests label
  python3 - "$1" "$2" "$3" <<'EOF'
import collections, re, subprocess, sys
f, n, label = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def annotate(*a):
    return subprocess.run(["callgrind_annotate", "--auto=no", "--threshold=100", *a, f], capture_output=True, text=True, cwd="/").stdout  # cwd: source lookup changes the grouping
rows = lambda out: [(int(m.group(1).replace(",", "")), m.group(2)) for m in
                    (re.match(r"^\s*([\d,]+) \(\s*[\d.]+%\)\s+(\S.*)$", l) for l in out.splitlines()) if m]
excl = rows(annotate("--inclusive=no"))
total = next(ir for ir, name in excl if "PROGRAM TOTALS" in name)
print(f"\n== {label}: {total:,} Ir over {n:,} requests = {total / n:,.0f} Ir/request (user space)")
g = collections.Counter()
for ir, name in excl:
    if "PROGRAM TOTALS" in name or ir > 0.99 * total:  # thread roots show their inclusive cost here
        continue
    path, _, fn = name.partition(":")
    if "malloc" in path or "arena.c" in path: k = "glibc malloc/free"
    elif "libc.so" in name and re.search(r"mem(move|cpy|set|cmp|chr)", name): k = "glibc memcpy/memset/..."
    elif "libc.so" in name: k = "glibc other"
    elif "/aws-lc" in path or "aws_lc" in fn: k = "aws-lc"
    elif path.startswith("/work/") or "tokengate::" in fn and path.startswith("/rustc"): k = "tokengate (own code, incl. inlined std)"
    else:
        m = re.search(r"registry/src/[^/]+/([A-Za-z_\-]+?)-\d", path)
        k = m.group(1) if m else ("std/core (inlined)" if path.startswith("/rustc") else "other")
    g[k] += ir
print("  exclusive Ir by crate / library (top 12):")
for k, v in g.most_common(12):
    print(f"    {v / n:9,.0f} Ir/req  {100 * v / total:5.1f}%  {k}")
incl = rows(annotate("--inclusive=yes"))
print("  inclusive Ir of tokengate hooks and notable callees:")
pat = re.compile(r"(<tokengate::proxy::Gateway as pingora_proxy::proxy_trait::ProxyHttp>::(\w+)::\{\{closure\}\} \[|"
                 r"tokengate::proxy::Gateway::(send)::\{\{closure\}\} \[|(aws_lc_\w+_RAND_bytes) \[|"
                 r"pingora_http::(RequestHeader|ResponseHeader)::insert_header \[|prometheus::vec::MetricVec<T>::(with_label_values) \[)")
# A function whose code was inlined from several source files appears once per file; each call site
# belongs to one of them, so the entries add up.
hooks = collections.Counter()
for ir, name in incl:
    m = pat.search(name)
    if not m: continue
    key = next(x for x in m.groups()[1:] if x)
    key = {"RequestHeader": "RequestHeader::insert_header", "ResponseHeader": "ResponseHeader::insert_header"}.get(key, key)
    hooks[key] += ir
for key, ir in hooks.most_common():
    if ir: print(f"    {ir / n:9,.0f} Ir/req  {key}")
# call counts of allocator / memcpy, from the raw file
names, calls, cur = {}, collections.Counter(), None
for line in open(f):
    m = re.match(r"^c?fn=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
    if m:
        if m.group(2): names[m.group(1)] = m.group(2)
        if line.startswith("cfn="): cur = m.group(1)
        continue
    m = re.match(r"^calls=(\d+) ", line)
    if m and cur: calls[cur] += int(m.group(1))
by = collections.Counter()
for i, c in calls.items():
    nm = names.get(i, "")
    if nm in ("malloc", "free", "realloc") or nm.startswith("__memcpy") or nm.startswith("__memmove"):
        by[nm if not nm.startswith("__mem") else "memcpy/memmove"] += c
print("  calls per request: " + ", ".join(f"{k} {v / n:.1f}" for k, v in sorted(by.items())))
EOF
}

if [ "$DO_CG" = 1 ]; then
  log "callgrind: tokengate (valgrind is ~50x slower; the loads are still bounded: 2 x (2s + 10s))"
  (cd "$WORK" && RUST_LOG=warn exec taskset -c 1 valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.%p.out" \
    "$WORK/tokengate" run -c "$WORK/tokengate.toml" >"$WORK/valgrind.log" 2>&1) &
  VG=$!
  PIDS+=("$VG")
  wait_url "http://127.0.0.1:$TP/local"
  n1=$(cg_window "$VG" proxy "http://127.0.0.1:$TP/")
  n2=$(cg_window "$VG" local "http://127.0.0.1:$TP/local")
  sleep 1
  cg_report "$WORK/cg.$VG.out.1" "$n1" "tokengate proxy (GET / -> origin)"
  cg_report "$WORK/cg.$VG.out.2" "$n2" "tokengate local (GET /local, direct response)"
  kill -TERM "$VG" 2>/dev/null || true
  if [ "$DO_NGINX" = 1 ]; then
    log "callgrind: nginx peer proxy"
    nginx_conf "$WORK/nginx" "    upstream origin { server 127.0.0.1:$OP; keepalive 64; keepalive_requests 1000000; }
    server { listen 127.0.0.1:$NP;
        location = /local { return 200 \"ok\\n\"; }
        location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
    (exec taskset -c 1 valgrind --tool=callgrind --callgrind-out-file="$WORK/ngx.%p.out" \
      nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off; master_process off;' >"$WORK/valgrind-nginx.log" 2>&1) &
    NV=$!
    PIDS+=("$NV")
    wait_url "http://127.0.0.1:$NP/local"
    n1=$(cg_window "$NV" proxy "http://127.0.0.1:$NP/")
    n2=$(cg_window "$NV" local "http://127.0.0.1:$NP/local")
    sleep 1
    cg_report "$WORK/ngx.$NV.out.1" "$n1" "nginx proxy"
    cg_report "$WORK/ngx.$NV.out.2" "$n2" "nginx local"
    kill -TERM "$NV" 2>/dev/null || true
  fi
fi

# -------------------------------------------------------------------------------------------- perf
if [ "$DO_PERF" = 1 ]; then
  log "perf: native tokengate on CPU1, wrk -c50 on CPU0"
  RUST_LOG=warn taskset -c 1 "$WORK/tokengate" run -c "$WORK/tokengate.toml" >"$WORK/tokengate.log" 2>&1 &
  TG=$!
  PIDS+=("$TG")
  wait_url "http://127.0.0.1:$TP/"
  for path in / /local; do
    taskset -c 0 wrk -t1 -c50 -d1s "http://127.0.0.1:$TP$path" >/dev/null
    taskset -c 0 wrk -t1 -c50 -d7s "http://127.0.0.1:$TP$path" >"$WORK/wrk-perf.txt" &
    W=$!
    sleep 1
    taskset -c 0 perf record -q -F 2000 -e cpu-clock -g -p "$TG" -o "$WORK/perf.data" -- sleep 5 >/dev/null 2>&1
    wait "$W"
    echo
    echo "== perf, tokengate GET $path ($(grep 'Requests/sec' "$WORK/wrk-perf.txt" | tr -s ' ' || true))"
    echo "  by DSO:"
    perf report -i "$WORK/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null | grep -E '^ +[0-9]' | head -5 | sed 's/^/  /' || true
    echo "  top symbols (self):"
    perf report -i "$WORK/perf.data" --no-children --sort sym --stdio -g none 2>/dev/null | grep -E '^ +[0-9]' | head -15 | cut -c1-150 | sed 's/^/  /' || true
  done
fi
