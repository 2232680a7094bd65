/*
 * Chunking: cutting a stream of entries into lists for independent workers.
 *
 * COUNT collects every entry, groups the names of each hard-linked inode
 * into one unit, and deals units largest first to the least-loaded chunk
 * (LPT scheduling with a binary min-heap, O(U log N)).  Zero-byte units
 * (directories, empty files) would otherwise all pile into one chunk, so
 * they get a second pass keyed on file count.
 *
 * LIMITS is next-fit and streamed: a chunk is handed out as soon as the
 * next unit would overflow it, so workers can start while the crawl runs.
 * Hard-linked names are held back until every name of the inode has been
 * seen (st_nlink of them) and then travel as one unit.
 *
 * TOPLEVEL sorts entries by path so each top-level name's subtree is
 * contiguous, then merges top-level groups that share a hard-linked inode
 * (union-find), because rsync -H only links names within one run.
 *
 * Paths live in pools of large blocks.  COUNT and TOPLEVEL chunks share
 * one refcounted pool (no copy of the whole tree per chunk); LIMITS chunks
 * own theirs.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/* ---- path pool --------------------------------------------------------- */

#define POOL_BLOCK (256 * 1024)

struct pool_block {
  struct pool_block *next;
  size_t used, cap;
  char data[];
};

struct pool {
  atomic_int refs;
  struct pool_block *blocks;
};

static struct pool *pool_new(void) {
  struct pool *p = calloc(1, sizeof *p);
  if (p)
    atomic_init(&p->refs, 1);
  return p;
}

static void pool_unref(struct pool *p) {
  if (!p || atomic_fetch_sub(&p->refs, 1) != 1)
    return;
  while (p->blocks) {
    struct pool_block *b = p->blocks;
    p->blocks = b->next;
    free(b);
  }
  free(p);
}

static const char *pool_copy(struct pool *p, const char *s, size_t len) {
  struct pool_block *b = p->blocks;
  if (!b || b->cap - b->used < len + 1) {
    size_t cap = len + 1 > POOL_BLOCK ? len + 1 : POOL_BLOCK;
    /* Small chunks (LIMITS with few files) should not pin 256 KiB each. */
    if (b == NULL && len + 1 < 4096)
      cap = 4096;
    else if (b && b->cap < POOL_BLOCK && len + 1 <= b->cap * 2)
      cap = b->cap * 2;
    b = malloc(sizeof *b + cap);
    if (!b)
      return NULL;
    b->used = 0;
    b->cap = cap;
    b->next = p->blocks;
    p->blocks = b;
  }
  char *d = b->data + b->used;
  memcpy(d, s, len);
  d[len] = '\0';
  b->used += len + 1;
  return d;
}

/* ---- chunks ------------------------------------------------------------ */

struct lsync_chunk {
  unsigned index;
  size_t n, cap;
  uint64_t bytes;
  lsync_chunk_item *items;
  struct pool *pool;
};

unsigned lsync_chunk_index(const lsync_chunk *c) { return c->index; }
size_t lsync_chunk_len(const lsync_chunk *c) { return c->n; }
uint64_t lsync_chunk_bytes(const lsync_chunk *c) { return c->bytes; }

void lsync_chunk_item_at(const lsync_chunk *c, size_t i,
                         lsync_chunk_item *out) {
  *out = c->items[i];
}

void lsync_chunk_free(lsync_chunk *c) {
  if (!c)
    return;
  pool_unref(c->pool);
  free(c->items);
  free(c);
}

static lsync_chunk *chunk_new(struct pool *pool, size_t cap) {
  lsync_chunk *c = calloc(1, sizeof *c);
  if (!c)
    return NULL;
  c->cap = cap ? cap : 16;
  c->items = malloc(c->cap * sizeof *c->items);
  if (!c->items) {
    free(c);
    return NULL;
  }
  c->pool = pool;
  return c;
}

static int chunk_push(lsync_chunk *c, const lsync_chunk_item *it) {
  if (c->n == c->cap) {
    size_t cap = c->cap * 2;
    lsync_chunk_item *items = realloc(c->items, cap * sizeof *items);
    if (!items)
      return LSYNC_ENOMEM;
    c->items = items;
    c->cap = cap;
  }
  c->items[c->n++] = *it;
  return 0;
}

static void chunk_sort(lsync_chunk *c) { lsync__sort_items(c->items, c->n); }


