typedef int lsync__todo_retry;
