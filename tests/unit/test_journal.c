/*
 * The journal: private state directory and file modes, runs and chunks
 * round trips (lists with NULs, newlines and non-UTF-8 bytes), error
 * codes, transactions, re-entrant callbacks, schema version checks, file
 * records (hostile names, replacement, keys, failures that keep the old
 * record), migration of a version 1 journal, and crash safety: a child
 * writing the journal is killed with SIGKILL at a random moment and the
 * parent checks what survived.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include <libsync/libsync.h>

#include "check.h"
#include "scratch.h"

/* Stop the test: later checks would only repeat the failure. */
#define REQUIRE(cond)                                                          \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: required: %s (%s)\n", __FILE__, __LINE__, #cond, \
              lsync_ctx_errmsg(ctx));                                          \
      cleanup();                                                               \
      exit(1);                                                                 \
    }                                                                          \
  } while (0)

static lsync_ctx *ctx;

static unsigned mode_of(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (unsigned)(st.st_mode & 07777) : 0xffffu;
}

/* The list of chunk i in a crash run: every byte value, NULs and
 * newlines included, and a length that differs per chunk. */
static size_t make_list(unsigned i, unsigned char *buf) {
  size_t n = 1 + (i * 37u) % 5000;
  for (size_t k = 0; k < n; k++)
    buf[k] = (unsigned char)(i * 31u + k * 7u);
  return n;
}

static void test_modes(void) {
  /* umask 0: the journal must not rely on the caller's umask. */
  mode_t old = umask(0);
  lsync_journal *j = NULL;
  const char *dir = at("a/b/state");
  REQUIRE(lsync_journal_open(ctx, dir, &j) == 0);
  CHECK(!strcmp(lsync_journal_dir(j), dir));
  CHECK(mode_of(dir) == 0700);
  CHECK(mode_of(at("a")) == 0700 && mode_of(at("a/b")) == 0700);
  char id[LSYNC_JOB_ID_MAX];
  CHECK(lsync_journal_run_new(j, "/src", "/dst", "{}", id) == 0);
  static const char *const files[] = {"journal.db", "journal.db-wal",
                                      "journal.db-shm"};
  for (int i = 0; i < 3; i++) {
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, files[i]);
    unsigned m = mode_of(p);
    if (m != 0600)
      fprintf(stderr, "%s: mode %04o, want 0600\n", p, m);
    CHECK(m == 0600);
  }
  lsync_journal_close(j);
  umask(old);

  /* A state directory others can read, or owned by someone else, is
   * refused with a message naming it; nothing is created in it. */
  const char *open_dir = at("wide");
  REQUIRE(mkdir(open_dir, 0700) == 0 && chmod(open_dir, 0755) == 0);
  CHECK(lsync_journal_open(ctx, open_dir, &j) == LSYNC_ESTATE && !j);
  CHECK(strstr(lsync_ctx_errmsg(ctx), open_dir) != NULL);
  CHECK(strstr(lsync_ctx_errmsg(ctx), "0755") != NULL);
  CHECK(access(at("wide/journal.db"), F_OK) < 0);
  REQUIRE(chmod(open_dir, 0710) == 0);
  CHECK(lsync_journal_open(ctx, open_dir, &j) == LSYNC_ESTATE);
  if (geteuid() == 0) {
    REQUIRE(chmod(open_dir, 0700) == 0 && chown(open_dir, 65534, 65534) == 0);
    CHECK(lsync_journal_open(ctx, open_dir, &j) == LSYNC_ESTATE);
    CHECK(strstr(lsync_ctx_errmsg(ctx), "owned by uid 65534") != NULL);
  }
  /* A file where the directory should be. */
  FILE *f = fopen(at("plain"), "w");
  REQUIRE(f != NULL);
  fclose(f);
  CHECK(lsync_journal_open(ctx, at("plain"), &j) == LSYNC_ENOTDIR);
  CHECK(lsync_journal_open(ctx, at("plain/sub"), &j) == LSYNC_ENOTDIR);
}

static void test_default_dir(void) {
  char buf[512];
  setenv("SYNCPLAN_STATE_DIR", "/x/state", 1);
  CHECK(lsync_state_dir_default(buf, sizeof buf) == 0 &&
        !strcmp(buf, "/x/state"));
  CHECK(lsync_state_dir_default(buf, 5) == LSYNC_ENAMETOOLONG);
  unsetenv("SYNCPLAN_STATE_DIR");
  setenv("XDG_STATE_HOME", "/xdg", 1);
  CHECK(lsync_state_dir_default(buf, sizeof buf) == 0 &&
        !strcmp(buf, "/xdg/syncplan"));
  setenv("XDG_STATE_HOME", "relative", 1); /* ignored, as XDG says */
  setenv("HOME", "/home/u", 1);
  CHECK(lsync_state_dir_default(buf, sizeof buf) == 0 &&
        !strcmp(buf, "/home/u/.local/state/syncplan"));
  unsetenv("XDG_STATE_HOME");
  unsetenv("HOME");
  CHECK(lsync_state_dir_default(buf, sizeof buf) == LSYNC_ENOENT);
  lsync_journal *j = NULL;
  CHECK(lsync_journal_open(ctx, NULL, &j) == LSYNC_ENOENT && !j);
  setenv("SYNCPLAN_STATE_DIR", at("default"), 1);
  CHECK(lsync_journal_open(ctx, NULL, &j) == 0 &&
        !strcmp(lsync_journal_dir(j), at("default")));
  lsync_journal_close(j);
  unsetenv("SYNCPLAN_STATE_DIR");
}

