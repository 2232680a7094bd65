-- Plans that run again (syncplan.daemon): on a schedule (folder_sync's
-- interval, cron), or when their local source changes (watch mode,
-- lsyncd's model).  Each run is a job of its own in the journal; runs
-- never overlap.
--
-- Stopping: a SIGINT or SIGTERM while a run goes on is the run's safe
-- quit (its running chunks finish, it ends resumable, a second signal
-- stops them) and no run follows; between runs it ends the loop at once.
-- The exit status is the last run's.
local sp = require "syncplan"
local plan = require "syncplan.plan"
local jobs = require "syncplan.jobs"

local M = {}

local function say(fmt, ...)
  io.stderr:write("syncplan: ", string.format(fmt, ...), "\n")
end

local function emit(opts, event, fields)
  if not opts.json then return end
  fields.event, fields.time = event, sp.time()
  io.stdout:write(plan.json(fields), "\n")
  io.stdout:flush()
end

-- Wait up to secs (nil: until woken) unless asked to quit; true if the
-- loop goes on.  cond: what else may end the wait (new events); by
-- default only a quit does, so a batch's delay runs in full however
-- many events come meanwhile.
local function pause(state, secs, cond)
  if state.quit then return false end
  (cond or state.cond):wait(secs)
  return not state.quit
end

function M.schedule_loop(runner, cfg, opts, journal, state)
  local s = assert(sp.schedule(cfg.schedule))
  local interval = s:describe():find("^every") ~= nil
  local code, runs = runner.EXIT.ok, 0
  while not state.quit do
    local start = sp.time()
    code = runner.run_job(cfg, opts, journal)
    runs = runs + 1
    if state.quit or code == runner.EXIT.interrupted then break end
    local now = sp.time()
    local nxt = s:next(math.floor(start), math.floor(now))
    if not nxt or nxt < 0 then
      say("schedule %s: no run to come", s:describe())
      break
    end
    -- Schedules count whole seconds: an interval keeps the start's
    -- fraction (else each run would come up to a second early); cron
    -- runs fall on the minute.
    if interval and nxt > math.floor(now) then
      nxt = nxt + (start - math.floor(start))
    end
    local wait = math.max(nxt - sp.time(), 0)
    emit(opts, "schedule", { next = nxt, wait = wait, runs = runs,
      exit_code = code })
    if not opts.json then
      say("run %d ended (exit %d); next run at %s", runs, code,
        os.date("%Y-%m-%d %H:%M:%S", math.floor(nxt)))
    end
    state.next = nxt
    if wait > 0 and not pause(state, wait) then break end
    state.next = nil
  end
  return code
end

-- Watch mode: the paths a batch of changes touches, as one chunk's list.
-- Returns the batch, or nil and why a full pass is needed instead (a
-- hard-linked file: rsync -H links only the names one run sees).
function M.batch(cfg, changes)
  local root = cfg._src.path:gsub("/*$", "") .. "/"
  local seen, names, dirs, dseen, moves = {}, {}, {}, {}, {}
  local bytes, linked = 0, false
  local function add(path)
    if seen[path] then return end
    seen[path] = true
    names[#names + 1] = path
    local st = sp.stat(root .. path, true)
    if st and st.type == "file" then
      bytes = bytes + st.size
      linked = linked or st.nlink > 1
    end
    local d = path:match("^(.*)/[^/]*$")
    while d and not dseen[d] do
      dseen[d] = true
      dirs[#dirs + 1] = d
      d = d:match("^(.*)/[^/]*$")
    end
  end
  local function add_tree(path)
    add(path)
    local scan = sp.scan(root .. path, plan.scan_opts(cfg))
    if not scan then return end
    for e in scan do
      if e.path ~= "" then add(path .. "/" .. e.path) end
    end
  end
  for _, c in ipairs(changes) do
    if c.kind == "removed" then
      if cfg.delete then add(c.path) end
    elseif c.kind == "tree" then
      add_tree(c.path)
    else
      if c.kind == "moved" and cfg.delete then
        moves[#moves + 1] = { from = c.from, to = c.path, dir = c.dir }
        add(c.from)
      elseif c.kind == "moved" then
        add_tree(c.path)
      end
      add(c.path)
    end
  end
  if linked then return nil, "a hard link" end
  if #names == 0 then return nil end
  return {
    list = table.concat(names, "\0") .. "\0", files = #names, bytes = bytes,
    dirs = #dirs > 0 and table.concat(dirs, "\0") .. "\0" or "",
    moves = #moves > 0 and moves or nil,
  }
end

-- The plan a batch runs with: no deletion pass over the whole tree (the
-- batch's removed paths are deletion requests: --delete-missing-args,
-- with --force for a directory), and a path gone again before the batch
-- ran is no error (--ignore-missing-args).
local function batch_cfg(cfg)
  local b = {}
  for k, v in pairs(cfg) do b[k] = v end
  b.watch, b.schedule, b.renames, b.delete = nil, nil, nil, nil
  local o = {}
  for _, x in ipairs(cfg.rsync_opts or {}) do o[#o + 1] = x end
  if cfg.delete then
    o[#o + 1] = "--delete-missing-args"
    o[#o + 1] = "--force"
  else
    o[#o + 1] = "--ignore-missing-args"
  end
  b.rsync_opts = o
  return b
end

function M.watch_loop(runner, cfg, opts, journal, state)
  local delay = cfg.watch.delay or 5
  state.events = sp.condition()
  local w, err = sp.watch(cfg._src.path, plan.scan_opts(cfg), function()
      state.pending = true
      state.events:notify()
    end)
  if not w then
    say("cannot watch %s: %s", cfg._src.path, err)
    return runner.EXIT.failed
  end
  local bcfg = batch_cfg(cfg)
  -- The first pass is a full run: what changed while nobody watched
  -- (before a start, or a restart) has left no event.
  local code = runner.run_job(cfg, opts, journal)
  local full = code ~= runner.EXIT.ok
  -- After a failed run the next waits longer each time (the delay
  -- doubled, up to 5 minutes), so a source or destination that has gone
  -- away is not hammered with full passes.
  local backoff = delay
  while not state.quit and code ~= runner.EXIT.interrupted do
    if not state.pending and not full and not pause(state, nil, state.events)
    then break end
    -- Batch the events for the delay.
    if not pause(state, full and backoff or delay) then break end
    backoff = full and math.min(backoff * 2, 300) or delay
    state.pending = false
    local changes, overflow = w:take()
    local batch, why
    if overflow then
      why = "too many events (overflow)"
    elseif not full then
      batch, why = M.batch(cfg, changes)
    end
    if full or why then
      say("full pass: %s", why or "the last run failed")
      emit(opts, "watch", { full = true, reason = why or "failed" })
      code = runner.run_job(cfg, opts, journal)
    elseif batch then
      emit(opts, "watch", { full = false, paths = batch.files })
      code = runner.run_job(bcfg, opts, journal, batch)
    end
    full = code ~= runner.EXIT.ok and code ~= runner.EXIT.interrupted
  end
  w:close()
  return code
end

-- The loop's own control socket, <state>/jobs/FIRST.loop (0600), named
-- after its first run's job id (the id `syncplan start` printed), so
-- that the loop can be asked and stopped between runs too:
--   status       { loop, pid, runs, current (the running job or null),
--                  next (the next run's time, or null) }
--   quit | stop  as SIGTERM: the current run quits safely, no run
--                follows
local function open_loop_control(state, journal, id)
  state.loop_id = id
  local c, err = sp.control(jobs.loop_path(journal:dir(), id), function(req)
    local verb = req:match("^(%S+)")
    if verb == "status" then
      return plan.json { ok = true, loop = id, pid = sp.getpid(),
        runs = state.runs, current = state.current or plan.null,
        next = state.next or plan.null }
    elseif verb == "quit" or verb == "stop" then
      local ok, kerr = sp.kill(sp.getpid(), "TERM")
      return plan.json { ok = ok or false, error = kerr, pid = sp.getpid() }
    end
    return plan.json { ok = false, error = "unknown request" }
  end)
  if not c then say("no control socket for the loop: %s", err) end
  state.control = c
end

function M.run(runner, cfg, opts, journal)
  return sp.run(function()
    local state = { cond = sp.condition(), runs = 0 }
    -- Each run's job: the first names the loop; the current one is
    -- what the loop's status points at.
    local on_job = opts.on_job
    opts.on_job = function(job)
      if not state.loop_id then open_loop_control(state, journal, job.id) end
      state.current, state.runs = job.id, state.runs + 1
      if on_job then on_job(job) end
    end
    local on_end = opts.on_job_end
    opts.on_job_end = function(job)
      state.current = nil
      if on_end then on_end(job) end
    end
    local hooks = {}
    for _, name in ipairs { "INT", "TERM" } do
      hooks[#hooks + 1] = sp.on_signal(name, function()
        state.quit = true
        state.cond:notify()
        if state.events then state.events:notify() end
      end)
    end
    local loop = cfg.watch and M.watch_loop or M.schedule_loop
    local code = loop(runner, cfg, opts, journal, state)
    for _, h in ipairs(hooks) do h:stop() end
    if state.control then state.control:close() end
    return code
  end)
end

return M
