-- syncplan.journal and syncplan.state_dir from stock lua5.4: runs, chunks
-- (lists with NULs, newlines and non-UTF-8 bytes), transactions, file
-- records (scan entries stored as they are), error returns (nil, msg,
-- code), misuse raising, close/<close>.
local sp = require "syncplan"
local work = assert(os.getenv("WORK"), "run through tests/lua/run.sh")

local function sh(cmd) assert(os.execute(cmd), cmd) end
local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
local function mode(path)
  local p = assert(io.popen("stat -c %a " .. q(path)))
  local m = p:read("l")
  p:close()
  return m
end

-- state_dir(): the variables in order; tested through a child lua so the
-- environment can be set.
local lua = arg[-1]
local function state_dir_with(env)
  local p = assert(io.popen("env -u SYNCPLAN_STATE_DIR -u XDG_STATE_HOME -u HOME "
    .. env .. " " .. q(lua) .. [[ -e 'local sp = require "syncplan"
      local d, _, c = sp.state_dir(); print(tostring(d), tostring(c))']]))
  local out = p:read("a")
  p:close()
  return out
end
assert(state_dir_with("SYNCPLAN_STATE_DIR=/s HOME=/h") == "/s\tnil\n")
assert(state_dir_with("XDG_STATE_HOME=/x HOME=/h") == "/x/syncplan\tnil\n")
assert(state_dir_with("HOME=/h") == "/h/.local/state/syncplan\tnil\n")
assert(state_dir_with("") == "nil\tENOENT\n", state_dir_with(""))
local d, msg, code = sp.state_dir()
assert(type(d) == "string" or code == "ENOENT")

-- Opening creates the directory 0700 and the database 0600.
local dir = work .. "/state/sub"
local j = assert(sp.journal(dir))
assert(j:dir() == dir)
assert(tostring(j):find(dir, 1, true))
assert(mode(dir) == "700", mode(dir))
assert(mode(dir .. "/journal.db") == "600")

-- A state directory others can read is refused.
sh("mkdir -m 755 " .. q(work .. "/wide"))
local none
none, msg, code = sp.journal(work .. "/wide")
assert(none == nil and code == "ESTATE", tostring(code))
assert(msg:find(work .. "/wide", 1, true) and msg:find("0755"), msg)
none, msg, code = sp.journal(work .. "/state/sub/journal.db")
assert(none == nil and code == "ENOTDIR", tostring(code))

-- Runs: ids, fields, newest first.
local ids = {}
for i = 1, 3 do
  ids[i] = j:run_new { source = "/src" .. i, dest = "host:/dst", plan = "{ x = " .. i .. " }" }
  assert(ids[i]:match("^%d%d%d%d%d%d%d%d%-%d%d%d%d%d%d%-%x%x%x%x$"), ids[i])
end
local r = assert(j:run_get(ids[2]))
assert(r.id == ids[2] and r.state == "running" and r.source == "/src2")
assert(r.dest == "host:/dst" and r.plan == "{ x = 2 }")
assert(r.scan_complete == false and r.exit_code == -1 and r.pid > 0)
assert(math.abs(r.started - os.time()) < 5 and r.finished == 0)
assert(r.chunks == 0 and r.chunks_done == 0 and r.chunks_failed == 0)
assert(r.files == 0 and r.bytes == 0)
local runs = j:runs()
assert(#runs == 3 and runs[1].id == ids[3] and runs[2].id == ids[2] and runs[3].id == ids[1])
assert(runs[1].source == "/src3")
-- plan is optional
local bare = j:run_new { source = "/a", dest = "/b" }
assert(j:run_get(bare).plan == "")

assert(j:run_set_state(ids[1], "done", 0) == true)
r = j:run_get(ids[1])
assert(r.state == "done" and r.exit_code == 0 and r.finished >= r.started)
assert(j:run_set_state(ids[1], "running") == true)
r = j:run_get(ids[1])
assert(r.state == "running" and r.exit_code == -1 and r.finished == 0)
assert(j:run_set_scan_complete(ids[1], true) == true)
assert(j:run_get(ids[1]).scan_complete == true)
assert(j:run_set_scan_complete(ids[1], false) == true)
assert(j:run_get(ids[1]).scan_complete == false)

none, msg, code = j:run_get("19990101-000000-beef")
assert(none == nil and code == "ENOENT" and msg:find("19990101-000000-beef", 1, true), msg)
none, msg, code = j:run_set_state("nope", "done", 0)
assert(none == nil and code == "ENOENT")
none, msg, code = j:run_set_scan_complete("nope", true)
assert(none == nil and code == "ENOENT")

-- Chunks: a list with NULs, newlines and bytes that are not UTF-8.
local id = ids[3]
local list = "a\0dir/new\nline\0\xff\xfe-bad\0\0tail"
assert(j:chunk_add(id, 0, list, 4, 1000) == true)
assert(j:chunk_add(id, 1, "x\0", 1, 5) == true)
assert(j:chunk_add(id, 2, "", 0, 0) == true)
none, msg, code = j:chunk_add(id, 1, "y\0", 1, 5)
assert(none == nil and code == "EINVAL", tostring(code))
none, msg, code = j:chunk_add("nope", 0, "y\0", 1, 5)
assert(none == nil and code == "ENOENT", tostring(code))

local c = assert(j:chunk_get(id, 0))
assert(c.index == 0 and c.state == "pending" and c.attempts == 0)
assert(c.exit_code == -1 and c.term_signal == 0 and c.host == "" and c.error == "")
assert(c.files == 4 and c.bytes == 1000 and c.list == list)
assert(c.started == 0 and c.finished == 0)
assert(j:chunk_get(id, 2).list == "")
none, msg, code = j:chunk_get(id, 9)
assert(none == nil and code == "ENOENT")
none, msg, code = j:chunk_get("nope", 0)
assert(none == nil and code == "ENOENT")

assert(j:chunk_update(id, { index = 0, state = "done", attempts = 2, exit_code = 23,
  term_signal = 0, host = "dtn1", error = "rsync: failed\xff", started = 100.5,
  finished = 200.25 }) == true)
c = j:chunk_get(id, 0)
assert(c.state == "done" and c.attempts == 2 and c.exit_code == 23 and c.host == "dtn1")
assert(c.error == "rsync: failed\xff" and c.started == 100.5 and c.finished == 200.25)
assert(c.list == list and c.files == 4) -- kept
-- Absent fields are stored as 0 / "" / "pending".
assert(j:chunk_update(id, { index = 1, state = "failed", term_signal = 9 }))
c = j:chunk_get(id, 1)
assert(c.state == "failed" and c.term_signal == 9 and c.exit_code == 0 and c.attempts == 0)
assert(j:chunk_update(id, { index = 2 }))
assert(j:chunk_get(id, 2).state == "pending")
none, msg, code = j:chunk_update(id, { index = 7, state = "done" })
assert(none == nil and code == "ENOENT")
none, msg, code = j:chunk_update("nope", { index = 0 })
assert(none == nil and code == "ENOENT")

local cs = j:chunks(id)
assert(#cs == 3 and cs[1].index == 0 and cs[2].index == 1 and cs[3].index == 2)
assert(cs[1].list == nil and cs[1].state == "done" and cs[2].state == "failed")
cs = j:chunks(id, true)
assert(cs[1].list == list and cs[2].list == "x\0" and cs[3].list == "")
assert(#j:chunks(ids[1]) == 0)
none, msg, code = j:chunks("nope")
assert(none == nil and code == "ENOENT")

r = j:run_get(id)
assert(r.chunks == 3 and r.chunks_done == 1 and r.chunks_failed == 1)
assert(r.files == 5 and r.bytes == 1005)

-- Transactions.
none, msg, code = j:commit()
assert(none == nil and code == "EINVAL")
assert(j:begin() == true)
none, msg, code = j:begin()
assert(none == nil and code == "EBUSY")
for i = 3, 102 do assert(j:chunk_add(id, i, "f" .. i .. "\0", 1, i)) end
assert(j:commit() == true)
assert(#j:chunks(id) == 103)

-- A second handle sees committed work; an uncommitted transaction is
-- dropped when its handle closes.
do
  local j2 <close> = assert(sp.journal(dir))
  assert(j2:run_get(id).chunks == 103)
  assert(j2:begin())
  assert(j2:chunk_add(id, 500, "z\0", 1, 1))
end
assert(j:run_get(id).chunks == 103)

-- File records: a scan's entries stored as they are, hostile names and
-- all, read back in bytewise path order with the same fields.
local tree = work .. "/tree"
sh("mkdir -p " .. q(tree .. "/sub"))
local names = { "new\nline", "\xff\xfe-bad", "tab\there", "sub/x y", "-dash" }
for i, n in ipairs(names) do
  local f = assert(io.open(tree .. "/" .. n, "wb"))
  f:write(string.rep("x", i * 100))
  f:close()
end
local scanned = {}
for e in sp.scan(tree) do scanned[#scanned + 1] = e end
assert(#scanned >= #names + 1, #scanned)
scanned[1].hash = "\0\1sha\255"
local key = tree .. "\n" .. work .. "/mirror rsync"
assert(j:record_count(key) == 0 and #j:record(key) == 0)
assert(j:record_put(key, scanned) == true)
assert(j:record_count(key) == #scanned)
local back = j:record(key)
assert(#back == #scanned)
local by_path = {}
for _, e in ipairs(scanned) do by_path[e.path] = e end
for i, e in ipairs(back) do
  if i > 1 then assert(back[i - 1].path < e.path) end -- bytewise (C locale)
  local s = by_path[e.path]
  assert(s, "unexpected path " .. e.path)
  for _, k in ipairs { "type", "size", "mtime", "mtime_nsec", "dev", "ino", "hash" } do
    assert(e[k] == s[k], k .. " of " .. e.path)
  end
end
assert(by_path["new\nline"].size == 100 and by_path["\xff\xfe-bad"].type == "file")

-- A second put replaces the whole record; other keys are untouched.
local other = "other key"
assert(j:record_put(other, { { path = "a", type = "dir" } }))
assert(j:record_put(key, { { path = "only\n", type = "symlink", size = 7, mtime = -5,
  mtime_nsec = 999999999, dev = -1, ino = math.maxinteger } }))
back = j:record(key)
assert(#back == 1 and j:record_count(key) == 1)
local e1 = back[1]
assert(e1.path == "only\n" and e1.type == "symlink" and e1.size == 7 and e1.mtime == -5)
assert(e1.mtime_nsec == 999999999 and e1.dev == -1 and e1.ino == math.maxinteger)
assert(e1.hash == nil)
back = j:record(other)
assert(#back == 1 and back[1].path == "a" and back[1].size == 0 and back[1].mtime == 0)

-- A bad entry raises and leaves the old record whole.
for _, bad in ipairs {
  { { path = "p", type = "file" }, { path = "q", type = "bogus" } },
  { { path = "p", type = "file" }, "not a table" },
  { { path = 5, type = "file" } },
  { { type = "file" } },
  { { path = "p", type = "file", size = 1.5 } },
  { { path = "p", type = "file", hash = {} } },
  { { path = "p", type = "file", mtime_nsec = 1e9 } },
} do
  assert(not pcall(j.record_put, j, key, bad))
  assert(j:record_count(key) == 1 and j:record(key)[1].path == "only\n")
end
-- Inside begin/commit it is part of the caller's transaction.
assert(j:begin())
assert(j:record_put(other, {}))
assert(j:record_count(other) == 0)
assert(not pcall(j.record_put, j, other, { { path = "x", type = "x" } }))
assert(j:commit())
assert(j:record_count(other) == 0)
-- Many entries in one put, read back in order.
local many = {}
for i = 1, 20000 do
  many[i] = { path = string.format("d%02d/f%06d", i % 50, i), type = "file", size = i,
    mtime = 1700000000 + i, ino = i, dev = 7 }
end
local t0 = os.clock()
assert(j:record_put(key, many))
back = j:record(key)
assert(#back == 20000 and j:record_count(key) == 20000)
for i = 2, #back do assert(back[i - 1].path < back[i].path) end
assert(os.clock() - t0 < 10, "20000 entries took " .. (os.clock() - t0) .. " s")
assert(not pcall(j.record_put, j, key))
assert(not pcall(j.record, j))

-- Misuse raises.
assert(not pcall(j.run_new, j, { source = 1, dest = "/d" }))
assert(not pcall(j.run_new, j, { dest = "/d" }))
assert(not pcall(j.run_new, j))
assert(not pcall(j.chunk_add, j, id, -1, "", 0, 0))
assert(not pcall(j.chunk_add, j, id, 2 ^ 40, "", 0, 0))
assert(not pcall(j.chunk_add, j, id, 200, "", -1, 0))
assert(not pcall(j.chunk_update, j, id, { state = "done" }))        -- no index
assert(not pcall(j.chunk_update, j, id, { index = 0, state = "bogus" }))
assert(not pcall(j.chunk_update, j, id, { index = 0, attempts = "many" }))
assert(not pcall(j.chunk_update, j, id, { index = 0, host = 5 }))
assert(not pcall(j.run_get, j))
assert(not pcall(sp.journal, {}))

-- close is idempotent; a closed journal raises.
j:close()
j:close()
assert(tostring(j):find("closed"))
assert(not pcall(j.runs, j))
assert(not pcall(j.dir, j))

-- The default directory comes from SYNCPLAN_STATE_DIR (child process).
local p = assert(io.popen("SYNCPLAN_STATE_DIR=" .. q(work .. "/env-state") .. " " .. q(lua)
  .. [[ -e 'local sp = require "syncplan"; local j = assert(sp.journal());
  print(j:dir()); j:close()']]))
assert(p:read("l") == work .. "/env-state")
p:close()
assert(mode(work .. "/env-state") == "700")

print("ok")