static int id_ok(const char *id) {
  if (strlen(id) != 20 || id[8] != '-' || id[15] != '-')
    return 0;
  for (int i = 0; i < 20; i++)
    if (i != 8 && i != 15 &&
        !(i < 15 ? id[i] >= '0' && id[i] <= '9'
                 : !!strchr("0123456789abcdef", id[i])))
      return 0;
  return 1;
}

struct collect {
  char ids[8][LSYNC_JOB_ID_MAX];
  const char *last_source; /* the journal's copy, kept past the call */
  int n, stop_at;
};

static int collect_run(void *ud, const lsync_run_rec *r) {
  struct collect *c = ud;
  if (c->n < 8)
    snprintf(c->ids[c->n], LSYNC_JOB_ID_MAX, "%s", r->id);
  c->last_source = r->source;
  return ++c->n == c->stop_at;
}

static void test_runs(lsync_journal *j) {
  char id[3][LSYNC_JOB_ID_MAX];
  for (int i = 0; i < 3; i++) {
    char src[16];
    snprintf(src, sizeof src, "/src%d", i);
    REQUIRE(lsync_journal_run_new(j, src, "host:/dst", "plan text", id[i]) ==
            0);
    CHECK(id_ok(id[i]));
  }
  CHECK(strcmp(id[0], id[1]) && strcmp(id[1], id[2]));
  lsync_run_rec r;
  double now = (double)time(NULL);
  REQUIRE(lsync_journal_run_get(j, id[1], &r) == 0);
  CHECK(!strcmp(r.id, id[1]) && !strcmp(r.state, "running"));
  CHECK(!strcmp(r.source, "/src1") && !strcmp(r.dest, "host:/dst"));
  CHECK(!strcmp(r.plan, "plan text"));
  CHECK(r.scan_complete == 0 && r.exit_code == -1 && r.pid == (int)getpid());
  CHECK(r.started > now - 5 && r.started < now + 5 && r.finished == 0);
  CHECK(r.chunks == 0 && r.files == 0 && r.bytes == 0);

  struct collect c = {.stop_at = -1};
  CHECK(lsync_journal_runs(j, collect_run, &c) == 0);
  CHECK(c.n == 3 && !strcmp(c.ids[0], id[2]) && !strcmp(c.ids[1], id[1]) &&
        !strcmp(c.ids[2], id[0]));
  c = (struct collect){.stop_at = 2};
  CHECK(lsync_journal_runs(j, collect_run, &c) == LSYNC_ECANCELED && c.n == 2);
  /* journal.h: record strings stay valid until the next call. */
  CHECK(!strcmp(c.last_source, "/src1"));

  CHECK(lsync_journal_run_set_state(j, id[0], "done", 0) == 0);
  REQUIRE(lsync_journal_run_get(j, id[0], &r) == 0);
  CHECK(!strcmp(r.state, "done") && r.exit_code == 0 &&
        r.finished >= r.started);
  CHECK(lsync_journal_run_set_state(j, id[0], "running", -1) == 0);
  REQUIRE(lsync_journal_run_get(j, id[0], &r) == 0);
  CHECK(!strcmp(r.state, "running") && r.finished == 0 && r.exit_code == -1);
  CHECK(lsync_journal_run_set_scan_complete(j, id[0], 1) == 0);
  REQUIRE(lsync_journal_run_get(j, id[0], &r) == 0);
  CHECK(r.scan_complete == 1);
  CHECK(lsync_journal_run_set_scan_complete(j, id[0], 0) == 0);
  REQUIRE(lsync_journal_run_get(j, id[0], &r) == 0);
  CHECK(r.scan_complete == 0);

  CHECK(lsync_journal_run_get(j, "20000101-000000-dead", &r) == LSYNC_ENOENT);
  CHECK(strstr(lsync_ctx_errmsg(ctx), "20000101-000000-dead") != NULL);
  CHECK(lsync_journal_run_set_state(j, "nope", "done", 0) == LSYNC_ENOENT);
  CHECK(lsync_journal_run_set_scan_complete(j, "nope", 1) == LSYNC_ENOENT);
  CHECK(lsync_journal_run_get(j, NULL, &r) == LSYNC_EINVAL);
  CHECK(lsync_journal_run_set_state(j, id[0], "", 0) == LSYNC_EINVAL);
}

