/*
 * Sorting paths in "path order" ("/" ranks below every other byte, so a
 * directory's subtree is contiguous) with a multikey quicksort.
 *
 * Paths in one chunk share long prefixes ("prod/run42/..."); comparison
 * sorts re-read those prefixes on every compare, a multikey quicksort
 * looks at each byte position about once per element.  It is the serial
 * tail of chunking, after the parallel crawl, so it matters.
 */
#include "internal.h"

/* The byte at depth d as a rank: end of string < "/" < every other byte. */
static int rank_at(const lsync_chunk_item *it, size_t d) {
  if (d >= it->path_len)
    return -1;
  unsigned char c = (unsigned char)it->path[d];
  return c == '/' ? 0 : c + 1;
}

static void swap(lsync_chunk_item *a, lsync_chunk_item *b) {
  lsync_chunk_item t = *a;
  *a = *b;
  *b = t;
}

/* Elements of a all share their first d bytes. */
static void insertion(lsync_chunk_item *a, size_t n, size_t d) {
  for (size_t i = 1; i < n; i++)
    for (size_t j = i; j > 0; j--) {
      const lsync_chunk_item *x = &a[j - 1], *y = &a[j];
      if (lsync__path_cmp(x->path + d, x->path_len - d, y->path + d,
                          y->path_len - d) <= 0)
        break;
      swap(&a[j - 1], &a[j]);
    }
}

static int median3(const lsync_chunk_item *a, size_t n, size_t d) {
  int x = rank_at(&a[0], d), y = rank_at(&a[n / 2], d),
      z = rank_at(&a[n - 1], d);
  if ((x <= y && y <= z) || (z <= y && y <= x))
    return y;
  if ((y <= x && x <= z) || (z <= x && x <= y))
    return x;
  return z;
}

static void sort_from(lsync_chunk_item *a, size_t n, size_t d) {
  while (n > 1) {
    if (n < 12) {
      insertion(a, n, d);
      return;
    }
    int v = median3(a, n, d);
    size_t lt = 0, i = 0, gt = n;
    while (i < gt) {
      int c = rank_at(&a[i], d);
      if (c < v)
        swap(&a[lt++], &a[i++]);
      else if (c > v)
        swap(&a[i], &a[--gt]);
      else
        i++;
    }
    /* Three parts: below, equal (continue at d + 1; when v is the end of
     * string they are all the same path), above.  Recurse into the two
     * smaller ones and loop on the largest, so the stack stays O(log n)
     * even for 10,000-byte paths. */
    size_t nlt = lt, neq = gt - lt, ngt = n - gt;
    if (neq >= nlt && neq >= ngt && v >= 0) {
      sort_from(a, nlt, d);
      sort_from(a + gt, ngt, d);
      a += lt, n = neq, d++;
    } else if (nlt >= ngt) {
      if (v >= 0)
        sort_from(a + lt, neq, d + 1);
      sort_from(a + gt, ngt, d);
      n = nlt;
    } else {
      sort_from(a, nlt, d);
      if (v >= 0)
        sort_from(a + lt, neq, d + 1);
      a += gt, n = ngt;
    }
  }
}

void lsync__sort_items(lsync_chunk_item *a, size_t n) {
  sort_from(a, n, 0);
}
