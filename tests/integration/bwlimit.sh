# One bandwidth cap for a whole job (bwlimit), through syncplan's own ssh
# connections: 4 workers pushing, then pulling, some 60 MiB with
# --bwlimit 8M against the suite's sshd.  The bytes the tunnel carried,
# over the time from the first chunk's start to the last chunk's end,
# must be within 5% of the cap; each transfer ends with the tree
# comparison.
. "$TESTS_DIR/lib.sh"
. "$TESTS_DIR/integration/transfer_common.sh"
need rsync jq awk
start_sshd
mkdir -p "$work/src"
for i in $(seq 1 11); do head -c $((5 << 20)) /dev/urandom >"$work/src/f$i"; done
"$MKTREE" sample "$work/src/small" -n 1000 >/dev/null

cap=$((8 << 20))
for way in push pull; do
  if [ "$way" = push ]; then
    from="$work/src/" to="$SSH_HOST:$work/$way/"
  else
    from="$SSH_HOST:$work/src/" to="$work/$way/"
  fi
  expect_status 0 "$SYNCPLAN" copy "$from" "$to" -F "$SSH_CONFIG" -j 4 \
    --bwlimit 8M --json
  check_same "$work/src" "$work/$way"
  jq -r 'select(.event == "chunk_start" or .event == "chunk_done") |
      "\(.event) \(.time)"' "$work/out" >"$work/times"
  [ "$(grep -c chunk_start "$work/times")" -ge 4 ] ||
    fail "$way: fewer than 4 chunks ran: $(cat "$work/times")"
  bytes=$(jq -r 'select(.event == "finish") | .ssh_sent + .ssh_received' \
    "$work/out")
  ratio=$(awk -v b="$bytes" -v cap="$cap" '
    $1 == "chunk_start" && (first == "" || $2 < first) { first = $2 }
    $1 == "chunk_done" && $2 > last { last = $2 }
    END { printf "%.3f", b / (last - first) / cap }' "$work/times")
  echo "$way: $bytes bytes, $ratio of the cap"
  awk -v r="$ratio" 'BEGIN { exit !(r >= 0.95 && r <= 1.05) }' ||
    fail "$way: the total rate is $ratio of the cap, not within 5%"
done
echo "bwlimit: ok"
