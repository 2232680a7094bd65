-- syncplan.jobs: jobs seen from outside their process, for `syncplan
-- status`, `stop`, `list` and `log`.  A running job holds its lock,
-- <state>/jobs/ID.lock, and answers on its control socket,
-- <state>/jobs/ID.sock (see runner.lua); a finished one is read from the
-- journal; one whose process died (kill -9) is found by its free lock,
-- marked interrupted, and its stale socket removed.
local sp = require "syncplan"
local plan = require "syncplan.plan"
local progress = require "syncplan.progress"

local M = {}
local null = plan.null

function M.lock_path(state_dir, id)
  return state_dir .. "/jobs/" .. id .. ".lock"
end

function M.control_path(state_dir, id)
  return state_dir .. "/jobs/" .. id .. ".sock"
end

-- A schedule or watch loop's socket, named after its first job (see
-- daemon.lua).
function M.loop_path(state_dir, id)
  return state_dir .. "/jobs/" .. id .. ".loop"
end

-- The loop that job id started, if it still runs: its status table.
function M.loop(journal, id)
  local reply = sp.control_call(M.loop_path(journal:dir(), id), "status", 10)
  local st = reply and plan.json_decode(reply)
  if type(st) == "table" and st.ok then
    st.ok = nil
    return st
  end
  return nil
end

local function pid_alive(pid)
  if not pid or pid <= 0 then return false end
  local ok, _, code = sp.kill(pid, "0")
  return ok or code == "EPERM"
end

-- The job's state ("running", "done", "failed", "interrupted") and its
-- journal record; nil, message for an unknown job.
function M.state(journal, id)
  local run, err = journal:run_get(id)
  if not run then return nil, err end
  if run.state ~= "running" then return run.state, run end
  local dir = journal:dir()
  local lock, _, code = sp.lock(M.lock_path(dir, id), true)
  if not lock then
    if code == "EBUSY" then return "running", run end
    -- No lock file: the job is about to take it, or it has just ended.
    run = journal:run_get(id)
    if run.state ~= "running" or pid_alive(run.pid) then
      return run.state, run
    end
  end
  -- Nobody holds the lock: the process died.  Read the state again while
  -- holding it, since a job that ends sets its state before it lets go.
  run = journal:run_get(id)
  if run.state == "running" then
    journal:run_set_state(id, "interrupted", -1)
    os.remove(M.control_path(dir, id))
    run = journal:run_get(id)
  end
  if lock then
    os.remove(M.lock_path(dir, id))
    lock:close()
  end
  return run.state, run
end

-- Where a job sends its chunks (its dest endpoint, see plan.endpoint):
-- Scow-Sync's recvAddress.
function M.recv_address(d)
  d = d or {}
  if d.kind == "ssh" then return d.host end
  if d.kind == "rclone" then return d.prefix end
  return "localhost"
end

-- A finished (or dead) job's status from the journal, with the fields of
-- a running job's (runner.lua, Job:status_json).
local function journal_status(journal, run)
  local bytes, files, failed, retries = 0, 0, 0, 0
  local chunks, done = 0, 0
  -- Chunk 0 is the final pass, not data.
  for _, c in ipairs(journal:chunks(run.id, false)) do
    if c.index > 0 then
      chunks = chunks + 1
      if c.state == "done" then
        bytes, files, done = bytes + c.bytes, files + c.files, done + 1
      elseif c.state == "failed" then
        failed = failed + 1
      end
      retries = retries + math.max(c.attempts - 1, 0)
    end
  end
  local cfg = plan.deserialize(run.plan) or {}
  local finished = run.finished > 0 and run.finished or nil
  local elapsed = (finished or sp.time()) - run.started
  local pct = run.bytes > 0 and 100 * bytes / run.bytes or
      (chunks == done and 100 or 0)
  local speed = elapsed > 0 and bytes / elapsed or 0
  return {
    job = run.id, state = run.state, pid = run.pid, plan = cfg._file or null,
    name = cfg.name or null,
    source = run.source, dest = run.dest, started = run.started,
    finished = finished or null, elapsed = elapsed,
    exit_code = run.exit_code >= 0 and run.exit_code or null,
    recvAddress = M.recv_address(cfg._dst), filePath = run.source,
    transferSize = run.bytes, progress = pct, speed = speed, leftTime = null,
    bytes = bytes, totalBytes = run.bytes, transfers = files,
    errors = failed, eta = null, elapsedTime = elapsed, checks = 0,
    transferring = plan.array(), workers = plan.array(), bwlimit = null,
    chunks = chunks, chunks_done = done,
    chunks_failed = failed, retries = retries, files = files,
    total_files = run.files, scan_done = run.scan_complete, tool =
    cfg.tool or null,
  }
