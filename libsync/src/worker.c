typedef int lsync__todo_worker;
