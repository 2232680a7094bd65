# Detached jobs: start prints an id; status reads a running job from its
# socket (every JSON field checked) and a finished one from the journal;
# stop is graceful, then forced, and leaves no partial file; resume ends
# with an identical tree; two jobs at once stay apart; a job killed with
# -9 shows as interrupted, its stale socket goes, and it resumes; state,
# journal, socket, lock and logs are private; list and log show history.
. "$TESTS_DIR/lib.sh"
. "$TESTS_DIR/integration/transfer_common.sh"
need rsync jq stat

for d in $(seq 1 6); do
  mkdir -p "$work/src/d$d"
  head -c 1000000 /dev/urandom >"$work/src/d$d/f"
  echo "small $d" >"$work/src/d$d/s"
done
"$MKTREE" hostile "$work/src/hostile"

# 6 chunks, 2 workers sharing 1 MB/s: about 6 s in all.
plan() {
  cat >"$work/$1.lua" <<EOF
return {
  source = "$work/src/",
  dest = "$work/$1/",
  workers = 2,
  chunks = { count = 6 },
  bwlimit = "1M",
}
EOF
}

status_json() {
  "$SYNCPLAN" status --json "$1" >"$work/st.json" ||
    fail "status --json $1 failed"
  cat "$work/st.json"
}

# start returns at once with the id on stdout, the job runs on.
plan a
plan b
t0=$(date +%s.%N)
expect_status 0 "$SYNCPLAN" start "$work/a.lua"
ida=$(cat "$work/out")
t1=$(date +%s.%N)
[[ "$ida" =~ ^[0-9]{8}-[0-9]{6}-[0-9a-f]{4}$ ]] || fail "start printed '$ida'"
awk -v a="$t0" -v b="$t1" 'BEGIN { exit !(b - a < 3) }' ||
  fail "start did not return at once"
[ ! -s "$work/err" ] || fail "start wrote to stderr: $(cat "$work/err")"
pida=$(journal_lua "print(j:run_get('$ida').pid)")
at_exit "kill -9 $pida 2>/dev/null"
expect_status 0 "$SYNCPLAN" start "$work/b.lua"
idb=$(cat "$work/out")
pidb=$(journal_lua "print(j:run_get('$idb').pid)")
at_exit "kill -9 $pidb 2>/dev/null"
[ "$ida" != "$idb" ] || fail "two jobs, one id"

# The detached job is in a session of its own, without a terminal.
[ "$(ps -o sid= -p "$pida" | tr -d ' ')" = "$pida" ] ||
  fail "job $ida is not a session leader"

# Wait until both run chunks.
running_chunks() {
  "$SYNCPLAN" status --json "$1" | jq '.transferring | length'
}
for _ in $(seq 100); do
  [ "$(running_chunks "$ida")" -ge 1 ] && [ "$(running_chunks "$idb")" -ge 1 ] &&
    break
  sleep 0.1
done
sleep 1

