-- syncplan.producer's quick check from Lua: dest_root and dest_list_argv,
-- check_uid/check_gid, and the stats fields it adds.
local sp = require "syncplan"
local work = assert(os.getenv("WORK"), "run through tests/lua/run.sh")
local mktree = assert(os.getenv("MKTREE"))
local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
-- LD_PRELOAD= : shell tools must not inherit a sanitizer runtime.
local function sh(cmd) assert(os.execute("LD_PRELOAD= " .. cmd), cmd) end

local src, dst = work .. "/src", work .. "/dst"
sh(q(mktree) .. " sample " .. q(src) .. " -n 300")
sh("rsync -aH " .. q(src .. "/") .. " " .. q(dst .. "/"))

local FIND = "%y %m %s %T@ %D %i %n %U %G %P\\0%l\\0"
-- env first: the listing's shell must not run with a preloaded sanitizer
-- runtime either (leak reports would change its exit status).
local function listing(dir)
  return { "env", "-u", "LD_PRELOAD", "sh", "-c",
    "exec find \"$0\" -mindepth 0 -printf '" .. FIND .. "'", dir }
end

-- Every path the producer sends, and its stats at the end.
local function run(opts)
  opts.chunks = opts.chunks or { files = 50 }
  local sent, st = {}, nil
  sp.run(function()
    local p = assert(sp.producer(opts))
    while true do
      local c, err = p:next()
      assert(c or not err, err)
      if not c then break end
      for path in c:paths() do sent[#sent + 1] = path end
    end
    st = p:stats()
    p:close()
  end)
  table.sort(sent)
  return sent, st
end

-- Without a destination: nothing compared.
local sent, st = run { root = src }
assert(st.compared == false and st.root_changed == false, "no destination")
assert(st.unchanged == 0 and st.dest_entries == 0 and st.extraneous == 0)
assert(#sent == st.entries and st.entries > 300, "all sent: " .. #sent)
local total = st.entries

-- Identical trees, local and listed: nothing sent, everything unchanged.
local dests = {
  { dest_root = dst },
  { dest_list_argv = listing(dst) },
}
for i, d in ipairs(dests) do
  d.root = src
  d.check_uid, d.check_gid = true, true
  sent, st = run(d)
  assert(#sent == 0, i .. ": sent " .. #sent)
  assert(st.compared == true and st.root_changed == false, i .. ": flags")
  assert(st.unchanged == total and st.entries == total, i .. ": unchanged")
  assert(st.dest_entries == total and st.extraneous == 0, i .. ": dest")
  assert(st.dest_errors == 0 and st.unchanged_bytes > 0, i .. ": bytes")
  assert(math.type(st.unchanged_bytes) == "integer")
end

-- A listed source against a listed destination works the same way.
sent, st = run { list_argv = listing(src), dest_list_argv = listing(dst) }
assert(#sent == 0 and st.unchanged == total and not st.root_changed)

-- One file touched, one file only in the destination, the root's mtime
-- changed: one path sent, one extraneous, the root flagged.
local victim
for path in io.popen("cd " .. q(src) .. " && LD_PRELOAD= find . -type f -links 1 -printf '%P\\n'"):lines() do
  victim = victim or path
end
sh("touch -m -d '2001-02-03 04:05:06' " .. q(src .. "/" .. victim))
sh("touch -m -d '2002-01-01' " .. q(src))
-- Touching the directory back keeps the extra file's parent unchanged.
sh("touch -r " .. q(dst) .. " " .. q(work .. "/stamp") .. " && echo x > " ..
  q(dst .. "/only-in-destination") .. " && touch -m -r " .. q(work .. "/stamp") .. " " .. q(dst))
for i, d in ipairs(dests) do
  d.root = src
  sent, st = run(d)
  assert(#sent == 1 and sent[1] == victim,
    i .. ": sent " .. table.concat(sent, ", "))
  assert(st.unchanged == total - 1, i .. ": unchanged " .. st.unchanged)
  assert(st.extraneous == 1 and st.root_changed == true, i .. ": extraneous")
end

-- A missing destination: everything goes, the root counts as changed.
sent, st = run { root = src, dest_root = work .. "/absent" }
assert(#sent == total and st.root_changed and st.dest_entries == 0)

-- Misuse raises; a destination listing that fails ends the producer.
assert(not pcall(sp.producer, { root = src, chunks = { count = 1 },
  dest_root = dst, dest_list_argv = listing(dst) }))
assert(not pcall(sp.producer, { root = src, chunks = { count = 1 },
  dest_list_argv = { 1, 2 } }))
sp.run(function()
  local p = assert(sp.producer { root = src, chunks = { count = 1 },
    dest_list_argv = { "env", "-u", "LD_PRELOAD", "sh", "-c",
      "echo gone >&2; exit 3" } })
  local c, err = p:next()
  assert(c == nil and err:find("destination: listing command failed %(exit 3%): gone"),
    tostring(err))
  p:close()
end)
print("test_compare: ok")
