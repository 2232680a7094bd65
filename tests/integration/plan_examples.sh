# The example plans in plans/ run as documented and end with an exact copy.
. "$TESTS_DIR/lib.sh"
. "$TESTS_DIR/integration/transfer_common.sh"
need rsync

plans="$TESTS_DIR/../plans"
mkdir -p "$work/src/derived" "$work/src/raw/run1" "$work/src/other"
"$MKTREE" sample "$work/src/raw/run1" -n 200
"$MKTREE" sample "$work/src/derived" -n 100 -s 7
echo notes >"$work/src/other/readme"
expect_status 0 "$SYNCPLAN" run "$plans/priority.lua" \
  --set "source=$work/src/" --set "dest=$work/dst/"
grep '^sending' "$work/out" >"$work/order"
head -1 "$work/order" | grep -q '^sending raw ' ||
  fail "raw was not sent first: $(cat "$work/order")"
sed -n 2p "$work/order" | grep -q '^sending derived ' ||
  fail "derived was not sent second: $(cat "$work/order")"
grep -q '^raw: ok' "$work/out" || fail "raw chunk not ok: $(cat "$work/out")"
check_same "$work/src" "$work/dst"
echo "plan_examples: ok"
