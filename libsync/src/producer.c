typedef int lsync__todo_producer;
