-- syncplan.tunnel from stock lua5.4 against the suite's sshd (started by
-- tests/integration/tunnel.sh): rsync's remote shell through one ssh
-- session per slot, pushes and pulls checked by treecmp, a slot without
-- a session, a session that goes away under a running rsync, and an
-- rsync stopped mid-transfer whose remote side must end too.
local sp = require "syncplan"
local cfg = assert(os.getenv("SSH_CONFIG"))
local work = assert(os.getenv("WORK"))
local prog = assert(os.getenv("SYNCPLAN"))
local treecmp = assert(os.getenv("TREECMP"))
local sock = work .. "/tun/t.sock"
-- Children must not inherit the sanitizer runtime lua5.4 may be run with.
local NOPRE = { LD_PRELOAD = "" }

local function rsh(slot)
  return prog .. " tunnel " .. sock .. " " .. slot
end

local function rsync(slot, args, log)
  -- Nanosecond times: a tree made in the same second as the copy would
  -- otherwise keep its root's creation time.
  local argv = { "rsync", "-aH", "--modify-window=-1", "-e", rsh(slot) }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local w = assert(sp.worker { argv = argv, env = NOPRE,
    log = log or (work .. "/rsync.log") })
  return w, w:wait()
end

local function same(a, b)
  local w = assert(sp.worker { argv = { treecmp, a, b }, env = NOPRE,
    log = work .. "/treecmp.log" })
  local r = w:wait()
  assert(r.status == 0, "trees differ: " .. a .. " " .. b .. " (see " ..
    work .. "/treecmp.log)")
end

sp.run(function()
  assert(sp.mkdir(work .. "/tun", tonumber("700", 8)))
  local t = assert(sp.tunnel(sock))
  local st = assert(sp.stat(sock))
  assert(st.perms == tonumber("600", 8), string.format("%o", st.perms))
  local s1 = assert(sp.ssh { host = "sptest", config = cfg })
  local s2 = assert(sp.ssh { host = "sptest", config = cfg })
  t:set(1, s1)
  t:set(2, s2)

  -- Push then pull, two slots at once, over the same two sessions
  -- three times: no new connection.
  for round = 1, 3 do
    local a = sp.spawn(function()
      local _, r = rsync(1, { work .. "/src/", "sptest:" .. work .. "/push" .. round .. "/" })
      assert(r.status == 0, "push exit " .. r.status .. ": " .. r.error)
    end)
    local b = sp.spawn(function()
      local _, r = rsync(2, { "sptest:" .. work .. "/src/", work .. "/pull" .. round .. "/" })
      assert(r.status == 0, "pull exit " .. r.status .. ": " .. r.error)
    end)
    a:join()
    b:join()
    same(work .. "/src", work .. "/push" .. round)
    same(work .. "/src", work .. "/pull" .. round)
  end
  local up, down = t:bytes()
  -- The big file alone is 48 MiB each way, three times.
  assert(up > 3 * 48 * 2 ^ 20 and down > 3 * 48 * 2 ^ 20, up .. " " .. down)
  assert(t:active() == 0)

  -- The remote command's status and stderr come back.
  local _, r = rsync(1, { "sptest:" .. work .. "/nonexistent/", work .. "/x/" })
  assert(r.status == 23, "status " .. r.status .. ": " .. r.error)
  local log = assert(io.open(work .. "/rsync.log")):read("a")
  assert(log:find('change_dir "' .. work .. '/nonexistent" failed', 1, true),
    log)

  -- No session for slot 3: 255, and why.
  _, r = rsync(3, { work .. "/src/", "sptest:" .. work .. "/never/" })
  assert(r.status == 255, "status " .. r.status)
  log = assert(io.open(work .. "/rsync.log")):read("a")
  assert(log:find("slot 3 has no connection", 1, true), log)

  -- rsync stopped mid-transfer: its remote half ends (no rsync left
  -- writing under push-stop), and the slot's session goes on working.
  local w = assert(sp.worker { env = NOPRE, argv = { "rsync", "-a",
    "--bwlimit=2000", "-e", rsh(1), work .. "/src/",
    "sptest:" .. work .. "/push-stop/" },
    log = work .. "/stop.log" })
  sp.sleep(1.5)
  assert(t:active() == 1)
  w:stop()
  w:wait()
  local gone = false
  for _ = 1, 50 do
    local p = assert(s2:exec("pgrep -f 'rsync.*push-sto[p]' || true"))
    if p.stdout == "" then gone = true break end
    sp.sleep(0.1)
  end
  assert(gone, "the remote rsync of a stopped transfer is still running")
  assert(t:active() == 0)
  _, r = rsync(1, { work .. "/src/", "sptest:" .. work .. "/push-stop/" })
  assert(r.status == 0, r.error)
  same(work .. "/src", work .. "/push-stop")

  -- The session closed under a running rsync: it fails (255), and so
  -- does the next one on that slot; a new session works.
  w = assert(sp.worker { env = NOPRE, argv = { "rsync", "-a",
    "--bwlimit=2000", "-e", rsh(2), work .. "/src/",
    "sptest:" .. work .. "/push-cut/" },
    log = work .. "/cut.log" })
  sp.sleep(1)
  s2:close()
  r = w:wait()
  assert(r.status == 255 or r.status == 12, "status " .. r.status)
  _, r = rsync(2, { work .. "/src/", "sptest:" .. work .. "/push-cut/" })
  assert(r.status == 255, "status " .. r.status)
  s2 = assert(sp.ssh { host = "sptest", config = cfg })
  t:set(2, s2)
  _, r = rsync(2, { work .. "/src/", "sptest:" .. work .. "/push-cut/" })
  assert(r.status == 0, r.error)
  same(work .. "/src", work .. "/push-cut")

  -- Workers on the session's host: rsync with its list on stdin and
  -- progress parsed; words with quotes and spaces; the environment.
  w = assert(sp.worker { ssh = s1, progress = "rsync", input = "big\0",
    argv = { "rsync", "-aH", "--files-from=-", "--from0", "--info=progress2",
      work .. "/src/", work .. "/remote-w/" }, log = work .. "/rw.log" })
  r = w:wait()
  assert(r.status == 0, r.error)
  assert(r.bytes == 48 * 2 ^ 20, r.bytes)
  local c = assert(sp.worker { env = NOPRE, argv = { "cmp", work .. "/src/big",
    work .. "/remote-w/big" } }):wait()
  assert(c.status == 0, "remote-w/big differs")
  w = assert(sp.worker { ssh = s1, env = { X = "a 'b'" }, cwd = work,
    argv = { "sh", "-c", 'printf "%s|%s|%s" "$1" "$X" "$(pwd)" >&2; exit 7',
      "-", "it's a word" } })
  r = w:wait()
  assert(r.status == 7 and r.error == "it's a word|a 'b'|" .. work, r.error)
  w = assert(sp.worker { ssh = s1, argv = { "sh", "-c", "kill -9 $$" } })
  r = w:wait()
  assert(r.status == -1 and r.signal == 9, r.status .. " " .. r.signal)
  -- Stopped: the channel closes and the remote command ends.
  w = assert(sp.worker { ssh = s1, argv = { "sh", "-c",
    "while :; do echo tick; sleep 0.1; done" }, grace = 2 })
  sp.sleep(0.5)
  w:stop()
  r = w:wait()
  assert(r.stopped, "not stopped")
  local p = assert(s1:exec("pgrep -f 'echo tic[k]' || true"))
  assert(p.stdout == "", "the stopped remote command still runs")

  t:close()
  s1:close()
  s2:close()
  assert(not sp.file_type(sock), "socket left behind")
end)
print("tunnel ok")
