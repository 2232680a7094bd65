/*
 * Schedules and timetables on fixed time zones: UTC for the calendar
 * (month and year ends, Feb 29, the cron day rule), Europe/Berlin for DST
 * (the skipped hour on 2024-03-31, the repeated one on 2024-10-27).
 * Every expected instant is written as a UTC date, worked out by hand.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libsync/libsync.h>

#include "check.h"

static void set_tz(const char *tz) {
  setenv("TZ", tz, 1);
  tzset();
}

/* An instant given as a UTC date and time. */
static int64_t utc(int y, int mo, int d, int h, int mi, int s) {
  struct tm tm = {.tm_year = y - 1900,
                  .tm_mon = mo - 1,
                  .tm_mday = d,
                  .tm_hour = h,
                  .tm_min = mi,
                  .tm_sec = s};
  return (int64_t)timegm(&tm);
}

static char err[256];

static lsync_sched *sched(const char *spec) {
  lsync_sched *s = NULL;
  int rc = lsync_sched_parse(spec, &s, err, sizeof err);
  CHECK(rc == 0 && s);
  if (rc)
    fprintf(stderr, "parse \"%s\": %s\n", spec, err);
  return s;
}

/* The spec fails with EINVAL and exactly this message. */
static void sched_err(const char *spec, const char *want) {
  lsync_sched *s = (lsync_sched *)&s;
  int rc = lsync_sched_parse(spec, &s, err, sizeof err);
  CHECK(rc == LSYNC_EINVAL && s == NULL && !strcmp(err, want));
  if (rc != LSYNC_EINVAL || strcmp(err, want))
    fprintf(stderr, "\"%s\": rc %d, \"%s\"\n  want \"%s\"\n", spec, rc, err,
            want);
}

static void next_is(const char *spec, int64_t now, int64_t want) {
  lsync_sched *s = sched(spec);
  if (!s)
    return;
  int64_t got = lsync_sched_next(s, 0, now);
  CHECK(got == want);
  if (got != want)
    fprintf(stderr, "%s after %lld: %lld, want %lld (diff %lld)\n", spec,
            (long long)now, (long long)got, (long long)want,
            (long long)(got - want));
  lsync_sched_free(s);
}

static void describes(const char *spec, const char *want) {
  lsync_sched *s = sched(spec);
  if (!s)
    return;
  CHECK(!strcmp(lsync_sched_describe(s), want));
  if (strcmp(lsync_sched_describe(s), want))
    fprintf(stderr, "\"%s\" reads \"%s\"\n", spec, lsync_sched_describe(s));
  lsync_sched_free(s);
}

static void test_intervals(void) {
  describes("every 6h", "every 6h");
  describes("every 90s", "every 1m30s");
  describes("  EVERY 1h30m ", "every 1h30m");
  describes("1d2h30m", "every 1d2h30m");
  describes("45m", "every 45m");
  describes("10s", "every 10s");
  describes("every 0h120m", "every 2h");

  lsync_sched *s = sched("every 6h");
  if (!s)
    return;
  int64_t t = utc(2024, 5, 1, 0, 0, 0);
  /* Never ran: due now.  A short run: one interval after its start. */
  CHECK(lsync_sched_next(s, 0, t) == t);
  CHECK(lsync_sched_next(s, INT64_MIN, 5000) == 5000);
  CHECK(lsync_sched_next(s, INT64_MAX - 10, INT64_MAX - 20) == INT64_MAX);
  CHECK(lsync_sched_next(s, t, t + 600) == t + 6 * 3600);
  /* Exactly on the slot, and a run that took longer than the interval:
   * the next starts at once, the missed slot is not queued. */
  CHECK(lsync_sched_next(s, t, t + 6 * 3600) == t + 6 * 3600);
  CHECK(lsync_sched_next(s, t, t + 7 * 3600) == t + 7 * 3600);
  CHECK(lsync_sched_next(s, t, t + 30 * 3600) == t + 30 * 3600);
  /* A clock set back a day waits one interval, not a day more. */
  CHECK(lsync_sched_next(s, t, t - 86400) == t - 86400 + 6 * 3600);
  lsync_sched_free(s);

  s = sched("1d2h30m");
  CHECK(s && lsync_sched_next(s, 1000, 1001) == 1000 + 95400);
  lsync_sched_free(s);

  const char *want = "expected \"every\" and a duration such as 6h, 90s, "
                     "1h30m or 1d2h30m (units d, h, m, s in that order), "
                     "or \"cron M H DOM MON DOW\", or @daily";
  const char *bad[] = {"every 90",    "every 6x", "1h1d",      "every 1.5h",
                       "every 250ms", "every",    "sometimes", "6h 30m",
                       "every -1h",   "",         "1h1h"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    char msg[300];
    snprintf(msg, sizeof msg, "schedule \"%s\": %s", bad[i], want);
    sched_err(bad[i], msg);
  }
  sched_err("every 0s", "schedule \"every 0s\": the interval must be more "
                        "than 0");
  sched_err("0d0h", "schedule \"0d0h\": the interval must be more than 0");
  sched_err("every 40000d",
            "schedule \"every 40000d\": the interval is longer than 100 "
            "years");
  CHECK(lsync_sched_parse(NULL, &s, NULL, 0) == LSYNC_EINVAL);
  /* No buffer: the code alone. */
  CHECK(lsync_sched_parse("every 6x", &s, NULL, 0) == LSYNC_EINVAL && !s);
}

