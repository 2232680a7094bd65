/*
 * The journal: runs and their chunks in one SQLite database per state
 * directory (journal.h states the contract), and the schema of the
 * whole database; the file records are in journal_record.c.
 *
 * Durability: WAL mode with synchronous=NORMAL.  A transaction is in the
 * WAL file once its COMMIT returns, so it survives kill -9 of the process;
 * a power loss may drop the last transactions but never corrupts the
 * database.
 *
 * Statements are prepared once per journal and reset right after use, so
 * no read transaction stays open between calls (an open one would pin
 * the WAL and stop checkpoints).  For the same reason the iterations
 * (runs, chunks) copy a batch of rows out and reset their statement
 * before running callbacks: a callback may then call the journal again,
 * and its writes commit exactly as they would outside an iteration.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "journal_internal.h"

/* PRAGMA user_version of the schema this code writes.  migrations[v]
 * takes a database from version v to v + 1; a later version appends a
 * step and bumps SCHEMA_VERSION, and old journals upgrade on open. */
#define SCHEMA_VERSION 2

static const char *const migrations[SCHEMA_VERSION] = {
    /* 0 -> 1.  The chunk list is the last column: SQLite stores a large
     * blob on overflow pages, and columns after it could only be read by
     * walking that chain. */
    "CREATE TABLE runs("
    " id TEXT PRIMARY KEY, state TEXT NOT NULL,"
    " source TEXT NOT NULL, dest TEXT NOT NULL, plan TEXT NOT NULL,"
    " scan_complete INTEGER NOT NULL DEFAULT 0,"
    " exit_code INTEGER NOT NULL DEFAULT -1, pid INTEGER NOT NULL DEFAULT 0,"
    " started REAL NOT NULL, finished REAL NOT NULL DEFAULT 0);"
    "CREATE TABLE chunks("
    " run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
    " idx INTEGER NOT NULL, state INTEGER NOT NULL DEFAULT 0,"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " exit_code INTEGER NOT NULL DEFAULT -1,"
    " term_signal INTEGER NOT NULL DEFAULT 0,"
    " files INTEGER NOT NULL, bytes INTEGER NOT NULL,"
    " started REAL NOT NULL DEFAULT 0, finished REAL NOT NULL DEFAULT 0,"
    " host TEXT NOT NULL DEFAULT '', error TEXT NOT NULL DEFAULT '',"
    " list BLOB NOT NULL,"
    " PRIMARY KEY(run_id, idx));",
    /* 1 -> 2.  File records (journal_record.c).  A key (source, dest and
     * tool, say) is stored once and its files refer to it by number:
     * keys are long and a record has a row per file.  WITHOUT ROWID
     * keeps each file row in the (record, path) b-tree itself, so a
     * record reads in path order without a second index. */
    "CREATE TABLE records(id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE);"
    "CREATE TABLE record_files("
    " rec INTEGER NOT NULL REFERENCES records(id) ON DELETE CASCADE,"
    " path BLOB NOT NULL, type INTEGER NOT NULL, size INTEGER NOT NULL,"
    " mtime INTEGER NOT NULL, mtime_nsec INTEGER NOT NULL,"
    " dev INTEGER NOT NULL, ino INTEGER NOT NULL, hash BLOB,"
    " PRIMARY KEY(rec, path)) WITHOUT ROWID;",
};

enum stmt_id {
  ST_BEGIN,
  ST_COMMIT,
  ST_RUN_NEW,
  ST_RUNS,
  ST_RUN_GET, /* this one and those below take the job id as ?1 */
  ST_RUN_EXISTS,
  ST_RUN_STATE,
  ST_RUN_SCAN,
  ST_CHUNK_ADD,
  ST_CHUNK_UPDATE,
  ST_CHUNKS,
  ST_CHUNK_GET,
  ST__COUNT
};
_Static_assert(ST__COUNT == LSYNC__JOURNAL_STMTS,
               "LSYNC__JOURNAL_STMTS must count these statements");

/* The run columns with the chunk aggregates, for run_get and runs. */
#define RUN_SELECT                                                             \
  "SELECT r.id, r.state, r.source, r.dest, r.plan, r.scan_complete,"           \
  " r.exit_code, r.pid, r.started, r.finished, count(c.idx),"                  \
  " sum(c.state = 2), sum(c.state = 3), sum(c.files), sum(c.bytes)"            \
  " FROM runs r LEFT JOIN chunks c ON c.run_id = r.id "

#define CHUNK_SELECT                                                           \
  "SELECT idx, state, attempts, exit_code, term_signal, files, bytes,"         \
  " started, finished, host, error, "

