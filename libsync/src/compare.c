/*
 * The quick check: the destination is read into an index, then each
 * source entry is looked up in it and judged by rsync -a's quick-check
 * rule (producer.h).  When in doubt an entry is changed: sending an
 * unchanged entry only costs time, dropping a changed one loses data.
 *
 * Index layout.  Records (struct dent, 88 bytes) live in fixed-size
 * blocks, so growing never moves them (held entries point at their twins)
 * or copies the whole table; paths, and listing link targets, live in a
 * string pool (chunk.c's).  The hash table is linear probing over 8-byte
 * slots, at most 3/4 full: a record's number plus the high 32 bits of its
 * path's hash, so a probe compares paths only on a likely match.  That
 * comes to 100-110 bytes per entry plus the path.  The hash is seeded per
 * compare: names come from whoever controls the trees.
 *
 * Hard links.  rsync -H links only names it sees in one run, so the names
 * of one source inode must go together or not at all.  They are held
 * (their verdict taken at once, the path copied) until the source is
 * read, then grouped by source inode.  A group stays out only if every
 * name is unchanged, all twins are one destination inode with as many
 * links as the source inode, and nothing else claims that destination
 * inode: not another group, not a single-link source entry whose twin
 * is one of its names (those are always sent).  Otherwise rsync would
 * have to split or join destination inodes, which it only does for names
 * it is sent.
 *
 * Symlinks: a crawl does not read targets, so the compare reads them
 * (readlinkat under the root) only when everything else already matches.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "chunk_internal.h"
#include "compare.h"
#include "listing.h"

#define DENTS_PER_BLOCK 4096
#define TICK_EVERY 4096
#define TAG_MASK 0xffffffff00000000ULL
#define NO_GROUP UINT32_MAX

/* One destination entry. */
struct dent {
  const char *path;   /* in the arena, NUL-terminated */
  const char *target; /* listing symlinks: in the arena; NULL: readlinkat */
  uint64_t size, dev, ino, nlink;
  int64_t mtime;
  int32_t nsec;
  uint32_t path_len, target_len;
  uint32_t uid, gid;
  uint32_t hash_lo; /* with the slot's tag, the hash, for rehashing */
  uint16_t mode;
  uint8_t type;
  uint8_t matched; /* a source entry of the same type has this path */
  uint8_t dup;     /* the listing named the path twice: never trusted */
};

/* A hard-linked source entry waiting for its group's verdict. */
struct held {
  const char *path; /* in the arena */
  size_t len;
  uint64_t size, dev, ino, nlink;
  const struct dent *twin; /* same path and type, or NULL */
  lsync_type type;
  int same; /* unchanged by the per-entry rules */
  uint32_t group;
};

/* A destination inode that a source group, or a single-link source entry
 * (group NO_GROUP), maps to. */
struct claim {
  uint64_t dev, ino;
  uint32_t group;
};

struct rootattr {
  int have, is_dir;
  uint32_t mode, uid, gid;
  int64_t mtime;
  int32_t nsec;
};

struct lsync__compare {
  lsync_ctx *ctx;  /* the producer thread's */
  lsync_ctx *dctx; /* the destination reader's: its lines get a prefix */
  int check_uid, check_gid;
  int src_fd, dst_fd;   /* local roots (readlinkat), or -1 */
  lsync_scan *scan;     /* a local destination, or ... */
  lsync__listing *list; /* ... a listing; neither: missing destination */
  struct rootattr src_root, dst_root;
  uint64_t seed;

  struct dent **blocks;
  size_t nblocks, cap_blocks;
  uint32_t n;      /* records */
  uint64_t *slots; /* 0: empty; else tag | (record number + 1) */
  size_t cap;      /* 0 or a power of two */
  struct pool *arena; /* the paths and link targets */
  uint64_t matched;

  struct held *held;
  size_t nheld, cap_held;
  struct claim *claims;
  size_t nclaims, cap_claims;

  lsync_compare_stats st;
};

/* ---- memory -------------------------------------------------------------- */

static int nomem(lsync__compare *c) {
  return lsync__fail(c->ctx, LSYNC_ENOMEM, "quick check: out of memory");
}

