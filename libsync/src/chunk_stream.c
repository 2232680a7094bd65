/*
 * LIMITS chunking: next-fit, streamed.  A chunk is handed out as soon as
 * the next unit would overflow it, so workers can start while the crawl
 * runs; memory does not grow with the tree.  Hard-linked names are held
 * back until every name of the inode has been seen (st_nlink of them) and
 * then travel as one unit.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "chunk_internal.h"

#define SPREAD_MIN_BYTES (16ULL << 20)

/* The byte limit now: max_bytes, or lower under spread (see chunk.h). */
static uint64_t limits_bytes(const lsync_chunker *ch) {
  uint64_t lim = ch->o.max_bytes;
  if (ch->o.spread) {
    uint64_t floor = ch->o.min_bytes ? ch->o.min_bytes : SPREAD_MIN_BYTES;
    uint64_t adapt = ch->placed_bytes / ch->o.spread;
    if (adapt < floor)
      adapt = floor;
    if (!lim || adapt < lim)
      lim = adapt;
  }
  return lim;
}

static int limits_full(const lsync_chunker *ch, uint64_t files,
                       uint64_t bytes) {
  uint64_t lim = limits_bytes(ch);
  return (ch->o.max_files && files > ch->o.max_files) || (lim && bytes > lim);
}

static int limits_emit_cur(lsync_chunker *ch) {
  lsync_chunk *c = ch->cur;
  ch->cur = NULL;
  ch->cur_bytes = 0;
  return c ? lsync__emit(ch, c, 0) : 0;
}

static int chunk_add_copy(lsync_chunker *ch, lsync_chunk *c,
                          const lsync_chunk_item *it) {
  lsync_chunk_item copy = *it;
  if (!(copy.path = lsync__pool_copy(c->pool, it->path, it->path_len)) ||
      lsync__chunk_push(c, &copy) < 0)
    return lsync__nomem(ch);
  return 0;
}

/* Copy a unit's items (and their paths) into chunk c. */
static int chunk_add_unit(lsync_chunker *ch, lsync_chunk *c,
                          const lsync_chunk_item *items, size_t n) {
  for (size_t i = 0; i < n; i++) {
    int rc = chunk_add_copy(ch, c, &items[i]);
    if (rc < 0)
      return rc;
  }
  return 0;
}

static lsync_chunk *limits_chunk_new(void) {
  struct pool *p = lsync__pool_new();
  lsync_chunk *c = p ? lsync__chunk_new(p, 0) : NULL;
  if (!c)
    lsync__pool_unref(p);
  return c;
}

/* Place one unit (an entry, or all names of an inode). */
int lsync__limits_place(lsync_chunker *ch, const lsync_chunk_item *items,
                        size_t n, uint64_t bytes) {
  int rc;
  ch->placed_bytes += bytes;
  if (limits_full(ch, n, bytes)) {
    /* Too big for any chunk: alone, without closing the current one. */
    lsync_chunk *c = limits_chunk_new();
    if (!c)
      return lsync__nomem(ch);
    if ((rc = chunk_add_unit(ch, c, items, n)) < 0) {
      lsync_chunk_free(c);
      return rc;
    }
    c->bytes = bytes;
    return lsync__emit(ch, c, 0);
  }
  if (ch->cur && limits_full(ch, ch->cur->n + n, ch->cur_bytes + bytes) &&
      (rc = limits_emit_cur(ch)) < 0)
    return rc;
  if (!ch->cur && !(ch->cur = limits_chunk_new()))
    return lsync__nomem(ch);
  if ((rc = chunk_add_unit(ch, ch->cur, items, n)) < 0)
    return rc;
  ch->cur_bytes += bytes;
  ch->cur->bytes = ch->cur_bytes;
  /* Exactly full: hand it out now rather than at the next entry. */
  uint64_t lim = limits_bytes(ch);
  if ((ch->o.max_files && ch->cur->n == ch->o.max_files) ||
      (lim && ch->cur_bytes == lim))
    return limits_emit_cur(ch);
  return 0;
}

void lsync__pending_free(struct pending *p) {
  for (size_t i = 0; i < p->n; i++)
    free((char *)p->items[i].path);
  free(p->items);
  memset(p, 0, sizeof *p);
}

static int pending_place(lsync_chunker *ch, struct pending *p) {
  int rc = lsync__limits_place(ch, p->items, p->n, p->size);
  lsync__pending_free(p);
  return rc;
}

/* Hold a hard-linked name until all st_nlink names of the inode are in. */
int lsync__limits_hold(lsync_chunker *ch, const lsync_entry *e) {
  if (ch->npend >= INT_MAX) /* groups are numbered with int */
    return lsync__fail(ch->ctx, LSYNC_ERANGE, "chunk: too many hard links");
  struct hl_slot *s = lsync__hl_find(&ch->hl, e->dev, e->ino);
  if (!s) {
    if (lsync__grow((void **)&ch->pend, &ch->cap_pend, ch->npend + 1,
                    sizeof *ch->pend) < 0 ||
        lsync__hl_put(&ch->hl, e->dev, e->ino, (int)ch->npend) < 0)
      return lsync__nomem(ch);
    ch->pend[ch->npend++] =
        (struct pending){NULL, 0, 0, e->nlink, e->size, e->dev, e->ino};
    s = lsync__hl_find(&ch->hl, e->dev, e->ino);
  }
  struct pending *p = &ch->pend[s->value];
  /* A link made during the crawl raises st_nlink: wait for the most any
   * name has reported. */
  if (e->nlink > p->nlink)
    p->nlink = e->nlink;
  char *path = malloc(e->path_len + 1);
  if (!path ||
      lsync__grow((void **)&p->items, &p->cap, p->n + 1, sizeof *p->items)) {
    free(path);
    return lsync__nomem(ch);
  }
  memcpy(path, e->path, e->path_len + 1);
  p->items[p->n++] = (lsync_chunk_item){path, e->path_len, e->size, e->type};
  if (p->n < p->nlink)
    return 0;
  /* Complete: free its slot by moving the last pending group into it. */
  int idx = s->value;
  struct pending done = *p;
  lsync__hl_del(&ch->hl, s);
  if ((size_t)idx != --ch->npend) {
    ch->pend[idx] = ch->pend[ch->npend];
    struct pending *m = &ch->pend[idx];
    /* Re-point the moved group's map slot; every name shares dev/ino. */
    lsync__hl_find(&ch->hl, m->dev, m->ino)->value = idx;
  }
  return pending_place(ch, &done);
}

static int pending_cmp(const void *a, const void *b) {
  const struct pending *x = a, *y = b;
  return lsync__path_cmp(x->items[0].path, x->items[0].path_len,
                         y->items[0].path, y->items[0].path_len);
}

/* Groups whose other names are outside the tree (or excluded) never
 * complete; they go out last, in path order. */
int lsync__finish_limits(lsync_chunker *ch) {
  int rc = 0;
  if (ch->npend) /* qsort's pointer must be valid even for 0 items */
    qsort(ch->pend, ch->npend, sizeof *ch->pend, pending_cmp);
  for (size_t i = 0; i < ch->npend; i++) {
    if (rc == 0)
      rc = pending_place(ch, &ch->pend[i]);
    else
      lsync__pending_free(&ch->pend[i]);
  }
  ch->npend = 0; /* placed or freed; the chunker takes no more entries */
  return rc ? rc : limits_emit_cur(ch);
}
