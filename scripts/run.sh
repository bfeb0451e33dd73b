#!/usr/bin/env bash
# Builds Flotilla and starts an all-in-one cluster in the foreground.
# Extra arguments go to `flotilla server`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release -p flotilla

# The node starts with a busybox image, built from the host's busybox-static
# (no registry needed): the agent imports DATA_DIR/agent/images/*.tar at start.
data_dir=/var/lib/flotilla
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    case "${args[$i]}" in
        --data-dir) data_dir="${args[$((i + 1))]:-$data_dir}" ;;
        --data-dir=*) data_dir="${args[$i]#--data-dir=}" ;;
    esac
done
images="$data_dir/agent/images"
if [ ! -e "$images/busybox.tar" ]; then
    mkdir -p "$images"
    cargo run --release -q -p testkit --example busybox_archive -- \
        "$images/busybox.tar" docker.io/library/busybox:stable
fi
exec target/release/flotilla server "$@"
