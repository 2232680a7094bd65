/*
 * Parallel tree crawl.
 *
 * A scan walks a directory tree with a few threads sharing a queue of
 * directories and yields one lsync_entry per file, directory, symlink or
 * special file below the root (the root itself is not yielded).  Symlinks
 * are never followed.  Excluded entries are dropped while crawling, so an
 * excluded directory is never read.  A directory that cannot be read is
 * yielded (so a receiver recreates it), reported through on_error and the
 * context's log, counted in the stats, and the crawl goes on.
 *
 * Entries come out in no particular order: threads race.  Names are bytes;
 * any byte but NUL and "/" survives, newlines and invalid UTF-8 included.
 *
 * Ownership: the entry returned by lsync_scan_next() and its path belong to
 * the scan and stay valid until the next lsync_scan_next() or
 * lsync_scan_close().  The filter in the options is borrowed and must
 * outlive the scan.
 */
#ifndef LIBSYNC_SCAN_H
#define LIBSYNC_SCAN_H

#include <stddef.h>
#include <stdint.h>

#include "context.h"
#include "filter.h"

#include "api.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lsync_type {
  LSYNC_T_UNKNOWN = 0,
  LSYNC_T_FILE = 1,
  LSYNC_T_DIR = 2,
  LSYNC_T_SYMLINK = 3,
  LSYNC_T_FIFO = 4,
  LSYNC_T_SOCKET = 5,
  LSYNC_T_CHAR = 6,
  LSYNC_T_BLOCK = 7
} lsync_type;

/* "file", "dir", "symlink", "fifo", "socket", "char", "block", "unknown" */
LSYNC_API const char *lsync_type_name(lsync_type t);

typedef struct lsync_entry {
  const char *path; /* relative to the root, no leading "/", NUL-terminated */
  size_t path_len;
  lsync_type type;
  uint32_t mode; /* permission bits (07777) */
  uint64_t size; /* bytes: file size, symlink target length, 0 otherwise */
  int64_t mtime; /* seconds since the epoch */
  int32_t mtime_nsec;
  uint64_t dev;
  uint64_t ino;
  uint64_t nlink;
  uint32_t uid, gid; /* numeric owner */
  /* A symlink's target as a listing command printed it (NUL-terminated,
   * valid as long as the entry), or NULL: a crawl does not read links
   * (one system call each), whoever needs a target reads it. */
  const char *link_target;
  size_t link_target_len;
} lsync_entry;

/* Called on the consumer's thread, from lsync_scan_next(), once per path
 * that could not be read; err is a positive errno value. */
typedef void (*lsync_scan_error_cb)(void *ud, const char *path, int err);

typedef struct lsync_scan_opts {
  unsigned threads;           /* crawl threads; 0 picks a default */
  int one_filesystem;         /* do not descend into other filesystems */
  const lsync_filter *filter; /* NULL: include everything */
  lsync_scan_error_cb on_error;
  void *on_error_ud;
} lsync_scan_opts;

typedef struct lsync_scan_stats {
  uint64_t entries;  /* entries yielded so far */
  uint64_t dirs;     /* directories read */
  uint64_t bytes;    /* sum of entry sizes yielded */
  uint64_t excluded; /* entries dropped by the filter */
  uint64_t errors;   /* paths that could not be read */
  /* Directories yielded whose mode lacks the owner's write bit: a
   * receiver that is not root cannot write into them once their mode is
   * set, so parallel transfers must leave that to the end. */
  uint64_t dirs_unwritable;
} lsync_scan_stats;

/* Zero the options: default threads, whole tree, no filter. */
LSYNC_API void lsync_scan_opts_init(lsync_scan_opts *opts);

typedef struct lsync_scan lsync_scan;

/* Start crawling root (a directory; a symlink to one is followed for the
 * root only).  Fails with LSYNC_ENOENT, LSYNC_ENOTDIR, LSYNC_EACCES, ...
 * and a message on ctx; nothing is allocated then. */
LSYNC_API int lsync_scan_open(lsync_ctx *ctx, const char *root,
                              const lsync_scan_opts *opts, lsync_scan **out);

/* 1 and *out set: one more entry.  0: the crawl is over.  Negative: the
 * crawl failed as a whole (out of memory); message on the context. */
LSYNC_API int lsync_scan_next(lsync_scan *scan, const lsync_entry **out);

LSYNC_API void lsync_scan_get_stats(const lsync_scan *scan,
                                    lsync_scan_stats *out);

/* Stops the threads (also mid-crawl) and frees everything. */
LSYNC_API void lsync_scan_close(lsync_scan *scan);

#ifdef __cplusplus
}
#endif
#endif
