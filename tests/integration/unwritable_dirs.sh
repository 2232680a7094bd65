# Directories whose mode lacks the owner's write bit, copied by a user who
# is not root.  One rsync copes by setting such a mode last; parallel
# chunks must too, or the first chunk to end locks the others out of the
# directory (they fail, and leave their temp files behind).  When the
# suite runs as root, syncplan runs as nobody here.
. "$TESTS_DIR/lib.sh"
. "$TESTS_DIR/integration/transfer_common.sh"
need rsync setpriv

if [ "$(id -u)" = 0 ]; then
  # $work is private to root: nobody works in a directory of its own.
  base=$(mktemp -d /tmp/syncplan-ro.XXXXXX)
  at_exit "chmod -R u+rwx $(printf %q "$base"); rm -rf $(printf %q "$base")"
  chmod 0755 "$base"
  chown 65534:65534 "$base"
  as_user() { setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@"; }
else
  base="$work"
  as_user() { "$@"; }
fi
export SYNCPLAN_STATE_DIR="$base/state"
final_log() { echo "$SYNCPLAN_STATE_DIR/logs/$(job_id "$work/err")/final.log"; }
# copy SRC DST: syncplan as the user, 4 workers on chunks of 40 entries,
# so that several chunks write into one directory at once.
copy() {
  as_user "$SYNCPLAN" copy "$1/" "$2/" -j 4 --files 40 >"$work/out" \
    2>"$work/err" || fail "copy $1 $2: $(cat "$work/err")"
  ! grep -q 'attempt' "$work/err" || fail "chunks were retried: $(cat "$work/err")"
}

src="$base/src"
mkdir -p "$src/ro/sub" "$src/rw"
for i in $(seq 400); do echo "ro $i" >"$src/ro/f$i"; done
for i in $(seq 100); do echo "sub $i" >"$src/ro/sub/g$i"; done
for i in $(seq 100); do echo "rw $i" >"$src/rw/h$i"; done
chown -R 65534:65534 "$src"
chmod 0500 "$src/ro/sub"
chmod 0555 "$src/ro"

copy "$src" "$base/dst"
check_same "$src" "$base/dst"
[ -e "$(final_log)" ] || fail "no final pass set the directories' modes"

# Only a file inside the read-only directories changed: the chunk writes
# into an existing directory of mode 0555, and the tree ends the same.
chmod u+w "$src/ro" "$src/ro/sub"
echo changed >"$src/ro/sub/g7"
touch -d @1200000000 "$src/ro/sub" "$src/ro"
chmod u-w "$src/ro" "$src/ro/sub"
copy "$src" "$base/dst"
check_same "$src" "$base/dst"

# Without such directories the run ends with the root's time alone.
chmod -R u+w "$src"
rm -rf "$src/ro"
copy "$src" "$base/dst2"
check_same "$src" "$base/dst2"
[ ! -e "$(final_log)" ] || fail "a tree without read-only directories took the final pass"
echo "unwritable_dirs: ok"
