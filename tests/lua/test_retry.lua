-- syncplan.classify, exit_text, parse_duration, backoff and bucket from
-- stock lua5.4, failure returns and raised misuse included.
local sp = require "syncplan"

-- Classification, rsync and rclone.
local rsync = { [0] = "ok", [24] = "vanished", [23] = "partial", [10] = "retry",
  [11] = "retry", [12] = "retry", [30] = "retry", [35] = "retry", [255] = "retry" }
for code = 0, 255 do
  local want = rsync[code] or "permanent"
  local got = sp.classify("rsync", code, 0, false, false)
  assert(got == want, ("rsync %d: %s, want %s"):format(code, got, want))
end
local rclone = { [0] = "ok", [1] = "retry", [5] = "retry", [8] = "stopped", [10] = "stopped" }
for code = 0, 12 do
  local want = rclone[code] or "permanent"
  local got = sp.classify("rclone", code, 0, false, false)
  assert(got == want, ("rclone %d: %s, want %s"):format(code, got, want))
end
assert(sp.classify("rsync", -1, 9, false, false) == "retry")
assert(sp.classify("rsync", nil, 9) == "retry")
assert(sp.classify("rsync", -1, 15, true, false) == "stopped")
assert(sp.classify("rsync", 1, 0, false, true) == "retry")
assert(sp.classify("rclone", -1, 9, false, false) == "retry")
assert(sp.classify("rclone", 0, 0, true, false) == "stopped")
assert(sp.classify("rsync", 23) == "partial")
assert(not pcall(sp.classify, "scp", 0))
assert(not pcall(sp.classify, "rsync", "zero"))
assert(not pcall(sp.classify))

-- Exit texts.
assert(sp.exit_text("rsync", 23) == "some files/attrs were not transferred (see previous errors)")
assert(sp.exit_text("rsync", 30) == "timeout in data send/receive")
assert(sp.exit_text("rsync", 255) == "ssh or the remote shell failed (unexplained error)")
assert(sp.exit_text("rsync", 99) == "exit status 99")
assert(sp.exit_text("rclone", 3) == "directory not found")
assert(sp.exit_text("rclone", 42) == "exit status 42")
assert(not pcall(sp.exit_text, "cp", 1))

-- Durations.
local durations = { ["90"] = 90, ["1.5s"] = 1.5, ["250ms"] = 0.25, ["10m"] = 600,
  ["1h"] = 3600, ["2d"] = 172800, ["1d2h30m15s"] = 95415, ["0"] = 0 }
for s, want in pairs(durations) do
  local got = sp.parse_duration(s)
  assert(got and math.abs(got - want) < 1e-9, s)
end
assert(sp.parse_duration(42) == 42 and math.type(sp.parse_duration(42)) == "integer")
assert(sp.parse_duration(2.5) == 2.5)
for _, bad in ipairs { "", "-1", "1x", "1s ", "abc", "1m30", "30s1m", "inf" } do
  local v, msg, code = sp.parse_duration(bad)
  assert(v == nil and code == "EINVAL" and msg:find(bad, 1, true), bad)
end
local v, msg, code = sp.parse_duration(-3)
assert(v == nil and code == "EINVAL", msg)
assert(not pcall(sp.parse_duration, {}))
assert(not pcall(sp.parse_duration))

-- Backoff: growth, cap, jitter bounds, determinism from the seed.
local b = sp.backoff { attempts = 5, backoff = "2s..1m", jitter = 0, seed = 7 }
assert(b.attempts == 5 and b.base == 2 and b.max == 60 and b.jitter == 0)
assert(tostring(b):find("5 attempts"))
assert(b:delay(1) == 0 and b:delay(2) == 2 and b:delay(3) == 4 and b:delay(4) == 8)
assert(b:delay(7) == 60 and b:delay(1000) == 60)
b = sp.backoff { backoff = "1s..10s", seed = 1 }
assert(b.attempts == 3 and b.jitter == 0.5)
for _ = 1, 2000 do
  local d = b:delay(3)
  assert(d >= 1 and d <= 2, d)
