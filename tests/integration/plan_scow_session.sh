# plans/scow_session.lua, Scow-Sync's workflow against sshd on 127.0.0.1:
# check the key, start (an id comes back at once), query every running
# transfer as JSON, stop (partial files removed on the receiver), resume,
# and the destination equals the source.  The host is given as user,
# address, port and key, with no ssh configuration: only known_hosts.
. "$TESTS_DIR/lib.sh"
. "$TESTS_DIR/integration/transfer_common.sh"
need rsync jq
start_sshd
user=$(id -un)
key="$work/ssh/id_ed25519"

# A home with the server's key in known_hosts and nothing else.
export HOME="$work/home" SSH_AUTH_SOCK=
mkdir -p -m 700 "$HOME/.ssh"
printf '[127.0.0.1]:%s %s\n' "$SSHD_PORT" "$(cut -d' ' -f1,2 "$work/ssh/host_ed25519.pub")" \
  >"$HOME/.ssh/known_hosts"

for d in $(seq 1 6); do
  mkdir -p "$work/src/run$d"
  head -c 700000 /dev/urandom >"$work/src/run$d/data"
done
"$MKTREE" hostile "$work/src/hostile"

# Scow-Sync's -c: does the key log in?
expect_status 0 "$SYNCPLAN" check-key "$user@127.0.0.1:$SSHD_PORT" -i "$key"
[ "$(cat "$work/out")" = true ] || fail "check-key: $(cat "$work/out")"
expect_status 1 "$SYNCPLAN" check-key "$user@127.0.0.1:$SSHD_PORT" -i "$work/ssh/host_ed25519"
[ "$(cat "$work/out")" = false ] || fail "check-key with a wrong key: $(cat "$work/out")"

plan=$TESTS_DIR/../plans/scow_session.lua
set_args=(--set "source=$work/src/" --set "dest=$user@127.0.0.1:$work/dst/"
  --set "ssh_port=$SSHD_PORT" --set "ssh_key=$key" --set workers=2
  --set bwlimit=1M --set chunks.count=6)
expect_status 0 "$SYNCPLAN" start "$plan" "${set_args[@]}"
id=$(cat "$work/out")
pid=$(journal_lua "print(j:run_get('$id').pid)")
at_exit "kill -9 $pid 2>/dev/null"

# scow-sync-query: an array with this transfer.
for _ in $(seq 100); do
  "$SYNCPLAN" status --json >"$work/q.json"
  jq -e '.[0].transferring | length > 0' "$work/q.json" >/dev/null 2>&1 && break
  sleep 0.1
done
sleep 1
"$SYNCPLAN" status --json >"$work/q.json"
jq -e --arg id "$id" --arg u "$user" --arg w "$work" '
  length == 1 and .[0].job == $id and .[0].name == "scow-session" and
  .[0].recvAddress == ($u + "@127.0.0.1") and .[0].filePath == ($w + "/src/") and
  .[0].transferSize > 4000000 and .[0].progress > 0 and .[0].progress < 100 and
  .[0].speed > 0 and (.[0].leftTime == null or .[0].leftTime > 0) and
  (.[0].transferring | all(.host == ($u + "@127.0.0.1")))' "$work/q.json" >/dev/null ||
  fail "query: $(cat "$work/q.json")"

# scow-sync-terminate: stopped, no temporary files left on the receiver.
expect_status 0 "$SYNCPLAN" stop "$id" --timeout 1
"$SYNCPLAN" status --json "$id" | jq -e '.state == "interrupted"' >/dev/null ||
  fail "not interrupted after stop"
find "$work/dst" -name '.syncplan-tmp-*' | grep -q . && fail "partial files left on the receiver"
expect_status 0 "$SYNCPLAN" status --json
[ "$(cat "$work/out")" = "[]" ] || fail "a stopped job still listed: $(cat "$work/out")"

expect_status 0 "$SYNCPLAN" resume "$id"
check_same "$work/src" "$work/dst"
"$SYNCPLAN" list --json --limit 1 | jq -e --arg id "$id" \
  '.job == $id and .state == "done" and .name == "scow-session"' >/dev/null ||
  fail "list: $("$SYNCPLAN" list)"
echo "plan_scow_session: ok"
