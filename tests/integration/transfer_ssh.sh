# Push and pull of the hostile tree through a real sshd on 127.0.0.1
# (keys and known_hosts made for this run): the pull lists the remote
# tree over ssh and chunks it like a local one.
. "$TESTS_DIR/lib.sh"
. "$TESTS_DIR/integration/transfer_common.sh"
need rsync ssh find
start_sshd

"$MKTREE" hostile "$work/src"

expect_status 0 "$SYNCPLAN" copy "$work/src/" "$SSH_HOST:$work/pushed/" \
  -e "$SSH_RSH" -j 3 -n 5
check_same "$work/src" "$work/pushed"

expect_status 0 "$SYNCPLAN" copy "$SSH_HOST:$work/src/" "$work/pulled/" \
  -e "$SSH_RSH" -j 3 --files 25
check_same "$work/src" "$work/pulled"

# Excludes apply to the remote listing too: an excluded directory's
# subtree is not pulled.
mkdir -p "$work/src2/keep" "$work/src2/skip/deep"
echo a >"$work/src2/keep/a"
echo b >"$work/src2/skip/deep/b"
expect_status 0 "$SYNCPLAN" copy "$SSH_HOST:$work/src2/" "$work/pulled2/" \
  -e "$SSH_RSH" --exclude skip/
[ -f "$work/pulled2/keep/a" ] || fail "pull lost keep/a"
[ ! -e "$work/pulled2/skip" ] || fail "excluded directory was pulled"

# An unreachable host: exit 4 (could not connect), nothing created.
expect_status 4 "$SYNCPLAN" copy "$work/src/" "nosuchhost.invalid:$work/x/" \
  -e "$SSH_RSH -o ConnectTimeout=3" --retries 1
[ ! -e "$work/x" ] || fail "a failed connection created the destination"
echo "transfer_ssh: ok"
