-- Scow-Sync's session: push a directory to a login node with a given
-- user, port and private key, in the background, query it, stop it,
-- resume it.  The commands (JOB is what `start` printed):
--
--   syncplan check-key alice@login.hpc.example.org:2222 -i ~/.ssh/id_scow
--   syncplan start plans/scow_session.lua            # prints JOB
--   syncplan status --json                           # every running job
--   syncplan status --json JOB                       # this one
--   syncplan stop JOB                                # partial files go
--   syncplan resume JOB
--
-- Scow-Sync's -a/-u/-p/-k are dest's host and user, ssh_port, ssh_key;
-- its -s/-d are source and dest; its --max-depth (the granularity of a
-- stop) is the chunking: a stop lets running chunks finish, then stops
-- them, and never loses a finished one.  Override anything with --set,
-- e.g. --set dest=bob@login2:/scratch/bob/results/.
return {
  name = "scow-session",
  source = "/home/alice/results/",
  dest = "alice@login.hpc.example.org:/data/alice/results/",
  ssh_port = 2222,
  ssh_key = "~/.ssh/id_scow",
  workers = 4,
  retry = { attempts = 3 },
}
