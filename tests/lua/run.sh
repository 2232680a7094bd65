# Run a Lua test with the stock interpreter, without root's override of
# file modes (see lib.sh), and LUA_CPATH pointing at the built module.
. "$TESTS_DIR/lib.sh"
need "$1"
export WORK="$work"
LD_PRELOAD="${SANITIZE_PRELOAD:-}" unprivileged "$1" "$2"