struct seen {
  lsync_journal *j;
  const char *id;
  unsigned idx[300];
  size_t lens[300];
  int n, with_lists, lists_ok;
};

/* Re-entrant: updates the chunk it is shown and reads another. */
static int collect_chunk(void *ud, const lsync_chunk_rec *r) {
  struct seen *s = ud;
  if (s->n < 300) {
    s->idx[s->n] = r->index;
    s->lens[s->n] = r->list_len;
  }
  s->n++;
  if (!s->with_lists && r->list)
    s->lists_ok = 0;
  lsync_chunk_rec u = *r;
  u.attempts = r->attempts + 1;
  if (lsync_journal_chunk_update(s->j, s->id, &u) != 0)
    s->lists_ok = 0;
  lsync_chunk_rec other;
  if (lsync_journal_chunk_get(s->j, s->id, 0, &other) != 0)
    s->lists_ok = 0;
  return 0;
}

static void test_chunks(lsync_journal *j) {
  char id[LSYNC_JOB_ID_MAX];
  REQUIRE(lsync_journal_run_new(j, "/s", "/d", "", id) == 0);
  static const char list[] = "a\0dir/new\nline\0\xff\xfe-bad\0\0tail";
  size_t len = sizeof list - 1;
  CHECK(lsync_journal_chunk_add(j, id, 0, list, len, 4, 1000) == 0);
  CHECK(lsync_journal_chunk_add(j, id, 1, "x", 2, 1, 5) == 0);
  CHECK(lsync_journal_chunk_add(j, id, 2, NULL, 0, 0, 0) == 0);
  CHECK(lsync_journal_chunk_add(j, id, 1, "y", 2, 1, 5) == LSYNC_EINVAL);
  CHECK(lsync_journal_chunk_add(j, "missing", 0, "y", 2, 1, 5) == LSYNC_ENOENT);

  lsync_chunk_rec r;
  REQUIRE(lsync_journal_chunk_get(j, id, 0, &r) == 0);
  CHECK(r.index == 0 && r.state == LSYNC_CHUNK_PENDING && r.attempts == 0);
  CHECK(r.exit_code == -1 && r.term_signal == 0 && !strcmp(r.host, ""));
  CHECK(!strcmp(r.error, "") && r.files == 4 && r.bytes == 1000);
  CHECK(r.list_len == len && r.list && !memcmp(r.list, list, len));
  CHECK(r.started == 0 && r.finished == 0);
  REQUIRE(lsync_journal_chunk_get(j, id, 2, &r) == 0);
  CHECK(r.list != NULL && r.list_len == 0);
  CHECK(lsync_journal_chunk_get(j, id, 3, &r) == LSYNC_ENOENT);
  CHECK(lsync_journal_chunk_get(j, "missing", 0, &r) == LSYNC_ENOENT);

  static const char err_line[] = "rsync: send_files failed\xff";
  lsync_chunk_rec u = {.index = 0,
                       .state = LSYNC_CHUNK_DONE,
                       .attempts = 2,
                       .exit_code = 23,
                       .term_signal = 0,
                       .host = "dtn1",
                       .error = err_line,
                       .started = 100.5,
                       .finished = 200.25};
  CHECK(lsync_journal_chunk_update(j, id, &u) == 0);
  u.index = 1, u.state = LSYNC_CHUNK_FAILED, u.exit_code = -1;
  u.term_signal = 9, u.host = NULL, u.error = NULL;
  CHECK(lsync_journal_chunk_update(j, id, &u) == 0);
  u.index = 7;
  CHECK(lsync_journal_chunk_update(j, id, &u) == LSYNC_ENOENT);
  CHECK(lsync_journal_chunk_update(j, "missing", &u) == LSYNC_ENOENT);
  u.index = 1, u.state = (lsync_chunk_state)9;
  CHECK(lsync_journal_chunk_update(j, id, &u) == LSYNC_EINVAL);

  REQUIRE(lsync_journal_chunk_get(j, id, 0, &r) == 0);
  CHECK(r.state == LSYNC_CHUNK_DONE && r.attempts == 2 && r.exit_code == 23);
  CHECK(!strcmp(r.host, "dtn1") && !strcmp(r.error, err_line));
  CHECK(r.started == 100.5 && r.finished == 200.25);
  CHECK(r.list_len == len && !memcmp(r.list, list, len)); /* kept */
  REQUIRE(lsync_journal_chunk_get(j, id, 1, &r) == 0);
  CHECK(r.state == LSYNC_CHUNK_FAILED && r.term_signal == 9 &&
        r.exit_code == -1 && !strcmp(r.host, "") && r.files == 1);

  lsync_run_rec run;
  REQUIRE(lsync_journal_run_get(j, id, &run) == 0);
  CHECK(run.chunks == 3 && run.chunks_done == 1 && run.chunks_failed == 1);
  CHECK(run.files == 5 && run.bytes == 1005);

  /* Many chunks, out of order, and lists big enough to split batches. */
  static unsigned char big[3u << 20];
  for (size_t k = 0; k < sizeof big; k++)
    big[k] = (unsigned char)(k * 13);
  for (unsigned i = 250; i >= 3; i--)
    REQUIRE(lsync_journal_chunk_add(j, id, i, big, i % 50 == 0 ? sizeof big : i,
                                    1, i) == 0);
  struct seen s = {.j = j, .id = id, .with_lists = 1, .lists_ok = 1};
  CHECK(lsync_journal_chunks(j, id, 1, collect_chunk, &s) == 0);
  CHECK(s.n == 251 && s.lists_ok);
  int order = 1;
  for (int i = 0; i < 251 && i < s.n; i++)
    order &= s.idx[i] == (unsigned)i &&
             (i < 3 || s.lens[i] == (i % 50 == 0 ? sizeof big : (size_t)i));
  CHECK(order);
  REQUIRE(lsync_journal_chunk_get(j, id, 100, &r) == 0);
  CHECK(r.attempts == 1 && r.list_len == sizeof big &&
        !memcmp(r.list, big, sizeof big));
  s = (struct seen){.j = j, .id = id, .with_lists = 0, .lists_ok = 1};
  CHECK(lsync_journal_chunks(j, id, 0, collect_chunk, &s) == 0);
  CHECK(s.n == 251 && s.lists_ok && s.lens[100] == 0);
  CHECK(lsync_journal_chunks(j, "missing", 0, collect_chunk, &s) ==
        LSYNC_ENOENT);
  char empty[LSYNC_JOB_ID_MAX];
  REQUIRE(lsync_journal_run_new(j, "/s", "/d", NULL, empty) == 0);
  s.n = 0;
  CHECK(lsync_journal_chunks(j, empty, 0, collect_chunk, &s) == 0 && s.n == 0);
}

