/*
 * Retry policy: the classification table row by row for rsync and
 * rclone, the exit texts, duration and backoff parsing, and the backoff
 * delays (growth, cap, jitter bounds over many draws).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <libsync/libsync.h>

#include "check.h"

static void expect_class(lsync_tool tool, int status, int sig, int stopped,
                         int timed_out, lsync_outcome want, int line) {
  lsync_outcome got = lsync_classify(tool, status, sig, stopped, timed_out);
  if (got == want) {
    passed++;
    return;
  }
  failed++;
  fprintf(stderr,
          "%s:%d: classify(%s, %d, sig %d, stopped %d, timed_out %d) = %s, "
          "want %s\n",
          __FILE__, line, tool == LSYNC_TOOL_RSYNC ? "rsync" : "rclone", status,
          sig, stopped, timed_out, lsync_outcome_name(got),
          lsync_outcome_name(want));
}

#define CLASS(tool, st, want)                                                  \
  expect_class(tool, st, 0, 0, 0, LSYNC_OUTCOME_##want, __LINE__)

static void test_classify_rsync(void) {
  const lsync_tool R = LSYNC_TOOL_RSYNC;
  CLASS(R, 0, OK);
  CLASS(R, 24, VANISHED);
  static const int retry[] = {10, 11, 12, 30, 35, 255};
  for (size_t i = 0; i < sizeof retry / sizeof *retry; i++)
    CLASS(R, retry[i], RETRY);
  CLASS(R, 23, PARTIAL);
  static const int perm[] = {1, 2, 3,  4,  5,  6,  13, 14, 20, 21,  22, 25,
                             7, 9, 15, 19, 26, 29, 31, 34, 36, 100, 254};
  for (size_t i = 0; i < sizeof perm / sizeof *perm; i++)
    CLASS(R, perm[i], PERMANENT);
  /* Killed by a signal (status -1) is worth a retry; a stop on purpose
   * wins over the signal that carried it out; a watchdog stop retries. */
  expect_class(R, -1, 9, 0, 0, LSYNC_OUTCOME_RETRY, __LINE__);
  expect_class(R, -1, 15, 0, 0, LSYNC_OUTCOME_RETRY, __LINE__);
  expect_class(R, -1, 15, 1, 0, LSYNC_OUTCOME_STOPPED, __LINE__);
  expect_class(R, 20, 0, 1, 0, LSYNC_OUTCOME_STOPPED, __LINE__);
  expect_class(R, -1, 9, 0, 1, LSYNC_OUTCOME_RETRY, __LINE__);
  expect_class(R, 1, 0, 0, 1, LSYNC_OUTCOME_RETRY, __LINE__);
  expect_class(R, -1, 0, 0, 0, LSYNC_OUTCOME_PERMANENT, __LINE__);
}

static void test_classify_rclone(void) {
  const lsync_tool C = LSYNC_TOOL_RCLONE;
  CLASS(C, 0, OK);
  CLASS(C, 1, RETRY);
  CLASS(C, 5, RETRY);
  CLASS(C, 8, STOPPED);
  CLASS(C, 10, STOPPED);
  static const int perm[] = {2, 3, 4, 6, 7, 9, 11, 23, 24, 255};
  for (size_t i = 0; i < sizeof perm / sizeof *perm; i++)
    CLASS(C, perm[i], PERMANENT);
  expect_class(C, -1, 9, 0, 0, LSYNC_OUTCOME_RETRY, __LINE__);
  expect_class(C, -1, 15, 1, 0, LSYNC_OUTCOME_STOPPED, __LINE__);
  expect_class(C, -1, 9, 0, 1, LSYNC_OUTCOME_RETRY, __LINE__);
  /* Unknown tools are not guessed at. */
  expect_class((lsync_tool)7, 0, 0, 0, 0, LSYNC_OUTCOME_PERMANENT, __LINE__);
}

