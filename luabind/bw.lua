-- The job's bandwidth cap (syncplan.bw): one rate for all of a job's
-- workers, whatever their number, tool and host; fixed, from a timetable
-- (rclone's syntax), or changed while the job runs (syncplan bwlimit).
--
-- Where the bytes cross the job's own process (the tunnel: rsync over
-- ssh, and a local rsync carried to a local receiver, see runner.lua),
-- one token bucket holds the rate exactly and a change applies at once.
-- Elsewhere each worker gets a share, the rate divided among the workers
-- running: an rsync's --bwlimit is fixed for its life, so its share is
-- taken when it starts; an rclone's is changed live through its remote
-- control (rc), so running rclones are re-divided whenever a worker
-- starts or ends and whenever the rate changes.
local sp = require "syncplan"

local M = {}
local Bw = {}
Bw.__index = Bw

-- cfg: the plan (cfg._bwlimit: bytes/s; cfg._bwtable: timetable entries);
-- pull: the job moves data towards us (a timetable's DOWN rate applies).
function M.new(cfg, pull)
  local self = setmetatable({ pull = pull, active = {}, nactive = 0 }, Bw)
  if cfg._bwtable then
    self.table = assert(sp.timetable(cfg._bwtable))
  end
  self.fixed = cfg._bwlimit
  self:refresh()
  return self
end

-- The rate in force now (bytes/s), or nil: no cap.  A live change holds
-- until the timetable's next switch, as rclone's core/bwlimit does.
function Bw:rate() return self.current end

-- Does the job cap at all (now or at some time of its timetable)?
function Bw:capped() return self.fixed ~= nil or self.table ~= nil end

-- Work out the rate in force from the timetable; returns the seconds to
-- the next switch, or nil.
function Bw:refresh()
  if self.override_until and sp.time() < self.override_until then
    return self.override_until - sp.time()
  end
  self.override_until = nil
  if not self.table then
    self.current = self.fixed
    return nil
  end
  local now = sp.time()
  local up, down, next_change = self.table:at(now)
  self.current = self.pull and down or up
  return next_change and math.max(next_change - now, 0.05) or nil
end

-- Apply the rate to what carries the bytes.
function Bw:apply()
  if self.tunnel then self.tunnel:set_rate(self.current or 0) end
  self:redivide()
end

-- The tunnel carries every worker's bytes: its bucket holds the rate.
function Bw:use_tunnel(t)
  self.tunnel = t
  t:set_rate(self.current or 0)
end

-- Follow the timetable (in a task of the job's): a timer for each switch.
function Bw:start()
  self:apply()
  if not self.table then return end
  local function arm()
    local wait = self:refresh()
    if not wait then return end
    self.timer = sp.timer(wait, function()
      local before = self.current
      self:refresh()
      if self.current ~= before then
        self:apply()
        if self.on_change then self.on_change(self.current, "timetable") end
      end
      arm()
    end)
  end
  arm()
end

function Bw:stop()
  if self.timer then self.timer:stop() end
  if self.fb_timer then self.fb_timer:stop() end
  self.timer, self.fb_timer = nil, nil
end

-- A live change (syncplan bwlimit ID RATE); rate nil: no cap.  With a
-- timetable it holds until the next switch.
function Bw:set(rate)
  if self.table then
    local _, _, next_change = self.table:at(sp.time())
    self.override_until = next_change or math.huge
  else
    self.fixed = rate
  end
  self.current = rate
  self:apply()
  if self.on_change then self.on_change(rate, "set") end
end

-- A worker's share of the rate in bytes/s with n workers running, or nil.
-- A worker about to start asks with the number the caller expects to run
-- beside it (at a job's start every slot starts at once: dividing by the
-- workers running so far would hand out twice the rate).
function Bw:share(n)
  if not self.current or self.tunnel then return nil end
  if n < 1 then n = 1 end
  local s = self.current // n
  return s < 1024 and 1024 or s
end

-- rsync's --bwlimit for a worker about to start (KiB/s), or nil.
function Bw:rsync_arg(n)
  local s = self:share(n)
  return s and ("--bwlimit=" .. (s // 1024)) or nil
end

-- A share as rclone's --bwlimit and rc take it (bytes, scaled by the
-- gain of follow_rclone), or "off".
local function rclone_rate(self, s)
  return s and (math.floor(s * (self.gain or 1)) .. "B") or "off"
end

-- For an rclone about to start: its arguments and environment (its rc
-- on a port of 127.0.0.1 behind a password made here, passed in the
-- environment so that no other user sees it in ps), or nil.
function Bw:rclone_opts(n)
  if not self:capped() then return nil end
  local port = sp.free_port()
  if not port then return nil end
  local rate = rclone_rate(self, self:share(n))
  local user, pass = "syncplan", sp.random_hex(16)
  return {
    args = { "--bwlimit=" .. rate, "--rc",
      "--rc-addr", "127.0.0.1:" .. port },
    env = { RCLONE_RC_USER = user, RCLONE_RC_PASS = pass },
    rc = { url = "http://127.0.0.1:" .. port .. "/", user = user,
      pass = pass, start = rate },
  }
end

-- A worker starts (rc: its remote control, for an rclone) or ends.
function Bw:enter(key, rc)
  if rc then rc.sent = rc.want or rc.start end
  self.active[key] = { rc = rc, key = key }
  self.nactive = self.nactive + 1
  self:redivide()
end

function Bw:leave(key)
  if not self.active[key] then return end
  self.active[key] = nil
  self.nactive = self.nactive - 1
  self:redivide()
end

-- rclone runs some 2-7% under the rate it is given (its start, its
-- listing, its own limiter; measured on 2 cores, more at higher rates).
-- Every few seconds the bytes the rclones moved are compared with the
-- cap and their shares scaled by a gain (between 1 and 1.3, moved a
-- third of the way to the correction each time, so it settles without
-- swinging).
-- bytes(): the job's bytes so far.
function Bw:follow_rclone(bytes)
  self.gain = 1
  local last_b, last_t = bytes(), sp.clock()
  self.fb_timer = sp.timer(3, function()
    local b, t = bytes(), sp.clock()
    local rate = (b - last_b) / math.max(t - last_t, 0.1)
    last_b, last_t = b, t
    local n = 0
    for _, a in pairs(self.active) do if a.rc then n = n + 1 end end
    if not self.current or self.tunnel or n == 0 or rate <= 0 then return end
    local g = self.gain * (1 + 0.3 * (self.current / rate - 1))
    self.gain = math.min(math.max(g, 1), 1.3)
    self:redivide()
  end, 3)
end

-- One rclone's share, sent by one task at a time so that calls cannot
-- overtake each other: the task sends the latest wanted rate until what
-- was sent is what is wanted.  A call that fails while the rclone runs
-- (its rc is not listening yet) is tried again shortly.
local function send_share(self, a)
  local rc = a.rc
  if rc.busy then return end
  rc.busy = true
  sp.spawn(function()
    local tries = 0
    while self.active[a.key] == a and rc.sent ~= rc.want and tries < 20 do
      local rate = rc.want
      local w = sp.worker { argv = { "rclone", "rc", "--url", rc.url,
        "core/bwlimit", "rate=" .. rate },
        env = { RCLONE_USER = rc.user, RCLONE_PASS = rc.pass },
        watchdog = 10 }
      local r = w and w:wait()
      if r and r.status == 0 then
        rc.sent, tries = rate, 0
      else
        tries = tries + 1
        sp.sleep(0.2)
      end
    end
    rc.busy = false
  end)
end

-- Give each running rclone its share of the rate among the workers the
-- runner expects to run now (self.expected(), set by the runner).
function Bw:redivide()
  local n = self.expected and self.expected() or self.nactive
  local rate = rclone_rate(self, self:share(math.max(n, self.nactive)))
  for _, a in pairs(self.active) do
    if a.rc then
      a.rc.want = rate
      send_share(self, a)
    end
  end
end

return M
