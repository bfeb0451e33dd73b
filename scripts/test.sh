#!/usr/bin/env bash
# Runs every test: unit, store suites against SQLite and real etcd, API server
# end-to-end with real kubectl. Tests start the services they need themselves
# (etcd members on loopback ports, temp data dirs).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if ! python3 -c 'import kubernetes' 2>/dev/null; then
    python3 -m pip install --quiet 'kubernetes>=31' || echo "test: pip install kubernetes failed; Python client tests will say so" >&2
fi

# A test run builds once from a clean tree: incremental state would only take
# disk space (several GiB) that the tests' etcd members and databases need.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
free_kib=$(df -Pk . | awk 'NR == 2 { print $4 }')
if [ "${free_kib:-0}" -lt $((4 * 1024 * 1024)) ]; then
    echo "test: only $((free_kib / 1024)) MiB free on the disk holding $(pwd); the build and the tests need about 4 GiB, so tests may fail with \"no space left on device\"" >&2
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --no-fail-fast -- --include-ignored 2>&1 | tee "$log" || status=$?
# One closing line for the whole run: cargo prints one per test binary, the last
# of which is often an empty doc-test run.
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
