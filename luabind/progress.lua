-- syncplan.progress: the progress bar of a job on a terminal, drawn from
-- the job's status table (the one `syncplan status --json` prints), so
-- that `run` and `status --watch` show the same thing.
--
--   local bar = progress.new(io.stderr, { per_worker = true })
--   bar:draw(status)    -- redraw in place
--   bar:clear()         -- erase it (before a message, and at the end)
local sp = require "syncplan"

local M = {}

function M.human(n)
  local units = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" }
  local i = 1
  n = n or 0
  while n >= 1024 and i < #units do n = n / 1024; i = i + 1 end
  return i == 1 and string.format("%d B", math.floor(n)) or
      string.format("%.1f %s", n, units[i])
end

function M.hms(s)
  if type(s) ~= "number" or s ~= s or s == math.huge then return "--:--" end
  s = math.floor(s + 0.5)
  if s >= 3600 then
    return string.format("%d:%02d:%02d", s // 3600, s % 3600 // 60, s % 60)
  end
  return string.format("%d:%02d", s // 60, s % 60)
end

local function num(x) return type(x) == "number" and x or nil end

-- The whole job on one line: bytes, files, rate, ETA, active workers,
-- retries, and with a width, a bar in front and the line cut to fit.
function M.line(st, width)
  local total, bytes = num(st.totalBytes) or 0, num(st.bytes) or 0
  local frac = total > 0 and math.min(bytes / total, 1) or 0
  local active = 0
  for _, w in ipairs(st.workers or {}) do
    if w.state == "running" then active = active + 1 end
  end
  local tail = string.format("%3d%% %s / %s%s  %d files  %s/s  ETA %s  "
    .. "workers %d/%d  retries %d%s",
    math.floor(frac * 100), M.human(bytes), M.human(total),
    st.scan_done == false and "+" or "", num(st.transfers) or 0,
    M.human(num(st.speed) or 0), M.hms(num(st.eta)), active,
    #(st.workers or {}), num(st.retries) or 0,
    num(st.bwlimit) and ("  cap " .. M.human(st.bwlimit) .. "/s") or "")
  if not width then return tail end
  local room = width - #tail - 3
  if room < 10 then return tail:sub(1, width - 1) end
  local n = math.min(room, 30)
  local fill = math.floor(frac * n + 0.5)
  return "[" .. string.rep("#", fill) .. string.rep("-", n - fill) .. "] "
    .. tail
end

-- One line per worker: its slot, host, state, and the chunk it has.
function M.worker_lines(st, width)
  local by_chunk = {}
  for _, t in ipairs(st.transferring or {}) do by_chunk[t.chunk] = t end
  local out = {}
  for _, w in ipairs(st.workers or {}) do
    local s = string.format("  %2d %-12s %-10s", w.slot,
      (w.host or "local"):sub(1, 12), w.state)
    local t = w.chunk and by_chunk[w.chunk]
    if t then
      s = s .. string.format(" chunk %d (attempt %d) %3d%% %s / %s  %s/s",
        t.chunk, t.attempt, math.floor(t.percentage or 0),
        M.human(t.bytes), M.human(t.size), M.human(t.speed or 0))
    end
    out[#out + 1] = width and s:sub(1, width - 1) or s
  end
  return out
end

local Bar = {}
Bar.__index = Bar

-- out: a file, fd: its descriptor (the terminal's width is asked of it).
function M.new(out, opts)
  opts = opts or {}
  return setmetatable({ out = out, per_worker = opts.per_worker,
    fd = opts.fd, shown = 0 }, Bar)
end

function Bar:columns()
  return self.fd and sp.term_width(self.fd) or
    tonumber(os.getenv("COLUMNS")) or 80
end

-- Back to the first line of what was drawn, erasing it all.
function Bar:clear()
  if self.shown == 0 then return end
  local s = "\r\27[K"
  for _ = 2, self.shown do s = s .. "\27[1A\27[K" end
  self.out:write(s)
  self.out:flush()
  self.shown = 0
end

function Bar:draw(st)
  local width = self:columns()
  local lines = { M.line(st, width) }
  if self.per_worker then
    for _, l in ipairs(M.worker_lines(st, width)) do
      lines[#lines + 1] = l
    end
  end
  self:clear()
  self.out:write(table.concat(lines, "\n"))
  self.out:flush()
  self.shown = #lines
end

return M