static void test_cron_parse(void) {
  describes("cron 0 */6 * * *", "cron 0 */6 * * *");
  describes("  CRON  0   9 * JAN-Mar Mon-FRI ", "cron 0 9 * jan-mar mon-fri");
  describes("@daily", "cron 0 0 * * *");
  describes("cron @weekly", "cron 0 0 * * 0");
  describes("@HOURLY", "cron 0 * * * *");
  describes("@monthly", "cron 0 0 1 * *");
  describes("@yearly", "cron 0 0 1 1 *");

  sched_err("cron 0 25 * * *", "cron: hour field \"25\": value out of range "
                               "0-23");
  sched_err("cron 60 0 * * *", "cron: minute field \"60\": value out of "
                               "range 0-59");
  sched_err("cron 0 0 0 * *", "cron: day-of-month field \"0\": value out of "
                              "range 1-31");
  sched_err("cron 0 0 * 13 *", "cron: month field \"13\": value out of "
                               "range 1-12");
  sched_err("cron 0 0 * * 8", "cron: day-of-week field \"8\": value out of "
                              "range 0-7");
  sched_err("cron 0 0 * foo *", "cron: month field \"foo\": expected a "
                                "number or jan-dec");
  sched_err("cron 0 0 * * monday", "cron: day-of-week field \"monday\": "
                                   "expected a number or sun-sat");
  sched_err("cron 0 mon * * *", "cron: hour field \"mon\": expected a "
                                "number");
  sched_err("cron 5/15 * * * *", "cron: minute field \"5/15\": a step needs "
                                 "* or a range before it (5-59/N)");
  sched_err("cron */0 * * * *", "cron: minute field \"*/0\": step out of "
                                "range 1-59");
  sched_err("cron */x * * * *", "cron: minute field \"*/x\": expected a "
                                "number after /");
  sched_err("cron 0 10-5 * * *", "cron: hour field \"10-5\": range 10-5 runs "
                                 "backwards");
  sched_err("cron 0 1,,2 * * *", "cron: hour field \"1,,2\": expected a "
                                 "number");
  sched_err("cron 0 1, * * *", "cron: hour field \"1,\": expected a number");
  sched_err("cron 0 1;2 * * *", "cron: hour field \"1;2\": unexpected ';'");
  sched_err("cron 0 0 *", "cron: expected 5 fields (minute hour "
                          "day-of-month month day-of-week), got 3");
  sched_err("cron", "cron: expected 5 fields (minute hour day-of-month month "
                    "day-of-week), got 0");
  sched_err("cron 0 0 * * * *", "cron: expected 5 fields (minute hour "
                                "day-of-month month day-of-week), got 6");
  sched_err("@reboot", "cron: unknown \"@reboot\" (expected @hourly, @daily, "
                       "@weekly, @monthly or @yearly)");
}