/* Grow *arr (elements of elem bytes) to hold need; 0 or -1. */
static int grow(void **arr, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap)
    return 0;
  size_t n = *cap ? *cap * 2 : 64;
  while (n < need)
    n *= 2;
  void *p = realloc(*arr, n * elem);
  if (!p)
    return -1;
  *arr = p;
  *cap = n;
  return 0;
}

/* Copy s[0, n) plus a NUL into the arena (the chunker's string pool);
 * NULL when out of memory. */
static const char *arena_copy(lsync__compare *c, const char *s, size_t n) {
  if (!c->arena && !(c->arena = lsync__pool_new()))
    return NULL;
  return lsync__pool_copy(c->arena, s, n);
}

/* ---- the index ----------------------------------------------------------- */

static uint64_t mix(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

/* Eight bytes a step: paths are hashed once per entry on each side. */
static uint64_t hash_path(uint64_t seed, const char *p, size_t n) {
  uint64_t h = seed ^ (n * 0x9e3779b97f4a7c15ULL), w;
  for (; n >= 8; p += 8, n -= 8) {
    memcpy(&w, p, 8);
    h ^= w * 0x87c37b91114253d5ULL;
    h = (h << 31 | h >> 33) * 0x4cf5ad432745937fULL;
  }
  w = 0;
  memcpy(&w, p, n);
  return mix(h ^ w * 0x87c37b91114253d5ULL);
}

static struct dent *dent_at(const lsync__compare *c, uint32_t i) {
  return &c->blocks[i / DENTS_PER_BLOCK][i % DENTS_PER_BLOCK];
}

/* The record with this path, or NULL and *at the empty slot ending the
 * probe.  The table must have a slot. */
static struct dent *probe(const lsync__compare *c, const char *p, size_t len,
                          uint64_t h, size_t *at) {
  size_t mask = c->cap - 1;
  for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
    uint64_t s = c->slots[i];
    if (!s) {
      *at = i;
      return NULL;
    }
    if ((s & TAG_MASK) == (h & TAG_MASK)) {
      struct dent *d = dent_at(c, (uint32_t)s - 1);
      if (d->path_len == len && memcmp(d->path, p, len) == 0) {
        *at = i;
        return d;
      }
    }
  }
}

static struct dent *lookup(const lsync__compare *c, const char *p, size_t len) {
  size_t at;
  return c->cap ? probe(c, p, len, hash_path(c->seed, p, len), &at) : NULL;
}

static int grow_slots(lsync__compare *c) {
  size_t cap = c->cap ? c->cap * 2 : 1024;
  uint64_t *slots = calloc(cap, sizeof *slots);
  if (!slots)
    return -1;
  for (size_t i = 0; i < c->cap; i++) {
    uint64_t s = c->slots[i];
    if (!s)
      continue;
    uint64_t h = (s & TAG_MASK) | dent_at(c, (uint32_t)s - 1)->hash_lo;
    size_t j = (size_t)h & (cap - 1);
    while (slots[j])
      j = (j + 1) & (cap - 1);
    slots[j] = s;
  }
  free(c->slots);
  c->slots = slots;
  c->cap = cap;
  return 0;
}

/* A new record, numbered c->n (not counted yet). */
static struct dent *dent_new(lsync__compare *c) {
  size_t b = c->n / DENTS_PER_BLOCK;
  if (b == c->nblocks) {
    struct dent *blk;
    if (grow((void **)&c->blocks, &c->cap_blocks, b + 1, sizeof *c->blocks) <
            0 ||
        !(blk = malloc(DENTS_PER_BLOCK * sizeof *blk)))
      return NULL;
    c->blocks[c->nblocks++] = blk;
  }
  return dent_at(c, c->n);
}