static int stop_at_3(void *ud, const lsync_chunk_rec *r) {
  (void)r;
  return ++*(int *)ud == 3;
}

static void test_transactions(const char *dir) {
  lsync_journal *j = NULL, *j2 = NULL;
  REQUIRE(lsync_journal_open(ctx, dir, &j) == 0);
  char id[LSYNC_JOB_ID_MAX];
  REQUIRE(lsync_journal_run_new(j, "/s", "/d", "", id) == 0);
  CHECK(lsync_journal_commit(j) == LSYNC_EINVAL);
  CHECK(lsync_journal_begin(j) == 0);
  CHECK(lsync_journal_begin(j) == LSYNC_EBUSY);
  for (unsigned i = 0; i < 10; i++)
    CHECK(lsync_journal_chunk_add(j, id, i, "p", 2, 1, 1) == 0);
  CHECK(lsync_journal_commit(j) == 0);
  CHECK(lsync_journal_commit(j) == LSYNC_EINVAL);
  int n = 0;
  CHECK(lsync_journal_chunks(j, id, 0, stop_at_3, &n) == LSYNC_ECANCELED);
  CHECK(n == 3);

  /* A second handle (as another process would) sees committed work. */
  REQUIRE(lsync_journal_open(ctx, dir, &j2) == 0);
  lsync_run_rec r;
  CHECK(lsync_journal_run_get(j2, id, &r) == 0 && r.chunks == 10);
  /* Uncommitted work is dropped when the handle closes. */
  CHECK(lsync_journal_begin(j) == 0);
  CHECK(lsync_journal_chunk_add(j, id, 10, "p", 2, 1, 1) == 0);
  lsync_journal_close(j);
  CHECK(lsync_journal_run_get(j2, id, &r) == 0 && r.chunks == 10);
  lsync_journal_close(j2);
}

