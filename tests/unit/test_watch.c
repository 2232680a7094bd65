/*
 * Watches on real directories: files created, appended to, chmod'ed,
 * deleted and renamed; directories made deep and fast, renamed inside
 * the tree (with later events under the new name), moved in and out;
 * over an empty one, into a new one; excluded paths, and renames that
 * change what a filter says below them; names with a newline, invalid
 * UTF-8, 200 bytes, and a tree deeper than PATH_MAX; symlinks; the
 * root's attributes; the editor's save by rename; overflow of the
 * kernel's queue; the root deleted and made again; one on_event per
 * batch.  The loop runs
 * with lsync_run() until the watch calls back.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libsync/libsync.h>

#include "check.h"
#include "scratch.h"

static lsync_ctx *ctx;
static int events; /* on_event calls */

struct change {
  lsync_watch_kind kind;
  char *path, *from;
  size_t len;
  int is_dir;
};
static struct change got[20000];
static size_t ngot;
static int overflowed;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_event(void *ud) {
  (void)ud;
  events++;
}

static void collect(void *ud, const lsync_watch_change *c) {
  (void)ud;
  if (ngot == sizeof got / sizeof *got)
    return;
  struct change *g = &got[ngot++];
  g->kind = c->kind;
  g->len = c->path_len;
  g->path = malloc(c->path_len + 1);
  memcpy(g->path, c->path, c->path_len + 1);
  g->from = c->from ? strdup(c->from) : NULL;
  g->is_dir = c->is_dir;
}

static void forget(void) {
  for (size_t i = 0; i < ngot; i++) {
    free(got[i].path);
    free(got[i].from);
  }
  ngot = 0;
}

/* Run the loop for ms milliseconds, or until on_event has been called
 * more than `before` times. */
static void run_for(int ms, int before) {
  double end = now_s() + ms / 1000.0;
  while (now_s() < end && events <= before) {
    lsync_run(ctx, LSYNC_RUN_NOWAIT);
    usleep(1000);
  }
}

/* Wait for the watch to call back, let stragglers in, take.  Returns the
 * number of on_event calls it took (1 expected). */
static int step_within(lsync_watch *w, int ms) {
  int before = events;
  run_for(ms, before);
  run_for(50, 1 << 30); /* events read late join the set quietly */
  forget();
  lsync_watch_take(w, collect, NULL, &overflowed);
  return events - before;
}

static int step(lsync_watch *w) {
  return step_within(w, 3000);
}

/* For steps that should bring nothing. */
static int quiet_step(lsync_watch *w) {
  return step_within(w, 300);
}

static const struct change *find(lsync_watch_kind k, const char *path,
                                 size_t len) {
  for (size_t i = 0; i < ngot; i++)
    if (got[i].kind == k && got[i].len == len &&
        memcmp(got[i].path, path, len) == 0)
      return &got[i];
  return NULL;
}

static int has(lsync_watch_kind k, const char *path) {
  return find(k, path, strlen(path)) != NULL;
}

static int has_move(const char *from, const char *to, int is_dir) {
  const struct change *c = find(LSYNC_WATCH_MOVED, to, strlen(to));
  return c && c->from && strcmp(c->from, from) == 0 && c->is_dir == is_dir;
}

static void dump(const char *what) {
  fprintf(stderr, "%s: %zu changes%s\n", what, ngot,
          overflowed ? " (overflow)" : "");
  for (size_t i = 0; i < ngot; i++)
    fprintf(stderr, "  %s %s%s%s\n", lsync_watch_kind_name(got[i].kind),
            got[i].from ? got[i].from : "", got[i].from ? " -> " : "",
            got[i].path);
}

/* Assert a step gave exactly n changes in one callback. */
#define EXPECT_N(what, n)                                                      \
  do {                                                                         \
    if (ngot != (n) || overflowed)                                             \
      dump(what);                                                              \
    CHECK(ngot == (n));                                                        \
    CHECK(!overflowed);                                                        \
  } while (0)

