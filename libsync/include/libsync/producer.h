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
 * the path relative to DIR up to a NUL (so it may hold spaces and
 * newlines).  Records are filtered with the filter of the scan options (an
 * excluded directory drops its subtree, matched by path prefix, so the
 * command must print a directory before its contents, as find does) and
 * chunked like a crawl.  A listing command that exits non-zero or is
 * killed fails the producer with LSYNC_EIO and its last stderr line; a
 * malformed record (or a path that is absolute or has "." or ".."
 * components) fails it with LSYNC_EIO naming the record's number.  Chunks
 * handed out before such a failure stay handed out.
 *
 * Chunks wait in a queue of at most max_queued chunks; when it is full the
 * thread waits, so memory stays bounded however slow the workers are.
 * on_ready runs on the loop whenever chunks are queued or the producer
 * finished; the owner then calls lsync_producer_take until it returns 0
 * (or takes chunks later, as workers free up).  on_ready runs at least
 * once when lsync_producer_done would return 1, even if the owner took
 * the last chunks outside on_ready; it may run with nothing to take.  The
 * thread's log lines (unreadable directories, the last stderr line of a
 * listing command that succeeded) are logged on the caller's context from
 * the loop.  The producer keeps the loop running only until its thread
 * has finished.
 *
 * Lifecycle: start -> on_ready* -> (take ...) -> free.  Freeing stops the
 * thread (mid-crawl too), kills a listing command, and frees queued chunks;
 * it may be called from inside on_ready.  The producer's memory goes when
 * the loop runs next (lsync_ctx_free runs it too).
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
  const char *root;             /* crawl this directory, or ... */
  const char *const *list_argv; /* ... run this listing command
                                   (NULL-terminated, argv[0] in PATH) */
  lsync_scan_opts scan;         /* threads, one_filesystem, filter (borrowed:
                                   must outlive the producer); on_error is
                                   ignored: errors are counted and logged.
                                   A listing uses the filter only. */
  lsync_chunk_opts chunk;       /* the mode must be set */
  unsigned max_queued;          /* 0: 4; at most 65536 */
  lsync_producer_ready_cb on_ready;
  void *ud;
} lsync_producer_opts;

/* Zero the options, default scan options, max_queued 4. */
LSYNC_API void lsync_producer_opts_init(lsync_producer_opts *o);

/* Check the options and start.  A bad root (LSYNC_ENOENT, LSYNC_ENOTDIR,
 * ...), a listing command that cannot be started (not in PATH: ENOENT),
 * or bad options (LSYNC_EINVAL) fail here with a message on ctx, and
 * on_ready never runs; errors found later end the producer with a status
 * (lsync_producer_done). */
LSYNC_API int lsync_producer_start(lsync_ctx *ctx, const lsync_producer_opts *o,
                                   lsync_producer **out);

/* 1 and *out set (the chunk is the caller's: lsync_chunk_free), or 0 when
 * none is queued now. */
LSYNC_API int lsync_producer_take(lsync_producer *p, lsync_chunk **out);

/* 1 when the producer has finished and every chunk has been taken.
 * *status (status may be NULL) then holds 0 or the negative code of the
 * failure (message via lsync_producer_errmsg, "" before the end). */
LSYNC_API int lsync_producer_done(lsync_producer *p, int *status);
LSYNC_API const char *lsync_producer_errmsg(const lsync_producer *p);

/* Entries, bytes, errors so far (the thread updates them; a snapshot). */
LSYNC_API void lsync_producer_stats(lsync_producer *p, lsync_scan_stats *out);

LSYNC_API void lsync_producer_free(lsync_producer *p);

#ifdef __cplusplus
}
#endif
#endif
