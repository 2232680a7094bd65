# delete = true: after all chunks, one pass removes destination entries
# absent from the source, keeps excluded ones (rsync's protection), and
# never touches anything outside the destination.
. "$TESTS_DIR/lib.sh"
. "$TESTS_DIR/integration/transfer_common.sh"
need rsync

"$MKTREE" hostile "$work/src"
expect_status 0 "$SYNCPLAN" copy "$work/src/" "$work/dst/" -n 4
mkdir -p "$work/dst/extra/sub" "$work/dst-sibling"
echo x >"$work/dst/extra/sub/file"
echo y >"$work/dst/stale file"
echo z >"$work/dst/keep.tmp"
echo s >"$work/dst-sibling/untouched"
echo s >"$work/dst/../outside"

# Without delete, extras stay.
expect_status 0 "$SYNCPLAN" copy "$work/src/" "$work/dst/" -n 4 --exclude '*.tmp'
[ -e "$work/dst/stale file" ] || fail "a copy without --delete deleted"

# A dry run of the deletion changes nothing.
expect_status 0 "$SYNCPLAN" copy "$work/src/" "$work/dst/" -n 4 --delete \
  --exclude '*.tmp' --dry-run
[ -e "$work/dst/stale file" ] || fail "--dry-run deleted"

expect_status 0 "$SYNCPLAN" copy "$work/src/" "$work/dst/" -n 4 --delete \
  --exclude '*.tmp'
[ ! -e "$work/dst/extra" ] || fail "extra directory survived --delete"
[ ! -e "$work/dst/stale file" ] || fail "stale file survived --delete"
[ -f "$work/dst/keep.tmp" ] || fail "--delete removed an excluded file"
[ -f "$work/dst-sibling/untouched" ] || fail "--delete reached a sibling directory"
[ -f "$work/outside" ] || fail "--delete reached outside the destination"
RSYNC_CHECK_OPTS="--exclude=*.tmp" check_same "$work/src" "$work/dst" -x keep.tmp

# A chunk that fails means no deletions at all.
echo y >"$work/dst/stale2"
echo changed >"$work/src/plain.txt"
chmod 000 "$work/src/plain.txt"
if [ -e "$work/src/plain.txt" ]; then
  expect_status 1 unprivileged "$SYNCPLAN" copy "$work/src/" "$work/dst/" \
    -n 4 --delete --retries 1
  grep -q 'deletions skipped' "$work/err" || fail "no 'deletions skipped' warning"
  [ -e "$work/dst/stale2" ] || fail "deletions ran although a chunk failed"
  chmod 644 "$work/src/plain.txt"
fi
echo "delete_pass: ok"
