# plans/dsync_push.lua (dsync's chunked transfers), each of dsync's modes
# as a --set override against private sshd (dtn1, dtn2) and `rclone serve
# sftp` on 127.0.0.1: N chunks with rsync on two hosts (--source-hosts),
# to two destination hosts (--destination-hosts), a dry run that changes
# nothing, the plain local run, a stopped job resumed from its stored
# chunk lists (--reuse: a file added meanwhile is not picked up, no new
# crawl), and rclone to a cloud remote (--cloud).  Each ends with the
# tree comparison (rclone's: what rclone keeps).
. "$TESTS_DIR/lib.sh"
. "$TESTS_DIR/integration/transfer_common.sh"
need rsync rclone jq lua5.4 find cmp
start_sshd
for h in dtn1 dtn2; do start_sshd_host "$h"; done
plan="$TESTS_DIR/../plans/dsync_push.lua"

"$MKTREE" sample "$work/src" -n 300 --per-dir 40 >/dev/null
"$MKTREE" hostile "$work/src/hostile" >/dev/null
for i in 1 2 3 4; do head -c 2000000 /dev/urandom >"$work/src/d000/big$i"; done
# What dsync's fpart skips, and so does the plan.
mkdir -p "$work/src/.zfs/snapshot" "$work/src/d001/.snapshot.0"
echo old >"$work/src/.zfs/snapshot/f"
echo old >"$work/src/d001/.snapshot.0/f"
skip=(-x .zfs -x d001/.snapshot.0)
export RSYNC_CHECK_OPTS="--exclude=.zfs/ --exclude=.snapshot*/"

