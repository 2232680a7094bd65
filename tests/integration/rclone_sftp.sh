# tool = "rclone": chunks sent by rclone workers to an rclone remote
# served by `rclone serve sftp` on 127.0.0.1.  rclone keeps contents,
# sizes and file mtimes, not modes, symlinks or directory times, so the
# oracle compares what rclone promises (see README, "rclone").
. "$TESTS_DIR/lib.sh"
. "$TESTS_DIR/integration/transfer_common.sh"
need rclone rsync find cmp
mkdir -p "$work/served"
start_rclone_sftp "$work/served"

"$MKTREE" sample "$work/src" -n 400 --max-size 100000
mkdir -p "$work/src/empty/nested" "$work/src/with space"
echo "awkward" >"$work/src/with space/it's [a] file"
find "$work/src" -type l -delete

expect_status 0 "$SYNCPLAN" copy "$work/src/" "$RCLONE_REMOTE:tree/" \
  --tool rclone -j 3 --files 50
# Same files, sizes, contents and mtimes; every directory (empty ones too).
(cd "$work/src" && find . -type f -printf '%P\t%s\t%TY%Tm%Td%TH%TM%TS\n' | sort) >"$work/want"
(cd "$work/served/tree" && find . -type f -printf '%P\t%s\t%TY%Tm%Td%TH%TM%TS\n' | sort) >"$work/got"
# Sub-second precision over sftp is whole seconds.
sed -i 's/\.[0-9]*$//' "$work/want" "$work/got"
cmp -s "$work/want" "$work/got" || {
  diff "$work/want" "$work/got" | head >&2
  fail "rclone destination differs (files, sizes or mtimes)"
}
(cd "$work/src" && find . -type d | sort) >"$work/dwant"
(cd "$work/served/tree" && find . -type d | sort) >"$work/dgot"
cmp -s "$work/dwant" "$work/dgot" || fail "directories differ"
rsync -rcn --itemize-changes "$work/src/" "$work/served/tree/" >"$work/changes"
[ ! -s "$work/changes" ] || fail "contents differ: $(head -3 "$work/changes")"

# --delete with rclone: the final pass is an rclone sync.
# Through the server: its directory cache would not see a file made
# behind its back.
echo extra | rclone rcat "$RCLONE_REMOTE:tree/zz-extra-file"
[ -f "$work/served/tree/zz-extra-file" ] || fail "rcat did not create the file"
expect_status 0 "$SYNCPLAN" copy "$work/src/" "$RCLONE_REMOTE:tree/" \
  --tool rclone -j 2 --delete
[ ! -e "$work/served/tree/zz-extra-file" ] || fail "rclone final pass did not delete"
echo "rclone_sftp: ok"