static const char *const stmt_sql[ST__COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_RUN_NEW] = "INSERT INTO runs(id, state, source, dest, plan,"
                   " scan_complete, exit_code, pid, started, finished)"
                   " VALUES(?1, 'running', ?2, ?3, ?4, 0, -1, ?5, ?6, 0)",
    [ST_RUN_GET] = RUN_SELECT "WHERE r.id = ?1 GROUP BY r.id",
    [ST_RUNS] =
        RUN_SELECT "GROUP BY r.id ORDER BY r.started DESC, r.rowid DESC",
    [ST_RUN_EXISTS] = "SELECT 1 FROM runs WHERE id = ?1",
    [ST_RUN_STATE] =
        "UPDATE runs SET state = ?2, exit_code = ?3,"
        " finished = CASE WHEN ?2 = 'running' THEN 0 ELSE ?4 END,"
        " pid = CASE WHEN ?2 = 'running' THEN ?5 ELSE pid END WHERE id = ?1",
    [ST_RUN_SCAN] = "UPDATE runs SET scan_complete = ?2 WHERE id = ?1",
    [ST_CHUNK_ADD] = "INSERT INTO chunks(run_id, idx, state, files, bytes,"
                     " list) VALUES(?1, ?2, 0, ?3, ?4, ?5)",
    [ST_CHUNK_UPDATE] =
        "UPDATE chunks SET state = ?3, attempts = ?4, exit_code = ?5,"
        " term_signal = ?6, host = ?7, error = ?8, started = ?9,"
        " finished = ?10 WHERE run_id = ?1 AND idx = ?2",
    /* CASE keeps SQLite from reading the list when it is not wanted. */
    [ST_CHUNKS] = CHUNK_SELECT "CASE WHEN ?3 THEN list END FROM chunks"
                               " WHERE run_id = ?1 AND idx > ?2 ORDER BY idx",
    [ST_CHUNK_GET] = CHUNK_SELECT "list FROM chunks"
                                  " WHERE run_id = ?1 AND idx = ?2",
};

static const char *const state_names[] = {"pending", "running", "done",
                                          "failed"};

const char *lsync_chunk_state_name(lsync_chunk_state s) {
  return (unsigned)s < 4 ? state_names[s] : "unknown";
}

int lsync_chunk_state_parse(const char *name) {
  for (int i = 0; name && i < 4; i++)
    if (!strcmp(name, state_names[i]))
      return i;
  return -1;
}

/* ---- state directory ---------------------------------------------- */

int lsync_state_dir_default(char *buf, size_t len) {
  const char *v = getenv("SYNCPLAN_STATE_DIR");
  int n;
  if (v && *v)
    n = snprintf(buf, len, "%s", v);
  else if ((v = getenv("XDG_STATE_HOME")) && *v == '/')
    /* The XDG spec says to ignore a relative value. */
    n = snprintf(buf, len, "%s/syncplan", v);
  else if ((v = getenv("HOME")) && *v)
    n = snprintf(buf, len, "%s/.local/state/syncplan", v);
  else
    return LSYNC_ENOENT;
  return n >= 0 && (size_t)n < len ? 0 : LSYNC_ENAMETOOLONG;
}

/* mkdir -p with mode 0700 for every directory it creates. */
static int make_dirs(lsync_ctx *ctx, const char *dir) {
  char path[PATH_MAX];
  size_t n = strlen(dir);
  if (n >= sizeof path)
    return lsync__fail(ctx, LSYNC_ENAMETOOLONG,
                       "state directory name is too "
                       "long: %.200s",
                       dir);
  memcpy(path, dir, n + 1);
  for (size_t i = 1; i <= n; i++) {
    if (path[i] != '/' && path[i] != '\0')
      continue;
    char c = path[i];
    path[i] = '\0';
    if (mkdir(path, 0700) < 0 && errno != EEXIST)
      return lsync__fail_errno(ctx, errno, "cannot create state directory %s",
                               path);
    path[i] = c;
  }
  return 0;
}

/* The journal's runs hold source and destination paths and plans: refuse
 * a directory other users could read or plant files in. */
static int check_private_dir(lsync_ctx *ctx, const char *dir) {
  struct stat st;
  if (stat(dir, &st) < 0)
    return lsync__fail_errno(ctx, errno, "state directory %s", dir);
  if (!S_ISDIR(st.st_mode))
    return lsync__fail(ctx, LSYNC_ENOTDIR,
                       "state directory %s is not a directory", dir);
  if (st.st_uid != geteuid())
    return lsync__fail(ctx, LSYNC_ESTATE,
                       "state directory %s is owned by uid %u, not by the "
                       "current user (uid %u)",
                       dir, (unsigned)st.st_uid, (unsigned)geteuid());
  if (st.st_mode & 077)
    return lsync__fail(ctx, LSYNC_ESTATE,
                       "state directory %s is accessible to group or others "
                       "(mode %04o); run chmod 700 on it",
                       dir, (unsigned)(st.st_mode & 07777));
  return 0;
}

