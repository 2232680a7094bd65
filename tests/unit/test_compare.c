/*
 * The producer's quick check on real trees: a source tree is copied with
 * rsync -aH, one thing is changed, and every combination of local and
 * listed (find) source and destination must send exactly the changed
 * paths, and count the rest as unchanged.  Also: failing and missing
 * destinations, stopping during the destination read, owners (as root).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include <libsync/libsync.h>

#include "check.h"

/* What the runner prints: the root's record too, nothing (exit 0) for a
 * missing directory. */
#define LIST_SCRIPT                                                            \
  "[ -e \"$0\" ] || exit 0; exec find \"$0\" -mindepth 0 -printf "             \
  "'%y %m %s %T@ %D %i %n %U %G %P\\0%l\\0'"

#define LIMITS                                                                 \
  { .mode = LSYNC_CHUNK_LIMITS, .max_files = 4 }

static char scratch[512], src[600], dst[600];

static void die(const char *what, const char *path) {
  fprintf(stderr, "setup failed: %s %s: %s\n", what, path, strerror(errno));
  exit(2);
}

static void sh(const char *cmd) {
  if (system(cmd) != 0) {
    fprintf(stderr, "setup failed: %s\n", cmd);
    exit(2);
  }
}

/* ---- trees --------------------------------------------------------------- */

static char *at(const char *root, const char *rel) {
  static char buf[4][4096];
  static int k;
  char *p = buf[k++ % 4];
  snprintf(p, sizeof buf[0], "%s/%s", root, rel);
  return p;
}

static void mk_file(const char *root, const char *rel, size_t size, int c) {
  FILE *f = fopen(at(root, rel), "w");
  if (!f)
    die("create", at(root, rel));
  for (size_t i = 0; i < size; i++)
    fputc(c, f);
  fclose(f);
}

static void mk_dir(const char *root, const char *rel) {
  if (mkdir(at(root, rel), 0755) < 0)
    die("mkdir", at(root, rel));
}

static struct timespec mtime_of(const char *path) {
  struct stat st;
  if (lstat(path, &st) < 0)
    die("lstat", path);
  return st.st_mtim;
}

static void set_mtime(const char *path, struct timespec ts) {
  struct timespec t[2] = {ts, ts};
  if (utimensat(AT_FDCWD, path, t, AT_SYMLINK_NOFOLLOW) < 0)
    die("utimensat", path);
}

static long stamp = 0;

/* Distinct mtimes with a nanosecond part, set children first (post-order)
 * so no later change bumps a directory's. */
static int stamp_one(const char *p, const struct stat *st, int flag,
                     struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  set_mtime(p, (struct timespec){1600000000 + stamp, 123456789 + stamp});
  stamp++;
  return 0;
}

/* 15 entries below the root: dirs, files, a symlink, a hard-link pair, a
 * fifo, names with spaces and a newline. */
