#!/usr/bin/env bash
# Time `make run` (and `make test`) as a new user gets it: a fresh clone, empty pip and uv
# caches (the figures in BENCHMARKS.md). The install and the run are timed apart, then a
# second `make run` (nothing to install, FID reference cached), then `make test`.
# Usage: benchmarks/fresh_clone.sh [DEST] [--worktree] [--no-test]
#   DEST        where to clone (default /tmp/genloop-fresh; deleted first)
#   --worktree  copy the working tree's files (tracked and untracked, not ignored) instead of
#               cloning, to time uncommitted changes
#   --no-test   stop after the two runs
set -euo pipefail
src=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
dest=/tmp/genloop-fresh worktree=0 test=1
for arg in "$@"; do
  case $arg in --worktree) worktree=1 ;; --no-test) test=0 ;; *) dest=$arg ;; esac
done
rm -rf "$dest"
if [ $worktree = 1 ]; then
  mkdir -p "$dest"
  (cd "$src" && git ls-files -z -co --exclude-standard |
     while IFS= read -r -d '' f; do if [ -e "$f" ]; then printf '%s\0' "$f"; fi; done |
     xargs -0 cp --parents -t "$dest")
  git -C "$dest" init -q && git -C "$dest" add -A && \
    git -C "$dest" -c user.name=bench -c user.email=bench@localhost commit -qm "working tree"
else
  git clone -q "$src" "$dest"
fi
cd "$dest"
export PIP_CACHE_DIR=$(mktemp -d) UV_CACHE_DIR=$(mktemp -d)
measure() {  # name, command...
  local name=$1; shift
  /usr/bin/time -v "$@" > "$name.log" 2>&1 || { tail -30 "$name.log"; exit 1; }
  printf '%-12s wall %s   peak RSS %s kB\n' "$name" \
    "$(grep 'Elapsed (wall clock)' "$name.log" | awk '{print $NF}')" \
    "$(grep 'Maximum resident set size' "$name.log" | awk '{print $NF}')"
}
measure make-install make install        # venv, torch (pip), uv, then genloop and its dependencies (uv)
measure make-run make run                # genloop data init + the flow, cold FID reference
grep -E '^(validate|augment|train|evaluate|audit|gate|package|report) +[0-9.]+ s|^evaluate: ' make-run.log || true
measure make-run-2 make run              # installs nothing; FID reference cached
if [ $test = 1 ]; then
  measure make-test make test
  tail -1 make-test.log
fi
