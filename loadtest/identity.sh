#!/usr/bin/env bash
# Password-grant tokens/s per identity source, credential cache on and off (issue 7), loopback,
# bounded. Baseline in the same run: client_credentials on the same gateway (same signing,
# no identity lookup).
#   sources : static ([[token_service.users]]), ldap (slapd from tests/fixtures/slapd.sh, group
#             search), postgres and mariadb (the machine's, a table made here and dropped),
#             sqlite (a file made here), http (a second tokengate answering the JSON verdict)
#   users   : user0..user999 in every source (one password), logins rotate through them, so
#             concurrent logins are distinct pairs (no single-flight sharing); cache-on cases
#             are warmed first (every pair cached), cache-off cases look up every login
#   hashes  : pbkdf2-sha256 with 1000 iterations everywhere, so the numbers show the source,
#             not the hash (a 600 000-round hash costs ~0.3 s of CPU per uncached login)
#   load    : wrk -t1 -c16, PASSES passes of DURATION per case; tokens/s printed per run
# Usage: loadtest/identity.sh [PASSES] [DURATION]   (needs target/release/tokengate, wrk, curl,
#        slapd, psql, mariadb; PostgreSQL on :5432 and MariaDB on :3306 as scripts/setup.sh leaves them)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${TOKENGATE_BIN:-$ROOT/target/release/tokengate}
PASSES=${1:-2}
DURATION=${2:-5s}
DIR=$(mktemp -d)
PIDS=()
TABLE="tg_bench_$$"
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$DIR/ldap/slapd.pid" ] && kill "$(cat "$DIR/ldap/slapd.pid")" 2>/dev/null || true
  psql -q -h 127.0.0.1 -U postgres -d test -c "DROP TABLE IF EXISTS $TABLE" >/dev/null 2>&1 || true
  mariadb -h 127.0.0.1 -uroot test -e "DROP TABLE IF EXISTS $TABLE" >/dev/null 2>&1 || true
  rm -rf "$DIR"
}
trap cleanup EXIT
source "$ROOT/loadtest/lib.sh"
OP=$(free); OA=$(free); GP=$(free); GA=$(free); LP=$(free); LS=$(free)

bash "$ROOT/tests/fixtures/slapd.sh" "$DIR/ldap" "$LP" "$LS"
H=$(echo alice-pw | "$BIN" hash-secret --iterations 1000)
CH=$(echo bench-secret | "$BIN" hash-secret --iterations 1000)
N=1000
psql -q -h 127.0.0.1 -U postgres -d test -c "CREATE TABLE $TABLE (username text PRIMARY KEY, password_hash text, roles text)" \
  -c "INSERT INTO $TABLE SELECT 'user' || i, '$H', 'admin,user' FROM generate_series(0, $((N - 1))) i" >/dev/null
mariadb -h 127.0.0.1 -uroot test -e "CREATE TABLE $TABLE (username VARCHAR(255) PRIMARY KEY, password_hash VARCHAR(255), roles VARCHAR(255));
  INSERT INTO $TABLE WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < $((N - 1))) SELECT CONCAT('user', i), '$H', 'admin,user' FROM s"
python3 - "$DIR/users.db" "$H" "$N" <<'P'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1]); c.execute("CREATE TABLE users (username TEXT PRIMARY KEY, password_hash TEXT, roles TEXT)")
c.executemany("INSERT INTO users VALUES (?, ?, 'admin,user')", [(f"user{i}", sys.argv[2]) for i in range(int(sys.argv[3]))]); c.commit()
P
# The LDAP users, members of gw-users and gw-admins.
LPW=$(/usr/sbin/slappasswd -s alice-pw)
python3 - "$N" "$LPW" > "$DIR/users.ldif" <<'P'
import sys
n, pw = int(sys.argv[1]), sys.argv[2]
for i in range(n):
    print(f"dn: uid=user{i},ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\nuid: user{i}\ncn: U{i}\nsn: U\nuserPassword: {pw}\n")
for g in ("gw-users", "gw-admins"):
    print(f"dn: cn={g},ou=groups,dc=example,dc=org\nchangetype: modify\nadd: member")
    for i in range(n):
        print(f"member: uid=user{i},ou=people,dc=example,dc=org")
    print()
P
ldapmodify -a -x -H "ldap://127.0.0.1:$LP/" -D cn=admin,dc=example,dc=org -w admin-pw -f "$DIR/users.ldif" >/dev/null

# The identity API: a tokengate answering every POST with the verdict.
{ common idapi "$OA" "$OP"; cat <<'T'
[[routes]]
name = "verdict"
respond = { status = 200, body = '{"ok":true,"roles":["admin","user"]}', headers = { "content-type" = "application/json" } }
T
} > "$DIR/idapi.toml"

