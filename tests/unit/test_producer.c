/*
 * Chunk producers on real trees and real commands (find, sh, printf,
 * sleep): crawl and listing producers agree with a plain scan, listings
 * parse find's records and honour the filter, failures carry the command's
 * message, the queue bounds the thread, and freeing mid-run is prompt and
 * leak-free.  Every run is driven by lsync_run, so a producer that keeps
 * the loop alive forever hangs the test (ctest's timeout fails it).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libsync/libsync.h>

#include "check.h"

#define FIND_FORMAT "%y %m %s %T@ %D %i %n %U %G %P\\0%l\\0"

static char scratch[512];

/* ---- trees --------------------------------------------------------------- */

static void die(const char *what, const char *path) {
  fprintf(stderr, "setup failed: %s %s: %s\n", what, path, strerror(errno));
  exit(2);
}

static void at(char *buf, size_t n, const char *root, const char *rel) {
  snprintf(buf, n, "%s/%s", root, rel);
}

static void mk_dir(const char *root, const char *rel) {
  char p[4096];
  at(p, sizeof p, root, rel);
  if (mkdir(p, 0755) < 0)
    die("mkdir", p);
}

static void mk_file(const char *root, const char *rel, size_t size) {
  char p[4096];
  at(p, sizeof p, root, rel);
  FILE *f = fopen(p, "w");
  if (!f)
    die("create", p);
  for (size_t i = 0; i < size; i++)
    fputc('a' + (int)(i % 26), f);
  fclose(f);
}

/* 10 dirs x 3 subdirs x 10 files, a hard-link pair across directories, a
 * symlink, an empty dir, names with spaces, a tab and a newline. */
static void make_tree(const char *root) {
  char rel[256];
  if (mkdir(root, 0755) < 0)
    die("mkdir", root);
  for (int d = 0; d < 10; d++) {
    snprintf(rel, sizeof rel, "d%d", d);
    mk_dir(root, rel);
    for (int s = 0; s < 3; s++) {
      snprintf(rel, sizeof rel, "d%d/sub%d", d, s);
      mk_dir(root, rel);
      for (int f = 0; f < 10; f++) {
        snprintf(rel, sizeof rel, "d%d/sub%d/f%d", d, s, f);
        mk_file(root, rel, (size_t)((d * 31 + s * 7 + f * 113) % 900));
      }
    }
  }
  mk_file(root, "d2/hardlink_a", 3000);
  char a[4096], b[4096];
  at(a, sizeof a, root, "d2/hardlink_a");
  at(b, sizeof b, root, "d8/sub2/hardlink_b");
  if (link(a, b) < 0)
    die("link", b);
  at(b, sizeof b, root, "link");
  if (symlink("d0/sub0", b) < 0)
    die("symlink", b);
  mk_dir(root, "empty");
  mk_dir(root, "with space");
  mk_file(root, "with space/file one", 10);
  mk_file(root, "new\nline", 5);
  mk_file(root, "d1/tab\there", 7);
  /* One directory without the owner's write bit (dirs_unwritable). */
  at(b, sizeof b, root, "empty");
  if (chmod(b, 0555) < 0)
    die("chmod", b);
}

/* 500 entries: one directory and 499 files in it. */
static void make_flat(const char *root) {
  char rel[64];
  if (mkdir(root, 0755) < 0)
    die("mkdir", root);
  mk_dir(root, "flat");
  for (int i = 0; i < 499; i++) {
    snprintf(rel, sizeof rel, "flat/f%03d", i);
    mk_file(root, rel, 1);
  }
}

static int rm_one(const char *p, const struct stat *st, int flag,
                  struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  remove(p);
  return 0;
}

/* ---- running producers --------------------------------------------------- */

struct item {
  char *path;
  size_t len;
  uint64_t size;
  lsync_type type;
  unsigned chunk;
};

struct items {
  struct item *v;
  size_t n, cap;
};

static void items_add(struct items *s, const char *path, size_t len,
                      uint64_t size, lsync_type type, unsigned chunk) {
  if (s->n == s->cap) {
    s->cap = s->cap ? s->cap * 2 : 256;
    s->v = realloc(s->v, s->cap * sizeof *s->v);
    if (!s->v)
      abort();
  }
  struct item *it = &s->v[s->n++];
  it->path = malloc(len + 1);
  if (!it->path)
    abort();
  memcpy(it->path, path, len + 1);
  it->len = len;
  it->size = size;
  it->type = type;
  it->chunk = chunk;
}