/* Create the database file 0600 before SQLite opens it: SQLite gives the
 * -wal and -shm files the database's mode, so all three end up private
 * without touching the process-wide umask.  Files left wider by someone
 * else are narrowed. */
static int make_db_file(lsync_ctx *ctx, const char *path) {
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0)
    return lsync__fail_errno(ctx, errno, "cannot open journal %s", path);
  struct stat st;
  int rc = 0;
  if (fstat(fd, &st) < 0)
    rc = lsync__fail_errno(ctx, errno, "journal %s", path);
  else if (!S_ISREG(st.st_mode))
    rc = lsync__fail(ctx, LSYNC_EJOURNAL, "journal %s is not a regular file",
                     path);
  else if ((st.st_mode & 077) && fchmod(fd, 0600) < 0)
    rc = lsync__fail_errno(ctx, errno, "cannot chmod journal %s", path);
  close(fd);
  for (int i = 0; rc == 0 && i < 2; i++) {
    char side[PATH_MAX];
    snprintf(side, sizeof side, "%s%s", path, i ? "-shm" : "-wal");
    if (lstat(side, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 077) &&
        chmod(side, 0600) < 0)
      rc = lsync__fail_errno(ctx, errno, "cannot chmod %s", side);
  }
  return rc;
}

/* ---- SQLite helpers ----------------------------------------------- */

int lsync__journal_fail(lsync_journal *j, const char *what) {
  return lsync__fail(j->ctx, LSYNC_EJOURNAL, "journal %s: %s: %s", j->path,
                     what, sqlite3_errmsg(j->db));
}

static int no_job(lsync_journal *j, const char *id) {
  return lsync__fail(j->ctx, LSYNC_ENOENT, "no job '%s' in the journal in %s",
                     id, j->dir);
}

static int no_chunk(lsync_journal *j, const char *id, unsigned index) {
  return lsync__fail(j->ctx, LSYNC_ENOENT,
                     "job '%s' has no chunk %u in the journal in %s", id, index,
                     j->dir);
}

int lsync__journal_stmt(lsync_journal *j, sqlite3_stmt **slot, const char *sql,
                        const char *key) {
  if (!*slot && sqlite3_prepare_v3(j->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
                                   slot, NULL) != SQLITE_OK)
    return lsync__journal_fail(j, "cannot prepare statement");
  if (key && sqlite3_bind_text(*slot, 1, key, -1, SQLITE_STATIC) != SQLITE_OK)
    return lsync__journal_fail(j, "cannot bind the job id or key");
  return 0;
}

/* The cached statement sid, with the job id (if it takes one) bound to
 * ?1. */
static int prepare(lsync_journal *j, enum stmt_id sid, const char *id,
                   sqlite3_stmt **out) {
  if (!id && sid >= ST_RUN_GET)
    return lsync__fail(j->ctx, LSYNC_EINVAL, "journal call without a job id");
  *out = NULL;
  int rc = lsync__journal_stmt(j, &j->st[sid], stmt_sql[sid], id);
  if (rc == 0)
    *out = j->st[sid];
  return rc;
}

int lsync__journal_step(lsync_journal *j, sqlite3_stmt *st, int brc,
                        const char *what) {
  int rc = brc == SQLITE_OK ? sqlite3_step(st) : brc;
  if (rc != SQLITE_DONE) {
    rc = brc == SQLITE_OK ? sqlite3_extended_errcode(j->db) : brc;
    lsync__journal_fail(j, brc == SQLITE_OK ? what : "cannot bind values");
  }
  sqlite3_reset(st);
  return rc;
}

int lsync__journal_exec(lsync_journal *j, const char *sql, const char *what) {
  char *err = NULL;
  if (sqlite3_exec(j->db, sql, NULL, NULL, &err) == SQLITE_OK)
    return 0;
  lsync__fail(j->ctx, LSYNC_EJOURNAL, "journal %s: %s: %s", j->path, what,
              err ? err : sqlite3_errmsg(j->db));
  sqlite3_free(err);
  return LSYNC_EJOURNAL;
}

/* The first column of a one-row statement, as text into buf. */
static int query_text(lsync_journal *j, const char *sql, char *buf,
                      size_t len) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(j->db, sql, -1, &st, NULL) != SQLITE_OK)
    return lsync__journal_fail(j, sql);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    const unsigned char *t = sqlite3_column_text(st, 0);
    snprintf(buf, len, "%s", t ? (const char *)t : "");
    rc = 0;
  } else {
    rc = lsync__journal_fail(j, sql);
  }
  sqlite3_finalize(st);
  return rc;
}

