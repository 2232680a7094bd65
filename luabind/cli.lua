-- syncplan.cli: the command line of `syncplan run`, `copy`, `resume`,
-- `list` and `demo`, turned into runner calls.  Returns the exit status.
local plan = require "syncplan.plan"
local runner = require "syncplan.runner"

local M = {}
local EXIT = runner.EXIT

local HELP = {
  run = [[
usage: syncplan run PLAN.lua [--dry-run] [--once] [--set KEY=VALUE]...
                    [--json] [--state-dir DIR]

Run a plan in the foreground.  A plan returns a table (keys: source, dest,
or local_path, remote, direction; tool, chunks, workers, exclude, include,
filter, delete, renames, retry, rsync_opts, rclone, ssh, watchdog,
bwlimit, schedule, watch, hosts, one_filesystem, skip_unchanged, on_start,
on_chunk_done, on_finish) or a function (a scripted plan).  The plan is
checked before anything runs; an error names the plan's file:line and
exits 2.  A plan with a schedule or watch runs until stopped: the first
SIGINT/SIGTERM lets running chunks finish, a second stops them.

  --dry-run        run every worker with rsync -n / rclone --dry-run
  --once           one run, whatever the plan's schedule or watch
  --set KEY=VALUE  override a plan key (nested: retry.attempts=5)
  --json           one JSON object per line on stdout (progress, events)
  --state-dir DIR  journal and logs here (default $XDG_STATE_HOME/syncplan)
]],
  copy = [[
usage: syncplan copy SRC DST [-j WORKERS] [-n CHUNKS | --files N | --bytes SIZE]
                    [--exclude PAT]... [--include PAT]... [--delete]
                    [--retries N] [--dry-run] [--tool rsync|rclone]
                    [-F SSH_CONFIG] [--accept-new-host] [-e|--rsh CMD]
                    [--bwlimit RATE] [--json] [--state-dir DIR]

Copy SRC to DST with parallel workers: a one-off plan from flags.  SRC and
DST are local paths or [USER@]HOST:PATH (ssh); with --tool rclone, DST may
be REMOTE:PATH.  As with rsync, SRC/ copies the contents of SRC, and SRC
without the slash copies the directory itself into DST.

  -j, --workers N    parallel workers (default 4)
  -n, --chunks N     exactly N balanced chunks (scan first)
  --files N          at most N entries per chunk (default 2000, streamed)
  --bytes SIZE       at most SIZE bytes per chunk (default 4G)
  --exclude PAT      rsync-style exclude pattern (repeatable)
  --include PAT      rsync-style include pattern (repeatable)
  --delete           delete destination entries absent from the source,
                     in one pass after all chunks
  --retries N        attempts per chunk (default 3)
  --dry-run          change nothing (rsync -n / rclone --dry-run)
  --tool T           rsync (default) or rclone
  -F SSH_CONFIG      ssh config file for ssh endpoints (default
                     ~/.ssh/config; "none" for none)
  --accept-new-host  record the key of a host not yet in known_hosts
                     (a changed key is always refused)
  -e, --rsh CMD      run rsync's remote shell CMD (an ssh program) instead
                     of syncplan's own connections
  --bwlimit RATE     total rate for all workers (e.g. 40M)
  --json             one JSON object per line on stdout
  --state-dir DIR    journal and logs here
]],
  resume = [[
usage: syncplan resume JOB_ID [--json] [--state-dir DIR]

Run again the chunks of a job that are not done, from the lists stored in
the journal, then its final pass.
]],
  bwlimit = [[
usage: syncplan bwlimit JOB_ID RATE [--state-dir DIR]

Change the bandwidth cap of a running job, at once and for all its
workers (RATE such as 40M, or "off").  With a timetable, the change holds
until the timetable's next switch.  Exit 0 when the job took it, 1 when
the job is not running, 2 for a bad rate.
]],
  list = [[
usage: syncplan list [--json] [--state-dir DIR]

List the jobs in the journal, newest first.
]],
}

