-- Tasks on the event loop: run/spawn/join, sleep ordering and timing,
-- conditions with and without timeouts, timers, errors raised from a
-- background task with its traceback, deadlock detection, and the
-- embedded helpers' preload.
local sp = require "syncplan"

-- run returns the main task's results.
local a, b = sp.run(function(x, y) return x + 1, y .. "!" end, 1, "hi")
assert(a == 2 and b == "hi!", "run results")

-- Sleeps wake in deadline order, without blocking each other.
local order = {}
local t0 = sp.clock()
sp.run(function()
  local tasks = {}
  for _, d in ipairs { 0.15, 0.05, 0.10 } do
    tasks[#tasks + 1] = sp.spawn(function()
      sp.sleep(d)
      order[#order + 1] = d
      return d * 2
    end)
  end
  local sum = 0
  for _, t in ipairs(tasks) do sum = sum + t:join() end
  assert(math.abs(sum - 0.6) < 1e-9, "join results")
end)
local elapsed = sp.clock() - t0
assert(order[1] == 0.05 and order[2] == 0.10 and order[3] == 0.15,
  "sleep order " .. table.concat(order, ","))
assert(elapsed >= 0.14 and elapsed < 1.0, "sleeps ran in parallel: " .. elapsed)

-- Conditions: notify wakes every waiter with true; a timeout gives false.
sp.run(function()
  local c = sp.condition()
  local got = {}
  local w1 = sp.spawn(function() local v = c:wait(); got[#got + 1] = v end)
  local w2 = sp.spawn(function() local v = c:wait(5); got[#got + 1] = v end)
  sp.sleep(0.02)
  assert(c:notify() == 2, "two waiters")
  w1:join(); w2:join()
  assert(got[1] == true and got[2] == true, "notify values")
  local t1 = sp.clock()
  assert(c:wait(0.05) == false, "timeout returns false")
  assert(sp.clock() - t1 >= 0.04, "timeout too early")
end)

-- Timers call plain functions; stop() ends a repeating one.
sp.run(function()
  local n = 0
  local h
  h = sp.timer(0.01, function()
    n = n + 1
    if n == 3 then h:stop() end
  end, 0.01)
  sp.sleep(0.2)
  assert(n == 3, "repeating timer fired " .. n .. " times")
end)

-- An error in a background task stops run() with that task's message.
local ok, err = pcall(sp.run, function()
  sp.spawn(function()
    sp.sleep(0.01)
    error("boom in background")
  end)
  sp.sleep(10)
end)
assert(not ok and err:match("boom in background"), tostring(err))
assert(err:match("traceback"), "no traceback: " .. err)

-- The loop is usable again after a failed run.
assert(sp.run(function() sp.sleep(0.01) return "again" end) == "again")

-- A task waiting on nothing that can wake it is a deadlock, not a hang.
ok, err = pcall(sp.run, function() sp.condition():wait() end)
assert(not ok and err:match("deadlock"), tostring(err))

-- Blocking calls outside a task are misuse.
ok, err = pcall(sp.sleep, 0.01)
assert(not ok and err:match("must be called from a task"), tostring(err))
ok, err = pcall(sp.run, function()
  local co = coroutine.wrap(function() sp.sleep(0.01) end)
  co()
end)
assert(not ok and err:match("must be called from a task"), tostring(err))

-- The embedded policy modules load from the .so.
local plan = require "syncplan.plan"
assert(plan.json({ a = 1, b = { true, "x\n" } }) == '{"a":1,"b":[true,"x\\n"]}')
assert(require("syncplan.runner").EXIT.interrupted == 3)
print("test_loop: ok")
