# The crawl of a hostile tree lists every entry exactly once (names with
# newlines, tabs, invalid UTF-8, 200-byte names, 60-deep paths, symlink
# loops, hard links), reports an unreadable directory without stopping,
# prunes excluded subtrees without reading them, and can stay on one
# filesystem.
. "$TESTS_DIR/lib.sh"
need find sort cmp setpriv

src="$work/src"
"$MKTREE" hostile "$src" --unreadable

# As root, `find` reads inside the unreadable directory; the scan runs
# without that privilege and must list the directory but not its contents.
(cd "$src" && find . -mindepth 1 -printf '%P\0') |
  { grep -zv '^unreadable/' || true; } | sort -z >"$work/expected"

expect_status 1 unprivileged "$SYNCPLAN" chunk -n 1 -0 -o "$work/list" "$src"
grep -q "cannot read 'unreadable': Permission denied" "$work/err" ||
  fail "unreadable directory not reported: $(cat "$work/err")"
sort -z "$work/list.1" >"$work/got"
cmp -s "$work/expected" "$work/got" || {
  diff <(tr '\0' '\n' <"$work/expected") <(tr '\0' '\n' <"$work/got") | head >&2
  fail "scan listing differs from find's"
}
# Spot checks on the awkward shapes (NUL-separated, so grep -z).
for p in 'names/new
line' $'names/\xff\xfe-bad' "deep/$(seq -f 'd%02g' -s / 1 60)/leaf" \
  "long/long-file-$(printf 'x%.0s' $(seq 1 190))" symlinks/loop-a symlinks/self \
  hardlinks/g3/three-c special/fifo empty/a/b unreadable; do
  has_path "$work/got" "$p" || fail "missing from the scan: $p"
done
[ "$(tr -cd '\0' <"$work/got" | wc -c)" = "$(tr -cd '\0' <"$work/expected" | wc -c)" ]

# The text format: PART<TAB>SIZE<TAB>PATH, sizes from lstat.
expect_status 1 unprivileged "$SYNCPLAN" chunk -n 1 "$src"
grep -qxF "1	1048576	files/random-1m" "$work/out" || fail "size/format line wrong"
grep -qxF "1	8388608	files/sparse" "$work/out" || fail "sparse size wrong"
grep -qxF "1	0	empty/a/b" "$work/out" || fail "empty dir not listed"

# Excluding the unreadable directory means it is never opened: no error.
expect_status 0 unprivileged "$SYNCPLAN" chunk -n 1 -0 -o "$work/ex" \
  -x unreadable/ -x '/deep/d01/d02' -x '*.txt' -x 'names/[a-z]*' "$src"
[ ! -s "$work/err" ] || fail "excluded directory was read: $(cat "$work/err")"
grep -zq '^unreadable$' "$work/ex.1" && fail "excluded dir listed"
grep -zq '^deep/d01/d02' "$work/ex.1" && fail "anchored exclude ignored"
grep -zqx 'deep/d01' "$work/ex.1" || fail "parent of excluded dir missing"
grep -zq '\.txt$' "$work/ex.1" && fail "*.txt not excluded"
grep -zqx 'names/with space' "$work/ex.1" && fail "names/[a-z]* not excluded"
grep -zqx 'names/-rf' "$work/ex.1" || fail "names/-rf wrongly excluded"
# Include before exclude: first match wins, as in rsync.
expect_status 0 unprivileged "$SYNCPLAN" chunk -n 1 -0 -o "$work/inc" \
  -x unreadable/ -i '*/' -i '*.txt' -x '*' "$src"
grep -zqx 'deep/d01/d02' "$work/inc.1" || fail "'+ */' did not keep directories"
grep -zqx 'symlinks/target.txt' "$work/inc.1" || fail "include ignored"
grep -zqx 'files/empty' "$work/inc.1" && fail "'- *' ignored after includes"

# Several thread counts give the same set.
for j in 1 3 16; do
  expect_status 1 unprivileged "$SYNCPLAN" chunk -j "$j" -n 1 -0 -o "$work/j$j" "$src"
  sort -z "$work/j$j.1" | cmp -s - "$work/got" || fail "-j $j listing differs"
done

# One filesystem: a tmpfs mounted inside the tree is listed (the mount
# point) but not entered with -b.  Runs in a private mount namespace.
mkdir "$src/mnt"
unshare -m bash -c '
  set -e
  mount -t tmpfs none "$1/mnt"
  touch "$1/mnt/inside"
  "$2" chunk -n 1 -0 -o "$3/all" -x unreadable/ "$1"
  "$2" chunk -b -n 1 -0 -o "$3/onefs" -x unreadable/ "$1"
' _ "$src" "$SYNCPLAN" "$work" || fail "mount namespace test could not run"
grep -zqx 'mnt/inside' "$work/all.1" || fail "crawl did not enter the mount"
grep -zqx 'mnt' "$work/onefs.1" || fail "-b dropped the mount point"
grep -zqx 'mnt/inside' "$work/onefs.1" && fail "-b crossed a filesystem"
echo "scan_hostile: ok"