static void items_free(struct items *s) {
  for (size_t i = 0; i < s->n; i++)
    free(s->v[i].path);
  free(s->v);
  memset(s, 0, sizeof *s);
}

static int item_cmp(const void *a, const void *b) {
  const struct item *x = a, *y = b;
  size_t n = x->len < y->len ? x->len : y->len;
  int c = memcmp(x->path, y->path, n);
  return c ? c : (x->len > y->len) - (x->len < y->len);
}

static void items_sort(struct items *s) {
  qsort(s->v, s->n, sizeof *s->v, item_cmp);
}

static const struct item *items_find(const struct items *s, const char *p) {
  struct item key = {(char *)p, strlen(p), 0, 0, 0};
  return bsearch(&key, s->v, s->n, sizeof *s->v, item_cmp);
}

/* What one producer run saw. */
struct run {
  lsync_producer *p;
  struct items got;
  unsigned chunks;
  unsigned ready_calls;
  unsigned ready_after_done;
  int done, status;
  char errmsg[1024];
  int hold;             /* on_ready takes nothing */
  int free_after_first; /* on_ready frees the producer after one chunk */
  unsigned queued_max;  /* for checking the queue bound */
  lsync_scan_stats stats;
};

static void drain(struct run *r) {
  lsync_chunk *c;
  while (r->p && lsync_producer_take(r->p, &c)) {
    r->chunks++;
    for (size_t i = 0; i < lsync_chunk_len(c); i++) {
      lsync_chunk_item it;
      lsync_chunk_item_at(c, i, &it);
      items_add(&r->got, it.path, it.path_len, it.size, it.type,
                lsync_chunk_index(c));
    }
    lsync_chunk_free(c);
    if (r->free_after_first) {
      lsync_producer_free(r->p);
      r->p = NULL;
      return;
    }
  }
  int st;
  if (r->p && !r->done && lsync_producer_done(r->p, &st)) {
    r->done = 1;
    r->status = st;
    snprintf(r->errmsg, sizeof r->errmsg, "%s", lsync_producer_errmsg(r->p));
    lsync_producer_stats(r->p, &r->stats);
  }
}

static void on_ready(void *ud, lsync_producer *p) {
  struct run *r = ud;
  if (r->p != p)
    fprintf(stderr, "on_ready with the wrong producer\n"), abort();
  r->ready_calls++;
  if (r->done)
    r->ready_after_done++;
  if (!r->hold)
    drain(r);
}

static lsync_producer_opts base_opts(struct run *r) {
  lsync_producer_opts o;
  lsync_producer_opts_init(&o);
  o.on_ready = on_ready;
  o.ud = r;
  return o;
}

/* Start, run the loop until nothing is active, free.  The loop must end
 * by itself once the producer is done. */
static int run_producer(lsync_ctx *ctx, const lsync_producer_opts *o,
                        struct run *r) {
  int rc = lsync_producer_start(ctx, o, &r->p);
  if (rc < 0) {
    fprintf(stderr, "start: %s\n", lsync_ctx_errmsg(ctx));
    return rc;
  }
  lsync_run(ctx, LSYNC_RUN_DEFAULT);
  if (!r->done)
    fprintf(stderr, "loop ended before the producer was done\n");
  lsync_producer_free(r->p);
  r->p = NULL;
  return r->done ? 0 : -1;
}

static void scan_all(lsync_ctx *ctx, const char *root,
                     const lsync_filter *filter, struct items *out) {
  lsync_scan_opts so;
  lsync_scan_opts_init(&so);
  so.filter = filter;
  lsync_scan *s;
  if (lsync_scan_open(ctx, root, &so, &s) < 0)
    fprintf(stderr, "scan: %s\n", lsync_ctx_errmsg(ctx)), exit(2);
  const lsync_entry *e;
  while (lsync_scan_next(s, &e) > 0)
    items_add(out, e->path, e->path_len, e->size, e->type, 0);
  lsync_scan_close(s);
  items_sort(out);
}

