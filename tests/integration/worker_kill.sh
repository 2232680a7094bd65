# A worker killed with SIGKILL mid-transfer is a failure worth retrying:
# the chunk runs again and the tree ends identical.
. "$TESTS_DIR/lib.sh"
. "$TESTS_DIR/integration/transfer_common.sh"
need rsync pgrep lua5.4

mkdir -p "$work/src/a" "$work/src/b"
for i in 1 2 3 4; do
  head -c 3000000 /dev/urandom >"$work/src/a/big$i"
  head -c 3000000 /dev/urandom >"$work/src/b/big$i"
done
# --bwlimit keeps each rsync busy for seconds (4 workers share 2 MB/s).
"$SYNCPLAN" copy "$work/src/" "$work/dst/" -j 4 -n 4 --bwlimit 2M \
  --retries 3 >"$work/out" 2>"$work/err" &
pid=$!
victim=""
for _ in $(seq 100); do
  victim=$(pgrep -f -- "--info=progress2 -- .*$work/dst/" | head -1 || true)
  [ -n "$victim" ] && break
  sleep 0.1
done
[ -n "$victim" ] || fail "no rsync worker seen"
sleep 0.5
kill -9 "$victim"
status=0
wait "$pid" || status=$?
[ "$status" = 0 ] || fail "syncplan exited $status: $(cat "$work/err")"
grep -q 'killed by signal 9' "$work/err" || fail "the kill was not reported: $(cat "$work/err")"
check_same "$work/src" "$work/dst"
JOB=$(job_id "$work/err")
journal_lua '
  local retried = 0
  for _, c in ipairs(j:chunks(id)) do
    assert(c.state == "done", "chunk " .. c.index .. " " .. c.state)
    if c.attempts > 1 then retried = retried + 1 end
  end
  assert(retried == 1, "expected one retried chunk, got " .. retried)'
echo "worker_kill: ok"
