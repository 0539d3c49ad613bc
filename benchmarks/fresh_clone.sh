#!/usr/bin/env bash
# Time `make run` and `make test` from a fresh clone (the figures in BENCHMARKS.md).
# Usage: benchmarks/fresh_clone.sh [DEST]   (default /tmp/genloop-fresh; it is deleted first)
set -euo pipefail
src=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
dest=${1:-/tmp/genloop-fresh}
rm -rf "$dest"
git clone -q "$src" "$dest"
cd "$dest"
measure() {  # name, command...
  local name=$1; shift
  /usr/bin/time -v "$@" > "$name.log" 2>&1 || { tail -30 "$name.log"; exit 1; }
  printf '%-10s wall %s   peak RSS %s kB\n' "$name" \
    "$(grep 'Elapsed (wall clock)' "$name.log" | awk '{print $NF}')" \
    "$(grep 'Maximum resident set size' "$name.log" | awk '{print $NF}')"
}
measure make-run make run
grep -E '^│ (data|validate|augment|train|evaluate|audit|gate|package) ' make-run.log | cut -c1-100 || true
measure make-run-2 make run          # installs nothing; FID reference statistics cached
measure make-test make test
tail -1 make-test.log
