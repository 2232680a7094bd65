-- Sync.py's workflow (seed 000): download a Level-2 production from a
-- remote server with parallel rsyncs, under a bandwidth cap, leaving out
-- what matches the exclude patterns, retrying what fails, and logging to
-- a file.  See plans/README.md for the option-by-option mapping.
--
--   syncplan run plans/l2_download.lua
--   syncplan run plans/l2_download.lua --set source=alice@lxplus:/eos/L2/prod/ \
--     --set dest=/data/L2/prod/ --set bwlimit=20M --set log_file=L2_prod.log
return {
  -- --source: the production on the remote server.  ssh logs in with the
  -- keys, known_hosts and Host aliases of ~/.ssh/config (ssh_config =
  -- FILE for another), never with a password: see README, ssh.
  source = "lxplus.cern.ch:/eos/lhcb/wg/L2/production/",
  -- --destination.
  dest = "/data/L2/production/",
  -- Sync.py's threads, one rsync per directory.  Here each worker takes
  -- the next chunk of the tree (at most 2000 entries or 4 GiB), so one
  -- huge directory does not leave the others idle.
  workers = 8,
  -- --bwlimit 50000 (KB/s).  Sync.py passed it to every rsync, so N
  -- threads drew N times the cap; here it is the whole job's.
  bwlimit = "50000K",
  -- --exclude: rsync patterns, applied to the remote listing: nothing
  -- they match is pulled, and an excluded directory is left out whole.
  exclude = { "*.tmp", ".snapshot*/" },
  -- --retry: a chunk that fails with a transient error (a dropped
  -- connection, a killed rsync) runs again after a growing pause, up to
  -- five attempts, on its own; the other chunks go on.
  retry = { attempts = 5, backoff = "10s..5m" },
  -- --filename: the job's log is also appended to this file (relative
  -- to the directory syncplan runs in).
  log_file = "L2_Discriminant.log",
}
