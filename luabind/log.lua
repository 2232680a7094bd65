-- syncplan.log: a job's log.  Each message has a level (error, warn,
-- info, debug); the job log (LOGDIR/ID/job.log, and the plan's log_file)
-- keeps those at or above the plan's log_level with a timestamp, and the
-- terminal gets warnings and errors (every level with `verbose`), as
-- "syncplan: message" lines.  Log directories are kept under the plan's
-- log_max: when a job starts, the oldest finished jobs' directories go.
local sp = require "syncplan"

local M = {}

M.LEVELS = { error = 1, warn = 2, info = 3, debug = 4 }
local NAMES = { "error", "warn", "info", "debug" }

local Log = {}
Log.__index = Log

-- A file of ours: created 0600 (the journal's rule for state files),
-- then appended to, one line per write.
local function open_private(path)
  local ok, err = sp.create_private(path)
  if not ok then return nil, err end
  local f, ferr = io.open(path, "a")
  if not f then return nil, ferr end
  f:setvbuf("line")
  return f
end

-- A file past its cap is moved aside to PATH.1 (replacing the last one),
-- so that a file that every run of a schedule appends to stays bounded.
local function rotate(path, cap)
  local st = sp.stat(path)
  if st and cap and st.size > cap then os.rename(path, path .. ".1") end
end

-- opts: level (name), files (paths), stderr (true: also the terminal),
-- verbose (the terminal follows level too), file_cap (bytes),
-- before_stderr (a function run before writing to the terminal: the
-- progress bar clears itself).
function M.new(opts)
  local self = setmetatable({
    level = M.LEVELS[opts.level or "info"], files = {}, errors = {},
    stderr = opts.stderr, verbose = opts.verbose,
    before_stderr = opts.before_stderr,
  }, Log)
  for _, path in ipairs(opts.files or {}) do
    rotate(path, opts.file_cap)
    local f, err = open_private(path)
    if f then self.files[#self.files + 1] = f
    else self.errors[#self.errors + 1] = path .. ": " .. tostring(err) end
  end
  return self
end

function Log:enabled(level) return M.LEVELS[level] <= self.level end

function Log:write(level, msg)
  local n = M.LEVELS[level]
  if n <= self.level and #self.files > 0 then
    local t = sp.time()
    local line = string.format("%s.%03d %-5s %s\n",
      os.date("%Y-%m-%d %H:%M:%S", math.floor(t)),
      math.floor((t % 1) * 1000), NAMES[n], msg)
    for _, f in ipairs(self.files) do f:write(line) end
  end
  if self.stderr and (n <= M.LEVELS.warn or (self.verbose and n <= self.level)) then
    if self.before_stderr then self.before_stderr() end
    io.stderr:write("syncplan: ", msg, "\n")
  end
end

function Log:log(level, fmt, ...)
  if M.LEVELS[level] > self.level and
      not (self.stderr and M.LEVELS[level] <= M.LEVELS.warn) then
    return
  end
  self:write(level, select("#", ...) > 0 and string.format(fmt, ...) or fmt)
end

function Log:close()
  for _, f in ipairs(self.files) do f:close() end
  self.files = {}
end

-- Keep log_dir under cap: remove whole job directories, oldest first
-- (job ids begin with their start time, so names sort by age), skipping
-- those of running jobs (running(id) says) and the current one.
function M.prune(log_dir, cap, current, running)
  local names = sp.listdir(log_dir)
  if not names or not cap then return 0 end
  table.sort(names)
  local sizes, total = {}, 0
  for _, name in ipairs(names) do
    sizes[name] = sp.tree_size(log_dir .. "/" .. name) or 0
    total = total + sizes[name]
  end
  local removed = 0
  for _, name in ipairs(names) do
    if total <= cap then break end
    if name ~= current and name:match("^%d+%-%d+%-%x+$") and
        not running(name) then
      if sp.remove_tree(log_dir .. "/" .. name) then
        total = total - sizes[name]
        removed = removed + 1
      end
    end
  end
  return removed
end

return M