static int write_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

int lsync_chunk_write(lsync_ctx *ctx, const lsync_chunk *c, int fd,
                      char terminator) {
  char buf[64 * 1024];
  size_t used = 0;
  for (size_t i = 0; i < c->n; i++) {
    const lsync_chunk_item *it = &c->items[i];
    if (used + it->path_len + 1 > sizeof buf) {
      if (write_all(fd, buf, used) < 0)
        goto fail;
      used = 0;
    }
    if (it->path_len + 1 > sizeof buf) {
      if (write_all(fd, it->path, it->path_len) < 0 ||
          write_all(fd, &terminator, 1) < 0)
        goto fail;
      continue;
    }
    memcpy(buf + used, it->path, it->path_len);
    used += it->path_len;
    buf[used++] = terminator;
  }
  if (write_all(fd, buf, used) == 0)
    return 0;
fail:
  return lsync__fail_errno(ctx, errno, "cannot write chunk %u list",
                           c->index);
}

/* ---- hard-link map: (dev, ino) -> int, open addressing ----------------- */

struct hl_slot {
  uint64_t dev, ino;
  int value;
  int used;
};

struct hl_map {
  struct hl_slot *slots;
  size_t cap, n; /* cap is a power of two */
};

static size_t hl_hash(uint64_t dev, uint64_t ino) {
  uint64_t h = ino * 0x9e3779b97f4a7c15ULL ^ (dev + 0x632be59bd9b4e019ULL);
  h ^= h >> 29;
  return (size_t)h;
}

static struct hl_slot *hl_find(const struct hl_map *m, uint64_t dev,
                               uint64_t ino) {
  if (!m->cap)
    return NULL;
  for (size_t i = hl_hash(dev, ino) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
    struct hl_slot *s = &m->slots[i];
    if (!s->used)
      return NULL;
    if (s->dev == dev && s->ino == ino)
      return s;
  }
}

static int hl_grow(struct hl_map *m) {
  size_t cap = m->cap ? m->cap * 2 : 64;
  struct hl_slot *slots = calloc(cap, sizeof *slots);
  if (!slots)
    return LSYNC_ENOMEM;
  for (size_t i = 0; i < m->cap; i++) {
    struct hl_slot *s = &m->slots[i];
    if (!s->used)
      continue;
    size_t j = hl_hash(s->dev, s->ino) & (cap - 1);
    while (slots[j].used)
      j = (j + 1) & (cap - 1);
    slots[j] = *s;
  }
  free(m->slots);
  m->slots = slots;
  m->cap = cap;
  return 0;
}

static int hl_put(struct hl_map *m, uint64_t dev, uint64_t ino, int value) {
  if ((m->n + 1) * 4 > m->cap * 3 && hl_grow(m) < 0)
    return LSYNC_ENOMEM;
  size_t i = hl_hash(dev, ino) & (m->cap - 1);
  while (m->slots[i].used)
    i = (i + 1) & (m->cap - 1);
  m->slots[i] = (struct hl_slot){dev, ino, value, 1};
  m->n++;
  return 0;
}

/* Backward-shift deletion keeps probe chains intact without tombstones, so
 * the map shrinks back as hard-link groups complete. */
static void hl_del(struct hl_map *m, struct hl_slot *s) {
  size_t mask = m->cap - 1, i = (size_t)(s - m->slots);
  for (size_t j = (i + 1) & mask; m->slots[j].used; j = (j + 1) & mask) {
    size_t home = hl_hash(m->slots[j].dev, m->slots[j].ino) & mask;
    /* Move j back into the hole at i if its home is not in (i, j]. */
    if (((j - home) & mask) >= ((j - i) & mask)) {
      m->slots[i] = m->slots[j];
      i = j;
    }
  }
  m->slots[i].used = 0;
  m->n--;
}

/* FNV-1a, 64-bit. */
static uint64_t path_hash(const char *p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < n; i++)
    h = (h ^ (unsigned char)p[i]) * 0x100000001b3ULL;
  return h;
}

static int is_hardlink(const lsync_entry *e) {
  return e->nlink > 1 && e->type != LSYNC_T_DIR;
}

/* ---- chunker state ----------------------------------------------------- */