static void test_schema_version(const char *dir) {
  lsync_journal *j = NULL;
  REQUIRE(lsync_journal_open(ctx, dir, &j) == 0);
  lsync_journal_close(j);
  char path[600];
  snprintf(path, sizeof path, "%s/journal.db", dir);
  sqlite3 *db;
  REQUIRE(sqlite3_open(path, &db) == SQLITE_OK);
  sqlite3_stmt *st;
  int v = -1;
  if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) ==
          SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW)
    v = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  CHECK(v == 2);
  CHECK(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL) ==
        SQLITE_OK);
  sqlite3_close(db);
  CHECK(lsync_journal_open(ctx, dir, &j) == LSYNC_EJOURNAL && !j);
  CHECK(strstr(lsync_ctx_errmsg(ctx), "99") != NULL);

  /* Not a database at all. */
  char bad[400];
  snprintf(bad, sizeof bad, "%s/garbage", scratch);
  REQUIRE(mkdir(bad, 0700) == 0);
  snprintf(path, sizeof path, "%s/journal.db", bad);
  FILE *f = fopen(path, "w");
  REQUIRE(f != NULL);
  for (int i = 0; i < 200; i++)
    fputs("this is not an SQLite database\n", f);
  fclose(f);
  CHECK(lsync_journal_open(ctx, bad, &j) == LSYNC_EJOURNAL && !j);
  CHECK(strstr(lsync_ctx_errmsg(ctx), "journal.db") != NULL);
}

/* ---- file records --------------------------------------------------- */

struct rent {
  char path[4100];
  size_t len;
  lsync_record_entry e; /* path and hash point into this struct */
  unsigned char hash[20];
};

/* Names a shell script or a line-based format would get wrong: the
 * empty path, newlines, bytes that are not UTF-8, control bytes, and a
 * path longer than a page. */
static const char *const hostile[] = {
    "",      "new\nline", "\xff\xfe-bad", "tab\t",  "ctl\x01", "dir/\xc3\x28",
    "-dash", "z",         "\xff",         "a b/c d"};
#define NHOSTILE (sizeof hostile / sizeof *hostile)

/* Entry i of generation gen: its values differ per generation, so a row
 * left from an earlier one shows; unsigned values use their top bit. */
static void rec_make(int gen, size_t i, struct rent *r) {
  if (i < NHOSTILE)
    r->len = (size_t)snprintf(r->path, sizeof r->path, "%s", hostile[i]);
  else if (i == NHOSTILE) {
    memset(r->path, 'L', 4000);
    r->len = 4000;
  } else
    r->len = (size_t)snprintf(r->path, sizeof r->path, "f/%07zu", i);
  memset(&r->e, 0, sizeof r->e);
  r->e.path = r->path;
  r->e.path_len = r->len;
  r->e.type = (lsync_type)(i % 8);
  r->e.size = i == 3 ? UINT64_MAX : (uint64_t)gen * 1000003u + i;
  r->e.mtime = i == 4 ? -1 : 1700000000 + (int64_t)i * gen;
  r->e.mtime_nsec = i == 4 ? 999999999 : (int32_t)(i * 7 % 1000000000);
  r->e.dev = 0xfedcba9876543210u ^ (uint64_t)gen;
  r->e.ino = ((uint64_t)1 << 63) + i;
  if (i % 2 == 0) {
    for (size_t k = 0; k < sizeof r->hash; k++)
      r->hash[k] = (unsigned char)(k * 13 + i + (size_t)gen); /* NULs too */
    r->e.hash = r->hash;
    r->e.hash_len = sizeof r->hash;
  }
}

