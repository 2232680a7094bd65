-- dsync's workflow (seed 002): cut the source into N chunks balanced by
-- bytes and run N transfers at once, with rsync here, with rsync on
-- several hosts, to several destination hosts, or with rclone to a cloud
-- bucket.  One plan; each of dsync's modes is a command-line override
-- (see plans/README.md for every option):
--
--   syncplan run plans/dsync_push.lua                          # rsync, here
--   syncplan run plans/dsync_push.lua \
--     --set 'hosts={run_on={"dtn1","dtn2"}}'                   # --source-hosts
--   syncplan run plans/dsync_push.lua --set dest=dtn1:/mnt/archive/projects/ \
--     --set 'hosts={dest={"dtn1","dtn2"}}'                     # --destination-hosts
--   syncplan run plans/dsync_push.lua --set tool=rclone \
--     --set dest=google-cloud-bucket-1:projects/ \
--     --set rclone.config=/path/to/rclone.conf                 # --cloud, --rclone-config
--   syncplan run plans/dsync_push.lua --dry-run                # --dry-run
--   syncplan resume JOB_ID                                     # --reuse
--   syncplan run plans/dsync_push.lua --set chunks.count=64 --set workers=64   # -n 64
local N = 16

return {
  -- dsync's positional paths.  dsync always behaves as if the source had
  -- a trailing slash; so does this plan, because it has one.
  source = "/mnt/nfs/projects/",
  dest = "/mnt/archive/projects/",
  -- -n N: N chunks balanced by bytes (the tree is crawled once, in
  -- parallel, before the first chunk starts), and N transfers.  With
  -- hosts, the N worker slots are dealt round-robin over them.
  -- dsync --no-fpart (top-level entries as chunks) is
  -- chunks = { by = "topdir" }.
  chunks = { count = N },
  workers = N,
  -- What fpart skips by default in dsync.
  exclude = { ".zfs/", ".snapshot*/" },
}
