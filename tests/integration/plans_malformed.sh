# Malformed plans: each gives exactly one line on stderr naming the plan's
# file:line and the key (with a suggestion for a misspelling), exit
# status 2, and nothing transferred (the destination is never created).
. "$TESTS_DIR/lib.sh"
. "$TESTS_DIR/integration/transfer_common.sh"

mkdir -p "$work/src/d"
echo x >"$work/src/d/f"
dst="$work/dst"
cases=0

# check NAME LINE PATTERN: the plan in $work/NAME.lua must fail at LINE
# with a message matching PATTERN (grep -E).
check() {
  local plan="$work/$1.lua" line=$2 pat=$3
  cases=$((cases + 1))
  expect_status 2 "$SYNCPLAN" run "$plan"
  [ "$(wc -l <"$work/err")" = 1 ] || fail "$1: expected one line, got: $(cat "$work/err")"
  grep -qE "^syncplan: $plan:$line: .*$pat" "$work/err" ||
    fail "$1: expected '$plan:$line: ...$pat', got: $(cat "$work/err")"
  [ ! -e "$dst" ] || fail "$1: something was transferred"
  [ ! -s "$work/out" ] || fail "$1: printed on stdout: $(cat "$work/out")"
}

# plan NAME <<'EOF' ... : write a plan; SRC and DST are substituted.
plan() {
  sed -e "s#SRC#$work/src/#g" -e "s#DST#$dst/#g" >"$work/$1.lua"
}

plan unknown_key <<'P'
return {
  source = "SRC",
  dest = "DST",
  worker = 4,
}
P
check unknown_key 4 "unknown key 'worker' \(did you mean 'workers'\?\)"

plan misspelt_nested <<'P'
return {
  source = "SRC", dest = "DST",
  retry = {
    atempts = 3,
  },
}
P
check misspelt_nested 4 "unknown key 'retry.atempts' \(did you mean 'attempts'\?\)"

plan workers_type <<'P'
return {
  source = "SRC", dest = "DST",
  -- a comment mentioning workers = 1 must not fool the line finder
  workers = "many",
}
P
check workers_type 4 "workers: expected an integer, got string"

plan workers_zero <<'P'
return { source = "SRC", dest = "DST",
  workers = 0 }
P
check workers_zero 2 "workers: must be between 1 and 256 \(got 0\)"

plan workers_float <<'P'
return { source = "SRC", dest = "DST", workers = 2.5 }
P
check workers_float 1 "workers: expected an integer, got 2.5"

plan chunks_two_modes <<'P'
return {
  source = "SRC", dest = "DST",
  chunks = { count = 4, files = 100 },
}
P
check chunks_two_modes 3 "chunks: give exactly one of count, files/bytes or by"

plan chunks_bytes <<'P'
return {
  source = "SRC", dest = "DST",
  chunks = {
    bytes = "lots",
  },
}
P
check chunks_bytes 4 "chunks.bytes: invalid size 'lots'"

plan tool_bad <<'P'
return {
  source = "SRC", dest = "DST",
  tool = "scp",
}
P
check tool_bad 3 "tool: expected \"rsync\" or \"rclone\", got 'scp'"

plan exclude_type <<'P'
return {
  source = "SRC", dest = "DST",
  exclude = { "*.tmp", 42 },
}
P
check exclude_type 3 "exclude\[2\]: expected a string, got integer"

plan delete_type <<'P'
return {
  source = "SRC", dest = "DST",
  delete = "yes",
}
P
check delete_type 3 "delete: expected true or false, got string"

plan backoff_bad <<'P'
return {
  source = "SRC", dest = "DST",
  retry = { attempts = 2,
            backoff = "soon" },
}
P
check backoff_bad 4 "retry.backoff: invalid backoff 'soon'"

plan attempts_zero <<'P'
return {
  source = "SRC", dest = "DST",
  retry = { attempts = 0 },
}
P
check attempts_zero 3 "retry.attempts: must be between 1 and 100"

