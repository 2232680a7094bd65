-- folder_sync's workflow (seed 003): keep a replica of a directory,
-- periodically, deleting what vanished from the source and moving on
-- the replica what was renamed on the source instead of copying it
-- again; quit safely.  See plans/README.md for the mapping.
--
--   syncplan run plans/folder_mirror.lua        # runs until SIGINT/SIGTERM
--   syncplan run plans/folder_mirror.lua --once # one sync, then exit
return {
  -- -s SOURCE_DIR.  A missing source stops the plan before anything
  -- runs (exit 2), as folder_sync terminates.
  source = "/home/alice/projects/",
  -- -r REPLICA_DIR: here on a backup host over ssh (a local path works
  -- the same).  A missing replica is created, as folder_sync does.
  dest = "backup1:/store/projects/",
  -- -i INTERVAL: folder_sync's ##d##h##m##s is accepted as it is
  -- ("1d2h30m"); "every 30s" says the same.  As in folder_sync, the wait
  -- counts from the start of the last sync, so a sync that took 2 s of a
  -- 5 s interval is followed 3 s after it ended, and runs never overlap.
  schedule = "every 30m",
  -- folder_sync's file_record.txt and md5 matching: the journal keeps
  -- the record of the source as the last good sync saw it; a path that
  -- now needs content is paired with one that was vacated (same inode,
  -- else same size, mtime and SHA-256) and moved on the replica before
  -- the transfer.  Implies delete = true: what vanished from the source
  -- goes from the replica, empty directories included.
  renames = true,
  -- -l LOG_DIR: each sync's log in LOG_DIR/JOB_ID/job.log.
  log_dir = "/var/tmp/folder_sync/logs",
}
