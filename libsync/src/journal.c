typedef int lsync__todo_journal;