struct ent {
  const char *path;
  size_t len;
  uint64_t size;
  uint64_t dev, ino; /* TOPLEVEL: to merge groups sharing an inode */
  lsync_type type;
  int hardlink;
  int unit; /* COUNT: unit index; TOPLEVEL: top-level group */
  int next; /* COUNT: next entry of the same unit, -1 */
};

/* 32 bytes: the unit array is sorted and walked on the serial path. */
struct unit {
  uint64_t bytes;
  uint64_t tie; /* hash of the first name: a deterministic tie-break */
  uint32_t files;
  int first, last; /* entries: first, then ents[].next, up to last */
  unsigned chunk;
};

/* LIMITS: the names of a hard-linked inode seen so far. */
struct pending {
  lsync_chunk_item *items; /* paths malloc'd */
  size_t n, cap;
  uint64_t nlink, size, dev, ino;
};

struct lsync_chunker {
  lsync_ctx *ctx;
  lsync_chunk_opts o;
  lsync_chunk_cb cb;
  void *ud;
  int stopped;
  unsigned next_index;
  struct hl_map hl;
  /* COUNT / TOPLEVEL */
  struct pool *pool;
  struct ent *ents;
  size_t nents, cap_ents;
  struct unit *units;
  size_t nunits, cap_units;
  /* LIMITS */
  lsync_chunk *cur;
  uint64_t cur_bytes;
  struct pending *pend;
  size_t npend, cap_pend;
};

static int grow(void **arr, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap)
    return 0;
  size_t n = *cap ? *cap * 2 : 1024;
  while (n < need)
    n *= 2;
  void *p = realloc(*arr, n * elem);
  if (!p)
    return LSYNC_ENOMEM;
  *arr = p;
  *cap = n;
  return 0;
}

static int nomem(lsync_chunker *ch) {
  return lsync__fail(ch->ctx, LSYNC_ENOMEM, "chunk: out of memory");
}

/* Hand a finished chunk to the callback, which owns it from then on. */
static int emit(lsync_chunker *ch, lsync_chunk *c, int sorted) {
  if (!sorted)
    chunk_sort(c);
  c->index = ++ch->next_index;
  if (ch->cb(ch->ud, c) != 0) {
    ch->stopped = 1;
    return lsync__fail(ch->ctx, LSYNC_ECANCELED, "chunking stopped by callback");
  }
  return 0;
}

/* Hand out sorted chunks in order; each handed-out slot is cleared, so
 * free_all() frees exactly those a failure or a stop left behind. */
static int emit_all(lsync_chunker *ch, lsync_chunk **chunks, unsigned n) {
  int rc = 0;
  for (unsigned c = 0; c < n && rc == 0; c++) {
    rc = emit(ch, chunks[c], 1);
    chunks[c] = NULL;
  }
  return rc;
}

static void free_all(lsync_chunk **chunks, unsigned n) {
  for (unsigned c = 0; chunks && c < n; c++)
    lsync_chunk_free(chunks[c]);
  free(chunks);
}

int lsync_chunker_new(lsync_ctx *ctx, const lsync_chunk_opts *opts,
                      lsync_chunk_cb cb, void *ud, lsync_chunker **out) {
  *out = NULL;
  if (!opts || !cb)
    return lsync__fail(ctx, LSYNC_EINVAL, "chunk: options and callback needed");
  switch (opts->mode) {
  case LSYNC_CHUNK_COUNT:
    if (opts->count < 1 || opts->count > 1000000)
      return lsync__fail(ctx, LSYNC_EINVAL,
                         "chunk count must be between 1 and 1000000, not %u",
                         opts->count);
    break;
  case LSYNC_CHUNK_LIMITS:
    if (!opts->max_files && !opts->max_bytes)
      return lsync__fail(ctx, LSYNC_EINVAL,
                         "chunk limits need a file count or a byte size");
    break;
  case LSYNC_CHUNK_TOPLEVEL:
    break;
  default:
    return lsync__fail(ctx, LSYNC_EINVAL, "unknown chunk mode %d",
                       (int)opts->mode);
  }
  lsync_chunker *ch = calloc(1, sizeof *ch);
  if (!ch)
    return lsync__fail(ctx, LSYNC_ENOMEM, "chunk: out of memory");
  ch->ctx = ctx;
  ch->o = *opts;
  ch->cb = cb;
  ch->ud = ud;
  if (opts->mode != LSYNC_CHUNK_LIMITS && !(ch->pool = pool_new())) {
    free(ch);
    return lsync__fail(ctx, LSYNC_ENOMEM, "chunk: out of memory");
  }
  *out = ch;
  return 0;
}

