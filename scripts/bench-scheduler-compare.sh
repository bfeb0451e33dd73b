#!/usr/bin/env bash
# Side-by-side scheduler throughput: an earlier commit against the working tree,
# run alternately on the same machine, medians printed per scenario.
#
#   scripts/bench-scheduler-compare.sh <git-rev> [runs=5]
#
# The earlier commit is built in a git worktree under target/compare/<rev>
# (its own target directory: the first build takes several minutes).
set -euo pipefail
rev=${1:?usage: $0 <git-rev> [runs]}
runs=${2:-5}
root=$(cd "$(dirname "$0")/.." && pwd)
old_tree="$root/target/compare/$rev"

bench_bin() { # newest throughput benchmark binary of a tree
  (cd "$1" && cargo build --release -p flotilla -q &&
    cargo bench -p scheduler --no-run 2>&1 | sed -n 's/.*Executable benches\/throughput.rs (\(.*\))/\1/p' | tail -1)
}

if [ ! -d "$old_tree" ]; then
  git -C "$root" worktree add --detach "$old_tree" "$rev" >/dev/null
fi
old="$old_tree/$(bench_bin "$old_tree")"
new="$root/$(bench_bin "$root")"

median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

for args in "--nodes 500 --pods 5000" "--nodes 5000 --pods 10000" "--nodes 5000 --pods 10000 --spread"; do
  out=$(mktemp)
  for _ in $(seq "$runs"); do
    for which in old new; do
      bin=${!which}
      # Older benchmarks print the same "all bound" line.
      "$bin" $args 2>&1 | sed -n "s/.*: \([0-9]*\) pods\/s overall, \([0-9]*\) pods\/s after.*/$which \1 \2/p" >>"$out"
    done
  done
  for which in old new; do
    o=$(awk -v w=$which '$1==w {print $2}' "$out" | median)
    s=$(awk -v w=$which '$1==w {print $3}' "$out" | median)
    echo "$args | $which ($([ $which = old ] && echo "$rev" || echo "working tree")): median of $runs: $o pods/s overall, $s pods/s steady"
  done
  rm -f "$out"
done
