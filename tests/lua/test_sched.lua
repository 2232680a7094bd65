-- syncplan.schedule, syncplan.timetable and the SYNCPLAN_FAKE_TIME clock
-- from stock lua5.4.  Calendar cases run in child interpreters with TZ
-- set (the C unit test covers the calendar itself); the fake clock is
-- checked in children started with the variable set.
local sp = require "syncplan"

local lua = arg[-1]
local work = assert(os.getenv("WORK"), "run through tests/lua/run.sh")

-- Run code in a child lua with the given environment assignments; its
-- stdout, and whether it exited 0.
local function child(env, code)
  local path = work .. "/child.lua"
  local f = assert(io.open(path, "w"))
  f:write(code)
  f:close()
  local p = assert(io.popen(("env %s %q %q 2>&1"):format(env, lua, path)))
  local out = p:read("a")
  local ok = p:close()
  return out, ok
end

-- Schedules: parse, describe, next.
local s = assert(sp.schedule("every 6h"))
assert(s:describe() == "every 6h")
assert(tostring(s) == "syncplan.schedule (every 6h)")
assert(s:next(1000, 2000) == 1000 + 6 * 3600)
assert(s:next(1000, 1000 + 7 * 3600) == 1000 + 7 * 3600) -- ran long: at once
assert(s:next(nil, 5000) == 5000)                        -- never ran: now
assert(s:next(1000.9, 2000.5) == 1000 + 6 * 3600)        -- floors
assert(math.type(s:next(1000, 2000)) == "integer")
-- now defaults to syncplan.time().
local now = sp.time()
assert(math.abs(s:next() - now) <= 1)
assert(math.abs(s:next(math.floor(now)) - (math.floor(now) + 6 * 3600)) <= 1)
s:close()
s:close() -- idempotent
assert(tostring(s) == "syncplan.schedule (closed)")
local ok, err = pcall(s.next, s, 1, 2)
assert(not ok and err:find("closed schedule"), err)

assert(sp.schedule("every 90s"):describe() == "every 1m30s")
assert(sp.schedule("1d2h30m"):describe() == "every 1d2h30m")
assert(sp.schedule("@daily"):describe() == "cron 0 0 * * *")
assert(sp.schedule("CRON 0 */6 * * Mon-Fri"):describe() ==
  "cron 0 */6 * * mon-fri")
do
  local never <close> = assert(sp.schedule("cron 0 0 30 2 *"))
  assert(never:next(0, 1718006398) == nil)
end

-- Failures: nil, message, code; misuse raises.
local v, msg, code = sp.schedule("cron 0 25 * * *")
assert(v == nil and msg == 'cron: hour field "25": value out of range 0-23'
  and code == "EINVAL", msg)
v, msg, code = sp.schedule("every 90")
assert(v == nil and msg:find('^schedule "every 90": expected') and
  code == "EINVAL", msg)
assert(not pcall(sp.schedule))
assert(not pcall(sp.schedule, {}))
assert(not pcall(sp.schedule("every 1h").next, sp.schedule("every 1h"), "x"))
assert(not pcall(sp.schedule("every 1h").next, sp.schedule("every 1h"), 0,
  math.huge))

-- Timetables: a string or a list; nil for off.
local t = assert(sp.timetable("08:00,512k 12:00,10M:1M 23:00,off"))
local t2 = assert(sp.timetable { "08:00,512k", "12:00,10M:1M", "23:00,off" })
for _, tt in ipairs { t, t2 } do
  -- Local times, whatever TZ this runs under (no zone changes its
  -- offset on 2024-06-10).
  local day = os.time { year = 2024, month = 6, day = 10, hour = 0 }
  local up, down, nx = tt:at(day + 9 * 3600)
  assert(up == 512 * 1024 and down == 512 * 1024 and nx == day + 12 * 3600)
  up, down, nx = tt:at(day + 12 * 3600 + 0.5)
  assert(up == 10 * 1024 * 1024 and down == 1024 * 1024 and
    nx == day + 23 * 3600)
  up, down, nx = tt:at(day + 23 * 3600 + 30)
  assert(up == nil and down == nil and nx == day + 32 * 3600)
  local a, b, c = tt:at() -- syncplan.time()
  assert(c and c > now and c <= now + 86400)
  assert((a == nil) == (b == nil))
end
t2:close()
assert(not pcall(t2.at, t2, 0))
local c1 = assert(sp.timetable("10M"))
local up, down, nx = c1:at(0)
assert(up == 10485760 and down == 10485760 and nx == nil)
up, down, nx = assert(sp.timetable("off")):at(0)
assert(up == nil and down == nil and nx == nil)
v, msg, code = sp.timetable("25:00,1M")
assert(v == nil and code == "EINVAL" and msg ==
  'timetable entry "25:00,1M": expected a time HH:MM from 00:00 to 23:59, '
  .. 'got "25:00"', msg)
v, msg = sp.timetable {}
assert(v == nil and msg == "timetable: no entries")
assert(not pcall(sp.timetable, { "08:00,1M", 5 }))
assert(not pcall(sp.timetable))

-- Without SYNCPLAN_FAKE_TIME, the real wall clock.
assert(math.abs(sp.time() - os.time()) <= 2)

-- SYNCPLAN_FAKE_TIME: the value at load, then advancing with the
-- monotonic clock.
local out, fine = child("SYNCPLAN_FAKE_TIME=1700000000.25", [[
  local sp = require "syncplan"
  local t0 = sp.time()
  sp.run(function() sp.sleep(0.3) end)
  local t1 = sp.time()
  io.write(string.format("%.3f %.3f", t0, t1))
]])
assert(fine, out)
local t0, t1 = out:match("^(%S+) (%S+)$")
t0, t1 = tonumber(t0), tonumber(t1)
assert(t0 and t0 >= 1700000000.25 and t0 < 1700000000.25 + 2, out)
assert(t1 - t0 >= 0.29 and t1 - t0 < 2, out)

-- A job started at 07:59:58 local time: the 08:00 run and switch come
-- two seconds later, seen through the defaults of next() and at().
-- 1717999198 is 2024-06-10 07:59:58 in Berlin (CEST, UTC+2).
out, fine = child("TZ=Europe/Berlin SYNCPLAN_FAKE_TIME=1717999198", [[
  local sp = require "syncplan"
  local s = assert(sp.schedule("cron 0 8 * * *"))
  local t = assert(sp.timetable("08:00,1M 18:00,off"))
  local first = s:next()
  local up, down, nx = t:at()
  local start = sp.time()
  -- A loop timer may fire up to a millisecond early: a little margin.
  sp.run(function() sp.sleep(nx - sp.time() + 0.05) end)
  local up2 = t:at()
  io.write(table.concat({ first, tostring(up), tostring(down), nx, up2,
    s:next(), string.format("%.1f", sp.time() - start) }, " "))
]])
assert(fine, out)
assert(out:match("^1717999200 nil nil 1717999200 1048576 1718085600 "), out)
local waited = tonumber(out:match(" (%S+)$"))
assert(waited >= 1.5 and waited < 3, out)

-- A typo in the variable stops the module from loading.
out, fine = child("SYNCPLAN_FAKE_TIME=7:59", 'require "syncplan"')
assert(not fine and out:find("SYNCPLAN_FAKE_TIME: expected seconds since "
  .. "the epoch %(e%.g%. 1718006398%.5%), got '7:59'"), out)

print("sched: ok")