static void make_tree(const char *root) {
  if (mkdir(root, 0755) < 0)
    die("mkdir", root);
  mk_dir(root, "a");
  mk_file(root, "a/f1", 100, 'x');
  mk_file(root, "a/f2", 200, 'y');
  mk_dir(root, "a/sub");
  mk_file(root, "a/sub/f3", 50, 'z');
  mk_dir(root, "b");
  if (symlink("target-one", at(root, "b/link")) < 0)
    die("symlink", at(root, "b/link"));
  if (mkfifo(at(root, "b/fifo"), 0640) < 0)
    die("mkfifo", at(root, "b/fifo"));
  mk_dir(root, "h");
  mk_file(root, "h/x", 300, 'h');
  if (link(at(root, "h/x"), at(root, "h/y")) < 0)
    die("link", at(root, "h/y"));
  mk_dir(root, "with space");
  mk_file(root, "with space/file one", 10, 's');
  mk_file(root, "new\nline", 5, 'n');
  mk_dir(root, "empty");
  stamp = 0;
  nftw(root, stamp_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int rm_one(const char *p, const struct stat *st, int flag,
                  struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  remove(p);
  return 0;
}

static void rm_tree(const char *root) {
  nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A new scratch directory holding the sample source tree. */
static void fresh_trees(void) {
  rm_tree(scratch);
  if (mkdir(scratch, 0700) < 0)
    die("mkdir", scratch);
  make_tree(src);
}

/* The destination: what rsync -aH makes of the source. */
static void copy_src_to_dst(void) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "rsync -aH '%s/' '%s/'", src, dst);
  sh(cmd);
}

/* Change something inside dir without changing dir's own mtime. */
#define KEEPING_DIR_TIME(dir, stmt)                                            \
  do {                                                                         \
    struct timespec keep_ = mtime_of(dir);                                     \
    stmt;                                                                      \
    set_mtime(dir, keep_);                                                     \
  } while (0)

/* ---- running producers --------------------------------------------------- */

struct item {
  char *path;
  unsigned chunk;
};

struct run {
  lsync_producer *p;
  struct item *v;
  size_t n, cap;
  unsigned chunks, empty_chunks;
  int done, status;
  char errmsg[1024];
  lsync_scan_stats ss;
  lsync_compare_stats cs;
};

static void drain(struct run *r) {
  lsync_chunk *c;
  while (r->p && lsync_producer_take(r->p, &c)) {
    r->chunks++;
    r->empty_chunks += lsync_chunk_len(c) == 0;
    for (size_t i = 0; i < lsync_chunk_len(c); i++) {
      lsync_chunk_item it;
      lsync_chunk_item_at(c, i, &it);
      if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 64;
        if (!(r->v = realloc(r->v, r->cap * sizeof *r->v)))
          abort();
      }
      r->v[r->n].path = strdup(it.path);
      r->v[r->n++].chunk = lsync_chunk_index(c);
    }
    lsync_chunk_free(c);
  }
  int st;
  if (r->p && !r->done && lsync_producer_done(r->p, &st)) {
    r->done = 1;
    r->status = st;
    snprintf(r->errmsg, sizeof r->errmsg, "%s", lsync_producer_errmsg(r->p));
    lsync_producer_stats(r->p, &r->ss);
    lsync_producer_compare_stats(r->p, &r->cs);
  }
}

static void on_ready(void *ud, lsync_producer *p) {
  (void)p;
  drain(ud);
}

static void run_free(struct run *r) {
  for (size_t i = 0; i < r->n; i++)
    free(r->v[i].path);
  free(r->v);
  memset(r, 0, sizeof *r);
}

static const struct item *run_find(const struct run *r, const char *path) {
  for (size_t i = 0; i < r->n; i++)
    if (strcmp(r->v[i].path, path) == 0)
      return &r->v[i];
  return NULL;
}

struct side {
  int listed; /* 0: a local directory, 1: the find listing */
  const char *argv[5];
};

static void side_init(struct side *s, int listed, const char *dir) {
  s->listed = listed;
  const char *v[] = {"sh", "-c", LIST_SCRIPT, dir, NULL};
  memcpy(s->argv, v, sizeof v);
}

struct opts {
  int check_uid, check_gid;
  lsync_chunk_opts chunk;
  const lsync_filter *filter;
};

