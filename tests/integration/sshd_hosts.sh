# Several private sshd at once (tests/lib.sh start_sshd_host): each with
# its own port and host key, all admitting the suite's user key; one killed
# mid-session stops answering entirely, comes back on its port with its key,
# or comes back with a new key that known_hosts refuses; the EXIT trap
# leaves none of them running.  Checked here on their own, so a broken
# fixture fails one test that names it.
. "$TESTS_DIR/lib.sh"
need ssh ssh-keygen ssh-keyscan ps

hosts=(dtn1 dtn2 dtn3)

# running PID: PID exists and is no zombie.
running() {
  local st
  st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [[ $st != Z* ]]
}

# served NAME: the SHA256 fingerprint of the key NAME's sshd offers now.
served() {
  ssh-keyscan -t ed25519 -p "$(sshd_port "$1")" 127.0.0.1 2>/dev/null |
    ssh-keygen -l -E sha256 -f - | cut -d' ' -f2
}

# await_gone PID WHAT: fail unless PID ends within 10 s.
await_gone() {
  local i
  for ((i = 0; i < 100; i++)); do
    running "$1" || return 0
    sleep 0.1
  done
  fail "$2 (pid $1) still runs 10 s later"
}

for h in "${hosts[@]}"; do
  start_sshd_host "$h"
done

# Each answers as the config names it, on a port of its own, with a key of
# its own, and the key it serves is the one known_hosts holds.
declare -A port=() fp=()
for h in "${hosts[@]}"; do
  port[$h]=$(sshd_port "$h")
  out=$(ssh -n -F "$SSH_CONFIG" "$h" 'echo ok') || fail "ssh $h failed"
  [ "$out" = ok ] || fail "ssh $h printed '$out', expected 'ok'"
  fp[$h]=$(ssh-keygen -l -E sha256 -f "$work/ssh-$h/host_ed25519.pub" | cut -d' ' -f2)
  [ "$(served "$h")" = "${fp[$h]}" ] || fail "$h serves another key than $work/ssh-$h's"
  grep -qxF "[127.0.0.1]:${port[$h]} $(cut -d' ' -f1,2 "$work/ssh-$h/host_ed25519.pub")" \
    "$work/ssh/known_hosts" || fail "known_hosts lacks [127.0.0.1]:${port[$h]} for $h"
  running "$(sshd_pid "$h")" || fail "sshd_pid $h ($(sshd_pid "$h")) is not running"
done
[ "$(printf '%s\n' "${port[@]}" "$SSHD_PORT" | sort -u | wc -l)" = 4 ] ||
  fail "ports not distinct: ${port[*]} and sptest's $SSHD_PORT"
[ "$(printf '%s\n' "${fp[@]}" | sort -u | wc -l)" = 3 ] ||
  fail "host keys not distinct: ${fp[*]}"
ssh -n -F "$SSH_CONFIG" sptest true || fail "ssh sptest failed alongside the hosts"

# kill_sshd mid-session: the session's command, a command that left the
# session's process tree, the client's connection and the listener all go.
ssh -F "$SSH_CONFIG" dtn2 'echo $$; exec sleep 30' </dev/null >"$work/session" 2>"$work/session.err" &
client=$!
for ((i = 0; i < 100; i++)); do
  [ -s "$work/session" ] && break
  sleep 0.1
done
session=$(cat "$work/session")
[ -n "$session" ] && running "$session" || fail "the session on dtn2 did not start"
orphan=$(ssh -n -F "$SSH_CONFIG" dtn2 'setsid sleep 60 </dev/null >/dev/null 2>&1 & echo $!')
running "$orphan" || fail "the detached command on dtn2 did not start"
listener=$(sshd_pid dtn2)
kill_sshd dtn2
for pid in "$listener" "$session" "$orphan"; do
  ! running "$pid" || fail "pid $pid of dtn2 still runs after kill_sshd"
