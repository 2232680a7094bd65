/*
 * File records in the journal (journal.h states the contract; the tables
 * are made by journal.c's schema).
 *
 * A record is replaced whole after a run and read whole at the start of
 * the next, tens of thousands of rows or more each time: the rows go in
 * through one cached INSERT inside one transaction, and come out in
 * batches walked by path (the table's primary key is (record, path)), so
 * each batch is a range scan that starts where the last one stopped and
 * no statement stays open while the caller's callback runs.
 *
 * Every statement names its record by key, through a subquery on the
 * keys' unique index, rather than by the record's number: a number
 * cached in the handle could outlive a rolled-back transaction that
 * made it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "journal_internal.h"

enum rec_stmt {
  R_KEY,   /* make the key's record if it has none */
  R_CLEAR, /* its entries go */
  R_PUT,
  R_ROWS,
  R_COUNT,
  R__COUNT
};
_Static_assert(R__COUNT == LSYNC__RECORD_STMTS,
               "LSYNC__RECORD_STMTS must count these statements");

#define REC_ID "(SELECT id FROM records WHERE key = ?1)"

static const char *const rec_sql[R__COUNT] = {
    [R_KEY] = "INSERT OR IGNORE INTO records(key) VALUES(?1)",
    [R_CLEAR] = "DELETE FROM record_files WHERE rec = " REC_ID,
    [R_PUT] = "INSERT OR REPLACE INTO record_files(rec, path, type, size,"
              " mtime, mtime_nsec, dev, ino, hash)"
              " VALUES(" REC_ID ", ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    /* Paths are always stored as blobs, and SQLite sorts every blob
     * after every number: the first batch binds 0 to ?2 and so starts
     * at the first path, the empty one included. */
    [R_ROWS] = "SELECT path, type, size, mtime, mtime_nsec, dev, ino, hash"
               " FROM record_files WHERE rec = " REC_ID " AND path > ?2"
               " ORDER BY path",
    [R_COUNT] = "SELECT count(*) FROM record_files WHERE rec = " REC_ID,
};

/* The cached statement sid with key bound to ?1. */
static int rec_stmt(lsync_journal *j, enum rec_stmt sid, const char *key,
                    sqlite3_stmt **out) {
  int rc = lsync__journal_stmt(j, &j->rst[sid], rec_sql[sid], key);
  *out = rc == 0 ? j->rst[sid] : NULL;
  return rc;
}

/* A statement that returns no rows, with only the key to bind. */
static int rec_exec(lsync_journal *j, enum rec_stmt sid, const char *key,
                    const char *what) {
  sqlite3_stmt *st;
  int rc = rec_stmt(j, sid, key, &st);
  if (rc < 0)
    return rc;
  return lsync__journal_step(j, st, SQLITE_OK, what) == SQLITE_DONE
             ? 0
             : LSYNC_EJOURNAL;
}

static int put(lsync_journal *j, const char *key, const lsync_record_entry *e) {
  if ((unsigned)e->type > LSYNC_T_BLOCK || (!e->path && e->path_len) ||
      (!e->hash && e->hash_len))
    return lsync__fail(j->ctx, LSYNC_EINVAL,
                       "record '%s': an entry with an invalid type (%d), "
                       "path or hash",
                       key, (int)e->type);
  sqlite3_stmt *st;
  int rc = rec_stmt(j, R_PUT, key, &st);
  if (rc < 0)
    return rc;
  /* A NULL pointer would bind SQL NULL, not an empty path. */
  rc = sqlite3_bind_blob64(st, 2, e->path ? e->path : "", e->path_len,
                           SQLITE_STATIC);
  rc |= sqlite3_bind_int(st, 3, (int)e->type);
  rc |= sqlite3_bind_int64(st, 4, (sqlite3_int64)e->size);
  rc |= sqlite3_bind_int64(st, 5, (sqlite3_int64)e->mtime);
  rc |= sqlite3_bind_int(st, 6, (int)e->mtime_nsec);
  /* Unsigned values keep their bits through SQLite's signed integers. */
  rc |= sqlite3_bind_int64(st, 7, (sqlite3_int64)e->dev);
  rc |= sqlite3_bind_int64(st, 8, (sqlite3_int64)e->ino);
  rc |= e->hash_len
            ? sqlite3_bind_blob64(st, 9, e->hash, e->hash_len, SQLITE_STATIC)
            : sqlite3_bind_null(st, 9);
  rc = lsync__journal_step(j, st, rc, "cannot store a record entry");
  return rc == SQLITE_DONE ? 0 : LSYNC_EJOURNAL;
}

/* The record emptied, then filled from next. */
static int fill(lsync_journal *j, const char *key, lsync_record_next_cb next,
                void *ud) {
  int rc = rec_exec(j, R_KEY, key, "cannot make a record");
  if (rc == 0)
    rc = rec_exec(j, R_CLEAR, key, "cannot clear a record");
  while (rc == 0) {
    lsync_record_entry e;
    memset(&e, 0, sizeof e);
    int more = next(ud, &e);
    if (more < 0)
      return lsync__fail(j->ctx, more,
                         "record '%s': replacement abandoned by its source "
                         "(%s)",
                         key, lsync_err_name(more));
    if (more == 0)
      break;
    rc = put(j, key, &e);
  }
  return rc;
}