static void test_names_and_texts(void) {
  CHECK(!strcmp(lsync_outcome_name(LSYNC_OUTCOME_OK), "ok"));
  CHECK(!strcmp(lsync_outcome_name(LSYNC_OUTCOME_VANISHED), "vanished"));
  CHECK(!strcmp(lsync_outcome_name(LSYNC_OUTCOME_RETRY), "retry"));
  CHECK(!strcmp(lsync_outcome_name(LSYNC_OUTCOME_PARTIAL), "partial"));
  CHECK(!strcmp(lsync_outcome_name(LSYNC_OUTCOME_PERMANENT), "permanent"));
  CHECK(!strcmp(lsync_outcome_name(LSYNC_OUTCOME_STOPPED), "stopped"));
  static const struct {
    int code;
    const char *text;
  } rs[] = {
      {1, "syntax or usage error"},
      {2, "protocol incompatibility"},
      {3, "errors selecting input/output files, dirs"},
      {4, "requested action not supported"},
      {5, "error starting client-server protocol"},
      {6, "daemon unable to append to log-file"},
      {10, "error in socket IO"},
      {11, "error in file IO"},
      {12, "error in rsync protocol data stream"},
      {13, "errors with program diagnostics"},
      {14, "error in IPC code"},
      {20, "received SIGUSR1 or SIGINT"},
      {21, "some error returned by waitpid()"},
      {22, "error allocating core memory buffers"},
      {23, "some files/attrs were not transferred (see previous errors)"},
      {24, "some files vanished before they could be transferred"},
      {25, "the --max-delete limit stopped deletions"},
      {30, "timeout in data send/receive"},
      {35, "timeout waiting for daemon connection"},
      {255, "ssh or the remote shell failed (unexplained error)"},
  };
  for (size_t i = 0; i < sizeof rs / sizeof *rs; i++) {
    const char *t = lsync_exit_text(LSYNC_TOOL_RSYNC, rs[i].code);
    if (strcmp(t, rs[i].text)) {
      failed++;
      fprintf(stderr, "rsync %d: got '%s', want '%s'\n", rs[i].code, t,
              rs[i].text);
    } else {
      passed++;
    }
  }
  CHECK(!strcmp(lsync_exit_text(LSYNC_TOOL_RSYNC, 99), "exit status 99"));
  CHECK(!strcmp(lsync_exit_text(LSYNC_TOOL_RSYNC, -1), "exit status -1"));
  CHECK(!strcmp(lsync_exit_text(LSYNC_TOOL_RCLONE, 0), "success"));
  CHECK(strstr(lsync_exit_text(LSYNC_TOOL_RCLONE, 3), "directory not found"));
  CHECK(strstr(lsync_exit_text(LSYNC_TOOL_RCLONE, 5), "temporary"));
  CHECK(strstr(lsync_exit_text(LSYNC_TOOL_RCLONE, 8), "--max-transfer"));
  CHECK(strstr(lsync_exit_text(LSYNC_TOOL_RCLONE, 10), "--max-duration"));
  CHECK(!strcmp(lsync_exit_text(LSYNC_TOOL_RCLONE, 11), "exit status 11"));
  for (int i = 0; i <= 10; i++)
    CHECK(strncmp(lsync_exit_text(LSYNC_TOOL_RCLONE, i), "exit status", 11));
}

static void test_durations(void) {
  static const struct {
    const char *s;
    double v;
  } ok[] = {
      {"90", 90},       {"0", 0},      {"1.5s", 1.5},    {"250ms", 0.25},
      {"10m", 600},     {"1h", 3600},  {"2d", 172800},   {"1d2h30m15s", 95415},
      {"1h30m", 5400},  {"1m30s", 90}, {"2s500ms", 2.5}, {"0.5h", 1800},
      {"1d15s", 86415}, {"007", 7}};
  for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
    double v = -1;
    int rc = lsync_parse_duration(ok[i].s, &v);
    if (rc != 0 || fabs(v - ok[i].v) > 1e-9) {
      failed++;
      fprintf(stderr, "duration '%s': rc %d, %g, want %g\n", ok[i].s, rc, v,
              ok[i].v);
    } else {
      passed++;
    }
  }
  static const char *const bad[] = {
      "",     "-1",   "-1s",  "+5",   "s",   "1x",        "1s ",  " 1s",
      "1.s",  ".5",   "1..2", "1e3",  "inf", "nan",       "1m30", "30s1m",
      "1h1h", "1msm", "5 m",  "0x10", "1S",  "1d2h3m4s5", "m5"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    double v = 42;
    int rc = lsync_parse_duration(bad[i], &v);
    if (rc != LSYNC_EINVAL || v != 42) {
      failed++;
      fprintf(stderr, "duration '%s' accepted (rc %d, %g)\n", bad[i], rc, v);
    } else {
      passed++;
    }
  }
  double v;
  CHECK(lsync_parse_duration(NULL, &v) == LSYNC_EINVAL);
}