static void test_cron_utc(void) {
  set_tz("UTC");
  /* Strictly after now, also when now is on a match. */
  next_is("cron 0 */6 * * *", utc(2024, 1, 1, 5, 59, 59),
          utc(2024, 1, 1, 6, 0, 0));
  next_is("cron 0 */6 * * *", utc(2024, 1, 1, 6, 0, 0),
          utc(2024, 1, 1, 12, 0, 0));
  next_is("cron 0 */6 * * *", utc(2024, 1, 1, 6, 0, 30),
          utc(2024, 1, 1, 12, 0, 0));
  /* Year and month ends. */
  next_is("cron 0 */6 * * *", utc(2023, 12, 31, 23, 30, 0),
          utc(2024, 1, 1, 0, 0, 0));
  next_is("cron 0 0 1 * *", utc(2024, 1, 31, 12, 0, 0),
          utc(2024, 2, 1, 0, 0, 0));
  next_is("cron 30 2 31 * *", utc(2024, 4, 1, 0, 0, 0),
          utc(2024, 5, 31, 2, 30, 0));
  next_is("cron 59 23 31 12 *", utc(2024, 1, 1, 0, 0, 0),
          utc(2024, 12, 31, 23, 59, 0));
  next_is("@yearly", utc(2024, 12, 31, 23, 59, 59), utc(2025, 1, 1, 0, 0, 0));
  /* Feb 29: the next leap year (2100 is not one, 2028 is). */
  next_is("cron 0 0 29 2 *", utc(2024, 3, 1, 0, 0, 0),
          utc(2028, 2, 29, 0, 0, 0));
  next_is("cron 0 0 29 2 *", utc(2024, 2, 28, 23, 59, 0),
          utc(2024, 2, 29, 0, 0, 0));
  /* 2100 is not a leap year: the search goes on to 2104. */
  next_is("cron 0 0 29 2 *", utc(2099, 3, 1, 0, 0, 0),
          utc(2104, 2, 29, 0, 0, 0));
  /* Never: dates that do not exist. */
  next_is("cron 0 0 30 2 *", utc(2024, 1, 1, 0, 0, 0), -1);
  next_is("cron 0 0 31 4,6,9,11 *", utc(2024, 1, 1, 0, 0, 0), -1);
  /* Lists, ranges, steps, names. */
  next_is("cron 15 10 * jan,jul *", utc(2024, 2, 1, 0, 0, 0),
          utc(2024, 7, 1, 10, 15, 0));
  next_is("cron 0 0 2-8/3 * *", utc(2024, 3, 2, 0, 0, 0),
          utc(2024, 3, 5, 0, 0, 0));
  next_is("cron 0 0 2-8/3 * *", utc(2024, 3, 8, 0, 0, 0),
          utc(2024, 4, 2, 0, 0, 0));
  next_is("cron 0 9 * * mon-fri", utc(2024, 10, 5, 12, 0, 0), /* Saturday */
          utc(2024, 10, 7, 9, 0, 0));
  next_is("cron 0 0 * * 7", utc(2024, 10, 1, 0, 0, 0), /* 7: Sunday */
          utc(2024, 10, 6, 0, 0, 0));
  next_is("cron 0 0 * * 5-7", utc(2024, 10, 1, 0, 0, 0), /* Fri-Sun */
          utc(2024, 10, 4, 0, 0, 0));
  next_is("cron 0 0 * * 0", utc(2024, 10, 4, 0, 0, 0),
          utc(2024, 10, 6, 0, 0, 0));
  next_is("cron 7,19 * * * *", utc(2024, 10, 1, 3, 7, 0),
          utc(2024, 10, 1, 3, 19, 0));
  /* Both day fields restricted: either matches.  October 2024: Fridays
   * are the 4th, 11th, 18th, 25th; the 13th is a Sunday. */
  next_is("cron 0 12 13 * fri", utc(2024, 10, 1, 0, 0, 0),
          utc(2024, 10, 4, 12, 0, 0));
  next_is("cron 0 12 13 * fri", utc(2024, 10, 11, 12, 0, 0),
          utc(2024, 10, 13, 12, 0, 0));
  next_is("cron 0 12 13 * fri", utc(2024, 10, 13, 12, 0, 0),
          utc(2024, 10, 18, 12, 0, 0));
  /* One of them starts with '*': both must match (odd days AND Friday). */
  next_is("cron 0 12 */2 * fri", utc(2024, 10, 1, 0, 0, 0),
          utc(2024, 10, 11, 12, 0, 0));
  next_is("cron 0 12 13 * *", utc(2024, 10, 1, 0, 0, 0),
          utc(2024, 10, 13, 12, 0, 0));
  next_is("cron 0 12 * * fri", utc(2024, 10, 5, 0, 0, 0),
          utc(2024, 10, 11, 12, 0, 0));
  /* A schedule that never matches is found out quickly: many calls well
   * inside the test's time limit. */
  lsync_sched *s = sched("cron 0 0 30 2 *");
  clock_t c0 = clock();
  int never = 1;
  for (int i = 0; i < 2000 && s; i++)
    never &= lsync_sched_next(s, 0, utc(2024, 1, 1, 0, 0, 0) + i) == -1;
  double took = (double)(clock() - c0) / CLOCKS_PER_SEC;
  CHECK(never && took < 5);
  if (took >= 5)
    fprintf(stderr, "2000 searches took %.2f s\n", took);
  lsync_sched_free(s);
}

