/*
 * The token bucket (bucket.h): a debt model.  A take always succeeds and
 * may push the balance below zero; the wait it returns is the time the
 * refill needs to bring the balance back to zero, so callers that wait
 * as told send at the rate on average and at most `burst` ahead of it.
 */
#include <math.h>

#include "internal.h"

/* Add what the time since the last update earned, up to burst.  A clock
 * that went backwards earns nothing and does not move `last`, so the
 * same interval is never counted twice. */
static void refill(lsync_bucket *b, double now) {
  if (!(now > b->last))
    return;
  if (b->rate > 0) {
    b->tokens += (now - b->last) * b->rate;
    if (b->tokens > b->burst)
      b->tokens = b->burst;
  }
  b->last = now;
}

void lsync_bucket_init(lsync_bucket *b, double rate, double burst, double now) {
  b->rate = rate > 0 ? rate : 0;
  if (!(burst > 0))
    burst = fmax(b->rate / 10, 64 * 1024.0);
  b->burst = burst;
  b->tokens = burst;
  b->last = now;
}

void lsync_bucket_set_rate(lsync_bucket *b, double rate, double now) {
  /* Settle the time so far at the old rate first. */
  refill(b, now);
  b->rate = rate > 0 ? rate : 0;
}

double lsync_bucket_take(lsync_bucket *b, double n, double now) {
  refill(b, now);
  if (b->rate <= 0 || !(n > 0))
    return 0;
  b->tokens -= n;
  return b->tokens >= 0 ? 0 : -b->tokens / b->rate;
}

double lsync_bucket_available(lsync_bucket *b, double now) {
  refill(b, now);
  if (b->rate <= 0)
    return INFINITY;
  return b->tokens > 0 ? b->tokens : 0;
}
