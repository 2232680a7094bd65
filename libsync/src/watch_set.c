/*
 * The set of pending changes of a watch (see watch_internal.h), and the
 * small hash table the watch indexes everything with.
 *
 * Records are keyed by the full path.  Each record with a kind counts
 * itself in every directory above it (a record is made for a directory
 * that has none), so a rename can tell in one lookup whether something is
 * pending where it lands; the counters cost one pass over the path per
 * change, because FNV-1a hashes every prefix on the way.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "watch_internal.h"

#define KIND_NONE (-1)

struct rec {
  struct lsync__hlink link;
  int kind; /* lsync_watch_kind, or KIND_NONE: only a counter */
  int is_dir;
  size_t below; /* records with a kind below this path */
  size_t len;
  char path[]; /* NUL-terminated */
};

struct lsync__wmove {
  char *from, *to;
  size_t flen, tlen;
  int is_dir;
};

/* ---- hash table --------------------------------------------------------- */

uint64_t lsync__hash(uint64_t h, const void *p, size_t n) {
  const unsigned char *c = p;
  for (size_t i = 0; i < n; i++) {
    h ^= c[i];
    h *= UINT64_C(0x100000001b3);
  }
  return h;
}

static void htab_grow(struct lsync__htab *t) {
  size_t nb = t->nb ? t->nb * 2 : 64;
  struct lsync__hlink **b = calloc(nb, sizeof *b);
  if (!b)
    return; /* longer chains, still correct */
  for (size_t i = 0; i < t->nb; i++) {
    struct lsync__hlink *l = t->b[i], *next;
    for (; l; l = next) {
      next = l->next;
      l->next = b[l->h & (nb - 1)];
      b[l->h & (nb - 1)] = l;
    }
  }
  free(t->b);
  t->b = b;
  t->nb = nb;
}

int lsync__htab_put(struct lsync__htab *t, struct lsync__hlink *l) {
  if (t->n >= t->nb)
    htab_grow(t);
  if (!t->nb)
    return -1;
  struct lsync__hlink **head = &t->b[l->h & (t->nb - 1)];
  l->next = *head;
  *head = l;
  t->n++;
  return 0;
}

void lsync__htab_del(struct lsync__htab *t, struct lsync__hlink *l) {
  struct lsync__hlink **pp = &t->b[l->h & (t->nb - 1)];
  while (*pp && *pp != l)
    pp = &(*pp)->next;
  if (*pp) {
    *pp = l->next;
    t->n--;
  }
}

struct lsync__hlink *lsync__htab_chain(const struct lsync__htab *t,
                                       uint64_t h) {
  return t->nb ? t->b[h & (t->nb - 1)] : NULL;
}

void lsync__htab_free(struct lsync__htab *t) {
  free(t->b);
  t->b = NULL;
  t->nb = t->n = 0;
}

/* ---- records ------------------------------------------------------------ */

static struct rec *find(const struct lsync__wset *s, const char *path,
                        size_t len, uint64_t h) {
  for (struct lsync__hlink *l = lsync__htab_chain(&s->recs, h); l;
       l = l->next) {
    struct rec *r = LSYNC__CONTAINER(l, struct rec, link);
    if (l->h == h && r->len == len && memcmp(r->path, path, len) == 0)
      return r;
  }
  return NULL;
}

static struct rec *find_or_make(struct lsync__wset *s, const char *path,
                                size_t len, uint64_t h) {
  struct rec *r = find(s, path, len, h);
  if (r)
    return r;
  r = malloc(sizeof *r + len + 1);
  if (!r)
    return NULL;
  r->link.h = h;
  r->kind = KIND_NONE;
  r->is_dir = 0;
  r->below = 0;
  r->len = len;
  memcpy(r->path, path, len);
  r->path[len] = '\0';
  if (lsync__htab_put(&s->recs, &r->link) < 0) {
    free(r);
    return NULL;
  }
  return r;
}

static void drop_if_bare(struct lsync__wset *s, struct rec *r) {
  if (r->kind == KIND_NONE && r->below == 0) {
    lsync__htab_del(&s->recs, &r->link);
    free(r);
  }
}

/* The directories above a path, shortest first: at is the length of
 * one, h its hash, made on the way (FNV-1a hashes a prefix as it goes);
 * next is where the search for the following "/" starts. */
struct above {
  const char *path;
  size_t len, at, next;
  uint64_t h;
};

static struct above above_start(const char *path, size_t len) {
  struct above a = {path, len, 0, 0, LSYNC__HASH_INIT};
  return a;
}

static int above_next(struct above *a) {
  size_t i = a->next;
  while (i < a->len && a->path[i] != '/')
    i++;
  if (i >= a->len)
    return 0;
  a->h = lsync__hash(a->h, a->path + a->at, i - a->at);
  a->at = i;
  a->next = i + 1;
  return 1;
}