/* ---- COUNT and TOPLEVEL: collect --------------------------------------- */

static int collect(lsync_chunker *ch, const lsync_entry *e) {
  if (grow((void **)&ch->ents, &ch->cap_ents, ch->nents + 1, sizeof *ch->ents))
    return nomem(ch);
  const char *p = pool_copy(ch->pool, e->path, e->path_len);
  if (!p)
    return nomem(ch);
  int idx = (int)ch->nents++;
  struct ent *x = &ch->ents[idx];
  *x = (struct ent){p,       e->path_len,    e->size, e->dev, e->ino,
                    e->type, is_hardlink(e), -1,      -1};
  if (ch->o.mode == LSYNC_CHUNK_TOPLEVEL)
    return 0; /* grouped after sorting, in finish_toplevel */
  struct hl_slot *s = is_hardlink(e) ? hl_find(&ch->hl, e->dev, e->ino) : NULL;
  if (s) {
    struct unit *u = &ch->units[s->value];
    ch->ents[u->last].next = idx;
    u->last = idx;
    u->files++;
    x->unit = s->value;
    return 0;
  }
  if (grow((void **)&ch->units, &ch->cap_units, ch->nunits + 1,
           sizeof *ch->units))
    return nomem(ch);
  int uid = (int)ch->nunits++;
  ch->units[uid] = (struct unit){.bytes = e->size,
                                 .tie = path_hash(p, e->path_len),
                                 .files = 1,
                                 .first = idx,
                                 .last = idx};
  x->unit = uid;
  if (is_hardlink(e) && hl_put(&ch->hl, e->dev, e->ino, uid) < 0)
    return nomem(ch);
  return 0;
}

/* Min-heap of chunks keyed on (primary, secondary, chunk number); keys
 * live in the nodes so a sift touches one cache line per level. */
struct hnode {
  uint64_t k1, k2;
  unsigned c;
};

static int hnode_less(const struct hnode *a, const struct hnode *b) {
  if (a->k1 != b->k1)
    return a->k1 < b->k1;
  if (a->k2 != b->k2)
    return a->k2 < b->k2;
  return a->c < b->c;
}

static void heap_down(struct hnode *h, unsigned n, unsigned i) {
  struct hnode x = h[i];
  for (;;) {
    unsigned l = 2 * i + 1, m = l;
    if (l >= n)
      break;
    if (l + 1 < n && hnode_less(&h[l + 1], &h[l]))
      m = l + 1;
    if (!hnode_less(&h[m], &x))
      break;
    h[i] = h[m];
    i = m;
  }
  h[i] = x;
}

/* Largest bytes first, then most files, then the name's hash: the crawl
 * delivers entries in a racy order, and equal trees must still give equal
 * chunks.  Integer keys only: this sort is on the serial path. */
static int unit_cmp(const void *a, const void *b) {
  const struct unit *x = a, *y = b;
  if (x->bytes != y->bytes)
    return x->bytes > y->bytes ? -1 : 1;
  if (x->files != y->files)
    return x->files > y->files ? -1 : 1;
  return x->tie < y->tie ? -1 : x->tie > y->tie;
}

/* A unit's place in the dealing order: its size (the radix key) and its
 * index.  Sorting these 16-byte keys leaves the units where they are, so
 * entries keep pointing at their unit. */
struct ukey {
  uint64_t bytes;
  size_t unit;
};

static int ukey_cmp(const void *a, const void *b, void *units) {
  const struct unit *u = units;
  return unit_cmp(&u[((const struct ukey *)a)->unit],
                  &u[((const struct ukey *)b)->unit]);
}

/* Order units by unit_cmp: an LSD radix sort on bytes (descending, one
 * pass per significant byte of the largest size) does the bulk, then runs
 * of equal size are put in order by unit_cmp.  glibc's qsort with a
 * comparator was the largest serial cost after the crawl. */
