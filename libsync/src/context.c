/* The context: per-handle error message and the log callback. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int lsync_ctx_new(lsync_ctx **out) {
  lsync_ctx *ctx = calloc(1, sizeof *ctx);
  *out = ctx;
  return ctx ? 0 : LSYNC_ENOMEM;
}

void lsync_ctx_free(lsync_ctx *ctx) {
  if (!ctx)
    return;
  lsync__loop_free(ctx);
  free(ctx);
}

void lsync_ctx_set_log(lsync_ctx *ctx, lsync_log_cb cb, void *ud,
                       lsync_log_level max_level) {
  ctx->log_cb = cb;
  ctx->log_ud = ud;
  ctx->log_max = max_level;
}

const char *lsync_ctx_errmsg(const lsync_ctx *ctx) {
  return ctx->errmsg;
}

const char *lsync_version(void) {
#define LSYNC__STR2(x) #x
#define LSYNC__STR(x) LSYNC__STR2(x)
  return LSYNC__STR(LSYNC_VERSION_MAJOR) "." LSYNC__STR(
      LSYNC_VERSION_MINOR) "." LSYNC__STR(LSYNC_VERSION_PATCH);
}

int lsync__fail(lsync_ctx *ctx, int code, const char *fmt, ...) {
  if (ctx) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->errmsg, sizeof ctx->errmsg, fmt, ap);
    va_end(ap);
  }
  return code;
}

int lsync__fail_errno(lsync_ctx *ctx, int errnum, const char *fmt, ...) {
  if (ctx) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(ctx->errmsg, sizeof ctx->errmsg, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof ctx->errmsg)
      snprintf(ctx->errmsg + n, sizeof ctx->errmsg - (size_t)n, ": %s",
               strerror(errnum));
  }
  return lsync_err_from_errno(errnum);
}

void lsync__log(lsync_ctx *ctx, lsync_log_level level, const char *fmt, ...) {
  if (!ctx || !ctx->log_cb || level > ctx->log_max)
    return;
  char line[LSYNC__ERRMSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  ctx->log_cb(ctx->log_ud, level, line);
}

char *lsync__escape(char *buf, size_t n, const char *path, size_t len) {
  static const char digits[] = "01234567";
  size_t o = 0;
  for (size_t i = 0; i < len && o + 5 < n; i++) {
    unsigned char c = (unsigned char)path[i];
    if (c < 0x20 || c >= 0x7f || c == '\\') {
      buf[o++] = '\\';
      buf[o++] = digits[(c >> 6) & 7];
      buf[o++] = digits[(c >> 3) & 7];
      buf[o++] = digits[c & 7];
    } else {
      buf[o++] = (char)c;
    }
  }
  if (n)
    buf[o < n ? o : n - 1] = '\0';
  return buf;
}

int lsync__path_cmp(const char *a, size_t alen, const char *b, size_t blen) {
  size_t n = alen < blen ? alen : blen;
  for (size_t i = 0; i < n; i++) {
    unsigned char ca = (unsigned char)a[i], cb = (unsigned char)b[i];
    if (ca == cb)
      continue;
    /* "/" ranks lowest so that "a/x" sorts before "a-b". */
    if (ca == '/')
      return -1;
    if (cb == '/')
      return 1;
    return ca < cb ? -1 : 1;
  }
  return alen < blen ? -1 : alen > blen;
}