static int index_add(lsync__compare *c, const lsync_entry *e) {
  c->st.dest_entries++;
  if (c->n >= UINT32_MAX - 1)
    return lsync__fail(c->ctx, LSYNC_ERANGE,
                       "quick check: too many destination entries");
  if ((size_t)(c->n + 1) * 4 > c->cap * 3 && grow_slots(c) < 0)
    return nomem(c);
  uint64_t h = hash_path(c->seed, e->path, e->path_len);
  size_t at;
  struct dent *d = probe(c, e->path, e->path_len, h, &at);
  if (d) {
    d->dup = 1;
    return 0;
  }
  if (!(d = dent_new(c)) || !(d->path = arena_copy(c, e->path, e->path_len)))
    return nomem(c);
  d->target = NULL;
  d->target_len = 0;
  if (e->link_target &&
      !(d->target = arena_copy(c, e->link_target, e->link_target_len)))
    return nomem(c);
  d->target_len = (uint32_t)e->link_target_len;
  d->path_len = (uint32_t)e->path_len;
  d->size = e->size;
  d->dev = e->dev;
  d->ino = e->ino;
  d->nlink = e->nlink;
  d->mtime = e->mtime;
  d->nsec = e->mtime_nsec;
  d->uid = e->uid;
  d->gid = e->gid;
  d->hash_lo = (uint32_t)h;
  d->mode = (uint16_t)(e->mode & 07777);
  d->type = (uint8_t)e->type;
  d->matched = 0;
  d->dup = 0;
  c->slots[at] = (h & TAG_MASK) | ((uint64_t)c->n + 1);
  c->n++;
  return 0;
}

/* ---- verdicts ------------------------------------------------------------ */

/* The target of a symlink under root fd dirfd, into buf; -1 if unreadable
 * (or too long to compare: changed). */
static ssize_t read_target(int dirfd, const char *path, char *buf, size_t n) {
  if (dirfd < 0)
    return -1;
  ssize_t got = readlinkat(dirfd, path, buf, n);
  return got >= 0 && (size_t)got < n ? got : -1;
}

static int same_target(const lsync__compare *c, const lsync_entry *e,
                       const struct dent *d) {
  char sbuf[PATH_MAX], dbuf[PATH_MAX];
  const char *s = e->link_target, *t = d->target;
  ssize_t sn = (ssize_t)e->link_target_len, tn = (ssize_t)d->target_len;
  if (!s && (sn = read_target(c->src_fd, e->path, sbuf, sizeof sbuf)) >= 0)
    s = sbuf;
  if (!t && (tn = read_target(c->dst_fd, d->path, dbuf, sizeof dbuf)) >= 0)
    t = dbuf;
  return s && t && sn == tn && memcmp(s, t, (size_t)sn) == 0;
}

/* The per-entry rules; d has e's path and type. */
static int same_entry(const lsync__compare *c, const lsync_entry *e,
                      const struct dent *d) {
  /* Devices: rdev is not listed.  Unknown types: nothing to go by. */
  if (e->type == LSYNC_T_CHAR || e->type == LSYNC_T_BLOCK ||
      e->type == LSYNC_T_UNKNOWN || d->dup)
    return 0;
  if (e->mode != d->mode || e->mtime != d->mtime || e->mtime_nsec != d->nsec)
    return 0;
  if ((c->check_uid && e->uid != d->uid) || (c->check_gid && e->gid != d->gid))
    return 0;
  /* A symlink's size is its target's length: a cheap first test. */
  if ((e->type == LSYNC_T_FILE || e->type == LSYNC_T_SYMLINK) &&
      e->size != d->size)
    return 0;
  return e->type != LSYNC_T_SYMLINK || same_target(c, e, d);
}

static int claim(lsync__compare *c, uint64_t dev, uint64_t ino,
                 uint32_t group) {
  if (grow((void **)&c->claims, &c->cap_claims, c->nclaims + 1,
           sizeof *c->claims) < 0)
    return nomem(c);
  c->claims[c->nclaims++] = (struct claim){dev, ino, group};
  return 0;
}

static int hold(lsync__compare *c, const lsync_entry *e,
                const struct dent *twin, int same) {
  const char *path;
  if (c->nheld >= NO_GROUP - 1) /* groups are numbered with uint32_t */
    return lsync__fail(c->ctx, LSYNC_ERANGE,
                       "quick check: too many hard links");
  if (grow((void **)&c->held, &c->cap_held, c->nheld + 1, sizeof *c->held) <
          0 ||
      !(path = arena_copy(c, e->path, e->path_len)))
    return nomem(c);
  c->held[c->nheld++] = (struct held){.path = path,
                                      .len = e->path_len,
                                      .size = e->size,
                                      .dev = e->dev,
                                      .ino = e->ino,
                                      .nlink = e->nlink,
                                      .twin = twin,
                                      .type = e->type,
                                      .same = same};
  return LSYNC__CMP_HELD;
}

