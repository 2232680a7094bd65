# Rename-aware mirroring (renames = true) to a host over ssh: after a
# first run, renaming a 100 MiB file, moving a directory (and renaming a
# file inside it) and replacing a file by a copy with its mtime (another
# inode: found by size, mtime and content hash) cost no re-send: the
# bytes the transport carried stay under 1 MiB, the big file keeps its
# inode on the destination, and a vanished file is deleted.  The record
# lives in the journal, so each run is a new process.  Each run ends with
# the tree comparison.
. "$TESTS_DIR/lib.sh"
. "$TESTS_DIR/integration/transfer_common.sh"
need rsync jq sha256sum
start_sshd
mkdir -p "$work/src/proj/data" "$work/src/keep"
head -c $((100 << 20)) /dev/urandom >"$work/src/big"
for i in 1 2 3 4; do head -c 300000 /dev/urandom >"$work/src/proj/data/f$i"; done
head -c 2000000 /dev/urandom >"$work/src/keep/copied"
echo gone >"$work/src/keep/vanishes"
"$MKTREE" hostile "$work/src/hostile" >/dev/null
cat >"$work/plan.lua" <<P
return {
  source = "$work/src/",
  dest = "$SSH_HOST:$work/dst/",
  ssh_config = "$SSH_CONFIG",
  renames = true,
  workers = 3,
}
P
run() { # run N: the plan, its finish event in $work/finish.N
  expect_status 0 "$SYNCPLAN" run "$work/plan.lua" --json
  jq -c 'select(.event == "finish")' "$work/out" >"$work/finish.$1"
  check_same "$work/src" "$work/dst"
}
field() { jq -r ".$2" "$work/finish.$1"; }

run 1
[ "$(field 1 tunnel_sent)" -gt $((100 << 20)) ] || fail "run 1 sent too little"
ino=$(stat -c %i "$work/dst/big")

mv "$work/src/big" "$work/src/proj/big-renamed"
mv "$work/src/proj/data" "$work/src/moved-data"
mv "$work/src/moved-data/f2" "$work/src/moved-data/f2-renamed"
cp -p "$work/src/keep/copied" "$work/src/keep/copy2"
rm "$work/src/keep/copied" "$work/src/keep/vanishes"
run 2
sent=$(field 2 tunnel_sent)
echo "run 2: $(field 2 renamed) moves, $sent bytes sent"
[ "$(field 2 renamed)" -ge 4 ] || fail "run 2: $(field 2 renamed) moves, not 4"
[ "$sent" -lt $((1 << 20)) ] || fail "run 2 sent $sent bytes: moves were re-sent"
[ "$(stat -c %i "$work/dst/proj/big-renamed")" = "$ino" ] ||
  fail "the big file was sent again, not moved"
[ ! -e "$work/dst/keep/vanishes" ] || fail "a vanished file was not deleted"

# Nothing moved: nothing to do, nothing sent but the file lists.
run 3
[ "$(field 3 renamed)" = 0 ] || fail "run 3 moved $(field 3 renamed)"
echo "renames: ok"
