#!/usr/bin/env bash
# Install what a fresh Debian machine lacks to build and test tokengate, and start the services
# the tests use. Idempotent. `setup.sh run`: only what building and running the gateway needs.
set -euo pipefail
MODE=${1:-test}

need_apt=()
command -v cmake >/dev/null 2>&1 || need_apt+=(cmake)       # Pingora's zlib-ng (libz-ng-sys)
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if [ "$MODE" = test ]; then
  command -v python3 >/dev/null 2>&1 || need_apt+=(python3 python3-pip)
  command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)     # test certificates
  command -v curl >/dev/null 2>&1 || need_apt+=(curl)           # independent HTTP/2 client in tests
  command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server) # token store tests
  # Throwaway OpenLDAP servers for the LDAP tests (tests/fixtures/slapd.sh). slapd lives in
  # /usr/sbin, which a non-root PATH may lack, so test for the file.
  [ -x /usr/sbin/slapd ] || need_apt+=(slapd ldap-utils)
  command -v ldapwhoami >/dev/null 2>&1 || need_apt+=(ldap-utils)
  # The database identity-source tests use the machine's PostgreSQL (127.0.0.1:5432, user
  # postgres, database test) and MariaDB (127.0.0.1:3306, root without password, database test).
  if ! port_open 5432 && ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    need_apt+=(postgresql)
  fi
  if ! port_open 3306 && [ ! -x /usr/sbin/mariadbd ]; then need_apt+=(mariadb-server); fi
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install Rust (https://rustup.rs) first" >&2
  exit 1
fi
[ "$MODE" = test ] || exit 0

# The token store's Redis tests expect a Redis on 127.0.0.1:6379 (it keeps nothing on disk).
if ! (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --maxmemory-policy noeviction >/dev/null
  for _ in $(seq 1 50); do (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null && break; sleep 0.1; done
fi

# PostgreSQL: start the cluster if it is down; make sure user postgres reaches database test
# over TCP without a password (trust for loopback only).
if ! port_open 5432 && command -v pg_ctlcluster >/dev/null 2>&1; then
  v=$(ls /etc/postgresql | sort -V | tail -1)
  hba=/etc/postgresql/$v/main/pg_hba.conf
  if [ -f "$hba" ] && ! grep -q '^host all postgres 127.0.0.1/32 trust' "$hba"; then
    sed -i '1i host all postgres 127.0.0.1/32 trust' "$hba"
  fi
  pg_ctlcluster --skip-systemctl-redirect "$v" main start || true
  for _ in $(seq 1 100); do port_open 5432 && break; sleep 0.1; done
fi
if port_open 5432 && command -v psql >/dev/null 2>&1; then
  if ! psql -h 127.0.0.1 -U postgres -d test -c 'select 1' >/dev/null 2>&1; then
    su postgres -c "createdb test" >/dev/null 2>&1 || true
  fi
fi
# MariaDB: start it if it is down; database test; root over TCP without a password.
if ! port_open 3306 && [ -x /usr/sbin/mariadbd ]; then
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql \
    --bind-address=127.0.0.1 || true
  for _ in $(seq 1 100); do port_open 3306 && break; sleep 0.1; done
  if command -v mariadb >/dev/null 2>&1 && ! mariadb -h 127.0.0.1 -uroot -e 'select 1' >/dev/null 2>&1; then
    mariadb -uroot -e "CREATE DATABASE IF NOT EXISTS test; ALTER USER root@localhost IDENTIFIED VIA mysql_native_password USING PASSWORD('') OR unix_socket; FLUSH PRIVILEGES;" || true
  fi
fi

# Independent JOSE implementations the cross-implementation tests talk to.
if [ -f tests/fixtures/jose_peer.py ]; then
  if ! python3 -c 'import joserfc, jwcrypto' >/dev/null 2>&1; then
    python3 -m pip install --quiet --disable-pip-version-check joserfc jwcrypto
  fi
fi
# A real OAuth2 client for the token-service tests (tests/fixtures/oauth_client.py).
if [ -f tests/fixtures/oauth_client.py ]; then
  if ! python3 -c 'import authlib, requests' >/dev/null 2>&1; then
    python3 -m pip install --quiet --disable-pip-version-check authlib requests
  fi
fi