static void run_cmp(lsync_ctx *ctx, const char *from, int from_listed,
                    const char *to, int to_listed, const struct opts *x,
                    struct run *r) {
  struct side s, d;
  side_init(&s, from_listed, from);
  side_init(&d, to_listed, to);
  lsync_producer_opts o;
  lsync_producer_opts_init(&o);
  o.on_ready = on_ready;
  o.ud = r;
  o.chunk = x->chunk;
  if (!o.chunk.mode) /* small chunks: several per run */
    o.chunk = (lsync_chunk_opts)LIMITS;
  o.check_uid = x->check_uid;
  o.check_gid = x->check_gid;
  o.scan.filter = x->filter;
  if (s.listed)
    o.list_argv = s.argv;
  else
    o.root = from;
  if (d.listed)
    o.dest_list_argv = d.argv;
  else
    o.dest_root = to;
  if (lsync_producer_start(ctx, &o, &r->p) < 0) {
    fprintf(stderr, "start: %s\n", lsync_ctx_errmsg(ctx));
    CHECK(0);
    return;
  }
  lsync_run(ctx, LSYNC_RUN_DEFAULT);
  CHECK(r->done);
  lsync_producer_free(r->p);
  r->p = NULL;
}

/* ---- scenarios ----------------------------------------------------------- */

struct scenario {
  const char *name;
  void (*change)(void);
  const char *want[16]; /* the paths sent, NULL-terminated */
  uint64_t extraneous;
  int root_changed;
  int no_dest; /* the destination does not exist */
  struct opts x;
  const char *together[2]; /* must share a chunk */
};

static void ch_none(void) {
}

static void ch_mtime(void) {
  struct timespec t = mtime_of(at(src, "a/f1"));
  t.tv_nsec = (t.tv_nsec + 1) % 1000000000; /* a nanosecond is enough */
  set_mtime(at(src, "a/f1"), t);
}

static void ch_size(void) {
  struct timespec t = mtime_of(at(src, "a/f2"));
  mk_file(src, "a/f2", 201, 'y');
  set_mtime(at(src, "a/f2"), t);
}

static void ch_mode(void) {
  if (chmod(at(src, "a/sub/f3"), 0600) < 0)
    die("chmod", at(src, "a/sub/f3"));
}

/* Same length, same mtime: only the target tells. */
static void ch_symlink(void) {
  const char *l = at(src, "b/link");
  struct timespec t = mtime_of(l);
  KEEPING_DIR_TIME(at(src, "b"), {
    if (unlink(l) < 0 || symlink("target-two", l) < 0)
      die("symlink", l);
  });
  set_mtime(l, t);
}

static void ch_new_file(void) {
  mk_file(src, "a/new", 7, 'q'); /* a's mtime changes with it */
}

static void ch_dest_only(void) {
  KEEPING_DIR_TIME(at(dst, "a"), mk_file(dst, "a/extra", 3, 'e'));
}

/* Both names of the pair change (one inode). */
static void ch_linked_mtime(void) {
  struct timespec t = mtime_of(at(src, "h/x"));
  t.tv_sec += 100;
  set_mtime(at(src, "h/x"), t);
}

/* The pair's second name becomes its own inode (same content and times). */
static void ch_split_links(void) {
  KEEPING_DIR_TIME(at(dst, "h"), {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cp -p '%s' '%s.tmp' && mv '%s.tmp' '%s'",
             at(dst, "h/y"), at(dst, "h/y"), at(dst, "h/y"), at(dst, "h/y"));
    sh(cmd);
  });
}

/* A third name in the destination: 3 links there, 2 here. */
static void ch_extra_link(void) {
  KEEPING_DIR_TIME(at(dst, "h"), {
    if (link(at(dst, "h/x"), at(dst, "h/z")) < 0)
      die("link", at(dst, "h/z"));
  });
}

/* Both names keep two links there, but each its own inode: the link
 * counts agree, the partition does not. */
static void ch_two_pairs(void) {
  ch_split_links();
  KEEPING_DIR_TIME(at(dst, "h"), {
    if (link(at(dst, "h/x"), at(dst, "h/x2")) < 0 ||
        link(at(dst, "h/y"), at(dst, "h/y2")) < 0)
      die("link", at(dst, "h/x2"));
  });
}

/* A single name here whose twin has another name there. */
static void ch_linked_twin(void) {
  KEEPING_DIR_TIME(at(dst, "a/sub"), {
    if (link(at(dst, "a/f1"), at(dst, "a/sub/f1link")) < 0)
      die("link", at(dst, "a/sub/f1link"));
  });
}