static struct ukey *sort_units(const struct unit *u, size_t n) {
  uint64_t max = 0;
  struct ukey *keys = malloc((n ? n : 1) * sizeof *keys);
  struct ukey *tmp = malloc((n ? n : 1) * sizeof *tmp);
  if (!keys || !tmp) {
    free(keys);
    free(tmp);
    return NULL;
  }
  for (size_t i = 0; i < n; i++) {
    keys[i] = (struct ukey){u[i].bytes, i};
    max |= u[i].bytes;
  }
  struct ukey *src = keys, *dst = tmp;
  for (unsigned shift = 0; shift < 64 && (max >> shift); shift += 8) {
    size_t count[257] = {0};
    for (size_t i = 0; i < n; i++)
      count[255 - ((src[i].bytes >> shift) & 0xff) + 1]++;
    for (int b = 0; b < 256; b++)
      count[b + 1] += count[b];
    for (size_t i = 0; i < n; i++)
      dst[count[255 - ((src[i].bytes >> shift) & 0xff)]++] = src[i];
    struct ukey *t = src;
    src = dst;
    dst = t;
  }
  free(dst); /* the buffer not holding the result */
  for (size_t i = 0, j; i < n; i = j) {
    for (j = i + 1; j < n && src[j].bytes == src[i].bytes;)
      j++;
    if (j - i > 32) { /* e.g. many empty files */
      qsort_r(src + i, j - i, sizeof *src, ukey_cmp, (void *)u);
      continue;
    }
    /* Runs of equal size are short in real trees: insertion sort. */
    for (size_t a = i + 1; a < j; a++)
      for (size_t b = a; b > i && unit_cmp(&u[src[b - 1].unit], &u[src[b].unit]) > 0; b--) {
        struct ukey t = src[b];
        src[b] = src[b - 1];
        src[b - 1] = t;
      }
  }
  return src;
}

/* Deal the units in `order`: bytes to the chunk with the fewest bytes
 * (ties: fewest files), then zero-byte units, which change no byte total,
 * to the chunk with the fewest files. */
static void deal_units(lsync_chunker *ch, const struct ukey *order,
                       uint64_t *bytes, uint64_t *files, struct hnode *h) {
  unsigned n = ch->o.count;
  size_t i = 0;
  for (unsigned c = 0; c < n; c++)
    h[c] = (struct hnode){0, 0, c}; /* all zero: already a heap */
  for (; i < ch->nunits && order[i].bytes > 0; i++) {
    struct unit *u = &ch->units[order[i].unit];
    u->chunk = h[0].c;
    h[0].k1 += u->bytes;
    h[0].k2 += u->files;
    heap_down(h, n, 0);
  }
  for (unsigned c = 0; c < n; c++) {
    bytes[h[c].c] = h[c].k1;
    h[c] = (struct hnode){h[c].k2, h[c].k1, h[c].c};
  }
  for (unsigned c = n / 2; c-- > 0;)
    heap_down(h, n, c);
  for (; i < ch->nunits; i++) {
    struct unit *u = &ch->units[order[i].unit];
    u->chunk = h[0].c;
    h[0].k1 += u->files;
    heap_down(h, n, 0);
  }
  for (unsigned c = 0; c < n; c++)
    files[h[c].c] = h[c].k1;
}

struct fill_job {
  const lsync_chunker *ch;
  lsync_chunk **chunks;
  unsigned nchunks, stripes;
};

/* Fill and sort the chunks of one stripe (chunk numbers c with
 * c % stripes == t).  Entries are taken in crawl order, which is the
 * order of their paths in the pool, so the sort's first passes read the
 * paths sequentially instead of chasing pointers across the pool. */
static void fill_stripe(void *ctx, unsigned t) {
  const struct fill_job *j = ctx;
  const lsync_chunker *ch = j->ch;
  for (size_t e = 0; e < ch->nents; e++) {
    const struct ent *x = &ch->ents[e];
    unsigned c = ch->units[x->unit].chunk;
    if (c % j->stripes != t)
      continue;
    lsync_chunk *chunk = j->chunks[c];
    chunk->items[chunk->n++] =
        (lsync_chunk_item){x->path, x->len, x->size, x->type};
  }
  for (unsigned c = t; c < j->nchunks; c += j->stripes)
    chunk_sort(j->chunks[c]);
}

