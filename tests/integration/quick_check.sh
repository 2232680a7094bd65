# The quick check: entries already identical at the destination never
# reach rsync, passes that have nothing to do do not run, and every kind of
# difference is still sent.  Local to local and a push through a real sshd;
# after every run the oracle compares the trees.
. "$TESTS_DIR/lib.sh"
. "$TESTS_DIR/integration/transfer_common.sh"
need rsync ssh find jq touch cp
start_sshd

# sync SRC DST [ARGS...]: one `syncplan copy --json`; sets JOB, CHUNKS
# (chunk attempts started), UNCHANGED (entries not sent) and PASSES (the
# passes that ran, e.g. " final delete"; " root" when the run set the
# root's time itself instead of an rsync final pass).
sync() {
  local src=$1 dst=$2
  shift 2
  "$SYNCPLAN" copy "$src" "$dst" --json "$@" >"$work/ev" 2>"$work/err" ||
    fail "copy $src $dst $* failed: $(cat "$work/err")"
  JOB=$(job_id "$work/err")
  CHUNKS=$(jq -s '[.[] | select(.event == "chunk_start")] | length' "$work/ev")
  UNCHANGED=$(jq -s '.[] | select(.event == "finish") | .unchanged' "$work/ev")
  PASSES=
  local p
  [ "$(jq -s '.[] | select(.event == "finish") | .dir_times_set' "$work/ev")" = 1 ] &&
    PASSES=" root"
  for p in final delete; do
    [ -e "$SYNCPLAN_STATE_DIR/logs/$JOB/$p.log" ] && PASSES="$PASSES $p"
  done
  return 0
}

# expect WHAT CHUNKS PASSES: after a sync, CHUNKS chunks ("+" for at least
# one) and exactly these passes ran.
expect() {
  local what=$1 chunks=$2 passes=$3
  if [ "$chunks" = + ]; then
    [ "$CHUNKS" -gt 0 ] || fail "$what: nothing was sent"
  else
    [ "$CHUNKS" = "$chunks" ] || fail "$what: $CHUNKS chunk(s) sent, expected $chunks"
  fi
  [ "$PASSES" = "$passes" ] || fail "$what: passes '$PASSES', expected '$passes'"
}

one_side() { # NAME DST_SPEC DST_PATH [ARGS...]
  local name=$1 spec=$2 dst=$3
  shift 3
  local src="$work/src-$name"
  "$MKTREE" hostile "$src"
  ln -s aaaa "$src/qc-link"
  touch -h -d @1000000000 "$src/qc-link"
  echo pair >"$src/qc-h1"
  ln "$src/qc-h1" "$src/qc-h2"
  echo data >"$src/qc-file"
  local entries
  entries=$(find "$src" -mindepth 1 -printf x | wc -c)

  sync "$src/" "$spec/" "$@"
  expect "$name: first copy" + " root"
  check_same "$src" "$dst"

  sync "$src/" "$spec/" "$@"
  expect "$name: no change" 0 ""
  [ "$UNCHANGED" = "$entries" ] ||
    fail "$name: $UNCHANGED entries unchanged, the tree has $entries"
  check_same "$src" "$dst"

  # Each kind of difference, alone, is sent (and only what differs).
  touch -m -d @1200000000 "$src/qc-file"
  sync "$src/" "$spec/" "$@"
  expect "$name: mtime" 1 " root"
  [ "$UNCHANGED" = $((entries - 1)) ] ||
    fail "$name: mtime change: $UNCHANGED unchanged, expected $((entries - 1))"
  check_same "$src" "$dst"

  chmod 0600 "$src/qc-file"
  sync "$src/" "$spec/" "$@"
  expect "$name: mode" 1 " root"
  check_same "$src" "$dst"

  rm "$src/qc-link"
  ln -s bbbb "$src/qc-link"
  touch -h -d @1000000000 "$src/qc-link"
  sync "$src/" "$spec/" "$@"
  expect "$name: symlink target of the same length and time" 1 " root"
  check_same "$src" "$dst"

  # The destination's copies of a hard-linked pair became two files with
  # the same attributes: both names go again, and the link is restored.
  cp -p "$dst/qc-h1" "$dst/qc-h2.new"
  mv "$dst/qc-h2.new" "$dst/qc-h2"
  sync "$src/" "$spec/" "$@"
  expect "$name: hard link broken at the destination" 1 " root"
  check_same "$src" "$dst"

  # Damage at the destination is repaired like a change at the source.
  echo damaged >"$dst/qc-file"
  sync "$src/" "$spec/" "$@"
  expect "$name: destination file damaged" 1 " root"
  check_same "$src" "$dst"

  # Only the root's own time differs: no chunk, but the root's step.
  touch -m -d @1300000000 "$src"
  sync "$src/" "$spec/" "$@"
  expect "$name: root time" 0 " root"
  check_same "$src" "$dst"

  # Deletions: the pass runs when the destination has extra entries, and
  # not otherwise; excluded destination files stay.
  echo extra >"$dst/qc-extra"
  echo kept >"$dst/qc-kept.tmp"
  sync "$src/" "$spec/" --delete --exclude '*.tmp' "$@"
  expect "$name: extra destination entry" 0 " final delete"
  [ ! -e "$dst/qc-extra" ] || fail "$name: qc-extra was not deleted"
  [ -e "$dst/qc-kept.tmp" ] || fail "$name: an excluded file was deleted"
  rm "$dst/qc-kept.tmp" # which changes the destination's time: repaired
  sync "$src/" "$spec/" --delete "$@"
  expect "$name: destination root time" 0 " root"
  check_same "$src" "$dst"
  sync "$src/" "$spec/" --delete "$@"
  expect "$name: nothing to delete" 0 ""
  check_same "$src" "$dst"
}

one_side local "$work/dst-local" "$work/dst-local"
one_side push "$SSH_HOST:$work/dst-push" "$work/dst-push" -e "$SSH_RSH"

# Off by plan, and off when rsync is asked to compare contents: a change
# the quick check cannot see (same size and time) is then sent by -c.
src="$work/src-local" dst="$work/dst-local"
cat >"$work/off.lua" <<EOF
return { source = "$src/", dest = "$dst/", skip_unchanged = false }
EOF
"$SYNCPLAN" run "$work/off.lua" --json >"$work/ev" 2>"$work/err" ||
  fail "skip_unchanged = false: $(cat "$work/err")"
[ "$(jq -s '[.[] | select(.event == "chunk_start")] | length' "$work/ev")" -gt 0 ] ||
  fail "skip_unchanged = false still skipped every entry"
printf 'DATA\n' >"$dst/qc-file.new"
touch -r "$dst/qc-file" "$dst/qc-file.new"
chmod 0600 "$dst/qc-file.new"
mv "$dst/qc-file.new" "$dst/qc-file"
cat >"$work/c.lua" <<EOF
return { source = "$src/", dest = "$dst/", rsync_opts = { "-c" } }
EOF
"$SYNCPLAN" run "$work/c.lua" >"$work/out" 2>"$work/err" ||
  fail "rsync_opts -c: $(cat "$work/err")"
cmp -s "$src/qc-file" "$dst/qc-file" || fail "-c did not repair same-size content"
check_same "$src" "$dst"
echo "quick_check: ok"
