# plans/folder_mirror.lua (folder_sync's periodic replica) to a private
# sshd on 127.0.0.1, its interval shortened with --set: after the first
# sync a file is added, one deleted and a 20 MB file renamed into
# another directory; the next sync on the schedule deletes, adds, and
# moves the big file on the replica (same inode, under 1 MiB sent), and
# a SIGTERM between syncs (folder_sync's "quit") ends the loop with exit
# 0.  Each sync ends with the tree comparison.
. "$TESTS_DIR/lib.sh"
. "$TESTS_DIR/integration/transfer_common.sh"
need rsync jq
start_sshd

"$MKTREE" sample "$work/src" -n 200 --per-dir 40 >/dev/null
"$MKTREE" hostile "$work/src/hostile" >/dev/null
head -c $((20 << 20)) /dev/urandom >"$work/src/d000/big.dat"
echo doomed >"$work/src/d001/doomed"

"$SYNCPLAN" run "$TESTS_DIR/../plans/folder_mirror.lua" --json \
  --set "source=$work/src/" --set "dest=$SSH_HOST:$work/replica/" \
  --set "ssh_config=$SSH_CONFIG" --set "schedule=every 5s" \
  --set "log_dir=$work/logs" >"$work/out" 2>"$work/err" &
pid=$!
at_exit "kill -9 $pid 2>/dev/null || true"

# finish N FIELD: a field of sync N's finish event.
finish() { jq -s -r "[.[] | select(.event == \"finish\")][$1 - 1].$2" "$work/out"; }

wait_events "$work/out" schedule 1 "$pid" # sync 1 ended, the loop waits
[ "$(finish 1 exit_code)" = 0 ] || fail "sync 1 exited $(finish 1 exit_code)"
check_same "$work/src" "$work/replica"
ino=$(stat -c %i "$work/replica/d000/big.dat")

# Changes between syncs (the loop waits a few seconds).
echo fresh >"$work/src/d001/e00/new-file"
rm "$work/src/d001/doomed"
mv "$work/src/d000/big.dat" "$work/src/d001/big-renamed.dat"

wait_events "$work/out" schedule 2 "$pid"
term_expect "$pid" 0
[ "$(grep -c '"event":"start"' "$work/out")" = 2 ] ||
  fail "not 2 syncs: $(grep -c '"event":"start"' "$work/out")"
[ "$(finish 2 exit_code)" = 0 ] || fail "sync 2 exited $(finish 2 exit_code)"
check_same "$work/src" "$work/replica"
[ -f "$work/replica/d001/e00/new-file" ] || fail "the new file was not sent"
[ ! -e "$work/replica/d001/doomed" ] || fail "the deleted file is still on the replica"
[ "$(stat -c %i "$work/replica/d001/big-renamed.dat")" = "$ino" ] ||
  fail "the renamed file was sent again, not moved"
sent=$(finish 2 tunnel_sent)
echo "folder_mirror: sync 2 moved $(finish 2 renamed), sent $sent bytes"
[ "$(finish 2 renamed)" -ge 1 ] || fail "sync 2 moved nothing"
[ "$sent" -lt $((1 << 20)) ] || fail "sync 2 sent $sent bytes: the big file went again"

# The log directory (-l LOG_DIR): each sync's job log.
for job in $(jq -r 'select(.event == "start") | .job' "$work/out"); do
  [ -s "$work/logs/$job/job.log" ] || fail "no job log for sync $job in log_dir"
done
echo "plan_folder_mirror: ok"
