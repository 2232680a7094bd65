-- syncplan.worker and syncplan.producer from Lua: an rsync worker per
-- chunk with progress callbacks, exit results, stop, failure returns.
local sp = require "syncplan"
local work = assert(os.getenv("WORK"), "run through tests/lua/run.sh")
local mktree = assert(os.getenv("MKTREE"))
local function sh(cmd) assert(os.execute(cmd), cmd) end
local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local src, dst = work .. "/src", work .. "/dst"
sh(q(mktree) .. " sample " .. q(src) .. " -n 500")
sh("head -c 3000000 /dev/urandom > " .. q(src .. "/big"))
sh("mkdir " .. q(dst))

sp.run(function()
  -- A producer streams chunks; each goes to an rsync worker.
  local p = assert(sp.producer { root = src, chunks = { files = 100 } })
  local chunks, progress_calls = 0, 0
  while true do
    local c, err = p:next()
    assert(c or not err, err)
    if not c then break end
    chunks = chunks + 1
    local w = assert(sp.worker {
      argv = { "rsync", "-aH", "--no-h", "--bwlimit=4000", "--files-from=-",
        "--from0", "--info=progress2", "--", src .. "/", dst .. "/" },
      input = c:data(), progress = "rsync", log = work .. "/chunk.log",
      -- A sanitizer runtime preloaded into lua5.4 must not reach rsync.
      env = { LD_PRELOAD = "" },
      on_progress = function(_, pr)
        assert(pr.bytes >= 0 and pr.total >= 0)
        progress_calls = progress_calls + 1
      end,
    })
    assert(type(w:pid()) == "number")
    local r = w:wait()
    assert(r.status == 0 and r.signal == 0, "rsync failed: " .. r.error)
    assert(sp.classify("rsync", r.status, r.signal, r.stopped, r.timed_out) == "ok")
  end
  assert(chunks >= 5, "chunks " .. chunks)
  assert(progress_calls > 0, "no progress callbacks")
  assert(p:stats().entries >= 501)

  -- Exit status and last error line of a failing command.
  local r = assert(sp.worker { argv = { "sh", "-c", "echo oops >&2; exit 23" } }):wait()
  assert(r.status == 23 and r.error == "oops", r.status .. " " .. r.error)
  assert(sp.classify("rsync", r.status, r.signal, false, false) == "partial")

  -- stop(): SIGTERM, then SIGKILL after the grace period.
  local w = assert(sp.worker { argv = { "sh", "-c", "trap '' TERM; sleep 30" },
    grace = 0.2 })
  sp.spawn(function() sp.sleep(0.1) w:stop() end)
  r = w:wait()
  assert(r.signal == 9 and r.stopped, "stop escalation: " .. r.signal)

  -- A missing program is an expected failure: nil, msg, code.
  local none, msg, code = sp.worker { argv = { "/nonexistent/tool" } }
  assert(none == nil and code == "ENOENT", tostring(msg))
  -- A producer on a missing root too.
  none, msg, code = sp.producer { root = work .. "/absent", chunks = { count = 2 } }
  assert(none == nil and code == "ENOENT", tostring(msg))
end)
-- LD_PRELOAD= : the shell's rsync must not inherit a sanitizer runtime.
sh("LD_PRELOAD= rsync -a --modify-window=-1 --include='*/' --exclude='*' " .. q(src .. "/") .. " " .. q(dst .. "/"))
local diff = io.popen("LD_PRELOAD= rsync -aHn --delete --itemize-changes " .. q(src .. "/") .. " " .. q(dst .. "/")):read("a")
assert(diff == "", "trees differ: " .. diff)
print("test_worker: ok")