/* Europe/Berlin: 2024-03-31 02:00 CET becomes 03:00 CEST (01:00 UTC);
 * 2024-10-27 03:00 CEST becomes 02:00 CET (01:00 UTC).  Expected values
 * are UTC: CET is UTC+1, CEST UTC+2. */
static void test_cron_dst(void) {
  set_tz("Europe/Berlin");
  /* 02:30 does not exist on the 31st: that day is skipped. */
  next_is("cron 30 2 * * *", utc(2024, 3, 30, 2, 0, 0),
          utc(2024, 4, 1, 0, 30, 0));
  /* Half-hourly through the gap: 01:30 CET, then 03:00 CEST. */
  next_is("cron */30 * * * *", utc(2024, 3, 31, 0, 15, 0),
          utc(2024, 3, 31, 0, 30, 0));
  next_is("cron */30 * * * *", utc(2024, 3, 31, 0, 30, 0),
          utc(2024, 3, 31, 1, 0, 0));
  next_is("cron 0 3 * * *", utc(2024, 3, 30, 12, 0, 0),
          utc(2024, 3, 31, 1, 0, 0));
  /* 02:30 happens twice on 2024-10-27: it runs at the first (00:30 UTC)
   * only; after that run, also from inside the second 02:xx hour, the
   * next is the 28th (CET). */
  next_is("cron 30 2 * * *", utc(2024, 10, 26, 12, 0, 0),
          utc(2024, 10, 27, 0, 30, 0));
  next_is("cron 30 2 * * *", utc(2024, 10, 27, 0, 30, 0),
          utc(2024, 10, 28, 1, 30, 0));
  next_is("cron 30 2 * * *", utc(2024, 10, 27, 1, 10, 0),
          utc(2024, 10, 28, 1, 30, 0));
  /* Hourly: 02:00 CEST (00:00 UTC), then 03:00 CET (02:00 UTC); the
   * repeated 02:00 (01:00 UTC) does not run again. */
  next_is("@hourly", utc(2024, 10, 26, 23, 30, 0), utc(2024, 10, 27, 0, 0, 0));
  next_is("@hourly", utc(2024, 10, 27, 0, 0, 0), utc(2024, 10, 27, 2, 0, 0));
  next_is("@hourly", utc(2024, 10, 27, 1, 0, 0), utc(2024, 10, 27, 2, 0, 0));
  /* Daily at midnight: local midnight, whatever the offset. */
  next_is("@daily", utc(2024, 7, 1, 12, 0, 0), utc(2024, 7, 1, 22, 0, 0));
  next_is("@daily", utc(2024, 12, 1, 12, 0, 0), utc(2024, 12, 1, 23, 0, 0));
  /* Intervals are plain seconds: a DST change does not move them. */
  lsync_sched *s = sched("every 1h");
  int64_t t = utc(2024, 10, 27, 0, 30, 0);
  CHECK(s && lsync_sched_next(s, t, t + 60) == t + 3600);
  lsync_sched_free(s);
}

