# Chunk lists fed to real rsync, one `rsync -aH --files-from --from0` per
# chunk, rebuild a tree equal to the hostile source: types, modes, sizes,
# mtimes, contents, symlink targets and hard-link groups (a group split
# across chunks would become separate inodes and fail the comparison).
# Arguments: the chunk mode, e.g. "-n 4", "-f 7", "-s 300k", "-t".
. "$TESTS_DIR/lib.sh"
need rsync find sort cmp

src="$work/src" dst="$work/dst"
"$MKTREE" hostile "$src"
mkdir "$dst" "$work/lists"

expect_status 0 "$SYNCPLAN" chunk "$@" -v -0 -o "$work/lists/c" "$src"
nparts=$(grep -c '^Part #' "$work/err")
nfiles=$(find "$work/lists" -type f | wc -l)
[ "$nparts" = "$nfiles" ] || fail "-v listed $nparts parts, $nfiles lists written"
for ((i = 1; i <= nfiles; i++)); do
  [ -f "$work/lists/c.$i" ] || fail "lists are not numbered 1..$nfiles"
done

# Every entry in exactly one chunk.
cat "$work/lists"/c.* | sort -z >"$work/all"
tree_paths "$src" >"$work/expected"
cmp -s "$work/all" "$work/expected" || fail "chunks do not hold each entry exactly once"

for list in "$work/lists"/c.*; do
  rsync -aHS --files-from="$list" --from0 "$src/" "$dst/" ||
    fail "rsync failed on $list"
done
# Directory times: several chunks write into one directory, so the final
# pass that the transfer engine does after all chunks is done here too.
rsync -a --include='*/' --exclude='*' "$src/" "$dst/"

"$TREECMP" "$src" "$dst" >"$work/diff" || {
  head -20 "$work/diff" >&2
  fail "destination differs from source after chunked rsync ($*)"
}
changes=$(rsync -aHn --delete --itemize-changes "$src/" "$dst/")
[ -z "$changes" ] || fail "rsync still sees changes: $changes"
echo "chunk_rsync $*: ok ($nfiles chunks)"
