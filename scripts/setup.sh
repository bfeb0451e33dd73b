#!/usr/bin/env bash
# Installs the Debian packages Flotilla builds and runs with, when any is missing.
# Safe to run again: it does nothing when everything is present.
set -euo pipefail

need=()
# command-or-path → package
check() { if ! command -v "$1" >/dev/null 2>&1 && [ ! -e "$1" ]; then need+=("$2"); fi; }
check protoc protobuf-compiler
# protoc without its well-known types (google/protobuf/*.proto) cannot build etcd-client;
# they are only a recommendation of protobuf-compiler, which --no-install-recommends skips.
check /usr/include/google/protobuf/descriptor.proto libprotobuf-dev
check etcd etcd-server
check etcdctl etcd-client
check runc runc
check crun crun
check /usr/lib/cni/bridge containernetworking-plugins
check nft nftables
check ip iproute2
# The CNI portmap plugin (hostPort) programs iptables.
check iptables iptables
check /bin/busybox busybox-static
check skopeo skopeo
check umoci umoci
check docker-registry docker-registry
check curl curl
check sqlite3 sqlite3

if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: missing packages ${need[*]}; run as root to install them" >&2
        exit 1
    fi
    echo "setup: installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: cargo not found; install a Rust toolchain (1.89 or newer) with rustup" >&2
    exit 1
fi
