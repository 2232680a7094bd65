-- Watching a tree from Lua, end to end: the watch's function arms a
-- delay timer, the timer takes the batch; files written, renamed and
-- removed, a directory renamed with a file then made in it, excluded
-- names, a name with a newline; one call of the function per batch; a
-- missing root; close.
local sp = require "syncplan"

local root = assert(os.getenv("WORK"), "WORK is set by run.sh") .. "/watched"
assert(sp.mkdir(root .. "/sub", tonumber("755", 8), true))

local function write(rel, data)
  local f = assert(io.open(root .. "/" .. rel, "wb"))
  f:write(data)
  f:close()
end

local function find(changes, kind, path)
  for _, c in ipairs(changes) do
    if c.kind == kind and c.path == path then return c end
  end
end

local function show(changes)
  local t = {}
  for _, c in ipairs(changes) do
    t[#t + 1] = c.kind .. " " .. (c.from and c.from .. " -> " or "") ..
        string.format("%q", c.path)
  end
  return table.concat(t, "; ")
end

local calls, batches = 0, {}

sp.run(function()
  local ready = sp.condition()
  local w
  w = assert(sp.watch(root, { exclude = { "*.tmp", "skip/" } }, function()
    calls = calls + 1
    -- The delay: what changes meanwhile joins this batch.
    sp.timer(0.1, function()
      local changes, overflow = w:take()
      batches[#batches + 1] = { changes = changes, overflow = overflow }
      ready:notify()
    end)
  end))
  local _ <close> = w
  assert(w:dirs() == 2, "root and sub watched")

  -- Waits for the next batch; returns its changes.
  local function batch(what)
    local n = #batches
    assert(ready:wait(5), what .. ": no batch came")
    local b = batches[n + 1]
    assert(b and not b.overflow, what .. ": overflow")
    return b.changes
  end

  write("sub/a", "hello")
  write("x.tmp", "excluded")
  assert(sp.mkdir(root .. "/skip", tonumber("755", 8)))
  write("skip/y", "excluded")
  local c = batch("create")
  assert(#c == 1 and find(c, "changed", "sub/a"), show(c))
  assert(c[1].dir == false and c[1].from == nil, show(c))

  assert(os.rename(root .. "/sub/a", root .. "/sub/b"))
  write("n\nl", "newline")
  c = batch("rename")
  assert(#c == 2, show(c))
  local m = find(c, "moved", "sub/b")
  assert(m and m.from == "sub/a" and m.dir == false, show(c))
  assert(find(c, "changed", "n\nl"), show(c))

  -- A renamed directory keeps being watched, under its new name.
  assert(os.rename(root .. "/sub", root .. "/sub2"))
  write("sub2/c", "c")
  c = batch("dir rename")
  assert(#c == 2, show(c))
  m = find(c, "moved", "sub2")
  assert(m and m.from == "sub" and m.dir == true, show(c))
  assert(find(c, "changed", "sub2/c"), show(c))
  assert(c[1].kind == "moved", "renames come first: " .. show(c))

  assert(os.remove(root .. "/sub2/c"))
  assert(sp.mkdir(root .. "/new/deeper", tonumber("755", 8), true))
  write("new/deeper/f", "f")
  c = batch("remove and mkdir -p")
  assert(#c == 2, show(c))
  assert(find(c, "removed", "sub2/c"), show(c))
  local t = find(c, "tree", "new")
  assert(t and t.dir == true, show(c))

  assert(#batches == 4 and calls == 4, "one call per batch: " .. calls)
  local again = w:take()
  assert(#again == 0, "take empties the set")

  w:close()
  w:close() -- idempotent
  assert(tostring(w) == "syncplan.watch (closed)")
  assert(not pcall(w.take, w), "take after close raises")
  write("after-close", "x")
  sp.sleep(0.2)
  assert(calls == 4, "no call after close")
end)

-- A missing root: nil, message, code.
local w, msg, code = sp.watch(root .. "/missing", function() end)
assert(w == nil and code == "ENOENT" and msg:find("missing"), tostring(msg))

-- An error in the function stops the run, which raises it.
local w2 = assert(sp.watch(root, function() error("boom from watch") end))
local ok, err = pcall(sp.run, function()
  write("trigger", "x")
  sp.sleep(2)
end)
w2:close()
assert(not ok and tostring(err):find("boom from watch"), tostring(err))

print("test_watch.lua: ok")