static void put(const char *path, const char *data, int flags) {
  int fd = open(path, O_WRONLY | O_CREAT | flags, 0644);
  if (fd < 0 || write(fd, data, strlen(data)) < 0)
    perror(path);
  close(fd);
}

/* A file written at path (absolute) comes alone, as CHANGED rel. */
static void expect_write(lsync_watch *w, const char *path, const char *rel) {
  put(path, "x", 0);
  CHECK(step(w) == 1);
  EXPECT_N(rel, 1);
  CHECK(has(LSYNC_WATCH_CHANGED, rel));
}

static const char *in(const char *rel) {
  static char buf[4][1024];
  static int k;
  char *b = buf[k++ % 4];
  snprintf(b, sizeof buf[0], "%s/root/%s", scratch, rel);
  return b;
}

static lsync_watch *watch(const char *root, const lsync_filter *f) {
  lsync_watch *w = NULL;
  int rc = lsync_watch_open(ctx, root, f, on_event, NULL, &w);
  if (rc < 0)
    fprintf(stderr, "watch %s: %s\n", root, lsync_ctx_errmsg(ctx));
  CHECK(rc == 0 && w);
  return w;
}

static void test_files(lsync_watch *w) {
  put(in("f"), "hello", O_TRUNC);
  CHECK(step(w) == 1);
  EXPECT_N("create", 1);
  CHECK(has(LSYNC_WATCH_CHANGED, "f"));
  CHECK(ngot && !got[0].is_dir);

  put(in("f"), " world", O_APPEND);
  CHECK(step(w) == 1);
  EXPECT_N("append", 1);
  CHECK(has(LSYNC_WATCH_CHANGED, "f"));

  CHECK(chmod(in("f"), 0600) == 0);
  CHECK(step(w) == 1);
  EXPECT_N("chmod", 1);
  CHECK(has(LSYNC_WATCH_CHANGED, "f"));

  CHECK(rename(in("f"), in("g")) == 0);
  CHECK(step(w) == 1);
  EXPECT_N("rename", 1);
  CHECK(has_move("f", "g", 0));

  CHECK(unlink(in("g")) == 0);
  CHECK(step(w) == 1);
  EXPECT_N("delete", 1);
  CHECK(has(LSYNC_WATCH_REMOVED, "g"));

  /* Made and gone within one batch; gone and made again. */
  put(in("t1"), "x", 0);
  CHECK(unlink(in("t1")) == 0);
  put(in("r"), "x", 0);
  step(w);
  CHECK(unlink(in("r")) == 0);
  expect_write(w, in("r"), "r");

  /* An editor's save: a temporary file renamed over the file. */
  put(in("doc.tmp"), "new", 0);
  CHECK(rename(in("doc.tmp"), in("r")) == 0);
  CHECK(step(w) == 1);
  EXPECT_N("save by rename", 2);
  CHECK(has(LSYNC_WATCH_CHANGED, "r"));
  CHECK(has(LSYNC_WATCH_REMOVED, "doc.tmp"));

  /* a -> b -> c is one rename; there and back is none. */
  CHECK(rename(in("r"), in("r2")) == 0 && rename(in("r2"), in("r3")) == 0);
  CHECK(step(w) == 1);
  EXPECT_N("chain", 1);
  CHECK(has_move("r", "r3", 0));
  CHECK(rename(in("r3"), in("r4")) == 0 && rename(in("r4"), in("r3")) == 0);
  put(in("other"), "x", 0);
  step(w);
  EXPECT_N("there and back", 1);
  CHECK(has(LSYNC_WATCH_CHANGED, "other"));

  /* Many changes, one callback. */
  for (int i = 0; i < 100; i++) {
    char name[32];
    snprintf(name, sizeof name, "many%03d", i);
    put(in(name), "x", 0);
  }
  CHECK(step(w) == 1);
  EXPECT_N("many", 100);
  run_for(100, events);
  CHECK(lsync_watch_take(w, collect, NULL, &overflowed) == 0);
}