static void count_unchanged(lsync__compare *c, lsync_type type, uint64_t size) {
  c->st.unchanged++;
  if (type == LSYNC_T_FILE)
    c->st.unchanged_bytes += size;
}

int lsync__compare_entry(lsync__compare *c, const lsync_entry *e) {
  struct dent *d = lookup(c, e->path, e->path_len);
  struct dent *twin = d && d->type == (uint8_t)e->type ? d : NULL;
  if (twin && !twin->matched) {
    twin->matched = 1;
    c->matched++;
  }
  int same = twin && same_entry(c, e, twin);
  if (e->nlink > 1 && e->type != LSYNC_T_DIR)
    return hold(c, e, twin, same);
  if (d && d->type != LSYNC_T_DIR && d->nlink > 1) {
    /* One name here, several there: only sending it splits the inode,
     * and no held group may count this inode as its own. */
    same = 0;
    if (claim(c, d->dev, d->ino, NO_GROUP) < 0)
      return LSYNC_ENOMEM;
  }
  if (!same)
    return LSYNC__CMP_SEND;
  count_unchanged(c, e->type, e->size);
  return LSYNC__CMP_DROP;
}

/* ---- roots --------------------------------------------------------------- */

static void root_from_stat(struct rootattr *r, const struct stat *st) {
  *r = (struct rootattr){.have = 1,
                         .is_dir = S_ISDIR(st->st_mode),
                         .mode = (uint32_t)(st->st_mode & 07777),
                         .uid = (uint32_t)st->st_uid,
                         .gid = (uint32_t)st->st_gid,
                         .mtime = (int64_t)st->st_mtim.tv_sec,
                         .nsec = (int32_t)st->st_mtim.tv_nsec};
}

static void root_from_entry(struct rootattr *r, const lsync_entry *e) {
  *r = (struct rootattr){.have = 1,
                         .is_dir = e->type == LSYNC_T_DIR,
                         .mode = e->mode,
                         .uid = e->uid,
                         .gid = e->gid,
                         .mtime = e->mtime,
                         .nsec = e->mtime_nsec};
}

static int roots_differ(const lsync__compare *c) {
  const struct rootattr *s = &c->src_root, *d = &c->dst_root;
  if (!s->have || !d->have || !d->is_dir || !s->is_dir)
    return 1;
  return s->mode != d->mode || s->mtime != d->mtime || s->nsec != d->nsec ||
         (c->check_uid && s->uid != d->uid) ||
         (c->check_gid && s->gid != d->gid);
}

void lsync__compare_source_root(lsync__compare *c, const lsync_entry *root) {
  if (root)
    root_from_entry(&c->src_root, root);
  else
    c->src_root.have = 0;
}

/* ---- hard-link groups ---------------------------------------------------- */

static int cmp_u64(uint64_t a, uint64_t b) {
  return (a > b) - (a < b);
}

static int held_cmp(const void *a, const void *b) {
  const struct held *x = a, *y = b;
  int r = cmp_u64(x->dev, y->dev);
  if (!r)
    r = cmp_u64(x->ino, y->ino);
  return r ? r : lsync__path_cmp(x->path, x->len, y->path, y->len);
}

static int claim_cmp(const void *a, const void *b) {
  const struct claim *x = a, *y = b;
  int r = cmp_u64(x->dev, y->dev);
  if (!r)
    r = cmp_u64(x->ino, y->ino);
  return r ? r : cmp_u64(x->group, y->group);
}

/* Whether held[a, b), one source inode's names, may stay out. */
static int group_same(const struct held *h, size_t a, size_t b) {
  const struct dent *first = h[a].twin;
  for (size_t i = a; i < b; i++) {
    const struct dent *t = h[i].twin;
    if (!h[i].same || !t || t->dev != first->dev || t->ino != first->ino ||
        t->nlink != h[i].nlink)
      return 0;
  }
  return 1;
}

/* Number the groups (held sorted) and decide each: (*okp)[group] is 1 if
 * it stays out.  0, or -1 when out of memory. */
