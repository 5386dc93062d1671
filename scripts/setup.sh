#!/usr/bin/env bash
# Install what a fresh Debian machine lacks to build and test tokengate. Idempotent.
set -euo pipefail

need_apt=()
command -v cmake >/dev/null 2>&1 || need_apt+=(cmake)       # Pingora's zlib-ng (libz-ng-sys)
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3 python3-pip)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)     # test certificates
command -v curl >/dev/null 2>&1 || need_apt+=(curl)           # independent HTTP/2 client in tests
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server) # token store tests
# Throwaway OpenLDAP servers for the LDAP tests (tests/fixtures/slapd.sh). slapd lives in
# /usr/sbin, which a non-root PATH may lack, so test for the file.
[ -x /usr/sbin/slapd ] || need_apt+=(slapd ldap-utils)
command -v ldapwhoami >/dev/null 2>&1 || need_apt+=(ldap-utils)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install Rust (https://rustup.rs) first" >&2
  exit 1
fi

# The token store's Redis tests expect a Redis on 127.0.0.1:6379 (it keeps nothing on disk).
if ! (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --maxmemory-policy noeviction >/dev/null
  for _ in $(seq 1 50); do (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null && break; sleep 0.1; done
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
