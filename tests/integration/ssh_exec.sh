# The Lua module's ssh sessions (tests/lua/ssh_exec.lua) against a real
# sshd on 127.0.0.1.
. "$TESTS_DIR/lib.sh"
need lua5.4 ssh-keygen
start_sshd
ssh-keygen -q -t ed25519 -N '' -C other -f "$work/other" </dev/null
WORK=$work SSH_CONFIG=$SSH_CONFIG SSHD_PORT=$SSHD_PORT \
  LD_PRELOAD="${SANITIZE_PRELOAD:-}" lua5.4 "$TESTS_DIR/lua/ssh_exec.lua"