static int schema_version(lsync_journal *j, int *v) {
  char buf[32];
  int rc = query_text(j, "PRAGMA user_version", buf, sizeof buf);
  *v = rc == 0 ? atoi(buf) : 0;
  return rc;
}

/* Bring the schema to SCHEMA_VERSION in one write transaction, reading
 * the version again inside it: another process may be doing the same. */
static int migrate(lsync_journal *j) {
  int v, rc = schema_version(j, &v);
  if (rc < 0 || v == SCHEMA_VERSION)
    return rc;
  if ((rc = lsync__journal_exec(j, "BEGIN IMMEDIATE",
                                "cannot lock for migration")) < 0)
    return rc;
  if ((rc = schema_version(j, &v)) < 0)
    goto fail;
  if (v > SCHEMA_VERSION || v < 0) {
    rc = lsync__fail(j->ctx, LSYNC_EJOURNAL,
                     "journal %s has schema version %d; this syncplan knows "
                     "versions up to %d",
                     j->path, v, SCHEMA_VERSION);
    goto fail;
  }
  for (; v < SCHEMA_VERSION; v++) {
    char sql[64];
    if ((rc = lsync__journal_exec(j, migrations[v],
                                  "cannot create the schema")) < 0)
      goto fail;
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", v + 1);
    if ((rc = lsync__journal_exec(j, sql, "cannot set the schema version")) < 0)
      goto fail;
  }
  if ((rc = lsync__journal_exec(j, "COMMIT", "cannot commit the schema")) == 0)
    return 0;
fail:
  sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
  return rc;
}

static int db_open(lsync_journal *j) {
  int rc = sqlite3_open_v2(
      j->path, &j->db,
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK) {
    if (!j->db)
      return lsync__fail(j->ctx, LSYNC_ENOMEM, "journal %s: out of memory",
                         j->path);
    return lsync__journal_fail(j, "cannot open");
  }
  sqlite3_extended_result_codes(j->db, 1);
  sqlite3_busy_timeout(j->db, 10000);
  char mode[16];
  if ((rc = query_text(j, "PRAGMA journal_mode = WAL", mode, sizeof mode)) < 0)
    return rc;
  if (strcmp(mode, "wal") != 0)
    return lsync__fail(j->ctx, LSYNC_EJOURNAL,
                       "journal %s: cannot switch to WAL mode (got '%s')",
                       j->path, mode);
  rc = lsync__journal_exec(
      j, "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON",
      "cannot configure");
  return rc < 0 ? rc : migrate(j);
}

int lsync_journal_open(lsync_ctx *ctx, const char *dir, lsync_journal **out) {
  char defdir[PATH_MAX];
  *out = NULL;
  if (!dir) {
    int rc = lsync_state_dir_default(defdir, sizeof defdir);
    if (rc < 0)
      return lsync__fail(ctx, rc,
                         rc == LSYNC_ENOENT
                             ? "no state directory: set SYNCPLAN_STATE_DIR, "
                               "XDG_STATE_HOME or HOME"
                             : "state directory name is too long");
    dir = defdir;
  }
  if (!*dir)
    return lsync__fail(ctx, LSYNC_EINVAL, "empty state directory name");
  int rc = make_dirs(ctx, dir);
  if (rc < 0 || (rc = check_private_dir(ctx, dir)) < 0)
    return rc;
  lsync_journal *j = calloc(1, sizeof *j);
  size_t n = strlen(dir);
  if (!j || !(j->dir = strdup(dir)) || !(j->path = malloc(n + 12))) {
    lsync_journal_close(j);
    return lsync__fail(ctx, LSYNC_ENOMEM, "out of memory");
  }
  j->ctx = ctx;
  snprintf(j->path, n + 12, "%s/journal.db", dir);
  if ((rc = make_db_file(ctx, j->path)) < 0 || (rc = db_open(j)) < 0) {
    lsync_journal_close(j);
    return rc;
  }
  *out = j;
  return 0;
}

void lsync_journal_close(lsync_journal *j) {
  if (!j)
    return;
  for (int i = 0; i < ST__COUNT; i++)
    sqlite3_finalize(j->st[i]);
  for (int i = 0; i < LSYNC__RECORD_STMTS; i++)
    sqlite3_finalize(j->rst[i]);
  /* An open transaction is rolled back: nothing uncommitted was
   * promised to survive. */
  sqlite3_close(j->db);
  free(j->out.p);
  free(j->iter.p);
  free(j->dir);
  free(j->path);
  free(j);
}

const char *lsync_journal_dir(const lsync_journal *j) {
  return j->dir;
}

