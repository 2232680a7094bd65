# --dry-run runs the whole pipeline with rsync -n: a new destination is
# not created, an existing one is not changed in any way.
. "$TESTS_DIR/lib.sh"
. "$TESTS_DIR/integration/transfer_common.sh"
need rsync

"$MKTREE" hostile "$work/src"
expect_status 0 "$SYNCPLAN" copy "$work/src/" "$work/new/" -n 4 --dry-run
grep -q 'dry run' "$work/err" || fail "dry run not announced"
[ ! -e "$work/new" ] || fail "--dry-run created the destination"

# An old, partly different destination, and a snapshot of it.
"$MKTREE" sample "$work/old" -n 300
cp -a "$work/old" "$work/snapshot"
cat >"$work/plan.lua" <<PLAN
return { source = "$work/src/", dest = "$work/old/", delete = true,
         chunks = { files = 20 }, workers = 3 }
PLAN
expect_status 0 "$SYNCPLAN" run "$work/plan.lua" --dry-run
check_same "$work/snapshot" "$work/old"
echo "dry_run: ok"
