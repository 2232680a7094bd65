#!/bin/bash
# Transfer benchmark: `syncplan copy` against rsync, fpsync and rclone on the
# same trees, in the same run, on tmpfs.  Not a test: run by hand, on a
# quiet machine.
#
#   bash bench/transfer.sh [BUILD_DIR] [local] [wan] [nochange] [chunks]
#
# With no scenario named, runs all four (about 10 minutes on 2 cores):
#   local     50,000 files of 0-16 KiB, local to local: syncplan copy -j 4,
#             rsync -a, fpsync -n 4, rclone sync --transfers 4, cp -a as the
#             local limit, and 4 rsync --files-from on lists made beforehand
#             (the chunk lists alone, read the way rsync reads a list).
#   wan       10,000 files of 0-16 KiB + 8 x 32 MiB, over ssh through
#             bench/wanproxy (25 ms one way, 25 MiB/s per connection, 100 MiB/s
#             total per direction) in front of a private sshd on 127.0.0.1:
#             push (syncplan -j 8 with default and with -n 8 chunks, rsync,
#             a hand-balanced 8-way split, fpsync -n 4 and -n 8) and pull
#             (syncplan as for push, rsync, the hand-balanced split; fpsync
#             cannot pull: its source must be a local directory).
#   nochange  both trees again onto an up-to-date destination (local, and
#             push and pull over the WAN link): syncplan vs rsync.
#   chunks    2,000 files of 0-4 KiB pushed over the WAN link in 200 chunks
#             on 4 slots: syncplan's own connections (the tunnel) against
#             the ssh program with a handshake per chunk and with a master
#             per slot; the report gives the time per chunk.
# syncplan's WAN rows use its own connections (-F, the tunnel) unless
# they say -e ssh.
#
# Full copies start from an empty destination every run (hyperfine
# --prepare).  RUNS (default 5), WAN_RUNS (default 3) and NOCHANGE_RUNS
# (default 10) set the timed runs of the local copies, the WAN copies and
# the no-change resyncs.  Prints a dated markdown section for
# bench/RESULTS.md on stdout; hyperfine's progress goes to stderr.  The
# syncplan rows are skipped, and say so, while `syncplan copy --help` fails.
# Servers stop and the tmpfs goes however the script ends (tests/lib.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
usage() {
  echo "usage: bash bench/transfer.sh [BUILD_DIR] [local] [wan] [nochange] [chunks]" >&2
  exit 2
}
build=${1:-build}
[ $# -gt 0 ] && shift
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(local wan nochange chunks)
for s in "${scenarios[@]}"; do
  case $s in local | wan | nochange | chunks) ;; *) usage ;; esac
done
[ -x "$build/tests/mktree" ] && [ -x "$build/bench/wanproxy" ] ||
  { echo "build first: cmake --build $build (needs tests/mktree, bench/wanproxy)" >&2; exit 1; }
build_arg=$build
build=$(cd "$build" && pwd)
runs=${RUNS:-5} wan_runs=${WAN_RUNS:-3} nochange_runs=${NOCHANGE_RUNS:-10}

# tests/lib.sh brings the scratch directory, the exit hooks that stop every
# server however the script ends, and the sshd / wanproxy fixtures.
export SYNCPLAN="$build/cli/syncplan" MKTREE="$build/tests/mktree"
export TREECMP="$build/tests/treecmp" BUILD_DIR="$build" TESTS_DIR="$PWD/tests"
. tests/lib.sh
need hyperfine jq rsync rclone fpsync fpart cp ssh find awk
syncplan=$SYNCPLAN

if "$syncplan" copy --help >/dev/null 2>&1; then
  have_syncplan=1
else
  have_syncplan=0
  echo "note: '$syncplan copy --help' fails: syncplan rows skipped" >&2
fi

# Trees and destinations on tmpfs, so the disk is not what is measured:
# /dev/shm when it has room, else a tmpfs of our own (root only).
need_kib=$((4 * 1024 * 1024))
if [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ] &&
  (($(df -Pk /dev/shm | awk 'NR == 2 { print $4 }') > need_kib)); then
  base=$(mktemp -d /dev/shm/syncplan-bench.XXXXXX)
  at_exit "rm -rf $(printf %q "$base")"
else
  [ "$(id -u)" = 0 ] || fail "needs 4 GiB free on /dev/shm, or root to mount a tmpfs"
  base="$work/tmpfs"
  mkdir "$base"
  mount -t tmpfs -o size=4g,mode=0700 syncplan-bench "$base"
  at_exit "umount $(printf %q "$base")"
fi
# syncplan's journal and logs: on the tmpfs too, and wiped before every run.
export SYNCPLAN_STATE_DIR="$base/state"
res="$work/results"
mkdir "$res"
: >"$res/rows"

tree_bytes() {
  find "$1" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }'
}

