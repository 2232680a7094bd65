# plans/fusion_sync.lua (Fusion's fsync) against a private sshd on
# 127.0.0.1, both directions with the same keys: an upload (--once) whose
# progress comes as --json events, another on a terminal (script(1))
# that draws the progress bar, then the download loop: two runs on the
# schedule bring the remote's changes, and a SIGTERM between runs ends
# it with exit 0.  log_level and log_dir (fsync's log_level, log_path)
# put each job's log where the plan says, at its level.  Each transfer
# ends with the tree comparison.
. "$TESTS_DIR/lib.sh"
. "$TESTS_DIR/integration/transfer_common.sh"
need rsync jq script
start_sshd
plan="$TESTS_DIR/../plans/fusion_sync.lua"

"$MKTREE" sample "$work/here" -n 200 --per-dir 40 >/dev/null
"$MKTREE" hostile "$work/here/hostile" >/dev/null
head -c 3000000 /dev/urandom >"$work/here/d000/dataset.parquet"
# The plan's command line with the test's ssh config and remote, and an
# upload's options.
fusion=("$SYNCPLAN" run "$plan" --set "ssh_config=$SSH_CONFIG"
  --set "remote=$SSH_HOST:$work/there/" --set workers=3)
upload=(--set direction=upload --set "local_path=$work/here/"
  --set bwlimit=2M --set "log_dir=$work/flogs" --once)

# 1. Upload, progress as events (show_progress for programs): 2M keeps
# the job going for about 2 s, so progress comes every second, its
# bytes never going back and never past the total.
expect_status 0 "${fusion[@]}" "${upload[@]}" --set log_level=info --json
check_same "$work/here" "$work/there"
jq -r 'select(.event == "progress") | "\(.bytes) \(.total_bytes)"' "$work/out" >"$work/progress"
[ "$(wc -l <"$work/progress")" -ge 2 ] || fail "fewer than 2 progress events: $(cat "$work/progress")"
awk '$1 < last || $1 > $2 { bad = 1 } { last = $1 } END { exit bad }' "$work/progress" ||
  fail "progress bytes went back or past the total: $(cat "$work/progress")"
up_job=$(job_id "$work/err")

# 2. Upload on a terminal: the progress bar (bytes, rate, ETA, workers),
# then the summary line.
head -c 3000000 /dev/urandom >"$work/here/d000/dataset.parquet"
st=0
script -qec "$(printf '%q ' "${fusion[@]}" "${upload[@]}")" /dev/null \
  </dev/null >"$work/tty" 2>&1 || st=$?
[ "$st" = 0 ] || fail "upload on a terminal exited $st: $(tail -c 300 "$work/tty")"
grep -aq 'ETA .*workers [0-9]' "$work/tty" || fail "no progress bar: $(tail -c 300 "$work/tty")"
grep -aq 'job .*: done in ' "$work/tty" || fail "no summary line: $(tail -c 300 "$work/tty")"
check_same "$work/here" "$work/there"

# 3. Download in fsync's loop: the remote changed; each run brings its
# changes; a SIGTERM between runs stops the loop with exit 0.
echo "made on the remote" >"$work/there/d001/remote-file"
head -c 100000 /dev/urandom >"$work/there/d000/dataset.parquet"
"${fusion[@]}" --set direction=download --set "local_path=$work/back/" \
  --set "schedule=every 2s" --set "log_dir=$work/flogs" --set log_level=debug \
  --json >"$work/loop.out" 2>"$work/loop.err" &
pid=$!
at_exit "kill -9 $pid 2>/dev/null || true"
wait_runs() { # N: until N runs have ended and the loop waits
  for _ in $(seq 200); do
    [ "$(grep -c '"event":"schedule"' "$work/loop.out")" -ge "$1" ] && return 0
    kill -0 "$pid" 2>/dev/null || fail "the loop ended: $(tail -3 "$work/loop.err")"
    sleep 0.1
  done
  fail "run $1 did not end within 20 s: $(tail -3 "$work/loop.err")"
}
wait_runs 1
check_same "$work/there" "$work/back"
echo "later on the remote" >"$work/there/d001/remote-file-2"
wait_runs 2
kill -TERM "$pid"
st=0
wait "$pid" || st=$?
[ "$st" = 0 ] || fail "a SIGTERM between runs: exit $st, not 0"
check_same "$work/there" "$work/back"
[ -f "$work/back/d001/remote-file-2" ] || fail "the second run did not download"
[ "$(jq -r 'select(.event == "finish") | .exit_code' "$work/loop.out" | sort -u)" = 0 ] ||
  fail "a download run failed: $(tail -3 "$work/loop.err")"

# The logs (log_path, log_level): each job's log in log_dir; at debug,
# the workers' command lines.
[ -s "$work/flogs/$up_job/job.log" ] || fail "no job log for the upload in log_dir"
down_job=$(jq -r 'select(.event == "start") | .job' "$work/loop.out" | head -1)
[ -s "$work/flogs/$down_job/job.log" ] || fail "no job log for the download in log_dir"
grep -q 'rsync' "$work/flogs/$down_job/job.log" ||
  fail "log_level debug: no command line in the log: $(head -5 "$work/flogs/$down_job/job.log")"
echo "plan_fusion_sync: ok"