static int finish_count(lsync_chunker *ch) {
  unsigned n = ch->o.count;
  struct ukey *order = sort_units(ch->units, ch->nunits);
  if (!order)
    return nomem(ch);
  uint64_t *bytes = calloc(n, sizeof *bytes), *files = calloc(n, sizeof *files);
  struct hnode *heap = malloc(n * sizeof *heap);
  lsync_chunk **chunks = calloc(n, sizeof *chunks);
  int rc = 0;
  if (!bytes || !files || !heap || !chunks) {
    rc = nomem(ch);
    goto out;
  }
  deal_units(ch, order, bytes, files, heap);
  for (unsigned c = 0; c < n; c++) {
    if (!(chunks[c] = chunk_new(ch->pool, files[c]))) {
      rc = nomem(ch);
      goto out;
    }
    atomic_fetch_add(&ch->pool->refs, 1);
    chunks[c]->bytes = bytes[c];
  }
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  unsigned stripes = cpus < 1 ? 1 : cpus > 16 ? 16 : (unsigned)cpus;
  if (stripes > n)
    stripes = n;
  struct fill_job job = {ch, chunks, n, stripes};
  lsync__parallel_for(stripes, fill_stripe, &job);
  rc = emit_all(ch, chunks, n);
out:
  free_all(chunks, n);
  free(order);
  free(heap);
  free(bytes);
  free(files);
  return rc;
}

static int ent_cmp(const void *a, const void *b) {
  const struct ent *x = a, *y = b;
  return lsync__path_cmp(x->path, x->len, y->path, y->len);
}

static int uf_find(int *parent, int i) {
  while (parent[i] != i) {
    parent[i] = parent[parent[i]];
    i = parent[i];
  }
  return i;
}

/* Number each entry's top-level name, in path order (sorted entries keep
 * a top-level subtree contiguous). */
static int number_tops(lsync_chunker *ch) {
  int top = -1;
  size_t prev_len = 0;
  const char *prev = NULL;
  for (size_t i = 0; i < ch->nents; i++) {
    struct ent *e = &ch->ents[i];
    const char *slash = memchr(e->path, '/', e->len);
    size_t len = slash ? (size_t)(slash - e->path) : e->len;
    if (!prev || len != prev_len || memcmp(e->path, prev, len) != 0)
      top++;
    e->unit = top;
    prev = e->path;
    prev_len = len;
  }
  return top + 1;
}

/* Merge the top-level groups of every hard-linked inode's names; a name
 * after the first does not count its bytes again. */
static int merge_links(lsync_chunker *ch, int *parent) {
  for (size_t i = 0; i < ch->nents; i++) {
    struct ent *e = &ch->ents[i];
    if (!e->hardlink)
      continue;
    struct hl_slot *s = hl_find(&ch->hl, e->dev, e->ino);
    if (!s) {
      if (hl_put(&ch->hl, e->dev, e->ino, e->unit) < 0)
        return nomem(ch);
      continue;
    }
    e->hardlink = 2; /* a further name: its bytes are already counted */
    int a = uf_find(parent, e->unit), b = uf_find(parent, s->value);
    if (a != b)
      parent[a > b ? a : b] = a < b ? a : b;
  }
  return 0;
}

static int emit_tops(lsync_chunker *ch, int *parent, int ntops) {
  /* Roots are the smallest top of their set, so chunks come out in the
   * order of their first top-level name. */
  int *slot = malloc((size_t)ntops * sizeof *slot);
  lsync_chunk **chunks = calloc((size_t)ntops, sizeof *chunks);
  int nchunks = 0, rc = 0;
  if (!slot || !chunks) {
    rc = nomem(ch);
    goto out;
  }
  for (int t = 0; t < ntops; t++)
    slot[t] = uf_find(parent, t) == t ? nchunks++ : slot[uf_find(parent, t)];
  for (size_t i = 0; i < ch->nents; i++) {
    const struct ent *e = &ch->ents[i];
    int c = slot[e->unit];
    if (!chunks[c]) {
      if (!(chunks[c] = chunk_new(ch->pool, 0))) {
        rc = nomem(ch);
        goto out;
      }
      atomic_fetch_add(&ch->pool->refs, 1);
    }
    lsync_chunk_item it = {e->path, e->len, e->size, e->type};
    if (chunk_push(chunks[c], &it) < 0) {
      rc = nomem(ch);
      goto out;
    }
    if (e->hardlink != 2)
      chunks[c]->bytes += e->size;
  }
  rc = emit_all(ch, chunks, (unsigned)nchunks);
out:
  free_all(chunks, (unsigned)nchunks);
  free(slot);
  return rc;
}