static void test_dirs(lsync_watch *w) {
  size_t dirs;
  CHECK(mkdir(in("d"), 0755) == 0);
  CHECK(step(w) == 1);
  EXPECT_N("mkdir", 1);
  CHECK(has(LSYNC_WATCH_TREE, "d"));
  CHECK(ngot && got[0].is_dir);
  expect_write(w, in("d/x"), "d/x");

  /* Renamed inside the tree: the watch follows, new events under the
   * new name, in the same batch and later. */
  CHECK(rename(in("d"), in("e")) == 0);
  put(in("e/y"), "y", 0);
  CHECK(step(w) == 1);
  EXPECT_N("dir rename", 2);
  CHECK(has_move("d", "e", 1));
  CHECK(has(LSYNC_WATCH_CHANGED, "e/y"));
  put(in("e/z"), "z", 0);
  CHECK(mkdir(in("e/sub"), 0755) == 0);
  CHECK(step(w) == 1);
  EXPECT_N("after dir rename", 2);
  CHECK(has(LSYNC_WATCH_CHANGED, "e/z"));
  CHECK(has(LSYNC_WATCH_TREE, "e/sub"));
  expect_write(w, in("e/sub/deep"), "e/sub/deep");

  /* Renamed away and its old name made again. */
  CHECK(rename(in("e"), in("e2")) == 0);
  CHECK(mkdir(in("e"), 0755) == 0);
  CHECK(step(w) == 1);
  EXPECT_N("rename and reuse", 2);
  CHECK(has_move("e", "e2", 1));
  CHECK(has(LSYNC_WATCH_TREE, "e"));

  /* mkdir -p with files, faster than watches can be added: one TREE. */
  CHECK(mkdir(in("a"), 0755) == 0 && mkdir(in("a/b"), 0755) == 0 &&
        mkdir(in("a/b/c"), 0755) == 0);
  put(in("a/b/c/f1"), "1", 0);
  put(in("a/b/f2"), "2", 0);
  CHECK(step(w) == 1);
  EXPECT_N("mkdir -p", 1);
  CHECK(has(LSYNC_WATCH_TREE, "a"));
  put(in("a/b/c/f1"), "more", O_APPEND);
  CHECK(step(w) == 1);
  EXPECT_N("deep in new tree", 1);
  CHECK(has(LSYNC_WATCH_CHANGED, "a/b/c/f1"));

  /* Moved in from outside: the subtree; moved out: removed, and no
   * longer watched. */
  CHECK(mkdir(at("out/m"), 0755) == 0 && mkdir(at("out/m/inner"), 0755) == 0);
  put(at("out/m/inner/file"), "x", 0);
  CHECK(rename(at("out/m"), in("m")) == 0);
  CHECK(step(w) == 1);
  EXPECT_N("moved in", 1);
  CHECK(has(LSYNC_WATCH_TREE, "m"));
  expect_write(w, in("m/inner/file2"), "m/inner/file2");
  dirs = lsync_watch_dirs(w);
  CHECK(rename(in("m"), at("out/m2")) == 0);
  CHECK(step(w) == 1);
  EXPECT_N("moved out", 1);
  CHECK(has(LSYNC_WATCH_REMOVED, "m"));
  CHECK(ngot && got[0].is_dir);
  CHECK(lsync_watch_dirs(w) == dirs - 2);
  put(at("out/m2/inner/zzz"), "x", 0);
  CHECK(quiet_step(w) == 0);
  EXPECT_N("outside", 0);

  /* A file moved into a directory made in the same batch cannot be
   * renamed at the destination before the directory exists: the new
   * directory is reported whole, the old name removed. */
  put(in("mv-me"), "x", 0);
  step(w);
  CHECK(mkdir(in("n"), 0755) == 0);
  CHECK(rename(in("mv-me"), in("n/mv-me")) == 0);
  CHECK(step(w) == 1);
  EXPECT_N("into a new dir", 2);
  CHECK(has(LSYNC_WATCH_TREE, "n"));
  CHECK(has(LSYNC_WATCH_REMOVED, "mv-me"));

  /* A directory renamed over an empty one, then one moved below it: the
   * replaced directory's watch goes, the moved one's follows. */
  CHECK(mkdir(in("empty"), 0755) == 0);
  step(w);
  dirs = lsync_watch_dirs(w);
  CHECK(rename(in("n"), in("empty")) == 0);
  CHECK(step(w) == 1);
  EXPECT_N("over an empty dir", 1);
  CHECK(has_move("n", "empty", 1));
  CHECK(lsync_watch_dirs(w) == dirs - 1);
  CHECK(rename(in("e2"), in("empty/e3")) == 0);
  put(in("empty/e3/sub/later"), "x", 0);
  CHECK(step(w) == 1);
  EXPECT_N("below a renamed dir", 2);
  CHECK(has_move("e2", "empty/e3", 1));
  CHECK(has(LSYNC_WATCH_CHANGED, "empty/e3/sub/later"));

  /* The root's own attributes. */
  CHECK(chmod(in(""), 0750) == 0);
  CHECK(step(w) == 1);
  EXPECT_N("root chmod", 1);
  CHECK(has(LSYNC_WATCH_CHANGED, "."));

  /* A symlink is an entry, never followed. */
  CHECK(symlink("../out", in("ln")) == 0);
  CHECK(step(w) == 1);
  EXPECT_N("symlink", 1);
  CHECK(has(LSYNC_WATCH_CHANGED, "ln"));
  CHECK(ngot && !got[0].is_dir);
  put(at("out/through-link"), "x", 0);
  CHECK(quiet_step(w) == 0);

  /* rm -r: one REMOVED for the directory. */
  CHECK(unlink(in("a/b/c/f1")) == 0 && rmdir(in("a/b/c")) == 0 &&
        unlink(in("a/b/f2")) == 0 && rmdir(in("a/b")) == 0 &&
        rmdir(in("a")) == 0);
  CHECK(step(w) == 1);
  EXPECT_N("rm -r", 1);
  CHECK(has(LSYNC_WATCH_REMOVED, "a"));
}