static int rent_cmp(const void *a, const void *b) {
  const struct rent *x = a, *y = b;
  size_t n = x->len < y->len ? x->len : y->len;
  int c = memcmp(x->path, y->path, n);
  return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* n entries of generation gen, sorted by path as the journal gives them
 * back (the pointers are fixed after the sort). */
static struct rent *rec_set(int gen, size_t n) {
  struct rent *v = calloc(n ? n : 1, sizeof *v);
  REQUIRE(v != NULL);
  for (size_t i = 0; i < n; i++)
    rec_make(gen, i, &v[i]);
  qsort(v, n, sizeof *v, rent_cmp);
  for (size_t i = 0; i < n; i++) {
    v[i].e.path = v[i].path;
    v[i].e.hash = v[i].e.hash_len ? v[i].hash : NULL;
  }
  return v;
}

/* The replacement's source: the set backwards (the journal sorts), an
 * error at fail_at; bad_type makes that entry's type invalid. */
struct feed {
  struct rent *v;
  size_t n, i, fail_at, bad_type;
};

static int feed_next(void *ud, lsync_record_entry *e) {
  struct feed *f = ud;
  if (f->i == f->fail_at)
    return LSYNC_ECANCELED;
  if (f->i == f->n)
    return 0;
  *e = f->v[f->n - 1 - f->i].e;
  if (f->i++ == f->bad_type)
    e->type = (lsync_type)42;
  return 1;
}

static int replace(lsync_journal *j, const char *key, struct rent *v,
                   size_t n) {
  struct feed f = {v, n, 0, SIZE_MAX, SIZE_MAX};
  return lsync_journal_record_replace(j, key, feed_next, &f);
}

/* Compares what the journal gives with the sorted set, in order. */
struct want {
  lsync_journal *j;
  struct rent *v;
  size_t n, i, bad, stop_at;
};

static int want_entry(void *ud, const lsync_record_entry *e) {
  struct want *w = ud;
  const lsync_record_entry *x = w->i < w->n ? &w->v[w->i].e : NULL;
  if (!x || e->path_len != x->path_len ||
      memcmp(e->path, x->path, x->path_len) || e->path[e->path_len] ||
      e->type != x->type || e->size != x->size || e->mtime != x->mtime ||
      e->mtime_nsec != x->mtime_nsec || e->dev != x->dev || e->ino != x->ino ||
      e->hash_len != x->hash_len || (!e->hash) != (!x->hash) ||
      (x->hash && memcmp(e->hash, x->hash, x->hash_len)))
    w->bad++;
  /* Re-entrant: the journal can be called from the callback. */
  uint64_t n;
  if (w->i % 500 == 0 && lsync_journal_record_count(w->j, "other", &n) != 0)
    w->bad++;
  return ++w->i == w->stop_at;
}

/* key holds exactly the set v. */
static int holds(lsync_journal *j, const char *key, struct rent *v, size_t n) {
  struct want w = {j, v, n, 0, 0, SIZE_MAX};
  uint64_t count;
  return lsync_journal_record_each(j, key, want_entry, &w) == 0 && w.i == n &&
         w.bad == 0 && lsync_journal_record_count(j, key, &count) == 0 &&
         count == n;
}

static void test_records(const char *dir) {
  lsync_journal *j = NULL, *j2 = NULL;
  REQUIRE(lsync_journal_open(ctx, dir, &j) == 0);
  const char *a = "/src\n/dst rsync", *b = "/src /other rclone";
  enum { N = 3000, NB = 40, N3 = 1200 };
  struct rent *g1 = rec_set(1, N), *g2 = rec_set(2, NB), *g3 = rec_set(3, N3);
  CHECK(holds(j, a, NULL, 0)); /* never written: empty */
  CHECK(replace(j, a, g1, N) == 0);
  CHECK(holds(j, a, g1, N));
  CHECK(replace(j, b, g2, NB) == 0);
  CHECK(holds(j, b, g2, NB) && holds(j, a, g1, N));
  /* A second replacement leaves no row of the first. */
  CHECK(replace(j, a, g3, N3) == 0);
  CHECK(holds(j, a, g3, N3) && holds(j, b, g2, NB));

  /* Failures leave the old record whole. */
  struct feed f = {g1, N, 0, 2000, SIZE_MAX};
  CHECK(lsync_journal_record_replace(j, a, feed_next, &f) == LSYNC_ECANCELED);
  f = (struct feed){g1, N, 0, SIZE_MAX, 1500};
  CHECK(lsync_journal_record_replace(j, a, feed_next, &f) == LSYNC_EINVAL);
  CHECK(holds(j, a, g3, N3));
  CHECK(lsync_journal_record_replace(j, NULL, feed_next, &f) == LSYNC_EINVAL);

  /* The callback stops a listing. */
  struct want w = {j, g3, N3, 0, 0, 700};
  CHECK(lsync_journal_record_each(j, a, want_entry, &w) == LSYNC_ECANCELED);
  CHECK(w.i == 700 && w.bad == 0);

  /* Inside the caller's transaction: a failed replacement undoes itself
   * only, a good one commits with the caller's other changes, or goes
   * with them when the handle closes uncommitted. */
  char id[LSYNC_JOB_ID_MAX];
  REQUIRE(lsync_journal_begin(j) == 0);
  CHECK(lsync_journal_run_new(j, "/s", "/d", "", id) == 0);
  f = (struct feed){g1, N, 0, 10, SIZE_MAX};
  CHECK(lsync_journal_record_replace(j, b, feed_next, &f) == LSYNC_ECANCELED);
  CHECK(holds(j, b, g2, NB));
  struct rent *g1_100 = rec_set(1, 100);
  CHECK(replace(j, b, g1_100, 100) == 0);
  CHECK(lsync_journal_commit(j) == 0);
  REQUIRE(lsync_journal_open(ctx, dir, &j2) == 0);
  lsync_run_rec r;
  CHECK(lsync_journal_run_get(j2, id, &r) == 0);
  CHECK(holds(j2, b, g1_100, 100));
  REQUIRE(lsync_journal_begin(j2) == 0);
  CHECK(replace(j2, b, NULL, 0) == 0);
  lsync_journal_close(j2);
  CHECK(holds(j, b, g1_100, 100));
  /* An empty source empties the record. */
  CHECK(replace(j, b, NULL, 0) == 0);
  CHECK(holds(j, b, NULL, 0) && holds(j, a, g3, N3));
  lsync_journal_close(j);
  free(g1), free(g2), free(g3), free(g1_100);
}

static int user_version(const char *dir) {
  char path[600];
  snprintf(path, sizeof path, "%s/journal.db", dir);
  sqlite3 *db;
  sqlite3_stmt *st;
  int v = -1;
  if (sqlite3_open(path, &db) == SQLITE_OK &&
      sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) ==
          SQLITE_OK) {
    if (sqlite3_step(st) == SQLITE_ROW)
      v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
  }
  sqlite3_close(db);
  return v;
}

