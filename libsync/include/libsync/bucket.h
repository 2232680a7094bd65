/*
 * A token bucket: a rate limit shared by everything that draws from it.
 *
 * Tokens are bytes.  The bucket refills at `rate` bytes per second up to
 * `burst` bytes.  A take never fails: it spends the tokens, letting the
 * balance go negative, and returns how long the caller must wait before
 * sending so that the long-run rate stays at the cap.  Pure computation
 * on a caller-supplied clock, so it is exact in tests and usable from any
 * loop.  Not thread-safe: one owner.
 */
#ifndef LIBSYNC_BUCKET_H
#define LIBSYNC_BUCKET_H

#include <stdint.h>

#include "api.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lsync_bucket {
  double rate;   /* bytes per second; 0 = unlimited */
  double burst;  /* bytes */
  double tokens; /* current balance (may be negative) */
  double last;   /* clock of the last update, seconds */
} lsync_bucket;

/* burst 0 picks max(rate / 10, 64 KiB).  The bucket starts full. */
LSYNC_API void lsync_bucket_init(lsync_bucket *b, double rate, double burst,
                                 double now);

/* Change the rate (0 = unlimited) without losing the current balance;
 * the time since the last update is settled at the old rate.  burst is
 * kept. */
LSYNC_API void lsync_bucket_set_rate(lsync_bucket *b, double rate, double now);

/* Spend n bytes at time now; returns the seconds to wait (0 if none). */
LSYNC_API double lsync_bucket_take(lsync_bucket *b, double n, double now);

/* Bytes that could be taken now without waiting (HUGE_VAL when
 * unlimited). */
LSYNC_API double lsync_bucket_available(lsync_bucket *b, double now);

#ifdef __cplusplus
}
#endif
#endif
