-- syncplan.scan from stock lua5.4: the iterator, entry fields, filters,
-- error returns (nil, msg, code), the on_error callback and <close>.
local sp = require "syncplan"
local work = assert(os.getenv("WORK"), "run through tests/lua/run.sh")
local mktree = assert(os.getenv("MKTREE"))

local function sh(cmd) assert(os.execute(cmd), cmd) end
local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local src = work .. "/src"
sh(q(mktree) .. " hostile " .. q(src) .. " --unreadable")

assert(type(sp.version) == "string" and sp.version:match("^%d+%.%d+%.%d+$"))

-- Every entry, once, with its fields.
local errors = {}
local seen, n = {}, 0
local s = sp.scan(src, { on_error = function(path, msg) errors[#errors + 1] = path .. ": " .. msg end })
for e in s do
  assert(not seen[e.path], "twice: " .. e.path)
  seen[e.path] = e
  n = n + 1
end
local st = s:stats()
assert(st.entries == n, "stats.entries")
assert(st.errors == 1 and #errors == 1, "one unreadable dir expected, got " .. #errors)
assert(errors[1]:match("^unreadable: Permission denied"), errors[1])
assert(seen["unreadable"] and seen["unreadable"].type == "dir")
assert(not seen["unreadable/secret-1"])

assert(seen["names/new\nline"].type == "file")
assert(seen["names/\xff\xfe-bad"].type == "file")
assert(seen["symlinks/loop-a"].type == "symlink")
assert(seen["symlinks/self"].type == "symlink")
assert(seen["special/fifo"].type == "fifo")
assert(seen["empty/a/b"].type == "dir")
assert(seen["files/random-1m"].size == 1048576)
assert(seen["modes/r-0400"].mode == tonumber("400", 8))
assert(seen["modes/setgid-2755"].mode == tonumber("2755", 8))
local a, b, c = seen["hardlinks/g1/three-a"], seen["hardlinks/g2/three-b"], seen["hardlinks/g3/three-c"]
assert(a.nlink == 3 and a.ino == b.ino and b.ino == c.ino and a.dev == c.dev)
local deep = "deep"
for i = 1, 60 do deep = deep .. string.format("/d%02d", i) end
assert(seen[deep .. "/leaf"], "60-deep leaf")
assert(type(seen["files/empty"].mtime) == "number" and seen["files/empty"].mtime_nsec > 0)

-- Filters, in rsync's terms; the excluded unreadable dir is never read.
local got = {}
for e in sp.scan(src, { exclude = { "unreadable/", "*.txt", "/deep/d01/d02" } }) do got[e.path] = true end
assert(not got["unreadable"] and not got["symlinks/target.txt"])
assert(got["deep/d01"] and not got["deep/d01/d02"])
got = {}
for e in sp.scan(src, { filter = { "- unreadable/", "+ */", "+ *.txt", "- *" } }) do got[e.path] = e.type end
assert(got["symlinks/target.txt"] == "file" and got["deep/d01"] == "dir" and not got["files/empty"])
assert(sp.match("/foo/**/bar", "foo/x/y/bar") and not sp.match("/foo/**/bar", "foo/bar"))
assert(sp.match("foo/", "a/foo", true) and not sp.match("foo/", "a/foo", false))

-- Breaking out of the loop closes the scan (generic-for closing value).
local count = 0
for _ in sp.scan(src, { exclude = "unreadable/" }) do
  count = count + 1
  if count == 5 then break end
end
do
  local s2 <close> = sp.scan(src, { exclude = "unreadable/", threads = 2 })
  assert(s2() ~= nil)
end
local closed = sp.scan(src, { exclude = "unreadable/" })
closed:close()
assert(closed() == nil, "a closed scan yields nothing")
assert(tostring(closed):match("closed"))

-- Expected failures: nil, message, code.  Misuse raises.
local it, msg, code = sp.scan(work .. "/missing")
assert(it == nil and code == "ENOENT" and msg:find("missing", 1, true), tostring(msg))
it, msg, code = sp.scan(src .. "/plain.txt")
assert(it == nil and code == "ENOTDIR", tostring(code))
assert(not pcall(sp.scan, src, { threads = "many" }))
assert(not pcall(sp.scan, src, { exclude = { "[abc" } }))
assert(not pcall(sp.scan, src, { exclude = 42 }))
assert(not pcall(sp.scan, src, { on_error = "nope" }))
assert(sp.parse_size("4G") == 4 * 1024 ^ 3 and sp.parse_size("1.5k") == 1536)
local v, m2, c2 = sp.parse_size("lots")
assert(v == nil and c2 == "EINVAL" and m2)

-- An error raised by on_error propagates to the loop, once.
local ok, err = pcall(function()
  for _ in sp.scan(src, { on_error = function() error("stop here") end }) do end
end)
assert(not ok and tostring(err):match("stop here"), tostring(err))
-- ... and ends the scan: later calls yield nothing instead of garbage.
local failing = sp.scan(src, { on_error = function() error("once") end })
ok, err = pcall(function() for _ in failing do end end)
assert(not ok and tostring(err):match("once"))
assert(failing() == nil, "a scan ended by its callback's error stays ended")

-- Re-entry from on_error: close() is deferred until the crawl step
-- returns; calling the iterator there raises instead of corrupting it.
local reent
reent = sp.scan(src, { on_error = function() reent:close() end })
for _ in reent do end
assert(tostring(reent):match("closed"))
reent = sp.scan(src, { on_error = function() reent() end })
ok, err = pcall(function() for _ in reent do end end)
assert(not ok and tostring(err):match("own on_error"), tostring(err))
print(("lua scan: ok (%d entries)"):format(n))
