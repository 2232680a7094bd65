-- Rename-aware mirroring (syncplan.mirror): a file or directory moved on
-- the source is moved on the destination before the transfer, so that
-- it is not sent again (folder_sync's file record, kept in the journal).
--
-- The journal keeps, per plan (source, dest, tool), the record of the
-- source as the last successful run scanned it: path, type, size, mtime,
-- dev, inode.  A new run scans the source first and pairs each path
-- that now needs content (absent from the record, or another inode) with
-- a path of the record that was vacated (gone, or another inode now):
--   - the same inode (dev, ino, type), and for a file the same size and
--     mtime: a rename, for certain;
--   - else, for a file, the same size and mtime (to the nanosecond) and
--     the same content hash (SHA-256, computed on both sides only for
--     such candidates): a copy moved across file systems, or a source
--     restored with other inode numbers.
-- Directories move first (shallowest first) and carry their contents;
-- the paths of later moves are rewritten through them.  A move whose
-- source is missing on the destination, or whose target is taken there,
-- is skipped: moves only save bytes, the transfer that follows (with
-- --delete, which removes what vanished) makes the tree right whatever
-- the destination held.
local sp = require "syncplan"

local M = {}

-- The record's key: each mirror (its two ends and tool) has its own.
function M.key(cfg)
  return table.concat({ cfg.tool, cfg.source, cfg.dest }, "\0")
end

local function same_time(a, b)
  return a.mtime == b.mtime and (a.mtime_nsec or 0) == (b.mtime_nsec or 0)
end

local function ino_key(e)
  return e.type .. ":" .. e.dev .. ":" .. e.ino
end

local function meta_key(e)
  return e.size .. ":" .. e.mtime .. ":" .. (e.mtime_nsec or 0)
end

local function depth(p)
  local _, n = p:gsub("/", "")
  return n
end

-- Moves from the old record to the new scan (both arrays of entries).
-- Returns an array of { from, to, dir = bool, hash = bool }: directories
-- first, shallowest first, then files; hash moves need their content
-- checked.
function M.moves(old, new)
  local now = {}
  for _, e in ipairs(new) do now[e.path] = e end
  local was = {}
  local by_ino, by_meta = {}, {}
  for _, e in ipairs(old) do
    was[e.path] = e
    local n = now[e.path]
    local vacated = not n or n.dev ~= e.dev or n.ino ~= e.ino or
        n.type ~= e.type
    if vacated and (e.type == "dir" or e.type == "file") then
      by_ino[ino_key(e)] = e
      if e.type == "file" and e.size > 0 then
        local k = meta_key(e)
        by_meta[k] = by_meta[k] or {}
        table.insert(by_meta[k], e)
      end
    end
  end
  local used = {}
  local dirs, files = {}, {}
  for _, n in ipairs(new) do
    local o = was[n.path]
    local needs = not o or o.dev ~= n.dev or o.ino ~= n.ino or
        o.type ~= n.type
    if needs and (n.type == "dir" or n.type == "file") then
      local m = by_ino[ino_key(n)]
      if m and not used[m] and (n.type == "dir" or
            (m.size == n.size and same_time(m, n))) then
        used[m] = true
        local list = n.type == "dir" and dirs or files
        list[#list + 1] = { from = m.path, to = n.path, dir = n.type == "dir" }
      elseif n.type == "file" and n.size > 0 then
        for _, c in ipairs(by_meta[meta_key(n)] or {}) do
          if not used[c] then
            used[c] = true
            files[#files + 1] = { from = c.path, to = n.path, hash = true }
            break
          end
        end
      end
    end
  end
  table.sort(dirs, function(a, b)
    local da, db = depth(a.from), depth(b.from)
    if da ~= db then return da < db end
    return a.from < b.from
  end)
  -- A directory moved with its parent needs no move of its own when it
  -- kept its place inside it.
  local out, done = {}, {}
  local function through(p)
    for _, d in ipairs(done) do
      if p == d.from or p:sub(1, #d.from + 1) == d.from .. "/" then
        p = d.to .. p:sub(#d.from + 1)
      end
    end
    return p
  end
  for _, list in ipairs { dirs, files } do
    for _, m in ipairs(list) do
      local from = through(m.from)
      if from ~= m.to then
        m.from = from
        out[#out + 1] = m
        if m.dir then done[#done + 1] = { from = from, to = m.to } end
      end
    end
  end
  return out
end

local function shq(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function parent(p)
  return p:match("^(.*)/[^/]*$") or "."
end

-- The shell script that makes the moves in the destination's root
-- (POSIX sh; sha256sum for the hash moves).  It prints "moved" for each
-- move made.  hashes: source path -> the SHA-256 of its content.
function M.script(moves, hashes)
  local s = { [[
set -u
taken() { [ -e "$1" ] || [ -L "$1" ]; }
mv1() {
  taken "$1" || return 0
  taken "$2" && return 0
  mkdir -p -- "$3" && mv -- "$1" "$2" && echo moved
}
mvh() {
  taken "$1" || return 0
  h=$(sha256sum <"$1") || return 0
  [ "${h%% *}" = "$4" ] || return 0
  mv1 "$1" "$2" "$3"
}
]] }
  for _, m in ipairs(moves) do
    local from, to = "./" .. m.from, "./" .. m.to
    if m.hash then
      local h = hashes[m.to]
      if h then
        s[#s + 1] = string.format("mvh %s %s %s %s", shq(from), shq(to),
          shq("./" .. parent(m.to)), h)
      end
    else
      s[#s + 1] = string.format("mv1 %s %s %s", shq(from), shq(to),
        shq("./" .. parent(m.to)))
    end
  end
  s[#s + 1] = "exit 0\n"
  return table.concat(s, "\n")
end

-- The SHA-256 of a local file (sha256sum, as the destination's side
-- uses), or nil.
function M.hash(path, log)
  local w = sp.worker { argv = { "sha256sum", "--", path }, log = log,
    watchdog = 600 }
  if not w then return nil end
  local r = w:wait()
  if r.status ~= 0 then return nil end
  local f = io.open(log, "rb")
  if not f then return nil end
  local out = f:read("a")
  f:close()
  os.remove(log)
  return out:match("^\\?(%x+) ") -- a name with a newline gets a "\" first
end

return M
