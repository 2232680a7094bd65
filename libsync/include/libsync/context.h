/*
 * The libsync context: the handle every other libsync object hangs off.
 *
 * A context carries the detailed message of the last failed call made
 * through it (lsync_ctx_errmsg) and the log callback that libsync uses for
 * warnings such as unreadable directories.  A context and the objects made
 * from it are used from one thread at a time; libsync's own worker threads
 * never call back into the embedder: callbacks run on the thread that made
 * the call that triggers them.
 *
 * Lifecycle: lsync_ctx_new() -> ... -> lsync_ctx_free(), after every object
 * made from the context has been freed.
 */
#ifndef LIBSYNC_CONTEXT_H
#define LIBSYNC_CONTEXT_H

#include "api.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lsync_ctx lsync_ctx;

typedef enum lsync_log_level {
  LSYNC_LOG_ERROR = 0,
  LSYNC_LOG_WARN = 1,
  LSYNC_LOG_INFO = 2,
  LSYNC_LOG_DEBUG = 3
} lsync_log_level;

/* msg is one line without a trailing newline, valid during the call only. */
typedef void (*lsync_log_cb)(void *ud, lsync_log_level level, const char *msg);

/* 0 or LSYNC_ENOMEM.  A new context logs nothing until a callback is set. */
LSYNC_API int lsync_ctx_new(lsync_ctx **out);
LSYNC_API void lsync_ctx_free(lsync_ctx *ctx);

/* Messages above max_level are not formatted at all.  cb may be NULL. */
LSYNC_API void lsync_ctx_set_log(lsync_ctx *ctx, lsync_log_cb cb, void *ud,
                                 lsync_log_level max_level);

/* The message of the last failed call made with this context, or "" if
 * none.  Valid until the next call on the context. */
LSYNC_API const char *lsync_ctx_errmsg(const lsync_ctx *ctx);

/* "MAJOR.MINOR.PATCH" */
LSYNC_API const char *lsync_version(void);

#ifdef __cplusplus
}
#endif
#endif