static void ch_root_mtime(void) {
  struct timespec t = mtime_of(src);
  t.tv_sec += 10;
  set_mtime(src, t);
}

static void ch_newline(void) {
  struct timespec t = mtime_of(at(src, "new\nline"));
  t.tv_sec -= 1;
  set_mtime(at(src, "new\nline"), t);
}

static void ch_space(void) {
  struct timespec t = mtime_of(at(src, "with space/file one"));
  t.tv_sec += 1;
  set_mtime(at(src, "with space/file one"), t);
}

static void ch_owners(void) {
  if (lchown(at(src, "a/f1"), 12345, (gid_t)-1) < 0 ||
      lchown(at(src, "a/f2"), (uid_t)-1, 12345) < 0)
    die("lchown", at(src, "a/f1"));
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Entries below root, and their regular files' bytes. */
static void count_tree(lsync_ctx *ctx, const char *root, uint64_t *n,
                       uint64_t *file_bytes) {
  lsync_scan *s;
  *n = *file_bytes = 0;
  if (lsync_scan_open(ctx, root, NULL, &s) < 0)
    return;
  const lsync_entry *e;
  while (lsync_scan_next(s, &e) > 0) {
    (*n)++;
    if (e->type == LSYNC_T_FILE)
      *file_bytes += e->size;
  }
  lsync_scan_close(s);
}

static int same_paths(const struct run *r, const char *const *want,
                      const char *label) {
  size_t nw = 0;
  while (want[nw])
    nw++;
  const char **got = malloc((r->n + 1) * sizeof *got);
  for (size_t i = 0; i < r->n; i++)
    got[i] = r->v[i].path;
  qsort(got, r->n, sizeof *got, cmp_str);
  const char *w[16]; /* as scenario.want */
  memcpy(w, want, nw * sizeof *w);
  qsort(w, nw, sizeof *w, cmp_str);
  int ok = r->n == nw;
  for (size_t i = 0; ok && i < nw; i++)
    ok = strcmp(got[i], w[i]) == 0;
  if (!ok) {
    fprintf(stderr, "%s: sent", label);
    for (size_t i = 0; i < r->n; i++)
      fprintf(stderr, " '%s'", got[i]);
    fprintf(stderr, "; expected");
    for (size_t i = 0; i < nw; i++)
      fprintf(stderr, " '%s'", w[i]);
    fprintf(stderr, "\n");
  }
  free(got);
  return ok;
}

static void check_run(lsync_ctx *ctx, const struct scenario *sc, int sl, int dl,
                      const struct run *r, const char *to) {
  char label[200];
  snprintf(label, sizeof label, "%s (%s source, %s destination)", sc->name,
           sl ? "listed" : "local", dl ? "listed" : "local");
  if (r->status != 0)
    fprintf(stderr, "%s: failed: %s\n", label, r->errmsg);
  CHECK(r->status == 0);
  CHECK(same_paths(r, sc->want, label));
  CHECK(r->cs.enabled == 1);
  CHECK(r->cs.root_changed == sc->root_changed);
  CHECK(r->cs.extraneous == sc->extraneous);
  CHECK(r->cs.dest_errors == 0);
  /* Every source entry is sent or counted unchanged, never both. */
  CHECK(r->cs.unchanged + r->n == r->ss.entries);
  uint64_t dn, dbytes;
  count_tree(ctx, to, &dn, &dbytes);
  CHECK(r->cs.dest_entries == (sc->no_dest ? 0 : dn));
  if (sc->together[0]) {
    const struct item *a = run_find(r, sc->together[0]);
    const struct item *b = run_find(r, sc->together[1]);
    CHECK(a && b && a->chunk == b->chunk);
  }
  if (r->cs.root_changed != sc->root_changed ||
      r->cs.extraneous != sc->extraneous)
    fprintf(stderr, "%s: root_changed %d extraneous %" PRIu64 "\n", label,
            r->cs.root_changed, r->cs.extraneous);
}

static void run_scenario(lsync_ctx *ctx, const struct scenario *sc) {
  fresh_trees();
  copy_src_to_dst();
  sc->change();
  char to[700];
  snprintf(to, sizeof to, "%s%s", dst, sc->no_dest ? "/missing" : "");
  for (int sl = 0; sl < 2; sl++)
    for (int dl = 0; dl < 2; dl++) {
      struct run r = {0};
      run_cmp(ctx, src, sl, to, dl, &sc->x, &r);
      check_run(ctx, sc, sl, dl, &r, to);
      run_free(&r);
    }
}

static const struct scenario scenarios[] = {
    {.name = "identical", .change = ch_none},
    {.name = "mtime", .change = ch_mtime, .want = {"a/f1"}},
    {.name = "size", .change = ch_size, .want = {"a/f2"}},
    {.name = "mode", .change = ch_mode, .want = {"a/sub/f3"}},
    {.name = "symlink", .change = ch_symlink, .want = {"b/link"}},
    {.name = "new file", .change = ch_new_file, .want = {"a", "a/new"}},
    {.name = "destination only", .change = ch_dest_only, .extraneous = 1},
    {.name = "hard-linked mtime",
     .change = ch_linked_mtime,
     .want = {"h/x", "h/y"},
     .together = {"h/x", "h/y"}},
    {.name = "split hard links",
     .change = ch_split_links,
     .want = {"h/x", "h/y"},
     .together = {"h/x", "h/y"}},
    {.name = "extra hard link",
     .change = ch_extra_link,
     .want = {"h/x", "h/y"},
     .extraneous = 1,
     .together = {"h/x", "h/y"}},
    {.name = "two destination pairs",
     .change = ch_two_pairs,
     .want = {"h/x", "h/y"},
     .extraneous = 2,
     .together = {"h/x", "h/y"}},
    {.name = "linked twin",
     .change = ch_linked_twin,
     .want = {"a/f1"},
     .extraneous = 1},
    {.name = "missing destination",
     .change = ch_none,
     .want = {"a", "a/f1", "a/f2", "a/sub", "a/sub/f3", "b", "b/link", "b/fifo",
              "h", "h/x", "h/y", "with space", "with space/file one",
              "new\nline", "empty"},
     .root_changed = 1,
     .no_dest = 1,
     .together = {"h/x", "h/y"}},
    {.name = "root mtime", .change = ch_root_mtime, .root_changed = 1},
    {.name = "newline", .change = ch_newline, .want = {"new\nline"}},
    {.name = "spaces", .change = ch_space, .want = {"with space/file one"}},
};

/* ---- the rest ------------------------------------------------------------ */

/* A file where the destination root should be: as good as missing. */
static void test_file_dest(lsync_ctx *ctx) {
  mk_file(scratch, "plain", 1, 'p');
  char to[700];
  snprintf(to, sizeof to, "%s/plain", scratch);
  struct opts x = {0};
  struct run r = {0};
  run_cmp(ctx, src, 0, to, 0, &x, &r);
  CHECK(r.status == 0 && r.n == 15 && r.cs.root_changed == 1);
  CHECK(r.cs.unchanged == 0 && r.cs.dest_entries == 0);
  run_free(&r);
}

/* Identical trees in every chunk mode; COUNT hands out its chunks empty. */
static void test_modes(lsync_ctx *ctx) {
  fresh_trees();
  copy_src_to_dst();
  uint64_t n, bytes;
  count_tree(ctx, src, &n, &bytes);
  lsync_chunk_opts modes[] = {{.mode = LSYNC_CHUNK_COUNT, .count = 3},
                              {.mode = LSYNC_CHUNK_TOPLEVEL},
                              {.mode = LSYNC_CHUNK_LIMITS, .max_bytes = 1000}};
  for (size_t m = 0; m < sizeof modes / sizeof *modes; m++) {
    struct opts x = {.chunk = modes[m]};
    struct run r = {0};
    run_cmp(ctx, src, 0, dst, 1, &x, &r);
    CHECK(r.status == 0);
    CHECK(r.n == 0);
    CHECK(r.chunks == r.empty_chunks);
    CHECK(r.cs.unchanged == n && r.ss.entries == n);
    CHECK(r.cs.unchanged_bytes == bytes);
    CHECK(bytes == 100 + 200 + 50 + 2 * 300 + 10 + 5);
    run_free(&r);
  }
}

/* As root: owners count only when asked to. */
static void test_owners(lsync_ctx *ctx) {
  if (geteuid() != 0) {
    printf("owners: skipped (not root)\n");
    return;
  }
  struct scenario sc[] = {
      {.name = "uid", .change = ch_owners, .want = {"a/f1"}, .x.check_uid = 1},
      {.name = "gid", .change = ch_owners, .want = {"a/f2"}, .x.check_gid = 1},
      {.name = "owners ignored", .change = ch_owners},
  };
  for (size_t i = 0; i < sizeof sc / sizeof *sc; i++)
    run_scenario(ctx, &sc[i]);
}

/* As root, where the container allows it: a device is always sent. */
static void test_device(lsync_ctx *ctx) {
  fresh_trees();
  if (mknod(at(src, "b/null"), S_IFCHR | 0600, makedev(1, 3)) < 0) {
    printf("devices: skipped (mknod: %s)\n", strerror(errno));
    return;
  }
  copy_src_to_dst();
  /* Identical in all that is listed (rsync does not always copy a
   * device's mtime), yet sent: rdev is not listed. */
  set_mtime(at(dst, "b/null"), mtime_of(at(src, "b/null")));
  set_mtime(at(dst, "b"), mtime_of(at(src, "b")));
  struct opts x = {0};
  for (int dl = 0; dl < 2; dl++) {
    struct run r = {0};
    run_cmp(ctx, src, 0, dst, dl, &x, &r);
    CHECK(r.status == 0 && r.n == 1 && run_find(&r, "b/null"));
    run_free(&r);
  }
}

/* Two source inodes, each with its second name excluded, whose
 * destination twins are one inode with as many links: each group alone
 * looks unchanged, but rsync must split the destination inode. */
static void test_shared_inode(lsync_ctx *ctx) {
  rm_tree(scratch);
  if (mkdir(scratch, 0700) < 0 || mkdir(src, 0755) < 0)
    die("mkdir", scratch);
  mk_dir(src, "h");
  mk_file(src, "h/x", 30, 'c');
  mk_file(src, "h/q", 30, 'c');
  if (link(at(src, "h/x"), at(src, "h/x.ex")) < 0 ||
      link(at(src, "h/q"), at(src, "h/q.ex")) < 0)
    die("link", src);
  stamp = 0;
  nftw(src, stamp_one, 16, FTW_DEPTH | FTW_PHYS);
  set_mtime(at(src, "h/q"), mtime_of(at(src, "h/x")));
  copy_src_to_dst();
  KEEPING_DIR_TIME(at(dst, "h"), {
    if (unlink(at(dst, "h/q")) < 0 || unlink(at(dst, "h/x.ex")) < 0 ||
        unlink(at(dst, "h/q.ex")) < 0 || link(at(dst, "h/x"), at(dst, "h/q")))
      die("relink", dst);
  });
  lsync_filter *f;
  CHECK(lsync_filter_new(&f) == 0);
  CHECK(lsync_filter_add_rule(f, "- *.ex") == 0);
  struct scenario sc = {.name = "shared destination inode",
                        .want = {"h/x", "h/q"},
                        .x.filter = f};
  for (int sl = 0; sl < 2; sl++)
    for (int dl = 0; dl < 2; dl++) {
      struct run r = {0};
      run_cmp(ctx, src, sl, dst, dl, &sc.x, &r);
      check_run(ctx, &sc, sl, dl, &r, dst);
      run_free(&r);
    }
  lsync_filter_free(f);
}

static void free_cb(void *ud, lsync_timer *t) {
  struct run *r = ud;
  lsync_producer_free(r->p);
  r->p = NULL;
  lsync_timer_close(t);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Failing destinations, and stopping while the destination is read. */
static void test_failures(lsync_ctx *ctx) {
  fresh_trees();
  copy_src_to_dst();
  lsync_producer_opts o;
  lsync_producer_opts_init(&o);
  o.chunk = (lsync_chunk_opts)LIMITS;
  o.root = src;
  const char *fails[] = {"sh", "-c", "echo 'no such dir' >&2; exit 2", NULL};
  o.dest_list_argv = fails;
  struct run r = {0};
  o.on_ready = on_ready;
  o.ud = &r;
  CHECK(lsync_producer_start(ctx, &o, &r.p) == 0);
  lsync_run(ctx, LSYNC_RUN_DEFAULT);
  CHECK(r.done && r.status == LSYNC_EIO && r.n == 0);
  CHECK(strstr(r.errmsg, "destination: listing command failed (exit 2)"));
  lsync_producer_free(r.p);
  run_free(&r);

  const char *nothere[] = {"no-such-command-for-syncplan", NULL};
  o.dest_list_argv = nothere;
  lsync_producer *p = NULL;
  CHECK(lsync_producer_start(ctx, &o, &p) == LSYNC_ENOENT && !p);
  CHECK(strstr(lsync_ctx_errmsg(ctx), "destination"));
  o.dest_root = dst;
  CHECK(lsync_producer_start(ctx, &o, &p) == LSYNC_EINVAL && !p);
  lsync_run(ctx, LSYNC_RUN_DEFAULT);

  /* Stopped while blocked reading the destination listing. */
  const char *sleeper[] = {"sleep", "30", NULL};
  o.dest_root = NULL;
  o.dest_list_argv = sleeper;
  lsync_timer *t;
  double t0 = now_s();
  CHECK(lsync_producer_start(ctx, &o, &r.p) == 0);
  CHECK(lsync_timer_new(ctx, free_cb, &r, &t) == 0);
  CHECK(lsync_timer_start(t, 50, 0) == 0);
  lsync_run(ctx, LSYNC_RUN_DEFAULT);
  CHECK(r.p == NULL && !r.done && now_s() - t0 < 5.0);
  run_free(&r);

  /* Stopped at once, during the local destination crawl. */
  o.dest_list_argv = NULL;
  o.dest_root = dst;
  CHECK(lsync_producer_start(ctx, &o, &r.p) == 0);
  lsync_producer_free(r.p);
  r.p = NULL;
  lsync_run(ctx, LSYNC_RUN_DEFAULT);
  CHECK(r.n == 0);
  run_free(&r);
}

int main(void) {
  const char *tmp = getenv("TMPDIR");
  snprintf(scratch, sizeof scratch, "%s/test_compare.XXXXXX",
           tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(scratch))
    die("mkdtemp", scratch);
  snprintf(src, sizeof src, "%s/src", scratch);
  snprintf(dst, sizeof dst, "%s/dst", scratch);

  lsync_ctx *ctx;
  if (lsync_ctx_new(&ctx) < 0)
    return 2;
  for (size_t i = 0; i < sizeof scenarios / sizeof *scenarios; i++)
    run_scenario(ctx, &scenarios[i]);
  test_file_dest(ctx);
  test_modes(ctx);
  test_owners(ctx);
  test_device(ctx);
  test_shared_inode(ctx);
  test_failures(ctx);

  lsync_ctx_free(ctx);
  rm_tree(scratch);
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