static void test_names(lsync_watch *w) {
  char longname[201];
  memset(longname, 'n', 200);
  longname[200] = '\0';
  put(in("new\nline"), "x", 0);
  put(in("bad\xff\xfe utf8"), "x", 0);
  put(in(longname), "x", 0);
  CHECK(step(w) == 1);
  EXPECT_N("names", 3);
  CHECK(has(LSYNC_WATCH_CHANGED, "new\nline"));
  CHECK(has(LSYNC_WATCH_CHANGED, "bad\xff\xfe utf8"));
  CHECK(has(LSYNC_WATCH_CHANGED, longname));
}

/* A chain of 30 directories with 200-byte names (a path past PATH_MAX),
 * made before the watch: the walk watches them all. */
static void test_deep(void) {
  char name[201];
  memset(name, 'd', 200);
  name[200] = '\0';
  CHECK(mkdir(at("deep"), 0755) == 0);
  int fd = open(at("deep"), O_RDONLY | O_DIRECTORY);
  for (int i = 0; i < 30 && fd >= 0; i++) {
    CHECK(mkdirat(fd, name, 0755) == 0);
    int next = openat(fd, name, O_RDONLY | O_DIRECTORY);
    close(fd);
    fd = next;
  }
  CHECK(fd >= 0);
  lsync_watch *w = watch(at("deep"), NULL);
  if (!w)
    return;
  CHECK(lsync_watch_dirs(w) == 31);
  int f = openat(fd, "bottom", O_WRONLY | O_CREAT, 0644);
  CHECK(f >= 0);
  close(f);
  CHECK(step(w) == 1);
  EXPECT_N("deep", 1);
  size_t want = 30 * 201 + 6;
  CHECK(ngot == 1 && got[0].len == want &&
        memcmp(got[0].path + want - 7, "/bottom", 7) == 0 &&
        memcmp(got[0].path, name, 200) == 0 && got[0].path[200] == '/');
  close(fd);
  lsync_watch_close(w);
}

