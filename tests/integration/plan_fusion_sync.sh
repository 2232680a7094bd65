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
  --set bwlimit=4M --set "log_dir=$work/flogs" --once)

# 1. Upload, progress as events (show_progress for programs): 4M keeps
# the job going for about 3 s, so progress comes every second, its
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
tty_job=$(job_id "$work/tty")
check_same "$work/here" "$work/there"

# 3. Download in fsync's loop: the remote changed; each run brings its
# changes; a SIGTERM between runs stops the loop with exit 0.
echo "made on the remote" >"$work/there/d001/remote-file"
head -c 100000 /dev/urandom >"$work/there/d000/dataset.parquet"
"${fusion[@]}" --set direction=download --set "local_path=$work/back/" \
  --set "schedule=every 3s" --set "log_dir=$work/flogs" --set log_level=debug \
  --json >"$work/loop.out" 2>"$work/loop.err" &
pid=$!
at_exit "kill -9 $pid 2>/dev/null || true"
wait_events "$work/loop.out" schedule 1 "$pid"
check_same "$work/there" "$work/back"
echo "later on the remote" >"$work/there/d001/remote-file-2"
wait_events "$work/loop.out" schedule 2 "$pid"
term_expect "$pid" 0
check_same "$work/there" "$work/back"
[ -f "$work/back/d001/remote-file-2" ] || fail "the second run did not download"
[ "$(jq -r 'select(.event == "finish") | .exit_code' "$work/loop.out" | sort -u)" = 0 ] ||
  fail "a download run failed: $(tail -3 "$work/loop.err")"

# The logs (log_path, log_level): each job's log in log_dir, at its
# level: info, the job's and chunks' lines; error (the plan's, as
# fsync's default), none of them; debug, the workers' command lines too.
down_job=$(jq -r 'select(.event == "start") | .job' "$work/loop.out" | head -1)
log() { echo "$work/flogs/$1/job.log"; }
[ -f "$(log "$up_job")" ] && [ -f "$(log "$tty_job")" ] && [ -f "$(log "$down_job")" ] ||
  fail "job logs missing in log_dir: $(ls "$work/flogs")"
grep -q "info  chunk 1: done in " "$(log "$up_job")" && ! grep -q ' debug ' "$(log "$up_job")" ||
  fail "log_level info: $(cat "$(log "$up_job")")"
! grep -q ' info ' "$(log "$tty_job")" || fail "log_level error: $(cat "$(log "$tty_job")")"
grep -q " debug chunk 1: rsync .* $SSH_HOST:$work/there/ $work/back/\$" "$(log "$down_job")" ||
  fail "log_level debug: no command line: $(cat "$(log "$down_job")")"
echo "plan_fusion_sync: ok"
