-- syncplan.plan: loading, checking and storing plans.
--
-- A plan is a Lua file that returns a table (or, for a scripted plan, a
-- function).  Everything is checked before anything runs: an unknown key,
-- a wrong type or an impossible value raises a PlanError whose message is
-- one line naming the plan's file:line and the key, with a suggestion for
-- a misspelt key.  Lines come from the plan's source text: Lua does not
-- record where a table field was written, so the checker finds the line
-- where the key's name is assigned (inside its parent table for nested
-- keys), falling back to the line of the final `return`.
local sp = require "syncplan"

local M = {}

local PlanError = {}
PlanError.__index = PlanError
PlanError.__tostring = function(e) return e.msg end
M.PlanError = PlanError

local function raise(msg)
  error(setmetatable({ msg = msg }, PlanError), 0)
end

function M.is_error(e)
  return getmetatable(e) == PlanError
end

---------------------------------------------------------------------------
-- Where was a key written?

-- Blank out comments and string contents but keep every newline, so line
-- numbers survive and a key name inside a string is not mistaken for one.
local function strip(src)
  local out, i, n = {}, 1, #src
  while i <= n do
    local c = src:sub(i, i)
    if src:sub(i, i + 1) == "--" then
      local lvl = src:match("^%[(=*)%[", i + 2)
      local stop
      if lvl then
        stop = select(2, src:find("]" .. lvl .. "]", i, true)) or n
      else
        stop = (src:find("\n", i, true) or n + 1) - 1
      end
      out[#out + 1] = src:sub(i, stop):gsub("[^\n]", " ")
      i = stop + 1
    elseif c == '"' or c == "'" then
      local j = i + 1
      while j <= n do
        local d = src:sub(j, j)
        if d == "\\" then j = j + 1 elseif d == c or d == "\n" then break end
        j = j + 1
      end
      out[#out + 1] = c .. src:sub(i + 1, j - 1):gsub("[^\n]", " ") .. c
      i = j + 1
    elseif c == "[" and src:match("^%[=*%[", i) then
      local lvl = src:match("^%[(=*)%[", i)
      local stop = select(2, src:find("]" .. lvl .. "]", i, true)) or n
      out[#out + 1] = src:sub(i, stop):gsub("[^\n]", " ")
      i = stop + 1
    else
      out[#out + 1] = c
      i = i + 1
    end
  end
  return table.concat(out)
end

local function line_at(src, pos)
  local _, nl = src:sub(1, pos):gsub("\n", "")
  return nl + 1
end

-- Position of `name =` (not `==`) at or after init.
local function find_key(src, name, init)
  local pat = "%f[%w_]" .. name:gsub("%p", "%%%0") .. "%s*=%f[^=]"
  return src:find(pat, init)
end

function M.locate(p, path)
  local src = p.stripped
  if not src then return p.return_line end
  local pos = 1
  for _, k in ipairs(path) do
    if type(k) == "string" then
      local s = find_key(src, k, pos)
      if not s then return p.return_line end
      pos = s
    end
  end
  return line_at(src, pos)
end

local function where(p, path)
  local line = M.locate(p, path)
  return line and string.format("%s:%d: ", p.file, line) or
      (p.file and p.file .. ": " or "")
end

local function keyname(path)
  local parts = {}
  for _, k in ipairs(path) do
    parts[#parts + 1] = type(k) == "number" and ("[" .. k .. "]") or
        ((#parts > 0 and "." or "") .. k)
  end
  return table.concat(parts)
end

local function bad(p, path, fmt, ...)
  raise(where(p, path) .. keyname(path) .. ": " .. string.format(fmt, ...))
end

---------------------------------------------------------------------------
-- Suggestions for misspelt keys.

local function distance(a, b)
  local prev = {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    local cur = { [0] = i }
    for j = 1, #b do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev = cur
  end
  return prev[#b]
end

local function suggest(name, known)
  local best, bestd
  for k in pairs(known) do
    local d = distance(name:lower(), k)
    if (not bestd or d < bestd or (d == bestd and k < best)) then
      best, bestd = k, d
    end
  end
  if bestd and bestd <= math.max(2, #name // 3) then
    return string.format(" (did you mean '%s'?)", best)
  end
  return ""
end

---------------------------------------------------------------------------
-- The checks.

local function typename(v)
  return math.type(v) or type(v)
end

local function check_string_list(p, path, v)
  if type(v) == "string" then return { v } end
  if type(v) ~= "table" then
    bad(p, path, "expected a string or a list of strings, got %s",
      typename(v))
  end
  local out = {}
  for k, s in pairs(v) do
    if math.type(k) ~= "integer" or k < 1 or k > #v then
      bad(p, path, "expected a list, found key %s", tostring(k))
    end
    if type(s) ~= "string" then
      local sub = { table.unpack(path) }
      sub[#sub + 1] = k
      bad(p, sub, "expected a string, got %s", typename(s))
    end
    out[k] = s
  end
  return out
end

local function check_patterns(p, path, v)
  local list = check_string_list(p, path, v)
  for i, pat in ipairs(list) do
    local ok, err = sp.match(pat, "x", false)
    if ok == nil then
      local sub = { table.unpack(path) }
      sub[#sub + 1] = i
      bad(p, sub, "invalid pattern '%s' (%s)", pat, err)
    end
  end
  return list
end

local function check_int(p, path, v, lo, hi)
  if math.type(v) ~= "integer" then
    if type(v) == "number" and v == math.floor(v) then
      v = math.tointeger(v)
    else
      bad(p, path, "expected an integer, got %s", typename(v) == "float"
        and tostring(v) or typename(v))
    end
  end
  if v < lo or v > hi then
    bad(p, path, "must be between %d and %d (got %d)", lo, hi, v)
  end
  return v
end

local function check_size(p, path, v)
  if math.type(v) == "integer" and v > 0 then return v end
  if type(v) ~= "string" then
    bad(p, path, "expected a size such as \"4G\" or a positive integer, "
      .. "got %s", typename(v))
  end
  local n = sp.parse_size(v)
  if not n or n <= 0 then bad(p, path, "invalid size '%s'", v) end
  return n
end

local function check_duration(p, path, v)
  local s, err = sp.parse_duration(v)
  if not s then
    bad(p, path, "invalid duration '%s' (%s)", tostring(v), err or "")
  end
  return s
end

local function check_bool(p, path, v)
  if type(v) ~= "boolean" then
    bad(p, path, "expected true or false, got %s", typename(v))
  end
  return v
end

local function check_fn(p, path, v)
  if type(v) ~= "function" then
    bad(p, path, "expected a function, got %s", typename(v))
  end
  return v
end

local function check_table(p, path, v, known)
  if type(v) ~= "table" then
    bad(p, path, "expected a table, got %s", typename(v))
  end
  for k in pairs(v) do
    if type(k) ~= "string" then
      bad(p, path, "unexpected list entry %s", tostring(k))
    end
    if not known[k] then
      local sub = { table.unpack(path) }
      sub[#sub + 1] = k
      raise(where(p, sub) .. "unknown key '" .. keyname(sub) .. "'" ..
        suggest(k, known))
    end
  end
  return v
end

-- rsync options that would break chunking or that a plan key owns.
local FORBIDDEN_RSYNC = {
  { "^%-%-delete", "use delete = true (deletions run once, after all chunks)" },
  { "^%-%-files%-from", "syncplan gives each worker its chunk's list" },
  { "^%-%-from0", "syncplan gives each worker its chunk's list" },
  { "^%-%-include", "use include = { ... }" },
  { "^%-%-exclude", "use exclude = { ... }" },
  { "^%-%-filter", "use filter = { ... }" },
  { "^%-%-recursive$", "chunks list every entry; recursion would repeat work" },
  { "^%-r$", "chunks list every entry; recursion would repeat work" },
  { "^%-%-no%-R$", "chunk lists name paths relative to the source" },
  { "^%-%-no%-relative$", "chunk lists name paths relative to the source" },
  { "^%-%-rsh", "use ssh = \"ssh ...\"" },
  { "^%-e", "use ssh = \"ssh ...\"" },
  { "^%-%-bwlimit", "use bwlimit = \"RATE\" (a total for all workers)" },
  { "^%-%-dry%-run$", "use --dry-run or dry_run = true" },
  { "^%-n$", "use --dry-run or dry_run = true" },
}

local function check_rsync_opts(p, path, v)
  local list = check_string_list(p, path, v)
  for i, o in ipairs(list) do
    local sub = { table.unpack(path) }
    sub[#sub + 1] = i
    if o:sub(1, 1) ~= "-" then
      bad(p, sub, "'%s' is not an option (options start with '-')", o)
    end
    for _, f in ipairs(FORBIDDEN_RSYNC) do
      if o:find(f[1]) then bad(p, sub, "'%s' is not allowed: %s", o, f[2]) end
    end
  end
  return list
end

local SCHEMA -- defined below (the checkers refer to each other)

local function check_chunks(p, path, v)
  check_table(p, path, v,
    { count = 1, files = 1, bytes = 1, by = 1, spread = 1 })
  local out = {}
  if v.count ~= nil then
    out.count = check_int(p, { "chunks", "count" }, v.count, 1, 100000)
  end
  if v.files ~= nil then
    out.files = check_int(p, { "chunks", "files" }, v.files, 1, 1e12)
  end
  if v.bytes ~= nil then
    out.bytes = check_size(p, { "chunks", "bytes" }, v.bytes)
  end
  if v.spread ~= nil then
    out.spread = check_int(p, { "chunks", "spread" }, v.spread, 0, 1000000)
  end
  if v.by ~= nil then
    if v.by ~= "topdir" then
      bad(p, { "chunks", "by" }, "expected \"topdir\", got %s",
        type(v.by) == "string" and ("'" .. v.by .. "'") or typename(v.by))
    end
    out.by = "topdir"
  end
  local modes = (out.count and 1 or 0) + ((out.files or out.bytes) and 1 or 0)
      + (out.by and 1 or 0)
  if modes ~= 1 then
    bad(p, path, "give exactly one of count, files/bytes or by")
  end
  if out.spread and not (out.files or out.bytes) then
    bad(p, { "chunks", "spread" }, "goes with files/bytes limits")
  end
  return out
end

local function check_retry(p, path, v)
  check_table(p, path, v, { attempts = 1, backoff = 1 })
  local out = { attempts = 3, backoff = "2s..5m" }
  if v.attempts ~= nil then
    out.attempts = check_int(p, { "retry", "attempts" }, v.attempts, 1, 100)
  end
  if v.backoff ~= nil then
    if type(v.backoff) ~= "string" or
        not pcall(sp.backoff, { attempts = 1, backoff = v.backoff }) then
      bad(p, { "retry", "backoff" },
        "invalid backoff %s (expected \"MIN..MAX\" such as \"2s..5m\")",
        type(v.backoff) == "string" and ("'" .. v.backoff .. "'") or
        typename(v.backoff))
    end
    out.backoff = v.backoff
  end
  return out
end

local function check_rclone(p, path, v)
  check_table(p, path, v, { config = 1, flags = 1 })
  local out = {}
  if v.config ~= nil then
    if type(v.config) ~= "string" then
      bad(p, { "rclone", "config" }, "expected a file name, got %s",
        typename(v.config))
    end
    out.config = v.config
  end
  if v.flags ~= nil then
    out.flags = check_string_list(p, { "rclone", "flags" }, v.flags)
  end
  return out
end

local function check_string(p, path, v)
  if type(v) ~= "string" or v == "" then
    bad(p, path, "expected a non-empty string, got %s",
      v == "" and "\"\"" or typename(v))
  end
  return v
end

-- A checker for a value that must be one of the strings in choices.
local function check_choice(choices)
  return function(p, path, v)
    for _, c in ipairs(choices) do
      if v == c then return v end
    end
    bad(p, path, "expected \"%s\", got %s", table.concat(choices, "\" or \""),
      type(v) == "string" and ("'" .. v .. "'") or typename(v))
  end
end

local check_tool = check_choice { "rsync", "rclone" }

-- One rate ("40M": bytes a second, for all workers), or a timetable in
-- rclone's syntax: a list of "HH:MM,RATE" / "Day-HH:MM,RATE", or those
-- entries in one space-separated string.  A timetable stays as given
-- (the job reads it, and it serializes as it came); one rate becomes a
-- number.
local function check_bwlimit(p, path, v)
  if v == "off" or v == 0 then return nil end
  if type(v) == "table" or (type(v) == "string" and v:find(",", 1, true)) then
    if type(v) == "table" then check_string_list(p, path, v) end
    local t, err = sp.timetable(v)
    if not t then bad(p, path, "%s", err) end
    return v
  end
  return check_size(p, path, v)
end

local function check_host_list(p, path, v)
  local list = check_string_list(p, path, v)
  if #list == 0 then bad(p, path, "expected at least one host") end
  for i, h in ipairs(list) do
    if h == "" or h:find("[%s:/]") then
      bad(p, path, "host %d: expected a host name or ssh config alias, got "
        .. "'%s'", i, h)
    end
  end
  return list
end

local function check_hosts(p, path, v)
  check_table(p, path, v, { run_on = 1, dest = 1 })
  local out = {}
  if v.run_on ~= nil then
    out.run_on = check_host_list(p, { "hosts", "run_on" }, v.run_on)
  end
  if v.dest ~= nil then
    out.dest = check_host_list(p, { "hosts", "dest" }, v.dest)
  end
  if not out.run_on and not out.dest then
    bad(p, path, "give run_on or dest")
  end
  return out
end

local check_transport = check_choice { "tunnel", "system" }

local function check_ssh_config(p, path, v)
  if v == false then return false end
  return check_string(p, path, v)
end

-- "every 6h", "1d2h30m", "cron M H DOM MON DOW", "@daily".
local function check_schedule(p, path, v)
  local s = check_string(p, path, v)
  local ok, err = sp.schedule(s)
  if not ok then bad(p, path, "%s", err) end
  return s
end

-- watch = { delay = "5s" }: sync the local source's changes as they come.
local function check_watch(p, path, v)
  if v == true then return { delay = 5 } end
  check_table(p, path, v, { delay = 1 })
  local out = { delay = 5 }
  if v.delay ~= nil then
    out.delay = check_duration(p, { "watch", "delay" }, v.delay)
  end
  return out
end

SCHEMA = {
  name = check_string,
  source = check_string,
  dest = check_string,
  tool = check_tool,
  chunks = check_chunks,
  workers = function(p, path, v) return check_int(p, path, v, 1, 256) end,
  exclude = check_patterns,
  include = check_patterns,
  filter = check_string_list,
  delete = check_bool,
  dry_run = check_bool,
  one_filesystem = check_bool,
  skip_unchanged = check_bool,
  retry = check_retry,
  rsync_opts = check_rsync_opts,
  rclone = check_rclone,
  ssh = check_string,
  ssh_transport = check_transport,
  ssh_config = check_ssh_config,
  accept_new_host = check_bool,
  ssh_port = function(p, path, v) return check_int(p, path, v, 1, 65535) end,
  ssh_key = function(p, path, v)
    local s = check_string(p, path, v)
    if s:sub(1, 2) == "~/" and os.getenv("HOME") then
      s = os.getenv("HOME") .. s:sub(2)
    end
    -- It goes on an ssh command line, split at blanks.
    if s:find("%s") then bad(p, path, "a key path with blanks: use "
      .. "ssh_config with an IdentityFile line") end
    return s
  end,
  log_level = check_choice { "error", "warn", "info", "debug" },
  log_dir = check_string,
  log_file = check_string,
  log_max = check_size,
  watchdog = check_duration,
  bwlimit = check_bwlimit,
  state_dir = check_string,
  on_start = check_fn,
  on_chunk_done = check_fn,
  on_finish = check_fn,
  hosts = check_hosts,
  local_path = check_string,
  remote = check_string,
  direction = check_choice { "push", "pull", "upload", "download" },
  schedule = check_schedule,
  watch = check_watch,
  renames = check_bool,
}
M.KEYS = SCHEMA

-- Split an endpoint the way rsync does: a ':' before the first '/' makes
-- it remote ("[USER@]HOST:PATH"); with tool rclone, "REMOTE:PATH".
function M.endpoint(s, tool)
  local colon = s:find(":", 1, true)
  local slash = s:find("/", 1, true)
  if colon and colon > 1 and (not slash or colon < slash) then
    local host, path = s:sub(1, colon - 1), s:sub(colon + 1)
    if path:sub(1, 1) == ":" then
      return nil, "rsync daemon endpoints (HOST::MODULE) are not supported"
    end
    if tool == "rclone" then
      return { kind = "rclone", prefix = host .. ":", path = path }
    end
    return { kind = "ssh", host = host, prefix = host .. ":", path = path }
  end
  return { kind = "local", path = s }
end

local function with_slash_path(pth)
  if pth == "" then return "" end
  return pth:sub(-1) == "/" and pth or pth .. "/"
end

local function basename(path)
  return path:gsub("/+$", ""):match("([^/]*)$")
end

-- Check cfg (the table a plan returned, after --set) and fill defaults.
-- The chunks a plan gets without a `chunks` key: fpsync's limits, and
-- spread so that a tree smaller than a few chunks' worth still keeps
-- every worker busy.
-- The scan options a plan's crawls share (sp.scan, sp.producer,
-- sp.watch): its filters and one_filesystem.
function M.scan_opts(cfg)
  return { exclude = cfg.exclude, include = cfg.include, filter = cfg.filter,
    one_filesystem = cfg.one_filesystem }
end

function M.default_chunks(workers)
  return { files = 2000, bytes = 4 << 30, spread = 4 * workers }
end

-- Fusion's upload/download: one plan names the two sides (local_path,
-- remote) and a direction, so that the same keys push or pull.  The
-- direction is never implied: which side gets overwritten must show.
local function resolve_direction(p, out)
  local given = out.local_path or out.remote or out.direction
  if not given then return end
  for _, k in ipairs { "source", "dest" } do
    if out[k] then
      bad(p, { k }, "give either source and dest, or local_path, remote "
        .. "and direction")
    end
  end
  for _, k in ipairs { "local_path", "remote", "direction" } do
    if not out[k] then
      raise(where(p, { k }) .. "missing key '" .. k .. "' (local_path, "
        .. "remote and direction go together)")
    end
  end
  local push = out.direction == "push" or out.direction == "upload"
  out.source = push and out.local_path or out.remote
  out.dest = push and out.remote or out.local_path
end

function M.check(cfg, p)
  p = p or {}
  check_table(p, {}, cfg, SCHEMA)
  local out = {}
  for k, v in pairs(cfg) do out[k] = SCHEMA[k](p, { k }, v) end
  resolve_direction(p, out)
  for _, k in ipairs { "source", "dest" } do
    if out[k] == nil then
      raise(where(p, { k }) .. "missing key '" .. k .. "'")
    end
  end
  out.tool = out.tool or "rsync"
  out.workers = out.workers or 4
  out.chunks = out.chunks or M.default_chunks(out.workers)
  out.retry = out.retry or { attempts = 3, backoff = "2s..5m" }
  out.watchdog = out.watchdog or 1800
  if type(out.bwlimit) == "number" then
    out._bwlimit = out.bwlimit
  elseif out.bwlimit then
    out._bwtable = out.bwlimit
  end
  local src, err = M.endpoint(out.source, "rsync")
  if not src then bad(p, { "source" }, "%s", err) end
  local dst, derr = M.endpoint(out.dest, out.tool)
  if not dst then bad(p, { "dest" }, "%s", derr) end
  if src.kind ~= "local" and dst.kind ~= "local" then
    bad(p, { "dest" }, "source and dest are both remote; one must be local")
  end
  if out.tool == "rclone" then
    if src.kind ~= "local" then
      bad(p, { "source" }, "with tool rclone the source must be a local path")
    end
    if out.rsync_opts then
      bad(p, { "rsync_opts" }, "not used with tool = \"rclone\" (use rclone "
        .. "= { flags = ... })")
    end
  elseif out.rclone then
    bad(p, { "rclone" }, "only used with tool = \"rclone\"")
  end
  if out.watch then
    if out.schedule then
      bad(p, { "watch" }, "give watch or schedule, not both")
    end
    if src.kind ~= "local" or out.tool ~= "rsync" or out.hosts then
      bad(p, { "watch" }, "needs a local source, tool rsync and no hosts")
    end
  end
  if out.renames then
    -- A mirror: what vanished from the source goes from the destination.
    if out.delete == false then
      bad(p, { "delete" }, "renames = true mirrors, which deletes")
    end
    out.delete = true
    if src.kind ~= "local" or out.tool ~= "rsync" or out.hosts then
      bad(p, { "renames" }, "needs a local source, tool rsync and no hosts")
    end
  end
  if src.kind == "local" then
    local t = sp.file_type(src.path)
    if t ~= "dir" then
      bad(p, { "source" }, "'%s' %s", src.path, t and "is not a directory"
        or "does not exist")
    end
    -- rsync's rule: without a trailing slash the directory itself is
    -- copied into dest.
    if src.path:sub(-1) ~= "/" and basename(src.path) ~= "" and
        basename(src.path) ~= "." and basename(src.path) ~= ".." then
      dst.path = with_slash_path(dst.path) .. basename(src.path)
    end
  elseif src.path:sub(-1) ~= "/" and basename(src.path) ~= "" then
    dst.path = with_slash_path(dst.path) .. basename(src.path)
  end
  if out.hosts then
    if out.tool ~= "rsync" then
      bad(p, { "hosts" }, "hosts go with tool = \"rsync\"")
    end
    if out.hosts.run_on and (src.kind ~= "local" or dst.kind ~= "local") then
      bad(p, { "hosts", "run_on" }, "source and dest must be paths that "
        .. "this machine and the hosts see alike (shared storage)")
    end
    if out.hosts.dest and dst.kind ~= "ssh" then
      bad(p, { "hosts", "dest" }, "the dest must be remote (HOST:PATH); "
        .. "chunks go to these hosts instead of HOST")
    end
  end
  if out.ssh and out.ssh_transport == "tunnel" then
    bad(p, { "ssh_transport" }, "\"tunnel\" does not run an ssh command; "
      .. "drop ssh, or use ssh_transport = \"system\"")
  end
  out._src, out._dst = src, dst
  return out
end


---------------------------------------------------------------------------
-- --set KEY=VALUE

local function parse_value(s)
  if s == "true" then return true end
  if s == "false" then return false end
  if math.tointeger(tonumber(s)) then return math.tointeger(tonumber(s)) end
  if tonumber(s) then return tonumber(s) end
  if s:match("^{.*}$") then
    local f = load("return " .. s, "=--set", "t", {})
    if f then
      local ok, v = pcall(f)
      if ok then return v end
    end
  end
  return s
end

function M.apply_sets(cfg, sets)
  for _, kv in ipairs(sets or {}) do
    local k, v = kv:match("^([%w_%.]+)=(.*)$")
    if not k then
      raise("--set " .. kv .. ": expected KEY=VALUE")
    end
    local t, last = cfg, nil
    local parts = {}
    for part in k:gmatch("[^%.]+") do parts[#parts + 1] = part end
    for i = 1, #parts - 1 do
      if type(t[parts[i]]) ~= "table" then t[parts[i]] = {} end
      t = t[parts[i]]
    end
    last = parts[#parts]
    -- nil takes a key out (a plan's hosts, to run one variant without).
    if v == "nil" then t[last] = nil else t[last] = parse_value(v) end
  end
  return cfg
end

---------------------------------------------------------------------------
-- Loading a plan file.

function M.load(file, sets)
  local f, ferr = io.open(file, "rb")
  if not f then raise(ferr) end
  local src = f:read("a")
  f:close()
  local p = { file = file }
  local ok_strip, stripped = pcall(strip, src)
  if ok_strip then
    p.stripped = stripped
    local last
    for pos in stripped:gmatch("()%f[%w_]return%f[^%w_]") do last = pos end
    p.return_line = last and line_at(stripped, last) or 1
  end
  -- The plan runs in its own environment that reads globals through, so
  -- its assignments do not leak into the runner.
  local env = setmetatable({}, { __index = _G })
  local chunk, err = load(src, "@" .. file, "t", env)
  if not chunk then raise(err) end
  local okrun, v = pcall(chunk)
  if not okrun then
    if M.is_error(v) then error(v, 0) end
    raise(tostring(v))
  end
  if type(v) == "function" then return v, p end
  if type(v) ~= "table" then
    raise(string.format("%s:%d: the plan must return a table, got %s", file,
      p.return_line or 1, typename(v)))
  end
  M.apply_sets(v, sets)
  local cfg = M.check(v, p)
  -- For `syncplan list` and status: which plan a job ran.
  cfg._file = file
  return cfg, p
end

---------------------------------------------------------------------------
-- Storing plans in the journal, and JSON for --json.

local function ser(v, out)
  local t = type(v)
  if t == "string" then
    out[#out + 1] = string.format("%q", v)
  elseif t == "number" or t == "boolean" then
    out[#out + 1] = math.type(v) == "float" and string.format("%.17g", v)
        or tostring(v)
  elseif t == "table" then
    out[#out + 1] = "{"
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    for _, k in ipairs(keys) do
      local val = v[k]
      if type(val) ~= "function" then
        out[#out + 1] = "["
        ser(k, out)
        out[#out + 1] = "]="
        ser(val, out)
        out[#out + 1] = ","
      end
    end
    out[#out + 1] = "}"
  else
    out[#out + 1] = "nil"
  end
end

function M.serialize(cfg)
  local out = {}
  ser(cfg, out)
  return table.concat(out)
end

function M.deserialize(s)
  local f, err = load("return " .. s, "=journal", "t", {})
  if not f then return nil, err end
  local ok, v = pcall(f)
  if not ok or type(v) ~= "table" then return nil, tostring(v) end
  return v
end

M.null = setmetatable({}, { __tostring = function() return "null" end })
local ARRAY = {}
-- t, marked to be a JSON array even when empty.
function M.array(t) return setmetatable(t or {}, ARRAY) end

local function json_str(s)
  return '"' .. s:gsub('[%c"\\\128-\255]', function(c)
    local map = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n",
      ["\t"] = "\\t", ["\r"] = "\\r" }
    return map[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

-- JSON text to Lua values (null becomes M.null): the replies of a job's
-- control socket, which M.json wrote.  nil, message on bad input.
function M.json_decode(s)
  local pos = 1
  local function err(what) error({ json = what .. " at byte " .. pos }, 0) end
  local function ws() pos = s:find("[^ \t\r\n]", pos) or #s + 1 end
  local value
  local function str()
    local out = {}
    pos = pos + 1
    while true do
      local a, b, chunk, ch = s:find('^([^"\\]*)(["\\])', pos)
      if not a then err("unterminated string") end
      out[#out + 1] = chunk
      pos = b + 1
      if ch == '"' then return table.concat(out) end
      local e = s:sub(pos, pos)
      local map = { n = "\n", t = "\t", r = "\r", b = "\b", f = "\f",
        ['"'] = '"', ["\\"] = "\\", ["/"] = "/" }
      if map[e] then
        out[#out + 1] = map[e]
        pos = pos + 1
      elseif e == "u" then
        local hex = s:sub(pos + 1, pos + 4)
        if not hex:match("^%x%x%x%x$") then err("bad \\u escape") end
        local c = tonumber(hex, 16)
        out[#out + 1] = c < 256 and string.char(c) or utf8.char(c)
        pos = pos + 5
      else
        err("bad escape")
      end
    end
  end
  function value()
    ws()
    local c = s:sub(pos, pos)
    if c == "{" then
      local t = {}
      pos = pos + 1
      ws()
      if s:sub(pos, pos) == "}" then pos = pos + 1 return t end
      while true do
        ws()
        if s:sub(pos, pos) ~= '"' then err("expected a key") end
        local k = str()
        ws()
        if s:sub(pos, pos) ~= ":" then err("expected ':'") end
        pos = pos + 1
        t[k] = value()
        ws()
        local d = s:sub(pos, pos)
        pos = pos + 1
        if d == "}" then return t end
        if d ~= "," then err("expected ',' or '}'") end
      end
    elseif c == "[" then
      local t = M.array()
      pos = pos + 1
      ws()
      if s:sub(pos, pos) == "]" then pos = pos + 1 return t end
      while true do
        t[#t + 1] = value()
        ws()
        local d = s:sub(pos, pos)
        pos = pos + 1
        if d == "]" then return t end
        if d ~= "," then err("expected ',' or ']'") end
      end
    elseif c == '"' then
      return str()
    end
    for lit, v in pairs { ["true"] = true, ["false"] = false,
        ["null"] = M.null } do
      if s:sub(pos, pos + #lit - 1) == lit then
        pos = pos + #lit
        return v
      end
    end
    local num = s:match("^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
    if not num or num == "" then err("unexpected character") end
    pos = pos + #num
    return math.tointeger(tonumber(num)) or tonumber(num)
  end
  local ok, v = pcall(function()
    local r = value()
    ws()
    if pos <= #s then err("trailing text") end
    return r
  end)
  if not ok then
    return nil, type(v) == "table" and v.json or tostring(v)
  end
  return v
end

function M.json(v)
  local t = type(v)
  if v == M.null or v == nil then return "null" end
  if t == "string" then return json_str(v) end
  if t == "boolean" then return tostring(v) end
  if t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then return "null" end
    return math.type(v) == "integer" and tostring(v) or
        string.format("%.3f", v)
  end
  if t == "table" then
    if #v > 0 or getmetatable(v) == ARRAY then
      local parts = {}
      for i, x in ipairs(v) do parts[i] = M.json(x) end
      return "[" .. table.concat(parts, ",") .. "]"
    end
    local keys = {}
    for k in pairs(v) do
      if type(k) == "string" then keys[#keys + 1] = k end
    end
    table.sort(keys)
    local parts = {}
    for _, k in ipairs(keys) do
      parts[#parts + 1] = json_str(k) .. ":" .. M.json(v[k])
    end
    return "{" .. table.concat(parts, ",") .. "}"
  end
  return "null"
end

return M