end

-- The status table of one job: asked of the job when it runs, else read
-- from the journal.  nil, message for an unknown job.
function M.status(journal, id)
  local state, run = M.state(journal, id)
  if not state then return nil, run end
  if state == "running" then
    local reply = sp.control_call(M.control_path(journal:dir(), id),
      "status", 10)
    local st = reply and plan.json_decode(reply)
    if type(st) == "table" and st.ok then
      st.ok = nil
      return st
    end
    -- Starting (no socket yet), or ending: the journal has the rest.
  end
  return journal_status(journal, run)
end

local function date(t)
  if type(t) ~= "number" or t <= 0 then return "-" end
  return os.date("%Y-%m-%d %H:%M:%S", math.floor(t))
end

-- The plan's name key, else its file's name.
local function plan_name(st)
  if type(st.name) == "string" then return st.name end
  return type(st.plan) == "string" and st.plan:match("([^/]*)$") or "-"
end

-- The human form of a status.
function M.describe(st, per_worker)
  local lines = {
    string.format("job %s  %s%s  plan %s  started %s%s", st.job, st.state,
      st.state == "running" and ("  pid " .. st.pid) or "",
      plan_name(st), date(st.started),
      st.finished ~= null and ("  ended " .. date(st.finished)) or ""),
    string.format("  %s -> %s", st.source, st.dest),
    "  " .. progress.line(st),
  }
  local loop = type(st.loop) == "table" and st.loop
  if loop then
    lines[#lines + 1] = string.format("  loop: %d run%s, %s", loop.runs,
      loop.runs == 1 and "" or "s", loop.current ~= null and
      ("running job " .. loop.current) or loop.next ~= null and
      ("next run at " .. date(loop.next)) or "between runs")
  end
  if per_worker then
    for _, l in ipairs(progress.worker_lines(st)) do
      lines[#lines + 1] = l
    end
  end
  return table.concat(lines, "\n")
end

-- The summary line of a job that ended, as `syncplan run` prints it.
function M.summary(st)
  local word = st.state == "done" and "done" or st.state == "interrupted"
      and "interrupted" or st.state == "failed" and
      "finished with failures" or st.state
  return string.format("job %s: %s in %s: %d/%d chunks done, %s, %d files, "
    .. "%d retries", st.job, word, progress.hms(st.elapsed), st.chunks_done,
    st.chunks, progress.human(st.bytes), st.files, st.retries)
end

-- The log directory of a job: the plan's log_dir, or <state>/logs.
function M.log_dir(journal, run)
  local cfg = plan.deserialize(run.plan) or {}
  return (cfg.log_dir or (journal:dir() .. "/logs")) .. "/" .. run.id
end

-- History rows for `syncplan list`, newest first.
function M.history(journal, limit)
  local rows = {}
  for _, r in ipairs(journal:runs()) do
    if limit and #rows >= limit then break end
    local state = r.state
    if state == "running" then state = M.state(journal, r.id) or state end
    local cfg = plan.deserialize(r.plan) or {}
    rows[#rows + 1] = { job = r.id, plan = cfg._file or null,
      name = cfg.name or null, state = state,
      started = r.started, finished = r.finished > 0 and r.finished or null,
      exit_code = r.exit_code >= 0 and r.exit_code or null,
      bytes = r.bytes, files = r.files, chunks = r.chunks,
      chunks_done = r.chunks_done, chunks_failed = r.chunks_failed,
      source = r.source, dest = r.dest }
  end
  return rows
end

function M.format_row(r)
  local name = plan_name(r)
  return string.format("%-22s %-16s %-19s %-19s %-11s %10s %8d", r.job,
    name:sub(1, 16), date(r.started), date(r.finished), r.state,
    progress.human(r.bytes), r.files)
end

M.HEADER = string.format("%-22s %-16s %-19s %-19s %-11s %10s %8s", "JOB",
  "PLAN", "STARTED", "ENDED", "OUTCOME", "BYTES", "FILES")

return M
