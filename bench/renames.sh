#!/bin/bash
# Rename-heavy resync benchmark: a mirror pushed over ssh (a private sshd
# on 127.0.0.1), then a third of its files renamed and a tenth of its
# directories moved under a new parent, then the resync, by
#   syncplan run (renames = true, delete; its own ssh connections),
#   rsync -a --delete -e ssh,
#   rclone sync --track-renames to an sftp remote on the same sshd,
# each onto its own copy of the first mirror, in the same run.  Reports
# the bytes each sent (syncplan: what its transport carried; rsync:
# --stats "Total bytes sent"; rclone: the files it copied, times their
# size, since its stats count server-side moves) and
# the wall time.  Not a test: run by hand, on a quiet machine.
#
#   bash bench/renames.sh [BUILD_DIR]
#
# FILES (default 1000) files of SIZE_KIB (default 256) KiB in 50
# directories.  Prints a dated markdown section for bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
build=$(cd "$build" && pwd)
export SYNCPLAN="$build/cli/syncplan" MKTREE="$build/tests/mktree"
export TREECMP="$build/tests/treecmp" BUILD_DIR="$build" TESTS_DIR="$PWD/tests"
. tests/lib.sh
need rsync rclone ssh awk jq
files=${FILES:-1000} kib=${SIZE_KIB:-256}
start_sshd
base=$(mktemp -d /dev/shm/syncplan-rnbench.XXXXXX)
at_exit "rm -rf $(printf %q "$base")"
export SYNCPLAN_STATE_DIR="$base/state"
src="$base/src"
for d in $(seq 1 50); do mkdir -p "$src/d$d"; done
for f in $(seq 1 "$files"); do
  head -c $((kib << 10)) /dev/urandom >"$src/d$((f % 50 + 1))/f$f"
done

cat >"$base/rclone.conf" <<EOF
[bench]
type = sftp
host = 127.0.0.1
port = $SSHD_PORT
user = $(id -un)
key_file = $work/ssh/id_ed25519
known_hosts_file = $work/ssh/known_hosts
EOF
cat >"$base/plan.lua" <<EOF
return { source = "$src/", dest = "$SSH_HOST:$base/sp/",
  ssh_config = "$SSH_CONFIG", renames = true, workers = 4 }
EOF

# The first mirror, then one copy of it per tool.
"$SYNCPLAN" run "$base/plan.lua" >/dev/null 2>&1
for t in rsync rclone; do cp -a "$base/sp" "$base/$t"; done

# Rename a third of the files, move a tenth of the directories.
n=0
for f in "$src"/d*/f*; do
  n=$((n + 1))
  [ $((n % 3)) = 0 ] && mv "$f" "$f.renamed"
done
mkdir "$src/archive"
for d in $(seq 1 5); do mv "$src/d$d" "$src/archive/"; done

timed() { # timed OUT CMD...: stdout to OUT, stderr to OUT.err; the seconds
  local t0 t1
  t0=$(date +%s.%N)
  "${@:2}" >"$1" 2>"$1.err" || { tail -5 "$1.err" >&2; fail "failed: ${*:2}"; }
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }'
}

t_sp=$(timed "$base/sp.out" "$SYNCPLAN" run "$base/plan.lua" --json)
b_sp=$(jq -r 'select(.event == "finish") | .tunnel_sent' "$base/sp.out")
moved=$(jq -r 'select(.event == "finish") | .renamed' "$base/sp.out")
t_rs=$(timed "$base/rs.out" rsync -a --delete --stats -e "$SSH_RSH" \
  "$src/" "$SSH_HOST:$base/rsync/")
# rclone prints its stats on stderr.
b_rs=$(awk -F': ' '/^Total bytes sent/ { gsub(",", "", $2); print $2 }' \
  "$base/rs.out")
t_rc=$(timed "$base/rc.out" rclone --config "$base/rclone.conf" sync \
  --track-renames -v "$src/" "bench:$base/rclone/")
# rclone's stats count a server-side move as transferred: the bytes it
# sent are its copied files (all of one size) instead.
c_rc=$(grep -c ': Copied (' "$base/rc.out.err" || true)
r_rc=$(grep -c ': Renamed' "$base/rc.out.err" || true)
b_rc=$((c_rc * kib * 1024))
for t in sp rsync rclone; do
  "$TREECMP" --ignore-dir-mtime "$src" "$base/$t" >/dev/null 2>&1 ||
    [ "$t" = rclone ] || fail "$t: the mirror differs from the source"
done
total=$((files * kib * 1024))

cat <<EOF
## Rename-heavy resync ($(date +%Y-%m-%d), $(nproc) cores, $(uname -m))

\`bash bench/renames.sh\`: $files files of $kib KiB ($((total >> 20)) MiB) in 50
directories, mirrored over ssh to a private sshd on 127.0.0.1; then
$((files / 3)) files renamed and 5 directories moved under a new one;
then the resync.

| tool | bytes sent | wall time (s) | note |
|---|---|---|---|
| syncplan (renames = true) | $b_sp | $t_sp | $moved moves on the destination |
| rsync -a --delete -e ssh | $b_rs | $t_rs | |
| rclone sync --track-renames (sftp) | $b_rc | $t_rc | $c_rc files copied, $r_rc renamed |
EOF
