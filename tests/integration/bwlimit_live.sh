# The cap changes while a job runs, without restarting its transfers:
# `syncplan bwlimit ID RATE` on the job's control socket, and a timetable
# switch (rclone's syntax) with the clock injected (SYNCPLAN_FAKE_TIME):
# some 60 MiB under 2M would take 30 s; raised to 32M after about 2 s the
# job ends within 12 s, with a bwlimit event saying why.  A rate the job
# refuses, and a job that is not running, are errors; the socket is 0600.
# Each transfer ends with the tree comparison.
. "$TESTS_DIR/lib.sh"
. "$TESTS_DIR/integration/transfer_common.sh"
need rsync jq
mkdir -p "$work/src"
for i in $(seq 1 12); do head -c $((5 << 20)) /dev/urandom >"$work/src/f$i"; done
export SYNCPLAN_STATE_DIR="$work/state"

# 1. syncplan bwlimit on a running job.
"$SYNCPLAN" copy "$work/src/" "$work/live/" -j 4 --bwlimit 2M --json \
  >"$work/live.out" 2>"$work/live.err" &
pid=$!
at_exit "kill -9 $pid 2>/dev/null || true"
for _ in $(seq 100); do
  job=$(job_id "$work/live.err")
  [ -n "$job" ] && [ -S "$work/state/jobs/$job.sock" ] && break
  sleep 0.1
done
[ -S "$work/state/jobs/$job.sock" ] || fail "no control socket"
[ "$(stat -c %a "$work/state/jobs/$job.sock")" = 600 ] || fail "socket not 0600"
sleep 2
expect_status 2 "$SYNCPLAN" bwlimit "$job" fast
expect_status 0 "$SYNCPLAN" bwlimit "$job" 32M
grep -q '"ok":true' "$work/out" || fail "bwlimit reply: $(cat "$work/out")"
wait "$pid" || fail "live job failed: $(tail -3 "$work/live.err")"
check_same "$work/src" "$work/live"
elapsed=$(jq -r 'select(.event == "finish") | .elapsed' "$work/live.out")
jq -c 'select(.event == "bwlimit" and .reason == "set" and .rate == 33554432)' \
  "$work/live.out" | grep -q . || fail "no bwlimit event"
echo "syncplan bwlimit: done in $elapsed s"
awk -v e="$elapsed" 'BEGIN { exit !(e < 12) }' ||
  fail "the new cap did not apply to the running job ($elapsed s)"
expect_status 1 "$SYNCPLAN" bwlimit "$job" 8M
grep -q "is not running" "$work/err" || fail "not running: $(cat "$work/err")"
[ ! -e "$work/state/jobs/$job.sock" ] || fail "socket left behind"

# 2. A timetable switch at 08:00 local time, the job started at 07:59:58
# on a Wednesday (Saturday has its own rate).
fake=$(date -d "2026-11-18 07:59:58" +%s)
cat >"$work/tt.lua" <<P
return {
  source = "$work/src/", dest = "$work/tt/", workers = 4,
  bwlimit = { "00:00,2M", "08:00,32M", "Sat-00:00,1M" },
}
P
SYNCPLAN_FAKE_TIME=$fake expect_status 0 "$SYNCPLAN" run "$work/tt.lua" --json
check_same "$work/src" "$work/tt"
elapsed=$(jq -r 'select(.event == "finish") | .elapsed' "$work/out")
jq -c 'select(.event == "bwlimit" and .reason == "timetable" and
  .rate == 33554432)' "$work/out" | grep -q . || fail "no timetable switch"
echo "timetable: done in $elapsed s"
awk -v e="$elapsed" 'BEGIN { exit !(e < 12) }' ||
  fail "the timetable did not switch the running job ($elapsed s)"
echo "bwlimit_live: ok"
