-- syncplan.ssh from stock lua5.4 against the suite's sshd (started by
-- tests/integration/ssh_exec.sh): login through an ssh config alias,
-- commands with input, both outputs, exit statuses and signals, several
-- at once on one session, and failures as nil, msg, code.
local sp = require "syncplan"
local cfg = assert(os.getenv("SSH_CONFIG"))
local port = assert(tonumber(os.getenv("SSHD_PORT")))
local work = assert(os.getenv("WORK"))
local key = work .. "/ssh/id_ed25519"

sp.run(function()
  local s = assert(sp.ssh { host = "sptest", config = cfg })
  assert(s:fingerprint():match("^SHA256:[%w+/]+$"), s:fingerprint())

  local r = assert(s:exec("cat; echo err >&2; exit 3", "in\0put\n"))
  assert(r.stdout == "in\0put\n", r.stdout)
  assert(r.stderr == "err\n" and r.status == 3 and r.signal == nil)
  r = assert(s:exec("kill -9 $$"))
  assert(r.status == -1 and r.signal == "KILL", tostring(r.signal))

  -- Six commands at once from six tasks, with outputs larger than a
  -- channel's window, and one with a large input.
  local tasks, got = {}, {}
  for i = 1, 6 do
    tasks[i] = sp.spawn(function()
      got[i] = assert(s:exec("head -c " .. i * 400000 .. " /dev/zero; echo " ..
        i .. " >&2"))
    end)
  end
  r = assert(s:exec("wc -c", string.rep("x", 3000000)))
  assert(r.stdout:match("^3000000"), r.stdout)
  for _, t in ipairs(tasks) do t:join() end
  for i = 1, 6 do
    assert(#got[i].stdout == i * 400000 and got[i].stderr == i .. "\n", i)
  end

  s:close()
  local none, msg, code = s:exec("true")
  assert(none == nil and code == "EINVAL", msg)

  -- Failures: an unknown host, a refused key, nobody listening.
  local empty = work .. "/empty_known_hosts"
  assert(io.open(empty, "w")):close()
  none, msg, code = sp.ssh { host = "127.0.0.1", port = port, config = false,
    known_hosts = empty, identity_files = { key } }
  assert(none == nil and code == "EHOSTKEY" and msg:find("is not in", 1, true), msg)
  none, msg, code = sp.ssh { host = "127.0.0.1", port = port, config = false,
    known_hosts = work .. "/ssh/known_hosts", identity_files = { work .. "/other" } }
  assert(none == nil and code == "EAUTH", msg)
  none, msg, code = sp.ssh { host = "127.0.0.1", port = 1, config = false,
    known_hosts = empty, identity_files = { key } }
  assert(none == nil and code == "ECONNECT", msg)
  none, msg, code = sp.ssh { host = "sptest", config = work .. "/no-such-config" }
  assert(none == nil and code == "ENOENT", msg)
end)
print("ssh_exec: ok")
