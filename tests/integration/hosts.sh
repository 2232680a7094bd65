# Workers on several hosts and balanced destinations, against three
# private sshd on 127.0.0.1 (dtn1..dtn3, each its own port and host key,
# reached through ssh config aliases): chunks spread over all hosts (the
# journal says which host ran each), a host killed mid-run whose chunks
# go to the others, a changed host key refused, and a stop that leaves
# no half-written file.  Every transfer ends with the tree comparison.
. "$TESTS_DIR/lib.sh"
. "$TESTS_DIR/integration/transfer_common.sh"
need rsync lua5.4 jq
start_sshd
for h in dtn1 dtn2 dtn3; do start_sshd_host "$h"; done

"$MKTREE" sample "$work/src" -n 3000 --per-dir 50 >/dev/null
"$MKTREE" hostile "$work/src/hostile" >/dev/null

# plan FILE DEST HOSTS-KEY HOST... [-- EXTRA LUA]: a plan through the
# aliases of $SSH_CONFIG.
plan() {
  local file=$1 dest=$2 key=$3 hosts="" extra=""
  shift 3
  while [ $# -gt 0 ] && [ "$1" != -- ]; do hosts="$hosts\"$1\", "; shift; done
  [ "${1:-}" = -- ] && extra=$2
  cat >"$file" <<PLAN
return {
  source = "$work/src/", dest = "$dest",
  workers = 6, chunks = { count = 30 },
  hosts = { $key = { $hosts } },
  ssh_config = "$SSH_CONFIG",
  retry = { attempts = 3, backoff = "1s..2s" },
  $extra
}
PLAN
}

# hosts_of JOB: the hosts the journal records for the job's done chunks,
# sorted and unique.
hosts_of() {
  JOB=$1 journal_lua 'local seen = {}
    for _, c in ipairs(j:chunks(id)) do
      if c.index > 0 and c.state == "done" then seen[c.host] = true end
    end
    local t = {}
    for h in pairs(seen) do t[#t + 1] = h end
    table.sort(t)
    print(table.concat(t, " "))'
}

# spread KEY DEST DIR: a job with hosts.KEY = dtn1..dtn3 copies the tree
# to DEST (DIR here), every host takes chunks, no temp dir is left.
spread() {
  plan "$work/$1.lua" "$2" "$1" dtn1 dtn2 dtn3
  expect_status 0 "$SYNCPLAN" run "$work/$1.lua"
  check_same "$work/src" "$3"
  local job
  job=$(job_id "$work/err")
  [ "$(hosts_of "$job")" = "dtn1 dtn2 dtn3" ] ||
    fail "$1: chunks not on every host: '$(hosts_of "$job")'"
  ! ls -a "$3" | grep -q '^\.syncplan-tmp' || fail "$1: temp dir left behind"
}

# 1. run_on: the chunks' rsync runs on the three hosts (same storage).
spread run_on "$work/dst1/" "$work/dst1"
# 2. dest: chunks go to the three receiving hosts (same storage).
spread dest "sptest:$work/dst2/" "$work/dst2"

# 3. A host killed mid-run: its running chunks go to the others, its
# slots wait for it and give up, and the tree is still identical.
# 12 MB/s in all over some 60 MB keeps the run going for seconds.
for i in 1 2 3 4 5 6; do
  head -c $((10 << 20)) /dev/urandom >"$work/src/big$i"
done
plan "$work/kill.lua" "$work/dst3/" run_on dtn1 dtn2 dtn3 -- \
  'bwlimit = "12M",'
"$SYNCPLAN" run "$work/kill.lua" --json >"$work/kill.out" 2>"$work/kill.err" &
pid=$!
for _ in $(seq 100); do
  grep -q '"event":"chunk_start"' "$work/kill.out" && break
  sleep 0.1
done
sleep 1.5
kill_sshd dtn2
wait "$pid" || fail "run with a killed host failed ($?): $(tail -5 "$work/kill.err")"
check_same "$work/src" "$work/dst3"
jq -c 'select(.event == "chunk_requeued" and .host == "dtn2")' \
  "$work/kill.out" | grep -q . ||
  fail "no chunk of the killed host was re-queued: $(grep requeued "$work/kill.out")"
grep -q 'giving up on host dtn2' "$work/kill.err" ||
  fail "the killed host's slots did not give up: $(tail -5 "$work/kill.err")"
ls -a "$work/dst3" | grep -q '^\.syncplan-tmp' && fail "temp dir left behind"
restart_sshd dtn2

# 4. A changed host key is refused, with its fingerprint, and the job
# stops: exit 4.
change_host_key dtn3
plan "$work/key.lua" "$work/dst4/" run_on dtn1 dtn3
expect_status 4 "$SYNCPLAN" run "$work/key.lua"
grep -q 'host key for dtn3 has changed' "$work/err" ||
  fail "changed key not reported: $(cat "$work/err")"
# dtn1's slots may have started chunks: nothing half-written is left.
[ ! -d "$work/dst4" ] || ! ls -a "$work/dst4" | grep -q '^\.syncplan-tmp' ||
  fail "a refused host key left the temp dir"
fp=$(ssh-keygen -l -E sha256 -f "$work/ssh-dtn3/host_ed25519.pub" 2>/dev/null |
  awk '{print $2}')
[ -z "$fp" ] || grep -q "$fp" "$work/err" ||
  fail "fingerprint $fp not named: $(cat "$work/err")"

# 5. A stop (SIGTERM twice: the first lets running chunks finish) mid-run,
# pushing to a dest host: the job is interrupted (3), its temporary
# directory with the half-written files is gone from the destination,
# and a resume ends with the same tree.
plan "$work/stop.lua" "sptest:$work/dst5/" dest dtn1 -- \
  'bwlimit = "12M",'
"$SYNCPLAN" run "$work/stop.lua" >"$work/stop.out" 2>"$work/stop.err" &
pid=$!
for _ in $(seq 100); do
  ls -a "$work/dst5" 2>/dev/null | grep -q '^\.syncplan-tmp' && break
  sleep 0.1
done
sleep 1.5
ls "$work/dst5"/.syncplan-tmp-*/ | grep -q . ||
  fail "no file being written in the temp dir"
kill -TERM "$pid"
sleep 0.3
kill -TERM "$pid"
st=0
wait "$pid" || st=$?
[ "$st" = 3 ] || fail "stopped run exited $st: $(tail -5 "$work/stop.err")"
ls -a "$work/dst5" | grep -q '^\.syncplan-tmp' &&
  fail "stop left the temp dir: $(ls -a "$work/dst5")"
find "$work/dst5" -name '.*.??????' | grep -q . &&
  fail "stop left rsync temp files"
job=$(job_id "$work/stop.err")
expect_status 0 "$SYNCPLAN" resume "$job"
check_same "$work/src" "$work/dst5"
echo "hosts: ok"