static void test_rates(void) {
  int64_t up = 0, down = 0;
  CHECK(lsync_rate_parse("40M", &up, &down) == 0 && up == 40 << 20 &&
        down == 40 << 20);
  CHECK(lsync_rate_parse("1.5M", &up, &down) == 0 && up == 1572864);
  CHECK(lsync_rate_parse("100", &up, &down) == 0 && up == 100 &&
        down == 100); /* bytes, as the plan reads a bare number */
  CHECK(lsync_rate_parse("10B", &up, NULL) == 0 && up == 10);
  CHECK(lsync_rate_parse("2GiB", &up, NULL) == 0 && up == 2LL << 30);
  CHECK(lsync_rate_parse("1P", &up, NULL) == 0 && up == 1LL << 50);
  CHECK(lsync_rate_parse("off", &up, &down) == 0 && up == -1 && down == -1);
  CHECK(lsync_rate_parse("OFF", &up, &down) == 0 && up == -1);
  CHECK(lsync_rate_parse("512k:10M", &up, &down) == 0 && up == 512 << 10 &&
        down == 10 << 20);
  CHECK(lsync_rate_parse("10M:off", &up, &down) == 0 && up == 10 << 20 &&
        down == -1);
  CHECK(lsync_rate_parse("off:1K", &up, &down) == 0 && up == -1 &&
        down == 1024);
  const char *bad[] = {"",         "0",   "0.5", "-1",  "1M:", ":1M",
                       "1M:2M:3M", "12Q", " 1M", "1M ", "of",  "offf"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    int rc = lsync_rate_parse(bad[i], &up, &down);
    CHECK(rc == LSYNC_EINVAL);
    if (rc != LSYNC_EINVAL)
      fprintf(stderr, "rate \"%s\": %d\n", bad[i], rc);
  }
  CHECK(lsync_rate_parse("99999999P", &up, &down) == LSYNC_ERANGE);
  CHECK(lsync_rate_parse("9000P", &up, &down) == LSYNC_ERANGE);
  CHECK(lsync_rate_parse(NULL, &up, &down) == LSYNC_EINVAL);
}

static lsync_timetable *table(const char *const *e, size_t n) {
  lsync_timetable *t = NULL;
  int rc = lsync_timetable_parse(e, n, &t, err, sizeof err);
  CHECK(rc == 0 && t);
  if (rc)
    fprintf(stderr, "timetable: %s\n", err);
  return t;
}

static lsync_timetable *table1(const char *s) {
  return table(&s, 1);
}

/* Rates and next change at when. */
static void at_is(const lsync_timetable *t, int64_t when, int64_t up,
                  int64_t down, int64_t next) {
  int64_t u = 0, d = 0, nx = 0;
  int rc = t ? lsync_timetable_at(t, when, &u, &d, &nx) : -1;
  CHECK(rc == 0 && u == up && d == down && nx == next);
  if (rc || u != up || d != down || nx != next)
    fprintf(stderr, "at %lld: %lld %lld next %lld, want %lld %lld %lld\n",
            (long long)when, (long long)u, (long long)d, (long long)nx,
            (long long)up, (long long)down, (long long)next);
}

static void table_err(const char *s, const char *want) {
  lsync_timetable *t = (lsync_timetable *)&t;
  int rc = lsync_timetable_parse(&s, 1, &t, err, sizeof err);
  CHECK(rc == LSYNC_EINVAL && !t && !strcmp(err, want));
  if (rc != LSYNC_EINVAL || strcmp(err, want))
    fprintf(stderr, "\"%s\": rc %d, \"%s\"\n  want \"%s\"\n", s, rc, err, want);
}

#define K 1024LL
#define M (1024LL * 1024)