/* A journal written by the code before file records (schema version 1,
 * its schema verbatim) opens, keeps its runs and gains the records. */
static void test_migrate_v1(const char *dir) {
  static const char v1[] =
      "PRAGMA journal_mode = WAL;"
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
      " PRIMARY KEY(run_id, idx));"
      "PRAGMA user_version = 1;"
      "INSERT INTO runs(id, state, source, dest, plan, started, finished)"
      " VALUES('20240101-120000-abcd', 'done', '/old', '/dst', '{}', 1, 2);"
      "INSERT INTO chunks(run_id, idx, state, files, bytes, list)"
      " VALUES('20240101-120000-abcd', 0, 2, 1, 10, x'6100');";
  REQUIRE(mkdir(dir, 0700) == 0);
  char path[600];
  snprintf(path, sizeof path, "%s/journal.db", dir);
  sqlite3 *db;
  REQUIRE(sqlite3_open(path, &db) == SQLITE_OK);
  REQUIRE(sqlite3_exec(db, v1, NULL, NULL, NULL) == SQLITE_OK);
  sqlite3_close(db);
  REQUIRE(chmod(path, 0600) == 0);
  CHECK(user_version(dir) == 1);

  lsync_journal *j = NULL;
  REQUIRE(lsync_journal_open(ctx, dir, &j) == 0);
  CHECK(user_version(dir) == 2);
  lsync_run_rec r;
  CHECK(lsync_journal_run_get(j, "20240101-120000-abcd", &r) == 0 &&
        !strcmp(r.source, "/old") && r.chunks == 1 && r.chunks_done == 1);
  struct rent *v = rec_set(5, 50);
  CHECK(replace(j, "k", v, 50) == 0 && holds(j, "k", v, 50));
  lsync_journal_close(j);
  /* Opening again finds the current version and changes nothing. */
  REQUIRE(lsync_journal_open(ctx, dir, &j) == 0);
  CHECK(holds(j, "k", v, 50));
  lsync_journal_close(j);
  free(v);
}

/* ---- crash safety --------------------------------------------------- */

#define CRASH_CHUNKS 200

/* The child: every chunk added in its own transaction (with an update in
 * the same transaction), then state updates until it is killed. */
static void crash_writer(const char *dir, const char *id, int fd,
                         uint64_t seed) {
  alarm(30); /* never outlive a parent that died */
  lsync_ctx *c;
  lsync_journal *j;
  if (lsync_ctx_new(&c) < 0 || lsync_journal_open(c, dir, &j) < 0)
    _exit(2);
  if (write(fd, "r", 1) != 1)
    _exit(2);
  static unsigned char buf[5000];
  for (unsigned i = 0; i < CRASH_CHUNKS; i++) {
    size_t n = make_list(i, buf);
    lsync_chunk_rec r = {.index = i,
                         .state = LSYNC_CHUNK_RUNNING,
                         .attempts = 1,
                         .exit_code = -1,
                         .host = "h",
                         .error = ""};
    if (lsync_journal_begin(j) < 0 ||
        lsync_journal_chunk_add(j, id, i, buf, n, i, n) < 0 ||
        lsync_journal_chunk_update(j, id, &r) < 0 || lsync_journal_commit(j))
      _exit(3);
  }
  if (write(fd, "a", 1) != 1)
    _exit(2);
  for (unsigned k = 2;; k++) {
    seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
    lsync_chunk_rec r = {.index = (unsigned)(seed % CRASH_CHUNKS),
                         .state = (lsync_chunk_state)(k % 4),
                         .attempts = k,
                         .exit_code = (int)(k % 256),
                         .host = "host",
                         .error = "some error line"};
    if (lsync_journal_chunk_update(j, id, &r) < 0)
      _exit(4);
  }
}

/* The child: five chunks committed, five more in a transaction that is
 * still open when it is killed. */
static void crash_in_transaction(const char *dir, const char *id, int fd) {
  alarm(30);
  lsync_ctx *c;
  lsync_journal *j;
  if (lsync_ctx_new(&c) < 0 || lsync_journal_open(c, dir, &j) < 0)
    _exit(2);
  for (unsigned i = 0; i < 10; i++) {
    if ((i == 0 || i == 5) && lsync_journal_begin(j) < 0)
      _exit(3);
    if (lsync_journal_chunk_add(j, id, i, "x", 2, 1, 1) < 0)
      _exit(3);
    if (i == 4 && lsync_journal_commit(j) < 0)
      _exit(3);
  }
  if (write(fd, "r", 1) != 1)
    _exit(2);
  for (;;)
    pause();
}