/* Count (+1) or uncount (-1) a record with a kind in every directory
 * above path; -1 when a counter cannot be made. */
static int count_above(struct lsync__wset *s, const char *path, size_t len,
                       int delta) {
  for (struct above a = above_start(path, len); above_next(&a);) {
    struct rec *r =
        delta > 0 ? find_or_make(s, path, a.at, a.h) : find(s, path, a.at, a.h);
    if (!r)
      return delta > 0 ? -1 : 0;
    if (delta > 0) {
      r->below++;
    } else {
      r->below--;
      drop_if_bare(s, r);
    }
  }
  return 0;
}

/* The record loses its kind (and goes if nothing is below it). */
static void unnote(struct lsync__wset *s, struct rec *r) {
  if (r->kind == KIND_NONE)
    return;
  r->kind = KIND_NONE;
  s->nkind--;
  count_above(s, r->path, r->len, -1);
  drop_if_bare(s, r);
}

int lsync__wset_in_tree(const struct lsync__wset *s, const char *path,
                        size_t len) {
  for (struct above a = above_start(path, len); above_next(&a);) {
    struct rec *r = find(s, path, a.at, a.h);
    if (!r)
      return 0; /* nothing recorded below a path without a record */
    if (r->kind == LSYNC_WATCH_TREE)
      return 1;
  }
  return 0;
}

int lsync__wset_note(struct lsync__wset *s, const char *path, size_t len,
                     lsync_watch_kind kind, int is_dir) {
  if (lsync__wset_in_tree(s, path, len))
    return 0;
  struct rec *r =
      find_or_make(s, path, len, lsync__hash(LSYNC__HASH_INIT, path, len));
  if (!r)
    return -1;
  if (r->kind == KIND_NONE) {
    if (count_above(s, path, len, +1) < 0)
      return -1;
    s->nkind++;
  } else if (kind == LSYNC_WATCH_CHANGED && r->kind == LSYNC_WATCH_TREE) {
    return 0;
  }
  r->kind = (int)kind;
  r->is_dir = is_dir || kind == LSYNC_WATCH_TREE;
  return 0;
}

static struct rec *lookup(const struct lsync__wset *s, const char *path,
                          size_t len) {
  return find(s, path, len, lsync__hash(LSYNC__HASH_INIT, path, len));
}

int lsync__wset_has(const struct lsync__wset *s, const char *path, size_t len) {
  struct rec *r = lookup(s, path, len);
  return r && r->kind != KIND_NONE;
}

int lsync__wset_busy(const struct lsync__wset *s, const char *path,
                     size_t len) {
  struct rec *r = lookup(s, path, len);
  return r && (r->kind != KIND_NONE || r->below);
}

/* Every record with a kind, into a new array (*n of them); NULL when
 * there are none or memory ran out (*n then 0 or not). */
static struct rec **gather(const struct lsync__wset *s, size_t *n) {
  *n = 0;
  if (!s->nkind)
    return NULL;
  struct rec **a = malloc(s->nkind * sizeof *a);
  if (!a)
    return NULL;
  for (size_t i = 0; i < s->recs.nb; i++)
    for (struct lsync__hlink *l = s->recs.b[i]; l; l = l->next) {
      struct rec *r = LSYNC__CONTAINER(l, struct rec, link);
      if (r->kind != KIND_NONE)
        a[(*n)++] = r;
    }
  return a;
}

static int below(const struct rec *r, const char *dir, size_t dlen) {
  return r->len > dlen && r->path[dlen] == '/' &&
         memcmp(r->path, dir, dlen) == 0;
}

int lsync__wset_rekey(struct lsync__wset *s, const char *from, size_t flen,
                      const char *to, size_t tlen) {
  struct rec *top = lookup(s, from, flen);
  if (!top || !top->below)
    return 0;
  size_t n, k = 0;
  struct rec **a = gather(s, &n);
  if (!a)
    return -1;
  for (size_t i = 0; i < n; i++)
    if (below(a[i], from, flen))
      a[k++] = a[i];
  /* Copies first: unnoting frees records, renoting may land on others. */
  struct moved {
    int kind, is_dir;
    size_t len;
    char *path;
  } *m = calloc(k ? k : 1, sizeof *m);
  int rc = m ? 0 : -1;
  for (size_t i = 0; i < k && rc == 0; i++) {
    size_t rest = a[i]->len - flen;
    m[i].kind = a[i]->kind;
    m[i].is_dir = a[i]->is_dir;
    m[i].len = tlen + rest;
    m[i].path = malloc(m[i].len + 1);
    if (!m[i].path) {
      rc = -1;
      break;
    }
    memcpy(m[i].path, to, tlen);
    memcpy(m[i].path + tlen, a[i]->path + flen, rest + 1);
  }
  if (rc == 0) {
    for (size_t i = 0; i < k; i++)
      unnote(s, a[i]);
    for (size_t i = 0; i < k && rc == 0; i++)
      rc = lsync__wset_note(s, m[i].path, m[i].len, (lsync_watch_kind)m[i].kind,
                            m[i].is_dir);
  }
  for (size_t i = 0; m && i < k; i++)
    free(m[i].path);
  free(m);
  free(a);
  return rc;
}