local function usage_error(cmd, msg)
  io.stderr:write("syncplan ", cmd, ": ", msg, "\n",
    "Try 'syncplan ", cmd, " --help'.\n")
  return EXIT.usage
end

-- A tiny getopt: spec maps option names to "flag" or "value".
local function parse(cmd, args, spec)
  local opts, pos = { _multi = {} }, {}
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "--" then
      for j = i + 1, #args do pos[#pos + 1] = args[j] end
      break
    elseif a:sub(1, 1) == "-" and a ~= "-" then
      local name, val = a:match("^(%-%-[^=]+)=(.*)$")
      name = name or a
      local s = spec[name]
      if not s then return nil, "unknown option '" .. name .. "'" end
      if s.kind == "flag" then
        if val then return nil, "option '" .. name .. "' takes no value" end
        opts[s.key] = true
      else
        if not val then
          i = i + 1
          val = args[i]
          if not val then
            return nil, "option '" .. name .. "' needs a value"
          end
        end
        if s.multi then
          opts[s.key] = opts[s.key] or {}
          table.insert(opts[s.key], val)
        else
          opts[s.key] = val
        end
      end
    else
      pos[#pos + 1] = a
    end
    i = i + 1
  end
  return opts, pos
end

local function opt(kind, key, multi) return { kind = kind, key = key, multi = multi } end

local COMMON = {
  ["--json"] = opt("flag", "json"),
  ["--state-dir"] = opt("value", "state_dir"),
  ["--help"] = opt("flag", "help"),
  ["-h"] = opt("flag", "help"),
}

local function with_common(t)
  for k, v in pairs(COMMON) do t[k] = v end
  return t
end

local function report(e)
  io.stderr:write("syncplan: ", tostring(e.msg or e), "\n")
  return EXIT.usage
end

local function cmd_run(args)
  local o, pos = parse("run", args, with_common {
    ["--once"] = opt("flag", "once"),
    ["--dry-run"] = opt("flag", "dry_run"),
    ["--set"] = opt("value", "set", true),
  })
  if not o then return usage_error("run", pos) end
  if o.help then io.stdout:write(HELP.run) return EXIT.ok end
  if #pos ~= 1 then return usage_error("run", "expected one PLAN file") end
  local ok, cfg, p = pcall(plan.load, pos[1], o.set)
  if not ok then return report(cfg) end
  if type(cfg) == "function" then
    -- A scripted plan: its function is the main task.
    local sp = require "syncplan"
    local rok, code = pcall(sp.run, cfg, { dry_run = o.dry_run or false,
      json = o.json or false, state_dir = o.state_dir, set = o.set or {},
      file = p.file })
    if not rok then
      io.stderr:write("syncplan: ", tostring(code), "\n")
      return EXIT.failed
    end
    return math.tointeger(code) or EXIT.ok
  end
  if o.dry_run then cfg.dry_run = true end
  return runner.run_plan(cfg, { json = o.json, state_dir = o.state_dir
    or cfg.state_dir, once = o.once })
end

local function cmd_copy(args)
  local o, pos = parse("copy", args, with_common {
    ["-j"] = opt("value", "workers"), ["--workers"] = opt("value", "workers"),
    ["-n"] = opt("value", "count"), ["--chunks"] = opt("value", "count"),
    ["--files"] = opt("value", "files"), ["--bytes"] = opt("value", "bytes"),
    ["--exclude"] = opt("value", "exclude", true),
    ["--include"] = opt("value", "include", true),
    ["--delete"] = opt("flag", "delete"),
    ["--retries"] = opt("value", "retries"),
    ["--dry-run"] = opt("flag", "dry_run"),
    ["--tool"] = opt("value", "tool"),
    ["-e"] = opt("value", "ssh"), ["--rsh"] = opt("value", "ssh"),
    ["-F"] = opt("value", "ssh_config"),
    ["--accept-new-host"] = opt("flag", "accept_new_host"),
    ["--bwlimit"] = opt("value", "bwlimit"),
    ["--rsync-opt"] = opt("value", "rsync_opts", true),
  })
  if not o then return usage_error("copy", pos) end
  if o.help then io.stdout:write(HELP.copy) return EXIT.ok end
  if #pos ~= 2 then return usage_error("copy", "expected SRC and DST") end
  local function int(name, v)
    local n = math.tointeger(tonumber(v))
    if not n then error({ msg = name .. ": expected an integer, got '" .. v .. "'" }) end
    return n
  end
  local ok, cfg = pcall(function()
    local t = { source = pos[1], dest = pos[2], exclude = o.exclude,
      include = o.include, delete = o.delete, dry_run = o.dry_run,
      tool = o.tool, ssh = o.ssh, bwlimit = o.bwlimit,
      rsync_opts = o.rsync_opts, accept_new_host = o.accept_new_host }
    if o.ssh_config then
      t.ssh_config = o.ssh_config ~= "none" and o.ssh_config
    end
    if o.workers then t.workers = int("-j", o.workers) end
    if o.count and (o.files or o.bytes) then
      error({ msg = "give -n, or --files/--bytes, not both" })
    end
    if o.count then t.chunks = { count = int("-n", o.count) } end
    if o.files or o.bytes then
      -- As with fpsync's -f and -s, the limit not given keeps its
      -- default (the usage says so), and chunks still spread.
      t.chunks = plan.default_chunks(t.workers or 4)
      if o.files then t.chunks.files = int("--files", o.files) end
      if o.bytes then t.chunks.bytes = o.bytes end
    end
    if o.retries then t.retry = { attempts = int("--retries", o.retries) } end
    return plan.check(t, { file = nil })
  end)
  if not ok then return report(cfg) end
  return runner.run_plan(cfg, { json = o.json, state_dir = o.state_dir })
end

local function cmd_resume(args)
  local o, pos = parse("resume", args, with_common {})
  if not o then return usage_error("resume", pos) end
  if o.help then io.stdout:write(HELP.resume) return EXIT.ok end
  if #pos ~= 1 then return usage_error("resume", "expected one JOB_ID") end
  return runner.resume(pos[1], { json = o.json, state_dir = o.state_dir })
end

local function cmd_bwlimit(args)
  local o, pos = parse("bwlimit", args, with_common {})
  if not o then return usage_error("bwlimit", pos) end
  if o.help then io.stdout:write(HELP.bwlimit) return EXIT.ok end
  if #pos ~= 2 then return usage_error("bwlimit", "expected JOB_ID RATE") end
  local rate = pos[2]
  local n = require("syncplan").parse_size(rate)
  if rate ~= "off" and not (n and n >= 0) then
    return usage_error("bwlimit", "invalid rate '" .. rate .. "'")
  end
  local reply, err = runner.control(pos[1], "bwlimit " .. rate, o.state_dir)
  if not reply then
    io.stderr:write("syncplan bwlimit: ", err, "\n")
    return EXIT.failed
  end
  if not reply:find('"ok":true', 1, true) then
    io.stderr:write("syncplan bwlimit: the job refused: ", reply, "\n")
    return EXIT.usage
  end
  io.stdout:write(reply, "\n")
  return EXIT.ok
end

local function cmd_list(args)
  local o, pos = parse("list", args, with_common {})
  if not o then return usage_error("list", pos) end
  if o.help then io.stdout:write(HELP.list) return EXIT.ok end
  if #pos ~= 0 then return usage_error("list", "takes no arguments") end
  return runner.list { json = o.json, state_dir = o.state_dir }
end

-- The demo's embedded default plan: sync the generated sample tree with
-- several workers.
function M.demo(src, dst, state_dir)
  local cfg = plan.check({ source = src .. "/", dest = dst .. "/",
    workers = 4, chunks = { count = 8 } }, {})
  return runner.run_plan(cfg, { state_dir = state_dir, summary = true })
end

local COMMANDS = { run = cmd_run, copy = cmd_copy, resume = cmd_resume,
  list = cmd_list, bwlimit = cmd_bwlimit }

function M.main(cmd, args)
  local f = COMMANDS[cmd]
  if not f then return usage_error(cmd, "unknown command") end
  return f(args)
end

return M