static void test_backoff_parse(void) {
  lsync_backoff b;
  lsync_backoff_init(&b);
  CHECK(b.attempts == 3 && b.base == 2 && b.max == 300 && b.jitter == 0.5);
  CHECK(lsync_backoff_parse(&b, "2s..5m") == 0 && b.base == 2 && b.max == 300);
  CHECK(lsync_backoff_parse(&b, "500ms..1.5s") == 0 && b.base == 0.5 &&
        b.max == 1.5);
  CHECK(lsync_backoff_parse(&b, "1..10") == 0 && b.base == 1 && b.max == 10);
  CHECK(lsync_backoff_parse(&b, "30s") == 0 && b.base == 30 && b.max == 30);
  CHECK(lsync_backoff_parse(&b, "1m..1m") == 0 && b.base == 60 && b.max == 60);
  CHECK(b.attempts == 3 && b.jitter == 0.5); /* untouched by parse */
  static const char *const bad[] = {"",       "..",    "2s..",    "..5m",
                                    "5m..2s", "0",     "0..1s",   "2s...5m",
                                    "2s-5m",  "x..5m", "2s..5m ", "-1s..2s"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    lsync_backoff c = b;
    int rc = lsync_backoff_parse(&c, bad[i]);
    if (rc != LSYNC_EINVAL || c.base != b.base || c.max != b.max) {
      failed++;
      fprintf(stderr, "backoff '%s' accepted (rc %d)\n", bad[i], rc);
    } else {
      passed++;
    }
  }
}

static void test_backoff_delay(void) {
  lsync_backoff b = {.attempts = 10, .base = 2, .max = 60, .jitter = 0};
  uint64_t rng = 1;
  CHECK(lsync_backoff_delay(&b, 0, &rng) == 0);
  CHECK(lsync_backoff_delay(&b, 1, &rng) == 0);
  CHECK(lsync_backoff_delay(&b, 2, &rng) == 2);
  CHECK(lsync_backoff_delay(&b, 3, &rng) == 4);
  CHECK(lsync_backoff_delay(&b, 4, &rng) == 8);
  CHECK(lsync_backoff_delay(&b, 6, &rng) == 32);
  CHECK(lsync_backoff_delay(&b, 7, &rng) == 60); /* 64 capped */
  CHECK(lsync_backoff_delay(&b, 100, &rng) == 60);
  CHECK(lsync_backoff_delay(&b, 4000000000u, &rng) == 60);

  /* Jitter: every draw within [d (1 - j), d], spread over the range. */
  b.jitter = 0.5;
  for (unsigned attempt = 2; attempt <= 8; attempt++) {
    double d = fmin(2 * pow(2, attempt - 2), 60), lo = d, hi = 0, sum = 0;
    int bad = 0;
    const int draws = 20000;
    for (int i = 0; i < draws; i++) {
      double x = lsync_backoff_delay(&b, attempt, &rng);
      bad += !(x >= d * 0.5 && x <= d);
      lo = fmin(lo, x);
      hi = fmax(hi, x);
      sum += x;
    }
    CHECK(bad == 0);
    CHECK(lo < d * 0.51 && hi > d * 0.99);
    CHECK(fabs(sum / draws - d * 0.75) < d * 0.01); /* uniform: mean 3/4 d */
  }
  b.jitter = 1;
  double lo = 1e9;
  for (int i = 0; i < 10000; i++)
    lo = fmin(lo, lsync_backoff_delay(&b, 3, &rng));
  CHECK(lo >= 0 && lo < 0.01);

  /* The caller's state drives it: equal seeds give equal sequences, and
   * the state advances. */
  uint64_t s1 = 42, s2 = 42;
  double a1 = lsync_backoff_delay(&b, 5, &s1);
  double a2 = lsync_backoff_delay(&b, 5, &s2);
  CHECK(a1 == a2 && s1 == s2 && s1 != 42);
  CHECK(lsync_backoff_delay(&b, 5, &s1) != a1);
  uint64_t zero = 0; /* any seed, zero included */
  double z1 = lsync_backoff_delay(&b, 5, &zero);
  double z2 = lsync_backoff_delay(&b, 5, &zero);
  CHECK(z1 != z2);
}

int main(void) {
  test_classify_rsync();
  test_classify_rclone();
  test_names_and_texts();
  test_durations();
  test_backoff_parse();
  test_backoff_delay();
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
