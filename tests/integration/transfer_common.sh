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
