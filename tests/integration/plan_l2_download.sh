# plans/l2_download.lua (Sync.py's download of an L2 production), pulled
# from a private sshd on 127.0.0.1: the job's wire rate stays under the
# cap (1.2 x, measured over the whole job), excluded files and
# directories are not pulled, an rsync killed mid-chunk is retried and
# the job still ends with exit 0, and the log file holds the job's lines.
# Ends with the tree comparison (the excluded paths left out on both
# sides).
. "$TESTS_DIR/lib.sh"
. "$TESTS_DIR/integration/transfer_common.sh"
need rsync jq pgrep awk
start_sshd

# The production on the "remote server".
"$MKTREE" sample "$work/prod" -n 300 --per-dir 40 >/dev/null
"$MKTREE" hostile "$work/prod/hostile" >/dev/null
for i in 1 2 3 4; do head -c 3000000 /dev/urandom >"$work/prod/d000/big$i"; done
head -c 500000 /dev/urandom >"$work/prod/d000/partial.tmp"
echo scratch >"$work/prod/hostile/names/x.tmp"
mkdir -p "$work/prod/.snapshot.1/d000"
head -c 500000 /dev/urandom >"$work/prod/.snapshot.1/d000/big1"

# What the plan's excludes (*.tmp, .snapshot*/) leave out, as treecmp -x
# arguments.
excluded=()
while IFS= read -r -d '' p; do excluded+=(-x "$p"); done < <(
  cd "$work/prod" && find . \( -type d -name '.snapshot*' -prune -printf '%P\0' \) \
    -o \( -name '*.tmp' -printf '%P\0' \))
[ "${#excluded[@]}" = 6 ] || fail "expected 3 excluded paths: ${excluded[*]}"

cap=$((4 << 20))
"$SYNCPLAN" run "$TESTS_DIR/../plans/l2_download.lua" --json \
  --set "source=$SSH_HOST:$work/prod/" --set "dest=$work/L2/" \
  --set "ssh_config=$SSH_CONFIG" --set "log_file=$work/L2_prod.log" \
  --set bwlimit=4M --set workers=4 --set chunks.count=8 \
  --set retry.backoff=1s..2s >"$work/out" 2>"$work/err" &
pid=$!
at_exit "kill -9 $pid 2>/dev/null || true"

# A transient failure: one chunk's rsync killed outright mid-transfer,
# a second after the first chunk started (the smallest chunk takes more
# at a quarter of the cap).
wait_events "$work/out" chunk_start 1 "$pid"
sleep 1
victim=""
for _ in $(seq 50); do
  victim=$(pgrep -f -- "--info=progress2 -- $SSH_HOST:$work/prod/ $work/L2/" |
    head -1 || true)
  [ -n "$victim" ] && kill -9 "$victim" 2>/dev/null && break
  victim=""
  sleep 0.1
done
[ -n "$victim" ] || fail "no rsync worker to kill: $(tail -5 "$work/err")"
st=0
wait "$pid" || st=$?
[ "$st" = 0 ] || fail "the download exited $st: $(tail -5 "$work/err")"

jq -c 'select(.event == "finish")' "$work/out" >"$work/finish"
field() { jq -r ".$1" "$work/finish"; }
[ "$(field chunks_done)" = 8 ] || fail "chunks done: $(field chunks_done) of 8"
[ "$(field retries)" -ge 1 ] || fail "the killed chunk was not retried"
jq -c 'select(.event == "chunk_retry" and .signal == 9)' "$work/out" |
  grep -q . || fail "no chunk_retry event for the killed rsync"

# The cap: every byte over the wire (listing, the killed attempt and its
# retry included) over the job's whole time.  Generous bounds: this is
# not a timing test.
rate=$(awk -v b="$(field ssh_received)" -v t="$(field elapsed)" \
  'BEGIN { printf "%d", b / t }')
echo "l2_download: $(field ssh_received) bytes in $(field elapsed) s:" \
  "$rate B/s, $(awk -v r="$rate" -v c="$cap" 'BEGIN { printf "%.3f", r / c }') of the cap"
[ "$rate" -le $((cap * 12 / 10)) ] || fail "rate $rate B/s over 1.2 x the cap $cap"
[ "$rate" -ge $((cap * 3 / 10)) ] || fail "rate $rate B/s: the workers idled"

# Excludes: nothing matching is on the destination.
[ -z "$(cd "$work/L2" && find . -name '*.tmp' -o -name '.snapshot*')" ] ||
  fail "excluded paths were pulled: $(cd "$work/L2" && find . -name '*.tmp' -o -name '.snapshot*')"
RSYNC_CHECK_OPTS="--exclude=*.tmp --exclude=.snapshot*/" \
  check_same "$work/prod" "$work/L2" "${excluded[@]}"

# The log file (Sync.py's --filename): the job's start and end, each
# chunk's end, and the killed attempt.
job=$(job_id "$work/err")
log=$work/L2_prod.log
[ -s "$log" ] || fail "no log file $log"
grep -q "info  job $job started" "$log" && grep -q "info  job $job: done in " "$log" ||
  fail "the log file lacks the job's start or end: $(cat "$log")"
[ "$(grep -c 'info  chunk [0-9]*: done in ' "$log")" = 8 ] ||
  fail "the log file lacks chunks' ends: $(cat "$log")"
grep -q 'warn  chunk [0-9]*: attempt 1 failed (killed by signal 9)' "$log" ||
  fail "the log file lacks the failed attempt: $(cat "$log")"
echo "plan_l2_download: ok"
