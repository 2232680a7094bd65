/*
 * COUNT and TOPLEVEL chunking: modes that see every entry before dealing.
 *
 * COUNT groups the names of each hard-linked inode into one unit and deals
 * units largest first to the least-loaded chunk (LPT scheduling with a
 * binary min-heap, O(U log N)).  Zero-byte units (directories, empty
 * files) would otherwise all pile into one chunk, so they get a second
 * pass keyed on file count.
 *
 * TOPLEVEL sorts entries by path so each top-level name's subtree is
 * contiguous, then merges top-level groups that share a hard-linked inode
 * (union-find), because rsync -H only links names within one run.
 */
#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "chunk_internal.h"

int lsync__collect(lsync_chunker *ch, const lsync_entry *e) {
  /* Entries and units are numbered with int. */
  if (ch->nents >= INT_MAX)
    return lsync__fail(ch->ctx, LSYNC_ERANGE, "chunk: more than %d entries",
                       INT_MAX);
  if (lsync__grow((void **)&ch->ents, &ch->cap_ents, ch->nents + 1,
                  sizeof *ch->ents))
    return lsync__nomem(ch);
  const char *p = lsync__pool_copy(ch->pool, e->path, e->path_len);
  if (!p)
    return lsync__nomem(ch);
  int idx = (int)ch->nents++;
  struct ent *x = &ch->ents[idx];
  *x = (struct ent){p,       e->path_len,           e->size, e->dev, e->ino,
                    e->type, lsync__is_hardlink(e), -1,      -1};
  if (ch->o.mode == LSYNC_CHUNK_TOPLEVEL)
    return 0; /* grouped after sorting, in finish_toplevel */
  struct hl_slot *s =
      lsync__is_hardlink(e) ? lsync__hl_find(&ch->hl, e->dev, e->ino) : NULL;
  if (s) {
    struct unit *u = &ch->units[s->value];
    ch->ents[u->last].next = idx;
    u->last = idx;
    u->files++;
    x->unit = s->value;
    /* The tie-break must not depend on which name the racing crawl
     * delivered first: keep the smallest hash of all the names. */
    uint64_t h = lsync__path_hash(p, e->path_len);
    if (h < u->tie)
      u->tie = h;
    return 0;
  }
  if (lsync__grow((void **)&ch->units, &ch->cap_units, ch->nunits + 1,
                  sizeof *ch->units))
    return lsync__nomem(ch);
  int uid = (int)ch->nunits++;
  ch->units[uid] = (struct unit){.bytes = e->size,
                                 .tie = lsync__path_hash(p, e->path_len),
                                 .files = 1,
                                 .first = idx,
                                 .last = idx};
  x->unit = uid;
  if (lsync__is_hardlink(e) && lsync__hl_put(&ch->hl, e->dev, e->ino, uid) < 0)
    return lsync__nomem(ch);
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
      for (size_t b = a;
           b > i && unit_cmp(&u[src[b - 1].unit], &u[src[b].unit]) > 0; b--) {
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
    lsync__chunk_sort(j->chunks[c]);
}

int lsync__finish_count(lsync_chunker *ch) {
  unsigned n = ch->o.count;
  struct ukey *order = sort_units(ch->units, ch->nunits);
  if (!order)
    return lsync__nomem(ch);
  uint64_t *bytes = calloc(n, sizeof *bytes), *files = calloc(n, sizeof *files);
  struct hnode *heap = malloc(n * sizeof *heap);
  lsync_chunk **chunks = calloc(n, sizeof *chunks);
  int rc = 0;
  if (!bytes || !files || !heap || !chunks) {
    rc = lsync__nomem(ch);
    goto out;
  }
  deal_units(ch, order, bytes, files, heap);
  for (unsigned c = 0; c < n; c++) {
    if (!(chunks[c] = lsync__chunk_new(ch->pool, files[c]))) {
      rc = lsync__nomem(ch);
      goto out;
    }
    atomic_fetch_add(&ch->pool->refs, 1);
    chunks[c]->bytes = bytes[c];
  }
  unsigned stripes = lsync__parallel_width();
  if (stripes > n)
    stripes = n;
  struct fill_job job = {ch, chunks, n, stripes};
  lsync__parallel_for(stripes, fill_stripe, &job);
  rc = lsync__emit_all(ch, chunks, n);
out:
  lsync__free_all(chunks, n);
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
    struct hl_slot *s = lsync__hl_find(&ch->hl, e->dev, e->ino);
    if (!s) {
      if (lsync__hl_put(&ch->hl, e->dev, e->ino, e->unit) < 0)
        return lsync__nomem(ch);
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
    rc = lsync__nomem(ch);
    goto out;
  }
  for (int t = 0; t < ntops; t++)
    slot[t] = uf_find(parent, t) == t ? nchunks++ : slot[uf_find(parent, t)];
  for (size_t i = 0; i < ch->nents; i++) {
    const struct ent *e = &ch->ents[i];
    int c = slot[e->unit];
    if (!chunks[c]) {
      if (!(chunks[c] = lsync__chunk_new(ch->pool, 0))) {
        rc = lsync__nomem(ch);
        goto out;
      }
      atomic_fetch_add(&ch->pool->refs, 1);
    }
    lsync_chunk_item it = {e->path, e->len, e->size, e->type};
    if (lsync__chunk_push(chunks[c], &it) < 0) {
      rc = lsync__nomem(ch);
      goto out;
    }
    if (e->hardlink != 2)
      chunks[c]->bytes += e->size;
  }
  rc = lsync__emit_all(ch, chunks, (unsigned)nchunks);
out:
  lsync__free_all(chunks, (unsigned)nchunks);
  free(slot);
  return rc;
}

int lsync__finish_toplevel(lsync_chunker *ch) {
  if (ch->nents) /* no entries (all unchanged): no array to sort */
    qsort(ch->ents, ch->nents, sizeof *ch->ents, ent_cmp);
  int ntops = number_tops(ch);
  if (ntops == 0)
    return 0;
  int *parent = malloc((size_t)ntops * sizeof *parent);
  if (!parent)
    return lsync__nomem(ch);
  for (int t = 0; t < ntops; t++)
    parent[t] = t;
  int rc = merge_links(ch, parent);
  if (rc == 0)
    rc = emit_tops(ch, parent, ntops);
  free(parent);
  return rc;
}