int lsync_journal_begin(lsync_journal *j) {
  sqlite3_stmt *st = NULL;
  if (!sqlite3_get_autocommit(j->db))
    return lsync__fail(j->ctx, LSYNC_EBUSY,
                       "journal %s: a transaction is already open (nesting "
                       "is refused)",
                       j->path);
  int rc = prepare(j, ST_BEGIN, NULL, &st);
  if (rc == 0 && lsync__journal_step(j, st, 0, "cannot begin") != SQLITE_DONE)
    rc = LSYNC_EJOURNAL;
  return rc;
}

int lsync_journal_commit(lsync_journal *j) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_get_autocommit(j->db))
    return lsync__fail(j->ctx, LSYNC_EINVAL,
                       "journal %s: commit without a transaction", j->path);
  int rc = prepare(j, ST_COMMIT, NULL, &st);
  if (rc == 0 && lsync__journal_step(j, st, 0, "cannot commit") != SQLITE_DONE)
    rc = LSYNC_EJOURNAL;
  return rc;
}

/* ---- copying rows out --------------------------------------------- */

size_t lsync__arena_put(struct arena *a, const void *data, size_t n) {
  if (a->cap - a->len < n + 1) {
    size_t cap = a->cap ? a->cap : 256;
    while (cap - a->len < n + 1 && cap < SIZE_MAX / 2)
      cap *= 2;
    char *p = cap - a->len >= n + 1 ? realloc(a->p, cap) : NULL;
    if (!p) {
      a->oom = 1;
      return 0;
    }
    a->p = p;
    a->cap = cap;
  }
  size_t off = a->len;
  if (n)
    memcpy(a->p + off, data, n);
  a->p[off + n] = '\0';
  a->len += n + 1;
  return off;
}

static size_t put_text(struct arena *a, sqlite3_stmt *st, int col) {
  const unsigned char *t = sqlite3_column_text(st, col);
  return lsync__arena_put(a, t ? t : (const unsigned char *)"",
                          t ? (size_t)sqlite3_column_bytes(st, col) : 0);
}

static uint64_t col_u64(sqlite3_stmt *st, int col) {
  sqlite3_int64 v = sqlite3_column_int64(st, col);
  return v < 0 ? 0 : (uint64_t)v;
}

/* A run record whose strings are offsets into an arena until fixed. */
struct run_slot {
  lsync_run_rec r;
  size_t off[5];
};

static void run_from_row(sqlite3_stmt *st, void *slot, struct arena *a) {
  struct run_slot *s = slot;
  for (int i = 0; i < 5; i++)
    s->off[i] = put_text(a, st, i);
  s->r.scan_complete = sqlite3_column_int(st, 5) != 0;
  s->r.exit_code = sqlite3_column_int(st, 6);
  s->r.pid = sqlite3_column_int(st, 7);
  s->r.started = sqlite3_column_double(st, 8);
  s->r.finished = sqlite3_column_double(st, 9);
  s->r.chunks = col_u64(st, 10);
  s->r.chunks_done = col_u64(st, 11);
  s->r.chunks_failed = col_u64(st, 12);
  s->r.files = col_u64(st, 13);
  s->r.bytes = col_u64(st, 14);
}

static void run_fix(struct run_slot *s, const char *base) {
  s->r.id = base + s->off[0];
  s->r.state = base + s->off[1];
  s->r.source = base + s->off[2];
  s->r.dest = base + s->off[3];
  s->r.plan = base + s->off[4];
}

struct chunk_slot {
  lsync_chunk_rec r;
  size_t host, error, list;
  int has_list;
};

static void chunk_from_row(sqlite3_stmt *st, void *slot, struct arena *a) {
  struct chunk_slot *s = slot;
  s->r.index = (unsigned)sqlite3_column_int64(st, 0);
  s->r.state = (lsync_chunk_state)sqlite3_column_int(st, 1);
  s->r.attempts = (unsigned)sqlite3_column_int64(st, 2);
  s->r.exit_code = sqlite3_column_int(st, 3);
  s->r.term_signal = sqlite3_column_int(st, 4);
  s->r.files = col_u64(st, 5);
  s->r.bytes = col_u64(st, 6);
  s->r.started = sqlite3_column_double(st, 7);
  s->r.finished = sqlite3_column_double(st, 8);
  s->host = put_text(a, st, 9);
  s->error = put_text(a, st, 10);
  s->has_list = sqlite3_column_type(st, 11) != SQLITE_NULL;
  s->r.list_len = 0;
  if (s->has_list) {
    const void *b = sqlite3_column_blob(st, 11);
    s->r.list_len = (size_t)sqlite3_column_bytes(st, 11);
    s->list = lsync__arena_put(a, b, b ? s->r.list_len : 0);
  }
}

static void chunk_fix(struct chunk_slot *s, const char *base) {
  s->r.host = base + s->host;
  s->r.error = base + s->error;
  s->r.list = s->has_list ? base + s->list : NULL;
}

