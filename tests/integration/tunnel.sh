# rsync's remote shell through syncplan.tunnel and one ssh session per
# slot (tests/lua/tunnel.lua), against the suite's sshd.
. "$TESTS_DIR/lib.sh"
need lua5.4 rsync
start_sshd
"$MKTREE" hostile "$work/src" >/dev/null
head -c $((48 << 20)) /dev/urandom >"$work/src/big"
WORK=$work SSH_CONFIG=$SSH_CONFIG SYNCPLAN=$SYNCPLAN TREECMP=$TREECMP \
  LD_PRELOAD="${SANITIZE_PRELOAD:-}" lua5.4 "$TESTS_DIR/lua/tunnel.lua" || { cat "$work/treecmp.log" | head -20; false; }