static int decide_groups(lsync__compare *c, unsigned char **okp) {
  struct held *h = c->held;
  uint32_t ng = 0;
  for (size_t i = 0; i < c->nheld; i++) {
    if (i && (h[i].dev != h[i - 1].dev || h[i].ino != h[i - 1].ino))
      ng++;
    h[i].group = ng;
  }
  ng++;
  unsigned char *ok = malloc(ng);
  if (!ok)
    return -1;
  for (size_t a = 0, b; a < c->nheld; a = b) {
    for (b = a + 1; b < c->nheld && h[b].group == h[a].group; b++)
      ;
    ok[h[a].group] = (unsigned char)group_same(h, a, b);
  }
  /* Destination inodes claimed twice: the groups involved all go. */
  for (size_t i = 0; i < c->nheld; i++)
    if (h[i].twin && claim(c, h[i].twin->dev, h[i].twin->ino, h[i].group) < 0) {
      free(ok);
      return -1;
    }
  if (c->nclaims) /* qsort's pointer must be valid even for 0 items */
    qsort(c->claims, c->nclaims, sizeof *c->claims, claim_cmp);
  struct claim *cl = c->claims;
  for (size_t a = 0, b; a < c->nclaims; a = b) {
    for (b = a + 1;
         b < c->nclaims && cl[b].dev == cl[a].dev && cl[b].ino == cl[a].ino;
         b++)
      ;
    if (cl[a].group == cl[b - 1].group)
      continue;
    for (size_t i = a; i < b; i++)
      if (cl[i].group != NO_GROUP)
        ok[cl[i].group] = 0;
  }
  *okp = ok;
  return 0;
}

int lsync__compare_finish(lsync__compare *c,
                          int (*send)(void *ud, const lsync_entry *e),
                          void *ud) {
  c->st.root_changed = roots_differ(c);
  c->st.extraneous = c->n - c->matched;
  if (!c->nheld)
    return 0;
  qsort(c->held, c->nheld, sizeof *c->held, held_cmp);
  unsigned char *ok;
  if (decide_groups(c, &ok) < 0)
    return nomem(c);
  int rc = 0;
  for (size_t i = 0; i < c->nheld && rc == 0; i++) {
    const struct held *h = &c->held[i];
    if (ok[h->group]) {
      count_unchanged(c, h->type, h->size);
      continue;
    }
    lsync_entry e = {0};
    e.path = h->path;
    e.path_len = h->len;
    e.type = h->type;
    e.size = h->size;
    e.dev = h->dev;
    e.ino = h->ino;
    e.nlink = h->nlink;
    rc = send(ud, &e);
  }
  free(ok);
  return rc;
}

/* ---- the destination ----------------------------------------------------- */

static void dest_log(void *ud, lsync_log_level level, const char *msg) {
  lsync__compare *c = ud;
  lsync__log(c->ctx, level, "destination: %s", msg);
}

