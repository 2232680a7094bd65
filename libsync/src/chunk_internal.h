/*
 * Internal to the chunker (chunk.c, chunk_collect.c, chunk_stream.c): the
 * shared state and helpers.  Not installed.
 */
#ifndef LIBSYNC_CHUNK_INTERNAL_H
#define LIBSYNC_CHUNK_INTERNAL_H

#include <stdatomic.h>
#include <stdint.h>

#include "internal.h"

struct pool_block {
  struct pool_block *next;
  size_t used, cap;
  char data[];
};

struct pool {
  atomic_int refs;
  struct pool_block *blocks;
};

struct pool *lsync__pool_new(void);
void lsync__pool_unref(struct pool *p);
/* Copy len bytes of s plus a NUL into the pool; NULL when out of memory. */
const char *lsync__pool_copy(struct pool *p, const char *s, size_t len);

struct lsync_chunk {
  unsigned index;
  size_t n, cap;
  uint64_t bytes;
  lsync_chunk_item *items;
  struct pool *pool;
};

lsync_chunk *lsync__chunk_new(struct pool *pool, size_t cap);
int lsync__chunk_push(lsync_chunk *c, const lsync_chunk_item *it);
void lsync__chunk_sort(lsync_chunk *c);

struct hl_slot {
  uint64_t dev, ino;
  int value;
  int used;
};

struct hl_map {
  struct hl_slot *slots;
  size_t cap, n; /* cap is a power of two */
};

struct hl_slot *lsync__hl_find(const struct hl_map *m, uint64_t dev,
                               uint64_t ino);
int lsync__hl_put(struct hl_map *m, uint64_t dev, uint64_t ino, int value);
void lsync__hl_del(struct hl_map *m, struct hl_slot *s);
uint64_t lsync__path_hash(const char *p, size_t n);
int lsync__is_hardlink(const lsync_entry *e);

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

/* One entry, or all names of a hard-linked inode: what COUNT deals. */
struct unit {
  uint64_t bytes;
  uint64_t tie; /* smallest hash of its names: a deterministic tie-break */
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
  int dead; /* after a stop or a failure: the code every later call gets */
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
  uint64_t placed_bytes; /* every unit so far, for the spread limit */
  struct pending *pend;
  size_t npend, cap_pend;
};

/* Grow *arr (elements of elem bytes) to hold need; 0 or LSYNC_ENOMEM. */
int lsync__grow(void **arr, size_t *cap, size_t need, size_t elem);
int lsync__nomem(lsync_chunker *ch);
/* Number a finished chunk and hand it to the callback (sorting it first
 * unless `sorted`); LSYNC_ECANCELED if the callback says stop. */
int lsync__emit(lsync_chunker *ch, lsync_chunk *c, int sorted);
int lsync__emit_all(lsync_chunker *ch, lsync_chunk **chunks, unsigned n);
void lsync__free_all(lsync_chunk **chunks, unsigned n);

/* chunk_collect.c: COUNT and TOPLEVEL */
int lsync__collect(lsync_chunker *ch, const lsync_entry *e);
int lsync__finish_count(lsync_chunker *ch);
int lsync__finish_toplevel(lsync_chunker *ch);

/* chunk_stream.c: LIMITS */
int lsync__limits_place(lsync_chunker *ch, const lsync_chunk_item *items,
                        size_t n, uint64_t bytes);
int lsync__limits_hold(lsync_chunker *ch, const lsync_entry *e);
int lsync__finish_limits(lsync_chunker *ch);
void lsync__pending_free(struct pending *p);

#endif