/* Excluded directories are not watched, excluded names not reported.  A
 * directory renamed under a filter stays a rename while nothing below it
 * changes verdict ("skip/" and "*.tmp" judge names alone), and is
 * reported whole, and watched afresh, when a rule that sees the parents
 * ("/e/private/") judges something below it otherwise. */
static void test_filter(void) {
  lsync_filter *f;
  CHECK(lsync_filter_new(&f) == 0);
  CHECK(lsync_filter_add(f, LSYNC_EXCLUDE, "skip/") == 0);
  CHECK(lsync_filter_add(f, LSYNC_EXCLUDE, "*.tmp") == 0);
  CHECK(lsync_filter_add(f, LSYNC_EXCLUDE, "/e/private/") == 0);
  CHECK(mkdir(at("flt"), 0755) == 0 && mkdir(at("flt/skip"), 0755) == 0);
  lsync_watch *w = watch(at("flt"), f);
  if (!w)
    return;
  CHECK(lsync_watch_dirs(w) == 1);
  put(at("flt/skip/x"), "x", 0);
  put(at("flt/a.tmp"), "x", 0);
  CHECK(mkdir(at("flt/d"), 0755) == 0 && mkdir(at("flt/d/skip"), 0755) == 0 &&
        mkdir(at("flt/d/private"), 0755) == 0);
  put(at("flt/keep"), "x", 0);
  CHECK(step(w) == 1);
  EXPECT_N("filter", 2);
  CHECK(has(LSYNC_WATCH_CHANGED, "keep"));
  CHECK(has(LSYNC_WATCH_TREE, "d"));
  CHECK(lsync_watch_dirs(w) == 3);
  put(at("flt/d/skip/y"), "x", 0);
  put(at("flt/d/z.tmp"), "x", 0);
  CHECK(quiet_step(w) == 0);

  /* d/private becomes e/private, excluded. */
  CHECK(rename(at("flt/d"), at("flt/e")) == 0);
  CHECK(step(w) == 1);
  EXPECT_N("rename into a rule", 2);
  CHECK(has(LSYNC_WATCH_TREE, "e"));
  CHECK(has(LSYNC_WATCH_REMOVED, "d"));
  CHECK(lsync_watch_dirs(w) == 2);
  put(at("flt/e/private/x"), "x", 0);
  CHECK(quiet_step(w) == 0);
  expect_write(w, at("flt/e/new"), "e/new");

  /* And back out of it: e/private is g/private, kept again. */
  CHECK(rename(at("flt/e"), at("flt/g")) == 0);
  CHECK(step(w) == 1);
  EXPECT_N("rename out of a rule", 2);
  CHECK(has(LSYNC_WATCH_TREE, "g"));
  CHECK(has(LSYNC_WATCH_REMOVED, "e"));
  CHECK(lsync_watch_dirs(w) == 3);

  /* Nothing changes verdict: a rename. */
  CHECK(rename(at("flt/g"), at("flt/h")) == 0);
  put(at("flt/h/private/y"), "y", 0);
  CHECK(step(w) == 1);
  EXPECT_N("rename under filter", 2);
  CHECK(has_move("g", "h", 1));
  CHECK(has(LSYNC_WATCH_CHANGED, "h/private/y"));
  CHECK(lsync_watch_dirs(w) == 3);
  lsync_watch_close(w);
  lsync_filter_free(f);
}