static int finish_toplevel(lsync_chunker *ch) {
  qsort(ch->ents, ch->nents, sizeof *ch->ents, ent_cmp);
  int ntops = number_tops(ch);
  if (ntops == 0)
    return 0;
  int *parent = malloc((size_t)ntops * sizeof *parent);
  if (!parent)
    return nomem(ch);
  for (int t = 0; t < ntops; t++)
    parent[t] = t;
  int rc = merge_links(ch, parent);
  if (rc == 0)
    rc = emit_tops(ch, parent, ntops);
  free(parent);
  return rc;
}

/* ---- LIMITS: streamed next-fit ----------------------------------------- */

static int limits_full(const lsync_chunker *ch, uint64_t files,
                       uint64_t bytes) {
  return (ch->o.max_files && files > ch->o.max_files) ||
         (ch->o.max_bytes && bytes > ch->o.max_bytes);
}

static int limits_emit_cur(lsync_chunker *ch) {
  lsync_chunk *c = ch->cur;
  ch->cur = NULL;
  ch->cur_bytes = 0;
  return c ? emit(ch, c, 0) : 0;
}

static int chunk_add_copy(lsync_chunker *ch, lsync_chunk *c,
                          const lsync_chunk_item *it) {
  lsync_chunk_item copy = *it;
  if (!(copy.path = pool_copy(c->pool, it->path, it->path_len)) ||
      chunk_push(c, &copy) < 0)
    return nomem(ch);
  return 0;
}

static lsync_chunk *limits_chunk_new(void) {
  struct pool *p = pool_new();
  lsync_chunk *c = p ? chunk_new(p, 0) : NULL;
  if (!c)
    pool_unref(p);
  return c;
}

/* Place one unit (an entry, or all names of an inode). */
static int limits_place(lsync_chunker *ch, const lsync_chunk_item *items,
                        size_t n, uint64_t bytes) {
  int rc;
  if (limits_full(ch, n, bytes)) {
    /* Too big for any chunk: alone, without closing the current one. */
    lsync_chunk *c = limits_chunk_new();
    if (!c)
      return nomem(ch);
    for (size_t i = 0; i < n; i++)
      if ((rc = chunk_add_copy(ch, c, &items[i])) < 0) {
        lsync_chunk_free(c);
        return rc;
      }
    c->bytes = bytes;
    return emit(ch, c, 0);
  }
  if (ch->cur && limits_full(ch, ch->cur->n + n, ch->cur_bytes + bytes) &&
      (rc = limits_emit_cur(ch)) < 0)
    return rc;
  if (!ch->cur && !(ch->cur = limits_chunk_new()))
    return nomem(ch);
  for (size_t i = 0; i < n; i++)
    if ((rc = chunk_add_copy(ch, ch->cur, &items[i])) < 0)
      return rc;
  ch->cur_bytes += bytes;
  ch->cur->bytes = ch->cur_bytes;
  /* Exactly full: hand it out now rather than at the next entry. */
  if ((ch->o.max_files && ch->cur->n == ch->o.max_files) ||
      (ch->o.max_bytes && ch->cur_bytes == ch->o.max_bytes))
    return limits_emit_cur(ch);
  return 0;
}

static void pending_free(struct pending *p) {
  for (size_t i = 0; i < p->n; i++)
    free((char *)p->items[i].path);
  free(p->items);
  memset(p, 0, sizeof *p);
}

static int pending_place(lsync_chunker *ch, struct pending *p) {
  int rc = limits_place(ch, p->items, p->n, p->size);
  pending_free(p);
  return rc;
}