/* Step a statement that gives at most one row, copying the row into the
 * journal's output arena with fill.  1 with a row, 0 without, or an
 * error code. */
static int get_one(lsync_journal *j, sqlite3_stmt *st,
                   void (*fill)(sqlite3_stmt *, void *, struct arena *),
                   void *slot) {
  j->out.len = 0;
  j->out.oom = 0;
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW)
    fill(st, slot, &j->out);
  else if (rc != SQLITE_DONE)
    lsync__journal_fail(j, "cannot read");
  sqlite3_reset(st);
  if (rc != SQLITE_ROW)
    return rc == SQLITE_DONE ? 0 : LSYNC_EJOURNAL;
  return j->out.oom ? lsync__fail(j->ctx, LSYNC_ENOMEM, "out of memory") : 1;
}

int lsync__journal_batch(lsync_journal *j, sqlite3_stmt *st, int brc,
                         lsync__row_fn fill, void *slots, size_t size,
                         size_t max, size_t *n, struct arena *a, int *more,
                         const char *what) {
  int rc = brc;
  *n = 0;
  *more = 0;
  while (rc == SQLITE_OK || rc == SQLITE_ROW) {
    if ((rc = sqlite3_step(st)) != SQLITE_ROW)
      break;
    fill(st, (char *)slots + (*n)++ * size, a);
    if (*n == max || a->len >= LSYNC__BATCH_BYTES || a->oom) {
      *more = 1;
      break;
    }
  }
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    rc = lsync__journal_fail(j, what);
  else if (a->oom)
    rc = lsync__fail(j->ctx, LSYNC_ENOMEM, "out of memory");
  else
    rc = 0;
  sqlite3_reset(st);
  return rc;
}

struct arena lsync__journal_iter_begin(lsync_journal *j) {
  struct arena a = j->iter;
  j->iter = (struct arena){0};
  a.len = 0;
  a.oom = 0;
  return a;
}

void lsync__journal_iter_end(lsync_journal *j, struct arena *a) {
  free(j->iter.p); /* a nested listing's */
  j->iter = *a;
}

int lsync__journal_canceled(lsync_journal *j) {
  return lsync__fail(j->ctx, LSYNC_ECANCELED,
                     "journal listing stopped by its callback");
}

/* ---- runs ----------------------------------------------------------- */

/* Local time, since people type and compare job ids with their clocks. */
static void make_job_id(char id[LSYNC_JOB_ID_MAX], double now) {
  time_t t = (time_t)now;
  struct tm tm;
  unsigned char r[2];
  if (!localtime_r(&t, &tm))
    memset(&tm, 0, sizeof tm);
  if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
    /* No kernel randomness: the clock still differs between callers,
     * and a collision only costs another try. */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    r[0] = (unsigned char)(ts.tv_nsec >> 8), r[1] = (unsigned char)getpid();
  }
  snprintf(id, LSYNC_JOB_ID_MAX, "%04d%02d%02d-%02d%02d%02d-%02x%02x",
           (tm.tm_year + 1900) % 10000, (tm.tm_mon + 1) % 100, tm.tm_mday % 100,
           tm.tm_hour % 100, tm.tm_min % 100, tm.tm_sec % 100, r[0], r[1]);
}

int lsync_journal_run_new(lsync_journal *j, const char *source,
                          const char *dest, const char *plan,
                          char id_out[LSYNC_JOB_ID_MAX]) {
  sqlite3_stmt *st = NULL;
  int rc = prepare(j, ST_RUN_NEW, NULL, &st);
  if (rc < 0)
    return rc;
  double now = lsync_wall_time();
  /* 65536 suffixes per second: a collision is rare, and retried. */
  for (int tries = 0; tries < 64; tries++) {
    make_job_id(id_out, now);
    rc = sqlite3_bind_text(st, 1, id_out, -1, SQLITE_TRANSIENT);
    rc |= sqlite3_bind_text(st, 2, source ? source : "", -1, SQLITE_STATIC);
    rc |= sqlite3_bind_text(st, 3, dest ? dest : "", -1, SQLITE_STATIC);
    rc |= sqlite3_bind_text(st, 4, plan ? plan : "", -1, SQLITE_STATIC);
    rc |= sqlite3_bind_int64(st, 5, (sqlite3_int64)getpid());
    rc |= sqlite3_bind_double(st, 6, now);
    rc = lsync__journal_step(j, st, rc, "cannot add run");
    if (rc == SQLITE_DONE)
      return 0;
    if (rc != SQLITE_CONSTRAINT_PRIMARYKEY)
      return LSYNC_EJOURNAL;
  }
  id_out[0] = '\0';
  return lsync__fail(j->ctx, LSYNC_EJOURNAL,
                     "journal %s: no free job id after 64 tries", j->path);
}

