/*
 * The journal: private state directory and file modes, runs and chunks
 * round trips (lists with NULs, newlines and non-UTF-8 bytes), error
 * codes, transactions, re-entrant callbacks, schema version checks, and
 * crash safety: a child writing the journal is killed with SIGKILL at a
 * random moment and the parent checks what survived.
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
  CHECK(v == 1);
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
  test_crash(at("crash"));
  lsync_ctx_free(ctx);
  cleanup();
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
