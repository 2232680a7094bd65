-- A scripted plan: chunk by top-level directory, send the directories
-- that matter first (here: anything under "raw" before "derived", then the
-- rest by size, largest first), four rsync workers at a time, each chunk
-- retried with backoff.  Run it with
--   syncplan run plans/priority.lua --set source=/data/prod/ --set dest=/backup/prod/
-- (a scripted plan returns a function: it is the job's main task).
local sp = require "syncplan"

local PRIORITY = { raw = 1, derived = 2 }

return function(args)
  local set = {}
  for _, kv in ipairs(args.set) do
    local k, v = kv:match("^([%w_]+)=(.*)$")
    if k then set[k] = v end
  end
  local src = assert(set.source, "--set source=DIR/ is required")
  local dst = assert(set.dest, "--set dest=DIR/ is required")

  local chunks = assert(sp.chunk(src, { by = "topdir" }))
  local function rank(c)
    local top = c.list[1]:match("^[^/]*")
    return PRIORITY[top] or 3
  end
  table.sort(chunks, function(a, b)
    if rank(a) ~= rank(b) then return rank(a) < rank(b) end
    return a.bytes > b.bytes
  end)

  local function rsync(opts)
    if args.dry_run then table.insert(opts, 1, "-n") end
    table.insert(opts, 1, "rsync")
    return opts
  end

  local policy = sp.backoff { attempts = 3, backoff = "1s..30s" }
  local failed, next_chunk = 0, 1
  local function slot()
    while next_chunk <= #chunks do
      local c = chunks[next_chunk]
      next_chunk = next_chunk + 1
      local top = c.list[1]:match("^[^/]*")
      print(string.format("sending %s (%d entries, %d bytes)", top, c.files, c.bytes))
      for attempt = 1, policy.attempts do
        local r = assert(sp.worker { argv = rsync { "-aH", "--files-from=-",
          "--from0", "--", src, dst }, input = c:data() }):wait()
        local outcome = sp.classify("rsync", r.status, r.signal, r.stopped, r.timed_out)
        print(string.format("%s: %s", top, outcome))
        if outcome == "ok" or outcome == "vanished" then break end
        if outcome == "permanent" or attempt == policy.attempts then
          failed = failed + 1
          break
        end
        sp.sleep(policy:delay(attempt + 1))
      end
    end
  end
  local tasks = {}
  for i = 1, 4 do tasks[i] = sp.spawn(slot) end
  for _, t in ipairs(tasks) do t:join() end
  -- Directory times once every chunk is in.
  assert(sp.worker { argv = rsync { "-a", "--modify-window=-1", "--include=*/", "--exclude=*", src,
    dst } }):wait()
  return failed == 0 and 0 or 1
end