/* Same paths (sorted, no duplicates), and the same sizes and types; with
 * same_chunks, also each path in the same chunk. */
static int same_items(struct items *a, struct items *b, int same_chunks) {
  items_sort(a);
  items_sort(b);
  for (size_t i = 1; i < a->n; i++)
    if (item_cmp(&a->v[i - 1], &a->v[i]) == 0) {
      fprintf(stderr, "duplicate path '%s'\n", a->v[i].path);
      return 0;
    }
  if (a->n != b->n) {
    fprintf(stderr, "%zu paths, expected %zu\n", a->n, b->n);
    return 0;
  }
  for (size_t i = 0; i < a->n; i++) {
    const struct item *x = &a->v[i], *y = &b->v[i];
    if (item_cmp(x, y) || x->size != y->size || x->type != y->type ||
        (same_chunks && x->chunk != y->chunk)) {
      fprintf(stderr,
              "differs: '%s' %" PRIu64 " %d #%u vs '%s' %" PRIu64 " %d #%u\n",
              x->path, x->size, (int)x->type, x->chunk, y->path, y->size,
              (int)y->type, y->chunk);
      return 0;
    }
  }
  return 1;
}

static void find_argv(const char **argv, const char *root) {
  /* -mindepth 0: the root's own record must not become an entry. */
  const char *v[] = {"find",    root,        "-mindepth", "0",
                     "-printf", FIND_FORMAT, NULL};
  memcpy(argv, v, sizeof v);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- (1) crawl producers ------------------------------------------------- */

static void test_crawl(lsync_ctx *ctx, const char *root,
                       const struct items *want) {
  for (int mode = 0; mode < 2; mode++) {
    struct run r = {0};
    lsync_producer_opts o = base_opts(&r);
    o.root = root;
    if (mode == 0) {
      o.chunk.mode = LSYNC_CHUNK_LIMITS;
      o.chunk.max_files = 10;
    } else {
      o.chunk.mode = LSYNC_CHUNK_COUNT;
      o.chunk.count = 4;
    }
    CHECK(run_producer(ctx, &o, &r) == 0);
    CHECK(r.status == 0);
    CHECK(r.ready_calls >= 1);
    struct items copy = {0};
    for (size_t i = 0; i < want->n; i++)
      items_add(&copy, want->v[i].path, want->v[i].len, want->v[i].size,
                want->v[i].type, 0);
    CHECK(same_items(&r.got, &copy, 0));
    CHECK(r.stats.entries == want->n);
    CHECK(r.stats.dirs_unwritable == 1);
    CHECK(mode == 0 ? r.chunks >= want->n / 10 : r.chunks == 4);
    const struct item *a = items_find(&r.got, "d2/hardlink_a");
    const struct item *b = items_find(&r.got, "d8/sub2/hardlink_b");
    CHECK(a && b && a->chunk == b->chunk);
    items_free(&copy);
    items_free(&r.got);
  }
}

/* ---- (2) listing producers ----------------------------------------------- */

static void run_both(lsync_ctx *ctx, const char *root, lsync_chunk_opts co,
                     const lsync_filter *filter, struct run *crawl,
                     struct run *list) {
  const char *argv[8];
  find_argv(argv, root);
  lsync_producer_opts o = base_opts(crawl);
  o.root = root;
  o.chunk = co;
  o.scan.filter = filter;
  CHECK(run_producer(ctx, &o, crawl) == 0);
  o = base_opts(list);
  o.list_argv = argv;
  o.chunk = co;
  o.scan.filter = filter;
  CHECK(run_producer(ctx, &o, list) == 0);
  CHECK(crawl->status == 0);
  CHECK(list->status == 0);
  if (list->status)
    fprintf(stderr, "listing: %s\n", list->errmsg);
}

static void test_listing(lsync_ctx *ctx, const char *root,
                         const struct items *want) {
  lsync_chunk_opts modes[3] = {{.mode = LSYNC_CHUNK_COUNT, .count = 4},
                               {.mode = LSYNC_CHUNK_LIMITS, .max_files = 10},
                               {.mode = LSYNC_CHUNK_TOPLEVEL}};
  for (int m = 0; m < 3; m++) {
    struct run crawl = {0}, list = {0};
    run_both(ctx, root, modes[m], NULL, &crawl, &list);
    struct items copy = {0};
    for (size_t i = 0; i < want->n; i++)
      items_add(&copy, want->v[i].path, want->v[i].len, want->v[i].size,
                want->v[i].type, 0);
    CHECK(same_items(&list.got, &copy, 0));
    /* COUNT and TOPLEVEL deal the same entries the same way. */
    if (modes[m].mode != LSYNC_CHUNK_LIMITS)
      CHECK(same_items(&list.got, &crawl.got, 1));
    CHECK(list.stats.entries == want->n);
    CHECK(list.stats.bytes == crawl.stats.bytes);
    CHECK(list.stats.dirs_unwritable == 1);
    const struct item *a = items_find(&list.got, "d2/hardlink_a");
    const struct item *b = items_find(&list.got, "d8/sub2/hardlink_b");
    CHECK(a && b && a->chunk == b->chunk);
    const struct item *l = items_find(&list.got, "link");
    CHECK(l && l->type == LSYNC_T_SYMLINK && l->size == strlen("d0/sub0"));
    const struct item *nl = items_find(&list.got, "new\nline");
    CHECK(nl && nl->type == LSYNC_T_FILE && nl->size == 5);
    const struct item *e = items_find(&list.got, "empty");
    CHECK(e && e->type == LSYNC_T_DIR && e->size == 0);
    items_free(&copy);
    items_free(&crawl.got);
    items_free(&list.got);
  }
}

/* ---- (3) filters -----------------------------------------------------------
 */

static void test_filter(lsync_ctx *ctx, const char *root) {
  lsync_filter *f;
  CHECK(lsync_filter_new(&f) == 0);
  CHECK(lsync_filter_add_rule(f, "- sub1/") == 0);
  CHECK(lsync_filter_add_rule(f, "- *.tmp") == 0);
  lsync_chunk_opts co = {.mode = LSYNC_CHUNK_LIMITS, .max_files = 7};
  struct run crawl = {0}, list = {0};
  run_both(ctx, root, co, f, &crawl, &list);
  CHECK(same_items(&list.got, &crawl.got, 0));
  int leaked = 0;
  for (size_t i = 0; i < list.got.n; i++)
    leaked += strstr(list.got.v[i].path, "sub1") != NULL;
  CHECK(leaked == 0);
  CHECK(list.got.n == 348 - 110); /* 10 sub1 dirs, 100 files below */
  CHECK(list.stats.excluded == 10 && crawl.stats.excluded == 10);
  CHECK(list.stats.entries == crawl.stats.entries);
  items_free(&crawl.got);
  items_free(&list.got);
  lsync_filter_free(f);
}

/* ---- (4) failing and odd listings ---------------------------------------- */

static void run_cmd(lsync_ctx *ctx, const char *const *argv, struct run *r) {
  lsync_producer_opts o = base_opts(r);
  o.list_argv = argv;
  o.chunk.mode = LSYNC_CHUNK_LIMITS;
  o.chunk.max_files = 100;
  CHECK(run_producer(ctx, &o, r) == 0);
}

static void expect_fail(lsync_ctx *ctx, const char *script, const char *msg) {
  const char *argv[] = {"sh", "-c", script, NULL};
  struct run r = {0};
  run_cmd(ctx, argv, &r);
  CHECK(r.status == LSYNC_EIO);
  if (!strstr(r.errmsg, msg)) {
    fprintf(stderr, "message '%s' lacks '%s'\n", r.errmsg, msg);
    CHECK(0);
  }
  items_free(&r.got);
}

static struct {
  char lines[8][256];
  int n;
} logged;

static void log_cb(void *ud, lsync_log_level level, const char *msg) {
  (void)ud;
  if (level <= LSYNC_LOG_WARN && logged.n < 8)
    snprintf(logged.lines[logged.n++], 256, "%s", msg);
}

static void test_listing_errors(lsync_ctx *ctx) {
  expect_fail(ctx, "echo 'find: no such dir' >&2; exit 2",
              "listing command failed (exit 2): find: no such dir");
  expect_fail(ctx, "echo 'first' >&2; echo 'last words' >&2; echo >&2; exit 1",
              ": last words");
  expect_fail(ctx, "kill -9 $$", "killed by signal 9");
  expect_fail(ctx, "printf 'garbage\\0\\0'", "malformed record 1 (bad type)");
  expect_fail(ctx,
              "printf 'f 644 1 1.5 1 2 1 0 0 ok\\0\\0"
              "f 644 x 1 1 2 1 0 0 no\\0\\0'",
              "malformed record 2 (bad size)");
  expect_fail(ctx,
              "printf 'f 644 1 1 1 2 1 0 0 ok\\0\\0f 644 1 1 1 2 1 0 0 cut'",
              "record 2 (truncated");
  /* The path's NUL is there, the link target's is not. */
  expect_fail(ctx,
              "printf 'f 644 1 1 1 2 1 0 0 ok\\0\\0l 777 1 1 1 3 1 0 0 l\\0x'",
              "record 2 (truncated");
  expect_fail(ctx, "printf 'f 644 1 1 1 2 1 0 0 ../escape\\0\\0'", "bad path");
  expect_fail(ctx, "printf 'f 644 1 1 1 2 1 0 0 /abs\\0\\0'", "bad path");
  expect_fail(ctx, "printf 'f 99 1 1 1 2 1 0 0 a\\0\\0'", "bad mode");
  expect_fail(ctx, "printf 'f 644 1 1. 1 2 1 0 0 a\\0\\0'", "bad time");
  expect_fail(ctx, "printf 'f 644 1 1 1 2 1 x 0 a\\0\\0'", "bad uid");
  expect_fail(ctx, "printf 'f 644 1 1 1 2 1 0 4294967296 a\\0\\0'", "bad gid");
  /* The old format (no owners, no target): caught, not misread. */
  expect_fail(ctx, "printf 'f 644 1 1 1 2 1 a\\0f 644 1 1 1 3 1 b\\0'",
              "malformed record 1 (bad uid)");
  expect_fail(ctx, "printf 'f 644 1 1 1 2 1 0 0 a\\0oops\\0'",
              "link target on a non-symlink");
  /* A failed command explains a cut record better than the parser. */
  expect_fail(ctx, "printf 'f 644 1 1 1 2 1 0 0 cut'; echo oops >&2; exit 3",
              "(exit 3): oops");

  /* Odd but valid records: spaces in names, negative and long times, the
   * start directory itself (skipped), unknown types; a stderr line of a
   * successful command is logged as a warning. */
  const char *argv[] = {
      "sh", "-c",
      "printf 'd 755 4096 1.0 1 1 3 0 0 \\0\\0f 644 5 -1.25 1 7 1 10 20 a "
      "b\\0\\0"
      "d 755 4096 1700000000.1234567890 1 8 2 4294967295 0 dir\\0\\0"
      "U 0 0 0 1 9 1 0 0 dir/odd\\0\\0l 777 3 5 1 10 1 0 0 dir/ln\\0a b\\0'; "
      "echo 'careful now' >&2",
      NULL};
  lsync_ctx_set_log(ctx, log_cb, NULL, LSYNC_LOG_DEBUG);
  logged.n = 0;
  struct run r = {0};
  run_cmd(ctx, argv, &r);
  lsync_ctx_set_log(ctx, NULL, NULL, LSYNC_LOG_ERROR);
  CHECK(r.status == 0);
  items_sort(&r.got);
  CHECK(r.got.n == 4);
  const struct item *a = items_find(&r.got, "a b");
  CHECK(a && a->type == LSYNC_T_FILE && a->size == 5);
  const struct item *d = items_find(&r.got, "dir");
  CHECK(d && d->type == LSYNC_T_DIR && d->size == 0);
  const struct item *u = items_find(&r.got, "dir/odd");
  CHECK(u && u->type == LSYNC_T_UNKNOWN);
  const struct item *l = items_find(&r.got, "dir/ln");
  CHECK(l && l->type == LSYNC_T_SYMLINK && l->size == 3);
  CHECK(logged.n == 1 && strstr(logged.lines[0], "careful now"));
  items_free(&r.got);
}

/* ---- (5) back-pressure --------------------------------------------------- */

struct pressure {
  struct run r;
  lsync_scan_stats blocked;
  unsigned ready_while_held;
};

static void release_cb(void *ud, lsync_timer *t) {
  struct pressure *bp = ud;
  lsync_producer_stats(bp->r.p, &bp->blocked);
  bp->ready_while_held = bp->r.ready_calls;
  bp->r.hold = 0;
  drain(&bp->r);
  lsync_timer_close(t);
}

static void test_backpressure(lsync_ctx *ctx, const char *root) {
  struct pressure bp = {0};
  bp.r.hold = 1;
  lsync_producer_opts o = base_opts(&bp.r);
  o.root = root;
  o.chunk.mode = LSYNC_CHUNK_LIMITS;
  o.chunk.max_files = 1;
  o.max_queued = 2;
  lsync_timer *t;
  CHECK(lsync_timer_new(ctx, release_cb, &bp, &t) == 0);
  CHECK(lsync_timer_start(t, 200, 0) == 0);
  CHECK(run_producer(ctx, &o, &bp.r) == 0);
  /* Two queued, one waiting in the thread, a few read ahead at most. */
  CHECK(bp.blocked.entries >= 2 && bp.blocked.entries < 20);
  if (bp.blocked.entries >= 20)
    fprintf(stderr, "%" PRIu64 " entries chunked while blocked\n",
            bp.blocked.entries);
  CHECK(bp.ready_while_held >= 1);
  CHECK(bp.r.status == 0);
  CHECK(bp.r.got.n == 500);
  CHECK(bp.r.chunks == 500);
  CHECK(bp.r.stats.entries == 500);
  items_free(&bp.r.got);
}

/* ---- (6) freeing mid-run --------------------------------------------------
 */

static void free_cb(void *ud, lsync_timer *t) {
  struct run *r = ud;
  lsync_producer_free(r->p);
  r->p = NULL;
  lsync_timer_close(t);
}

/* Start, free after delay_ms from a timer (or, with delay_ms 0, from
 * on_ready after one chunk); the loop must end promptly. */
static void free_mid_run(lsync_ctx *ctx, const lsync_producer_opts *base,
                         unsigned delay_ms, int hold) {
  struct run r = {0};
  lsync_producer_opts o = *base;
  o.on_ready = on_ready;
  o.ud = &r;
  r.free_after_first = delay_ms == 0;
  r.hold = hold;
  lsync_timer *t = NULL;
  if (delay_ms) {
    CHECK(lsync_timer_new(ctx, free_cb, &r, &t) == 0);
    CHECK(lsync_timer_start(t, delay_ms, 0) == 0);
  }
  double t0 = now_s();
  CHECK(lsync_producer_start(ctx, &o, &r.p) == 0);
  lsync_run(ctx, LSYNC_RUN_DEFAULT);
  double dt = now_s() - t0;
  CHECK(r.p == NULL);
  CHECK(dt < 5.0);
  if (dt >= 5.0)
    fprintf(stderr, "freeing took %.1f s\n", dt);
  if (delay_ms == 0)
    CHECK(r.chunks == 1);
  items_free(&r.got);
}

static void test_free(lsync_ctx *ctx, const char *root) {
  lsync_producer_opts o;
  lsync_producer_opts_init(&o);
  o.chunk.mode = LSYNC_CHUNK_LIMITS;
  o.chunk.max_files = 1;
  o.max_queued = 1;
  o.root = root;
  free_mid_run(ctx, &o, 0, 0);  /* crawl, from on_ready */
  free_mid_run(ctx, &o, 50, 1); /* crawl, queue full */
  const char *find[8];
  find_argv(find, root);
  o.root = NULL;
  o.list_argv = find;
  free_mid_run(ctx, &o, 0, 0);  /* listing, from on_ready */
  free_mid_run(ctx, &o, 50, 1); /* listing, queue and pipe full */
  const char *sleeper[] = {"sleep", "30", NULL};
  o.list_argv = sleeper;
  free_mid_run(ctx, &o, 50, 0); /* blocked reading */
  const char *closer[] = {"sh", "-c", "exec >&-; sleep 30", NULL};
  o.list_argv = closer;
  free_mid_run(ctx, &o, 50, 0); /* blocked waiting for the child */
  o.chunk.mode = LSYNC_CHUNK_COUNT;
  o.chunk.count = 3;
  o.list_argv = NULL;
  o.root = root;
  free_mid_run(ctx, &o, 0, 0); /* COUNT: from on_ready, chunks left */
}

/* ---- (7) synchronous errors ---------------------------------------------- */

static void expect_start_error(lsync_ctx *ctx, lsync_producer_opts *o, int code,
                               const char *msg) {
  struct run r = {0};
  o->on_ready = on_ready;
  o->ud = &r;
  lsync_producer *p = (lsync_producer *)&r; /* must be reset */
  int rc = lsync_producer_start(ctx, o, &p);
  CHECK(rc == code);
  CHECK(p == NULL);
  if (rc != code || !strstr(lsync_ctx_errmsg(ctx), msg))
    fprintf(stderr, "got %s '%s', expected %s '%s'\n", lsync_err_name(rc),
            lsync_ctx_errmsg(ctx), lsync_err_name(code), msg);
  CHECK(strstr(lsync_ctx_errmsg(ctx), msg) != NULL);
  lsync_run(ctx, LSYNC_RUN_DEFAULT);
  CHECK(r.ready_calls == 0);
}

static void test_start_errors(lsync_ctx *ctx, const char *root) {
  char path[4200];
  lsync_producer_opts o;
  lsync_producer_opts_init(&o);
  o.chunk.mode = LSYNC_CHUNK_COUNT;
  o.chunk.count = 2;
  snprintf(path, sizeof path, "%s/missing", root);
  o.root = path;
  expect_start_error(ctx, &o, LSYNC_ENOENT, "missing");
  snprintf(path, sizeof path, "%s/d0/sub0/f1", root);
  expect_start_error(ctx, &o, LSYNC_ENOTDIR, "f1");
  o.root = root;
  o.chunk.mode = LSYNC_CHUNK_LIMITS;
  expect_start_error(ctx, &o, LSYNC_EINVAL, "limits");
  o.chunk.mode = 0;
  expect_start_error(ctx, &o, LSYNC_EINVAL, "mode");
  o.chunk.mode = LSYNC_CHUNK_TOPLEVEL;
  const char *argv[] = {"no-such-command-for-syncplan", NULL};
  o.list_argv = argv;
  expect_start_error(ctx, &o, LSYNC_EINVAL, "not both");
  o.root = NULL;
  expect_start_error(ctx, &o, LSYNC_ENOENT, "no-such-command-for-syncplan");
}

/* ---- (7) directory times from a listing ---------------------------------- */

static struct timespec mtime_of(const char *root, const char *rel) {
  char p[4096];
  struct stat st;
  at(p, sizeof p, root, rel);
  if (lstat(p, &st) < 0)
    die("lstat", p);
  return st.st_mtim;
}

static int same_time(struct timespec a, struct timespec b) {
  return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

static void set_old_time(const char *root, const char *rel) {
  char p[4096];
  const struct timespec ts[2] = {{0, UTIME_OMIT}, {1000, 5}};
  at(p, sizeof p, root, rel);
  if (utimensat(AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW) < 0)
    die("utimensat", p);
}

static void test_dir_times(lsync_ctx *ctx, const char *root) {
  char dst[1024], outside[1024], cmd[4096], p[4096];
  snprintf(dst, sizeof dst, "%s/times-dst", scratch);
  snprintf(outside, sizeof outside, "%s/outside", scratch);
  snprintf(cmd, sizeof cmd, "cp -a '%s' '%s' && mkdir -p '%s/sub0'", root,
           dst, outside);
  if (system(cmd) != 0)
    die("cp -a", dst);
  const char *argv[8];
  find_argv(argv, root);
  struct run r = {0};
  lsync_producer_opts o = base_opts(&r);
  o.list_argv = argv;
  o.chunk.mode = LSYNC_CHUNK_LIMITS;
  o.chunk.max_files = 50;
  o.keep_dir_times = 1;
  CHECK(lsync_producer_start(ctx, &o, &r.p) == 0);
  lsync_run(ctx, LSYNC_RUN_DEFAULT);
  CHECK(r.done && r.status == 0);

  /* Times that chunks disturbed come back, the root's too. */
  const char *dirs[] = {"d0", "d0/sub1", "d9/sub2", ""};
  for (size_t i = 0; i < 4; i++)
    set_old_time(dst, dirs[i]);
  static const char list[] = "d0\0d0/sub1\0d9/sub2\0.\0";
  uint64_t n = 0;
  CHECK(lsync_producer_set_dir_times(r.p, dst, list, sizeof list - 1, 0, 0,
                                     &n) == 0);
  CHECK(n == 4);
  for (size_t i = 0; i < 4; i++)
    CHECK(same_time(mtime_of(dst, dirs[i]), mtime_of(root, dirs[i])));

  /* A name the listing did not have: nothing guessed. */
  static const char unknown[] = "d0\0nosuch\0";
  CHECK(lsync_producer_set_dir_times(r.p, dst, unknown, sizeof unknown - 1, 0,
                                     0, &n) == LSYNC_ENOENT);
  CHECK(n == 1);

  /* A directory swapped for a symlink is not followed out of the tree:
   * below it nothing is set, and at it only the link itself is. */
  struct timespec before = mtime_of(outside, "sub0");
  struct timespec before_top = mtime_of(outside, "");
  snprintf(cmd, sizeof cmd, "rm -rf '%s/d1' && ln -s '%s' '%s/d1'", dst,
           outside, dst);
  if (system(cmd) != 0)
    die("ln -s", dst);
  static const char through[] = "d1/sub0\0";
  CHECK(lsync_producer_set_dir_times(r.p, dst, through, sizeof through - 1, 0,
                                     0, &n) < 0);
  CHECK(same_time(mtime_of(outside, "sub0"), before));
  static const char at_link[] = "d1\0";
  lsync_producer_set_dir_times(r.p, dst, at_link, sizeof at_link - 1, 0, 0,
                               &n);
  CHECK(same_time(mtime_of(outside, ""), before_top));

  /* A root whose mode differs needs rsync: refused, time untouched. */
  set_old_time(dst, "");
  at(p, sizeof p, dst, "");
  CHECK(chmod(p, 0700) == 0);
  static const char root_only[] = ".\0";
  CHECK(lsync_producer_set_dir_times(r.p, dst, root_only,
                                     sizeof root_only - 1, 0, 0,
                                     &n) == LSYNC_EINVAL);
  CHECK(mtime_of(dst, "").tv_sec == 1000);
  lsync_producer_free(r.p);
  items_free(&r.got);

  /* Without keep_dir_times there is nothing to set from. */
  struct run r2 = {0};
  o = base_opts(&r2);
  o.list_argv = argv;
  o.chunk.mode = LSYNC_CHUNK_COUNT;
  o.chunk.count = 2;
  CHECK(lsync_producer_start(ctx, &o, &r2.p) == 0);
  lsync_run(ctx, LSYNC_RUN_DEFAULT);
  CHECK(lsync_producer_set_dir_times(r2.p, dst, list, sizeof list - 1, 0, 0,
                                     NULL) == LSYNC_EINVAL);
  lsync_producer_free(r2.p);
  items_free(&r2.got);
}

int main(void) {
  const char *tmp = getenv("TMPDIR");
  snprintf(scratch, sizeof scratch, "%s/test_producer.XXXXXX",
           tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(scratch))
    die("mkdtemp", scratch);
  char tree[1024], flat[1024];
  snprintf(tree, sizeof tree, "%s/tree", scratch);
  snprintf(flat, sizeof flat, "%s/flat", scratch);
  make_tree(tree);
  make_flat(flat);

  lsync_ctx *ctx;
  if (lsync_ctx_new(&ctx) < 0)
    return 2;
  struct items want = {0};
  scan_all(ctx, tree, NULL, &want);
  CHECK(want.n == 348); /* 10+30 dirs, 300 files, 2 links, link, empty,
                           "with space" + file, "new\nline", tab name */

  test_crawl(ctx, tree, &want);
  test_listing(ctx, tree, &want);
  test_filter(ctx, tree);
  test_listing_errors(ctx);
  test_backpressure(ctx, flat);
  test_free(ctx, tree);
  test_start_errors(ctx, tree);
  test_dir_times(ctx, tree);

  items_free(&want);
  lsync_ctx_free(ctx);
  nftw(scratch, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
