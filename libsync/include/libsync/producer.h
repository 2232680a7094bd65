/*
 * Chunk producers: crawling and chunking on a background thread while the
 * loop runs workers, so transfers start before the crawl ends (in LIMITS
 * mode the first chunk is ready after max_files entries).
 *
 * A producer reads its entries either by crawling a local directory
 * (lsync_scan) or by running a listing command, typically over ssh, whose
 * stdout carries one record per entry in this format (GNU find):
 *
 *   find DIR -mindepth 1 -printf '%y %m %s %T@ %D %i %n %P\0'
 *
 * i.e. type letter (f d l p s c b), octal mode, size, mtime as
 * seconds[.fraction], device, inode, link count, space-separated, then
 * the path relative to DIR up to a NUL.  Records are filtered with the
 * filter of the scan options (an excluded directory drops its subtree) and
 * chunked like a crawl.  A listing command that exits non-zero fails the
 * producer with its last stderr line.
 *
 * Chunks wait in a queue of at most max_queued chunks; when it is full the
 * thread waits, so memory stays bounded however slow the workers are.
 * on_ready runs on the loop whenever chunks are queued or the producer
 * finished; the owner then calls lsync_producer_take until it returns 0.
 *
 * Lifecycle: start -> on_ready* -> (take ...) -> free.  Freeing stops the
 * thread (mid-crawl too), kills a listing command, and frees queued chunks.
 */
#ifndef LIBSYNC_PRODUCER_H
#define LIBSYNC_PRODUCER_H

#include "chunk.h"
#include "context.h"
#include "scan.h"

#include "api.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lsync_producer lsync_producer;

typedef void (*lsync_producer_ready_cb)(void *ud, lsync_producer *p);

typedef struct lsync_producer_opts {
  const char *root;          /* crawl this directory, or ... */
  const char *const *list_argv; /* ... run this listing command
                                   (NULL-terminated, argv[0] in PATH) */
  lsync_scan_opts scan;      /* threads, one_filesystem, filter (borrowed:
                                must outlive the producer); on_error is
                                ignored: errors are counted and logged */
  lsync_chunk_opts chunk;
  unsigned max_queued;       /* 0: 4 */
  lsync_producer_ready_cb on_ready;
  void *ud;
} lsync_producer_opts;

LSYNC_API void lsync_producer_opts_init(lsync_producer_opts *o);

/* Check the options and start.  A bad root (missing, not a directory) or
 * bad chunk options fail here with a message; errors found later end the
 * producer with a status (lsync_producer_status). */
LSYNC_API int lsync_producer_start(lsync_ctx *ctx,
                                   const lsync_producer_opts *o,
                                   lsync_producer **out);

/* 1 and *out set (the chunk is the caller's: lsync_chunk_free), or 0 when
 * none is queued now. */
LSYNC_API int lsync_producer_take(lsync_producer *p, lsync_chunk **out);

/* 1 when the producer has finished and every chunk has been taken.
 * *status then holds 0 or the negative code of the failure (message via
 * lsync_producer_errmsg). */
LSYNC_API int lsync_producer_done(lsync_producer *p, int *status);
LSYNC_API const char *lsync_producer_errmsg(const lsync_producer *p);

/* Entries, bytes, errors so far (the thread updates them; a snapshot). */
LSYNC_API void lsync_producer_stats(lsync_producer *p, lsync_scan_stats *out);

LSYNC_API void lsync_producer_free(lsync_producer *p);

#ifdef __cplusplus
}
#endif
#endif