static int max_queued(void) {
  FILE *p = fopen("/proc/sys/fs/inotify/max_queued_events", "r");
  int n = 16384;
  if (p) {
    if (fscanf(p, "%d", &n) != 1)
      n = 16384;
    fclose(p);
  }
  return n;
}

/* More events than the kernel queues, made before the loop reads any:
 * overflow, then the watch works again.  The events are chmods of two
 * files in turn (the kernel merges only an event equal to the last one
 * queued), much cheaper than as many new files. */
static void test_overflow(void) {
  CHECK(mkdir(at("ovf"), 0755) == 0 && mkdir(at("ovf/sub"), 0755) == 0);
  put(at("ovf/sub/a"), "a", 0);
  put(at("ovf/sub/b"), "b", 0);
  lsync_watch *w = watch(at("ovf"), NULL);
  if (!w)
    return;
  int n = max_queued() + 100;
  int fds[2] = {open(at("ovf/sub/a"), O_RDONLY),
                open(at("ovf/sub/b"), O_RDONLY)};
  CHECK(fds[0] >= 0 && fds[1] >= 0);
  for (int i = 0; i < n; i++)
    CHECK(fchmod(fds[i % 2], i % 4 < 2 ? 0644 : 0600) == 0);
  close(fds[0]);
  close(fds[1]);
  CHECK(step(w) == 1);
  CHECK(overflowed);
  CHECK(ngot == 0);
  CHECK(lsync_watch_dirs(w) == 2);
  expect_write(w, at("ovf/sub/after"), "sub/after");
  lsync_watch_close(w);
}

/* The root deleted: overflow, and again at each take while it is
 * missing (the watch tries it again there); made again: watched again. */
static void test_root_lost(void) {
  CHECK(mkdir(at("gone"), 0755) == 0);
  lsync_watch *w = watch(at("gone"), NULL);
  if (!w)
    return;
  CHECK(rmdir(at("gone")) == 0);
  CHECK(step(w) == 1);
  CHECK(overflowed && ngot == 0);
  CHECK(step(w) == 1); /* tried at the last take: still missing */
  CHECK(overflowed);
  CHECK(lsync_watch_dirs(w) == 0);
  CHECK(mkdir(at("gone"), 0755) == 0 && mkdir(at("gone/sub"), 0755) == 0);
  CHECK(step(w) == 1);
  CHECK(overflowed);
  CHECK(lsync_watch_dirs(w) == 2);
  expect_write(w, at("gone/sub/back"), "sub/back");
  lsync_watch_close(w);
}

static void test_open_errors(void) {
  lsync_watch *w = (lsync_watch *)1;
  CHECK(lsync_watch_open(ctx, at("missing"), NULL, on_event, NULL, &w) ==
        LSYNC_ENOENT);
  CHECK(w == NULL);
  put(at("plain"), "x", 0);
  CHECK(lsync_watch_open(ctx, at("plain"), NULL, on_event, NULL, &w) ==
        LSYNC_ENOTDIR);
  CHECK(strstr(lsync_ctx_errmsg(ctx), "plain") != NULL);
}

int main(void) {
  if (scratch_make("test_watch") < 0)
    return 1;
  CHECK(lsync_ctx_new(&ctx) == 0);
  CHECK(mkdir(at("root"), 0755) == 0 && mkdir(at("out"), 0755) == 0);
  lsync_watch *w = watch(at("root"), NULL);
  if (w) {
    CHECK(lsync_watch_dirs(w) == 1);
    test_files(w);
    test_dirs(w);
    test_names(w);
    lsync_watch_close(w);
  }
  test_deep();
  test_filter();
  test_overflow();
  test_root_lost();
  test_open_errors();
  forget();
  lsync_ctx_free(ctx); /* runs the loop until the watches are freed */
  cleanup();
  printf("%d passed, %d failed\n", passed, failed);
  return failed != 0;
}
