/*
 * Token bucket on a simulated clock: the long-run rate, a rate change
 * half-way, the burst cap after idling, unlimited buckets and a clock
 * that goes backwards.
 */
#include <math.h>
#include <stdio.h>

#include <libsync/libsync.h>

#include "check.h"

#define MB (1024.0 * 1024.0)
#define PIECE (64 * 1024.0)

/* Take total bytes in PIECE-sized takes, advancing the clock by each
 * returned wait; returns the clock at the end. */
static double send(lsync_bucket *b, double now, double total) {
  for (double sent = 0; sent < total; sent += PIECE)
    now += lsync_bucket_take(b, PIECE, now);
  return now;
}

static void test_rate(void) {
  lsync_bucket b;
  lsync_bucket_init(&b, MB, PIECE, 100.0);
  CHECK(b.rate == MB && b.burst == PIECE && b.tokens == PIECE);
  double end = send(&b, 100.0, 10 * MB);
  double took = end - 100.0;
  CHECK(fabs(took - 10) < 0.1); /* within 1% */
  /* Exactly: everything but the initial burst is paid for at the rate. */
  CHECK(fabs(took - (10 * MB - PIECE) / MB) < 1e-6);
  if (fabs(took - 10) >= 0.1)
    fprintf(stderr, "10 MB at 1 MB/s took %.4f s\n", took);

  /* The default burst is a tenth of a second of the rate. */
  lsync_bucket_init(&b, 10 * MB, 0, 0);
  CHECK(fabs(b.burst - MB) < 1e-9);
  lsync_bucket_init(&b, 1000, 0, 0);
  CHECK(b.burst == 64 * 1024);
}

static void test_set_rate(void) {
  lsync_bucket b;
  lsync_bucket_init(&b, MB, PIECE, 0);
  double t = send(&b, 0, 5 * MB);
  CHECK(fabs(t - (5 * MB - PIECE) / MB) < 1e-6);
  /* Doubling the rate mid-way halves the time of the second half. */
  lsync_bucket_set_rate(&b, 2 * MB, t);
  CHECK(b.rate == 2 * MB);
  double t2 = send(&b, t, 5 * MB);
  CHECK(fabs((t2 - t) - 2.5) < 0.025);
  if (fabs((t2 - t) - 2.5) >= 0.025)
    fprintf(stderr, "5 MB at 2 MB/s took %.4f s\n", t2 - t);

  /* A debt survives a rate change and is repriced: 1 MB owed at 2 MB/s
   * is half a second. */
  lsync_bucket_init(&b, MB, PIECE, 0);
  lsync_bucket_take(&b, MB + PIECE, 0);
  lsync_bucket_set_rate(&b, 2 * MB, 0);
  CHECK(fabs(b.tokens + MB) < 1e-9);
  CHECK(fabs(lsync_bucket_take(&b, 0.5 * MB, 0) - 0.75) < 1e-9);
  /* Time before the change is settled at the old rate: 0.25 s at 2 MB/s
   * pays 0.5 MB, then the new rate of 1 MB/s prices the rest. */
  lsync_bucket_set_rate(&b, MB, 0.25);
  CHECK(fabs(b.tokens + MB) < 1e-9);

  /* Unlimited: takes never wait, and the balance survives. */
  double before = b.tokens;
  lsync_bucket_set_rate(&b, 0, 0.25);
  CHECK(lsync_bucket_take(&b, 100 * MB, 0.25) == 0);
  CHECK(isinf(lsync_bucket_available(&b, 0.25)));
  CHECK(b.tokens == before);
  /* Back to limited: the time spent unlimited earned nothing. */
  lsync_bucket_set_rate(&b, MB, 50);
  CHECK(b.tokens == before);
  CHECK(fabs(lsync_bucket_take(&b, 0, 50) - 0) < 1e-9);
  CHECK(fabs(lsync_bucket_available(&b, 50.5) - 0) < 1e-9);
  CHECK(fabs(lsync_bucket_available(&b, 51.5) - PIECE) < 1e-9);
}

static void test_burst_cap(void) {
  lsync_bucket b;
  lsync_bucket_init(&b, MB, 2 * PIECE, 0);
  CHECK(lsync_bucket_take(&b, 2 * PIECE, 0) == 0);
  CHECK(lsync_bucket_available(&b, 0) == 0);
  /* After a long idle the bucket holds burst, not an hour of rate. */
  CHECK(lsync_bucket_available(&b, 3600) == 2 * PIECE);
  CHECK(lsync_bucket_take(&b, 2 * PIECE, 3600) == 0);
  double w = lsync_bucket_take(&b, PIECE, 3600);
  CHECK(fabs(w - PIECE / MB) < 1e-9);
  /* Half-way through the wait half a piece of debt is left. */
  CHECK(lsync_bucket_available(&b, 3600 + w / 2) == 0);
  CHECK(fabs(b.tokens + PIECE / 2) < 1e-6);
  CHECK(lsync_bucket_available(&b, 3600 + w) < 1e-6);
  /* A big take is allowed at once and paid for afterwards. */
  lsync_bucket_init(&b, MB, PIECE, 0);
  CHECK(fabs(lsync_bucket_take(&b, 10 * MB, 0) - (10 * MB - PIECE) / MB) <
        1e-9);
  /* Zero and negative takes cost nothing. */
  lsync_bucket_init(&b, MB, PIECE, 0);
  CHECK(lsync_bucket_take(&b, 0, 0) == 0 && lsync_bucket_take(&b, -5, 0) == 0);
  CHECK(b.tokens == PIECE);
}

static void test_clock_backwards(void) {
  lsync_bucket b;
  lsync_bucket_init(&b, 1000, 1000, 10);
  CHECK(lsync_bucket_take(&b, 1000, 10) == 0);
  /* The clock jumps back 5 s, then forward to 10.5: only 0.5 s earns. */
  CHECK(lsync_bucket_available(&b, 5) == 0);
  CHECK(fabs(lsync_bucket_available(&b, 10.5) - 500) < 1e-9);
}

static void test_unlimited(void) {
  lsync_bucket b;
  lsync_bucket_init(&b, 0, 0, 0);
  CHECK(b.rate == 0 && b.burst == 64 * 1024);
  for (int i = 0; i < 1000; i++)
    CHECK(lsync_bucket_take(&b, MB, 0) == 0);
  lsync_bucket_init(&b, -5, 0, 0);
  CHECK(b.rate == 0 && lsync_bucket_take(&b, MB, 0) == 0);
}

int main(void) {
  test_rate();
  test_set_rate();
  test_burst_cap();
  test_clock_backwards();
  test_unlimited();
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
