-- syncplan.runner: the table-plan runner.
--
-- Policy in Lua on the module's mechanisms: this file turns a plan table
-- (or `syncplan copy` flags) into a job: a producer chunks the source, N
-- worker slots take the next chunk when free and run rsync or rclone on
-- it, failed chunks are retried by class with backoff, every state change
-- goes to the journal, and a final pass does what no single chunk can
-- (deletions, directory times).  Embedded in the module and the binary.
local sp = require "syncplan"
local plan = require "syncplan.plan"
local bw = require "syncplan.bw"
local mirror = require "syncplan.mirror"
local logmod = require "syncplan.log"
local progress = require "syncplan.progress"
local jobs = require "syncplan.jobs"

local M = {}

local EXIT = { ok = 0, failed = 1, usage = 2, interrupted = 3, connect = 4 }
M.EXIT = EXIT

local function errf(fmt, ...)
  io.stderr:write("syncplan: ", string.format(fmt, ...), "\n")
end
M.errf = errf

-- Single-quote s for a POSIX shell (the remote side of ssh).
local function shq(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function split_words(s)
  local t = {}
  for w in s:gmatch("%S+") do t[#t + 1] = w end
  return t
end

local function with_slash(p)
  return p:sub(-1) == "/" and p or p .. "/"
end

-- The endpoint as rsync or rclone must see it, always with a trailing
-- slash: chunk lists are relative to the source directory's inside.
local function spec(ep)
  if ep.kind == "local" then return with_slash(ep.path) end
  return ep.prefix .. with_slash(ep.path)
end

---------------------------------------------------------------------------
-- Building tool command lines (policy: which flags, in which order).

local function filter_args(cfg)
  local a = {}
  for _, r in ipairs(cfg.filter or {}) do a[#a + 1] = "--filter=" .. r end
  for _, r in ipairs(cfg.include or {}) do a[#a + 1] = "--include=" .. r end
  for _, r in ipairs(cfg.exclude or {}) do a[#a + 1] = "--exclude=" .. r end
  return a
end

local function append(t, list)
  for _, v in ipairs(list or {}) do t[#t + 1] = v end
  return t
end

-- --modify-window=-1: times are compared to the nanosecond.  By default
-- rsync ignores a sub-second difference, and so leaves the time of a
-- symlink or directory it has just made as it was, when the source's
-- falls in the same second.  A plan's own --modify-window comes later and
-- wins.
local function rsync_base(job, slot)
  local cfg = job.cfg
  local a = { "rsync", "-aH", "--no-h", "--modify-window=-1" }
  if cfg.dry_run then a[#a + 1] = "-n" end
  local rsh = job:rsh(slot or 0)
  if rsh then a[#a + 1] = "--rsh=" .. rsh end
  local limit = job.bw:rsync_arg(job:bw_expected(true))
  if limit then a[#a + 1] = limit end
  return append(a, cfg.rsync_opts)
end

-- A receiver that is not root cannot write into a directory whose mode
-- lacks the owner's write bit.  One rsync run copes by setting such a
-- mode last, but parallel chunks cannot: the first chunk to end would
-- lock the others out of the directory (they fail, and leave their temp
-- files in it).  So chunks keep the owner's write bit on directories
-- (a no-op for the others), and the final rsync pass sets the real modes
-- when the source has such a directory; see Job:fast_final_ok.  As root
-- locally it is not needed; a remote user may or may not be root.
--
-- Files being written live in one directory of the job's under the
-- destination's root (rsync's --temp-dir, relative to that root) until
-- each is complete and renamed into place: an rsync killed outright (or
-- a host that dies under it) leaves its half-written file there and not
-- beside the real ones, and the job removes the directory when it ends
-- or stops (see Job:temp_dir).
local function chunk_base(job, slot)
  local a = rsync_base(job, slot)
  if job.guard_dirs then a[#a + 1] = "--chmod=Du+w" end
  if job.temp then a[#a + 1] = "--temp-dir=" .. job.temp end
  return a
end

-- The destination as a slot's rsync sees it: with hosts.dest, on the
-- slot's host.
local function dst_spec(job, slot)
  local hosts = job.cfg.hosts
  if hosts and hosts.dest and slot and slot >= 1 then
    return job:slot_host(slot) .. ":" .. with_slash(job.dst.path)
  end
  if job.tun_local and slot and slot >= 1 then
    -- The host name is rsync's alone: the tunnel runs its receiver here.
    return "localhost:" .. with_slash(job.dst.path)
  end
  return spec(job.dst)
end

-- One chunk: the list on stdin, NUL-separated, progress records on stdout.
local function rsync_chunk_argv(job, slot)
  local a = chunk_base(job, slot)
  append(a, { "--files-from=-", "--from0", "--info=progress2",
    "--", spec(job.src), dst_spec(job, slot) })
  return a
end

-- A local source's directory as the part before "/./" of a name under
-- -R: without "/./" of its own (rsync cuts at the first), "." components
-- or a trailing slash, all of which only spell the same directory.
local function dot_root(path)
  local r = path
  repeat
    local n1, n2
    r, n1 = r:gsub("/%./", "/")
    r, n2 = r:gsub("//+", "/")
  until n1 + n2 == 0
  while r:sub(1, 2) == "./" do r = r:sub(3) end
  while #r > 1 and (r:sub(-1) == "/" or r:sub(-2) == "/.") do
    r = r:sub(-1) == "/" and r:sub(1, -2) or r:sub(1, -3)
  end
  return r == "" and "." or r
end

-- rsync reads a --files-from list one byte at a time (a poll and a read
-- per byte) when the list is on the sending side, that is for a local
-- source: some thirty system calls a name, more than copying a small
-- file costs (50,000 small files: 4.8 CPU seconds in 26 chunks against
-- rsync -a's 2.9).  Named on the command line, ROOT/./NAME under -R so
-- that the part after "/./" is kept as --files-from keeps a whole name,
-- the same chunks cost what rsync -a does.  --no-r and -d are what
-- --files-from implies besides -R.  The names must fit in half of
-- ARG_MAX (strings and pointers, the rest left to the environment);
-- a longer list, or a remote source (whose list rsync forwards in
-- blocks), stays on stdin.  Returns nil then.
local function rsync_chunk_args_argv(job, slot, data)
  local root = job.dot_root
  if not root then return nil end
  local names, size = {}, 0
  for name in data:gmatch("([^%z]+)%z") do
    size = size + #root + #name + 1 + 8
    if size > job.arg_budget then return nil end
    names[#names + 1] = root .. name
  end
  local a = chunk_base(job, slot)
  -- After -a and the plan's options, so these win (a plan cannot name
  -- -r either: plan.lua).
  append(a, { "--no-r", "-d", "-R", "--info=progress2", "--" })
  append(a, names)
  a[#a + 1] = dst_spec(job, slot)
  return a
end

-- chunk: the rclone is a chunk's (its bandwidth comes with its rc, see
-- Job:attempt), else a pass's, which runs alone and gets the whole rate.
local function rclone_common(job, chunk)
  local cfg = job.cfg
  local a = { "rclone" }
  if cfg.rclone and cfg.rclone.config then
    append(a, { "--config", cfg.rclone.config })
  end
  if cfg.dry_run then a[#a + 1] = "--dry-run" end
  local rate = not chunk and job.bw:rate()
  if rate then a[#a + 1] = "--bwlimit=" .. rate .. "B" end
  -- syncplan retries whole chunks itself: rclone's own retries would
  -- multiply the attempts (low-level retries stay).
  append(a, { "--retries", "1", "--use-json-log", "--stats", "1s",
    "--stats-log-level", "NOTICE" })
  return append(a, cfg.rclone and cfg.rclone.flags)
end

local Job = {}
Job.__index = Job

---------------------------------------------------------------------------
-- Reaching remote hosts.
--
-- Every rsync over ssh would pay a whole handshake (TCP, key exchange,
-- authentication: about eight round trips) before its first byte, and a
-- burst of them meets sshd's MaxStartups.  So each worker slot keeps one
-- connection that all its chunks reuse.  Per slot, not per host: one
-- shared connection would put every worker behind one TCP window.  Slot
-- 0 carries the listings, slot 1 the root and final passes too.
--
-- The tunnel (the default): the slots' connections are libssh2 sessions
-- of this process, with host keys checked against known_hosts (an
-- unknown host only with accept_new_host) and the user's ssh config
-- honoured (ssh_config).  rsync's remote shell is `syncplan tunnel
-- SOCKET SLOT`, which hands rsync's pipes to this process; the slot's
-- session runs the remote command on an exec channel and relays (see
-- libsync/tunnel.h).  No ssh program is involved, and the bytes are
-- counted.  With hosts.run_on the slots' sessions go to those hosts and
-- chunks run there, each an rsync on an exec channel with its list on
-- stdin; with hosts.dest they go to those hosts, and so do the slots'
-- chunks.
--
-- The system ssh (ssh_transport = "system", or a plan's own ssh command,
-- or RSYNC_RSH): each slot keeps an OpenSSH master connection
-- (ControlMaster).  The sockets live in a private directory (the job's
-- log directory when the path is short enough for a socket, else a new
-- one under $TMPDIR); masters exit when the job ends, or MUX_PERSIST
-- seconds after their last session if syncplan is killed.

local MUX_PERSIST = 60
-- ssh appends 17 characters to a ControlPath while it binds, and a unix
-- socket path holds at most 107.
local MUX_PATH_MAX = 80

local function remote_of(job)
  if job.src.kind == "ssh" then return job.src end
  if job.dst.kind == "ssh" then return job.dst end
  return nil
end

-- The ssh command line the user gave (plan key ssh, or rsync's own
-- RSYNC_RSH), nil for rsync's default.
local function user_rsh(cfg)
  return cfg.ssh or os.getenv("RSYNC_RSH")
end

-- The ssh program with the plan's ssh_port and ssh_key (Scow-Sync's -p
-- and -k), when syncplan runs ssh itself.
local function own_ssh(cfg)
  local s = "ssh"
  if cfg.ssh_port then s = s .. " -p " .. cfg.ssh_port end
  if cfg.ssh_key then s = s .. " -i " .. cfg.ssh_key end
  return s
end

-- A private directory for sockets: the job's log directory's ssh/ when
-- its path is short enough, else a new one under $TMPDIR.  Made once: a
-- tunnel that cannot listen falls back to ssh masters in the same one.
function Job:socket_dir()
  if self.sock_dir then return self.sock_dir end
  local dir = self.logdir .. "/ssh"
  -- A run of this job killed with -9 left its sockets here; the job's
  -- lock says no process uses them now.
  sp.remove_tree(dir)
  if #dir + 4 > MUX_PATH_MAX or dir:find("%s") or
      not sp.mkdir(dir, tonumber("700", 8)) then
    local tmp = os.getenv("TMPDIR") or "/tmp"
    dir = sp.mkdtemp(tmp .. "/syncplan-XXXXXX")
    if not dir or #dir + 4 > MUX_PATH_MAX or dir:find("%s") then return nil end
    self.sock_tmp = dir
  end
  self.sock_dir = dir
  return dir
end

-- The host a slot's connection goes to: its run_on or dest host (round
-- robin over the list), else the remote endpoint's.
function Job:slot_host(slot)
  local hosts = self.cfg.hosts or {}
  local list = hosts.run_on or hosts.dest
  if list and slot >= 1 then return list[(slot - 1) % #list + 1] end
  local r = remote_of(self)
  return r and r.host
end

function Job:setup_transport()
  local remote = remote_of(self)
  local hosts = self.cfg.hosts
  if self.tool == "rsync" and not (remote or hosts) and self.bw:capped() and
      not self.cfg.dry_run then
    return self:setup_local_tunnel()
  end
  if self.tool ~= "rsync" or not (remote or hosts) then return end
  self.sessions, self.connecting, self.conn_fails = {}, {}, {}
  self.conn_cond = sp.condition()
  self.multi_host = hosts ~= nil
  if hosts and hosts.run_on then
    self.run_on = true -- sessions for the chunks' workers, no tunnel
    return
  end
  local rsh = user_rsh(self.cfg)
  local prog = sp.program()
  if self.cfg.ssh_transport ~= "system" and not rsh and prog then
    local dir = self:socket_dir()
    local t, err = dir and sp.tunnel(dir .. "/t")
    if t then
      self.tun, self.tun_rsh = t, prog .. " tunnel " .. dir .. "/t "
      -- One bucket for every byte the workers send or receive, instead
      -- of a share per rsync (which idles when a worker does).
      self.bw:use_tunnel(t)
      return
    end
    self:warn("no tunnel (%s): using the ssh program",
      err or "no private socket directory")
  end
  self.sessions = nil
  rsh = rsh or own_ssh(self.cfg)
  local words = split_words(rsh)
  -- Only OpenSSH takes these options; a user who set up sharing keeps it.
  if not words[1] or words[1]:match("[^/]*$") ~= "ssh" or
      rsh:find("Control", 1, true) then
    return
  end
  local dir = self:socket_dir()
  if not dir then return end
  self.mux, self.mux_base, self.mux_host = dir, rsh, remote.host
end

-- A local copy under a cap: each chunk's rsync sends to a receiver that
-- the job runs itself (`rsync -e "syncplan tunnel ..." SRC localhost:DST`,
-- the tunnel with local commands), so its stream crosses the job's one
-- bucket: the cap holds over all workers and changes at once, where a
-- local rsync's own --bwlimit is per process and fixed for its life.
-- Without a tunnel (no syncplan program to run, no private directory)
-- each rsync gets a share.
function Job:setup_local_tunnel()
  local prog = sp.program()
  local dir = prog and self:socket_dir()
  local t, err = dir and sp.tunnel(dir .. "/t", { local_commands = true })
  if not t then
    self:warn("no tunnel (%s): each rsync gets a share of the bandwidth",
      err or "no private socket directory")
    return
  end
  self.tun, self.tun_local = t, true
  self.tun_rsh = prog .. " tunnel " .. dir .. "/t "
  self.bw:use_tunnel(t)
end

-- The slot's session, connected (or connected again) if need be; in a
-- task.  Returns true, or false, message, code.  A host key or key that
-- is refused stops the job: no retry can mend it.
function Job:ensure_session(slot)
  while self.connecting[slot] do self.conn_cond:wait() end
  local s = self.sessions[slot]
  if s and s:alive() then return true end
  if self.stopping then return false, "stopped", "ECANCELED" end
  self.connecting[slot] = true
  if s then
    if self.tun then self.tun:set(slot, nil) end
    s:close()
    self.sessions[slot] = nil
  end
  local host = self:slot_host(slot)
  local user, name = host:match("^(.*)@([^@]+)$")
  local opts = { host = name or host, user = user,
    config = self.cfg.ssh_config, accept_new_host = self.cfg.accept_new_host,
    port = self.cfg.ssh_port,
    identity_files = self.cfg.ssh_key and { self.cfg.ssh_key } }
  local err, code
  s, err, code = sp.ssh(opts)
  self.connecting[slot] = nil
  self.conn_cond:notify()
  if not s then
    if code == "EHOSTKEY" or code == "EAUTH" or code == "ENOENT" or
        code == "EINVAL" then
      self.fatal_connect = self.fatal_connect or err
      self:halt("connect")
    end
    return false, err, code
  end
  if self.stopping then
    s:close()
    return false, "stopped", "ECANCELED"
  end
  self.sessions[slot] = s
  if self.tun then self.tun:set(slot, s) end
  return true
end

-- The rsh for a slot's rsync (in a task: the slot's connection is made
-- first when it is a tunnel).
function Job:rsh(slot)
  if self.tun then
    if not self.tun_local then self:ensure_session(slot) end
    return self.tun_rsh .. slot
  end
  if not self.mux then
    return self.cfg.ssh or ((self.cfg.ssh_port or self.cfg.ssh_key) and
      own_ssh(self.cfg)) or nil
  end
  return string.format(
    "%s -o ControlMaster=auto -o ControlPath=%s/s%d -o ControlPersist=%d",
    self.mux_base, self.mux, slot, MUX_PERSIST)
end

function Job:rsh_argv(slot)
  return split_words(self:rsh(slot) or user_rsh(self.cfg) or
    own_ssh(self.cfg))
end

-- Open slot's connection ahead of its first chunk, while the destination
-- is prepared; a failure here shows up again, and is reported, in the
-- chunk (or stops the job, see ensure_session).
function Job:warm(slot)
  if self.sessions then
    self:ensure_session(slot)
    return
  end
  local argv = self:rsh_argv(slot)
  append(argv, { self.mux_host, "true" })
  local w = sp.worker { argv = argv, watchdog = self.cfg.watchdog,
    log = string.format("%s/ssh-%d.log", self.logdir, slot), grace = 2 }
  if not w then return end
  self.warm_workers[slot] = w
  w:wait()
  self.warm_workers[slot] = nil
end

function Job:close_transport()
  if self.tun then
    self.tun_bytes = { self.tun:bytes() }
    self.tun:close()
    self.tun = nil
  end
  for slot, s in pairs(self.sessions or {}) do
    s:close()
    self.sessions[slot] = nil
  end
  if self.mux then
    local tasks = {}
    for slot = 0, self.workers do
      if sp.file_type(string.format("%s/s%d", self.mux, slot)) then
        tasks[#tasks + 1] = sp.spawn(function()
          local argv = self:rsh_argv(slot)
          append(argv, { "-O", "exit", self.mux_host })
          local w = sp.worker { argv = argv, grace = 2, watchdog = 30 }
          if w then w:wait() end
        end)
      end
    end
    for _, t in ipairs(tasks) do t:join() end
    self.mux = nil
  end
  if self.sock_tmp then
    os.remove(self.sock_tmp)
    self.sock_tmp = nil
  end
  self.sock_dir = nil
end

---------------------------------------------------------------------------
-- The job.

local function now() return sp.time() end

function Job:log_path(index)
  return string.format("%s/chunk-%d.log", self.logdir, index)
end

function Job:record(ch)
  self.journal:chunk_update(self.id, {
    index = ch.index, state = ch.state, attempts = ch.attempts,
    exit_code = ch.exit_code or -1, term_signal = ch.signal or 0,
    host = ch.host or "", error = ch.error or "", started = ch.started or 0,
    finished = ch.finished or 0 })
end

function Job:emit(event, fields)
  if not self.json then return end
  fields.event = event
  fields.job = self.id
  fields.time = now()
  io.stdout:write(plan.json(fields), "\n")
  io.stdout:flush()
end

-- Progress over all chunks: done chunks count their planned bytes, a
-- running one what its tool reported (never more than planned).
function Job:totals()
  local bytes, files = self.done_bytes, self.done_files
  for _, ch in pairs(self.running) do
    local p = ch.worker and ch.worker:progress()
    if p then
      bytes = bytes + math.min(p.bytes, ch.bytes)
      files = files + math.min(p.checked, ch.files)
    end
  end
  return bytes, files
end

local human, hms = progress.human, progress.hms

function Job:status()
  local bytes, files = self:totals()
  local elapsed = sp.clock() - self.t0
  local rate = elapsed > 0 and (bytes - self.bytes0) / elapsed or 0
  local total = self.total_bytes
  local eta = (self.scan_done and rate > 0) and (total - bytes) / rate or nil
  local active = 0
  for _ in pairs(self.running) do active = active + 1 end
  return {
    bytes = bytes, total_bytes = total, files = files,
    total_files = self.total_files, rate = rate, eta = eta,
    active = active, retries = self.retries, chunks_done = self.chunks_done,
    chunks = self.chunks_known, scan_done = self.scan_done,
    failed = #self.failed, elapsed = elapsed,
  }
end

-- The job's state as `syncplan status --json` shows it: Scow-Sync's
-- fields, rclone's core/stats fields, then ours (workers, cap, chunks).
function Job:status_json()
  local st = self:status()
  local null = plan.null
  local transferring = plan.array()
  for idx, ch in pairs(self.running) do
    local p = ch.worker and ch.worker:progress()
    local b = p and math.min(p.bytes, ch.bytes) or 0
    local rate = p and p.rate or 0
    transferring[#transferring + 1] = { name = "chunk " .. idx, chunk = idx,
      slot = ch.slot, host = ch.host or self:slot_host(ch.slot or 0) or
      "localhost", attempt = ch.attempts, bytes = b, size = ch.bytes,
      files = ch.files,
      percentage = ch.bytes > 0 and 100 * b // ch.bytes or 100,
      speed = rate, eta = rate > 0 and (ch.bytes - b) / rate or null }
  end
  table.sort(transferring, function(a, b) return a.chunk < b.chunk end)
  local workers = plan.array()
  for i = 1, self.workers do
    local s = self.slot_info[i] or { state = "idle" }
    workers[i] = { slot = i, state = s.state, chunk = s.chunk or null,
      attempt = s.attempt or null,
      host = self:slot_host(i) or "localhost" }
  end
  local pct = st.total_bytes > 0 and 100 * st.bytes / st.total_bytes or
      (st.scan_done and 100 or 0)
  local eta = st.eta or null
  return {
    job = self.id, state = "running", pid = sp.getpid(),
    plan = self.cfg._file or null, name = self.cfg.name or null,
    source = self.cfg.source,
    dest = self.cfg.dest, started = self.started, finished = null,
    elapsed = st.elapsed,
    stopping = self.stopping or self.draining or null,
    -- Scow-Sync
    recvAddress = jobs.recv_address(self.dst), filePath = self.cfg.source,
    transferSize = st.total_bytes, progress = pct, speed = st.rate,
    leftTime = eta,
    -- rclone core/stats
    bytes = st.bytes, totalBytes = st.total_bytes, transfers = st.files,
    errors = st.failed, eta = eta, elapsedTime = st.elapsed,
    checks = self.cmp and self.cmp.unchanged or 0,
    transferring = transferring,
    -- ours
    workers = workers, bwlimit = self.bw:rate() or null,
    chunks = self.chunks_known, chunks_done = self.chunks_done,
    chunks_failed = st.failed, retries = self.retries, files = st.files,
    total_files = self.total_files, scan_done = self.scan_done or false,
    tool = self.tool,
  }
end

function Job:tick()
  if self.json then
    local st = self:status()
    if st.eta == nil then st.eta = plan.null end
    self:emit("progress", st)
  elseif self.bar then
    self.bar:draw(self:status_json())
  end
end

function Job:clear_line()
  if self.bar then self.bar:clear() end
end

-- Messages of the job: to its log, and warnings and errors to the
-- terminal (Job.log, see log.lua).
function Job:warn(fmt, ...) self.log:log("warn", fmt, ...) end
function Job:info(fmt, ...) self.log:log("info", fmt, ...) end
function Job:debug(fmt, ...) self.log:log("debug", fmt, ...) end
function Job:error(fmt, ...) self.log:log("error", fmt, ...) end

-- The lines a user waits for (the job's id, its summary): in the log at
-- info, and on the terminal whatever the level.
function Job:note(fmt, ...)
  local msg = string.format(fmt, ...)
  self.log:write("info", msg)
  if self.log.stderr and not self.log.verbose then
    self:clear_line()
    io.stderr:write("syncplan: ", msg, "\n")
  end
end

-- How many workers will run together (with one about to start if
-- starting): those running, and one for each chunk waiting, or every
-- slot while chunks may still come.
function Job:bw_expected(starting)
  local n = self.bw.nactive + (starting and 1 or 0) + #self.queue
  if not self.feeding_done then n = self.workers end
  return math.max(math.min(n, self.workers), 1)
end

-- Run one attempt of a chunk; returns the worker's result table.
function Job:attempt(ch, slot)
  local tok, terr = self:temp_dir()
  if not tok then
    return { status = 255, signal = 0, error = terr, elapsed = 0 }
  end
  local opts = {
    input = ch.data, log = self:log_path(ch.index),
    watchdog = self.cfg.watchdog, grace = 10,
  }
  local rc -- an rclone's remote control, for its bandwidth share
  if self.run_on then
    -- On the slot's host, the list on stdin (the hosts see the same
    -- paths).
    local ok, err = self:ensure_session(slot)
    if not ok then
      return { status = 255, signal = 0, error = err, elapsed = 0 }
    end
    opts.ssh = self.sessions[slot]
    opts.argv = rsync_chunk_argv(self, slot)
    opts.progress = "rsync"
  elseif self.tool == "rsync" then
    local argv = rsync_chunk_args_argv(self, slot, ch.data)
    if argv then opts.input = nil end
    opts.argv = argv or rsync_chunk_argv(self, slot)
    opts.progress = "rsync"
  else
    local list = string.format("%s/chunk-%d.list", self.logdir, ch.index)
    local f = assert(io.open(list, "wb"))
    f:write(ch.rclone_list)
    f:close()
    local limit = self.bw:rclone_opts(self:bw_expected(true))
    opts.argv = append(rclone_common(self, true), limit and limit.args)
    append(opts.argv, { "copy", "--files-from-raw", list, "--",
      spec(self.src), spec(self.dst) })
    opts.env, rc = limit and limit.env, limit and limit.rc
    opts.progress = "rclone"
  end
  opts.log_limit = self.chunk_log_cap
  if self.log:enabled("debug") then
    local cmd = table.concat(opts.argv, " ")
    if #cmd > 4096 then cmd = cmd:sub(1, 4096) .. " ..." end
    self:debug("chunk %d: %s%s", ch.index, opts.ssh and ("on " ..
      self:slot_host(slot) .. ": ") or "", cmd)
  end
  local w, err, code = sp.worker(opts)
  if not w then
    if opts.ssh and code == "ECONNECT" then -- the host went away
      return { status = 255, signal = 0, error = err, elapsed = 0 }
    end
    return { status = -1, signal = 0, error = err, start_failed = true }
  end
  ch.worker = w
  self.bw:enter(ch, rc)
  local r = w:wait()
  self.bw:leave(ch)
  ch.worker = nil
  return r
end

function Job:run_chunk(ch, slot)
  local policy = self.policy
  while true do
    ch.attempts = ch.attempts + 1
    ch.state, ch.started, ch.finished = "running", now(), 0
    ch.host = self.multi_host and self:slot_host(slot) or nil
    ch.slot = slot
    local info = self.slot_info[slot]
    if info then
      info.state, info.chunk, info.attempt = "running", ch.index, ch.attempts
    end
    self.running[ch.index] = ch
    self:record(ch)
    self:info("chunk %d: attempt %d on slot %d%s: %d files, %s", ch.index,
      ch.attempts, slot, ch.host and (" (" .. ch.host .. ")") or "",
      ch.files, human(ch.bytes))
    self:emit("chunk_start", { chunk = ch.index, attempt = ch.attempts,
      files = ch.files, bytes = ch.bytes })
    self.sent = self.sent + 1
    local r = self:attempt(ch, slot)
    self.running[ch.index] = nil
    ch.exit_code, ch.signal, ch.error = r.status, r.signal, r.error
    local outcome
    if r.start_failed then
      outcome = "permanent"
    elseif self.stopping then
      outcome = "stopped"
    else
      outcome = sp.classify(self.tool, r.status, r.signal, r.stopped,
        r.timed_out)
    end
    if r.timed_out then
      ch.error = string.format("no output for %s: stopped by the watchdog",
        hms(self.cfg.watchdog))
    end
    if outcome == "ok" or outcome == "vanished" then
      ch.state, ch.finished = "done", now()
      if outcome == "vanished" then
        self:warn("chunk %d: some files vanished during the transfer",
          ch.index)
      end
      self.done_bytes = self.done_bytes + ch.bytes
      self.done_files = self.done_files + ch.files
      self.chunks_done = self.chunks_done + 1
      self:record(ch)
      self:info("chunk %d: done in %.1fs", ch.index, r.elapsed or 0)
      self:emit("chunk_done", { chunk = ch.index, attempts = ch.attempts,
        files = ch.files, bytes = ch.bytes, elapsed = r.elapsed })
      if self.cfg.on_chunk_done then
        self.cfg.on_chunk_done({ index = ch.index, files = ch.files,
          bytes = ch.bytes, attempts = ch.attempts, elapsed = r.elapsed,
          job = self.id, log = self:log_path(ch.index) })
      end
      return
    end
    if outcome == "stopped" then
      ch.state = "pending"
      self:record(ch)
      self:info("chunk %d: stopped, left for a resume", ch.index)
      return
    end
    if self.multi_host and not self:slot_alive(slot) then
      -- Its host stopped answering: another slot's host takes the chunk,
      -- and the attempt does not count; this slot waits for its host.
      ch.state, ch.base = "pending", ch.base + 1
      self:record(ch)
      self:warn("chunk %d: host %s stopped answering (%s); chunk re-queued",
        ch.index, ch.host, ch.error ~= "" and ch.error or "connection lost")
      self:emit("chunk_requeued", { chunk = ch.index, host = ch.host,
        error = ch.error })
      self.requeued = self.requeued + 1
      self.queue[#self.queue + 1] = ch
      self.cond:notify()
      return
    end
    local why = r.signal ~= 0 and ("killed by signal " .. r.signal) or
        sp.exit_text(self.tool, r.status)
    if outcome == "permanent" or
        ch.attempts - ch.base >= policy.attempts then
      ch.state, ch.finished = "failed", now()
      self:record(ch)
      self.failed[#self.failed + 1] = ch
      self:warn("chunk %d failed after %d attempt%s (%s): %s", ch.index,
        ch.attempts, ch.attempts == 1 and "" or "s", why,
        ch.error ~= "" and ch.error or "no error output")
      self:emit("chunk_failed", { chunk = ch.index, attempts = ch.attempts,
        exit_code = r.status, signal = r.signal, error = ch.error })
      return
    end
    local delay = policy:delay(ch.attempts + 1)
    self.retries = self.retries + 1
    ch.state = "pending"
    self:record(ch)
    self:warn("chunk %d: attempt %d failed (%s), retrying in %.1fs",
      ch.index, ch.attempts, why, delay)
    self:emit("chunk_retry", { chunk = ch.index, attempt = ch.attempts,
      exit_code = r.status, signal = r.signal, delay = delay })
    -- A stop request wakes the wait early.
    if info then info.state = "waiting" end
    self.wake:wait(delay)
    if self.stopping or self.draining then return end
  end
end

-- Feeding chunks to slots: the queue holds at most four chunks per slot
-- so a streaming producer is throttled by the transfers, yet slots have
-- a choice (see pop).
function Job:push(ch)
  self.first_queued = self.first_queued or sp.clock()
  self.queue[#self.queue + 1] = ch
  self.chunks_known = self.chunks_known + 1
  self.cond:notify()
end

-- A chunk's expected cost, in bytes: a file costs rsync about as much as
-- 32 KiB of data whatever its size (a round trip or two on a WAN link, a
-- few system calls and a process switch locally), so 2000 small files
-- weigh more than one 32 MiB file.  Ordering by bytes alone ran the big
-- files first and left the small-file chunks, which are bound by latency
-- rather than by bandwidth, to a tail with idle slots.
local PER_FILE_COST = 32 * 1024
local function cost(ch) return ch.bytes + ch.files * PER_FILE_COST end

-- The first wave: every slot is free at once, so what they take then
-- matters most, and a producer hands chunks out in the order it finds
-- them (a remote listing may well begin with the directory of big
-- files, which would then fill every slot).  Until two chunks per slot
-- are queued, the producer is done, or FIRST_WAVE_WAIT seconds have gone
-- by since the first chunk came, slots wait so that pop has a choice.
local FIRST_WAVE_WAIT = 0.3

function Job:first_wave_wait()
  if self.first_wave_done then return 0 end
  local left = FIRST_WAVE_WAIT - (sp.clock() - self.first_queued)
  if self.feeding_done or #self.queue >= 2 * self.workers or left <= 0 then
    self.first_wave_done = true
    return 0
  end
  return left
end

function Job:pop()
  while true do
    if self.stopping or self.draining then return nil end
    local wait = #self.queue > 0 and self:first_wave_wait() or 0
    if wait > 0 then
      self.cond:wait(wait)
    elseif #self.queue > 0 then
      -- The costliest waiting chunk first: the cheap ones then fill the
      -- tail, where a costly one would keep one slot busy alone.
      local best = 1
      for i = 2, #self.queue do
        if cost(self.queue[i]) > cost(self.queue[best]) then best = i end
      end
      local ch = table.remove(self.queue, best)
      self.cond:notify()
      return ch
    elseif self.feeding_done then
      return nil
    else
      self.cond:wait()
    end
  end
end

function Job:slot_alive(slot)
  local s = self.sessions and self.sessions[slot]
  return s ~= nil and s:alive()
end

-- With several hosts, a slot whose host does not answer waits for it,
-- retrying with the job's backoff while there is work, and gives up
-- after the job's attempts; the other slots carry on.  False: the slot
-- is done.
function Job:host_ready(slot)
  local fails = 0
  while true do
    if self.stopping or self.draining or
        (#self.queue == 0 and self.feeding_done) then
      return false
    end
    if self:slot_alive(slot) then return true end
    local ok, err = self:ensure_session(slot)
    if ok then
      if fails > 0 then
        self:warn("slot %d: host %s answers again", slot, self:slot_host(slot))
      end
      return true
    end
    fails = fails + 1
    if fails >= self.policy.attempts or self.fatal_connect then
      self:warn("slot %d: giving up on host %s: %s", slot,
        self:slot_host(slot), err)
      return false
    end
    self.wake:wait(self.policy:delay(fails + 1))
  end
end

function Job:slot(i)
  local info = { state = "connecting" }
  self.slot_info[i] = info
  if self.warming[i] then self.warming[i]:join() end
  while not self.root_done do self.root_cond:wait() end
  while true do
    if self.multi_host then
      info.state = "connecting"
      if not self:host_ready(i) then break end
    end
    info.state, info.chunk, info.attempt = "idle", nil, nil
    local ch = self:pop()
    if not ch then break end
    self:run_chunk(ch, i)
  end
  info.state, info.chunk, info.attempt = "done", nil, nil
  self.slots_left = self.slots_left - 1
  self.cond:notify()
end

function Job:rclone_list(data)
  -- rclone's --files-from-raw is line-based: a name with a newline
  -- cannot be expressed, so it is reported instead of silently lost.
  local lines, bad = {}, 0
  for p in data:gmatch("([^%z]*)%z") do
    if p:find("\n", 1, true) then
      bad = bad + 1
    else
      lines[#lines + 1] = p
    end
  end
  self.skipped = self.skipped + bad
  return table.concat(lines, "\n") .. "\n"
end

function Job:new_chunk(index, data, files, bytes)
  local ch = { index = index, data = data, files = files, bytes = bytes,
    attempts = 0, base = 0, state = "pending" }
  if self.tool == "rclone" then ch.rclone_list = self:rclone_list(data) end
  return ch
end

-- The producer side: take chunks as they are made, journal them, queue
-- them.  Directories are also kept for the final pass.
function Job:feed_from_producer(base)
  local p = self.producer
  local dirs, seen = {}, {}
  while true do
    while #self.queue >= 4 * self.workers and not self.stopping do
      self.cond:wait()
    end
    if self.stopping then break end
    local c, err = p:next()
    if not c then
      if err then
        self.scan_error = err
      end
      break
    end
    if c.files == 0 then
      -- Count mode deals out its chunks even when the quick check left
      -- nothing to send.
      c:free()
      goto continue
    end
    local data = c:data()
    local index = base + c.index
    self.journal:chunk_add(self.id, index, data, c.files, c.bytes)
    for d in c:dirs("\0"):gmatch("([^%z]*)%z") do
      if not seen[d] then
        seen[d] = true
        dirs[#dirs + 1] = d
      end
    end
    self.total_bytes = self.total_bytes + c.bytes
    self.total_files = self.total_files + c.files
    self:push(self:new_chunk(index, data, c.files, c.bytes))
    c:free()
    ::continue::
  end
  local st = p:stats()
  self.scan_errors = st.errors
  self.dirs_unwritable = st.dirs_unwritable
  self.cmp = st.compared and st or nil
  if not self.stopping and not self.scan_error then
    -- Chunk 0 is the final pass; its list is every directory a chunk
    -- may change, so that their times can be set once all chunks are in.
    self.journal:begin()
    local list = #dirs > 0 and table.concat(dirs, "\0") .. "\0" or ""
    -- (no files of its own: the run's totals count the data chunks')
    self.journal:chunk_add(self.id, 0, list, 0, 0)
    self.journal:run_set_scan_complete(self.id, true)
    self.journal:commit()
    self.scan_done = true
  end
  if self.keep_dir_times and self.scan_done then
    self.times_from = p -- closed after the final pass
  else
    p:close()
  end
  self.feeding_done = true
  self.cond:notify()
end

-- Listing a remote tree: GNU find's records (see the producer), the
-- listed directory itself included so its attributes can be compared.
-- The trailing slash follows a symlinked root, as rsync does.
local FIND_FORMAT = "%y %m %s %T@ %D %i %n %U %G %P\\0%l\\0"

-- A remote endpoint's path as a word for the remote shell's commands:
-- "" is the login directory, and a leading "-" must not read as an option.
local function remote_word(ep)
  local path = ep.path == "" and "." or ep.path
  if path:sub(1, 1) == "-" then path = "./" .. path end
  return path
end

function Job:listing_argv(ep, missing_ok)
  local argv = self:rsh_argv(0)
  local path = shq(with_slash(remote_word(ep)))
  local cmd = "find " .. path .. " -mindepth 0 -printf " .. shq(FIND_FORMAT)
  -- A destination not made yet is an empty one.
  if missing_ok then cmd = "test -d " .. path .. " || exit 0; " .. cmd end
  argv[#argv + 1] = ep.host
  argv[#argv + 1] = cmd
  return argv
end

-- rsync options under which rsync may send an entry that looks the same
-- by size, time, mode, owner and link target: with them every name goes
-- to rsync, as without the quick check.
local SEND_ANYWAY = {
  ["--checksum"] = true, ["--ignore-times"] = true, ["--acls"] = true,
  ["--xattrs"] = true, ["--fake-super"] = true, ["--atimes"] = true,
  ["--crtimes"] = true, ["--remove-source-files"] = true,
  ["--copy-devices"] = true, ["--write-devices"] = true,
  ["--link-dest"] = true, ["--copy-dest"] = true, ["--compare-dest"] = true,
}
local SEND_ANYWAY_SHORT = "cIAXUN"

-- The first of the plan's rsync options that is in `long` (by name, any
-- "=value" aside) or a short-option group with one of the letters of
-- `short`; nil if none is.
local function rsync_opt_among(cfg, long, short)
  for _, o in ipairs(cfg.rsync_opts or {}) do
    local name = o:match("^(%-%-[^=]+)")
    if name and long[name] then return o end
    local letters = short ~= "" and o:match("^%-(%a+)$")
    if letters and letters:find("[" .. short .. "]") then return o end
  end
end

-- Whether the producer may drop entries already identical at the
-- destination (rsync -a's quick check, done before rsync runs), and if
-- not, why.
function Job:quick_check()
  local cfg = self.cfg
  if self.tool ~= "rsync" then return false, "tool" end
  if cfg.skip_unchanged == false then return false, "plan" end
  local o = rsync_opt_among(cfg, SEND_ANYWAY, SEND_ANYWAY_SHORT)
  if o then return false, o end
  return true
end

-- rsync options under which rsync's final pass would do more to a
-- directory than set its time, or nothing at all: with them a pull keeps
-- that pass instead of setting the times itself.
local DIR_TIMES_UNSAFE = {
  ["--omit-dir-times"] = true, ["--no-times"] = true, ["--no-t"] = true,
  ["--chmod"] = true, ["--no-perms"] = true, ["--no-p"] = true,
  ["--acls"] = true, ["--xattrs"] = true, ["--super"] = true,
  ["--fake-super"] = true, ["--chown"] = true, ["--usermap"] = true,
  ["--groupmap"] = true, ["--dry-run"] = true, ["--list-only"] = true,
  ["--only-write-batch"] = true,
}
local DIR_TIMES_UNSAFE_SHORT = "OAXn"

-- Whether the chunks left every directory's mode as in the source (see
-- chunk_base): they did not change one, or the crawl or listing of this
-- run found no directory without the owner's write bit.
function Job:fast_final_ok()
  return not self.guard_dirs or self.dirs_unwritable == 0
end

-- What the pull's and the local source's shortcuts both need: an rsync
-- run that changes things, with no option that makes rsync's final pass
-- do more to a directory than set its time.
function Job:dir_times_ours()
  return self.tool == "rsync" and not self.cfg.dry_run and
      not rsync_opt_among(self.cfg, DIR_TIMES_UNSAFE, DIR_TIMES_UNSAFE_SHORT)
end

-- From a local source, the chunks leave every directory but the root as
-- in the source.  A chunk's rsync sets, at its end, the time of every
-- directory in its list, implied ones included (-R sends the parents of
-- every name), and a chunk that writes into a directory has it in its
-- list: so the last chunk to write into a directory leaves its time
-- right.  The root is in no list, and may have been made by mkdir -p.
-- Without a deletion pass and options that make rsync treat directories
-- otherwise (or send no parents), the final pass is then the root's
-- alone; see set_root_time.
function Job:root_only()
  return self.src.kind == "local" and self:dir_times_ours() and
      not rsync_opt_among(self.cfg, { ["--no-implied-dirs"] = true }, "")
end

-- The root's time, when its permission bits, group and (as root, where
-- rsync keeps it) owner are the source root's already; otherwise false,
-- and rsync's final pass does the rest.  Over ssh, one command on the
-- slot 1 connection (GNU stat and touch; any failure means the rsync
-- pass) instead of an rsync run's eight round trips.
function Job:set_root_time()
  local s = sp.stat(self.src.path)
  if not s or s.type ~= "dir" or s.mtime < 0 then return false end
  if self.dst.kind == "local" then
    local d = sp.stat(self.dst.path)
    if not d or d.type ~= "dir" or d.perms ~= s.perms or d.gid ~= s.gid or
        (sp.geteuid() == 0 and d.uid ~= s.uid) or
        not sp.set_mtime(self.dst.path, s.mtime, s.mtime_nsec) then
      return false
    end
  else
    local script = string.format('r=%s; a=$(stat -L -c "%%a %%u %%g" -- "$r")'
      .. ' || exit 3; set -- $a; [ "$1" = %o ] && [ "$3" = %d ] &&'
      .. ' { [ "$2" = %d ] || [ "$(id -u)" != 0 ]; } || exit 3;'
      .. ' exec touch -m -d @%d.%09d -- "$r"',
      shq(remote_word(self.dst)), s.perms, s.gid, s.uid, s.mtime,
      s.mtime_nsec)
    local argv = self:rsh_argv(1)
    append(argv, { self.dst.host, "sh -c " .. shq(script) })
    if not self:run_pass("root-time", argv) then return false end
  end
  self.dir_times_set = 1
  return true
end

-- Whether a pull may end by setting directory times from the listing
-- (no rsync run over the link) rather than by the final rsync pass.
function Job:local_dir_times()
  return self.src.kind == "ssh" and self.dst.kind == "local" and
      self:dir_times_ours()
end

function Job:start_producer()
  local cfg = self.cfg
  local o = plan.scan_opts(cfg)
  o.chunks, o.max_queued = cfg.chunks, 2
  if self.src.kind == "local" then
    o.root = self.src.path
  else
    o.list_argv = self:listing_argv(self.src, false)
  end
  o.keep_dir_times = self:local_dir_times()
  if self:quick_check() then
    if self.dst.kind == "local" then
      o.dest_root = self.dst.path
    else
      o.dest_list_argv = self:listing_argv(self.dst, true)
    end
    -- rsync keeps owners only as root; elsewhere a differing owner would
    -- send the entry on every run, harmless but slow.
    o.check_uid = self.dst.kind ~= "local" or sp.geteuid() == 0
    o.check_gid = true
  end
  local p, err, code = sp.producer(o)
  if not p then return nil, err, code end
  self.producer = p
  self.keep_dir_times = o.keep_dir_times
  return true
end

-- A small command run to completion (root pass, final pass).
function Job:run_pass(name, argv, input)
  local w, err = sp.worker { argv = argv, input = input,
    log = string.format("%s/%s.log", self.logdir, name),
    progress = self.tool == "rsync" and "rsync" or "rclone",
    watchdog = self.cfg.watchdog, grace = 10 }
  if not w then return false, err end
  self.pass_worker = w
  local r = w:wait()
  self.pass_worker = nil
  local outcome = sp.classify(self.tool, r.status, r.signal, r.stopped,
    r.timed_out)
  if outcome == "ok" or outcome == "vanished" then return true end
  local why = r.signal ~= 0 and ("killed by signal " .. r.signal) or
      sp.exit_text(self.tool, r.status)
  return false, string.format("%s (%s): %s", name, why, r.error), outcome
end

-- Create the destination (and its parents) before any chunk runs:
-- parallel rsyncs that each find it missing race to make it, and the
-- losers fail.  Not needed when it is a local directory already.
function Job:root_pass()
  if self.tool == "rclone" then
    if self.cfg.dry_run then return true end
    return self:run_pass("root", append(rclone_common(self),
      { "mkdir", "--", spec(self.dst) }))
  end
  if self.dst.kind == "local" and sp.file_type(self.dst.path) == "dir" then
    return true
  end
  if self.dst.kind == "local" and not self.cfg.dry_run then
    -- Made here, as mkdir -p would; an rsync --mkpath pass from a remote
    -- source would cost a whole protocol run over the link first.  The
    -- final pass sets its attributes.
    local ok, err = sp.mkdir(self.dst.path, tonumber("777", 8), true)
    if ok and sp.file_type(self.dst.path) ~= "dir" then
      ok, err = false, "exists and is not a directory"
    end
    if not ok then
      return false, string.format("root: cannot make %s: %s", self.dst.path,
        err)
    end
    return true
  end
  if self.dst.kind == "ssh" and not self.cfg.dry_run then
    -- One command on the remote shell costs no rsync protocol round
    -- trips; the final pass sets the directory's attributes (a new one
    -- differs from the source's).
    local argv = self:rsh_argv(1)
    append(argv, { self.dst.host, "mkdir -p " .. shq(remote_word(self.dst)) })
    return self:run_pass("root", argv)
  end
  local a = rsync_base(self, 1)
  append(a, { "--mkpath", "--exclude=*", "--", spec(self.src),
    spec(self.dst) })
  return self:run_pass("root", a)
end

-- After every chunk: deletions (never per chunk: a chunk does not know
-- its siblings), then directory attributes.
function Job:final_pass()
  local cfg = self.cfg
  if self.tool == "rclone" then
    local a = rclone_common(self)
    append(a, { cfg.delete and "sync" or "copy", "--create-empty-src-dirs" })
    append(a, filter_args(cfg))
    append(a, { "--", spec(self.src), spec(self.dst) })
    return self:run_pass("final", a)
  end
  local cmp = self.cmp
  local deleted = false
  if cfg.delete and (not cmp or cmp.extraneous > 0 or cmp.dest_errors > 0) then
    -- Walks both trees but sends nothing: --existing skips new names,
    -- --ignore-existing skips known ones, so only deletions remain.  The
    -- plan's filters protect excluded destination files, as in rsync.
    local a = rsync_base(self, 1)
    append(a, { "--delete", "--existing", "--ignore-existing" })
    append(a, filter_args(cfg))
    append(a, { "--", spec(self.src), spec(self.dst) })
    local ok, err, outcome = self:run_pass("delete", a)
    if not ok then return ok, err, outcome end
    deleted = true
  end
  -- Nothing sent, nothing deleted, the root as in the source: every
  -- directory is as the chunks (or an earlier run) left it.
  if cmp and not self.force_final and self.sent == 0 and not deleted and
      not cmp.root_changed then
    return true
  end
  if not deleted and self:fast_final_ok() and self:root_only() then
    if self:set_root_time() then return true end
    if self.stopping then return false, "stopped" end
  end
  -- The directories the chunks wrote into, now that none does: modes and
  -- times as in the source.  The root goes in the same pass: "." in a
  -- --files-from list also brings the root's first level, so the last
  -- two rules keep only its directories (which the plan's own filters,
  -- first, may still exclude).
  local rec = self.journal:chunk_get(self.id, 0)
  local list = (rec and rec.list or "") .. ".\0"
  local tf = self.times_from
  if tf then
    -- A pull: the listing gave every directory's time, so set them here
    -- unless deletions changed other directories, or the chunks left
    -- modes to this pass, or the root differs by more than its time (see
    -- set_dir_times).
    -- rsync -a keeps the owner only as root, the group always.
    self.times_from = nil
    local n = not deleted and self:fast_final_ok() and
        tf:set_dir_times(self.dst.path, list, sp.geteuid() == 0, true)
    tf:close()
    if n then
      self.dir_times_set = n
      return true
    end
  end
  local a = rsync_base(self, 1)
  append(a, filter_args(cfg))
  append(a, { "--include=/*/", "--exclude=/*", "--files-from=-", "--from0",
    "--", spec(self.src), spec(self.dst) })
  return self:run_pass("final", a, list)
end

-- Stop taking chunks; running ones stop (SIGTERM, then SIGKILL).
function Job:halt(reason)
  if self.stopping then return false end
  self.stopping = reason
  for _, ch in pairs(self.running) do
    if ch.worker then ch.worker:stop() end
  end
  if self.pass_worker then self.pass_worker:stop() end
  for _, w in pairs(self.warm_workers) do w:stop() end
  self.cond:notify()
  self.wake:notify()
  self.root_cond:notify()
  return true
end

-- A shell command where the destination is (in its root): here, or on
-- slot 1's connection.  Returns ok, error text.
-- log: a name for the output's file (its lines come back as the third
-- value), else the output goes to dest.log.
function Job:dest_sh(cmd, input, log)
  local argv
  if self.dst.kind == "local" then
    argv = { "sh", "-c", cmd }
  else
    local full = "cd " .. shq(remote_word(self.dst)) .. " && " .. cmd
    if self.tun then
      local ok, err = self:ensure_session(1)
      if not ok then return false, err end
      local r, e = self.sessions[1]:exec(full, input)
      if not r then return false, e end
      return r.status == 0, r.stderr, r.stdout
    end
    argv = self:rsh_argv(1)
    append(argv, { self.dst.host, full })
  end
  local path = self.logdir .. "/" .. (log or "dest") .. ".log"
  if log then os.remove(path) end
  local w, err = sp.worker { argv = argv, input = input, grace = 2,
    watchdog = 60, cwd = self.dst.kind == "local" and self.dst.path or nil,
    log = path }
  if not w then return false, err end
  local r = w:wait()
  local out
  if log then
    local f = io.open(path, "rb")
    out = f and f:read("a")
    if f then f:close() end
  end
  return r.status == 0, r.error, out
end

-- Rename-aware mirroring (mirror.lua): scan the source, pair what moved
-- since the record of the last successful run, and make those moves on
-- the destination before any chunk is listed or sent.  The scan becomes
-- the record when this run succeeds.
function Job:prepare_mirror()
  local cfg = self.cfg
  local new = {}
  local scan, err = sp.scan(self.src.path, plan.scan_opts(cfg))
  if not scan then
    self:warn("renames: cannot scan the source: %s", err)
    return
  end
  for e in scan do new[#new + 1] = e end
  if scan:stats().errors > 0 then
    self:warn("renames: the source could not all be read; no record kept")
  else
    self.mirror_scan = new
  end
  local old = self.journal:record(mirror.key(cfg))
  self:apply_moves(#old > 0 and mirror.moves(old, new) or {})
end

-- Make moves ({ from, to, dir, hash }, see mirror.lua) on the
-- destination, before any chunk: renames found from the record, or a
-- watch batch's renames.  Counted in self.renamed.
function Job:apply_moves(moves)
  self.renamed = 0
  if #moves == 0 or self.cfg.dry_run then
    if #moves > 0 then
      self:warn("renames: %d move(s) found (dry run: none made)", #moves)
    end
    return
  end
  local hashes = {}
  for _, m in ipairs(moves) do
    if m.hash then
      hashes[m.to] = mirror.hash(with_slash(self.src.path) .. m.to,
        self.logdir .. "/hash.log")
    end
  end
  local ok, serr, out = self:dest_sh("sh -s", mirror.script(moves, hashes),
    "renames")
  for _ in (out or ""):gmatch("moved\n") do self.renamed = self.renamed + 1 end
  if not ok then
    self:warn("renames: moving on the destination failed (%s); the "
      .. "transfer sends what did not move", serr or "?")
  end
  self:emit("renames", { found = #moves, moved = self.renamed })
end

-- The job's temporary directory (see chunk_base), made before the first
-- chunk runs, by one task while the others wait.  Not made at all when
-- nothing is sent: the root would change for nothing.
function Job:temp_dir()
  if not self.temp or self.temp_made then return true end
  while self.temp_making do self.temp_cond:wait() end
  if self.temp_made then return true end
  self.temp_making = true
  local ok, err = self:dest_sh("mkdir -p -m 700 -- " .. shq(self.temp))
  self.temp_making = false
  self.temp_cond:notify()
  self.temp_made = ok
  if not ok then
    return false, string.format("cannot make %s in the destination: %s",
      self.temp, err)
  end
  return true
end

-- Remove it, whatever it holds: at the end, and after a stop, when what
-- it holds is the half-written files of the stopped chunks (and of
-- rsyncs killed outright, or of a host that died).  After a stop, twice
-- a second apart: a remote receiver learns of the stop from its closed
-- connection and may still be writing.  A resumed job removes the one
-- its earlier run left.
function Job:remove_temp()
  if not self.temp or not (self.temp_made or self.resumed) then return end
  local rm = "rm -rf -- " .. shq(self.temp)
  local ok, err = self:dest_sh(self.stopping and (rm .. "; sleep 1; " .. rm)
    or rm)
  if ok then
    self.temp_made = false
  else
    self:warn("could not remove %s from the destination: %s", self.temp, err)
  end
end

function Job:stop(reason)
  if self:halt(reason or "stopped") then
    self:warn("stopping (%s): running chunks stop, the job stays resumable",
      self.stopping)
  end
end

-- The job's control socket: <state>/jobs/ID.sock (0600, in a 0700
-- directory), one request line, one reply line:
--   bwlimit RATE   change the job's cap ("off": none); a timetable's
--                  next switch takes over again
--   status         the job's state (JSON)
--   quit | stop    as a first or second SIGTERM
M.control_path = jobs.control_path

function Job:open_control()
  local dir = self.journal:dir() .. "/jobs"
  local ok, err = sp.mkdir(dir, tonumber("700", 8), true)
  local c
  if ok then c, err = sp.control(M.control_path(self.journal:dir(), self.id),
      function(req) return self:control_request(req) end)
  end
  if not c then
    self:warn("no control socket (%s): syncplan bwlimit cannot reach the "
      .. "job", err)
  end
  self.control = c
end

function Job:control_request(req)
  local verb, arg = req:match("^(%S+)%s*(.-)%s*$")
  if verb == "bwlimit" then
    local rate
    if arg ~= "off" and arg ~= "0" then
      rate = sp.parse_size(arg)
      if not rate or rate <= 0 then
        return plan.json { ok = false, error = "invalid rate '" .. arg .. "'" }
      end
    end
    self.bw:set(rate)
    self:warn("bandwidth cap now %s (syncplan bwlimit)",
      rate and (human(rate) .. "/s") or "off")
    return plan.json { ok = true, bwlimit = rate or plan.null }
  elseif verb == "status" then
    local st = self:status_json()
    st.ok = true
    return plan.json(st)
  elseif verb == "quit" or verb == "stop" then
    -- As a first (quit) or second (stop) SIGTERM, which Job:main and a
    -- schedule or watch loop around the job (daemon.lua) both hear, so
    -- that the loop ends too.
    self:info("syncplan stop: %s requested", verb)
    if verb == "stop" and not (self.stopping or self.draining) then
      self:drain("syncplan stop")
    end
    local ok, err = sp.kill(sp.getpid(), "TERM")
    if not ok then return plan.json { ok = false, error = err } end
    return plan.json { ok = true, pid = sp.getpid() }
  end
  return plan.json { ok = false, error = "unknown request '" ..
    (verb or "") .. "'" }
end

-- Safe quit (the first SIGINT or SIGTERM): no chunk starts any more, the
-- running ones finish, and the job ends resumable (exit 3); a second
-- signal stops them at once (Job:stop).  A chunk waiting to be retried
-- waits for the resume.
function Job:drain(reason)
  if self.stopping or self.draining then return self:stop(reason) end
  self.draining = reason
  local n = 0
  for _ in pairs(self.running) do n = n + 1 end
  self:warn("quitting (%s): %d running chunk%s finish%s first, the job "
    .. "stays resumable; again to stop %s now", reason, n,
    n == 1 and "" or "s", n == 1 and "es" or "", n == 1 and "it" or "them")
  self.cond:notify()
  self.wake:notify()
end

function Job:summary(code)
  local st = self:status()
  self:clear_line()
  local msg = jobs.summary { job = self.id, state = code == 0 and "done" or
    code == 3 and "interrupted" or "failed", elapsed = st.elapsed,
    chunks_done = self.chunks_done, chunks = self.chunks_known,
    bytes = st.bytes, files = st.files, retries = self.retries }
  if self.cmp then
    msg = msg .. string.format(", %d unchanged", self.cmp.unchanged)
  end
  -- The one line a piped run prints besides warnings: the outcome.
  self.log:write("info", msg)
  if self.log.stderr then io.stderr:write(msg, "\n") end
  for _, ch in ipairs(self.failed) do
    self:error("failed chunk %d (exit %d%s): %s  [log: %s]", ch.index,
      ch.exit_code or -1, ch.signal ~= 0 and (", signal " .. ch.signal) or "",
      ch.error ~= "" and ch.error or "-", self:log_path(ch.index))
  end
  local tb = self.tun_bytes
  self:emit("finish", { exit_code = code, chunks = self.chunks_known,
    chunks_done = self.chunks_done, failed = #self.failed,
    bytes = st.bytes, files = st.files, retries = self.retries,
    requeued = self.requeued,
    tunnel_sent = tb and tb[1] or plan.null,
    tunnel_received = tb and tb[2] or plan.null,
    ssh_sent = tb and not self.tun_local and tb[1] or plan.null,
    ssh_received = tb and not self.tun_local and tb[2] or plan.null,
    unchanged = self.cmp and self.cmp.unchanged or plan.null,
    renamed = self.renamed or plan.null,
    dir_times_set = self.dir_times_set or plan.null,
    elapsed = st.elapsed })
end

-- The main task of a run.
function Job:main(resume_chunks)
  self.t0 = sp.clock()
  local sigs = {}
  for _, name in ipairs { "INT", "TERM" } do
    sigs[#sigs + 1] = sp.on_signal(name, function()
      self:drain("signal " .. name)
    end)
  end
  local ticker
  if self.bar or self.json then
    ticker = sp.timer(self.json and 1 or 0.25, function() self:tick() end,
      self.json and 1 or 0.25)
  end
  local function finish(code, state)
    for _, s in ipairs(sigs) do s:stop() end
    self.bw:stop()
    if self.control then self.control:close() end
    if self.times_from then
      self.times_from:close()
      self.times_from = nil
    end
    if ticker then ticker:stop() end
    if code == EXIT.ok and self.mirror_scan and not self.cfg.dry_run then
      self.journal:record_put(mirror.key(self.cfg), self.mirror_scan)
    end
    self:close_transport()
    -- The state goes first: whoever finds the lock free then reads the
    -- job's final state (see jobs.state).
    self.journal:run_set_state(self.id, state, code)
    self:summary(code)
    if self.cfg.on_finish then
      self.cfg.on_finish({ job = self.id, exit_code = code, state = state,
        chunks = self.chunks_known, chunks_done = self.chunks_done,
        failed = #self.failed, retries = self.retries })
    end
    self:release()
    return code
  end

  self:setup_transport()
  self:open_control()
  self.bw.expected = function() return self:bw_expected(false) end
  self.bw.on_change = function(rate, why)
    self:emit("bwlimit", { rate = rate or plan.null, reason = why })
  end
  self.bw:start()
  if self.tool == "rclone" and self.bw:capped() then
    self.bw:follow_rclone(function() return (self:totals()) end)
  end
  for _, ch in ipairs(resume_chunks or {}) do
    self.total_bytes = self.total_bytes + ch.bytes
    self.total_files = self.total_files + ch.files
    self:push(ch)
  end
  -- The crawl (and a remote listing), the destination's preparation and
  -- the slots' ssh handshakes all start at once; slots take chunks once
  -- the destination exists.
  if self.cfg.renames then self:prepare_mirror() end
  if self.moves then self:apply_moves(self.moves) end
  local feeder
  if self.need_scan then
    local pok, perr, pcode = self:start_producer()
    if not pok then
      self:warn("%s", perr)
      return finish(pcode == "ENOENT" and EXIT.usage or EXIT.failed, "failed")
    end
    feeder = sp.spawn(function()
      self:feed_from_producer(self.index_base or 0)
    end)
  else
    self.scan_done = true
    self.feeding_done = true
  end
  if self.mux or self.sessions then
    -- Slot 1's connection comes with the root pass on a push.
    for i = self.dst.kind == "ssh" and 2 or 1, self.workers do
      self.warming[i] = sp.spawn(function() self:warm(i) end)
    end
  end
  local root_err, root_outcome
  local root = sp.spawn(function()
    local ok, err, outcome = self:root_pass()
    if not ok then
      root_err, root_outcome = err, outcome
      self:halt("root")
    end
    self.root_done = true
    self.root_cond:notify()
  end)
  local slots = {}
  self.slots_left = self.workers
  for i = 1, self.workers do
    slots[i] = sp.spawn(function() self:slot(i) end)
  end
  -- Slots end when the feeder is done or the job stops (or, with several
  -- hosts, when no host answers).  A stopped job does not wait for the
  -- feeder, which may be waiting on the crawl.
  for _, t in ipairs(slots) do t:join() end
  -- Quitting: the running chunks are done; the rest waits for a resume.
  if self.draining then self:halt(self.draining) end
  if not self.stopping and (#self.queue > 0 or not self.feeding_done) and
      self.multi_host then
    self:halt("no host answers")
  end
  root:join()
  -- Chunks that ran may have left files in the job's temporary directory
  -- (stopped, or killed with their host): it goes however the job ends.
  self:remove_temp()
  if self.fatal_connect then
    self:warn("cannot connect: %s", self.fatal_connect)
    return finish(EXIT.connect, "failed")
  end
  if self.stopping == "no host answers" then
    self:warn("no host answers: the job stops, resumable")
    return finish(EXIT.connect, "interrupted")
  end
  if root_err then
    self:warn("cannot prepare the destination: %s", root_err)
    return finish(root_outcome == "retry" and EXIT.connect or EXIT.failed,
      "failed")
  end
  if feeder and not self.stopping then feeder:join() end

  if self.stopping then return finish(EXIT.interrupted, "interrupted") end
  if self.scan_error then
    self:warn("listing the source failed: %s", self.scan_error)
    return finish(remote_of(self) and EXIT.connect or EXIT.failed, "failed")
  end
  if #self.failed > 0 or (self.scan_errors or 0) > 0 then
    if self.cfg.delete then
      self:warn("deletions skipped: %s", #self.failed > 0 and
        (#self.failed .. " chunk(s) failed") or
        (self.scan_errors .. " source path(s) could not be read"))
    end
  end
  if #self.failed == 0 and (not self.cfg.delete or
        (self.scan_errors or 0) == 0) then
    local fok, ferr = self:final_pass()
    if self.stopping then return finish(EXIT.interrupted, "interrupted") end
    if not fok then
      self:warn("final pass failed: %s", ferr)
      return finish(EXIT.failed, "failed")
    end
    self.journal:chunk_update(self.id, { index = 0, state = "done",
      attempts = 1, exit_code = 0, finished = now() })
  end
  if self.skipped > 0 then
    self:warn("%d name(s) with a newline cannot be sent by rclone and were "
      .. "skipped", self.skipped)
  end
  local failed = #self.failed > 0 or (self.scan_errors or 0) > 0 or
      self.skipped > 0
  return finish(failed and EXIT.failed or EXIT.ok, failed and "failed" or
    "done")
end

local function new_job(cfg, opts)
  local job = setmetatable({
    cfg = cfg, tool = cfg.tool, workers = cfg.workers,
    json = opts.json,
    bar = not opts.json and not opts.detached and sp.isatty(2) and
      progress.new(io.stderr, { per_worker = opts.per_worker, fd = 2 }) or nil,
    slot_info = {}, started = now(),
    queue = {}, running = {}, failed = {}, cond = sp.condition(),
    wake = sp.condition(), done_bytes = 0, done_files = 0, chunks_done = 0,
    chunks_known = 0, total_bytes = 0, total_files = 0, retries = 0,
    skipped = 0, bytes0 = 0, need_scan = true, sent = 0,
    root_cond = sp.condition(), warming = {}, warm_workers = {},
    requeued = 0, temp_cond = sp.condition(),
  }, Job)
  job.src, job.dst = cfg._src, cfg._dst
  if job.src.kind == "local" then
    job.dot_root = dot_root(job.src.path) .. "/./"
    job.arg_budget = sp.arg_max() // 2
  end
  job.guard_dirs = cfg.tool == "rsync" and not cfg.dry_run and
      (job.dst.kind ~= "local" or sp.geteuid() ~= 0) and
      not rsync_opt_among(cfg, { ["--no-perms"] = true, ["--no-p"] = true },
        "") -- without -p, modes are not rsync's to keep
  job.policy = sp.backoff { attempts = cfg.retry.attempts,
    backoff = cfg.retry.backoff }
  job.bw = bw.new(cfg, job.src.kind ~= "local")
  return job
end

function M.open_journal(opts)
  local j, err = sp.journal(opts.state_dir)
  if not j then
    errf("cannot open the journal: %s", err)
    return nil
  end
  return j
end

-- A running job holds <state>/jobs/ID.lock (flock) for its life: the
-- kernel releases it when the process dies, kill -9 included, so a free
-- lock tells a dead job from a live one (jobs.state), and two processes
-- never run one job.
local function take_lock(journal, id)
  local ok, err = sp.mkdir(journal:dir() .. "/jobs", tonumber("700", 8), true)
  if not ok then return nil, err end
  local path = jobs.lock_path(journal:dir(), id)
  local lock, lerr, code
  -- A status query holds it for a moment when it probes.
  for _ = 1, 20 do
    lock, lerr, code = sp.lock(path)
    if lock or code ~= "EBUSY" then break end
    sp.nap(0.1)
  end
  return lock, lerr, code
end

-- The lock goes last, after the journal has the job's final state.
function Job:release()
  if self.log then self.log:close() end
  if self.lock then
    os.remove(jobs.lock_path(self.journal:dir(), self.id))
    self.lock:close()
    self.lock = nil
  end
end

local DEFAULT_LOG_MAX = 1 << 30

-- The job's log directory, LOGDIR/ID (0700), its log (job.log, and the
-- plan's log_file) and the pruning of old jobs' logs under log_max.
local function prepare_logs(job, opts)
  local cfg = job.cfg
  if job.tool == "rsync" and not cfg.dry_run then
    job.temp = ".syncplan-tmp-" .. job.id
  end
  local state = job.journal:dir()
  local root = cfg.log_dir or (state .. "/logs")
  job.logdir = root .. "/" .. job.id
  local ok, err = sp.mkdir(job.logdir, tonumber("700", 8), true)
  if not ok then
    errf("cannot create %s: %s", job.logdir, err)
    return false
  end
  local cap = cfg.log_max or DEFAULT_LOG_MAX
  job.chunk_log_cap = math.max(cap // 10, 64 * 1024)
  local files = { job.logdir .. "/job.log" }
  if cfg.log_file then files[2] = cfg.log_file end
  job.log = logmod.new { level = cfg.log_level, files = files,
    stderr = not opts.detached, verbose = opts.verbose,
    file_cap = job.chunk_log_cap,
    before_stderr = function() job:clear_line() end }
  for _, e in ipairs(job.log.errors) do errf("cannot open the log %s", e) end
  local n = logmod.prune(root, cap, job.id, function(id)
    return jobs.state(job.journal, id) == "running"
  end)
  if n > 0 then
    job:info("log_max: removed the logs of %d old job%s", n,
      n == 1 and "" or "s")
  end
  return true
end

-- One run of a validated plan, as a new job of the journal, in a task.
-- changes (watch mode, see daemon.lua): { list = NUL-separated names,
-- files =, bytes =, dirs = their directories, NUL-separated } sent as
-- the job's one chunk instead of a crawl of the source.
function M.run_job(cfg, opts, journal, changes)
  local job = new_job(cfg, opts)
  job.journal = journal
  job.id = journal:run_new { source = cfg.source, dest = cfg.dest,
    plan = plan.serialize(cfg) }
  local lerr
  job.lock, lerr = take_lock(journal, job.id)
  if not job.lock then
    errf("job %s: cannot take its lock: %s", job.id, lerr)
    journal:run_set_state(job.id, "failed", EXIT.failed)
    return EXIT.failed
  end
  if not prepare_logs(job, opts) then
    journal:run_set_state(job.id, "failed", EXIT.failed)
    job:release()
    return EXIT.failed
  end
  if opts.on_job then opts.on_job(job) end
  job:note("job %s started%s%s", job.id, cfg.dry_run and " (dry run)" or "",
    changes and string.format(" (%d changed path%s)", changes.files,
      changes.files == 1 and "" or "s") or "")
  job:emit("start", { source = cfg.source, dest = cfg.dest,
    workers = job.workers, tool = job.tool, dry_run = cfg.dry_run or false,
    changes = changes and changes.files or plan.null })
  if cfg.on_start then cfg.on_start({ job = job.id }) end
  local chunks
  if changes then
    journal:begin()
    journal:chunk_add(job.id, 1, changes.list, changes.files, changes.bytes)
    journal:chunk_add(job.id, 0, changes.dirs, 0, 0)
    journal:run_set_scan_complete(job.id, true)
    journal:commit()
    job.need_scan = false
    job.moves = changes.moves
    chunks = { job:new_chunk(1, changes.list, changes.files, changes.bytes) }
  end
  local code = job:main(chunks)
  if opts.on_job_end then opts.on_job_end(job) end
  return code, job
end

-- Run a validated plan: once, or on its schedule or its source's changes
-- (daemon.lua) unless opts.once.
function M.run_plan(cfg, opts)
  local journal = M.open_journal(opts)
  if not journal then return EXIT.failed end
  local code
  if (cfg.schedule or cfg.watch) and not opts.once then
    code = require("syncplan.daemon").run(M, cfg, opts, journal)
  else
    code = sp.run(function() return M.run_job(cfg, opts, journal) end)
  end
  journal:close()
  return code
end

function M.resume(id, opts)
  local journal = M.open_journal(opts)
  if not journal then return EXIT.failed end
  local run, err = journal:run_get(id)
  if not run then
    errf("%s", err)
    return EXIT.usage
  end
  if run.state == "done" then
    errf("job %s is already done", id)
    return EXIT.ok
  end
  local cfg, perr = plan.deserialize(run.plan)
  if not cfg then
    errf("job %s: stored plan unreadable: %s", id, perr)
    return EXIT.failed
  end
  local lock, lerr, lcode = take_lock(journal, id)
  if not lock then
    if lcode == "EBUSY" then
      errf("job %s is running (pid %d): stop it first", id, run.pid)
    else
      errf("job %s: cannot take its lock: %s", id, lerr)
    end
    return EXIT.failed
  end
  local job = new_job(cfg, opts)
  job.journal, job.id, job.resumed, job.lock = journal, id, true, lock
  if not prepare_logs(job, opts) then
    job:release()
    return EXIT.failed
  end
  if opts.on_job then opts.on_job(job) end
  local pending = {}
  local final_needed = true
  job.index_base = 0
  for _, r in ipairs(journal:chunks(id, true)) do
    job.index_base = math.max(job.index_base, r.index)
    if r.index == 0 then
      final_needed = r.state ~= "done"
    elseif r.state == "done" then
      job.chunks_known = job.chunks_known + 1
      job.chunks_done = job.chunks_done + 1
      job.done_bytes = job.done_bytes + r.bytes
      job.done_files = job.done_files + r.files
      job.total_bytes = job.total_bytes + r.bytes
      job.total_files = job.total_files + r.files
    else
      local ch = job:new_chunk(r.index, r.list, r.files, r.bytes)
      -- The journal keeps counting attempts; a resumed chunk gets its
      -- full budget again.
      ch.attempts, ch.base = r.attempts, r.attempts
      pending[#pending + 1] = ch
    end
  end
  job.bytes0 = job.done_bytes
  -- Chunks of the earlier run may have written into any directory.
  job.force_final = true
  -- A run whose scan was complete resumes from its stored lists alone
  -- (dsync's --reuse); otherwise the source is scanned again and the new
  -- chunks are numbered after the old ones.
  job.need_scan = not run.scan_complete
  journal:run_set_state(id, "running", -1)
  job:note("job %s resumed: %d chunk(s) to run%s", id, #pending,
    job.need_scan and ", source scanned again (the scan had not finished)"
    or "")
  if not final_needed and #pending == 0 and not job.need_scan then
    journal:run_set_state(id, "done", 0)
    job:release()
    return EXIT.ok
  end
  local code = sp.run(function() return job:main(pending) end)
  journal:close()
  return code
end

-- One request to a running job's control socket: the reply, or nil and
-- a message.
function M.control(id, request, state_dir)
  local journal = M.open_journal { state_dir = state_dir }
  if not journal then return nil, "no journal" end
  local path = M.control_path(journal:dir(), id)
  local reply, err, code = sp.control_call(path, request, 10)
  if not reply then
    -- A stale socket (kill -9) is the dead job's: jobs.state marks it.
    local state, run = jobs.state(journal, id)
    journal:close()
    if not state then return nil, run end
    if code == "ENOENT" or code == "ECONNECT" then
      return nil, string.format("job %s is not running (%s)", id, state)
    end
    return nil, err
  end
  journal:close()
  return reply
end

M.plan = plan
return M
