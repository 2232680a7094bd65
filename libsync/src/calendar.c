/*
 * Local wall-clock times for schedules and timetables (calendar.h).
 *
 * A local time is not a simple function of the epoch: a DST change skips
 * an hour (02:30 does not exist) or repeats one (02:30 happens twice).
 * So the searches in sched.c and timetable.c run over calendar fields,
 * which cost nothing to step through, and turn each candidate into
 * instants with lsync__wall_instants(): every instant whose local time it
 * is, none in a gap, two in a repeated hour.  The offsets are read back
 * from localtime_r rather than asked of mktime, whose handling of
 * tm_isdst for ambiguous times varies between C libraries.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "calendar.h"

int lsync__errbuf(char *err, size_t errlen, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return LSYNC_EINVAL;
}

int64_t lsync__sat_add(int64_t a, int64_t b) {
  if (b > 0 && a > INT64_MAX - b)
    return INT64_MAX;
  if (b < 0 && a < INT64_MIN - b)
    return INT64_MIN;
  return a + b;
}

/* Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm). */
int64_t lsync__days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

void lsync__civil_from_days(int64_t z, lsync__wall *w) {
  z += 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  w->d = (int)(doy - (153 * mp + 2) / 5 + 1);
  w->mon = (int)(mp < 10 ? mp + 3 : mp - 9);
  w->y = (int)(yoe + era * 400 + (w->mon <= 2));
}

int lsync__days_in_month(int y, int m) {
  static const int len[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : len[m - 1];
}

/* 0 = Sunday, as tm_wday; 1970-01-01 was a Thursday. */
int lsync__weekday(int64_t days) {
  int r = (int)((days + 4) % 7);
  return r < 0 ? r + 7 : r;
}

/* The wall time read as if it were UTC. */
int64_t lsync__wall_as_utc(const lsync__wall *w) {
  return lsync__days_from_civil(w->y, w->mon, w->d) * LSYNC__DAY + w->h * 3600 +
         w->mi * 60;
}

/* The local wall time of instant t, and its seconds; -1 if out of range. */
int lsync__local_wall(int64_t t, lsync__wall *w, int *sec) {
  time_t tt = (time_t)t;
  struct tm tm;
  if ((int64_t)tt != t || !localtime_r(&tt, &tm))
    return -1;
  *w = (lsync__wall){tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min};
  *sec = tm.tm_sec;
  return 0;
}

/* Local time minus UTC at instant t, in seconds. */
int lsync__utc_offset(int64_t t, int64_t *off) {
  lsync__wall w;
  int sec;
  if (lsync__local_wall(t, &w, &sec) < 0)
    return -1;
  *off = lsync__wall_as_utc(&w) + sec - t;
  return 0;
}

static int wall_eq(const lsync__wall *a, const lsync__wall *b) {
  return a->y == b->y && a->mon == b->mon && a->d == b->d && a->h == b->h &&
         a->mi == b->mi;
}

/* Every instant whose local time is w:00, ascending, in out[]; returns
 * how many (0 in a DST gap, 2 in a repeated hour).  The true offset is
 * one of those in force within a day either side, and no zone changes
 * its offset twice in two days. */
int lsync__wall_instants(const lsync__wall *w, int64_t out[3]) {
  int64_t u = lsync__wall_as_utc(w);
  int n = 0;
  for (int k = -1; k <= 1; k++) {
    int64_t off, e;
    lsync__wall v;
    int sec;
    if (lsync__utc_offset(u + k * LSYNC__DAY, &off) < 0)
      continue;
    e = u - off;
    if (lsync__local_wall(e, &v, &sec) < 0 || sec != 0 || !wall_eq(&v, w))
      continue;
    int i = n;
    while (i > 0 && out[i - 1] > e)
      i--;
    if (i > 0 && out[i - 1] == e)
      continue;
    memmove(out + i + 1, out + i, (size_t)(n - i) * sizeof *out);
    out[i] = e;
    n++;
  }
  return n;
}
