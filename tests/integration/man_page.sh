# The man page (syncplan.1 at the top of the repository) renders cleanly
# and keeps up with the binary: every command that `syncplan --help` lists
# has a subsection and a SYNOPSIS line naming every option its own usage
# names, answers `--help` with its usage and exit 0, and every key the plan
# checker accepts (nested keys included) is described under PLAN FILES.
# The lists come from the binary and the checker, so a command or key added
# later fails here until the page describes it.
. "$TESTS_DIR/lib.sh"
need groff man lua5.4

page="$TESTS_DIR/../syncplan.1"
plan_lua="$TESTS_DIR/../luabind/plan.lua"
[ -f "$page" ] || fail "no man page at $page"

# groff's own check: -ww turns on every warning, -z discards the output.
groff -man -ww -z -Tutf8 "$page" >"$work/groff.err" 2>&1 ||
  fail "groff fails on syncplan.1: $(cat "$work/groff.err")"
[ ! -s "$work/groff.err" ] || fail "groff warns on syncplan.1: $(cat "$work/groff.err")"

# man -l, as a user reads it (piped: plain text, no overstrikes); --warnings
# passes groff's warnings on, and any line on stderr fails the test.
MANWIDTH=80 man --warnings -l "$page" >"$work/man.txt" 2>"$work/man.err" ||
  fail "man -l fails: $(cat "$work/man.err")"
[ ! -s "$work/man.err" ] || fail "man -l warns: $(cat "$work/man.err")"
grep -q '^NAME$' "$work/man.txt" || fail "man -l rendered no NAME section"
if grep -n '[\]' "$work/man.txt" >"$work/escapes"; then
  fail "stray escapes in the rendered page: $(head -5 "$work/escapes")"
fi

for s in NAME SYNOPSIS DESCRIPTION COMMANDS 'PLAN FILES' 'STATUS JSON' FILES \
  ENVIRONMENT 'EXIT STATUS' SECURITY EXAMPLES 'SEE ALSO'; do
  grep -qx "$s" "$work/man.txt" || fail "man page lacks the section $s"
done

# section NAME: the rendered lines of that section (headings are the
# unindented lines).
section() {
  awk -v want="$1" '/^[^ ]/ { on = ($0 == want); next } on' "$work/man.txt"
}
section COMMANDS >"$work/commands.txt"
section SYNOPSIS >"$work/synopsis.txt"
section 'PLAN FILES' >"$work/plan.txt"

# ------------------------------------------------------------- commands
expect_status 0 "$SYNCPLAN" --help
# The command table: "  NAME  summary" lines after "commands:".
awk '/^commands:$/ { on = 1; next } on && /^$/ { exit }
  on && match($0, /^  [a-z][a-z0-9-]* /) { print substr($0, 3, RLENGTH - 3) }' \
  "$work/out" >"$work/cmds"
[ "$(wc -l <"$work/cmds")" -ge 5 ] ||
  fail "could not read the command list of 'syncplan --help': $(cat "$work/out")"

while read -r cmd; do
  grep -qx "   syncplan $cmd" "$work/commands.txt" ||
    fail "man page: COMMANDS has no subsection 'syncplan $cmd'"
  expect_status 0 "$SYNCPLAN" "$cmd" --help
  grep -Eq "^usage: syncplan $cmd( |\$)" "$work/out" ||
    fail "'syncplan $cmd --help' prints no 'usage: syncplan $cmd' line: $(head -3 "$work/out")"
  # The command's SYNOPSIS entry: from its line to the next command's.
  awk -v cmd="$cmd" '/^ *syncplan / { on = ($2 == cmd) } on' \
    "$work/synopsis.txt" >"$work/syn"
  [ -s "$work/syn" ] || fail "man page: SYNOPSIS has no 'syncplan $cmd' line"
  # Every option of the usage (its first paragraph) is in the synopsis.
  sed '/^$/q' "$work/out" |
    grep -oE -- '(^|[][ |])-{1,2}[A-Za-z0-9][A-Za-z0-9-]*' |
    sed 's/^[][ |]//' | sort -u >"$work/opts" || true
  while read -r o; do
    grep -Eq -- "(^|[][ |])$o([] |=]|\$)" "$work/syn" ||
      fail "man page: SYNOPSIS of 'syncplan $cmd' lacks $o (in its --help)"
  done <"$work/opts"
done <"$work/cmds"

# ------------------------------------------------------------- plan keys
# Top-level keys: the checker's own table (syncplan.plan.KEYS) from the
# module; nested keys: the key sets the checker's check_table calls spell
# out in plan.lua.  Both must find something, or this test is stale.
LD_PRELOAD="${SANITIZE_PRELOAD:-}" lua5.4 - "$plan_lua" >"$work/keys" <<'LUA' ||
require "syncplan"
local keys = require("syncplan.plan").KEYS
assert(type(keys) == "table", "syncplan.plan.KEYS is not a table")
local n = 0
for k in pairs(keys) do print("top " .. k) n = n + 1 end
assert(n >= 10, "syncplan.plan.KEYS has only " .. n .. " keys")
local src = assert(io.open(arg[1])):read("a")
local m = 0
for set in src:gmatch("check_table%(p, path, v,%s*(%b{})%)") do
  for k in set:gmatch("([%a_][%w_]*)%s*=") do print("nested " .. k) m = m + 1 end
end
assert(m > 0, "no nested key sets (check_table(p, path, v, { ... })) in " .. arg[1])
LUA
  fail "could not list the plan keys: $(cat "$work/keys")"

while read -r kind key; do
  # A key is a .TP tag "KEY = ..." of PLAN FILES: at the section's indent
  # (7) for a top-level key, deeper for a nested one.
  if [ "$kind" = top ]; then re="^ {7}$key = "; else re="^ {8,}$key = "; fi
  grep -Eq -- "$re" "$work/plan.txt" ||
    fail "man page: PLAN FILES does not describe the $kind key '$key'"
done <"$work/keys"
echo "man_page: ok ($(wc -l <"$work/cmds") commands, $(wc -l <"$work/keys") plan keys)"