local_tree() {
  [ -d "$base/local-src" ] && return
  echo "building the local tree (50,000 files)" >&2
  "$MKTREE" sample "$base/local-src" -n 50000 --max-size 16384
}

wan_tree() {
  [ -d "$base/wan-src" ] && return
  echo "building the wan tree (10,000 files + 8 x 32 MiB)" >&2
  "$MKTREE" sample "$base/wan-src" -n 10000 --max-size 16384
  mkdir "$base/wan-src/big"
  for i in 0 1 2 3 4 5 6 7; do
    head -c 32M /dev/urandom >"$base/wan-src/big/b$i"
  done
}

# The WAN link: a private sshd, wanproxy in front of it, and Host `wan` in
# $SSH_CONFIG going through the proxy (same host key, via HostKeyAlias).
wan_up() {
  [ -n "${WANPROXY_PID:-}" ] && return
  start_sshd
  start_wanproxy "$SSHD_PORT" --delay-ms 25 --conn-rate 25M --total-rate 100M
  add_ssh_host wan "$WANPROXY_PORT"
  ssh -F "$SSH_CONFIG" wan true || fail "ssh through wanproxy failed"
  rsh="ssh -F $SSH_CONFIG"
}

# Each scenario sets these for bench(): the rows' scenario name, source,
# destination, file bytes (0: no MiB/s column), timed and warm-up runs, and
# the command hyperfine runs before each run (empty: none).
scen= src= dst= bytes=0 n=1 warm=0 prep=
nbench=0

# bench TOOL CMD: time CMD with hyperfine and add a row to $res/rows
# (tab-separated: status, scenario, tool, mean, stddev, bytes, left).  After
# the last run, "left" counts the entries `rsync -a` would still change in
# the destination: 0 for a complete copy.
bench() {
  local tool=$1 cmd=$2 json="$res/$((++nbench)).json" left
  local args=(--style basic -r "$n" -w "$warm" --export-json "$json" -n "$tool")
  [ -n "$prep" ] && args+=(--prepare "$prep")
  echo "== $scen: $tool" >&2
  if ! hyperfine "${args[@]}" "$cmd" >&2; then
    printf 'failed\t%s\t%s\t\t\t\t\n' "$scen" "$tool" >>"$res/rows"
    return 0
  fi
  left=$(rsync -an --delete --itemize-changes "$src/" "$dst/" | wc -l)
  jq -r --arg s "$scen" --arg t "$tool" --arg b "$bytes" --arg l "$left" \
    '.results[0] | ["ok", $s, $t, .mean, .stddev, $b, $l] | @tsv' "$json" >>"$res/rows"
}

# bench_syncplan TOOL CMD: bench, or a "skipped" row without `syncplan copy`.
bench_syncplan() {
  if ((have_syncplan)); then
    bench "$@"
  else
    printf 'skipped\t%s\t%s\t\t\t\t\n' "$scen" "$1" >>"$res/rows"
  fi
}

# A full copy: before each run an empty destination, and no state left by
# an earlier run of any tool.
full_copy() { # SCENARIO SRC DST RUNS
  scen=$1 src=$2 dst=$3 n=$4 warm=0
  bytes=$(tree_bytes "$src")
  prep="rm -rf $dst $base/fpsync $SYNCPLAN_STATE_DIR"
}

run_local() {
  local_tree
  full_copy local "$base/local-src" "$base/local-dst" "$runs"
  bench_syncplan "syncplan copy -j 4" "$syncplan copy $src/ $dst/ -j 4"
  bench "rsync -a" "rsync -a $src/ $dst/"
  # fpsync's default rsync options minus -v (rsync -a prints nothing either).
  bench "fpsync -n 4" "fpsync -n 4 -t $base/fpsync -o '-lptgoD --numeric-ids' $src/ $dst/"
  bench "rclone sync --transfers 4" "rclone sync $src $dst --transfers 4 --config /dev/null -q"
  bench "cp -a (local limit)" "cp -a $src $dst"
  # syncplan's own chunk lists, made beforehand, each run by one
  # `rsync --files-from` (as syncplan does for a pull; a local source's
  # names go on the command line), four at a time by xargs; no crawl,
  # journal, progress or final pass.
  hand_lists "$src" -f 2000
  prep="$prep && mkdir $dst"
  bench "4 x rsync --files-from (xargs, lists made before)" \
    "ls $base/lists/* | xargs -P 4 -I{} rsync -aH --files-from={} --from0 $src/ $dst/"
  rm -rf "$dst"
}

# hand_lists SRC CHUNK-OPTIONS: chunk lists in $base/lists, for the rows
# that run rsync on ready-made chunks.
hand_lists() {
  local src=$1
  shift
  rm -rf "$base/lists"
  mkdir "$base/lists"
  "$syncplan" chunk "$@" -0 -o "$base/lists/part" "$src"
}

