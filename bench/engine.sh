#!/usr/bin/env bash
# Transfer benchmarks of the engine, same-run ratios against the tools
# users run today.  Run by hand, not by ctest:
#
#   bash bench/engine.sh BUILD_DIR [local|wan|all] [RUNS]
#
#   local  50,000 small files (0-16 KiB) on tmpfs, local to local:
#          syncplan copy -j 4 vs rsync -a, fpsync -n 4, rclone sync
#          --transfers 4, cp -a; then a no-change resync (syncplan, rsync).
#   wan    10,000 small files + 8 x 32 MiB, pushed and pulled through
#          bench/wanproxy (25 ms one way, 25 MB/s per connection, 100 MB/s
#          in all) in front of a private sshd on 127.0.0.1: syncplan
#          copy -j 8 -n 8 vs one rsync -a and fpsync -n 4; then no-change.
#
# Every full copy starts from an empty destination (hyperfine --prepare).
# Prints a markdown table per scenario; paste it into bench/RESULTS.md.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 BUILD_DIR [local|wan|all] [RUNS]" >&2; exit 2; }
build=$(cd "$1" && pwd)
what=${2:-all}
runs=${3:-3}
here=$(cd "$(dirname "$0")" && pwd)
export SYNCPLAN="$build/cli/syncplan" MKTREE="$build/tests/mktree"
export TREECMP="$build/tests/treecmp" TESTS_DIR="$here/../tests"
# tmpfs, so the disk is not what is measured.
export TMPDIR=/dev/shm
# shellcheck source=../tests/lib.sh
. "$TESTS_DIR/lib.sh"
set +e +o pipefail
need hyperfine jq rsync rclone fpsync cp
export SYNCPLAN_STATE_DIR="$work/state"

# bench NAME CMD PREPARE...: hyperfine's median, in seconds.
results=()
bench() {
  local name=$1 cmd=$2 prep=$3
  hyperfine -N --style none --runs "$runs" --prepare "$prep" \
    --export-json "$work/h.json" "$cmd" >/dev/null 2>"$work/h.err" ||
    { echo "  $name failed: $(tail -3 "$work/h.err")" >&2; results+=("$name|failed"); return; }
  local t
  t=$(jq '.results[0].median' "$work/h.json")
  results+=("$name|$t")
  printf '  %-44s %8.3f s\n' "$name" "$t" >&2
}

table() {
  local ref=$1
  local reft
  reft=$(printf '%s\n' "${results[@]}" | awk -F'|' -v r="$ref" '$1 == r {print $2}')
  echo
  echo "| command | median (s) | rsync's time / this time |"
  echo "|---|---|---|"
  local row name t
  for row in "${results[@]}"; do
    name=${row%%|*} t=${row#*|}
    if [ "$t" = failed ]; then
      echo "| \`$name\` | failed | |"
    else
      awk -v n="$name" -v t="$t" -v r="$reft" \
        'BEGIN { printf "| `%s` | %.3f | %.2fx |\n", n, t, r / t }'
    fi
  done
  results=()
}

verify() {
  "$TREECMP" --ignore-dir-mtime "$1" "$2" >/dev/null ||
    fail "benchmark copy $2 differs from $1"
}

local_bench() {
  local src="$work/small" dst="$work/dst"
  echo "== local: 50,000 files of 0-16 KiB on tmpfs ($(nproc) cores)" >&2
  "$MKTREE" sample "$src" -n 50000 --max-size 16384 >/dev/null
  local rm="rm -rf $dst"
  bench "syncplan copy SRC/ DST/ -j 4" "$SYNCPLAN copy $src/ $dst/ -j 4" "$rm"
  verify "$src" "$dst"
  bench "rsync -a SRC/ DST/" "rsync -a $src/ $dst/" "$rm"
  bench "fpsync -n 4 SRC/ DST/" "fpsync -n 4 -t $work/fpsync $src/ $dst/" \
    "sh -c 'rm -rf $dst $work/fpsync; mkdir -p $dst'"
  bench "rclone sync SRC DST --transfers 4" \
    "rclone sync $src $dst --transfers 4 --config /dev/null" "$rm"
  bench "cp -a SRC DST" "cp -a $src $dst" "$rm"
  table "rsync -a SRC/ DST/"
  echo
  echo "== local no-change resync" >&2
  rsync -a "$src/" "$dst/"
  bench "syncplan copy SRC/ DST/ -j 4 (no change)" \
    "$SYNCPLAN copy $src/ $dst/ -j 4" "true"
  bench "rsync -a SRC/ DST/ (no change)" "rsync -a $src/ $dst/" "true"
  table "rsync -a SRC/ DST/ (no change)"
  rm -rf "$src" "$dst"
}

wan_bench() {
  echo "== wan: 10,000 small files + 8 x 32 MiB through wanproxy" >&2
  start_sshd
  local pport="$work/proxy.port"
  "$build/bench/wanproxy" --listen 127.0.0.1:0 --to "127.0.0.1:$SSHD_PORT" \
    --delay-ms 25 --conn-rate 25M --total-rate 100M --port-file "$pport" &
  local ppid=$!
  at_exit "kill $ppid"
  for _ in $(seq 50); do [ -s "$pport" ] && break; sleep 0.1; done
  add_ssh_host wan "$(cat "$pport")"
  local src="$work/wsrc" dst="$work/wdst" e="$SSH_RSH"
  "$MKTREE" sample "$src" -n 10000 --max-size 16384 >/dev/null
  for i in 1 2 3 4 5 6 7 8; do
    head -c $((32 << 20)) /dev/urandom >"$src/big$i"
  done
  local rm="rm -rf $dst"
  bench "syncplan copy SRC/ wan:DST/ -j 8 -n 8 (push)" \
    "$SYNCPLAN copy $src/ wan:$dst/ -e '$e' -j 8 -n 8" "$rm"
  verify "$src" "$dst"
  bench "rsync -a SRC/ wan:DST/ (push)" "rsync -a -e '$e' $src/ wan:$dst/" "$rm"
  bench "fpsync -n 4 SRC/ wan:DST/ (push)" \
    "fpsync -n 4 -t $work/fpsync -o '-lptgoD -e \"$e\"' $src/ wan:$dst/" \
    "sh -c 'rm -rf $dst $work/fpsync; mkdir -p $dst'"
  table "rsync -a SRC/ wan:DST/ (push)"
  echo
  bench "syncplan copy wan:SRC/ DST/ -j 8 -n 8 (pull)" \
    "$SYNCPLAN copy wan:$src/ $dst/ -e '$e' -j 8 -n 8" "$rm"
  verify "$src" "$dst"
  bench "rsync -a wan:SRC/ DST/ (pull)" "rsync -a -e '$e' wan:$src/ $dst/" "$rm"
  table "rsync -a wan:SRC/ DST/ (pull)"
  echo
  rsync -a "$src/" "$dst/"
  bench "syncplan copy SRC/ wan:DST/ -j 8 -n 8 (no change)" \
    "$SYNCPLAN copy $src/ wan:$dst/ -e '$e' -j 8 -n 8" "true"
  bench "rsync -a SRC/ wan:DST/ (no change)" \
    "rsync -a -e '$e' $src/ wan:$dst/" "true"
  table "rsync -a SRC/ wan:DST/ (no change)"
}

echo "# $(date -u +%Y-%m-%d) $(uname -m), $(nproc) cores, $(rsync --version | head -1)"
case $what in
local) local_bench ;;
wan) wan_bench ;;
all) local_bench; wan_bench ;;
*) fail "unknown scenario '$what'" ;;
esac