plan rsync_delete <<'P'
return {
  source = "SRC", dest = "DST",
  rsync_opts = { "-S", "--delete" },
}
P
check rsync_delete 3 "rsync_opts\[2\]: '--delete' is not allowed: use delete = true"

plan missing_dest <<'P'
local src = "SRC"
return {
  source = src,
}
P
check missing_dest 2 "missing key 'dest'"

plan source_missing <<'P'
return {
  source = "/nonexistent/syncplan-test/",
  dest = "DST",
}
P
check source_missing 2 "source: '/nonexistent/syncplan-test/' does not exist"

plan hook_type <<'P'
return {
  source = "SRC", dest = "DST",
  on_chunk_done = "print",
}
P
check hook_type 3 "on_chunk_done: expected a function, got string"

plan not_table <<'P'
local x = 1
return 42
P
check not_table 2 "the plan must return a table, got integer"

plan syntax <<'P'
return {
  source = "SRC"
  dest = "DST",
}
P
check syntax 3 "'}' expected"

plan runtime_error <<'P'
local t = nil
return { source = "SRC", dest = t.dest }
P
check runtime_error 2 "attempt to index a nil value"

plan watchdog_bad <<'P'
return {
  source = "SRC", dest = "DST",
  watchdog = "forever",
}
P
check watchdog_bad 3 "watchdog: invalid duration 'forever'"

plan exclude_pattern <<'P'
return {
  source = "SRC", dest = "DST",
  exclude = { "[unclosed" },
}
P
check exclude_pattern 3 "exclude\[1\]: invalid pattern '\[unclosed'"

plan rclone_with_rsync <<'P'
return {
  source = "SRC", dest = "DST",
  rclone = { flags = { "-v" } },
}
P
check rclone_with_rsync 3 "rclone: only used with tool = \"rclone\""

plan both_remote <<'P'
return {
  source = "a:SRC",
  dest = "b:DST",
}
P
check both_remote 3 "dest: source and dest are both remote"

plan direction_missing <<'P'
return {
  local_path = "SRC",
  remote = "DST",
}
P
check direction_missing 1 "missing key 'direction'"

plan direction_and_source <<'P'
return {
  local_path = "SRC",
  remote = "DST",
  source = "SRC",
  direction = "pull",
}
P
check direction_and_source 4 "source: give either source and dest, or local_path"

plan direction_bad <<'P'
return {
  local_path = "SRC",
  remote = "DST",
  direction = "sideways",
}
P
check direction_bad 4 "direction: "

plan bwlimit_table_bad <<'P'
return {
  source = "SRC",
  dest = "DST",
  bwlimit = { "08:00,10M", "25:00,off" },
}
P
check bwlimit_table_bad 4 "bwlimit: .*25:00"

# --set is checked like the plan itself.
plan good <<'P'
return {
  source = "SRC",
  dest = "DST",
}
P
expect_status 2 "$SYNCPLAN" run "$work/good.lua" --set workers=-1
grep -q "workers: must be between 1 and 256" "$work/err" || fail "--set not checked: $(cat "$work/err")"
[ ! -e "$dst" ] || fail "--set: something was transferred"
expect_status 2 "$SYNCPLAN" run "$work/good.lua" --set nope
grep -q "expected KEY=VALUE" "$work/err" || fail "--set without = accepted"
# nil takes a key out: without its dest the plan is incomplete.
expect_status 2 "$SYNCPLAN" run "$work/good.lua" --set dest=nil
grep -q "missing key 'dest'" "$work/err" || fail "--set dest=nil: $(cat "$work/err")"
expect_status 2 "$SYNCPLAN" run "$work/absent.lua"
[ "$(wc -l <"$work/err")" = 1 ] || fail "missing plan file: not one line"
expect_status 2 "$SYNCPLAN" copy "$work/src/" "$dst/" -j zero
expect_status 2 "$SYNCPLAN" copy "$work/src/" "$dst/" --bogus
[ ! -e "$dst" ] || fail "copy with bad flags transferred"

[ "$cases" -ge 15 ] || fail "only $cases malformed plans checked"
echo "plans_malformed: ok ($cases plans)"
