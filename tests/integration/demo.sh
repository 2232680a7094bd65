# The README's main job: generates a sample tree and chunks it.
. "$TESTS_DIR/lib.sh"
need sort cmp

expect_status 0 "$SYNCPLAN" demo -n 2000 "$work/demo"
grep -q 'sample tree: ' "$work/out" || fail "demo did not describe its tree"
[ "$(grep -c '^Part #' "$work/err")" = 4 ] || fail "demo should make 4 chunks"
cat "$work/demo/lists"/chunk.* | sort -z >"$work/all"
tree_paths "$work/demo/src" | cmp -s - "$work/all" || fail "demo lists incomplete"
echo "demo: ok"