/* A local destination root: missing is empty, unreadable is an error. */
static int open_dest_root(lsync__compare *c, const lsync_producer_opts *o) {
  c->dst_fd = open(o->dest_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  struct stat st;
  if (c->dst_fd < 0 && (errno == ENOENT || errno == ENOTDIR))
    return 0;
  if (c->dst_fd < 0 || fstat(c->dst_fd, &st) < 0)
    return lsync__fail_errno(
        c->ctx, errno, "destination: cannot open directory '%s'", o->dest_root);
  root_from_stat(&c->dst_root, &st);
  lsync_scan_opts sopts = o->scan;
  sopts.on_error = NULL; /* counted in the stats and logged by the scan */
  sopts.on_error_ud = NULL;
  /* Collecting: every entry is kept anyway, and the reader crawls too
   * instead of waiting. */
  int rc = lsync__scan_open_collecting(c->dctx, o->dest_root, &sopts, &c->scan);
  if (rc < 0)
    return lsync__fail(c->ctx, rc, "destination: %s",
                       lsync_ctx_errmsg(c->dctx));
  return 0;
}

int lsync__compare_open(lsync_ctx *ctx, const lsync_producer_opts *o,
                        lsync__compare **out) {
  *out = NULL;
  lsync__compare *c = calloc(1, sizeof *c);
  if (!c || lsync_ctx_new(&c->dctx) < 0) {
    free(c);
    return lsync__fail(ctx, LSYNC_ENOMEM, "quick check: out of memory");
  }
  c->ctx = ctx;
  c->src_fd = c->dst_fd = -1;
  c->check_uid = o->check_uid;
  c->check_gid = o->check_gid;
  c->st.enabled = 1;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  c->seed = mix((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^
                (uint64_t)(uintptr_t)c);
  if (ctx->log_cb)
    lsync_ctx_set_log(c->dctx, dest_log, c, ctx->log_max);
  int rc = 0;
  struct stat st;
  if (o->root) {
    /* Like rsync given "root/": the root's own attributes, links
     * followed. */
    c->src_fd = open(o->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (c->src_fd < 0 || fstat(c->src_fd, &st) < 0)
      rc = lsync__fail_errno(ctx, errno, "cannot open directory '%s'", o->root);
    else
      root_from_stat(&c->src_root, &st);
  }
  if (rc == 0 && o->dest_root) {
    rc = open_dest_root(c, o);
  } else if (rc == 0 && o->dest_list_argv) {
    rc = lsync__listing_open(c->dctx, o->dest_list_argv, o->scan.filter,
                             &c->list);
    if (rc < 0)
      rc = lsync__fail(ctx, rc, "destination: %s", lsync_ctx_errmsg(c->dctx));
  }
  if (rc < 0) {
    lsync__compare_close(c);
    return rc;
  }
  *out = c;
  return 0;
}

static void update_errors(lsync__compare *c) {
  if (c->scan) {
    lsync_scan_stats ss;
    lsync_scan_get_stats(c->scan, &ss);
    c->st.dest_errors = ss.errors;
  }
}

int lsync__compare_load(lsync__compare *c, const atomic_int *stop,
                        void (*tick)(void *ud), void *ud) {
  if (!c->scan && !c->list)
    return 0; /* missing: an empty index, the roots differ */
  const lsync_entry *e;
  unsigned n = 0;
  int rc;
  for (;;) {
    if (atomic_load_explicit(stop, memory_order_relaxed))
      return lsync__fail(c->ctx, LSYNC_ECANCELED, "chunk producer stopped");
    rc = c->scan ? lsync_scan_next(c->scan, &e)
                 : lsync__listing_next(c->list, &e);
    if (rc <= 0)
      break;
    if ((rc = index_add(c, e)) < 0)
      return rc;
    if (++n % TICK_EVERY == 0 && tick) {
      update_errors(c);
      tick(ud);
    }
  }
  if (rc < 0)
    return lsync__fail(c->ctx, rc, "destination: %s",
                       lsync_ctx_errmsg(c->dctx));
  update_errors(c);
  if (c->list) {
    lsync_entry root;
    if (lsync__listing_root(c->list, &root))
      root_from_entry(&c->dst_root, &root);
  }
  /* The crawl's threads and batches are not needed any more. */
  lsync_scan_close(c->scan);
  c->scan = NULL;
  return 0;
}

/* ---- the rest of the interface ------------------------------------------- */

void lsync__compare_get_stats(const lsync__compare *c,
                              lsync_compare_stats *out) {
  *out = c->st;
}

void lsync__compare_cancel(lsync__compare *c) {
  if (c->list)
    lsync__listing_cancel(c->list);
}

void lsync__compare_end(lsync__compare *c) {
  if (!c)
    return;
  lsync_scan_close(c->scan);
  c->scan = NULL;
  for (size_t i = 0; i < c->nblocks; i++)
    free(c->blocks[i]);
  free(c->blocks);
  c->blocks = NULL;
  c->nblocks = c->cap_blocks = 0;
  c->n = 0;
  free(c->slots);
  c->slots = NULL;
  c->cap = 0;
  if (c->arena)
    lsync__pool_unref(c->arena);
  c->arena = NULL;
  free(c->held);
  c->held = NULL;
  c->nheld = c->cap_held = 0;
  free(c->claims);
  c->claims = NULL;
  c->nclaims = c->cap_claims = 0;
  if (c->src_fd >= 0)
    close(c->src_fd);
  if (c->dst_fd >= 0)
    close(c->dst_fd);
  c->src_fd = c->dst_fd = -1;
}

void lsync__compare_close(lsync__compare *c) {
  if (!c)
    return;
  lsync__compare_end(c);
  lsync__listing_close(c->list);
  lsync_ctx_free(c->dctx);
  free(c);
}