# Permissions: state dir and jobs dir 0700, journal, socket, lock and
# logs 0600.
state=$SYNCPLAN_STATE_DIR
mode() { stat -c %a "$1"; }
[ "$(mode "$state")" = 700 ] || fail "state dir is $(mode "$state")"
[ "$(mode "$state/jobs")" = 700 ] || fail "jobs dir is $(mode "$state/jobs")"
[ "$(mode "$state/journal.db")" = 600 ] || fail "journal is $(mode "$state/journal.db")"
[ -S "$state/jobs/$ida.sock" ] || fail "no socket for $ida"
[ "$(mode "$state/jobs/$ida.sock")" = 600 ] || fail "socket is $(mode "$state/jobs/$ida.sock")"
[ "$(mode "$state/jobs/$ida.lock")" = 600 ] || fail "lock is $(mode "$state/jobs/$ida.lock")"
[ "$(mode "$state/logs/$ida")" = 700 ] || fail "log dir is $(mode "$state/logs/$ida")"
for f in "$state/logs/$ida"/*; do
  [ -d "$f" ] || [ "$(mode "$f")" = 600 ] || fail "$f is $(mode "$f")"
done

# status --json of a running job, field by field.
status_json "$ida" >/dev/null
check() { jq -e "$1" "$work/st.json" >/dev/null || fail "status: $1: $(cat "$work/st.json")"; }
check ".job == \"$ida\" and .state == \"running\" and .pid == $pida"
check ".plan == \"$work/a.lua\" and .source == \"$work/src/\" and .dest == \"$work/a/\""
check '.started > 0 and .finished == null and .elapsed > 0'
# Scow-Sync's fields
check ".recvAddress == \"localhost\" and .filePath == \"$work/src/\""
check '.transferSize > 6000000 and .progress >= 0 and .progress < 100'
check '(.speed | type) == "number" and .speed > 0'
check '.leftTime == null or .leftTime > 0'
# rclone core/stats
check '.bytes > 0 and .bytes < .totalBytes and .totalBytes == .transferSize'
check '(.transfers | type) == "number" and .errors == 0 and .checks >= 0'
check '.eta == .leftTime and .elapsedTime == .elapsed'
check '(.transferring | length) >= 1 and (.transferring | length) <= 2'
check '.transferring | all(.name == "chunk \(.chunk)" and .slot >= 1 and
  .host == "localhost" and .attempt == 1 and .size > 0 and .bytes <= .size and
  .percentage >= 0 and .percentage <= 100 and (.speed | type) == "number")'
# ours: workers, the cap in force, chunks
check '(.workers | length) == 2 and (.workers | all(.slot >= 1 and
  (.state | IN("idle", "connecting", "running", "waiting", "done"))))'
check '([.workers[] | select(.state == "running") | .chunk] | sort) ==
  ([.transferring[].chunk] | sort)'
check '.bwlimit == 1048576 and .chunks == 6 and .chunks_done >= 0 and
  .retries == 0 and .tool == "rsync" and .scan_done == true'

# Without an id: both jobs, each its own.
"$SYNCPLAN" status --json >"$work/all.json"
jq -e --arg a "$ida" --arg b "$idb" --arg w "$work" '
  length == 2 and
  (map(select(.job == $a))[0].dest == ($w + "/a/")) and
  (map(select(.job == $b))[0].dest == ($w + "/b/"))' "$work/all.json" >/dev/null ||
  fail "status of all jobs: $(cat "$work/all.json")"
expect_status 0 "$SYNCPLAN" status "$ida" --per-worker
grep -q "^job $ida  running  pid $pida  plan a.lua" "$work/out" ||
  fail "status: $(cat "$work/out")"
[ "$(grep -c '^ *[12] localhost' "$work/out")" = 2 ] ||
  fail "status --per-worker: $(cat "$work/out")"

# stop a: graceful first (no new chunk), forced after 1 s.
expect_status 0 "$SYNCPLAN" stop "$ida" --timeout 1
grep -q "interrupted; resume with: syncplan resume $ida" "$work/err" ||
  fail "stop said: $(cat "$work/err")"
status_json "$ida" >/dev/null
check '.state == "interrupted" and .exit_code == 3 and .finished > 0'
check '.chunks_done < 6 and (.transferring | length) == 0'
[ ! -e "$state/jobs/$ida.sock" ] || fail "socket left after stop"
[ ! -e "$state/jobs/$ida.lock" ] || fail "lock left after stop"
find "$work/a" -name '.syncplan-tmp-*' | grep -q . && fail "partial files left"
expect_status 1 "$SYNCPLAN" stop "$ida"
grep -q "is not running (interrupted)" "$work/err" || fail "stop twice: $(cat "$work/err")"

# b was not disturbed: it runs to the end.
expect_status 0 "$SYNCPLAN" status --watch "$idb" --interval 0.3
grep -q "^job $idb: done in" "$work/out" || fail "watch: $(cat "$work/out")"
[ "$(wc -l <"$work/out")" = 1 ] || fail "status --watch piped printed more than the summary"
check_same "$work/src" "$work/b"
status_json "$idb" >/dev/null
check '.state == "done" and .exit_code == 0 and .progress == 100 and
  .bytes == .totalBytes and .chunks_done == 6 and .errors == 0'

# resume a: the same tree.
expect_status 0 "$SYNCPLAN" resume "$ida"
check_same "$work/src" "$work/a"

# kill -9: interrupted, the stale socket goes, resume finishes.
rm -rf "$work/a"
expect_status 0 "$SYNCPLAN" start "$work/a.lua"
idk=$(cat "$work/out")
pidk=$(journal_lua "print(j:run_get('$idk').pid)")
at_exit "kill -9 $pidk 2>/dev/null"
for _ in $(seq 100); do
  [ -S "$state/jobs/$idk.sock" ] && [ "$(running_chunks "$idk")" -ge 1 ] && break
  sleep 0.1
done
kill -9 "$pidk"
while kill -0 "$pidk" 2>/dev/null; do sleep 0.1; done
[ -S "$state/jobs/$idk.sock" ] || fail "kill -9 should leave the socket file"
expect_status 1 "$SYNCPLAN" bwlimit "$idk" 2M
grep -q "not running (interrupted)" "$work/err" || fail "bwlimit on a dead job: $(cat "$work/err")"
[ ! -e "$state/jobs/$idk.sock" ] || fail "stale socket not removed"
status_json "$idk" >/dev/null
check '.state == "interrupted"'
expect_status 0 "$SYNCPLAN" resume "$idk"
check_same "$work/src" "$work/a"

# list: the history, newest first.
expect_status 0 "$SYNCPLAN" list
head -1 "$work/out" | grep -q '^JOB  *PLAN  *STARTED  *ENDED  *OUTCOME  *BYTES  *FILES$' ||
  fail "list header: $(head -1 "$work/out")"
grep -q "^$idk  *a.lua .* done  " "$work/out" || fail "list: $(cat "$work/out")"
"$SYNCPLAN" list --json --limit 2 >"$work/list.json"
[ "$(wc -l <"$work/list.json")" = 2 ] || fail "list --limit 2"
jq -se --arg k "$idk" '.[0].job == $k and .[0].state == "done" and
  .[0].bytes > 6000000 and .[0].files > 6 and .[0].finished >= .[0].started' \
  "$work/list.json" >/dev/null || fail "list --json: $(cat "$work/list.json")"

# log: the job's lines, and a chunk's tool output.
expect_status 0 "$SYNCPLAN" log "$idk"
grep -q "info  job $idk started" "$work/out" || fail "log: $(cat "$work/out")"
grep -q "info  job $idk resumed" "$work/out" || fail "log lacks the resume"
grep -q "chunk 1: attempt" "$work/out" || fail "log lacks chunk lines"
expect_status 0 "$SYNCPLAN" log "$idb" --chunk 1
expect_status 1 "$SYNCPLAN" log "$idb" --chunk 99
# A scheduled plan started detached: the id start printed names the loop,
# which status shows and stop ends, between runs too.
cat >"$work/loop.lua" <<EOF
return { source = "$work/src/", dest = "$work/loop/", schedule = "every 2s" }
EOF
expect_status 0 "$SYNCPLAN" start "$work/loop.lua"
idl=$(cat "$work/out")
pidl=$(journal_lua "print(j:run_get('$idl').pid)")
at_exit "kill -9 $pidl 2>/dev/null"
for _ in $(seq 100); do
  runs=$("$SYNCPLAN" status --json "$idl" | jq '.loop.runs // 0')
  [ "$runs" -ge 2 ] && break
  sleep 0.1
done
[ "$runs" -ge 2 ] || fail "the loop did not run twice"
status_json "$idl" >/dev/null
check ".loop.loop == \"$idl\" and .loop.pid == $pidl and .loop.runs >= 2"
[ "$(mode "$state/jobs/$idl.loop")" = 600 ] || fail "loop socket is $(mode "$state/jobs/$idl.loop")"
expect_status 0 "$SYNCPLAN" stop "$idl" --timeout 5
grep -q "the loop of job $idl: stopped after [0-9]* runs" "$work/err" ||
  fail "loop stop said: $(cat "$work/err")"
for _ in $(seq 50); do kill -0 "$pidl" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pidl" 2>/dev/null && fail "the loop still runs after stop"
[ ! -e "$state/jobs/$idl.loop" ] || fail "loop socket left"
check_same "$work/src" "$work/loop"
expect_status 1 "$SYNCPLAN" stop "$idl"

expect_status 1 "$SYNCPLAN" status 20000101-000000-0000
expect_status 2 "$SYNCPLAN" status --watch
echo "jobs: ok"
