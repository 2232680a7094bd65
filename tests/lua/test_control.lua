-- syncplan.control and syncplan.control_call: requests from other
-- processes answered by tasks inside syncplan.run (one held while
-- another is served), replies of every kind, the socket's mode, errors
-- answered then raised, the error codes, close/__gc/<close>, misuse.
local sp = require "syncplan"
local work = assert(os.getenv("WORK"), "run through tests/lua/run.sh")
local lua = arg[-1]

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
local function exists(p) return os.execute("test -e " .. q(p)) == true end
local function mode(p)
  local f = assert(io.popen("stat -c %a " .. q(p)))
  local m = f:read("l")
  f:close()
  return m
end
local function slurp(p)
  local f = io.open(p, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- The client, in a process of its own (control_call blocks): writes
-- "ok:REPLY" or "fail:CODE" to out.
local client = [[
local sp = require "syncplan"
local path, req, out = ...
local r, _, code = sp.control_call(path, req, 10)
local f = assert(io.open(out .. ".tmp", "wb"))
f:write(r and ("ok:" .. r) or ("fail:" .. tostring(code)))
f:close()
assert(os.rename(out .. ".tmp", out))
]]
local n = 0
local function out_file()
  n = n + 1
  return work .. "/out" .. n
end
-- As a worker (wait for it in a task) ...
local function call_worker(path, req)
  local out = out_file()
  local w = assert(sp.worker { argv = { lua, "-", path, req, out }, input = client })
  return w, out
end
-- ... or in the background, for when no task can wait.
local function call_background(path, req)
  local out = out_file()
  local f = assert(io.open(out .. ".lua", "w"))
  f:write(client)
  f:close()
  assert(os.execute(table.concat({ q(lua), q(out .. ".lua"), q(path), q(req), q(out) }, " ")
    .. " </dev/null >/dev/null 2>&1 &"))
  return out
end
local function wait_file(p)
  for _ = 1, 200 do
    local s = slurp(p)
    if s then return s end
    os.execute("sleep 0.05")
  end
  error("no " .. p)
end

local path = work .. "/c.sock"

-- Round trips.  "hold" waits in its task until "release" comes: both
-- clients are connected at once and the second is answered first.
local seen, answered = {}, {}
sp.run(function()
  local released = sp.condition()
  local c <close> = assert(sp.control(path, function(req)
    seen[#seen + 1] = req
    if req == "hold" then
      assert(released:wait(10), "never released")
      answered[#answered + 1] = req
      return "held"
    elseif req == "release" then
      released:notify()
      answered[#answered + 1] = req
      return "released"
    elseif req == "multi" then
      return "line 1\nline 2\n"
    elseif req == "num" then
      return 42
    elseif req == "nil" then
      return nil
    end
    return "got " .. req
  end))
  assert(tostring(c):find("open"))
  assert(mode(path) == "600", mode(path))
  local hold, hold_out = call_worker(path, "hold")
  while #seen == 0 do sp.sleep(0.01) end
  local rel, rel_out = call_worker(path, "release")
  assert(rel:wait().status == 0)
  assert(slurp(rel_out) == "ok:released")
  assert(hold:wait().status == 0)
  assert(slurp(hold_out) == "ok:held")
  assert(answered[1] == "release" and answered[2] == "hold")

  local ws, outs = {}, {}
  local reqs = { "plain", "bytes \xff\xfe\t", "multi", "num", "nil", string.rep("r", 60000) }
  for i, req in ipairs(reqs) do ws[i], outs[i] = call_worker(path, req) end
  for i, w in ipairs(ws) do assert(w:wait().status == 0, reqs[i]) end
  assert(slurp(outs[1]) == "ok:got plain")
  assert(slurp(outs[2]) == "ok:got bytes \xff\xfe\t")
  assert(slurp(outs[3]) == "ok:line 1\nline 2")
  assert(slurp(outs[4]) == "ok:42")
  assert(slurp(outs[5]) == "ok:")
  assert(slurp(outs[6]) == "ok:got " .. reqs[6])

  -- A second listener on the same path is refused; the first stays.
  local none, msg, code = sp.control(path, function() end)
  assert(none == nil and code == "EBUSY", tostring(code))
  assert(msg:find(path, 1, true), msg)
  local w, out = call_worker(path, "still")
  assert(w:wait().status == 0 and slurp(out) == "ok:got still")
end)
assert(not exists(path), "the socket stays after close")

-- An error in the handler is answered, then stops the run.
local c = assert(sp.control(path, function(req) error("boom " .. req) end))
local out
local ok, err = pcall(sp.run, function()
  out = call_background(path, "now")
  sp.sleep(20)
end)
assert(not ok and err:find("boom now"), tostring(err))
c:close() -- ends the connection: the client has its reply
local got = wait_file(out)
assert(got:find("^ok:error: ") and got:find("boom now"), got)
c:close()
assert(tostring(c):find("closed"))
assert(not exists(path))

-- So does a reply that is not a string.
c = assert(sp.control(path, function() return {} end))
ok, err = pcall(sp.run, function()
  out = call_background(path, "table")
  sp.sleep(20)
end)
assert(not ok and err:find("returned a table"), tostring(err))
c:close()
got = wait_file(out)
assert(got:find("^ok:error: control handler returned a table"), got)

-- Error codes.
local none, msg, code = sp.control_call(work .. "/none.sock", "x", 1)
assert(none == nil and code == "ENOENT" and msg:find("none.sock", 1, true), tostring(code))
none, msg, code = sp.control(work .. "/" .. string.rep("d", 120) .. "/s", function() end)
assert(none == nil and code == "ENAMETOOLONG", tostring(code))
assert(msg:find("shorter"), msg)
-- Listening but not served (no run turns the loop): the client times out.
c = assert(sp.control(path, function() return "x" end))
local t0 = sp.clock()
none, msg, code = sp.control_call(path, "x", 0.2)
assert(none == nil and code == "ETIMEDOUT", tostring(code))
assert(sp.clock() - t0 >= 0.19)
none, msg, code = sp.control_call(path, "two\nlines", 1)
assert(none == nil and code == "EINVAL", tostring(code))

-- __gc and <close> close it too.
c = nil
collectgarbage()
collectgarbage()
assert(not exists(path), "__gc left the socket")
do
  local c2 <close> = assert(sp.control(path, function() return "x" end))
  assert(exists(path))
end
assert(not exists(path), "<close> left the socket")

-- Misuse raises.
assert(not pcall(sp.control, path))
assert(not pcall(sp.control, nil, function() end))
assert(not pcall(sp.control_call, path, "a\0b"))
assert(not pcall(sp.control_call, path, "x", -1))
assert(not pcall(sp.control_call, path))

print("ok")