run_wan() {
  wan_tree
  wan_up
  full_copy "wan push" "$base/wan-src" "$base/wan-push" "$wan_runs"
  # Default chunks (streamed, with the spread limit) and -n 8 (eight
  # chunks balanced by bytes, after the whole crawl).
  # syncplan's own connections (the tunnel), and the ssh program with a
  # master connection per slot (-e).
  bench_syncplan "syncplan copy -j 8" "$syncplan copy $src/ wan:$dst/ -F '$SSH_CONFIG' -j 8"
  bench_syncplan "syncplan copy -j 8 -n 8" "$syncplan copy $src/ wan:$dst/ -F '$SSH_CONFIG' -j 8 -n 8"
  bench_syncplan "syncplan copy -j 8 -e ssh (masters)" "$syncplan copy $src/ wan:$dst/ -e '$rsh' -j 8"
  bench "rsync -a" "rsync -a -e '$rsh' $src/ wan:$dst/"
  # fpsync passes -o into a nested `sh -c '...'`, where an `-e 'ssh -F ...'`
  # cannot be quoted; rsync takes the same command from RSYNC_RSH instead.
  # fpsync creates only a local destination: its parallel rsyncs would race
  # to create a remote one ("mkdir failed: File exists"), so it is made
  # beforehand, as a user of fpsync has to.
  prep="$prep && mkdir $dst"
  # The issue's reference: a hand-balanced 8-way split (8 lists balanced
  # by bytes, made beforehand), 8 rsyncs at once, destination made first.
  hand_lists "$src" -n 8
  bench "8 x rsync, hand-balanced (xargs)" \
    "ls $base/lists/* | xargs -P 8 -I{} rsync -aH --files-from={} --from0 -e '$rsh' $src/ wan:$dst/"
  local j
  for j in 4 8; do
    bench "fpsync -n $j" \
      "RSYNC_RSH='$rsh' fpsync -n $j -t $base/fpsync -o '-lptgoD --numeric-ids' $src/ wan:$dst/"
  done
  rm -rf "$dst"

  full_copy "wan pull" "$base/wan-src" "$base/wan-pull" "$wan_runs"
  bench_syncplan "syncplan copy -j 8" "$syncplan copy wan:$src/ $dst/ -F '$SSH_CONFIG' -j 8"
  bench_syncplan "syncplan copy -j 8 -n 8" "$syncplan copy wan:$src/ $dst/ -F '$SSH_CONFIG' -j 8 -n 8"
  bench_syncplan "syncplan copy -j 8 -e ssh (masters)" "$syncplan copy wan:$src/ $dst/ -e '$rsh' -j 8"
  bench "rsync -a" "rsync -a -e '$rsh' wan:$src/ $dst/"
  prep="$prep && mkdir $dst"
  bench "8 x rsync, hand-balanced (xargs)" \
    "ls $base/lists/* | xargs -P 8 -I{} rsync -aH --files-from={} --from0 -e '$rsh' wan:$src/ $dst/"
  rm -rf "$dst"
}

# Resyncs onto an up-to-date destination, made locally (the "remote" one
# is on this machine too); hyperfine's warm-up run lets each tool bring it
# up to date by its own measure first.
no_change() { # SCENARIO SRC DST
  scen=$1 src=$2 dst=$3 n=$nochange_runs warm=1 bytes=0 prep="rm -rf $SYNCPLAN_STATE_DIR"
  rm -rf "$dst"
  rsync -a "$src/" "$dst/"
}

run_nochange() {
  local_tree
  wan_tree
  wan_up
  no_change "no change, local" "$base/local-src" "$base/local-dst"
  bench_syncplan "syncplan copy -j 4" "$syncplan copy $src/ $dst/ -j 4"
  bench "rsync -a" "rsync -a $src/ $dst/"
  rm -rf "$dst"
  no_change "no change, wan push" "$base/wan-src" "$base/wan-push"
  bench_syncplan "syncplan copy -j 8" "$syncplan copy $src/ wan:$dst/ -F '$SSH_CONFIG' -j 8"
  bench "rsync -a" "rsync -a -e '$rsh' $src/ wan:$dst/"
  rm -rf "$dst"
  no_change "no change, wan pull" "$base/wan-src" "$base/wan-pull"
  bench_syncplan "syncplan copy -j 8" "$syncplan copy wan:$src/ $dst/ -F '$SSH_CONFIG' -j 8"
  bench "rsync -a" "rsync -a -e '$rsh' wan:$src/ $dst/"
  rm -rf "$dst"
}

# 200 small chunks over the WAN link, 4 at a time: what a chunk costs
# beyond its data.  The tunnel's slots each keep one connection; the ssh
# program without sharing pays a handshake per chunk; with a master per
# slot (syncplan's -e default) it does not either.
chunks_tree() {
  [ -d "$base/chunks-src" ] && return
  "$MKTREE" sample "$base/chunks-src" -n 2000 --max-size 4096 >/dev/null
}

