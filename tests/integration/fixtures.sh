# The real peers that transfer tests run against (tests/lib.sh): a private
# sshd and `rclone serve sftp`, both on 127.0.0.1, both in one test.  They
# are checked here on their own, so a broken fixture fails one test that
# names it instead of every transfer test at once.
. "$TESTS_DIR/lib.sh"
need rsync rclone ssh ssh-keygen find sort cmp

src="$work/src" remote="$work/remote" pulled="$work/pulled" cloud="$work/cloud"
"$MKTREE" sample "$src" -n 300 --max-size 20000
mkdir "$remote" "$cloud"

start_sshd
start_rclone_sftp "$cloud"
sshd_pid=$SSHD_PID rclone_pid=$RCLONE_SFTP_PID
[ "$SSH_HOST" = sptest ] && [ "$RCLONE_REMOTE" = spsftp ] || fail "unexpected host/remote names"

out=$(ssh -F "$SSH_CONFIG" "$SSH_HOST" 'echo ok') || fail "ssh to $SSH_HOST failed"
[ "$out" = ok ] || fail "ssh printed '$out', expected 'ok'"

# rsync over ssh, push then pull, each checked by the oracle and by rsync
# itself finding nothing left to do.
rsync -aH -e "$SSH_RSH" "$src/" "$SSH_HOST:$remote/" || fail "rsync push failed"
"$TREECMP" "$src" "$remote" >"$work/diff" || {
  head -20 "$work/diff" >&2
  fail "pushed tree differs from the source"
}
changes=$(rsync -aHn --delete --itemize-changes -e "$SSH_RSH" "$src/" "$SSH_HOST:$remote/")
[ -z "$changes" ] || fail "rsync still sees changes after the push: $changes"
rsync -aH -e "$SSH_RSH" "$SSH_HOST:$remote/" "$pulled/" || fail "rsync pull failed"
"$TREECMP" "$src" "$pulled" >"$work/diff" || {
  head -20 "$work/diff" >&2
  fail "pulled tree differs from the source"
}

# rclone over sftp.  rclone copies regular files only (no symlinks, no
# hard-link groups, no empty dirs), so the check is on those: names, sizes
# and, through set_modtime, whole-second mtimes (SFTP v3 has no more).
rclone copy "$src" spsftp:tree --retries 1 2>"$work/err" ||
  fail "rclone copy to spsftp: failed: $(cat "$work/err")"
rclone lsf -R --files-only --format ps spsftp:tree | sort >"$work/listed" ||
  fail "rclone lsf -R spsftp: failed"
(cd "$src" && find . -type f -printf '%P;%s\n') | sort >"$work/expected"
cmp -s "$work/listed" "$work/expected" || {
  diff "$work/expected" "$work/listed" | head -20 >&2
  fail "rclone lsf -R spsftp:tree does not list the source's files"
}
(cd "$src" && find . -type f -printf '%P %Ts\n') | sort >"$work/expected"
(cd "$cloud/tree" && find . -type f -printf '%P %Ts\n') | sort >"$work/served"
cmp -s "$work/expected" "$work/served" || fail "mtimes not kept through rclone serve sftp"
while IFS=';' read -r f _; do
  cmp -s "$src/$f" "$cloud/tree/$f" || fail "rclone copy changed the contents of $f"
done <"$work/listed"

# Host keys really are checked: a known_hosts entry with another key, or
# none at all, is refused by ssh and by rclone.
ssh-keygen -q -t ed25519 -N '' -f "$work/other_key" </dev/null
other=$(cut -d' ' -f1,2 "$work/other_key.pub")
echo "sptest $other" >"$work/bad_known_hosts"
expect_status 255 ssh -F "$SSH_CONFIG" -o UserKnownHostsFile="$work/bad_known_hosts" "$SSH_HOST" true
grep -q 'Host key verification failed' "$work/err" ||
  fail "ssh with a wrong host key failed for another reason: $(cat "$work/err")"
expect_status 255 ssh -F "$SSH_CONFIG" -o UserKnownHostsFile=/dev/null "$SSH_HOST" true
grep -q 'Host key verification failed' "$work/err" ||
  fail "ssh with an unknown host key failed for another reason: $(cat "$work/err")"
echo "[127.0.0.1]:$RCLONE_SFTP_PORT $other" >"$work/bad_known_hosts"
sed "s|^known_hosts_file = .*|known_hosts_file = $work/bad_known_hosts|" "$RCLONE_CONFIG" >"$work/bad.conf"
grep -q "^known_hosts_file = $work/bad_known_hosts\$" "$work/bad.conf" || fail "could not write bad.conf"
expect_status 1 rclone lsf spsftp: --config "$work/bad.conf" --retries 1 --low-level-retries 1
grep -q 'knownhosts: key mismatch' "$work/err" ||
  fail "rclone with a wrong host key failed for another reason: $(cat "$work/err")"

# Stopping: the processes are gone and the ports no longer answer.
stop_sshd
stop_rclone_sftp
for pid in "$sshd_pid" "$rclone_pid"; do
  ! kill -0 "$pid" 2>/dev/null || fail "server pid $pid still runs after stop"
done
for port in "$SSHD_PORT" "$RCLONE_SFTP_PORT"; do
  ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || fail "port $port still answers after stop"
done
echo "fixtures: ok (sshd port $SSHD_PORT, rclone sftp port $RCLONE_SFTP_PORT)"
