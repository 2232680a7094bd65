/*
 * Chunk producers: crawling and chunking on a background thread while the
 * loop runs workers, so transfers start before the crawl ends (in LIMITS
 * mode the first chunk is ready after max_files entries).
 *
 * A producer reads its entries either by crawling a local directory
 * (lsync_scan) or by running a listing command, typically over ssh, whose
 * stdout carries one record per entry in this format (GNU find):
 *
 *   find DIR -mindepth 0 -printf '%y %m %s %T@ %D %i %n %U %G %P\0%l\0'
 *
 * i.e. type letter (f d l p s c b), octal mode, size, mtime as
 * seconds[.fraction], device, inode, link count, numeric uid and gid,
 * space-separated, then the path relative to DIR up to a NUL (so it may
 * hold spaces and newlines), then the symlink target up to a NUL (empty
 * for anything else).  The record with an empty path describes DIR
 * itself: it is not an entry, but a quick check (below) compares it.
 * Records are filtered with the filter of the scan options (an excluded
 * directory drops its subtree, matched by path prefix, so the command
 * must print a directory before its contents, as find does) and chunked
 * like a crawl.  A listing command that exits non-zero or is killed fails
 * the producer with LSYNC_EIO and its last stderr line; a malformed
 * record (or a path that is absolute or has "." or ".." components, or a
 * link target on a non-symlink) fails it with LSYNC_EIO naming the
 * record's number.  Chunks handed out before such a failure stay handed
 * out.
 *
 * Quick check.  Given a destination (dest_root, a local directory, or
 * dest_list_argv, a listing command in the same format), the thread first
 * reads the whole destination (filtered like the source) into an index,
 * then drops every source entry whose destination twin is identical by
 * rsync -a's quick check, so unchanged entries never reach rsync: same
 * path and type, same permission bits, same size (files), same mtime to
 * the nanosecond (every type), same uid and gid when check_uid and
 * check_gid say so, same target (symlinks).  Devices, unknown types, and
 * a single-link source entry whose twin has more links always count as
 * changed.  Hard-linked source entries wait until the source is read,
 * then go (all names of an inode together) unless every name is
 * unchanged, the twins are one destination inode with the same link
 * count, and no other source inode maps to it.  When in doubt an entry
 * counts as changed: sending an unchanged one is only slower.  A missing
 * destination is an empty one.  See lsync_compare_stats for what is
 * counted.  The index costs about 100 bytes per destination entry plus
 * its path (and target, for listings); the thread frees it when it ends.
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
 * thread (mid-crawl too, the destination's included), kills listing
 * commands, and frees queued chunks;
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

  /* Quick check against this local directory, or against this listing
   * command's records (same format); at most one.  Used during start only,
   * like list_argv. */
  const char *dest_root;
  const char *const *dest_list_argv;
  int check_uid, check_gid; /* compare owners (rsync keeps them) */
  /* A listing only: keep every listed directory's mtime (and the root's
   * attributes) for lsync_producer_set_dir_times.  About 40 bytes per
   * directory plus its path, held until the producer is freed. */
  int keep_dir_times;
} lsync_producer_opts;

/* Zero the options, default scan options, max_queued 4. */
LSYNC_API void lsync_producer_opts_init(lsync_producer_opts *o);

/* Check the options and start.  A bad root (LSYNC_ENOENT, LSYNC_ENOTDIR,
 * ...), a listing command that cannot be started (not in PATH: ENOENT),
 * a destination root that exists but cannot be opened (LSYNC_EACCES, ...),
 * or bad options (LSYNC_EINVAL) fail here with a message on ctx, and
 * on_ready never runs; errors found later (a failing destination listing
 * too) end the producer with a status (lsync_producer_done). */
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

/* Entries, bytes, errors so far (the thread updates them; a snapshot).
 * Entries the quick check drops are counted here too: this is what the
 * source holds. */
LSYNC_API void lsync_producer_stats(lsync_producer *p, lsync_scan_stats *out);

typedef struct lsync_compare_stats {
  int enabled; /* a destination was given */
  /* The roots' type, mode, mtime (or owners, if checked) differ, or the
   * destination root is missing or not a directory, or a listing printed
   * no record for its root. */
  int root_changed;
  uint64_t dest_entries;    /* destination entries indexed */
  uint64_t dest_errors;     /* destination paths that could not be read */
  uint64_t unchanged;       /* source entries dropped */
  uint64_t unchanged_bytes; /* their sizes (regular files, every name) */
  uint64_t extraneous;      /* destination entries no source entry of the
                               same type matched: 0 means a deletion pass
                               has nothing to delete */
} lsync_compare_stats;

/* The quick check's counts so far (zeros and enabled 0 without a
 * destination); final once lsync_producer_done() returns 1.  extraneous
 * and root_changed are only meaningful then. */
LSYNC_API void lsync_producer_compare_stats(lsync_producer *p,
                                            lsync_compare_stats *out);

/* A pull's last step without a round trip: once a producer started with
 * keep_dir_times has finished well (lsync_producer_done gave status 0),
 * set the mtime of every directory named in list (len bytes of
 * NUL-terminated paths relative to dest_root, a local directory; "." is
 * dest_root itself) to the time its listing record gave.  No symlink is
 * followed.  It stops at the first failure, with a message on the
 * producer's context: a name with no record (LSYNC_ENOENT), one that
 * cannot be set, a root whose permission bits differ from the source
 * root's, or whose owner or group does when check_uid or check_gid asks
 * (LSYNC_EINVAL: only a transfer can make the root right), or a producer
 * without times or not finished well (LSYNC_EINVAL, LSYNC_EBUSY).  The
 * caller then falls back to rsync.  *nset (may be NULL) counts the
 * directories set. */
LSYNC_API int lsync_producer_set_dir_times(lsync_producer *p,
                                           const char *dest_root,
                                           const char *list, size_t len,
                                           int check_uid, int check_gid,
                                           uint64_t *nset);

LSYNC_API void lsync_producer_free(lsync_producer *p);

#ifdef __cplusplus
}
#endif
#endif
