-- Fusion's fsync workflow (seed 004): keep a local directory and a
-- remote store in step, uploading or downloading with the same keys, in
-- a loop that syncs whatever changed.  See plans/README.md for the
-- mapping of every fsync parameter.
--
--   syncplan run plans/fusion_sync.lua                          # loops until SIGINT/SIGTERM
--   syncplan run plans/fusion_sync.lua --set direction=upload --once
return {
  -- local_path, and fs_fusion's side: an ssh host (an rclone remote
  -- such as "fusion:datasets/" works for uploads, with tool = "rclone").
  local_path = "/data/fusion/",
  remote = "fusion-dtn:/store/datasets/",
  -- direction: "upload" or "download".  fsync defaults to upload; here
  -- the direction is always written down, because it says which side
  -- gets overwritten.
  direction = "download",
  -- n_par: how many transfers at once.  show_progress has no key: the
  -- progress bar is drawn whenever stderr is a terminal (--per-worker
  -- adds a line per worker), and --json gives the same figures as
  -- events for programs.
  workers = 8,
  -- log_level and log_path: the job log's level ("error", "warn",
  -- "info" or "debug"; fsync's default is ERROR) and its directory,
  -- LOG_DIR/JOB_ID/job.log.
  log_level = "error",
  log_dir = "/var/tmp/fusion/logs",
  -- fsync's `while True` loop: look at both sides, sync if something
  -- changed, else sleep 10 s.  Each run here compares both sides first
  -- and sends only what differs (an unchanged tree starts no transfer
  -- at all), then the next run starts 10 s after this one started.
  schedule = "every 10s",
}
