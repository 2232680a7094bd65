# Direction (Fusion's upload/download): one plan's keys local_path and
# remote, with direction = "push" (or "upload") send the local tree to the
# host, and with "pull" (or "download") bring the host's tree here; each
# transfer ends with the tree comparison.
. "$TESTS_DIR/lib.sh"
. "$TESTS_DIR/integration/transfer_common.sh"
need rsync
start_sshd
"$MKTREE" hostile "$work/here" >/dev/null

plan() { # plan NAME DIRECTION LOCAL
  cat >"$work/$1.lua" <<P
return {
  local_path = "$3",
  remote = "$SSH_HOST:$work/there/",
  direction = "$2",
  ssh_config = "$SSH_CONFIG",
  workers = 3,
}
P
}
plan up upload "$work/here/"
expect_status 0 "$SYNCPLAN" run "$work/up.lua"
check_same "$work/here" "$work/there"

echo "changed on the host" >"$work/there/new-on-host"
plan down pull "$work/back/"
expect_status 0 "$SYNCPLAN" run "$work/down.lua"
check_same "$work/there" "$work/back"
[ -f "$work/back/new-on-host" ] || fail "pull did not bring the host's file"
echo "direction: ok"
