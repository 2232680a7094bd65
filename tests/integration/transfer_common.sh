# Helpers of the transfer tests, sourced after lib.sh.
# The state directory of every test is its own, so tests never see the
# user's journal or each other's.
export SYNCPLAN_STATE_DIR="$work/state"

# check_same SRC DST [treecmp options]: the oracle.  The trees match
# (types, modes, sizes, mtimes, contents, symlink targets, hard-link
# groups, empty directories) and rsync sees nothing left to do.
check_same() {
  local src=$1 dst=$2
  shift 2
  "$TREECMP" "$@" "$src" "$dst" >"$work/diff" 2>&1 || {
    head -20 "$work/diff" >&2
    fail "destination $dst differs from source $src"
  }
  local changes
  # shellcheck disable=SC2086
  changes=$(rsync -aHn --delete --itemize-changes ${RSYNC_CHECK_OPTS:-} "$src/" "$dst/") ||
    fail "rsync -n failed comparing $src and $dst"
  [ -z "$changes" ] || fail "rsync still sees changes: $(printf '%s' "$changes" | head -5)"
}

# The job id printed on stderr when a run starts ("syncplan: job ID started").
job_id() {
  # A job started in the background may not have opened its file yet.
  [ -f "$1" ] || return 0
  sed -n 's/^syncplan: job \([0-9-]*[0-9a-f]*\) started.*/\1/p' "$1" | head -1
}

# journal_lua CODE: run Lua with `j` the test's journal and `id` = $JOB.
journal_lua() {
  LD_PRELOAD="${SANITIZE_PRELOAD:-}" JOB="${JOB:-}" lua5.4 -e "
    local sp = require 'syncplan'
    local j = assert(sp.journal(os.getenv('SYNCPLAN_STATE_DIR')))
    local id = os.getenv('JOB')
    $1"
}

# wait_events OUT EVENT N PID: wait until OUT, the stdout of `syncplan run
# --json` started in the background as PID, holds N events EVENT.  Fails
# when PID ends first, or after 30 s.
wait_events() {
  local out=$1 event=$2 n=$3 pid=$4 i got
  for ((i = 0; i < 300; i++)); do
    got=$(grep -c "\"event\":\"$event\"" "$out" 2>/dev/null || true)
    [ "${got:-0}" -ge "$n" ] && return 0
    kill -0 "$pid" 2>/dev/null || fail "the job ended before $n $event event(s)"
    sleep 0.1
  done
  fail "$n $event event(s) not seen within 30 s (${got:-0} seen)"
}

# term_expect PID WANT: SIGTERM the background job PID (a syncplan of this
# shell), fail unless it exits with WANT.
term_expect() {
  local st=0
  kill -TERM "$1"
  wait "$1" || st=$?
  [ "$st" = "$2" ] || fail "after a SIGTERM, exit $st, not $2"
}