int lsync_journal_record_replace(lsync_journal *j, const char *key,
                                 lsync_record_next_cb next, void *ud) {
  if (!key || !next)
    return lsync__fail(j->ctx, LSYNC_EINVAL,
                       "record_replace needs a key and a source of entries");
  /* Inside the caller's transaction a savepoint undoes this replacement
   * alone and leaves the caller's other changes to the caller. */
  int own = sqlite3_get_autocommit(j->db);
  int rc = lsync__journal_exec(
      j, own ? "BEGIN IMMEDIATE" : "SAVEPOINT record_replace",
      "cannot begin replacing a record");
  if (rc < 0)
    return rc;
  rc = fill(j, key, next, ud);
  if (rc == 0 &&
      (rc = lsync__journal_exec(j, own ? "COMMIT" : "RELEASE record_replace",
                                "cannot commit a record")) == 0)
    return 0;
  /* Errors here are not reported: the first one is on the context, and
   * SQLite may have rolled back already (a full disk does that). */
  sqlite3_exec(j->db,
               own ? "ROLLBACK"
                   : "ROLLBACK TO record_replace; RELEASE record_replace",
               NULL, NULL, NULL);
  return rc;
}

/* ---- reading ------------------------------------------------------- */

#define RECORD_BATCH 256

/* An entry whose path and hash are offsets into an arena until fixed. */
struct rec_slot {
  lsync_record_entry e;
  size_t path, hash;
};

static void rec_from_row(sqlite3_stmt *st, void *slot, struct arena *a) {
  struct rec_slot *s = slot;
  const void *p = sqlite3_column_blob(st, 0);
  s->e.path_len = (size_t)sqlite3_column_bytes(st, 0);
  s->path = lsync__arena_put(a, p, p ? s->e.path_len : 0);
  s->e.type = (lsync_type)sqlite3_column_int(st, 1);
  s->e.size = (uint64_t)sqlite3_column_int64(st, 2);
  s->e.mtime = (int64_t)sqlite3_column_int64(st, 3);
  s->e.mtime_nsec = (int32_t)sqlite3_column_int(st, 4);
  s->e.dev = (uint64_t)sqlite3_column_int64(st, 5);
  s->e.ino = (uint64_t)sqlite3_column_int64(st, 6);
  const void *h = sqlite3_column_blob(st, 7);
  s->e.hash_len = h ? (size_t)sqlite3_column_bytes(st, 7) : 0;
  if (s->e.hash_len)
    s->hash = lsync__arena_put(a, h, s->e.hash_len);
}

static void rec_fix(struct rec_slot *s, const char *base) {
  s->e.path = base + s->path;
  s->e.hash = s->e.hash_len ? base + s->hash : NULL;
}

/* Copy up to RECORD_BATCH entries after path `after` (NULL: from the
 * first) into slots; *more says whether the batch stopped before the
 * end. */
static int rec_batch(lsync_journal *j, const char *key, const char *after,
                     size_t after_len, struct rec_slot *slots, size_t *n,
                     struct arena *a, int *more) {
  sqlite3_stmt *st;
  *n = 0;
  *more = 0;
  int rc = rec_stmt(j, R_ROWS, key, &st);
  if (rc < 0)
    return rc;
  /* after lies in the arena this batch overwrites: SQLite takes a copy. */
  rc = after ? sqlite3_bind_blob64(st, 2, after, after_len, SQLITE_TRANSIENT)
             : sqlite3_bind_int(st, 2, 0);
  return lsync__journal_batch(j, st, rc, rec_from_row, slots, sizeof *slots,
                              RECORD_BATCH, n, a, more, "cannot read a record");
}

int lsync_journal_record_each(lsync_journal *j, const char *key,
                              lsync_record_cb cb, void *ud) {
  if (!key || !cb)
    return lsync__fail(j->ctx, LSYNC_EINVAL,
                       "record_each needs a key and a callback");
  struct rec_slot *slots = malloc(RECORD_BATCH * sizeof *slots);
  if (!slots)
    return lsync__fail(j->ctx, LSYNC_ENOMEM, "out of memory");
  struct arena a = lsync__journal_iter_begin(j);
  const char *after = NULL;
  size_t after_len = 0;
  int rc, more;
  do {
    size_t n;
    a.len = 0;
    rc = rec_batch(j, key, after, after_len, slots, &n, &a, &more);
    for (size_t i = 0; i < n && rc == 0; i++) {
      rec_fix(&slots[i], a.p);
      if (cb(ud, &slots[i].e))
        rc = lsync__journal_canceled(j);
    }
    if (n) {
      after = slots[n - 1].e.path;
      after_len = slots[n - 1].e.path_len;
    }
  } while (rc == 0 && more);
  lsync__journal_iter_end(j, &a);
  free(slots);
  return rc;
}

int lsync_journal_record_count(lsync_journal *j, const char *key, uint64_t *n) {
  *n = 0;
  if (!key)
    return lsync__fail(j->ctx, LSYNC_EINVAL, "record_count needs a key");
  sqlite3_stmt *st;
  int rc = rec_stmt(j, R_COUNT, key, &st);
  if (rc < 0)
    return rc;
  if (sqlite3_step(st) == SQLITE_ROW)
    *n = (uint64_t)sqlite3_column_int64(st, 0);
  else
    rc = lsync__journal_fail(j, "cannot count a record");
  sqlite3_reset(st);
  return rc;
}
