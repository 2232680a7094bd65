# syncplan check-key against a real sshd on 127.0.0.1: true when a key
# logs in; false, with the reason and a non-zero status, for a refused
# key, a changed or unknown host key, and a host that does not answer.
. "$TESTS_DIR/lib.sh"
need ssh-keygen
start_sshd
d="$work/ssh"
user=$(id -un)
hostkey=$(cut -d' ' -f1,2 "$d/host_ed25519.pub")
fingerprint=$(ssh-keygen -l -E sha256 -f "$d/host_ed25519.pub" | cut -d' ' -f2)

answer() { # WANT: what check-key printed on stdout
  [ "$(cat "$work/out")" = "$1" ] ||
    fail "check-key printed '$(cat "$work/out")', expected '$1'; stderr: $(cat "$work/err")"
}
said() { # PATTERN: on check-key's stderr
  grep -q -- "$1" "$work/err" || fail "stderr lacks '$1': $(cat "$work/err")"
}

# The suite's ssh configuration: an alias with HostName, Port, User,
# IdentityFile, UserKnownHostsFile and HostKeyAlias, reached through an
# Include.
expect_status 0 "$SYNCPLAN" check-key sptest -F "$SSH_CONFIG"
answer true

# No configuration: USER@HOST:PORT, the default key and known_hosts under
# $HOME.
home="$work/home"
mkdir -p -m 700 "$home/.ssh"
cp "$d/id_ed25519" "$home/.ssh/id_ed25519"
printf '[127.0.0.1]:%s %s\n' "$SSHD_PORT" "$hostkey" >"$home/.ssh/known_hosts"
HOME=$home SSH_AUTH_SOCK= expect_status 0 "$SYNCPLAN" check-key \
  "$user@127.0.0.1:$SSHD_PORT"
answer true

# The key in an ssh-agent only: no key file under $HOME.  An agent with
# no key that works, then none at all, is refused (exit 1).
need ssh-agent ssh-add
ahome="$work/agent-home"
mkdir -p -m 700 "$ahome/.ssh"
cp "$home/.ssh/known_hosts" "$ahome/.ssh/known_hosts"
eval "$(ssh-agent -s -a "$work/agent.sock")" >/dev/null
at_exit "kill $SSH_AGENT_PID"
ssh-add -q "$d/id_ed25519" 2>/dev/null || fail "ssh-add failed"
HOME=$ahome expect_status 0 "$SYNCPLAN" check-key "$user@127.0.0.1:$SSHD_PORT"
answer true
ssh-add -q -D 2>/dev/null
ssh-keygen -q -t ed25519 -N '' -C stranger -f "$work/stranger" </dev/null
ssh-add -q "$work/stranger" 2>/dev/null
HOME=$ahome expect_status 1 "$SYNCPLAN" check-key "$user@127.0.0.1:$SSHD_PORT"
answer false
said 'agent key stranger'
HOME=$ahome SSH_AUTH_SOCK= expect_status 1 "$SYNCPLAN" check-key \
  "$user@127.0.0.1:$SSHD_PORT"
answer false

# A plain alias in a file of its own.
cat >"$work/config" <<CFG
# a comment
Host other-name
  HostName 127.0.0.1
Host alias-here
  HostName=127.0.0.1
  Port $SSHD_PORT
  User "$user"
  IdentityFile $d/id_ed25519
  UserKnownHostsFile $home/.ssh/known_hosts
CFG
HOME=$home expect_status 0 "$SYNCPLAN" check-key alias-here -F "$work/config"
answer true

# A key the server does not know.
ssh-keygen -q -t ed25519 -N '' -C other -f "$work/other" </dev/null
HOME=$home expect_status 1 "$SYNCPLAN" check-key "$user@127.0.0.1:$SSHD_PORT" \
  -i "$work/other"
answer false
said "no key accepted for $user@127.0.0.1"

# A changed host key is refused, naming the host and the offered key's
# fingerprint, even with --accept-new-host.
ssh-keygen -q -t ed25519 -N '' -C impostor -f "$work/impostor" </dev/null
printf '[127.0.0.1]:%s %s\n' "$SSHD_PORT" "$(cut -d' ' -f1,2 "$work/impostor.pub")" \
  >"$work/changed_hosts"
for extra in "" --accept-new-host; do
  # shellcheck disable=SC2086
  HOME=$home expect_status 1 "$SYNCPLAN" check-key "$user@127.0.0.1:$SSHD_PORT" \
    --known-hosts "$work/changed_hosts" $extra
  answer false
  said "host key for \[127.0.0.1\]:$SSHD_PORT has changed"
  said "$fingerprint"
done
[ "$(wc -l <"$work/changed_hosts")" = 1 ] || fail "a changed key was recorded"

# An unknown host: refused, unless accepted explicitly; then recorded, and
# known from then on.
: >"$work/new_hosts"
HOME=$home expect_status 1 "$SYNCPLAN" check-key "$user@127.0.0.1:$SSHD_PORT" \
  --known-hosts "$work/new_hosts"
answer false
said "is not in $work/new_hosts"
[ ! -s "$work/new_hosts" ] || fail "an unknown host was recorded without asking"
HOME=$home expect_status 0 "$SYNCPLAN" check-key "$user@127.0.0.1:$SSHD_PORT" \
  --known-hosts "$work/new_hosts" --accept-new-host
answer true
grep -q "^\[127.0.0.1\]:$SSHD_PORT $hostkey" "$work/new_hosts" ||
  fail "the accepted key was not recorded: $(cat "$work/new_hosts")"
HOME=$home expect_status 0 "$SYNCPLAN" check-key "$user@127.0.0.1:$SSHD_PORT" \
  --known-hosts "$work/new_hosts"
answer true

# Nothing listens: could not connect (4).  A bad target: usage (2).
port=$(free_port)
HOME=$home expect_status 4 "$SYNCPLAN" check-key "$user@127.0.0.1:$port"
answer false
said "cannot connect to 127.0.0.1:$port"
expect_status 2 "$SYNCPLAN" check-key "$user@127.0.0.1:99999"
expect_status 2 "$SYNCPLAN" check-key
echo "check_key: ok"