int lsync_journal_run_get(lsync_journal *j, const char *id,
                          lsync_run_rec *out) {
  sqlite3_stmt *st = NULL;
  struct run_slot s = {0};
  int rc = prepare(j, ST_RUN_GET, id, &st);
  if (rc < 0 || (rc = get_one(j, st, run_from_row, &s)) < 0)
    return rc;
  if (rc == 0)
    return no_job(j, id);
  run_fix(&s, j->out.p);
  *out = s.r;
  return 0;
}

/* The end of an UPDATE by job id: ENOENT when it matched no row. */
static int updated(lsync_journal *j, int rc, const char *id) {
  if (rc != SQLITE_DONE)
    return LSYNC_EJOURNAL;
  return sqlite3_changes(j->db) > 0 ? 0 : no_job(j, id);
}

int lsync_journal_run_set_state(lsync_journal *j, const char *id,
                                const char *state, int exit_code) {
  sqlite3_stmt *st = NULL;
  if (!state || !*state)
    return lsync__fail(j->ctx, LSYNC_EINVAL, "run_set_state: no state");
  int rc = prepare(j, ST_RUN_STATE, id, &st);
  if (rc < 0)
    return rc;
  rc = sqlite3_bind_text(st, 2, state, -1, SQLITE_STATIC);
  rc |= sqlite3_bind_int(st, 3, exit_code);
  rc |= sqlite3_bind_double(st, 4, lsync_wall_time());
  rc |= sqlite3_bind_int64(st, 5, (sqlite3_int64)getpid());
  return updated(j, lsync__journal_step(j, st, rc, "cannot set run state"), id);
}

int lsync_journal_run_set_scan_complete(lsync_journal *j, const char *id,
                                        int complete) {
  sqlite3_stmt *st = NULL;
  int rc = prepare(j, ST_RUN_SCAN, id, &st);
  if (rc < 0)
    return rc;
  rc = sqlite3_bind_int(st, 2, complete != 0);
  return updated(j, lsync__journal_step(j, st, rc, "cannot set scan_complete"),
                 id);
}

/* Runs are few: all are copied out, then the callbacks run. */
int lsync_journal_runs(lsync_journal *j, lsync_run_cb cb, void *ud) {
  sqlite3_stmt *st = NULL;
  int rc = prepare(j, ST_RUNS, NULL, &st);
  if (rc < 0)
    return rc;
  struct arena a = lsync__journal_iter_begin(j);
  struct run_slot *slots = NULL;
  size_t n = 0, cap = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (n == cap) {
      cap = cap ? 2 * cap : 16;
      struct run_slot *p = realloc(slots, cap * sizeof *p);
      if (!p) {
        a.oom = 1;
        break;
      }
      slots = p;
    }
    run_from_row(st, &slots[n++], &a);
  }
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    rc = lsync__journal_fail(j, "cannot list runs");
  else if (a.oom)
    rc = lsync__fail(j->ctx, LSYNC_ENOMEM, "out of memory");
  else
    rc = 0;
  sqlite3_reset(st);
  for (size_t i = 0; rc == 0 && i < n; i++) {
    run_fix(&slots[i], a.p);
    if (cb(ud, &slots[i].r))
      rc = lsync__journal_canceled(j);
  }
  free(slots);
  lsync__journal_iter_end(j, &a);
  return rc;
}

/* ---- chunks --------------------------------------------------------- */

int lsync_journal_chunk_add(lsync_journal *j, const char *id, unsigned index,
                            const void *list, size_t list_len, uint64_t files,
                            uint64_t bytes) {
  sqlite3_stmt *st = NULL;
  int rc = prepare(j, ST_CHUNK_ADD, id, &st);
  if (rc < 0)
    return rc;
  rc = sqlite3_bind_int64(st, 2, (sqlite3_int64)index);
  rc |= sqlite3_bind_int64(st, 3, (sqlite3_int64)files);
  rc |= sqlite3_bind_int64(st, 4, (sqlite3_int64)bytes);
  /* A NULL pointer would bind SQL NULL, not an empty list. */
  rc |= list && list_len
            ? sqlite3_bind_blob64(st, 5, list, list_len, SQLITE_STATIC)
            : sqlite3_bind_zeroblob(st, 5, 0);
  rc = lsync__journal_step(j, st, rc, "cannot add chunk");
  if (rc == SQLITE_DONE)
    return 0;
  if (rc == SQLITE_CONSTRAINT_PRIMARYKEY)
    return lsync__fail(j->ctx, LSYNC_EINVAL, "job '%s' already has chunk %u",
                       id, index);
  return rc == SQLITE_CONSTRAINT_FOREIGNKEY ? no_job(j, id) : LSYNC_EJOURNAL;
}

