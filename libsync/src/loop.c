/*
 * The context's event loop, timers and signal watchers: thin owners of
 * libuv handles that keep uv.h out of the public headers.
 *
 * Every handle is freed in its close callback, never before (libuv's
 * handle lifecycle), so a close from inside the handle's own callback is
 * safe.
 */
#include <stdlib.h>
#include <sys/time.h>
#include <uv.h>

#include "internal.h"

uv_loop_t *lsync__loop(lsync_ctx *ctx) {
  if (ctx->loop)
    return ctx->loop;
  uv_loop_t *loop = malloc(sizeof *loop);
  if (!loop) {
    lsync__fail(ctx, LSYNC_ENOMEM, "out of memory");
    return NULL;
  }
  int rc = uv_loop_init(loop);
  if (rc < 0) {
    free(loop);
    lsync__fail(ctx, LSYNC_ESYS, "cannot create the event loop: %s",
                uv_strerror(rc));
    return NULL;
  }
  ctx->loop = loop;
  ctx->own_loop = 1;
  return loop;
}

static void close_any(uv_handle_t *h, void *arg) {
  (void)arg;
  /* A handle still open when the context goes is an object its owner
   * never closed; closing it here keeps uv_loop_close from failing. */
  if (!uv_is_closing(h))
    uv_close(h, NULL);
}

void lsync__loop_free(lsync_ctx *ctx) {
  if (!ctx->loop || !ctx->own_loop)
    return;
  uv_run(ctx->loop, UV_RUN_NOWAIT);
  uv_walk(ctx->loop, close_any, NULL);
  uv_run(ctx->loop, UV_RUN_DEFAULT);
  uv_loop_close(ctx->loop);
  free(ctx->loop);
  ctx->loop = NULL;
}

int lsync_ctx_use_loop(lsync_ctx *ctx, void *uv_loop) {
  if (ctx->loop)
    return lsync__fail(ctx, LSYNC_EBUSY,
                       "the context already has an event loop");
  ctx->loop = uv_loop;
  ctx->own_loop = 0;
  return 0;
}

void *lsync_ctx_loop(lsync_ctx *ctx) {
  return lsync__loop(ctx);
}

int lsync_run(lsync_ctx *ctx, lsync_run_mode mode) {
  uv_loop_t *loop = lsync__loop(ctx);
  if (!loop)
    return LSYNC_ENOMEM;
  uv_run_mode m = mode == LSYNC_RUN_ONCE     ? UV_RUN_ONCE
                  : mode == LSYNC_RUN_NOWAIT ? UV_RUN_NOWAIT
                                             : UV_RUN_DEFAULT;
  return uv_run(loop, m) != 0;
}

void lsync_stop(lsync_ctx *ctx) {
  if (ctx->loop)
    uv_stop(ctx->loop);
}

uint64_t lsync_now_ms(lsync_ctx *ctx) {
  uv_loop_t *loop = lsync__loop(ctx);
  return loop ? uv_now(loop) : 0;
}

double lsync_wall_time(void) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

struct lsync_timer {
  uv_timer_t h;
  lsync_timer_cb cb;
  void *ud;
};

static void timer_fire(uv_timer_t *h) {
  lsync_timer *t = h->data;
  t->cb(t->ud, t);
}

int lsync_timer_new(lsync_ctx *ctx, lsync_timer_cb cb, void *ud,
                    lsync_timer **out) {
  *out = NULL;
  uv_loop_t *loop = lsync__loop(ctx);
  if (!loop)
    return LSYNC_ENOMEM;
  lsync_timer *t = calloc(1, sizeof *t);
  if (!t)
    return lsync__fail(ctx, LSYNC_ENOMEM, "out of memory");
  uv_timer_init(loop, &t->h);
  t->h.data = t;
  t->cb = cb;
  t->ud = ud;
  *out = t;
  return 0;
}

int lsync_timer_start(lsync_timer *t, uint64_t timeout_ms,
                      uint64_t repeat_ms) {
  return uv_timer_start(&t->h, timer_fire, timeout_ms, repeat_ms) < 0
             ? LSYNC_EINVAL
             : 0;
}

void lsync_timer_stop(lsync_timer *t) {
  uv_timer_stop(&t->h);
}

static void free_on_close(uv_handle_t *h) {
  free(h->data);
}

void lsync_timer_close(lsync_timer *t) {
  if (t)
    uv_close((uv_handle_t *)&t->h, free_on_close);
}

struct lsync_signal {
  uv_signal_t h;
  lsync_signal_cb cb;
  void *ud;
};

static void signal_fire(uv_signal_t *h, int signum) {
  lsync_signal *s = h->data;
  s->cb(s->ud, signum);
}

int lsync_signal_new(lsync_ctx *ctx, int signum, lsync_signal_cb cb, void *ud,
                     lsync_signal **out) {
  *out = NULL;
  uv_loop_t *loop = lsync__loop(ctx);
  if (!loop)
    return LSYNC_ENOMEM;
  lsync_signal *s = calloc(1, sizeof *s);
  if (!s)
    return lsync__fail(ctx, LSYNC_ENOMEM, "out of memory");
  uv_signal_init(loop, &s->h);
  s->h.data = s;
  s->cb = cb;
  s->ud = ud;
  int rc = uv_signal_start(&s->h, signal_fire, signum);
  if (rc < 0) {
    uv_close((uv_handle_t *)&s->h, free_on_close);
    return lsync__fail(ctx, LSYNC_EINVAL, "cannot watch signal %d: %s",
                       signum, uv_strerror(rc));
  }
  /* A watcher alone must not keep the loop alive. */
  uv_unref((uv_handle_t *)&s->h);
  *out = s;
  return 0;
}

void lsync_signal_close(lsync_signal *s) {
  if (s)
    uv_close((uv_handle_t *)&s->h, free_on_close);
}