end
local b1 = sp.backoff { backoff = "1s..10s", seed = 99 }
local b2 = sp.backoff { backoff = "1s..10s", seed = 99 }
for _ = 1, 10 do assert(b1:delay(4) == b2:delay(4)) end
b = sp.backoff { base = 0.5, max = "3s", jitter = 0 }
assert(b.base == 0.5 and b.max == 3 and b:delay(5) == 3)
b = sp.backoff { base = "10m", jitter = 0 } -- max follows a base above it
assert(b.base == 600 and b.max == 600)
b = sp.backoff { backoff = "30s" }
assert(b.base == 30 and b.max == 30)
b = sp.backoff {}
assert(b.attempts == 3 and b.base == 2 and b.max == 300)
local function raises(spec, pattern)
  local ok, err = pcall(sp.backoff, spec)
  assert(not ok and err:find(pattern, 1, true), tostring(err))
end
raises({ backoff = "5m..2s" }, "invalid spec '5m..2s'")
raises({ backoff = "soon" }, "invalid spec 'soon'")
raises({ backoff = "0s" }, "invalid spec")
raises({ backoff = 5 }, "invalid spec")
raises({ attempts = 0 }, "attempts")
raises({ attempts = 1.5 }, "attempts")
raises({ jitter = 2 }, "jitter")
raises({ base = "fast" }, "invalid base 'fast'")
raises({ base = 10, max = 5 }, "max >= base")
raises({ base = 1, backoff = "1s..2s" }, "either")
raises({ seed = "x" }, "seed")
assert(not pcall(sp.backoff))
assert(not pcall(b.delay, b, -1))

-- Bucket: rates as numbers or sizes, waits on an explicit clock.
local bk = sp.bucket { rate = "1M", burst = 65536, now = 1000 }
assert(bk.rate == 1048576 and bk.burst == 65536)
assert(tostring(bk):find("bytes/s"))
local t = 1000
assert(bk:available(t) == 65536)
for _ = 1, 160 do t = t + bk:take(65536, t) end -- 10 MiB
assert(math.abs((t - 1000) - (10 * 1048576 - 65536) / 1048576) < 1e-6, t - 1000)
bk:set_rate(2 * 1048576, t)
assert(bk.rate == 2097152)
local t2 = t
for _ = 1, 160 do t2 = t2 + bk:take(65536, t2) end
assert(math.abs((t2 - t) - 5) < 0.05, t2 - t)
bk:set_rate("off", t2)
assert(bk.rate == 0 and bk:take(1e12, t2) == 0 and bk:available(t2) == math.huge)
bk:set_rate(0)
assert(bk.rate == 0)
-- The default clock is monotonic seconds: a fresh bucket has its burst now.
bk = sp.bucket { rate = 1000, burst = 500 }
assert(bk:take(500) == 0 and bk:take(500) > 0.4)
assert(bk:available() < 1)
bk = sp.bucket { rate = "40M" }
assert(bk.rate == 40 * 1048576 and bk.burst == 4 * 1048576)
bk = sp.bucket { rate = 0 }
assert(bk.rate == 0 and bk:take(1e9) == 0 and tostring(bk):find("unlimited"))
bk = sp.bucket {}
assert(bk.rate == 0)
for _, bad in ipairs { "fast", -1, "-5M", {} } do
  local ok, err = pcall(sp.bucket, { rate = bad })
  assert(not ok and err:find("rate"), tostring(err))
end
assert(not pcall(sp.bucket, { burst = "big" }))
assert(not pcall(sp.bucket, { rate = 1, now = "soon" }))
assert(not pcall(sp.bucket))
local ok = pcall(bk.set_rate, bk, "nope")
assert(not ok)

print("ok")