int lsync_journal_chunk_update(lsync_journal *j, const char *id,
                               const lsync_chunk_rec *r) {
  sqlite3_stmt *st = NULL;
  if ((unsigned)r->state > LSYNC_CHUNK_FAILED)
    return lsync__fail(j->ctx, LSYNC_EINVAL, "invalid chunk state %d",
                       (int)r->state);
  int rc = prepare(j, ST_CHUNK_UPDATE, id, &st);
  if (rc < 0)
    return rc;
  rc = sqlite3_bind_int64(st, 2, (sqlite3_int64)r->index);
  rc |= sqlite3_bind_int(st, 3, (int)r->state);
  rc |= sqlite3_bind_int64(st, 4, (sqlite3_int64)r->attempts);
  rc |= sqlite3_bind_int(st, 5, r->exit_code);
  rc |= sqlite3_bind_int(st, 6, r->term_signal);
  rc |= sqlite3_bind_text(st, 7, r->host ? r->host : "", -1, SQLITE_STATIC);
  rc |= sqlite3_bind_text(st, 8, r->error ? r->error : "", -1, SQLITE_STATIC);
  rc |= sqlite3_bind_double(st, 9, r->started);
  rc |= sqlite3_bind_double(st, 10, r->finished);
  rc = lsync__journal_step(j, st, rc, "cannot update chunk");
  if (rc != SQLITE_DONE)
    return LSYNC_EJOURNAL;
  return sqlite3_changes(j->db) > 0 ? 0 : no_chunk(j, id, r->index);
}

#define CHUNK_BATCH 64

/* Copy up to CHUNK_BATCH chunks after index `after` (-1: from the start)
 * into slots; *more says whether the batch stopped before the end. */
static int chunk_batch(lsync_journal *j, const char *id, sqlite3_int64 after,
                       int with_lists, struct chunk_slot *slots, size_t *n,
                       struct arena *a, int *more) {
  sqlite3_stmt *st = NULL;
  *n = 0;
  *more = 0;
  int rc = prepare(j, ST_CHUNKS, id, &st);
  if (rc < 0)
    return rc;
  rc = sqlite3_bind_int64(st, 2, after);
  rc |= sqlite3_bind_int(st, 3, with_lists != 0);
  return lsync__journal_batch(j, st, rc, chunk_from_row, slots, sizeof *slots,
                              CHUNK_BATCH, n, a, more, "cannot list chunks");
}

/* 0 if the run exists, else ENOENT (or an error). */
static int run_exists(lsync_journal *j, const char *id) {
  sqlite3_stmt *st = NULL;
  int rc = prepare(j, ST_RUN_EXISTS, id, &st);
  if (rc < 0)
    return rc;
  rc = sqlite3_step(st);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    lsync__journal_fail(j, "cannot look up run");
  sqlite3_reset(st);
  if (rc == SQLITE_ROW)
    return 0;
  return rc == SQLITE_DONE ? no_job(j, id) : LSYNC_EJOURNAL;
}

int lsync_journal_chunks(lsync_journal *j, const char *id, int with_lists,
                         lsync_chunk_rec_cb cb, void *ud) {
  struct chunk_slot slots[CHUNK_BATCH];
  struct arena a = lsync__journal_iter_begin(j);
  sqlite3_int64 after = -1;
  int rc, more, any = 0;
  do {
    size_t n;
    a.len = 0;
    rc = chunk_batch(j, id, after, with_lists, slots, &n, &a, &more);
    if (rc < 0)
      break;
    if (n == 0 && !any)
      rc = run_exists(j, id); /* an unknown job is ENOENT, not empty */
    any = 1;
    for (size_t i = 0; i < n && rc == 0; i++) {
      chunk_fix(&slots[i], a.p);
      if (cb(ud, &slots[i].r))
        rc = lsync__journal_canceled(j);
    }
    if (n)
      after = slots[n - 1].r.index;
  } while (rc == 0 && more);
  lsync__journal_iter_end(j, &a);
  return rc;
}

int lsync_journal_chunk_get(lsync_journal *j, const char *id, unsigned index,
                            lsync_chunk_rec *out) {
  sqlite3_stmt *st = NULL;
  struct chunk_slot s = {0};
  int rc = prepare(j, ST_CHUNK_GET, id, &st);
  if (rc < 0)
    return rc;
  if (sqlite3_bind_int64(st, 2, (sqlite3_int64)index) != SQLITE_OK)
    return lsync__journal_fail(j, "cannot bind the index");
  if ((rc = get_one(j, st, chunk_from_row, &s)) < 0)
    return rc;
  if (rc == 0)
    return no_chunk(j, id, index);
  chunk_fix(&s, j->out.p);
  *out = s.r;
  return 0;
}
