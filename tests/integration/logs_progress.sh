# Logs and the progress bar: log_level filters the job log, log_file gets
# the same lines, log_max removes the oldest jobs' logs and caps a chunk's
# log; on a terminal `run` draws a bar (and per-worker lines) in place,
# piped it prints nothing but the job's id line and its summary.
. "$TESTS_DIR/lib.sh"
. "$TESTS_DIR/integration/transfer_common.sh"
need rsync script jq

"$MKTREE" sample "$work/src" -n 3000
mkdir -p "$work/src/big"
head -c 3000000 /dev/urandom >"$work/src/big/f"
logs=$SYNCPLAN_STATE_DIR/logs

# Old jobs' logs, 30 KiB each, and one name that is not a job's.
mkdir -p -m 700 "$SYNCPLAN_STATE_DIR"
mkdir -p "$logs"
for i in 1 2 3 4 5; do
  mkdir -p "$logs/20200101-00000$i-000$i"
  head -c 30720 /dev/zero >"$logs/20200101-00000$i-000$i/job.log"
done
mkdir -p "$logs/keep-me"

cat >"$work/debug.lua" <<EOF
return {
  source = "$work/src/", dest = "$work/dst/", workers = 1,
  chunks = { count = 1 },
  rsync_opts = { "-i" }, -- a line per file: 3000 lines, over 64 KiB
  log_level = "debug", log_file = "$work/sync.log", log_max = "64K",
}
EOF
expect_status 0 "$SYNCPLAN" run "$work/debug.lua"
check_same "$work/src" "$work/dst"
id=$(job_id "$work/err")
# Piped: the id line and the summary, nothing else.
[ "$(wc -l <"$work/err")" = 2 ] || fail "piped run printed: $(cat "$work/err")"
grep -q "^job $id: done in " "$work/err" || fail "no summary: $(cat "$work/err")"
grep -q $'\r' "$work/err" && fail "piped run drew a progress bar"

jl=$logs/$id/job.log
grep -q "info  job $id started" "$jl" || fail "job.log lacks the start: $(head -3 "$jl")"
grep -q "debug chunk 1: rsync " "$jl" || fail "job.log lacks the command lines at debug"
grep -q "info  job $id: done in" "$jl" || fail "job.log lacks the summary"
cmp -s "$jl" "$work/sync.log" || fail "log_file differs from job.log"
[ "$(stat -c %a "$work/sync.log")" = 600 ] || fail "log_file is not 0600"
# log_max 64K: when the job started, the oldest jobs' logs went until the
# rest fit (150 KiB - 3 x 30 KiB), the newer ones and the directory that
# is not a job's stayed.
for i in 1 2 3; do
  [ ! -e "$logs/20200101-00000$i-000$i" ] || fail "old log $i not pruned"
done
[ -d "$logs/20200101-000004-0004" ] && [ -d "$logs/20200101-000005-0005" ] ||
  fail "pruned more than needed"
[ -d "$logs/keep-me" ] || fail "pruned a directory that is not a job's"
# A chunk's log stops at a tenth of log_max (at least 64 KiB), and says so.
big=$(ls -S "$logs/$id"/chunk-*.log | head -1)
size=$(stat -c %s "$big")
[ "$size" -le 66000 ] || fail "chunk log is $size bytes, over its cap"
tail -1 "$big" | grep -q '^\[syncplan: log truncated at 65536 bytes\]$' ||
  fail "truncated chunk log does not say so: $(tail -1 "$big")"
expect_status 0 "$SYNCPLAN" log "$id" --chunk 1

# log_level error: nothing but errors in the job log.
rm -rf "$work/dst"
cat >"$work/quiet.lua" <<EOF
return { source = "$work/src/", dest = "$work/dst/", log_level = "error",
  log_dir = "$work/mylogs" }
EOF
expect_status 0 "$SYNCPLAN" run "$work/quiet.lua"
id=$(job_id "$work/err")
[ -f "$work/mylogs/$id/job.log" ] || fail "log_dir not used"
[ ! -s "$work/mylogs/$id/job.log" ] || fail "log_level error kept: $(cat "$work/mylogs/$id/job.log")"
expect_status 0 "$SYNCPLAN" log "$id"
check_same "$work/src" "$work/dst"
expect_status 2 "$SYNCPLAN" run "$work/quiet.lua" --set log_level=bogus
grep -q 'log_level' "$work/err" || fail "bad log_level not named: $(cat "$work/err")"

# On a terminal: a bar redrawn in place, per-worker lines under it.
rm -rf "$work/dst"
cat >"$work/slow.lua" <<EOF
return { source = "$work/src/", dest = "$work/dst/", workers = 2,
  chunks = { count = 4 }, bwlimit = "2M" }
EOF
script -qefc "stty cols 140; $SYNCPLAN run $work/slow.lua --per-worker" /dev/null \
  >"$work/tty" 2>&1 </dev/null || fail "run on a terminal failed: $(tail -c 300 "$work/tty")"
check_same "$work/src" "$work/dst"
grep -q 'ETA' "$work/tty" || fail "no progress bar on a terminal"
[ "$(grep -o $'\r\e\\[K' "$work/tty" | wc -l)" -ge 3 ] ||
  fail "the bar was not redrawn in place"
grep -aq '\[[#-]*\]  *[0-9]*% ' "$work/tty" || fail "no bar: $(tail -c 300 "$work/tty" | cat -v)"
grep -q $'\e\\[1A' "$work/tty" || fail "no per-worker lines redrawn"
grep -aq ' 1 localhost  *running  *chunk ' "$work/tty" ||
  fail "no worker line: $(tail -c 400 "$work/tty" | cat -v)"
tail -c 300 "$work/tty" | grep -aq $'\e\\[Kjob .*: done in ' ||
  fail "no summary after the bar"
# No line of the bar is longer than the terminal.
tr '\r' '\n' <"$work/tty" | sed 's/\x1b\[[0-9]*[A-Za-z]//g' |
  awk 'length > 140 { bad = 1 } END { exit bad }' || fail "a bar line is wider than the terminal"
echo "logs_progress: ok"
