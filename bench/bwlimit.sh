#!/bin/bash
# Bandwidth cap benchmark: how close the total rate of a job stays to its
# cap, for syncplan's one cap per job against per-process --bwlimit as
# Sync.py applies it (every rsync gets the user's rate) and as fpsync
# users apply it (the rate divided by the workers, per rsync).  Local
# copies on tmpfs, in the same run.  Not a test: run by hand, on a quiet
# machine.
#
#   bash bench/bwlimit.sh [BUILD_DIR]
#
# For each cap (CAPS, default "4 16 64", MiB/s) and worker count (WORKERS,
# default "2 4 8"): a tree of 5 MiB files holding SECONDS_AT_CAP (default 10) at
# the cap, copied by
#   syncplan copy -j N --bwlimit CAP (rsync workers; the streams cross the
#                job's tunnel and one bucket), and with --tool rclone
#                (shares re-divided through each rclone's remote control);
#   N rsync -a --bwlimit=CAP over N parts of the tree (Sync.py);
#   fpsync -n N -f FILES/2N -o "--bwlimit=CAP/N" (fpsync's per-rsync
#                option, 2 jobs a worker).
# The rate is the tree's bytes over the command's wall time (start-up,
# crawl and tail included), as a ratio to the cap.  TOOLS (default
# "rsync rclone syncpy fpsync") picks the columns measured.  Prints a dated
# markdown section for bench/RESULTS.md on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
build=$(cd "$build" && pwd)
export SYNCPLAN="$build/cli/syncplan" MKTREE="$build/tests/mktree"
export TREECMP="$build/tests/treecmp" BUILD_DIR="$build" TESTS_DIR="$PWD/tests"
. tests/lib.sh
need rsync rclone fpsync fpart awk
caps=${CAPS:-4 16 64} workers=${WORKERS:-2 4 8} secs=${SECONDS_AT_CAP:-10}
tools=" ${TOOLS:-rsync rclone syncpy fpsync} "

base=$(mktemp -d /dev/shm/syncplan-bwbench.XXXXXX)
at_exit "rm -rf $(printf %q "$base")"
export SYNCPLAN_STATE_DIR="$base/state"

# ratio BYTES CAP_MIB CMD...: run CMD, print bytes/wall/cap.
ratio() {
  local bytes=$1 cap=$2
  shift 2
  local t0 t1
  t0=$(date +%s.%N)
  "$@" >/dev/null 2>"$base/err" || { cat "$base/err" >&2; fail "failed: $*"; }
  t1=$(date +%s.%N)
  awk -v b="$bytes" -v c="$cap" -v t0="$t0" -v t1="$t1" \
    'BEGIN { printf "%.3f", b / (t1 - t0) / (c * 1048576) }'
}

# Sync.py: one rsync per part of the tree, each with the whole rate.
syncpy() {
  local n=$1 cap=$2 i
  for i in $(seq 1 "$n"); do
    rsync -a --bwlimit=$((cap * 1024)) "$base/src/p$i" "$base/dst/" &
  done
  wait
}

rows=""
for cap in $caps; do
  files=$(((cap * secs + 4) / 5))
  for n in $workers; do
    rm -rf "$base/src"
    for i in $(seq 1 "$n"); do mkdir -p "$base/src/p$i"; done
    for f in $(seq 1 "$files"); do
      head -c $((5 << 20)) /dev/urandom >"$base/src/p$((f % n + 1))/f$f"
    done
    bytes=$((files * (5 << 20)))
    row="| ${cap}M | $n |"
    for tool in rsync rclone; do
      [[ $tools == *" $tool "* ]] || { row="$row - |"; continue; }
      rm -rf "$base/dst" "$base/state"
      row="$row $(ratio "$bytes" "$cap" "$SYNCPLAN" copy "$base/src/" \
        "$base/dst/" -j "$n" --bwlimit "${cap}M" --tool "$tool") |"
    done
    rm -rf "$base/dst"
    mkdir -p "$base/dst"
    if [[ $tools == *" syncpy "* ]]; then
      row="$row $(ratio "$bytes" "$cap" syncpy "$n" "$cap") |"
    else row="$row - |"; fi
    rm -rf "$base/dst" "$base/fpsync"
    # fpsync makes one job of everything unless told a size: 2 jobs a
    # worker, as a user would ask.
    if [[ $tools == *" fpsync "* ]]; then
      row="$row $(ratio "$bytes" "$cap" fpsync -n "$n" -t "$base/fpsync" \
        -f $(((files + 2 * n - 1) / (2 * n))) \
        -o "-lptgoD --numeric-ids --bwlimit=$((cap * 1024 / n))" \
        "$base/src/" "$base/dst/") |"
    else row="$row - |"; fi
    echo "$row" >&2
    rows="$rows$row"$'\n'
  done
done

cat <<EOF
## Bandwidth cap accuracy ($(date +%Y-%m-%d), $(nproc) cores, $(uname -m))

\`bash bench/bwlimit.sh\` (CAPS="$caps", WORKERS="$workers", ${secs} s of data
at the cap; 5 MiB files on tmpfs, local copies).  Total rate over the
command's wall time, as a ratio to the cap (1.000 = exactly the cap).

| cap | workers | syncplan rsync | syncplan rclone | Sync.py (rsync --bwlimit=cap each) | fpsync (--bwlimit=cap/N each) |
|---|---|---|---|---|---|
$rows
EOF