run_chunks() {
  chunks_tree
  wan_up
  full_copy "200 chunks, wan push" "$base/chunks-src" "$base/chunks-push" "$wan_runs"
  bench_syncplan "syncplan -j 4 -n 200" "$syncplan copy $src/ wan:$dst/ -F '$SSH_CONFIG' -j 4 -n 200"
  bench_syncplan "syncplan -j 4 -n 200 -e ssh (handshake per chunk)" \
    "$syncplan copy $src/ wan:$dst/ -e '$rsh -o ControlMaster=no -o ControlPath=none' -j 4 -n 200"
  bench_syncplan "syncplan -j 4 -n 200 -e ssh (masters)" "$syncplan copy $src/ wan:$dst/ -e '$rsh' -j 4 -n 200"
  bench "rsync -a" "rsync -a -e '$rsh' $src/ wan:$dst/"
  rm -rf "$dst"
}

t0=$SECONDS
for s in "${scenarios[@]}"; do
  "run_$s"
done

# ------------------------------------------------------------- the report
# Ratio: the time of rsync -a in the same scenario over the tool's time
# (above 1: faster than rsync).  MiB/s: the tree's file bytes over the time.
table() {
  awk -F '\t' '
    { st[NR] = $1; sc[NR] = $2; tl[NR] = $3; m[NR] = $4; sd[NR] = $5; b[NR] = $6; l[NR] = $7
      if ($1 == "ok" && $3 == "rsync -a") base[$2] = $4 }
    END {
      for (i = 1; i <= NR; i++) {
        if (st[i] == "skipped") { printf "| %s | %s | skipped: no `syncplan copy` yet | | | | |\n", sc[i], tl[i]; continue }
        if (st[i] == "failed") { printf "| %s | %s | failed | | | | |\n", sc[i], tl[i]; continue }
        rate = b[i] > 0 ? sprintf("%.1f", b[i] / m[i] / 1048576) : "-"
        ratio = base[sc[i]] ? sprintf("%.2fx", base[sc[i]] / m[i]) : "-"
        printf "| %s | %s | %.2f | %.2f | %s | %s | %s |\n", sc[i], tl[i], m[i], sd[i], rate, ratio, l[i]
      }
    }' "$res/rows"
}

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
sp_version=$("$syncplan" --version 2>/dev/null | awk '{ print $2 }' || true)
echo
echo "## Transfers, $(date -u +%Y-%m-%d) (${scenarios[*]})"
echo
echo "Machine: $(nproc) cores ($cpu), $(free -g | awk '/Mem:/ { print $2 }') GiB, $(uname -sr), trees on tmpfs."
echo "rsync $(rsync --version | awk 'NR == 1 { print $3 }'), rclone $(rclone version | awk 'NR == 1 { print $2 }'), fpsync $(fpsync -h 2>&1 | awk 'NR == 1 { print $2 }'), $(ssh -V 2>&1 | cut -d, -f1), syncplan ${sp_version:-?}."
echo "Command: \`bash bench/transfer.sh $build_arg ${scenarios[*]}\` (hyperfine: $runs runs per local copy and $wan_runs per WAN copy, each onto an empty destination; $nochange_runs runs per no-change resync, after one warm-up; $((SECONDS - t0)) s in all)."
case " ${scenarios[*]} " in *" wan "* | *" nochange "*)
  echo "WAN: bench/wanproxy in front of sshd on 127.0.0.1, 25 ms one way (50 ms round trip), 25 MiB/s per connection and 100 MiB/s in total, each direction."
  ;;
esac
echo "Trees: local = 50,000 files of 0-16 KiB; wan = 10,000 files of 0-16 KiB + 8 x 32 MiB; chunks = 2,000 files of 0-4 KiB."
echo
echo "| scenario | tool | mean (s) | σ (s) | MiB/s | rsync time / tool time | left to sync |"
echo "|---|---|---:|---:|---:|---:|---:|"
table
echo
echo "\"left to sync\": entries \`rsync -an --delete --itemize-changes\` still lists after the last run (rclone copies no symlinks and no empty directories)."
if grep -q $'\t200 chunks' "$res/rows"; then
  echo
  echo "Per chunk, 200 chunks on 4 slots: the run's time over 50 (each slot ran about 50 chunks one after the other)."
  echo
  echo "| tool | mean (s) | per chunk (ms) |"
  echo "|---|---:|---:|"
  awk -F '\t' '$1 == "ok" && $2 ~ /^200 chunks/ && $3 != "rsync -a" {
    printf "| %s | %.2f | %.0f |\n", $3, $4, $4 / 50 * 1000 }' "$res/rows"
fi