/* ---- the move log ------------------------------------------------------- */

static char *dup_bytes(const char *p, size_t n) {
  char *d = malloc(n + 1);
  if (d) {
    memcpy(d, p, n);
    d[n] = '\0';
  }
  return d;
}

int lsync__wset_move(struct lsync__wset *s, const char *from, size_t flen,
                     const char *to, size_t tlen, int is_dir) {
  struct lsync__wmove *tail = s->nlog ? &s->log[s->nlog - 1] : NULL;
  if (tail && tail->tlen == flen && memcmp(tail->to, from, flen) == 0) {
    /* a -> b, then b -> c: one rename a -> c; back to a: none. */
    if (tail->flen == tlen && memcmp(tail->from, to, tlen) == 0) {
      free(tail->from);
      free(tail->to);
      s->nlog--;
      return 0;
    }
    char *t = dup_bytes(to, tlen);
    if (!t)
      return -1;
    free(tail->to);
    tail->to = t;
    tail->tlen = tlen;
    return 0;
  }
  if (s->nlog == s->caplog) {
    size_t cap = s->caplog ? s->caplog * 2 : 16;
    struct lsync__wmove *log = realloc(s->log, cap * sizeof *log);
    if (!log)
      return -1;
    s->log = log;
    s->caplog = cap;
  }
  struct lsync__wmove *m = &s->log[s->nlog];
  m->from = dup_bytes(from, flen);
  m->to = dup_bytes(to, tlen);
  if (!m->from || !m->to) {
    free(m->from);
    free(m->to);
    return -1;
  }
  m->flen = flen;
  m->tlen = tlen;
  m->is_dir = is_dir;
  s->nlog++;
  return 0;
}

/* ---- handing over ------------------------------------------------------- */

int lsync__wset_pending(const struct lsync__wset *s) {
  return s->nkind || s->nlog;
}

static int rec_cmp(const void *a, const void *b) {
  const struct rec *x = *(struct rec *const *)a, *y = *(struct rec *const *)b;
  return lsync__path_cmp(x->path, x->len, y->path, y->len);
}

static void give(lsync_watch_cb cb, void *ud, const struct rec *r) {
  lsync_watch_change c = {
      (lsync_watch_kind)r->kind, r->path, r->len, NULL, 0, r->is_dir};
  cb(ud, &c);
}

size_t lsync__wset_take(struct lsync__wset *s, lsync_watch_cb cb, void *ud) {
  size_t given = 0;
  for (size_t i = 0; i < s->nlog; i++, given++) {
    const struct lsync__wmove *m = &s->log[i];
    lsync_watch_change c = {LSYNC_WATCH_MOVED, m->to,   m->tlen,
                            m->from,           m->flen, m->is_dir};
    cb(ud, &c);
  }
  size_t n;
  struct rec **a = gather(s, &n);
  if (a) {
    qsort(a, n, sizeof *a, rec_cmp);
    /* Sorted with "/" first, what lies below a path follows it. */
    const struct rec *cover = NULL;
    for (size_t i = 0; i < n; i++) {
      if (cover && below(a[i], cover->path, cover->len))
        continue;
      give(cb, ud, a[i]);
      given++;
      if (a[i]->kind != LSYNC_WATCH_CHANGED)
        cover = a[i];
    }
    free(a);
  } else {
    for (size_t i = 0; i < s->recs.nb; i++)
      for (struct lsync__hlink *l = s->recs.b[i]; l; l = l->next) {
        struct rec *r = LSYNC__CONTAINER(l, struct rec, link);
        if (r->kind != KIND_NONE) {
          give(cb, ud, r);
          given++;
        }
      }
  }
  lsync__wset_clear(s);
  return given;
}

void lsync__wset_clear(struct lsync__wset *s) {
  for (size_t i = 0; i < s->recs.nb; i++) {
    struct lsync__hlink *l = s->recs.b[i], *next;
    for (; l; l = next) {
      next = l->next;
      free(LSYNC__CONTAINER(l, struct rec, link));
    }
  }
  lsync__htab_free(&s->recs);
  s->nkind = 0;
  for (size_t i = 0; i < s->nlog; i++) {
    free(s->log[i].from);
    free(s->log[i].to);
  }
  free(s->log);
  s->log = NULL;
  s->nlog = s->caplog = 0;
}