/* Hold a hard-linked name until all st_nlink names of the inode are in. */
static int limits_hold(lsync_chunker *ch, const lsync_entry *e) {
  struct hl_slot *s = hl_find(&ch->hl, e->dev, e->ino);
  if (!s) {
    if (grow((void **)&ch->pend, &ch->cap_pend, ch->npend + 1,
             sizeof *ch->pend) < 0 ||
        hl_put(&ch->hl, e->dev, e->ino, (int)ch->npend) < 0)
      return nomem(ch);
    ch->pend[ch->npend++] =
        (struct pending){NULL, 0, 0, e->nlink, e->size, e->dev, e->ino};
    s = hl_find(&ch->hl, e->dev, e->ino);
  }
  struct pending *p = &ch->pend[s->value];
  char *path = malloc(e->path_len + 1);
  if (!path || grow((void **)&p->items, &p->cap, p->n + 1, sizeof *p->items)) {
    free(path);
    return nomem(ch);
  }
  memcpy(path, e->path, e->path_len + 1);
  p->items[p->n++] = (lsync_chunk_item){path, e->path_len, e->size, e->type};
  if (p->n < p->nlink)
    return 0;
  /* Complete: free its slot by moving the last pending group into it. */
  int idx = s->value;
  struct pending done = *p;
  hl_del(&ch->hl, s);
  if ((size_t)idx != --ch->npend) {
    ch->pend[idx] = ch->pend[ch->npend];
    struct pending *m = &ch->pend[idx];
    /* Re-point the moved group's map slot; every name shares dev/ino. */
    hl_find(&ch->hl, m->dev, m->ino)->value = idx;
  }
  return pending_place(ch, &done);
}

int lsync_chunker_add(lsync_chunker *ch, const lsync_entry *e) {
  if (ch->stopped)
    return lsync__fail(ch->ctx, LSYNC_ECANCELED, "chunking was stopped");
  if (ch->o.mode != LSYNC_CHUNK_LIMITS)
    return collect(ch, e);
  if (is_hardlink(e))
    return limits_hold(ch, e);
  lsync_chunk_item it = {e->path, e->path_len, e->size, e->type};
  return limits_place(ch, &it, 1, e->size);
}

static int pending_cmp(const void *a, const void *b) {
  const struct pending *x = a, *y = b;
  return lsync__path_cmp(x->items[0].path, x->items[0].path_len,
                         y->items[0].path, y->items[0].path_len);
}

/* Groups whose other names are outside the tree (or excluded) never
 * complete; they go out last, in path order. */
static int finish_limits(lsync_chunker *ch) {
  int rc = 0;
  qsort(ch->pend, ch->npend, sizeof *ch->pend, pending_cmp);
  for (size_t i = 0; i < ch->npend; i++) {
    if (rc == 0)
      rc = pending_place(ch, &ch->pend[i]);
    else
      pending_free(&ch->pend[i]);
  }
  ch->npend = 0;
  ch->hl.n = 0;
  memset(ch->hl.slots, 0, ch->hl.cap * sizeof *ch->hl.slots);
  return rc ? rc : limits_emit_cur(ch);
}

int lsync_chunker_finish(lsync_chunker *ch) {
  if (ch->stopped)
    return lsync__fail(ch->ctx, LSYNC_ECANCELED, "chunking was stopped");
  switch (ch->o.mode) {
  case LSYNC_CHUNK_COUNT:
    return finish_count(ch);
  case LSYNC_CHUNK_TOPLEVEL:
    return finish_toplevel(ch);
  default:
    return finish_limits(ch);
  }
}

void lsync_chunker_free(lsync_chunker *ch) {
  if (!ch)
    return;
  pool_unref(ch->pool);
  free(ch->ents);
  free(ch->units);
  free(ch->hl.slots);
  for (size_t i = 0; i < ch->npend; i++)
    pending_free(&ch->pend[i]);
  free(ch->pend);
  lsync_chunk_free(ch->cur);
  free(ch);
}

int lsync_chunk_tree(lsync_ctx *ctx, const char *root,
                     const lsync_scan_opts *sopts,
                     const lsync_chunk_opts *copts, lsync_chunk_cb cb,
                     void *ud, lsync_scan_stats *stats) {
  lsync_chunker *ch;
  lsync_scan *scan;
  int rc = lsync_chunker_new(ctx, copts, cb, ud, &ch);
  if (rc < 0)
    return rc;
  rc = copts->mode == LSYNC_CHUNK_LIMITS
           ? lsync_scan_open(ctx, root, sopts, &scan)
           : lsync__scan_open_collecting(ctx, root, sopts, &scan);
  if (rc < 0) {
    lsync_chunker_free(ch);
    return rc;
  }
  const lsync_entry *e;
  while ((rc = lsync_scan_next(scan, &e)) > 0)
    if ((rc = lsync_chunker_add(ch, e)) < 0)
      break;
  if (rc == 0)
    rc = lsync_chunker_finish(ch);
  if (stats)
    lsync_scan_get_stats(scan, stats);
  lsync_scan_close(scan);
  lsync_chunker_free(ch);
  return rc;
}