static void test_timetable_days(void) {
  set_tz("UTC");
  /* rclone's example as one string and as five: the same answers.
   * 2024-10-07 is a Monday. */
  const char *five[] = {"08:00,512k", "12:00,10M", "13:00,512k", "18:00,30M",
                        "23:00,off"};
  lsync_timetable *tt[2] = {
      table1("08:00,512k 12:00,10M  13:00,512k\t18:00,30M 23:00,off"),
      table(five, 5)};
  for (int i = 0; i < 2; i++) {
    lsync_timetable *t = tt[i];
    at_is(t, utc(2024, 10, 7, 9, 0, 0), 512 * K, 512 * K,
          utc(2024, 10, 7, 12, 0, 0));
    at_is(t, utc(2024, 10, 7, 12, 0, 0), 10 * M, 10 * M,
          utc(2024, 10, 7, 13, 0, 0));
    at_is(t, utc(2024, 10, 7, 7, 59, 59), -1, -1, utc(2024, 10, 7, 8, 0, 0));
    at_is(t, utc(2024, 10, 7, 23, 30, 0), -1, -1, utc(2024, 10, 8, 8, 0, 0));
    at_is(t, utc(2024, 10, 7, 18, 0, 0), 30 * M, 30 * M,
          utc(2024, 10, 7, 23, 0, 0));
    lsync_timetable_free(t);
  }

  /* Only a Saturday entry: in force all week, never changes. */
  lsync_timetable *t = table1("Sat-00:00,1M");
  at_is(t, utc(2024, 10, 7, 9, 0, 0), M, M, -1);
  at_is(t, utc(2024, 10, 5, 0, 0, 0), M, M, -1);
  lsync_timetable_free(t);

  /* Wrapping back over the week's start (Sunday 00:00): Sunday and
   * Monday morning are still under Saturday's entry. */
  t = table1("Mon-08:00,1M Sat-20:00,2M");
  at_is(t, utc(2024, 10, 6, 10, 0, 0), 2 * M, 2 * M,
        utc(2024, 10, 7, 8, 0, 0)); /* Sunday */
  at_is(t, utc(2024, 10, 7, 7, 0, 0), 2 * M, 2 * M,
        utc(2024, 10, 7, 8, 0, 0)); /* Monday */
  at_is(t, utc(2024, 10, 7, 8, 0, 0), M, M, utc(2024, 10, 12, 20, 0, 0));
  at_is(t, utc(2024, 10, 12, 20, 0, 0), 2 * M, 2 * M,
        utc(2024, 10, 14, 8, 0, 0));
  lsync_timetable_free(t);

  /* Sunday to Monday: an every-day entry and a Sunday one, full names
   * and any case. */
  t = table1("sunday-22:00,off MON-06:00,1m 23:00,5M");
  at_is(t, utc(2024, 10, 6, 22, 30, 0), -1, -1, utc(2024, 10, 6, 23, 0, 0));
  at_is(t, utc(2024, 10, 6, 23, 30, 0), 5 * M, 5 * M,
        utc(2024, 10, 7, 6, 0, 0));
  at_is(t, utc(2024, 10, 7, 6, 0, 0), M, M, utc(2024, 10, 7, 23, 0, 0));
  lsync_timetable_free(t);

  /* Up and down apart; a change of one side is a change. */
  t = table1("08:00,512k:10M 20:00,512k:off");
  at_is(t, utc(2024, 10, 7, 9, 0, 0), 512 * K, 10 * M,
        utc(2024, 10, 7, 20, 0, 0));
  at_is(t, utc(2024, 10, 7, 21, 0, 0), 512 * K, -1, utc(2024, 10, 8, 8, 0, 0));
  lsync_timetable_free(t);

  /* Entries that repeat the rate in force are no change. */
  t = table1("08:00,1M 12:00,1M 18:00,2M");
  at_is(t, utc(2024, 10, 7, 9, 0, 0), M, M, utc(2024, 10, 7, 18, 0, 0));
  lsync_timetable_free(t);

  /* The same time on the same day: the entry listed last wins. */
  t = table1("Sat-08:00,1M 08:00,2M");
  at_is(t, utc(2024, 10, 5, 9, 0, 0), 2 * M, 2 * M, -1);
  lsync_timetable_free(t);
  t = table1("08:00,2M Sat-08:00,1M");
  at_is(t, utc(2024, 10, 5, 9, 0, 0), M, M, utc(2024, 10, 6, 8, 0, 0));
  at_is(t, utc(2024, 10, 4, 9, 0, 0), 2 * M, 2 * M, utc(2024, 10, 5, 8, 0, 0));
  lsync_timetable_free(t);

  /* A plain rate, as rclone takes it: all the time. */
  t = table1(" 10M ");
  at_is(t, utc(2024, 10, 7, 9, 0, 0), 10 * M, 10 * M, -1);
  lsync_timetable_free(t);
  t = table1("off");
  at_is(t, utc(2024, 10, 7, 9, 0, 0), -1, -1, -1);
  lsync_timetable_free(t);
  t = table1("1M:off");
  at_is(t, 0, M, -1, -1);
  lsync_timetable_free(t);
}

