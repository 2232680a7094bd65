/*
 * What the journal's two source files share: journal.c (the database,
 * its schema, runs and chunks) and journal_record.c (the file records
 * of mirror plans).  Each file prepares and owns its own statements;
 * the handle, the SQLite helpers and the arenas rows are copied into
 * are common.  Nothing here is installed.
 */
#ifndef LIBSYNC_JOURNAL_INTERNAL_H
#define LIBSYNC_JOURNAL_INTERNAL_H

#include <stddef.h>

#include <sqlite3.h>

#include "internal.h"

/* Statements cached per journal, by file; each file checks its count
 * against its own list of statements. */
#define LSYNC__JOURNAL_STMTS 12
#define LSYNC__RECORD_STMTS 5

/* Rows copied out of SQLite; strings are NUL-terminated. */
struct arena {
  char *p;
  size_t len, cap;
  int oom;
};

struct lsync_journal {
  lsync_ctx *ctx;
  sqlite3 *db;
  char *dir;
  char *path;
  sqlite3_stmt *st[LSYNC__JOURNAL_STMTS]; /* journal.c's */
  sqlite3_stmt *rst[LSYNC__RECORD_STMTS]; /* journal_record.c's */
  struct arena out;                       /* what the _get calls return */
  struct arena iter; /* what the last listing passed to its callback */
};

/* *slot prepared from sql on first use (kept for the journal's life),
 * with key, if not NULL, bound to ?1 as text. */
int lsync__journal_stmt(lsync_journal *j, sqlite3_stmt **slot, const char *sql,
                        const char *key);

/* Run a statement that returns no rows, once its values are bound (brc:
 * the OR of the bind results), and reset it.  Returns the extended
 * SQLite code (SQLITE_DONE on success; otherwise the message is on the
 * context) so callers can tell constraint failures apart. */
int lsync__journal_step(lsync_journal *j, sqlite3_stmt *st, int brc,
                        const char *what);

/* LSYNC_EJOURNAL with "journal PATH: what: SQLite's message" on ctx. */
int lsync__journal_fail(lsync_journal *j, const char *what);

/* Run sql (no rows) with sqlite3_exec: 0 or LSYNC_EJOURNAL. */
int lsync__journal_exec(lsync_journal *j, const char *sql, const char *what);

/* Append n bytes and a NUL; returns the offset (0 with a->oom set on
 * failure, checked once per row). */
size_t lsync__arena_put(struct arena *a, const void *data, size_t n);

/* A listing copies rows into the journal's iteration arena and leaves
 * it there, so the strings of the last record shown stay valid until
 * the next listing, as journal.h promises.  A listing started from a
 * callback gets an arena of its own. */
struct arena lsync__journal_iter_begin(lsync_journal *j);
void lsync__journal_iter_end(lsync_journal *j, struct arena *a);

/* Copies one row of st into slot, strings into a. */
typedef void (*lsync__row_fn)(sqlite3_stmt *st, void *slot, struct arena *a);

/* A listing's batch: after binding (brc: the OR of the bind results),
 * step st and fill one slot (of size bytes) per row until max rows, a
 * few MiB in a, or the end; reset st.  *more says whether the batch
 * stopped before the end. */
#define LSYNC__BATCH_BYTES (4u << 20)
int lsync__journal_batch(lsync_journal *j, sqlite3_stmt *st, int brc,
                         lsync__row_fn fill, void *slots, size_t size,
                         size_t max, size_t *n, struct arena *a, int *more,
                         const char *what);

/* LSYNC_ECANCELED: a listing's callback asked to stop. */
int lsync__journal_canceled(lsync_journal *j);

#endif
