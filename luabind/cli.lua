-- syncplan.cli: the command line of `syncplan run`, `start`, `status`,
-- `stop`, `copy`, `resume`, `list`, `log`, `bwlimit` and `demo`, turned
-- into runner and jobs calls.  Returns the exit status.
local sp = require "syncplan"
local plan = require "syncplan.plan"
local runner = require "syncplan.runner"
local jobs = require "syncplan.jobs"
local progress = require "syncplan.progress"

local M = {}
local EXIT = runner.EXIT

local HELP = {
  run = [[
usage: syncplan run PLAN.lua [--dry-run] [--once] [--set KEY=VALUE]...
                    [--json] [--per-worker] [-v] [--state-dir DIR]

Run a plan in the foreground.  A plan returns a table (keys: source, dest,
or local_path, remote, direction; tool, chunks, workers, exclude, include,
filter, delete, renames, retry, rsync_opts, rclone, ssh, watchdog,
bwlimit, schedule, watch, hosts, one_filesystem, skip_unchanged,
log_level, log_dir, log_file, log_max, on_start, on_chunk_done,
on_finish) or a function (a scripted plan).  The plan is checked before
anything runs; an error names the plan's file:line and exits 2.  A plan
with a schedule or watch runs until stopped: the first SIGINT/SIGTERM
lets running chunks finish, a second stops them.  On a terminal a
progress bar shows the job; piped, only warnings, errors, the job's id
and its summary are printed.

  --dry-run        run every worker with rsync -n / rclone --dry-run
  --once           one run, whatever the plan's schedule or watch
  --set KEY=VALUE  override a plan key (nested: retry.attempts=5; the
                   value nil takes the key out)
  --json           one JSON object per line on stdout (progress, events)
  --per-worker     one more progress line per worker
  -v, --verbose    the terminal gets the log at the plan's log_level
  --state-dir DIR  journal and logs here (default $XDG_STATE_HOME/syncplan)
]],
  start = [[
usage: syncplan start PLAN.lua [--dry-run] [--once] [--set KEY=VALUE]...
                      [--state-dir DIR]

Check a plan, then run it detached from the terminal (a session of its
own; its output goes to LOGDIR/ID/output.log) and print the job's id.
Follow it with `syncplan status ID`, end it with `syncplan stop ID`.  A
plan with a schedule or watch keeps running: each of its runs is a job of
its own, and the id printed is the first run's.
]],
  status = [[
usage: syncplan status [JOB_ID] [--json] [--watch] [--per-worker]
                       [--interval SEC] [--state-dir DIR]

Show a job: a running one as it is now (asked over its control socket),
a finished one from the journal.  Without JOB_ID, every running job (with
--json, a JSON array).  A job whose process died shows as interrupted.

  --json           the job as JSON (see syncplan(1), STATUS JSON)
  --watch          follow the job until it ends: a progress bar on a
                   terminal (with --json, one object per interval), then
                   its summary; exits with the job's exit status
  --per-worker     one line per worker
  --interval SEC   seconds between updates with --watch (default 1)
]],
  stop = [[
usage: syncplan stop JOB_ID [--timeout SEC] [--state-dir DIR]

Stop a running job: at once no chunk starts any more and the running ones
finish; after --timeout seconds (default 60) they are stopped and their
partial files removed.  Waits until the job has ended; it is then
resumable with `syncplan resume JOB_ID`.  Exit 0 when stopped, 1 when the
job was not running.
]],
  log = [[
usage: syncplan log JOB_ID [--chunk N] [--state-dir DIR]

Print a job's log (LOGDIR/ID/job.log), or with --chunk N the output of
the tool that ran chunk N (LOGDIR/ID/chunk-N.log).
]],
  copy = [[
usage: syncplan copy SRC DST [-j WORKERS] [-n CHUNKS | --files N | --bytes SIZE]
                    [--exclude PAT]... [--include PAT]... [--delete]
                    [--retries N] [--dry-run] [--tool rsync|rclone]
                    [-F SSH_CONFIG] [--accept-new-host] [-e|--rsh CMD]
                    [--rsync-opt OPT]... [--bwlimit RATE] [--json]
                    [--per-worker] [-v] [--state-dir DIR]

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
  --rsync-opt OPT    one more rsync option for every chunk (repeatable)
  --bwlimit RATE     total rate for all workers (e.g. 40M)
  --json             one JSON object per line on stdout
  --per-worker       one more progress line per worker
  -v, --verbose      the terminal gets the job's log (info)
  --state-dir DIR    journal and logs here
]],
  resume = [[
usage: syncplan resume JOB_ID [--json] [--per-worker] [-v] [--state-dir DIR]

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
usage: syncplan list [--json] [--limit N] [--state-dir DIR]

List the jobs in the journal, newest first: id, plan, start, end,
outcome (running, done, failed, interrupted), bytes and files.  With
--json, one object per line.
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

local errf = runner.errf

-- Options of the commands that run a job in the foreground.
local function with_run(t)
  t["--per-worker"] = opt("flag", "per_worker")
  t["-v"] = opt("flag", "verbose")
  t["--verbose"] = opt("flag", "verbose")
  return with_common(t)
end

-- Options of the commands that take a plan (run, start).
local function with_plan(t)
  t["--once"] = opt("flag", "once")
  t["--dry-run"] = opt("flag", "dry_run")
  t["--set"] = opt("value", "set", true)
  return t
end

local function run_opts(o, cfg)
  return { json = o.json, state_dir = o.state_dir or (cfg and cfg.state_dir),
    once = o.once, per_worker = o.per_worker, verbose = o.verbose }
end

local function cmd_run(args)
  local o, pos = parse("run", args, with_run(with_plan {}))
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
  return runner.run_plan(cfg, run_opts(o, cfg))
end

local function cmd_start(args)
  local o, pos = parse("start", args, with_common(with_plan {}))
  if not o then return usage_error("start", pos) end
  if o.help then io.stdout:write(HELP.start) return EXIT.ok end
  if #pos ~= 1 then return usage_error("start", "expected one PLAN file") end
  if o.json then return usage_error("start", "--json goes with status") end
  local ok, cfg = pcall(plan.load, pos[1], o.set)
  if not ok then return report(cfg) end
  if type(cfg) == "function" then
    return usage_error("start", "a scripted plan runs in the foreground "
      .. "(syncplan run)")
  end
  if o.dry_run then cfg.dry_run = true end
  local role, a, b = sp.detach()
  if not role then
    errf("start: cannot detach: %s", a)
    return EXIT.failed
  end
  if role == "parent" then
    if a then
      io.stdout:write(a, "\n")
      return EXIT.ok
    end
    errf("start: the job did not start (exit status %d)", b)
    return b ~= 0 and b or EXIT.failed
  end
  local ready = a
  local opts = run_opts(o, cfg)
  opts.detached = true
  -- The first job's id goes to `syncplan start`'s caller, once its
  -- output has a home.
  opts.on_job = function(job)
    if not ready then return end
    local rok, rerr = ready(job.id, job.logdir .. "/output.log")
    if not rok then errf("start: %s", rerr) end
    ready = nil
  end
  return runner.run_plan(cfg, opts)
end

local function positive(v)
  local n = tonumber(v)
  return n and n > 0 and n or nil
end

local function cmd_status(args)
  local o, pos = parse("status", args, with_common {
    ["--watch"] = opt("flag", "watch"),
    ["--per-worker"] = opt("flag", "per_worker"),
    ["--interval"] = opt("value", "interval"),
  })
  if not o then return usage_error("status", pos) end
  if o.help then io.stdout:write(HELP.status) return EXIT.ok end
  if #pos > 1 then return usage_error("status", "expected at most one JOB_ID") end
  local interval = 1
  if o.interval then
    interval = positive(o.interval)
    if not interval then
      return usage_error("status", "invalid interval '" .. o.interval .. "'")
    end
  end
  if o.watch and #pos == 0 then
    return usage_error("status", "--watch needs a JOB_ID")
  end
  local journal = runner.open_journal(o)
  if not journal then return EXIT.failed end
  local function finish(code) journal:close() return code end
  if #pos == 0 then
    -- Jobs the journal says run; status probes each (a dead one comes
    -- back interrupted, and is left out).
    local list = plan.array()
    for _, r in ipairs(journal:runs()) do
      local st = r.state == "running" and jobs.status(journal, r.id)
      if st and st.state == "running" then list[#list + 1] = st end
    end
    if o.json then
      print(plan.json(list))
    elseif #list == 0 then
      print("no running jobs")
    else
      for _, st in ipairs(list) do print(jobs.describe(st, o.per_worker)) end
    end
    return finish(EXIT.ok)
  end
  local id = pos[1]
  local st, err = jobs.status(journal, id)
  if not st then
    errf("status: %s", err)
    return finish(EXIT.failed)
  end
  st.loop = jobs.loop(journal, id)
  if not o.watch then
    print(o.json and plan.json(st) or jobs.describe(st, o.per_worker))
    return finish(EXIT.ok)
  end
  -- --watch: redraw until the job ends; piped, only the summary.
  local bar = not o.json and sp.isatty(1) and
      progress.new(io.stdout, { per_worker = o.per_worker, fd = 1 }) or nil
  while st.state == "running" do
    if o.json then
      io.stdout:write(plan.json(st), "\n")
      io.stdout:flush()
    elseif bar then
      bar:draw(st)
    end
    sp.nap(interval)
    st = assert(jobs.status(journal, id))
  end
  if bar then bar:clear() end
  print(o.json and plan.json(st) or jobs.summary(st))
  local code = st.exit_code ~= plan.null and st.exit_code or
      (st.state == "done" and EXIT.ok or st.state == "interrupted" and
        EXIT.interrupted or EXIT.failed)
  return finish(code)
end

local function cmd_stop(args)
  local o, pos = parse("stop", args, with_common {
    ["--timeout"] = opt("value", "timeout"),
  })
  if not o then return usage_error("stop", pos) end
  if o.help then io.stdout:write(HELP.stop) return EXIT.ok end
  if #pos ~= 1 then return usage_error("stop", "expected one JOB_ID") end
  local timeout = 60
  if o.timeout then
    timeout = tonumber(o.timeout)
    if not timeout or timeout < 0 then
      return usage_error("stop", "invalid timeout '" .. o.timeout .. "'")
    end
  end
  local journal = runner.open_journal(o)
  if not journal then return EXIT.failed end
  local id = pos[1]
  local state, run = jobs.state(journal, id)
  -- The id `start` printed for a schedule or watch plan names its loop,
  -- which stops as a whole, between runs too.
  local loop = state and jobs.loop(journal, id)
  if state ~= "running" and not loop then
    errf("stop: %s", state and string.format("job %s is not running (%s)",
      id, state) or run)
    journal:close()
    return EXIT.failed
  end
  local dir = journal:dir()
  local pid = loop and loop.pid or run.pid
  local sock = loop and jobs.loop_path(dir, id) or jobs.control_path(dir, id)
  -- Through the socket, as a SIGTERM; a job still starting has no socket
  -- yet, and gets the signal itself.
  local function ask(verb)
    if not sp.control_call(sock, verb, 10) then sp.kill(pid, "TERM") end
  end
  local function ended(secs)
    for _ = 1, math.max(math.ceil(secs / 0.2), 1) do
      if loop then
        if not jobs.loop(journal, id) then return true end
      else
        state, run = jobs.state(journal, id)
        if state ~= "running" then return true end
      end
      sp.nap(0.2)
    end
    return false
  end
  local what = loop and ("the loop of job " .. id) or ("job " .. id)
  ask("quit")
  errf("%s: stopping: running chunks finish first (stopped after %gs)",
    what, timeout)
  local ok = ended(timeout)
  if not ok then
    errf("%s: stopping its running chunks", what)
    ask("stop")
    ok = ended(30)
    if not ok then
      errf("%s: not answering; killing pid %d (its temporary files stay "
        .. "until the resume)", what, pid)
      sp.kill(pid, "KILL")
      ok = ended(10)
    end
  end
  -- The job that was running (for a loop, its current run, if any).
  local last = loop and (loop.current ~= plan.null and loop.current) or
      (not loop and id)
  if loop then
    errf("%s: stopped after %d run%s", what, loop.runs,
      loop.runs == 1 and "" or "s")
  end
  if last then
    state = jobs.state(journal, last)
    errf("job %s: %s%s", last, state, state ~= "done" and
      ("; resume with: syncplan resume " .. last) or "")
  end
  journal:close()
  return ok and EXIT.ok or EXIT.failed
end

local function cmd_log(args)
  local o, pos = parse("log", args, with_common {
    ["--chunk"] = opt("value", "chunk"),
  })
  if not o then return usage_error("log", pos) end
  if o.help then io.stdout:write(HELP.log) return EXIT.ok end
  if #pos ~= 1 then return usage_error("log", "expected one JOB_ID") end
  local n = o.chunk and math.tointeger(tonumber(o.chunk))
  if o.chunk and not (n and n >= 1) then
    return usage_error("log", "invalid chunk '" .. o.chunk .. "'")
  end
  local journal = runner.open_journal(o)
  if not journal then return EXIT.failed end
  local run, err = journal:run_get(pos[1])
  local dir = run and jobs.log_dir(journal, run)
  journal:close()
  if not run then
    errf("log: %s", err)
    return EXIT.failed
  end
  local path = n and string.format("%s/chunk-%d.log", dir, n) or
      dir .. "/job.log"
  local f, ferr = io.open(path, "rb")
  if not f then
    errf("log: %s", ferr)
    return EXIT.failed
  end
  while true do
    local b = f:read(65536)
    if not b then break end
    io.stdout:write(b)
  end
  f:close()
  return EXIT.ok
end

local function cmd_copy(args)
  local o, pos = parse("copy", args, with_run {
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
  return runner.run_plan(cfg, run_opts(o))
end

local function cmd_resume(args)
  local o, pos = parse("resume", args, with_run {})
  if not o then return usage_error("resume", pos) end
  if o.help then io.stdout:write(HELP.resume) return EXIT.ok end
  if #pos ~= 1 then return usage_error("resume", "expected one JOB_ID") end
  return runner.resume(pos[1], run_opts(o))
end

local function cmd_bwlimit(args)
  local o, pos = parse("bwlimit", args, with_common {})
  if not o then return usage_error("bwlimit", pos) end
  if o.help then io.stdout:write(HELP.bwlimit) return EXIT.ok end
  if #pos ~= 2 then return usage_error("bwlimit", "expected JOB_ID RATE") end
  local rate = pos[2]
  local n = sp.parse_size(rate)
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
  local o, pos = parse("list", args, with_common {
    ["--limit"] = opt("value", "limit"),
  })
  if not o then return usage_error("list", pos) end
  if o.help then io.stdout:write(HELP.list) return EXIT.ok end
  if #pos ~= 0 then return usage_error("list", "takes no arguments") end
  local limit = o.limit and math.tointeger(tonumber(o.limit))
  if o.limit and not (limit and limit > 0) then
    return usage_error("list", "invalid limit '" .. o.limit .. "'")
  end
  local journal = runner.open_journal(o)
  if not journal then return EXIT.failed end
  local rows = jobs.history(journal, limit)
  journal:close()
  if not o.json then print(jobs.HEADER) end
  for _, r in ipairs(rows) do
    print(o.json and plan.json(r) or jobs.format_row(r))
  end
  return EXIT.ok
end

-- The demo's embedded default plan: sync the generated sample tree with
-- several workers.
function M.demo(src, dst, state_dir)
  local cfg = plan.check({ source = src .. "/", dest = dst .. "/",
    workers = 4, chunks = { count = 8 } }, {})
  return runner.run_plan(cfg, { state_dir = state_dir })
end

local COMMANDS = { run = cmd_run, start = cmd_start, status = cmd_status,
  stop = cmd_stop, copy = cmd_copy, resume = cmd_resume, list = cmd_list,
  log = cmd_log, bwlimit = cmd_bwlimit }

function M.main(cmd, args)
  local f = COMMANDS[cmd]
  if not f then return usage_error(cmd, "unknown command") end
  return f(args)
end

return M
