typedef int lsync__todo_progress;
