/*
 * The event loop, timers and signal watchers.
 *
 * libsync's asynchronous objects (timers, signal watchers, workers, chunk
 * producers) run on one libuv loop per context.  The context creates its
 * own loop on first use, or uses the embedder's (lsync_ctx_use_loop) so
 * libsync can share a program's existing loop.  Callbacks of asynchronous
 * objects run on the thread that runs the loop, from lsync_run() (or the
 * embedder's uv_run()).  No libuv type appears in libsync's headers: the
 * embedder's loop is passed as void *.
 *
 * Lifecycle of every asynchronous handle: new -> (start/stop ...) ->
 * close.  Close stops the handle at once (its callback never runs again)
 * and frees it when the loop lets go of it, which needs the loop to run
 * at least once more; lsync_ctx_free() does that for a context's own loop.
 */
#ifndef LIBSYNC_LOOP_H
#define LIBSYNC_LOOP_H

#include <stdint.h>

#include "context.h"

#include "api.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lsync_run_mode {
  LSYNC_RUN_DEFAULT = 0, /* until nothing is active or lsync_stop() */
  LSYNC_RUN_ONCE = 1,    /* one iteration, waiting for an event */
  LSYNC_RUN_NOWAIT = 2   /* one iteration, not waiting */
} lsync_run_mode;

/* Use the embedder's loop (a uv_loop_t *) instead of a loop of the
 * context's own.  Only before any asynchronous object exists: LSYNC_EBUSY
 * otherwise.  The embedder keeps ownership and runs it. */
LSYNC_API int lsync_ctx_use_loop(lsync_ctx *ctx, void *uv_loop);

/* The context's loop (a uv_loop_t *), created on first use; NULL when it
 * cannot be created (message on ctx). */
LSYNC_API void *lsync_ctx_loop(lsync_ctx *ctx);

/* Run the loop.  Returns 1 if handles are still active, 0 if not, or a
 * negative code when the loop cannot be created. */
LSYNC_API int lsync_run(lsync_ctx *ctx, lsync_run_mode mode);

/* Make a running lsync_run() return after the current iteration. */
LSYNC_API void lsync_stop(lsync_ctx *ctx);

/* The loop's idea of now, in milliseconds from an arbitrary point
 * (monotonic; updated at the start of each loop iteration). */
LSYNC_API uint64_t lsync_now_ms(lsync_ctx *ctx);

/* Wall-clock time in seconds since the epoch, with sub-second part. */
LSYNC_API double lsync_wall_time(void);

typedef struct lsync_timer lsync_timer;
typedef void (*lsync_timer_cb)(void *ud, lsync_timer *t);

LSYNC_API int lsync_timer_new(lsync_ctx *ctx, lsync_timer_cb cb, void *ud,
                              lsync_timer **out);
/* Fire after timeout_ms, then every repeat_ms if repeat_ms > 0.
 * Restarting a running timer re-arms it. */
LSYNC_API int lsync_timer_start(lsync_timer *t, uint64_t timeout_ms,
                                uint64_t repeat_ms);
LSYNC_API void lsync_timer_stop(lsync_timer *t);
LSYNC_API void lsync_timer_close(lsync_timer *t);

/* A signal watcher: cb runs on the loop (not in signal context) each time
 * signum arrives, for as long as the watcher is open.  Watchers do not
 * keep lsync_run(DEFAULT) running by themselves. */
typedef struct lsync_signal lsync_signal;
typedef void (*lsync_signal_cb)(void *ud, int signum);

LSYNC_API int lsync_signal_new(lsync_ctx *ctx, int signum, lsync_signal_cb cb,
                               void *ud, lsync_signal **out);
LSYNC_API void lsync_signal_close(lsync_signal *s);

#ifdef __cplusplus
}
#endif
#endif
