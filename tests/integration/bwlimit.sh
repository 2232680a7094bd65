# One bandwidth cap for a whole job (bwlimit): 4 workers move some 60 MiB,
# with --bwlimit 8M pushing and pulling through syncplan's own ssh
# connections and copying locally with rsync (its stream carried through
# the job's tunnel to a receiver the job runs), and with --bwlimit 2M (30
# seconds: each rclone's start and listing weigh on a short run) with
# rclone (shares, re-divided through each rclone's remote control).  The bytes moved,
# over the time from the first chunk's start to the last chunk's end,
# must be within 5% of the cap; each transfer ends with the tree
# comparison.
. "$TESTS_DIR/lib.sh"
. "$TESTS_DIR/integration/transfer_common.sh"
need rsync rclone jq awk
start_sshd
mkdir -p "$work/src"
for i in $(seq 1 11); do head -c $((5 << 20)) /dev/urandom >"$work/src/f$i"; done
"$MKTREE" sample "$work/src/small" -n 1000 >/dev/null
# rclone does not copy symlinks (without -l): the tree for it has none;
# it keeps files, sizes, mtimes and contents (not modes or hard links).
cp -a "$work/src" "$work/src-plain"
find "$work/src-plain" -type l -delete
check_rclone_copy() {
  local d
  for d in "$1" "$2"; do
    (cd "$d" && find . -type f -printf '%P\t%s\t%T@\n' | sort) >"$d.list"
  done
  cmp -s "$1.list" "$2.list" || fail "rclone: files, sizes or mtimes differ"
  [ -z "$(rsync -rcn --itemize-changes "$1/" "$2/")" ] ||
    fail "rclone: contents differ"
}

for way in push pull local rclone; do
  from="$work/src/" to="$work/$way/" tool=rsync rate=8M cap=$((8 << 20))
  bytes='.tunnel_sent + .tunnel_received'
  case $way in
  push) to="$SSH_HOST:$work/$way/" ;;
  pull) from="$SSH_HOST:$work/src/" ;;
  rclone) from="$work/src-plain/" tool=rclone bytes=.bytes rate=2M
    cap=$((2 << 20)) ;;
  esac
  expect_status 0 "$SYNCPLAN" copy "$from" "$to" -F "$SSH_CONFIG" -j 4 \
    --tool "$tool" --bwlimit "$rate" --json
  if [ "$way" = rclone ]; then
    check_rclone_copy "$work/src-plain" "$work/$way"
  else
    check_same "$work/src" "$work/$way"
  fi
  jq -r 'select(.event == "chunk_start" or .event == "chunk_done") |
      "\(.event) \(.time)"' "$work/out" >"$work/times"
  [ "$(grep -c chunk_start "$work/times")" -ge 4 ] ||
    fail "$way: fewer than 4 chunks ran: $(cat "$work/times")"
  moved=$(jq -r "select(.event == \"finish\") | $bytes" "$work/out")
  ratio=$(awk -v b="$moved" -v cap="$cap" '
    $1 == "chunk_start" && (first == "" || $2 < first) { first = $2 }
    $1 == "chunk_done" && $2 > last { last = $2 }
    END { printf "%.3f", b / (last - first) / cap }' "$work/times")
  echo "$way: $moved bytes, $ratio of the cap"
  awk -v r="$ratio" 'BEGIN { exit !(r >= 0.95 && r <= 1.05) }' ||
    fail "$way: the total rate is $ratio of the cap, not within 5%"
done
echo "bwlimit: ok"
