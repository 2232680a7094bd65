# The README's main job: generates a sample tree and syncs it with the
# embedded default plan (several rsync workers); the copy must be exact.
. "$TESTS_DIR/lib.sh"
. "$TESTS_DIR/integration/transfer_common.sh"
need rsync

expect_status 0 "$SYNCPLAN" demo -n 2000 "$work/demo"
grep -q 'sample tree: ' "$work/out" || fail "demo did not describe its tree"
grep -q 'job .*: done in .*8/8 chunks done' "$work/err" ||
  fail "demo did not print its summary: $(cat "$work/err")"
check_same "$work/demo/src" "$work/demo/dst"
echo "demo: ok"
