/*
 * Chunking: cutting a stream of entries into lists that workers transfer
 * independently.
 *
 * Three modes:
 *   COUNT     exactly `count` chunks.  Entries are collected, then the
 *             largest goes first to the least-loaded chunk (a min-heap);
 *             entries of size 0 are then spread so file counts even out.
 *             Bytes are balanced first, file counts second.
 *   LIMITS    at most max_files entries and/or max_bytes bytes per chunk.
 *             Streamed: a chunk is handed out as soon as it is full, while
 *             the crawl still runs; memory does not grow with the tree.  An
 *             entry larger than max_bytes gets a chunk of its own.
 *   TOPLEVEL  one chunk per top-level file or directory of the tree.
 *
 * In every mode all names of a hard-linked inode (same dev and inode) land
 * in the same chunk, because rsync -H only links names it sees in one run.
 * A hard-link group counts its bytes once.  In LIMITS mode a group is held
 * back until all its names have been seen (or the input ends), so memory
 * grows only with the number of incomplete groups.
 *
 * Directories are listed like files (size 0) so a receiver recreates empty
 * ones.  Entries inside a chunk are sorted by path, "/" ranking below
 * every other byte (so a directory's subtree is contiguous).
 *
 * Chunks are numbered from 1 in the order they are handed out (COUNT: 1..N,
 * TOPLEVEL: by the top-level name's byte order).
 *
 * Ownership: each chunk passed to the callback belongs to the callback,
 * which frees it with lsync_chunk_free() (now or later).  Callbacks run on
 * the caller's thread, from lsync_chunker_add/finish or lsync_chunk_tree.
 */
#ifndef LIBSYNC_CHUNK_H
#define LIBSYNC_CHUNK_H

#include <stddef.h>
#include <stdint.h>

#include "context.h"
#include "scan.h"

#include "api.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lsync_chunk_mode {
  LSYNC_CHUNK_COUNT = 1,
  LSYNC_CHUNK_LIMITS = 2,
  LSYNC_CHUNK_TOPLEVEL = 3
} lsync_chunk_mode;

typedef struct lsync_chunk_opts {
  lsync_chunk_mode mode;
  unsigned count;     /* COUNT: number of chunks (>= 1) */
  uint64_t max_files; /* LIMITS: 0 = no limit */
  uint64_t max_bytes; /* LIMITS: 0 = no limit (not both 0) */
  /* LIMITS, 0 = off: a streamed crawl does not know the tree's size, so
   * with spread N a chunk also closes at max(min_bytes, bytes placed so
   * far / N) when that is below max_bytes.  A small tree then still
   * spreads over the workers (a handful of big files do not all land in
   * the first chunk), and chunks grow with the tree up to max_bytes. */
  unsigned spread;
  uint64_t min_bytes; /* with spread: 0 means 16 MiB */
} lsync_chunk_opts;

typedef struct lsync_chunk lsync_chunk;

/* One entry of a chunk; path valid while the chunk lives. */
typedef struct lsync_chunk_item {
  const char *path;
  size_t path_len;
  uint64_t size;
  lsync_type type;
} lsync_chunk_item;

/* Return 0 to go on; any other value stops chunking, and the call that ran
 * the callback returns LSYNC_ECANCELED. */
typedef int (*lsync_chunk_cb)(void *ud, lsync_chunk *chunk);

LSYNC_API unsigned lsync_chunk_index(const lsync_chunk *c); /* from 1 */
LSYNC_API size_t lsync_chunk_len(const lsync_chunk *c);     /* entries */
LSYNC_API uint64_t
lsync_chunk_bytes(const lsync_chunk *c); /* hard links once */
LSYNC_API void lsync_chunk_item_at(const lsync_chunk *c, size_t i,
                                   lsync_chunk_item *out);

/* Write the chunk's paths to fd, each followed by `terminator` ('\0' for
 * rsync --from0, '\n' otherwise).  0 or LSYNC_EIO (message on ctx). */
LSYNC_API int lsync_chunk_write(lsync_ctx *ctx, const lsync_chunk *c, int fd,
                                char terminator);

LSYNC_API void lsync_chunk_free(lsync_chunk *c);

/* Parse "4G", "512k", "1.5M", "100" (binary multiples k, M, G, T, P; an
 * optional trailing "B" or "iB"; case-insensitive) into bytes.
 * 0 or LSYNC_EINVAL / LSYNC_ERANGE. */
LSYNC_API int lsync_parse_size(const char *s, uint64_t *out);

typedef struct lsync_chunker lsync_chunker;

/* LSYNC_EINVAL (message on ctx) for impossible options. */
LSYNC_API int lsync_chunker_new(lsync_ctx *ctx, const lsync_chunk_opts *opts,
                                lsync_chunk_cb cb, void *ud,
                                lsync_chunker **out);

/* Feed one entry (copied).  May run the callback in LIMITS mode. */
LSYNC_API int lsync_chunker_add(lsync_chunker *ch, const lsync_entry *e);

/* No more entries: hand out every remaining chunk.  After a failed add
 * or finish, a stop by the callback, or a finish, the chunker refuses
 * further add/finish calls (its results would be incomplete): free it. */
LSYNC_API int lsync_chunker_finish(lsync_chunker *ch);

LSYNC_API void lsync_chunker_free(lsync_chunker *ch);

/* Scan root and chunk it in one call.  stats may be NULL. */
LSYNC_API int lsync_chunk_tree(lsync_ctx *ctx, const char *root,
                               const lsync_scan_opts *sopts,
                               const lsync_chunk_opts *copts, lsync_chunk_cb cb,
                               void *ud, lsync_scan_stats *stats);

#ifdef __cplusplus
}
#endif
#endif