# dsync RUN-OPTIONS: the plan with the test's source and ssh config; its
# events in $work/out, its job id in $job.
dsync() {
  expect_status 0 "$SYNCPLAN" run "$plan" --json --set "source=$work/src/" \
    --set "ssh_config=$SSH_CONFIG" "$@"
  job=$(job_id "$work/err")
}
finish() { jq -r "select(.event == \"finish\") | .$1" "$work/out"; }
# hosts_of JOB: the hosts the journal records for the job's done chunks.
hosts_of() {
  JOB=$1 journal_lua 'local seen, t = {}, {}
    for _, c in ipairs(j:chunks(id)) do
      if c.index > 0 and c.state == "done" then seen[c.host] = true end
    end
    for h in pairs(seen) do t[#t + 1] = h end
    table.sort(t)
    print(table.concat(t, " "))'
}

# 1. --source-hosts: -n 6 chunks, the 6 transfers dealt over dtn1 and
# dtn2 (shared storage: the hosts see the same paths).  --log-output is
# log_dir.
dsync --set "dest=$work/dst1/" --set chunks.count=6 --set workers=6 \
  --set 'hosts={run_on={"dtn1","dtn2"}}' --set "log_dir=$work/dsync-logs"
job1=$job
[ "$(finish chunks)" = 6 ] && [ "$(finish chunks_done)" = 6 ] ||
  fail "source hosts: $(finish chunks_done)/$(finish chunks) chunks, not 6"
[ "$(hosts_of "$job")" = "dtn1 dtn2" ] ||
  fail "source hosts: chunks ran on '$(hosts_of "$job")'"
check_same "$work/src" "$work/dst1" "${skip[@]}"
[ ! -e "$work/dst1/.zfs" ] && [ ! -e "$work/dst1/d001/.snapshot.0" ] ||
  fail "fpart's default excludes were copied"

# 2. --destination-hosts: chunks go to dtn1 and dtn2 (the same storage
# behind each).
dsync --set "dest=$SSH_HOST:$work/dst2/" --set chunks.count=6 \
  --set workers=6 --set 'hosts={dest={"dtn1","dtn2"}}'
[ "$(hosts_of "$job")" = "dtn1 dtn2" ] ||
  fail "destination hosts: chunks went to '$(hosts_of "$job")'"
check_same "$work/src" "$work/dst2" "${skip[@]}"

# 3. --dry-run: the whole job runs with rsync -n; the destination, out of
# date now, is left exactly as it was.
echo new >"$work/src/d002/new-file"
head -c 1000 /dev/urandom >"$work/src/d000/big1"
"$TREECMP" --list "$work/dst1" >"$work/before"
dsync --set "dest=$work/dst1/" --dry-run
[ "$(jq -r 'select(.event == "start") | .dry_run' "$work/out")" = true ] ||
  fail "the dry run did not say so"
"$TREECMP" --list "$work/dst1" >"$work/after"
cmp -s "$work/before" "$work/after" || fail "the dry run changed the destination"
# The plan as written: rsync here, N = 16 chunks and transfers.
dsync --set "dest=$work/dst1/"
[ "$(finish chunks)" -le 16 ] || fail "more chunks than -n 16: $(finish chunks)"
check_same "$work/src" "$work/dst1" "${skip[@]}"

# 4. --reuse: a job stopped (SIGTERM: running chunks finish) after its
# first chunk, then resumed.  The resume runs the stored lists of the
# chunks not done, and crawls nothing: a file added meanwhile stays
# behind.  4M over two workers keeps chunks running for a second.
"$SYNCPLAN" run "$plan" --json --set "source=$work/src/" \
  --set "dest=$work/dst3/" --set chunks.count=6 --set workers=2 \
  --set bwlimit=4M >"$work/stop.out" 2>"$work/stop.err" &
pid=$!
at_exit "kill -9 $pid 2>/dev/null || true"
wait_events "$work/stop.out" chunk_done 1 "$pid"
term_expect "$pid" 3
job=$(job_id "$work/stop.err")
jq -r 'select(.event == "chunk_done") | .chunk' "$work/stop.out" | sort >"$work/done1"
left=$((6 - $(wc -l <"$work/done1")))
((left > 0)) || fail "the stop came too late: every chunk was done"
echo late >"$work/src/late-file"
expect_status 0 "$SYNCPLAN" resume "$job" --json
grep -q "job $job resumed: $left chunk(s) to run\$" "$work/err" ||
  fail "resume did not reuse the $left stored chunks: $(cat "$work/err")"
jq -r 'select(.event == "chunk_done") | .chunk' "$work/out" | sort >"$work/done2"
[ -z "$(comm -12 "$work/done1" "$work/done2")" ] ||
  fail "resume ran done chunks again: $(comm -12 "$work/done1" "$work/done2" | tr '\n' ' ')"
[ "$(wc -l <"$work/done2")" = "$left" ] || fail "resume ran $(wc -l <"$work/done2") chunks, not $left"
[ ! -e "$work/dst3/late-file" ] || fail "resume crawled the source again"
echo "dsync_push: stopped after $((6 - left)) of 6 chunks, resumed the $left stored ones"
RSYNC_CHECK_OPTS="$RSYNC_CHECK_OPTS --exclude=/late-file" \
  check_same "$work/src" "$work/dst3" "${skip[@]}" -x late-file

# 5. --cloud (and --rclone-config): rclone to a remote served by `rclone
# serve sftp`.  rclone keeps contents, sizes and mtimes, not modes,
# symlinks or directory times: those are compared, every file and
# directory, with the excluded ones absent.
"$MKTREE" sample "$work/csrc" -n 200 >/dev/null
find "$work/csrc" -type l -delete
mkdir -p "$work/csrc/.zfs" "$work/csrc/empty/nested"
echo old >"$work/csrc/.zfs/f"
mkdir -p "$work/cloud"
start_rclone_sftp "$work/cloud"
dsync --set "source=$work/csrc/" --set tool=rclone \
  --set "dest=$RCLONE_REMOTE:bucket/projects/" \
  --set "rclone.config=$RCLONE_CONFIG" --set chunks.count=4 --set workers=4
[ "$(finish chunks_done)" = 4 ] || fail "cloud: $(finish chunks_done) chunks of 4"
listing() { # DIR: files with size and mtime (whole seconds), directories
  (cd "$1" && find . -path ./.zfs -prune -o \( -type f -printf 'f %P %s %TY%Tm%Td%TH%TM%TS\n' \) \
    -o \( -type d -printf 'd %P\n' \)) | sed 's/\.[0-9]*$//' | sort
}
listing "$work/csrc" >"$work/want"
listing "$work/cloud/bucket/projects" >"$work/got"
cmp -s "$work/want" "$work/got" || {
  diff "$work/want" "$work/got" | head >&2
  fail "cloud destination differs (files, sizes, mtimes or directories)"
}
[ ! -e "$work/cloud/bucket/projects/.zfs" ] || fail "cloud: .zfs was sent"
rsync -rcn --itemize-changes --exclude=.zfs/ "$work/csrc/" \
  "$work/cloud/bucket/projects/" >"$work/changes"
[ ! -s "$work/changes" ] || fail "cloud: contents differ: $(head -3 "$work/changes")"

# The log directory of step 1 (--log-output): the job's log is there.
[ -s "$work/dsync-logs/$job1/job.log" ] ||
  fail "no job log under log_dir: $(ls -R "$work/dsync-logs" 2>&1 | head -5)"
echo "plan_dsync_push: ok"
