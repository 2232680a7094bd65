/*
 * Chunks and the chunker's common parts: the path pool, chunk objects and
 * their lists, the hard-link map, and the dispatch to the two families of
 * modes (chunk_collect.c: COUNT and TOPLEVEL, which see every entry before
 * dealing; chunk_stream.c: LIMITS, streamed while the crawl runs).
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

#include "chunk_internal.h"

/* ---- path pool --------------------------------------------------------- */

#define POOL_BLOCK (256 * 1024)

struct pool *lsync__pool_new(void) {
  struct pool *p = calloc(1, sizeof *p);
  if (p)
    atomic_init(&p->refs, 1);
  return p;
}

void lsync__pool_unref(struct pool *p) {
  if (!p || atomic_fetch_sub(&p->refs, 1) != 1)
    return;
  while (p->blocks) {
    struct pool_block *b = p->blocks;
    p->blocks = b->next;
    free(b);
  }
  free(p);
}

const char *lsync__pool_copy(struct pool *p, const char *s, size_t len) {
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

unsigned lsync_chunk_index(const lsync_chunk *c) {
  return c->index;
}
size_t lsync_chunk_len(const lsync_chunk *c) {
  return c->n;
}
uint64_t lsync_chunk_bytes(const lsync_chunk *c) {
  return c->bytes;
}

void lsync_chunk_item_at(const lsync_chunk *c, size_t i,
                         lsync_chunk_item *out) {
  *out = c->items[i];
}

void lsync_chunk_free(lsync_chunk *c) {
  if (!c)
    return;
  lsync__pool_unref(c->pool);
  free(c->items);
  free(c);
}

lsync_chunk *lsync__chunk_new(struct pool *pool, size_t cap) {
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

int lsync__chunk_push(lsync_chunk *c, const lsync_chunk_item *it) {
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

void lsync__chunk_sort(lsync_chunk *c) {
  lsync__sort_items(c->items, c->n);
}

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
  return lsync__fail_errno(ctx, errno, "cannot write chunk %u list", c->index);
}

/* ---- hard-link map: (dev, ino) -> int, open addressing ----------------- */

static size_t hl_hash(uint64_t dev, uint64_t ino) {
  uint64_t h = ino * 0x9e3779b97f4a7c15ULL ^ (dev + 0x632be59bd9b4e019ULL);
  h ^= h >> 29;
  return (size_t)h;
}

struct hl_slot *lsync__hl_find(const struct hl_map *m, uint64_t dev,
                               uint64_t ino) {
  if (!m->cap)
    return NULL;
  for (size_t i = hl_hash(dev, ino) & (m->cap - 1);;
       i = (i + 1) & (m->cap - 1)) {
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

int lsync__hl_put(struct hl_map *m, uint64_t dev, uint64_t ino, int value) {
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
void lsync__hl_del(struct hl_map *m, struct hl_slot *s) {
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
uint64_t lsync__path_hash(const char *p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < n; i++)
    h = (h ^ (unsigned char)p[i]) * 0x100000001b3ULL;
  return h;
}

int lsync__is_hardlink(const lsync_entry *e) {
  return e->nlink > 1 && e->type != LSYNC_T_DIR;
}
/* ---- the chunker ------------------------------------------------------- */

int lsync__grow(void **arr, size_t *cap, size_t need, size_t elem) {
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

int lsync__nomem(lsync_chunker *ch) {
  return lsync__fail(ch->ctx, LSYNC_ENOMEM, "chunk: out of memory");
}

/* Hand a finished chunk to the callback, which owns it from then on. */
int lsync__emit(lsync_chunker *ch, lsync_chunk *c, int sorted) {
  if (!sorted)
    lsync__chunk_sort(c);
  c->index = ++ch->next_index;
  if (ch->cb(ch->ud, c) != 0) {
    ch->dead = LSYNC_ECANCELED;
    return lsync__fail(ch->ctx, LSYNC_ECANCELED,
                       "chunking stopped by callback");
  }
  return 0;
}

/* Hand out sorted chunks in order; each handed-out slot is cleared, so
 * lsync__free_all() frees exactly those a failure or a stop left behind. */
int lsync__emit_all(lsync_chunker *ch, lsync_chunk **chunks, unsigned n) {
  int rc = 0;
  for (unsigned c = 0; c < n && rc == 0; c++) {
    rc = lsync__emit(ch, chunks[c], 1);
    chunks[c] = NULL;
  }
  return rc;
}

void lsync__free_all(lsync_chunk **chunks, unsigned n) {
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
  if (opts->mode != LSYNC_CHUNK_LIMITS && !(ch->pool = lsync__pool_new())) {
    free(ch);
    return lsync__fail(ctx, LSYNC_ENOMEM, "chunk: out of memory");
  }
  *out = ch;
  return 0;
}

/* add() or finish() after a stop, a failure or a finish. */
static int chunker_dead(lsync_chunker *ch) {
  if (ch->dead == LSYNC_EINVAL)
    return lsync__fail(ch->ctx, LSYNC_EINVAL, "chunker already finished");
  return lsync__fail(ch->ctx, ch->dead, "chunker unusable after an earlier %s",
                     ch->dead == LSYNC_ECANCELED ? "stop" : "error");
}

int lsync_chunker_add(lsync_chunker *ch, const lsync_entry *e) {
  if (ch->dead)
    return chunker_dead(ch);
  int rc;
  if (ch->o.mode != LSYNC_CHUNK_LIMITS) {
    rc = lsync__collect(ch, e);
  } else if (lsync__is_hardlink(e)) {
    rc = lsync__limits_hold(ch, e);
  } else {
    lsync_chunk_item it = {e->path, e->path_len, e->size, e->type};
    rc = lsync__limits_place(ch, &it, 1, e->size);
  }
  /* A half-recorded entry must not reach a later finish(). */
  if (rc < 0 && !ch->dead)
    ch->dead = rc;
  return rc;
}

int lsync_chunker_finish(lsync_chunker *ch) {
  if (ch->dead)
    return chunker_dead(ch);
  int rc;
  switch (ch->o.mode) {
  case LSYNC_CHUNK_COUNT:
    rc = lsync__finish_count(ch);
    break;
  case LSYNC_CHUNK_TOPLEVEL:
    rc = lsync__finish_toplevel(ch);
    break;
  default:
    rc = lsync__finish_limits(ch);
  }
  /* Everything has been handed out (or failed): nothing more to do. */
  ch->dead = rc < 0 ? rc : LSYNC_EINVAL;
  return rc;
}

void lsync_chunker_free(lsync_chunker *ch) {
  if (!ch)
    return;
  lsync__pool_unref(ch->pool);
  free(ch->ents);
  free(ch->units);
  free(ch->hl.slots);
  for (size_t i = 0; i < ch->npend; i++)
    lsync__pending_free(&ch->pend[i]);
  free(ch->pend);
  lsync_chunk_free(ch->cur);
  free(ch);
}

int lsync_chunk_tree(lsync_ctx *ctx, const char *root,
                     const lsync_scan_opts *sopts,
                     const lsync_chunk_opts *copts, lsync_chunk_cb cb, void *ud,
                     lsync_scan_stats *stats) {
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
