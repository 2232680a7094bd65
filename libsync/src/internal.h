/*
 * Internal helpers shared by libsync's source files.  Nothing here is
 * installed; symbols that are not static carry the lsync__ prefix.
 */
#ifndef LIBSYNC_INTERNAL_H
#define LIBSYNC_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>

#include "libsync/libsync.h"

#if defined(__GNUC__)
#define LSYNC__PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define LSYNC__PRINTF(f, a)
#endif

#define LSYNC__ERRMSG_MAX 1024

struct lsync_ctx {
  char errmsg[LSYNC__ERRMSG_MAX];
  lsync_log_cb log_cb;
  void *log_ud;
  lsync_log_level log_max;
  struct uv_loop_s *loop; /* NULL until first use */
  int own_loop;           /* the context created it and closes it */
};

/* The context's uv loop, created on first use; NULL (message on ctx)
 * when it cannot be. */
struct uv_loop_s *lsync__loop(lsync_ctx *ctx);

/* Close the context's own loop: close every handle still open, run until
 * they are released, free the loop.  Called by lsync_ctx_free. */
void lsync__loop_free(lsync_ctx *ctx);

/* Ignore SIGPIPE unless the program chose a disposition itself: writing
 * to a child or peer that went away must be EPIPE, not the program's
 * death (worker.c; once per process). */
void lsync__ignore_sigpipe(void);

/* Record a formatted message on ctx and return code, so error paths read
 * `return lsync__fail(ctx, LSYNC_EINVAL, "...", ...);`. */
int lsync__fail(lsync_ctx *ctx, int code, const char *fmt, ...)
    LSYNC__PRINTF(3, 4);

/* Like lsync__fail for a failed system call: appends strerror(errnum) and
 * maps errnum to a libsync code. */
int lsync__fail_errno(lsync_ctx *ctx, int errnum, const char *fmt, ...)
    LSYNC__PRINTF(3, 4);

void lsync__log(lsync_ctx *ctx, lsync_log_level level, const char *fmt, ...)
    LSYNC__PRINTF(3, 4);

/* Write path into buf (size n, always NUL-terminated) with bytes that would
 * break a log line (control characters, backslash, non-ASCII) escaped as
 * \ooo, so a name with a newline stays on one line.  Returns buf. */
char *lsync__escape(char *buf, size_t n, const char *path, size_t len);

/* Bytewise path order in which "/" sorts before every other byte, so a
 * directory's descendants follow it contiguously ("a", "a/x", "a-b"). */
int lsync__path_cmp(const char *a, size_t alen, const char *b, size_t blen);

/* lsync_scan_open for a consumer that keeps every entry (COUNT and
 * TOPLEVEL chunking): batches are not capped, and lsync_scan_next() reads
 * directories itself instead of waiting. */
int lsync__scan_open_collecting(lsync_ctx *ctx, const char *root,
                                const lsync_scan_opts *opts, lsync_scan **out);

/* openat(rootfd, path) with no symlink followed in any component of path
 * (relative, NUL-terminated, len = strlen(path); "" is the root itself); O_NOFOLLOW and O_CLOEXEC
 * are added to flags.  A path too long for one call is walked a component
 * at a time.  -1 and errno as openat. */
int lsync__open_below(int rootfd, const char *path, size_t len, int flags);

/* Sort chunk items in path order (lsync__path_cmp), in place. */
void lsync__sort_items(lsync_chunk_item *a, size_t n);

/* How many threads lsync__parallel_for uses at most (the caller's
 * included): the online cores, 1 to 16. */
unsigned lsync__parallel_width(void);

/* Run fn(ctx, i) for i in [0, n) on the machine's cores (the caller's
 * thread included); returns when all are done. */
void lsync__parallel_for(unsigned n, void (*fn)(void *ctx, unsigned i),
                         void *ctx);

#endif
