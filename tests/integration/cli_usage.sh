# Bad input gets one clear line on stderr and exit status 2.
. "$TESTS_DIR/lib.sh"

mkdir "$work/dir"
touch "$work/file"

one_line_error() {
  expect_status 2 "$@"
  [ "$(wc -l <"$work/err")" = 1 ] ||
    fail "'$*' should print one error line, got: $(cat "$work/err")"
  grep -q '^syncplan: ' "$work/err" || fail "'$*': error lacks the prefix"
}

one_line_error "$SYNCPLAN" bogus
grep -q "unknown command 'bogus'" "$work/err" || fail "unknown command not named"
one_line_error "$SYNCPLAN" chunk "$work/dir"
grep -q 'exactly one of -n' "$work/err" || fail "missing mode not explained"
one_line_error "$SYNCPLAN" chunk -n 0 "$work/dir"
one_line_error "$SYNCPLAN" chunk -n x "$work/dir"
one_line_error "$SYNCPLAN" chunk -n 4 -f 10 "$work/dir"
one_line_error "$SYNCPLAN" chunk -n 4 -t "$work/dir"
one_line_error "$SYNCPLAN" chunk -s 4Q "$work/dir"
grep -q "'4Q'" "$work/err" || fail "bad size not quoted"
one_line_error "$SYNCPLAN" chunk -f 0 "$work/dir"
one_line_error "$SYNCPLAN" chunk -j 0 -n 2 "$work/dir"
one_line_error "$SYNCPLAN" chunk -n 2 "$work/dir" "$work/dir"
one_line_error "$SYNCPLAN" chunk -n 2 -x '[abc' "$work/dir"
grep -q 'invalid pattern' "$work/err" || fail "bad pattern not reported"
one_line_error "$SYNCPLAN" chunk -n 2 "$work/missing"
grep -q "$work/missing" "$work/err" || fail "missing directory not named"
one_line_error "$SYNCPLAN" chunk -n 2 "$work/file"
grep -q 'Not a directory' "$work/err" || fail "non-directory not explained"
expect_status 2 "$SYNCPLAN"

expect_status 0 "$SYNCPLAN" --help
grep -q '^  chunk' "$work/out" || fail "--help lacks the chunk command"
expect_status 0 "$SYNCPLAN" chunk --help
grep -q 'PART<TAB>SIZE<TAB>PATH' "$work/out" || fail "chunk --help lacks the format"
expect_status 0 "$SYNCPLAN" demo --help
expect_status 0 "$SYNCPLAN" --version
grep -Eq '^syncplan [0-9]+\.[0-9]+\.[0-9]+$' "$work/out" || fail "bad --version"

# An empty tree is not an error: n empty chunks, no lines.
expect_status 0 "$SYNCPLAN" chunk -n 3 -v "$work/dir"
[ ! -s "$work/out" ] || fail "empty tree printed entries"
[ "$(grep -c '^Part #' "$work/err")" = 3 ] || fail "-v should list 3 parts"
echo "cli_usage: ok"
