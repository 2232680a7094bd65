typedef int lsync__todo_bucket;
