-- syncplan.chunk from stock lua5.4: chunk objects (index, files, bytes,
-- list, paths, items, write), the three modes, and error returns.
local sp = require "syncplan"
local work = assert(os.getenv("WORK"), "run through tests/lua/run.sh")
local mktree = assert(os.getenv("MKTREE"))
local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local src = work .. "/src"
assert(os.execute(q(mktree) .. " sample " .. q(src) .. " -n 3000"))

local all = {}
for e in sp.scan(src) do all[e.path] = e end

local function check_once(chunks)
  local seen, n = {}, 0
  for i, c in ipairs(chunks) do
    assert(c.index == i, "chunks are numbered from 1 in order")
    local list = c.list
    assert(#list == c.files and #c == c.files)
    for _, p in ipairs(list) do
      assert(all[p], "unknown path " .. p)
      assert(not seen[p], "twice: " .. p)
      seen[p] = c.index
      n = n + 1
    end
  end
  local total = 0
  for _ in pairs(all) do total = total + 1 end
  assert(n == total, ("%d of %d entries"):format(n, total))
  return seen
end

-- count
local chunks, st = sp.chunk(src, { count = 4 })
assert(#chunks == 4 and st.entries > 3000)
check_once(chunks)
local min, max = math.huge, 0
for _, c in ipairs(chunks) do min = math.min(min, c.bytes); max = math.max(max, c.bytes) end
assert((max - min) <= 0.05 * max, ("unbalanced %d..%d"):format(min, max))

-- limits: bounds, numbered in order
chunks = sp.chunk(src, { files = 100, bytes = "256k" })
check_once(chunks)
for _, c in ipairs(chunks) do
  assert(c.files <= 100)
  assert(c.bytes <= 256 * 1024 or c.files == 1)
end

-- top-level: one chunk per top-level name (hard links may merge some)
chunks = sp.chunk(src, { by = "topdir" })
local seen = check_once(chunks)
for path, idx in pairs(seen) do
  assert(seen[path:match("^[^/]+")] == idx, "subtree split: " .. path)
end
assert(#chunks >= 2)

-- chunk objects: items, paths, write
local c = chunks[1]
local items = c:items()
assert(#items == c.files and items[1].path == c.list[1] and items[1].type)
local k = 0
for path, size, typ in c:paths() do
  k = k + 1
  assert(path == c.list[k] and size == items[k].size and typ == items[k].type)
end
assert(k == c.files)
local file = work .. "/list"
assert(c:write(file) == true)
local data = assert(io.open(file, "rb")):read("a")
assert(data == table.concat(c.list, "\0") .. "\0")
assert(c:write(file, "\n") == true)
data = assert(io.open(file, "rb")):read("a")
assert(data == table.concat(c.list, "\n") .. "\n")
local ok, msg, code = c:write(work .. "/no/such/dir/list")
assert(ok == nil and code == "ENOENT" and msg:find("no/such"))
do
  local tmp <close> = chunks[2]
end
assert(not pcall(function() return chunks[2].files end), "a closed chunk raises")
assert(tostring(chunks[2]):match("freed"))

-- failures and misuse
local r, m, code2 = sp.chunk(work .. "/missing", { count = 2 })
assert(r == nil and code2 == "ENOENT" and m:find("missing", 1, true))
assert(not pcall(sp.chunk, src, { count = 2, files = 10 }))
assert(not pcall(sp.chunk, src, { count = 0 }))
assert(not pcall(sp.chunk, src, { bytes = "lots" }))
assert(not pcall(sp.chunk, src, { by = "size" }))
print("lua chunk: ok")
