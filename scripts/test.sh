#!/usr/bin/env bash
# Run the whole test suite (unit + end-to-end over loopback) on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo test --locked
