/*
 * Schedules ("every 6h", "cron 0 2 * * *") and bandwidth timetables
 * ("08:00,512k 18:00,30M"): parsing and "when is next", nothing else.
 *
 * Pure computation on the caller's clock (seconds since the epoch), so the
 * runner decides policy (arming timers, starting and stopping jobs) and
 * tests pass any time they like.  Calendar times are LOCAL times: each
 * call that turns an instant into a wall-clock time calls tzset() first,
 * so it follows TZ and /etc/localtime as they are at that moment.  Not
 * thread-safe where tzset is not (setenv("TZ") in another thread).
 *
 * Parse errors: there is no handle yet to keep a message on, so the
 * parse calls write one line into the caller's buffer (as curl's error
 * buffer), naming the bad part and why, e.g.
 *   cron: hour field "25": value out of range 0-23
 * without any file:line (the plan checker adds its own).  The buffer may
 * be NULL or errlen 0 when the caller only wants the code.
 *
 * Ownership: a parse call that succeeds gives the caller a handle that it
 * frees with the matching _free (NULL is fine); a parse that fails leaves
 * *out NULL.  Handles are immutable, so const calls on one handle may run
 * in several threads at once (given a fixed TZ).
 */
#ifndef LIBSYNC_SCHED_H
#define LIBSYNC_SCHED_H

#include <stddef.h>
#include <stdint.h>

#include "api.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lsync_sched lsync_sched;

/*
 * Parse a schedule.  Accepted forms (surrounding blanks ignored):
 *   "every 6h", "every 90s", "every 1h30m"   an interval
 *   "1d2h30m", "45m", "10s"                  the same without "every"
 *     (units d, h, m, s, each at most once and in that order, as
 *     folder_sync writes them; a whole number of seconds, more than 0;
 *     a unit is required: "every 90" is an error)
 *   "cron M H DOM MON DOW"                   standard five-field cron:
 *     '*', numbers, ranges a-b, lists a,b, steps *\/n and a-b/n, month
 *     names jan-dec and day names sun-sat in any case,
 *     DOW 0 and 7 both Sunday.  When both DOM and DOW are restricted a
 *     day matches if EITHER matches; a field that starts with '*'
 *     ("*", "*\/2") counts as unrestricted, as in Vixie cron.
 *   "@hourly", "@daily" ("@midnight"), "@weekly", "@monthly", "@yearly"
 *     ("@annually"), also after "cron ".
 * 0, or LSYNC_EINVAL with a message in err; LSYNC_ENOMEM.
 */
LSYNC_API int lsync_sched_parse(const char *spec, lsync_sched **out, char *err,
                                size_t errlen);

LSYNC_API void lsync_sched_free(lsync_sched *s);

/*
 * The start of the next run, in seconds since the epoch, given when the
 * last run started (last_start; INT64_MIN when it never ran, or any time
 * an interval or more before now) and the time now (normally when the
 * last run ended).
 *
 * Intervals: last_start + interval, but `now` when that is not after now
 * (the run took longer than the interval: runs never overlap, the next
 * one starts at once, missed slots are not queued up), and at most
 * now + interval (a clock set back does not stall the schedule).
 *
 * Cron: the start of the first matching local minute strictly after now;
 * last_start is not used.  A local time that does not exist (skipped by a
 * DST change) never runs; one that occurs twice runs only at its first
 * occurrence.  -1 when nothing matches within about five years
 * ("cron 0 0 30 2 *").
 */
LSYNC_API int64_t lsync_sched_next(const lsync_sched *s, int64_t last_start,
                                   int64_t now);

/* The schedule in a normal form, owned by s: "every 1h30m" (units from d
 * down to s, zeros left out: "every 90s" reads "every 1m30s"), or "cron"
 * and the five fields single-spaced and in lower case ("@daily" reads
 * "cron 0 0 * * *"). */
LSYNC_API const char *lsync_sched_describe(const lsync_sched *s);

/*
 * Rates, as in rclone's --bwlimit: "off" (unlimited: -1), or a number
 * with an optional unit B, K, M, G, T or P (binary: K = 1024 bytes;
 * KiB/KB and the like also read; decimals allowed, "1.5M"), meaning
 * bytes per second; "UP:DOWN" gives the upload and the download rate
 * apart ("512k:10M", "10M:off"), a single value is both.
 *
 * A number WITHOUT a unit is bytes per second, as the plan's bwlimit
 * ("40M" or 41943040) always read it and lsync_parse_size reads sizes;
 * note that rclone and rsync read a bare number as KiB/s.  A rate must
 * come to at least 1 byte per second: write "off", not 0, for no limit.
 * 0, LSYNC_EINVAL or LSYNC_ERANGE (more than INT64_MAX).
 */
LSYNC_API int lsync_rate_parse(const char *s, int64_t *up, int64_t *down);

typedef struct lsync_timetable lsync_timetable;

/*
 * Parse a bandwidth timetable from n strings, each holding one or more
 * blank-separated entries:
 *   "HH:MM,RATE"       from HH:MM every day
 *   "Day-HH:MM,RATE"   from HH:MM on that day only (Mon, Tue, ... Sun or
 *                      the full name, any case)
 * e.g. the one string "08:00,512k 12:00,10M 13:00,512k 18:00,30M 23:00,off"
 * or the same as five strings.  The rate in force at a time is the one of
 * the latest entry at or before it going back through the week, wrapping
 * to the previous week's last entry; of entries at the same time of the
 * same day, the one listed last wins (as in rclone).  As in rclone, input
 * that is a single RATE without a time ("10M") is that rate all the time.
 * 0, or LSYNC_EINVAL with a message in err; LSYNC_ENOMEM.
 */
LSYNC_API int lsync_timetable_parse(const char *const *entries, size_t n,
                                    lsync_timetable **out, char *err,
                                    size_t errlen);

LSYNC_API void lsync_timetable_free(lsync_timetable *t);

/*
 * The upload and download rates in force at `when` (local time), in
 * bytes per second, -1 meaning off (unlimited), and in *next_change the
 * first instant after `when` at which either rate changes (entries that
 * repeat the rates in force are passed over; a DST change that moves
 * the local time into another entry counts), or -1 when the rates never
 * change.  Any out pointer may be NULL.  0, or LSYNC_ERANGE when `when`
 * is beyond what the C library's localtime can convert.
 */
LSYNC_API int lsync_timetable_at(const lsync_timetable *t, int64_t when,
                                 int64_t *up, int64_t *down,
                                 int64_t *next_change);

#ifdef __cplusplus
}
#endif
#endif
