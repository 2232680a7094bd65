# Schedules: a plan with schedule = "every 3s" whose runs take about 1.5 s
# (each run's on_finish rewrites a 1.5 MB file, sent at 1M, while
# $work/more exists) runs three
# times without overlap, each run starting 3 s after the previous one
# STARTED (the wait accounts for the run's own time); with "every 1s" a
# run that overruns is followed at once, never overlapped.  A SIGTERM
# between runs ends the loop at once with the last run's status (0); one
# during a run lets it finish its chunks and exits 3, with no run after.
# The trees are compared after the loops.
. "$TESTS_DIR/lib.sh"
. "$TESTS_DIR/integration/transfer_common.sh"
need rsync jq awk
mkdir -p "$work/src"
head -c 1500000 /dev/urandom >"$work/src/f"
echo keep >"$work/src/k"
touch "$work/more"

plan() { # plan NAME SCHEDULE
  cat >"$work/$1.lua" <<P
return {
  source = "$work/src/", dest = "$work/$1/", bwlimit = "1M",
  schedule = "$2",
  on_finish = function()
    if not io.open("$work/more") then return end
    os.execute("head -c 1500000 /dev/urandom >'$work/src/f.new' && " ..
      "mv '$work/src/f.new' '$work/src/f'")
  end,
}
P
}
# loop NAME RUNS STATUS: run the plan until RUNS runs have finished, then
# SIGTERM it; it must exit STATUS (0 between runs, 3 when the next run
# has begun at once); its events in $work/NAME.out.
loop() {
  "$SYNCPLAN" run "$work/$1.lua" --json >"$work/$1.out" 2>"$work/$1.err" &
  pid=$!
  at_exit "kill -9 $pid 2>/dev/null || true"
  for _ in $(seq 200); do
    [ "$(grep -c '"event":"schedule"' "$work/$1.out")" -ge "$2" ] && break
    sleep 0.1
  done
  kill -TERM "$pid"
  st=0
  wait "$pid" || st=$?
  [ "$st" = "$3" ] || fail "$1: exit $st after a SIGTERM, not $3"
  jq -r 'select(.event == "start" or .event == "finish") |
    "\(.event) \(.time)"' "$work/$1.out" >"$work/$1.times"
}

plan every3 "every 3s"
loop every3 3 0
[ "$(grep -c '^start' "$work/every3.times")" = 3 ] ||
  fail "every3: not 3 runs: $(cat "$work/every3.times")"
awk '$1 == "start" { if (f != "" && $2 < f) bad = bad " overlap";
    if (s != "") { d = $2 - s; if (d < 2.8 || d > 3.6) bad = bad " gap " d }
    s = $2 }
  $1 == "finish" { f = $2; if ($2 - s < 1) bad = bad " short run" }
  END { if (bad != "") { print bad; exit 1 } }' "$work/every3.times" ||
  fail "every3: runs not 3 s apart or overlapping: $(cat "$work/every3.times")"

plan every1 "every 1s"
loop every1 2 3
awk '$1 == "start" { if (f != "") { d = $2 - f
      if (d < 0) bad = bad " overlap"; if (d > 0.5) bad = bad " late " d } }
  $1 == "finish" { f = $2 }
  END { if (bad != "") { print bad; exit 1 } }' "$work/every1.times" ||
  fail "every1: an overrun run not followed at once: $(cat "$work/every1.times")"

# A signal during a run: it quits safely (3), no run follows.
plan quit "every 1s"
"$SYNCPLAN" run "$work/quit.lua" --json >"$work/quit.out" 2>"$work/quit.err" &
pid=$!
at_exit "kill -9 $pid 2>/dev/null || true"
for _ in $(seq 100); do
  grep -q '"chunk_start"' "$work/quit.out" && break
  sleep 0.1
done
kill -TERM "$pid"
st=0
wait "$pid" || st=$?
[ "$st" = 3 ] || fail "quit: exit $st, not 3"
[ "$(grep -c '"event":"start"' "$work/quit.out")" = 1 ] ||
  fail "quit: a run started after the signal"
rm "$work/more"
expect_status 0 "$SYNCPLAN" run "$work/every3.lua" --once
check_same "$work/src" "$work/every3"
echo "schedule: ok"
