# kill -9 of syncplan in the middle of a run leaves a journal that
# resumes correctly: `syncplan resume ID` runs only the chunks that were
# not done (their attempts grow; done chunks keep their single attempt
# and their finish time) and the tree ends identical.
. "$TESTS_DIR/lib.sh"
. "$TESTS_DIR/integration/transfer_common.sh"
need rsync lua5.4

mkdir -p "$work/src"
for d in 1 2 3 4 5 6 7 8; do
  mkdir -p "$work/src/d$d"
  head -c 400000 /dev/urandom >"$work/src/d$d/f"
  echo "small $d" >"$work/src/d$d/s"
done
"$MKTREE" hostile "$work/src/hostile"

# 8 chunks, 2 workers, 1 MB/s in all: chunks finish one by one.
"$SYNCPLAN" copy "$work/src/" "$work/dst/" -j 2 -n 8 --bwlimit 1M \
  >"$work/out" 2>"$work/err" &
pid=$!
JOB=""
for _ in $(seq 100); do
  JOB=$(job_id "$work/err")
  [ -n "$JOB" ] && break
  sleep 0.1
done
[ -n "$JOB" ] || fail "no job id"
# Wait until at least two chunks are done, then kill -9.
for _ in $(seq 300); do
  n=$(journal_lua 'local n = 0
    for _, c in ipairs(j:chunks(id)) do
      if c.state == "done" and c.index > 0 then n = n + 1 end
    end
    print(n)')
  [ "$n" -ge 2 ] && break
  sleep 0.1
done
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
killed_at=$(date +%s.%N)
WORKDIR=$work journal_lua '
  local r = assert(j:run_get(id))
  assert(r.state == "running", "state after kill -9: " .. r.state)
  local done, left = {}, 0
  for _, c in ipairs(j:chunks(id)) do
    if c.index > 0 then
      if c.state == "done" then done[#done + 1] = c.index .. ":" .. c.finished
      else left = left + 1 end
    end
  end
  assert(#done >= 2 and left >= 1, #done .. " done, " .. left .. " left")
  local f = assert(io.open(os.getenv("WORKDIR") .. "/done-before", "w"))
  f:write(table.concat(done, "\n"), "\n")
  f:close()' 2>&1 || fail "journal after kill -9 not as expected"
[ -s "$work/done-before" ] || true

sleep 0.2
expect_status 0 "$SYNCPLAN" resume "$JOB"
grep -q "resumed" "$work/err" || fail "resume did not say what it resumed"
check_same "$work/src" "$work/dst"
KILLED_AT=$killed_at WORKDIR=$work journal_lua '
  local killed_at = tonumber(os.getenv("KILLED_AT"))
  local before = {}
  for l in io.lines(os.getenv("WORKDIR") .. "/done-before") do
    local i, t = l:match("^(%d+):(.*)$")
    before[tonumber(i)] = t
  end
  local r = assert(j:run_get(id))
  assert(r.state == "done" and r.exit_code == 0, r.state)
  for _, c in ipairs(j:chunks(id)) do
    assert(c.state == "done", "chunk " .. c.index .. " " .. c.state)
    if c.index > 0 and before[c.index] then
      assert(c.attempts == 1, "done chunk " .. c.index .. " ran again")
      assert(string.format("%s", c.finished) == before[c.index],
        "done chunk " .. c.index .. " was touched")
    elseif c.index > 0 then
      assert(c.started > killed_at, "chunk " .. c.index .. " did not run again")
    end
  end'
# Resuming a finished job does nothing.
expect_status 0 "$SYNCPLAN" resume "$JOB"
grep -q "already done" "$work/err" || fail "resume of a done job"
expect_status 2 "$SYNCPLAN" resume 20000101-000000-dead
echo "resume_kill9: ok"
