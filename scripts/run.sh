#!/usr/bin/env bash
# Build and run the gateway on the shipped default config (data 127.0.0.1:8080, admin :9180).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh run
exec cargo run --release --locked -- run -c "${1:-conf/tokengate.toml}"
