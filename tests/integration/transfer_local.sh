# Local to local transfers of the hostile and the sample tree through
# `syncplan copy` and `syncplan run`, in every chunking mode, each checked
# by the oracle; then a second run that must find nothing to do.
. "$TESTS_DIR/lib.sh"
. "$TESTS_DIR/integration/transfer_common.sh"
need rsync lua5.4

"$MKTREE" hostile "$work/hostile"
"$MKTREE" sample "$work/sample" -n 3000 --max-size 65536

n=0
for mode in "-n 7" "--files 40" "--bytes 300k" "-n 1"; do
  n=$((n + 1))
  # shellcheck disable=SC2086
  expect_status 0 "$SYNCPLAN" copy "$work/hostile/" "$work/h$n/" -j 3 $mode
  check_same "$work/hostile" "$work/h$n"
done

# --files keeps the default byte limit, as fpsync's -f keeps -s: three
# 20 MiB files go to three chunks, not into one with the small ones.
mkdir -p "$work/big"
for i in 1 2 3; do head -c 20M /dev/zero >"$work/big/b$i"; done
cp -a "$work/sample/d000" "$work/big/"
expect_status 0 "$SYNCPLAN" copy "$work/big/" "$work/big2/" -j 3 --files 1000 \
  --json
chunks=$(grep -c '"event":"chunk_done"' "$work/out") || true
[ "$chunks" -ge 4 ] || fail "--files 1000 lost the byte limit: $chunks chunks"
check_same "$work/big" "$work/big2"

# A local source's chunks name their entries on rsync's command line
# (ROOT/./NAME under -R): a source spelt with "." components and doubled
# slashes still lands at the top of dest ...
expect_status 0 "$SYNCPLAN" copy "$work//./sample/./" "$work/dots/" -j 2
check_same "$work/sample" "$work/dots"
# ... and a chunk whose names do not fit in half of ARG_MAX (128 KiB under
# a 512 KiB stack; one chunk of 3000 names is about 200 KB as arguments)
# goes on stdin instead of failing with E2BIG.
( ulimit -s 512 && exec "$SYNCPLAN" copy "$work/sample/" "$work/long/" -n 1 ) \
  >"$work/out" 2>"$work/err" || fail "one long chunk: $(cat "$work/err")"
check_same "$work/sample" "$work/long"

# The chunks leave every directory's time right but the root's, which
# the run sets itself: no rsync final pass, unless the root's mode (which
# only rsync sets) differs.
final_log() { echo "$SYNCPLAN_STATE_DIR/logs/$(job_id "$work/err")/final.log"; }
expect_status 0 "$SYNCPLAN" copy "$work/hostile/" "$work/h-root/" -j 3 -n 5
check_same "$work/hostile" "$work/h-root"
[ ! -e "$(final_log)" ] || fail "a local copy ran the rsync final pass"
mkdir -m 0700 "$work/h-root2"
expect_status 0 "$SYNCPLAN" copy "$work/hostile/" "$work/h-root2/" -j 3 -n 5
check_same "$work/hostile" "$work/h-root2"
[ -e "$(final_log)" ] || fail "a root of another mode took no final pass"

# Without the trailing slash the directory itself lands inside dest.
expect_status 0 "$SYNCPLAN" copy "$work/sample" "$work/into" -j 4
check_same "$work/sample" "$work/into/sample"

# A plan file; the second run transfers nothing (rsync's own check).
cat >"$work/plan.lua" <<PLAN
local done = 0
return {
  source = "$work/sample/",
  dest = "$work/s2/",
  workers = 4,
  chunks = { count = 6 },
  on_chunk_done = function(c) done = done + 1 end,
  on_finish = function(r)
    io.stderr:write("plan saw ", done, " chunks, exit ", r.exit_code, "\n")
  end,
}
PLAN
expect_status 0 "$SYNCPLAN" run "$work/plan.lua"
grep -q 'plan saw 6 chunks, exit 0' "$work/err" || fail "hooks did not run: $(cat "$work/err")"
check_same "$work/sample" "$work/s2"
JOB=$(job_id "$work/err")
[ -n "$JOB" ] || fail "no job id printed"
journal_lua '
  local r = assert(j:run_get(id))
  assert(r.state == "done" and r.exit_code == 0, r.state)
  assert(r.chunks_done == r.chunks and r.chunks == 7, r.chunks_done .. "/" .. r.chunks)
  for _, c in ipairs(j:chunks(id)) do assert(c.attempts == 1, c.index) end'

# --json: one object per line, ending with the finish event.
expect_status 0 "$SYNCPLAN" run "$work/plan.lua" --json
tail -1 "$work/out" | grep -q '"event":"finish"' || fail "--json did not end with finish"
grep -vq '^{.*}$' "$work/out" && fail "--json printed a line that is not an object"
check_same "$work/sample" "$work/s2"
echo "transfer_local: ok"
