# Watch mode (watch = { delay = "1s" }, delete = true): after the first
# full pass, a file created, one modified, one deleted, one renamed (5 MB:
# moved on the destination, not sent again: it keeps its inode there) and
# a directory moved are on the destination within a few seconds of the
# changes, in one batch; an excluded file is not; a SIGTERM while waiting
# ends the loop with 0; changes made while stopped are picked up by the
# full pass of the next start.  Each step ends with the tree comparison.
. "$TESTS_DIR/lib.sh"
. "$TESTS_DIR/integration/transfer_common.sh"
need rsync jq
mkdir -p "$work/src/dir/sub"
echo one >"$work/src/modified"
echo two >"$work/src/deleted"
head -c 5000000 /dev/urandom >"$work/src/big"
echo three >"$work/src/dir/sub/f"
cat >"$work/plan.lua" <<P
return {
  source = "$work/src/", dest = "$work/dst/", delete = true,
  exclude = { "*.tmp" }, watch = { delay = "1s" },
}
P

# finishes N: wait (up to 20 s) until N runs have finished.
finishes() {
  for _ in $(seq 200); do
    [ "$(grep -c '"event":"finish"' "$work/w.out")" -ge "$1" ] && return 0
    sleep 0.1
  done
  fail "no finish number $1: $(tail -3 "$work/w.err")"
}
start() {
  "$SYNCPLAN" run "$work/plan.lua" --json >"$work/w.out" 2>"$work/w.err" &
  pid=$!
  # A failed check must not leave the loop running.
  at_exit "kill -9 $pid 2>/dev/null || true"
}
stop() {
  kill -TERM "$pid"
  st=0
  wait "$pid" || st=$?
  [ "$st" = 0 ] || fail "exit $st after a SIGTERM while watching"
}

start
finishes 1
check_same "$work/src" "$work/dst"
ino=$(stat -c %i "$work/dst/big")
t0=$(date +%s.%N)
echo created >"$work/src/created"
echo more >>"$work/src/modified"
rm "$work/src/deleted"
mv "$work/src/big" "$work/src/big-renamed"
mv "$work/src/dir" "$work/src/dir-moved"
echo scratch >"$work/src/x.tmp"
finishes 2
t1=$(date +%s.%N)
RSYNC_CHECK_OPTS="--exclude=*.tmp" check_same "$work/src" "$work/dst" -x x.tmp
awk -v a="$t0" -v b="$t1" 'BEGIN { exit !(b - a < 6) }' ||
  fail "changes took $(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }') s"
[ "$(stat -c %i "$work/dst/big-renamed")" = "$ino" ] ||
  fail "the renamed file was sent again"
jq -c 'select(.event == "renames" and .moved >= 2)' "$work/w.out" | grep -q . ||
  fail "the renames were not moves: $(grep renames "$work/w.out")"
jq -c 'select(.event == "watch" and .full == false)' "$work/w.out" | grep -q . ||
  fail "no batch of changed paths"
[ "$(grep -c '"event":"start"' "$work/w.out")" = 2 ] ||
  fail "the changes took more than one batch"
stop

# Changes while nobody watched: the next start's full pass sends them.
echo later >"$work/src/while-stopped"
rm "$work/src/modified"
start
finishes 1
RSYNC_CHECK_OPTS="--exclude=*.tmp" check_same "$work/src" "$work/dst" -x x.tmp
stop
echo "watch: ok"
