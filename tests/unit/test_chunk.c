/*
 * Partition invariants of the chunker, on synthetic entries (no disk):
 * every entry exactly once, hard-link groups never split, COUNT balance,
 * LIMITS bounds and streaming, TOPLEVEL grouping; plus size parsing and
 * the error-code list.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libsync/libsync.h>

#include "check.h"

/* A synthetic tree: entry i is named "dNN/fIIIIII"; entries in a hard-link
 * group share dev/ino.  Directories "dNN" come first. */
struct tree {
  lsync_entry *e;
  char (*names)[64];
  size_t n;
  unsigned *group; /* hard-link group id + 1, or 0 */
};

static uint64_t rng = 88172645463325252ULL;
static uint64_t rnd(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static void tree_make(struct tree *t, size_t nfiles, unsigned ndirs,
                      unsigned groups, uint64_t maxsize) {
  t->n = ndirs + nfiles;
  t->e = calloc(t->n, sizeof *t->e);
  t->names = calloc(t->n, sizeof *t->names);
  t->group = calloc(t->n, sizeof *t->group);
  for (size_t i = 0; i < t->n; i++) {
    lsync_entry *e = &t->e[i];
    if (i < ndirs) {
      snprintf(t->names[i], 64, "d%02zu", i);
      e->type = LSYNC_T_DIR;
      e->nlink = 2;
    } else {
      snprintf(t->names[i], 64, "d%02zu/f%06zu", i % ndirs, i);
      e->type = LSYNC_T_FILE;
      e->size = maxsize ? rnd() % (maxsize + 1) : 0;
      e->nlink = 1;
    }
    e->path = t->names[i];
    e->path_len = strlen(t->names[i]);
    e->dev = 1;
    e->ino = i + 1;
  }
  /* Hard-link groups of 3 names spread over the tree. */
  for (unsigned g = 0; g < groups; g++) {
    size_t base = ndirs + (size_t)g * 97 % nfiles;
    for (size_t k = 0; k < 3; k++) {
      size_t i = ndirs + (base - ndirs + k * (nfiles / 3)) % nfiles;
      if (t->group[i])
        continue;
      t->group[i] = g + 1;
      t->e[i].ino = 1000000000ULL + g;
      t->e[i].nlink = 3;
      t->e[i].size = 4096 + g;
    }
  }
  /* Groups that lost a name to a collision need their nlink to match. */
  for (unsigned g = 0; g < groups; g++) {
    uint64_t cnt = 0;
    for (size_t i = 0; i < t->n; i++)
      cnt += t->group[i] == g + 1;
    for (size_t i = 0; i < t->n; i++)
      if (t->group[i] == g + 1)
        t->e[i].nlink = cnt;
  }
}

static void tree_free(struct tree *t) {
  free(t->e);
  free(t->names);
  free(t->group);
}

static size_t index_of(const struct tree *t, const char *path) {
  unsigned long i;
  const char *f = strchr(path, '/');
  if (!f)
    return (size_t)strtoul(path + 1, NULL, 10);
  i = strtoul(f + 2, NULL, 10);
  return (size_t)i;
  (void)t;
}

/* What the callback saw. */
struct seen {
  const struct tree *t;
  unsigned *chunk_of; /* per entry: chunk index, 0 = not seen */
  unsigned dup;       /* entries seen twice */
  unsigned nchunks;
  uint64_t bytes[4096];
  uint64_t files[4096];
  unsigned sorted_bad;
  unsigned before_finish; /* chunks handed out before finish() */
  int finishing;
  unsigned stop_after; /* return 1 after this many chunks (0 = never) */
};

static int collect(void *ud, lsync_chunk *c) {
  struct seen *s = ud;
  unsigned idx = lsync_chunk_index(c);
  s->nchunks++;
  if (!s->finishing)
    s->before_finish++;
  if (idx < 4096) {
    s->bytes[idx] = lsync_chunk_bytes(c);
    s->files[idx] = lsync_chunk_len(c);
  }
  const char *prev = NULL;
  for (size_t i = 0; i < lsync_chunk_len(c); i++) {
    lsync_chunk_item it;
    lsync_chunk_item_at(c, i, &it);
    size_t e = index_of(s->t, it.path);
    if (e >= s->t->n || strcmp(it.path, s->t->names[e]) != 0) {
      s->dup++;
      continue;
    }
    if (s->chunk_of[e])
      s->dup++;
    s->chunk_of[e] = idx;
    if (prev && strcmp(prev, it.path) >= 0)
      s->sorted_bad++;
    prev = it.path;
  }
  lsync_chunk_free(c);
  return s->stop_after && s->nchunks >= s->stop_after;
}

/* Counts chunks and their sizes only (entries outside any tree). */
static int count_only(void *ud, lsync_chunk *c) {
  struct seen *s = ud;
  s->nchunks++;
  s->files[lsync_chunk_index(c)] = lsync_chunk_len(c);
  lsync_chunk_free(c);
  return 0;
}

static int feed(lsync_ctx *ctx, const struct tree *t, const lsync_chunk_opts *o,
                struct seen *s) {
  memset(s, 0, sizeof *s);
  s->t = t;
  s->chunk_of = calloc(t->n, sizeof *s->chunk_of);
  lsync_chunker *ch;
  int rc = lsync_chunker_new(ctx, o, collect, s, &ch);
  if (rc < 0)
    return rc;
  for (size_t i = 0; i < t->n && rc == 0; i++)
    rc = lsync_chunker_add(ch, &t->e[i]);
  s->finishing = 1;
  if (rc == 0)
    rc = lsync_chunker_finish(ch);
  lsync_chunker_free(ch);
  return rc;
}

static int all_once(const struct seen *s) {
  for (size_t i = 0; i < s->t->n; i++)
    if (!s->chunk_of[i])
      return 0;
  return s->dup == 0;
}

static int groups_whole(const struct seen *s) {
  const struct tree *t = s->t;
  for (size_t i = 0; i < t->n; i++)
    for (size_t j = i + 1; t->group[i] && j < t->n; j++)
      if (t->group[j] == t->group[i] && s->chunk_of[j] != s->chunk_of[i])
        return 0;
  return 1;
}

static uint64_t tree_bytes(const struct tree *t) {
  uint64_t sum = 0;
  for (size_t i = 0; i < t->n; i++) {
    int first = 1;
    for (size_t j = 0; t->group[i] && j < i; j++)
      if (t->group[j] == t->group[i])
        first = 0;
    if (first)
      sum += t->e[i].size;
  }
  return sum;
}

static void test_count(lsync_ctx *ctx) {
  struct tree t;
  tree_make(&t, 50000, 50, 40, 16384);
  lsync_chunk_opts o = {.mode = LSYNC_CHUNK_COUNT, .count = 8};
  struct seen s;
  CHECK(feed(ctx, &t, &o, &s) == 0);
  CHECK(s.nchunks == 8);
  CHECK(all_once(&s));
  CHECK(groups_whole(&s));
  CHECK(s.sorted_bad == 0);
  CHECK(s.before_finish == 0);
  uint64_t min = UINT64_MAX, max = 0, sum = 0, fmin = UINT64_MAX, fmax = 0;
  for (unsigned c = 1; c <= 8; c++) {
    min = s.bytes[c] < min ? s.bytes[c] : min;
    max = s.bytes[c] > max ? s.bytes[c] : max;
    fmin = s.files[c] < fmin ? s.files[c] : fmin;
    fmax = s.files[c] > fmax ? s.files[c] : fmax;
    sum += s.bytes[c];
  }
  CHECK(sum == tree_bytes(&t));
  /* No file exceeds the mean, so chunks are within 5% (LPT gets far
   * closer on many small files: a few bytes). */
  CHECK((double)(max - min) <= 0.05 * (double)max);
  CHECK(max - min <= 16384);
  CHECK(fmax - fmin <= (fmax + fmin) / 20);
  printf("count: bytes %" PRIu64 "..%" PRIu64 ", files %" PRIu64 "..%" PRIu64
         "\n",
         min, max, fmin, fmax);
  free(s.chunk_of);

  /* Same input, same chunks: deterministic. */
  struct seen s2;
  CHECK(feed(ctx, &t, &o, &s2) == 0);
  CHECK(memcmp(s.bytes, s2.bytes, sizeof s.bytes) == 0);
  free(s2.chunk_of);

  /* More chunks than entries: empty chunks still come out, numbered. */
  struct tree small;
  tree_make(&small, 3, 1, 0, 100);
  o.count = 10;
  CHECK(feed(ctx, &small, &o, &s) == 0);
  CHECK(s.nchunks == 10 && all_once(&s));
  free(s.chunk_of);
  tree_free(&small);
  tree_free(&t);
}

static void test_count_zero_sizes(lsync_ctx *ctx) {
  /* Only empty files: the second pass must still spread them evenly, and
   * 200,000 equal sizes must not make ordering quadratic. */
  struct tree big;
  tree_make(&big, 200000, 10, 0, 0);
  lsync_chunk_opts o8 = {.mode = LSYNC_CHUNK_COUNT, .count = 8};
  struct seen sb;
  CHECK(feed(ctx, &big, &o8, &sb) == 0);
  CHECK(all_once(&sb));
  free(sb.chunk_of);
  tree_free(&big);

  struct tree t;
  tree_make(&t, 1000, 10, 0, 0);
  lsync_chunk_opts o = {.mode = LSYNC_CHUNK_COUNT, .count = 4};
  struct seen s;
  CHECK(feed(ctx, &t, &o, &s) == 0);
  CHECK(all_once(&s));
  for (unsigned c = 1; c <= 4; c++)
    CHECK(s.files[c] >= 252 && s.files[c] <= 253);
  free(s.chunk_of);
  tree_free(&t);
}

static void test_limits(lsync_ctx *ctx) {
  struct tree t;
  tree_make(&t, 20000, 20, 30, 65536);
  t.e[500].size = 50 << 20; /* bigger than max_bytes: a chunk of its own */
  lsync_chunk_opts o = {
      .mode = LSYNC_CHUNK_LIMITS, .max_files = 100, .max_bytes = 1 << 20};
  struct seen s;
  CHECK(feed(ctx, &t, &o, &s) == 0);
  CHECK(all_once(&s));
  CHECK(groups_whole(&s));
  CHECK(s.sorted_bad == 0);
  /* Streamed: nearly every chunk went out before finish(). */
  CHECK(s.before_finish + 2 >= s.nchunks);
  CHECK(s.before_finish > 100);
  unsigned over = 0;
  for (unsigned c = 1; c <= s.nchunks && c < 4096; c++)
    if (s.files[c] > 100 || s.bytes[c] > (1 << 20))
      over++;
  CHECK(over == 1); /* only the 50 MiB file's chunk */
  CHECK(s.files[s.chunk_of[500]] == 1);
  free(s.chunk_of);

  /* st_nlink grew during the crawl (a link made meanwhile): the group
   * waits for the most any name reported and is not split. */
  {
    lsync_entry g[3] = {{.path = "a/x",
                         .path_len = 3,
                         .type = LSYNC_T_FILE,
                         .size = 5,
                         .dev = 9,
                         .ino = 77,
                         .nlink = 2},
                        {.path = "b/x",
                         .path_len = 3,
                         .type = LSYNC_T_FILE,
                         .size = 5,
                         .dev = 9,
                         .ino = 77,
                         .nlink = 3},
                        {.path = "c/x",
                         .path_len = 3,
                         .type = LSYNC_T_FILE,
                         .size = 5,
                         .dev = 9,
                         .ino = 77,
                         .nlink = 3}};
    lsync_chunk_opts one = {.mode = LSYNC_CHUNK_LIMITS, .max_files = 1};
    struct seen sg;
    memset(&sg, 0, sizeof sg);
    lsync_chunker *chg;
    CHECK(lsync_chunker_new(ctx, &one, count_only, &sg, &chg) == 0);
    for (int i = 0; i < 3; i++)
      CHECK(lsync_chunker_add(chg, &g[i]) == 0);
    CHECK(lsync_chunker_finish(chg) == 0);
    CHECK(sg.nchunks == 1 && sg.files[1] == 3);
    /* Finished: further calls are refused, not silently wrong. */
    CHECK(lsync_chunker_add(chg, &g[0]) == LSYNC_EINVAL);
    CHECK(lsync_chunker_finish(chg) == LSYNC_EINVAL);
    lsync_chunker_free(chg);
  }

  /* A hard-link group whose other names are outside the input still
   * comes out (at finish). */
  t.e[t.n - 1].nlink = 5;
  t.e[t.n - 1].ino = 4242424242ULL;
  o.max_bytes = 0;
  CHECK(feed(ctx, &t, &o, &s) == 0);
  CHECK(all_once(&s));
  free(s.chunk_of);
  tree_free(&t);
}

/* TOPLEVEL names are not "dNN/fNNNNNN": look them up by name. */
/* spread: a small tree whose bytes sit in a few big files still spreads
 * them over chunks, and chunks grow with the bytes seen (never past
 * max_bytes). */
static void test_spread(lsync_ctx *ctx) {
  lsync_entry big[8];
  char names[8][8];
  for (int i = 0; i < 8; i++) {
    snprintf(names[i], sizeof names[i], "big/b%d", i);
    big[i] = (lsync_entry){.path = names[i],
                           .path_len = strlen(names[i]),
                           .type = LSYNC_T_FILE,
                           .size = 32 << 20,
                           .nlink = 1,
                           .ino = (uint64_t)i + 1};
  }
  lsync_chunk_opts o = {.mode = LSYNC_CHUNK_LIMITS,
                        .max_files = 2000,
                        .max_bytes = 4ULL << 30,
                        .spread = 16};
  struct seen s;
  memset(&s, 0, sizeof s);
  lsync_chunker *ch;
  CHECK(lsync_chunker_new(ctx, &o, count_only, &s, &ch) == 0);
  for (int i = 0; i < 8; i++)
    CHECK(lsync_chunker_add(ch, &big[i]) == 0);
  CHECK(lsync_chunker_finish(ch) == 0);
  lsync_chunker_free(ch);
  CHECK(s.nchunks == 8); /* 16 MiB floor: each 32 MiB file alone */

  /* Without spread the same files share one chunk (fpsync's limits). */
  o.spread = 0;
  memset(&s, 0, sizeof s);
  CHECK(lsync_chunker_new(ctx, &o, count_only, &s, &ch) == 0);
  for (int i = 0; i < 8; i++)
    CHECK(lsync_chunker_add(ch, &big[i]) == 0);
  CHECK(lsync_chunker_finish(ch) == 0);
  lsync_chunker_free(ch);
  CHECK(s.nchunks == 1);

  /* A big tree: the limit follows bytes seen / spread, so late chunks
   * are bigger than early ones but stay under max_bytes. */
  struct tree t;
  tree_make(&t, 20000, 20, 30, 65536);
  for (size_t i = 0; i < t.n; i++)
    if (t.e[i].type == LSYNC_T_FILE)
      t.e[i].size = 1 << 20;
  o = (lsync_chunk_opts){.mode = LSYNC_CHUNK_LIMITS,
                         .max_bytes = 1ULL << 30,
                         .spread = 64,
                         .min_bytes = 4 << 20};
  memset(&s, 0, sizeof s);
  CHECK(feed(ctx, &t, &o, &s) == 0);
  CHECK(all_once(&s));
  CHECK(s.nchunks > 4 && s.nchunks < 4096);
  CHECK(s.bytes[1] <= (4 << 20));
  CHECK(s.bytes[s.nchunks - 1] > s.bytes[1]);
  for (unsigned c = 1; c <= s.nchunks; c++)
    CHECK(s.bytes[c] <= (1ULL << 30));
  free(s.chunk_of);
  tree_free(&t);
}

static int collect_top(void *ud, lsync_chunk *c) {
  struct seen *s = ud;
  unsigned idx = lsync_chunk_index(c);
  s->nchunks++;
  s->bytes[idx] = lsync_chunk_bytes(c);
  for (size_t i = 0; i < lsync_chunk_len(c); i++) {
    lsync_chunk_item it;
    lsync_chunk_item_at(c, i, &it);
    for (size_t e = 0; e < s->t->n; e++)
      if (!strcmp(s->t->names[e], it.path))
        s->chunk_of[e] = idx;
  }
  lsync_chunk_free(c);
  return 0;
}

static void test_toplevel(lsync_ctx *ctx) {
  static const char *paths[] = {"a", "a/x", "a-b", "b",   "b/y",
                                "c", "c/z", "d",   "d/w", "e"};
  lsync_entry e[10];
  struct tree t = {e, NULL, 10, NULL};
  char names[10][64];
  unsigned group[10] = {0};
  t.names = names;
  t.group = group;
  for (int i = 0; i < 10; i++) {
    snprintf(names[i], 64, "%s", paths[i]);
    e[i] = (lsync_entry){.path = names[i],
                         .path_len = strlen(names[i]),
                         .type =
                             strchr(paths[i], '/') ? LSYNC_T_FILE : LSYNC_T_DIR,
                         .size = 10,
                         .dev = 1,
                         .ino = (uint64_t)i + 1,
                         .nlink = 1};
  }
  /* b/y and d/w are one inode: b and d must share a chunk. */
  e[4].ino = e[8].ino = 99;
  e[4].nlink = e[8].nlink = 2;
  group[4] = group[8] = 1;
  lsync_chunker *ch;
  struct seen s;
  memset(&s, 0, sizeof s);
  unsigned chunk_of[10] = {0};
  s.t = &t;
  s.chunk_of = chunk_of;
  lsync_chunk_opts o = {.mode = LSYNC_CHUNK_TOPLEVEL};
  CHECK(lsync_chunker_new(ctx, &o, collect_top, &s, &ch) == 0);
  for (int i = 9; i >= 0; i--) /* any input order */
    CHECK(lsync_chunker_add(ch, &e[i]) == 0);
  CHECK(lsync_chunker_finish(ch) == 0);
  lsync_chunker_free(ch);
  /* a | a-b | b+d | c | e, numbered in that order */
  CHECK(s.nchunks == 5);
  CHECK(chunk_of[0] == 1 && chunk_of[1] == 1);
  CHECK(chunk_of[2] == 2);
  CHECK(chunk_of[3] == 3 && chunk_of[4] == 3 && chunk_of[7] == 3 &&
        chunk_of[8] == 3);
  CHECK(chunk_of[5] == 4 && chunk_of[6] == 4);
  CHECK(chunk_of[9] == 5);
  CHECK(s.bytes[3] == 30); /* b, b/y, d, d/w: the shared inode once */
}

static void test_stop_and_errors(lsync_ctx *ctx) {
  struct tree t;
  tree_make(&t, 1000, 5, 0, 1000);
  lsync_chunk_opts o = {.mode = LSYNC_CHUNK_LIMITS, .max_files = 10};
  struct seen s;
  memset(&s, 0, sizeof s);
  s.t = &t;
  s.chunk_of = calloc(t.n, sizeof *s.chunk_of);
  s.stop_after = 3;
  lsync_chunker *ch;
  CHECK(lsync_chunker_new(ctx, &o, collect, &s, &ch) == 0);
  int rc = 0;
  for (size_t i = 0; i < t.n && rc == 0; i++)
    rc = lsync_chunker_add(ch, &t.e[i]);
  CHECK(rc == LSYNC_ECANCELED);
  CHECK(s.nchunks == 3);
  CHECK(lsync_chunker_finish(ch) == LSYNC_ECANCELED);
  lsync_chunker_free(ch);
  free(s.chunk_of);
  tree_free(&t);

  lsync_chunk_opts bad = {.mode = LSYNC_CHUNK_COUNT, .count = 0};
  CHECK(lsync_chunker_new(ctx, &bad, collect, &s, &ch) == LSYNC_EINVAL);
  CHECK(strstr(lsync_ctx_errmsg(ctx), "count") != NULL);
  bad = (lsync_chunk_opts){.mode = LSYNC_CHUNK_LIMITS};
  CHECK(lsync_chunker_new(ctx, &bad, collect, &s, &ch) == LSYNC_EINVAL);
  bad = (lsync_chunk_opts){.mode = 42};
  CHECK(lsync_chunker_new(ctx, &bad, collect, &s, &ch) == LSYNC_EINVAL);
}

static void test_sizes(void) {
  uint64_t v = 0;
  CHECK(lsync_parse_size("0", &v) == 0 && v == 0);
  CHECK(lsync_parse_size("100", &v) == 0 && v == 100);
  CHECK(lsync_parse_size("4k", &v) == 0 && v == 4096);
  CHECK(lsync_parse_size("4K", &v) == 0 && v == 4096);
  CHECK(lsync_parse_size("1.5M", &v) == 0 && v == 1572864);
  CHECK(lsync_parse_size("4G", &v) == 0 && v == 4ULL << 30);
  CHECK(lsync_parse_size("4GiB", &v) == 0 && v == 4ULL << 30);
  CHECK(lsync_parse_size("4gb", &v) == 0 && v == 4ULL << 30);
  CHECK(lsync_parse_size("2T", &v) == 0 && v == 2ULL << 40);
  CHECK(lsync_parse_size("1P", &v) == 0 && v == 1ULL << 50);
  CHECK(lsync_parse_size("10B", &v) == 0 && v == 10);
  CHECK(lsync_parse_size("", &v) == LSYNC_EINVAL);
  CHECK(lsync_parse_size("-1", &v) == LSYNC_EINVAL);
  CHECK(lsync_parse_size("4X", &v) == LSYNC_EINVAL);
  CHECK(lsync_parse_size("4kk", &v) == LSYNC_EINVAL);
  CHECK(lsync_parse_size(" 4k", &v) == LSYNC_EINVAL);
  CHECK(lsync_parse_size("nan", &v) == LSYNC_EINVAL);
  CHECK(lsync_parse_size("99999999P", &v) == LSYNC_ERANGE);
}

static void test_errors(void) {
  CHECK(!strcmp(lsync_err_name(LSYNC_EINVAL), "EINVAL"));
  CHECK(!strcmp(lsync_err_name(LSYNC_ENOENT), "ENOENT"));
  CHECK(!strcmp(lsync_err_name(0), "OK"));
  CHECK(!strcmp(lsync_err_name(-9999), "UNKNOWN"));
  CHECK(!strcmp(lsync_strerror(LSYNC_ENOMEM), "out of memory"));
  CHECK(!strcmp(lsync_strerror(12345), "unknown error"));
  /* The list is append-only: these numbers are part of the ABI. */
  CHECK(LSYNC_EINVAL == -1 && LSYNC_ENOMEM == -2 && LSYNC_ELOOP == -12);
}

int main(void) {
  lsync_ctx *ctx;
  if (lsync_ctx_new(&ctx) != 0)
    return 1;
  test_count(ctx);
  test_count_zero_sizes(ctx);
  test_limits(ctx);
  test_spread(ctx);
  test_toplevel(ctx);
  test_stop_and_errors(ctx);
  test_sizes();
  test_errors();
  lsync_ctx_free(ctx);
  printf("%d passed, %d failed\n", passed, failed);
  return failed != 0;
}
