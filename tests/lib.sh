# Shared helpers for the shell tests.  Each test runs in its own scratch
# directory, removed on exit.  Tools a test needs are checked with `need`:
# a missing tool fails the test loudly, it never skips.
set -euo pipefail
export LC_ALL=C

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

need() {
  local t
  for t in "$@"; do
    command -v "$t" >/dev/null 2>&1 ||
      fail "required tool '$t' is not installed (README's setup installs it)"
  done
}

: "${SYNCPLAN:?SYNCPLAN must point at the syncplan binary}"
: "${MKTREE:?MKTREE must point at the mktree tool}"
: "${TREECMP:?TREECMP must point at the treecmp tool}"

work=$(mktemp -d "${TMPDIR:-/tmp}/syncplan-test.XXXXXX")
cleanup() {
  chmod -R u+rwx "$work" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# expect_status WANT CMD...: run CMD, fail unless it exits with WANT.
# Its stdout/stderr are kept in $work/out and $work/err.
expect_status() {
  local want=$1 got=0
  shift
  "$@" >"$work/out" 2>"$work/err" || got=$?
  [ "$got" = "$want" ] ||
    fail "'$*' exited $got, expected $want; stderr: $(cat "$work/err")"
}

# Run a command without the capabilities that let root ignore file modes,
# so an unreadable directory is unreadable in CI, which runs as root.
unprivileged() {
  if [ "$(id -u)" = 0 ]; then
    need setpriv
    setpriv --bounding-set=-dac_override,-dac_read_search \
      --inh-caps=-dac_override,-dac_read_search "$@"
  else
    "$@"
  fi
}

# The set of paths below DIR, NUL-separated and sorted.
tree_paths() {
  (cd "$1" && find . -mindepth 1 -printf '%P\0') | sort -z
}

# has_path LIST PATH: LIST (NUL-separated) contains PATH exactly.  Pure
# bash, because grep takes a newline in a pattern as two patterns.
has_path() {
  local p
  while IFS= read -r -d '' p; do
    [ "$p" = "$2" ] && return 0
  done <"$1"
  return 1
}