struct crash_check {
  unsigned next;
  int ok;
  unsigned char buf[5000];
};

static int check_crash_chunk(void *ud, const lsync_chunk_rec *r) {
  struct crash_check *c = ud;
  size_t n = make_list(r->index, c->buf);
  /* Chunks were committed in index order, so those present are a
   * prefix, and each is complete. */
  if (r->index != c->next++ || r->list_len != n || r->files != r->index ||
      r->bytes != n || memcmp(r->list, c->buf, n) != 0 || r->attempts < 1 ||
      strcmp(r->host, "") == 0) {
    fprintf(stderr, "crash: chunk %u damaged (len %zu, want %zu)\n", r->index,
            r->list_len, n);
    c->ok = 0;
  }
  return 0;
}

static int integrity_ok(const char *dir) {
  char path[600], res[64] = "";
  snprintf(path, sizeof path, "%s/journal.db", dir);
  sqlite3 *db;
  sqlite3_stmt *st;
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
    return 0;
  if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) ==
          SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW)
    snprintf(res, sizeof res, "%s", (const char *)sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  sqlite3_close(db);
  if (strcmp(res, "ok"))
    fprintf(stderr, "integrity_check: %s\n", res);
  return !strcmp(res, "ok");
}

/* Fork a child running fn, wait for its first byte, sleep delay_us,
 * SIGKILL it; returns how many bytes it had written (progress marks). */
static int kill_child(const char *dir, const char *id, int in_tx, uint64_t seed,
                      unsigned delay_us) {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    if (in_tx)
      crash_in_transaction(dir, id, fds[1]);
    crash_writer(dir, id, fds[1], seed);
  }
  close(fds[1]);
  char b;
  int marks = (int)read(fds[0], &b, 1);
  CHECK(marks == 1);
  usleep(delay_us);
  kill(pid, SIGKILL);
  int status;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
    fprintf(stderr, "crash child ended with status %#x\n", status);
  CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  while (read(fds[0], &b, 1) == 1)
    marks++;
  close(fds[0]);
  return marks;
}

static void test_crash(const char *dir) {
  uint64_t seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
  printf("crash test seed %llu\n", (unsigned long long)seed);
  int mid_adds = 0;
  for (int round = 0; round < 10; round++) {
    lsync_journal *j = NULL;
    char id[LSYNC_JOB_ID_MAX];
    REQUIRE(lsync_journal_open(ctx, dir, &j) == 0);
    REQUIRE(lsync_journal_run_new(j, "/s", "/d", "", id) == 0);
    lsync_journal_close(j); /* no SQLite handle crosses fork() */
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    unsigned delay = (unsigned)((seed >> 33) % 15000);
    int marks = kill_child(dir, id, 0, seed | 1, delay);
    mid_adds += marks < 2;

    REQUIRE(lsync_journal_open(ctx, dir, &j) == 0);
    CHECK(integrity_ok(dir));
    struct crash_check c = {.ok = 1};
    CHECK(lsync_journal_chunks(j, id, 1, check_crash_chunk, &c) == 0);
    CHECK(c.ok);
    /* The child reported finishing the adds: all of them survived. */
    CHECK(marks < 2 || c.next == CRASH_CHUNKS);
    lsync_run_rec r;
    CHECK(lsync_journal_run_get(j, id, &r) == 0 && r.chunks == c.next);
    lsync_journal_close(j);
  }
  printf("crash test: %d of 10 kills landed during the adds\n", mid_adds);

  lsync_journal *j = NULL;
  char id[LSYNC_JOB_ID_MAX];
  REQUIRE(lsync_journal_open(ctx, dir, &j) == 0);
  REQUIRE(lsync_journal_run_new(j, "/s", "/d", "", id) == 0);
  lsync_journal_close(j);
  kill_child(dir, id, 1, 0, 0);
  REQUIRE(lsync_journal_open(ctx, dir, &j) == 0);
  CHECK(integrity_ok(dir));
  lsync_run_rec r;
  CHECK(lsync_journal_run_get(j, id, &r) == 0 && r.chunks == 5);
  lsync_journal_close(j);
}

int main(void) {
  if (scratch_make("test_journal") < 0)
    return 1;
  if (lsync_ctx_new(&ctx) < 0)
    return 1;
  test_modes();
  test_default_dir();
  lsync_journal *j = NULL;
  REQUIRE(lsync_journal_open(ctx, at("main"), &j) == 0);
  test_runs(j);
  test_chunks(j);
  lsync_journal_close(j);
  test_transactions(at("main"));
  test_schema_version(at("schema"));
  test_records(at("records"));
  test_migrate_v1(at("v1"));
  test_crash(at("crash"));
  lsync_ctx_free(ctx);
  cleanup();
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
