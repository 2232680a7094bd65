/*
 * Local wall-clock times, shared by sched.c and timetable.c: calendar
 * arithmetic (proleptic Gregorian, no time zone) and the conversions
 * between instants and local times that DST changes make one-to-many.
 * Also the error-buffer helper of their parse calls.  Internal.
 */
#ifndef LIBSYNC_CALENDAR_H
#define LIBSYNC_CALENDAR_H

#include <stdint.h>

#include "internal.h"

#define LSYNC__DAY 86400

/* A local date and time to the minute (seconds 0). */
typedef struct lsync__wall {
  int y, mon, d, h, mi; /* mon 1-12, d 1-31 */
} lsync__wall;

/* Write a one-line message into the caller's buffer (may be NULL or
 * errlen 0) and return LSYNC_EINVAL. */
int lsync__errbuf(char *err, size_t errlen, const char *fmt, ...)
    LSYNC__PRINTF(3, 4);

/* a + b, held at INT64_MIN or INT64_MAX instead of overflowing. */
int64_t lsync__sat_add(int64_t a, int64_t b);

/* Days since 1970-01-01 of a civil date, and back (sets y, mon, d). */
int64_t lsync__days_from_civil(int64_t y, int m, int d);
void lsync__civil_from_days(int64_t days, lsync__wall *w);
int lsync__days_in_month(int y, int m);
/* 0 = Sunday, as tm_wday. */
int lsync__weekday(int64_t days);

/* The wall time read as if it were UTC. */
int64_t lsync__wall_as_utc(const lsync__wall *w);

/* The local wall time of instant t and its seconds; -1 if out of range.
 * Callers run tzset() first (localtime_r need not). */
int lsync__local_wall(int64_t t, lsync__wall *w, int *sec);

/* Local time minus UTC at instant t, in seconds; -1 if out of range. */
int lsync__utc_offset(int64_t t, int64_t *off);

/* Every instant whose local time is w:00, ascending, in out[]; returns
 * how many: 0 in a DST gap, 2 in a repeated hour, else 1. */
int lsync__wall_instants(const lsync__wall *w, int64_t out[3]);

#endif