done
[ -z "$(sshd_pid dtn2)" ] || fail "sshd_pid dtn2 not empty after kill_sshd"
await_gone "$client" "the ssh client of a session on the killed dtn2"
wait "$client" && fail "the session on the killed dtn2 ended with status 0"
! (exec 3<>"/dev/tcp/127.0.0.1/${port[dtn2]}") 2>/dev/null ||
  fail "dtn2's port ${port[dtn2]} still answers after kill_sshd"
expect_status 255 ssh -n -F "$SSH_CONFIG" dtn2 true
grep -q 'Connection refused' "$work/err" ||
  fail "ssh to the killed dtn2 failed for another reason: $(cat "$work/err")"
ssh -n -F "$SSH_CONFIG" dtn1 true || fail "dtn1 stopped answering when dtn2 was killed"
ssh -n -F "$SSH_CONFIG" dtn3 true || fail "dtn3 stopped answering when dtn2 was killed"
kill_sshd dtn2 # a no-op now

# restart_sshd: the same port and key, so strict host key checking passes.
restart_sshd dtn2
[ "$(sshd_port dtn2)" = "${port[dtn2]}" ] || fail "dtn2 came back on port $(sshd_port dtn2), not ${port[dtn2]}"
[ "$(sshd_pid dtn2)" != "$listener" ] && running "$(sshd_pid dtn2)" ||
  fail "sshd_pid dtn2 is not a new running sshd: $(sshd_pid dtn2)"
expect_status 0 ssh -n -F "$SSH_CONFIG" -o StrictHostKeyChecking=yes dtn2 true
[ "$(served dtn2)" = "${fp[dtn2]}" ] || fail "dtn2 came back with another key"
restart_sshd dtn2 # from running: killed first
expect_status 0 ssh -n -F "$SSH_CONFIG" -o StrictHostKeyChecking=yes dtn2 true

# change_host_key: the same port, a new key, and ssh refuses it.
change_host_key dtn3
[ "$(sshd_port dtn3)" = "${port[dtn3]}" ] || fail "dtn3 came back on port $(sshd_port dtn3), not ${port[dtn3]}"
new=$(served dtn3)
[ -n "$new" ] && [ "$new" != "${fp[dtn3]}" ] || fail "dtn3 serves '$new' after change_host_key, before ${fp[dtn3]}"
expect_status 255 ssh -n -F "$SSH_CONFIG" dtn3 true
grep -q 'Host key verification failed' "$work/err" ||
  fail "ssh to dtn3 with a changed key failed for another reason: $(cat "$work/err")"
grep -q 'REMOTE HOST IDENTIFICATION HAS CHANGED' "$work/err" ||
  fail "ssh to dtn3 did not see a changed key: $(cat "$work/err")"
expect_status 0 ssh -n -F "$SSH_CONFIG" dtn1 true

# The EXIT trap: a test that ends with a host and a session still running
# leaves neither behind, nor its scratch directory.
cat >"$work/inner.sh" <<'EOF'
. "$TESTS_DIR/lib.sh"
start_sshd_host solo
ssh -F "$SSH_CONFIG" solo 'echo $$; exec sleep 60' </dev/null >"$1/inner.session" 2>/dev/null &
for ((i = 0; i < 100; i++)); do
  [ -s "$1/inner.session" ] && break
  sleep 0.1
done
echo "$(sshd_pid solo) $(cat "$1/inner.session") $SSHD_PID" >"$1/inner.pids"
echo "$work" >"$1/inner.work"
EOF
# Without this test's exports, which say its own sshd runs.
env -u SSHD_PID -u SSHD_PORT -u SSH_CONFIG -u SSH_HOST -u SSH_RSH \
  bash "$work/inner.sh" "$work" || fail "a test with a host of its own failed"
read -r -a pids <"$work/inner.pids"
((${#pids[@]} == 3)) || fail "the inner test recorded '${pids[*]}', not 3 pids"
for pid in "${pids[@]}"; do
  ! running "$pid" || fail "pid $pid outlives the test that started it"
done
[ ! -e "$(cat "$work/inner.work")" ] || fail "the inner test's scratch directory outlives it"

echo "sshd_hosts: ok (ports ${port[*]})"
