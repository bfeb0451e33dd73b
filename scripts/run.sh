#!/usr/bin/env bash
# Builds Flotilla and starts an all-in-one cluster in the foreground.
# Extra arguments go to `flotilla server`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release -p flotilla
exec target/release/flotilla server "$@"