src() { # name cache_ttl table-body
  printf '\n[[token_service.identity_sources]]\nname = "%s"\ncache_ttl = "%s"\nmax_concurrency = 16\n%s\n' "$1" "$2" "$3"
}
PG="[token_service.identity_sources.database]
url = \"postgres://postgres@127.0.0.1:5432/test\"
query = \"SELECT password_hash, roles FROM $TABLE WHERE username = \$1\""
MY="[token_service.identity_sources.database]
url = \"mysql://root@127.0.0.1:3306/test\"
query = \"SELECT password_hash, roles FROM $TABLE WHERE username = ?\""
LITE="[token_service.identity_sources.database]
url = \"sqlite://$DIR/users.db?mode=ro\"
query = \"SELECT password_hash, roles FROM users WHERE username = ?\""
LDAP="[token_service.identity_sources.ldap]
url = \"ldap://127.0.0.1:$LP\"
bind_dn = \"cn=gateway,dc=example,dc=org\"
bind_password = \"gateway-pw\"
user_base = \"ou=people,dc=example,dc=org\"
group_base = \"ou=groups,dc=example,dc=org\"
role_map = { \"gw-admins\" = \"admin\", \"gw-users\" = \"user\" }"
HTTP="[token_service.identity_sources.http]
url = \"http://127.0.0.1:$OP/verdict\"
accept_pointer = \"/ok\"
roles_pointer = \"/roles\""

SOURCES=(ldap postgres mariadb sqlite http)
{ common gw "$GA" "$GP"; cat <<T
[token_service]
issuer = "https://bench.example"
require_tls = false
signing_alg = "ES256"
key_dir = "$DIR/keys"
backoff = { max_failures = 1000000 }
[token_service.store]
path = "$DIR/tokens.redb"
T
  for i in $(seq 0 $((N - 1))); do
    printf '[[token_service.users]]\nusername = "user%s"\npassword_hash = "%s"\nroles = ["admin", "user"]\n' "$i" "$H"
  done
  cat <<T
[[token_service.clients]]
client_id = "cc"
secret_hash = "$CH"
scopes = ["read"]
T
  # The static store (source "static") has the default cache; it is measured cached only.
  printf '[[token_service.clients]]\nclient_id = "static_on"\nsecret_hash = "%s"\ngrants = ["password"]\nscopes = ["read"]\nidentity_source = "static"\n' "$CH"
  for c in "${SOURCES[@]}"; do for m in on off; do
    printf '[[token_service.clients]]\nclient_id = "%s_%s"\nsecret_hash = "%s"\ngrants = ["password"]\nscopes = ["read"]\nidentity_source = "%s_%s"\n' "$c" "$m" "$CH" "$c" "$m"
  done; done
  for m in on off; do
    ttl=$([ $m = on ] && echo 60s || echo 0s)
    src "ldap_$m" "$ttl" "$LDAP"; src "postgres_$m" "$ttl" "$PG"; src "mariadb_$m" "$ttl" "$MY"
    src "sqlite_$m" "$ttl" "$LITE"; src "http_$m" "$ttl" "$HTTP"
  done
} > "$DIR/gw.toml"

"$BIN" check "$DIR/gw.toml" >/dev/null
"$BIN" run -c "$DIR/idapi.toml" >/dev/null 2>&1 & PIDS+=($!)
"$BIN" run -c "$DIR/gw.toml" >"$DIR/gw.log" 2>&1 & PIDS+=($!)
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$GA/healthz" >/dev/null && curl -sf "http://127.0.0.1:$OA/healthz" >/dev/null && break; sleep 0.1; done

URL="http://127.0.0.1:$GP/oauth2/token"
auth() { printf 'Basic %s' "$(printf '%s:bench-secret' "$1" | base64 -w0)"; }
PW_BODY='grant_type=password&username=user%d&password=alice-pw'
for c in static "${SOURCES[@]}"; do for m in on off; do
  [ "$c" = static ] && [ "$m" = off ] && continue
  code=$(curl -s -o "$DIR/out" -w '%{http_code}' -H "Authorization: $(auth "${c}_$m")" -d "${PW_BODY/\%d/7}" "$URL")
  [ "$code" = 200 ] || { echo "${c}_$m: HTTP $code $(cat "$DIR/out")" >&2; exit 1; }
done; done

run() { # client body [duration]
  TG_AUTH=$(auth "$1") TG_BODY=$2 TG_USERS=$N wrk -t1 -c16 -d"${3:-$DURATION}" -s "$ROOT/loadtest/wrk/password.lua" "$URL" \
    | awk '/Requests\/sec/ {r=$2} /WRK_NON200/ {n=$2} END {printf "%s\t%s", r, n}'
}
# Warm the cache-on sources: every pair looked up once.
for c in static "${SOURCES[@]}"; do run "${c}_on" "$PW_BODY" 3s >/dev/null; done
printf 'pass\tcase\ttokens_per_s\tnon200\tvs_client_credentials\n'
for i in $(seq 1 "$PASSES"); do
  base=$(run cc 'grant_type=client_credentials')
  printf '%s\tclient_credentials\t%s\t1.000\n' "$i" "$base"
  b=${base%%$'\t'*}
  for c in static "${SOURCES[@]}"; do
    for m in on off; do
      [ "$c" = static ] && [ "$m" = off ] && continue
      r=$(run "${c}_$m" "$PW_BODY")
      printf '%s\t%s_cache_%s\t%s\t%s\n' "$i" "$c" "$m" "$r" "$(python3 -c "print(round(${r%%$'\t'*}/$b, 3))")"
    done
  done
done