static void test_timetable_errors(void) {
  const char *forms = "expected off, a number with an optional unit B, K, "
                      "M, G, T or P, or UP:DOWN";
  char want[300];
  table_err("25:00,1M", "timetable entry \"25:00,1M\": expected a time "
                        "HH:MM from 00:00 to 23:59, got \"25:00\"");
  table_err("08:00,1M Mon-8:00,1M",
            "timetable entry \"Mon-8:00,1M\": "
            "expected a time HH:MM from 00:00 to 23:59, got \"8:00\"");
  table_err("Foo-08:00,1M",
            "timetable entry \"Foo-08:00,1M\": unknown day "
            "\"Foo\" (expected Mon, Tue, Wed, Thu, Fri, Sat or Sun)");
  snprintf(want, sizeof want,
           "timetable entry \"08:00,12Q\": bad rate "
           "\"12Q\" (%s)",
           forms);
  table_err("08:00,12Q", want);
  snprintf(want, sizeof want,
           "timetable entry \"08:00,0\": bad rate "
           "\"0\" (%s)",
           forms);
  table_err("08:00,0 09:00,1M", want);
  table_err("08:00,1M,2M", "timetable entry \"08:00,1M,2M\": expected "
                           "[Day-]HH:MM,RATE");
  table_err("08:00,1M 09:00", "timetable entry \"09:00\": expected "
                              "[Day-]HH:MM,RATE");
  snprintf(want, sizeof want, "rate \"fast\": %s", forms);
  table_err("fast", want);
  table_err("  ", "timetable: no entries");
  lsync_timetable *t = NULL;
  CHECK(lsync_timetable_parse(NULL, 0, &t, err, sizeof err) == LSYNC_EINVAL &&
        !strcmp(err, "timetable: no entries"));
  const char *holes[] = {"08:00,1M", NULL};
  CHECK(lsync_timetable_parse(holes, 2, &t, err, sizeof err) == LSYNC_EINVAL &&
        !strcmp(err, "timetable: entry 2 is missing"));
}

/* Entries at times a DST change skips or repeats, Europe/Berlin. */
static void test_timetable_dst(void) {
  set_tz("Europe/Berlin");
  lsync_timetable *t = table1("02:30,1M 08:00,2M");
  /* Spring: 02:30 never shows; the clock jumps from 02:00 CET to 03:00
   * CEST (01:00 UTC), past it: that is the change. */
  at_is(t, utc(2024, 3, 31, 0, 0, 0), 2 * M, 2 * M, utc(2024, 3, 31, 1, 0, 0));
  at_is(t, utc(2024, 3, 31, 1, 0, 0), M, M, utc(2024, 3, 31, 6, 0, 0));
  /* Autumn: 02:30 CEST switches to 1M; at 03:00 CEST the clock goes back
   * to 02:00 CET (01:00 UTC), before 02:30, so 2M again until 02:30 CET
   * (01:30 UTC). */
  at_is(t, utc(2024, 10, 26, 23, 0, 0), 2 * M, 2 * M,
        utc(2024, 10, 27, 0, 30, 0));
  at_is(t, utc(2024, 10, 27, 0, 45, 0), M, M, utc(2024, 10, 27, 1, 0, 0));
  at_is(t, utc(2024, 10, 27, 1, 0, 0), 2 * M, 2 * M,
        utc(2024, 10, 27, 1, 30, 0));
  at_is(t, utc(2024, 10, 27, 1, 30, 0), M, M, utc(2024, 10, 27, 7, 0, 0));
  lsync_timetable_free(t);
  /* Local times throughout: 08:00 in summer and in winter. */
  t = table1("08:00,1M 20:00,off");
  at_is(t, utc(2024, 7, 1, 5, 0, 0), -1, -1, utc(2024, 7, 1, 6, 0, 0));
  at_is(t, utc(2024, 12, 1, 5, 0, 0), -1, -1, utc(2024, 12, 1, 7, 0, 0));
  lsync_timetable_free(t);
}

int main(void) {
  test_intervals();
  test_cron_parse();
  test_cron_utc();
  test_cron_dst();
  test_rates();
  test_timetable_days();
  test_timetable_errors();
  test_timetable_dst();
  printf("sched: %d passed, %d failed\n", passed, failed);
  return failed != 0;
}
