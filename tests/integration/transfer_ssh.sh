# Push and pull of the hostile tree through a real sshd on 127.0.0.1
# (keys and known_hosts made for this run): the pull lists the remote
# tree over ssh and chunks it like a local one.  syncplan's own
# connections (the tunnel) unless -e names an ssh program.
. "$TESTS_DIR/lib.sh"
. "$TESTS_DIR/integration/transfer_common.sh"
need rsync ssh find
start_sshd

"$MKTREE" hostile "$work/src"

need jq
finish_field() { # FIELD: from the finish event in $work/out
  jq -r "select(.event == \"finish\") | .$1" "$work/out"
}
job_log() { echo "$SYNCPLAN_STATE_DIR/logs/$(job_id "$work/err")/$1.log"; }
final_log() { job_log final; }

# A push leaves the directories' times to the chunks and ends by setting
# the root's alone, with one remote command (no final rsync pass).
expect_status 0 "$SYNCPLAN" copy "$work/src/" "$SSH_HOST:$work/pushed/" \
  -F "$SSH_CONFIG" -j 3 -n 5 --json
check_same "$work/src" "$work/pushed"
[ "$(finish_field dir_times_set)" = 1 ] && [ -e "$(job_log root-time)" ] &&
  [ ! -e "$(final_log)" ] || fail "push ran the rsync final pass"
# A root whose mode differs takes the rsync pass, which fixes it.
rm -rf "$work/pushed"
mkdir -m 0700 "$work/pushed"
expect_status 0 "$SYNCPLAN" copy "$work/src/" "$SSH_HOST:$work/pushed/" \
  -F "$SSH_CONFIG" -j 3 -n 5 --json
check_same "$work/src" "$work/pushed"
[ "$(finish_field dir_times_set)" = null ] && [ -e "$(final_log)" ] ||
  fail "root mode ignored on a push"

expect_status 0 "$SYNCPLAN" copy "$SSH_HOST:$work/src/" "$work/pulled/" \
  -F "$SSH_CONFIG" -j 3 --files 25
check_same "$work/src" "$work/pulled"

# A pull ends by setting directory times from the listing, with no rsync
# pass over the link (no final.log); the oracle checks the times.
expect_status 0 "$SYNCPLAN" copy "$SSH_HOST:$work/src/" "$work/pulled3/" \
  -F "$SSH_CONFIG" -j 3 --files 25 --json
check_same "$work/src" "$work/pulled3"
[ "$(finish_field dir_times_set)" -gt 10 ] ||
  fail "pull did not set directory times itself: $(finish_field dir_times_set)"
[ ! -e "$(final_log)" ] || fail "pull ran an rsync final pass"

# The root's mode differs (only rsync sets that), or deletions changed
# directories: the rsync final pass runs, and the tree still matches.
chmod 0700 "$work/pulled3"
touch "$work/pulled3/extra"
expect_status 0 "$SYNCPLAN" copy "$SSH_HOST:$work/src/" "$work/pulled3/" \
  -F "$SSH_CONFIG" -j 3 --files 25 --json
[ "$(finish_field dir_times_set)" = null ] || fail "root mode ignored"
[ -e "$(final_log)" ] || fail "no rsync final pass for a changed root"
"$TREECMP" -x extra "$work/src" "$work/pulled3" >"$work/diff" 2>&1 ||
  fail "root mode not set by the final pass: $(head -3 "$work/diff")"
expect_status 0 "$SYNCPLAN" copy "$SSH_HOST:$work/src/" "$work/pulled3/" \
  -F "$SSH_CONFIG" -j 3 --files 25 --json --delete
[ "$(finish_field dir_times_set)" = null ] || fail "deletions ignored"
check_same "$work/src" "$work/pulled3"

# Excludes apply to the remote listing too: an excluded directory's
# subtree is not pulled.
mkdir -p "$work/src2/keep" "$work/src2/skip/deep"
echo a >"$work/src2/keep/a"
echo b >"$work/src2/skip/deep/b"
expect_status 0 "$SYNCPLAN" copy "$SSH_HOST:$work/src2/" "$work/pulled2/" \
  -F "$SSH_CONFIG" --exclude skip/
[ -f "$work/pulled2/keep/a" ] || fail "pull lost keep/a"
[ ! -e "$work/pulled2/skip" ] || fail "excluded directory was pulled"

# The ssh program instead (-e): a master connection per slot.
expect_status 0 "$SYNCPLAN" copy "$work/src/" "$SSH_HOST:$work/pushed-e/" \
  -e "$SSH_RSH" -j 3 -n 5
check_same "$work/src" "$work/pushed-e"
expect_status 0 "$SYNCPLAN" copy "$SSH_HOST:$work/src/" "$work/pulled-e/" \
  -e "$SSH_RSH" -j 3 --files 25
check_same "$work/src" "$work/pulled-e"
ls "$SYNCPLAN_STATE_DIR"/logs/*/ssh/s1 >/dev/null 2>&1 &&
  fail "an ssh master outlived its job"

# The tunnel: one connection per slot, no ssh program (an ssh first in
# PATH would say so).  A push of many small chunks (-n 40 on 3 slots)
# makes at most 4 connections (slots 0 to 3), whatever the number of
# chunks: sshd logs each authentication.
mkdir "$work/nossh"
printf '#!/bin/sh\necho "$@" >>"%s/nossh/called"\nexit 255\n' "$work" \
  >"$work/nossh/ssh"
chmod +x "$work/nossh/ssh"
before=$(grep -c "Accepted publickey" "$work/ssh/sshd.log" || true)
PATH=$work/nossh:$PATH expect_status 0 "$SYNCPLAN" copy "$work/src/" \
  "$SSH_HOST:$work/pushed-t/" -F "$SSH_CONFIG" -j 3 -n 40 --json
check_same "$work/src" "$work/pushed-t"
# Every byte crosses the tunnel, counted: at least the files' contents.
want=$(find "$work/src" -type f -printf '%i %s\n' | sort -u |
  awk '{ s += $2 } END { print s + 0 }')
sent=$(finish_field ssh_sent)
[ "$sent" -ge "$want" ] && [ "$(finish_field ssh_received)" -gt 0 ] ||
  fail "tunnel counted $sent bytes sent for $want bytes of files"
after=$(grep -c "Accepted publickey" "$work/ssh/sshd.log" || true)
[ $((after - before)) -le 4 ] && [ "$after" -gt "$before" ] ||
  fail "40 chunks made $((after - before)) connections, not 1 to 4"
[ ! -e "$work/nossh/called" ] ||
  fail "the tunnel ran ssh: $(cat "$work/nossh/called")"

# An unreachable host: exit 4 (could not connect), nothing created.
expect_status 4 "$SYNCPLAN" copy "$work/src/" "nosuchhost.invalid:$work/x/" \
  -F "$SSH_CONFIG" --retries 1
[ ! -e "$work/x" ] || fail "a failed connection created the destination"
echo "transfer_ssh: ok"
