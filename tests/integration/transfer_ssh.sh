# Push and pull of the hostile tree through a real sshd on 127.0.0.1
# (keys and known_hosts made for this run): the pull lists the remote
# tree over ssh and chunks it like a local one.
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
  -e "$SSH_RSH" -j 3 -n 5 --json
check_same "$work/src" "$work/pushed"
[ "$(finish_field dir_times_set)" = 1 ] && [ -e "$(job_log root-time)" ] &&
  [ ! -e "$(final_log)" ] || fail "push ran the rsync final pass"
# A root whose mode differs takes the rsync pass, which fixes it.
rm -rf "$work/pushed"
mkdir -m 0700 "$work/pushed"
expect_status 0 "$SYNCPLAN" copy "$work/src/" "$SSH_HOST:$work/pushed/" \
  -e "$SSH_RSH" -j 3 -n 5 --json
check_same "$work/src" "$work/pushed"
[ "$(finish_field dir_times_set)" = null ] && [ -e "$(final_log)" ] ||
  fail "root mode ignored on a push"

expect_status 0 "$SYNCPLAN" copy "$SSH_HOST:$work/src/" "$work/pulled/" \
  -e "$SSH_RSH" -j 3 --files 25
check_same "$work/src" "$work/pulled"

# A pull ends by setting directory times from the listing, with no rsync
# pass over the link (no final.log); the oracle checks the times.
expect_status 0 "$SYNCPLAN" copy "$SSH_HOST:$work/src/" "$work/pulled3/" \
  -e "$SSH_RSH" -j 3 --files 25 --json
check_same "$work/src" "$work/pulled3"
[ "$(finish_field dir_times_set)" -gt 10 ] ||
  fail "pull did not set directory times itself: $(finish_field dir_times_set)"
[ ! -e "$(final_log)" ] || fail "pull ran an rsync final pass"

# The root's mode differs (only rsync sets that), or deletions changed
# directories: the rsync final pass runs, and the tree still matches.
chmod 0700 "$work/pulled3"
touch "$work/pulled3/extra"
expect_status 0 "$SYNCPLAN" copy "$SSH_HOST:$work/src/" "$work/pulled3/" \
  -e "$SSH_RSH" -j 3 --files 25 --json
[ "$(finish_field dir_times_set)" = null ] || fail "root mode ignored"
[ -e "$(final_log)" ] || fail "no rsync final pass for a changed root"
"$TREECMP" -x extra "$work/src" "$work/pulled3" >"$work/diff" 2>&1 ||
  fail "root mode not set by the final pass: $(head -3 "$work/diff")"
expect_status 0 "$SYNCPLAN" copy "$SSH_HOST:$work/src/" "$work/pulled3/" \
  -e "$SSH_RSH" -j 3 --files 25 --json --delete
[ "$(finish_field dir_times_set)" = null ] || fail "deletions ignored"
check_same "$work/src" "$work/pulled3"

# Excludes apply to the remote listing too: an excluded directory's
# subtree is not pulled.
mkdir -p "$work/src2/keep" "$work/src2/skip/deep"
echo a >"$work/src2/keep/a"
echo b >"$work/src2/skip/deep/b"
expect_status 0 "$SYNCPLAN" copy "$SSH_HOST:$work/src2/" "$work/pulled2/" \
  -e "$SSH_RSH" --exclude skip/
[ -f "$work/pulled2/keep/a" ] || fail "pull lost keep/a"
[ ! -e "$work/pulled2/skip" ] || fail "excluded directory was pulled"

# An unreachable host: exit 4 (could not connect), nothing created.
expect_status 4 "$SYNCPLAN" copy "$work/src/" "nosuchhost.invalid:$work/x/" \
  -e "$SSH_RSH -o ConnectTimeout=3" --retries 1
[ ! -e "$work/x" ] || fail "a failed connection created the destination"
echo "transfer_ssh: ok"
