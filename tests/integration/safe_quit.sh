# Safe quit: the first SIGTERM lets the running chunks finish (each ends
# done in the journal, no chunk starts after it) and the job exits 3,
# resumable; a second SIGTERM stops running chunks at once.  Each case
# then resumes to the same tree, and leaves no temporary directory.
. "$TESTS_DIR/lib.sh"
. "$TESTS_DIR/integration/transfer_common.sh"
need rsync jq

mkdir -p "$work/src"
for d in $(seq 1 8); do
  mkdir -p "$work/src/d$d"
  head -c 1500000 /dev/urandom >"$work/src/d$d/f"
  echo "small $d" >"$work/src/d$d/s"
done
"$MKTREE" hostile "$work/src/hostile"

# 8 chunks, 2 workers at 2 MB/s in all: a chunk takes about 1.5 s.
start() {
  "$SYNCPLAN" copy "$work/src/" "$work/$1/" -j 2 -n 8 --bwlimit 2M --json \
    >"$work/$1.out" 2>"$work/$1.err" &
  pid=$!
  for _ in $(seq 100); do
    [ "$(grep -c '"chunk_start"' "$work/$1.out")" -ge 2 ] && return
    sleep 0.1
  done
  fail "$1: no two chunks started"
}

# One signal: the two running chunks finish.
start quit
kill -TERM "$pid"
st=0
wait "$pid" || st=$?
[ "$st" = 3 ] || fail "quit: exit $st, not 3: $(tail -3 "$work/quit.err")"
grep -q "quitting (signal TERM): 2 running chunks finish first" \
  "$work/quit.err" || fail "quit: not said: $(cat "$work/quit.err")"
started=$(jq -c 'select(.event == "chunk_start") | .chunk' "$work/quit.out" |
  sort -n | tr '\n' ' ')
done_=$(jq -c 'select(.event == "chunk_done") | .chunk' "$work/quit.out" |
  sort -n | tr '\n' ' ')
[ "$started" = "$done_" ] ||
  fail "quit: started $started but done $done_ (a chunk was cut or began)"
[ "$(echo "$done_" | wc -w)" -lt 8 ] || fail "quit: every chunk ran"
ls -a "$work/quit" | grep -q '^\.syncplan-tmp' && fail "quit: temp dir left"
job=$(job_id "$work/quit.err")
expect_status 0 "$SYNCPLAN" resume "$job"
check_same "$work/src" "$work/quit"

# Two signals: the running chunks stop at once.
start stop
kill -TERM "$pid"
sleep 0.2
kill -TERM "$pid"
st=0
wait "$pid" || st=$?
[ "$st" = 3 ] || fail "stop: exit $st, not 3"
grep -q "stopping (signal TERM): running chunks stop" "$work/stop.err" ||
  fail "stop: not said: $(cat "$work/stop.err")"
[ "$(jq -c 'select(.event == "chunk_done")' "$work/stop.out" | wc -l)" = 0 ] ||
  fail "stop: a chunk finished after the second signal"
ls -a "$work/stop" | grep -q '^\.syncplan-tmp' && fail "stop: temp dir left"
job=$(job_id "$work/stop.err")
expect_status 0 "$SYNCPLAN" resume "$job"
check_same "$work/src" "$work/stop"
echo "safe_quit: ok"
