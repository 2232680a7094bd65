/*
 * Rates and bandwidth timetables (sched.h), as rclone's --bwlimit.
 *
 * A timetable is a sorted list of the minutes of the week (Sunday 00:00
 * is 0) at which a rate starts.  The rate at an instant comes from its
 * local time; the next change walks forward over entry times and over
 * the instants where the local clock jumps (a DST change can move it into
 * another entry's span), stopping at the first that brings other rates.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "calendar.h"

/* One side of a rate: "off" or a size of at least one byte. */
static int rate_one(const char *s, size_t n, int64_t *out) {
  char buf[64];
  uint64_t v;
  if (n == 3 && !strncasecmp(s, "off", 3)) {
    *out = -1;
    return 0;
  }
  if (n == 0 || n >= sizeof buf)
    return LSYNC_EINVAL;
  memcpy(buf, s, n);
  buf[n] = '\0';
  int rc = lsync_parse_size(buf, &v);
  if (rc < 0)
    return rc;
  if (v < 1)
    return LSYNC_EINVAL;
  if (v > (uint64_t)INT64_MAX)
    return LSYNC_ERANGE;
  *out = (int64_t)v;
  return 0;
}

static int rate_span(const char *s, size_t n, int64_t *up, int64_t *down) {
  const char *colon = memchr(s, ':', n);
  int64_t u, d;
  int rc = rate_one(s, colon ? (size_t)(colon - s) : n, &u);
  if (rc < 0)
    return rc;
  d = u;
  if (colon && (rc = rate_one(colon + 1, n - (size_t)(colon + 1 - s), &d)) < 0)
    return rc;
  if (up)
    *up = u;
  if (down)
    *down = d;
  return 0;
}

int lsync_rate_parse(const char *s, int64_t *up, int64_t *down) {
  return s ? rate_span(s, strlen(s), up, down) : LSYNC_EINVAL;
}

/* ---- Timetables ---- */

typedef struct slot {
  int pos;    /* minute of the week, Sunday 00:00 = 0 */
  size_t seq; /* order of listing, while parsing */
  int64_t up, down;
} slot;

struct lsync_timetable {
  size_t n;   /* slots, by pos, one per pos */
  int varies; /* not all slots have the same rates */
  slot s[];
};

static const char *const day_long[] = {"sunday",    "monday",   "tuesday",
                                       "wednesday", "thursday", "friday",
                                       "saturday"};

/* Day 0-6 (Sunday 0) from "Mon" or "monday" in any case, or -1. */
static int day_of(const char *s, size_t n) {
  for (int i = 0; i < 7; i++)
    if ((n == 3 || n == strlen(day_long[i])) && !strncasecmp(s, day_long[i], n))
      return i;
  return -1;
}

/* Minutes since midnight from exactly "HH:MM", or -1. */
static int minute_of(const char *s, size_t n) {
  if (n != 5 || s[2] != ':')
    return -1;
  for (int i = 0; i < 5; i++)
    if (i != 2 && !isdigit((unsigned char)s[i]))
      return -1;
  int h = (s[0] - '0') * 10 + s[1] - '0', m = (s[3] - '0') * 10 + s[4] - '0';
  return h < 24 && m < 60 ? h * 60 + m : -1;
}

#define RATE_FORMS                                                             \
  "expected off, a number with an optional unit B, K, M, G, T or P, or "       \
  "UP:DOWN"

/* One "[Day-]HH:MM,RATE" entry: its day (-1: every day), minute and
 * rates. */
static int parse_entry(const char *tok, size_t n, int *day, int *minute,
                       slot *r, char *err, size_t errlen) {
  const char *comma = memchr(tok, ',', n), *end = tok + n;
  if (!comma || memchr(comma + 1, ',', (size_t)(end - comma - 1)))
    return lsync__errbuf(err, errlen,
                         "timetable entry \"%.*s\": expected "
                         "[Day-]HH:MM,RATE",
                         (int)n, tok);
  const char *dash = memchr(tok, '-', (size_t)(comma - tok)), *hhmm = tok;
  *day = -1;
  if (dash) {
    *day = day_of(tok, (size_t)(dash - tok));
    if (*day < 0)
      return lsync__errbuf(
          err, errlen,
          "timetable entry \"%.*s\": unknown day "
          "\"%.*s\" (expected Mon, Tue, Wed, Thu, Fri, Sat or Sun)",
          (int)n, tok, (int)(dash - tok), tok);
    hhmm = dash + 1;
  }
  *minute = minute_of(hhmm, (size_t)(comma - hhmm));
  if (*minute < 0)
    return lsync__errbuf(err, errlen,
                         "timetable entry \"%.*s\": expected a time "
                         "HH:MM from 00:00 to 23:59, got \"%.*s\"",
                         (int)n, tok, (int)(comma - hhmm), hhmm);
  if (rate_span(comma + 1, (size_t)(end - comma - 1), &r->up, &r->down) < 0)
    return lsync__errbuf(err, errlen,
                         "timetable entry \"%.*s\": bad rate \"%.*s\" "
                         "(" RATE_FORMS ")",
                         (int)n, tok, (int)(end - comma - 1), comma + 1);
  return 0;
}

/* The next blank-separated word of s from *at: its start, length in *n,
 * or NULL at the end. */
static const char *next_word(const char *s, size_t *at, size_t *n) {
  size_t i = *at;
  while (s[i] && isspace((unsigned char)s[i]))
    i++;
  if (!s[i])
    return NULL;
  size_t j = i;
  while (s[j] && !isspace((unsigned char)s[j]))
    j++;
  *at = j;
  *n = j - i;
  return s + i;
}

static int slot_cmp(const void *a, const void *b) {
  const slot *x = a, *y = b;
  if (x->pos != y->pos)
    return x->pos < y->pos ? -1 : 1;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Sort the slots by pos, keep the one listed last at each pos. */
static void settle(lsync_timetable *t) {
  qsort(t->s, t->n, sizeof *t->s, slot_cmp);
  size_t k = 0;
  for (size_t i = 0; i < t->n; i++) {
    if (k && t->s[k - 1].pos == t->s[i].pos)
      k--;
    t->s[k++] = t->s[i];
  }
  t->n = k;
  for (size_t i = 1; i < k; i++)
    if (t->s[i].up != t->s[0].up || t->s[i].down != t->s[0].down)
      t->varies = 1;
}

/* Parse every word of the entries into t's slots (room for 7 a word). */
static int parse_words(lsync_timetable *t, const char *const *entries, size_t n,
                       size_t words, char *err, size_t errlen) {
  for (size_t i = 0; i < n; i++) {
    size_t at = 0, len;
    for (const char *w; (w = next_word(entries[i], &at, &len));) {
      int day = -1, minute = 0;
      slot r = {0, 0, 0, 0};
      if (words == 1 && !memchr(w, ',', len)) {
        /* A plain rate, as rclone takes it: all the time. */
        if (rate_span(w, len, &r.up, &r.down) < 0)
          return lsync__errbuf(err, errlen, "rate \"%.*s\": " RATE_FORMS,
                               (int)len, w);
        t->s[t->n++] = (slot){0, 0, r.up, r.down};
        continue;
      }
      if (parse_entry(w, len, &day, &minute, &r, err, errlen) < 0)
        return LSYNC_EINVAL;
      for (int d = day < 0 ? 0 : day; d <= (day < 0 ? 6 : day); d++)
        t->s[t->n] = (slot){d * 1440 + minute, t->n, r.up, r.down}, t->n++;
    }
  }
  return 0;
}

int lsync_timetable_parse(const char *const *entries, size_t n,
                          lsync_timetable **out, char *err, size_t errlen) {
  if (!out || (n && !entries))
    return LSYNC_EINVAL;
  *out = NULL;
  if (err && errlen)
    *err = '\0';
  size_t words = 0;
  for (size_t i = 0; i < n; i++) {
    size_t at = 0, len;
    if (!entries[i])
      return lsync__errbuf(err, errlen, "timetable: entry %zu is missing",
                           i + 1);
    while (next_word(entries[i], &at, &len))
      words++;
  }
  if (!words)
    return lsync__errbuf(err, errlen, "timetable: no entries");
  if (words > SIZE_MAX / 8 / sizeof(slot))
    return LSYNC_ENOMEM;
  lsync_timetable *t = calloc(1, sizeof *t + 7 * words * sizeof(slot));
  if (!t)
    return LSYNC_ENOMEM;
  int rc = parse_words(t, entries, n, words, err, errlen);
  if (rc < 0) {
    free(t);
    return rc;
  }
  settle(t);
  *out = t;
  return 0;
}

void lsync_timetable_free(lsync_timetable *t) {
  free(t);
}

/* The minute of the week of instant t's local time, or -1. */
static int week_pos(int64_t t, lsync__wall *w) {
  int sec;
  if (lsync__local_wall(t, w, &sec) < 0)
    return -1;
  return lsync__weekday(lsync__days_from_civil(w->y, w->mon, w->d)) * 1440 +
         w->h * 60 + w->mi;
}

/* The slot in force at minute pos: the last at or before it, else the
 * week's last (from the week before). */
static const slot *slot_at(const lsync_timetable *t, int pos) {
  const slot *r = &t->s[t->n - 1];
  for (size_t i = 0; i < t->n && t->s[i].pos <= pos; i++)
    r = &t->s[i];
  return r;
}

/* The first instant after t whose local time is a slot's, or -1.  Wall
 * times that a DST gap skips are passed over: offset_change() finds the
 * moment the clock jumps past them. */
static int64_t next_slot_time(const lsync_timetable *t, int64_t after) {
  lsync__wall w;
  int pos = week_pos(after, &w);
  if (pos < 0)
    return -1;
  int64_t today = lsync__days_from_civil(w.y, w.mon, w.d);
  for (int k = 0; k <= 7; k++) {
    int day = (pos / 1440 + k) % 7;
    for (size_t i = 0; i < t->n; i++) {
      int p = t->s[i].pos;
      if (p / 1440 != day || (k == 0 && p % 1440 <= pos % 1440))
        continue;
      lsync__wall c;
      int64_t at[3];
      lsync__civil_from_days(today + k, &c);
      c.h = p % 1440 / 60, c.mi = p % 60;
      for (int j = 0, n = lsync__wall_instants(&c, at); j < n; j++)
        if (at[j] > after)
          return at[j];
    }
  }
  return -1;
}

/* The first instant in (a, b] whose UTC offset differs from a's, or -1:
 * where the local clock jumps. */
static int64_t offset_change(int64_t a, int64_t b) {
  int64_t oa, ob, o;
  if (b <= a || lsync__utc_offset(a, &oa) < 0 ||
      lsync__utc_offset(b, &ob) < 0 || oa == ob)
    return -1;
  while (b - a > 1) {
    int64_t m = a + (b - a) / 2;
    if (lsync__utc_offset(m, &o) < 0)
      return -1;
    if (o == oa)
      a = m;
    else
      b = m;
  }
  return b;
}

/* The first instant after when at which the rates differ from cur's:
 * the next slot time or clock jump, stepping over those that leave the
 * rates as they are; -1 if none within eight days. */
static int64_t next_change(const lsync_timetable *t, int64_t when,
                           const slot *cur) {
  int64_t at = when, limit = lsync__sat_add(when, 8 * LSYNC__DAY);
  while (t->varies && at < limit) {
    int64_t c = next_slot_time(t, at);
    int64_t jump = offset_change(at, c >= 0 && c < limit ? c : limit);
    if (jump >= 0 && (c < 0 || jump < c))
      c = jump;
    lsync__wall w;
    int pos = c < 0 ? -1 : week_pos(c, &w);
    if (pos < 0)
      return -1;
    const slot *s = slot_at(t, pos);
    if (s->up != cur->up || s->down != cur->down)
      return c;
    at = c;
  }
  return -1;
}

int lsync_timetable_at(const lsync_timetable *t, int64_t when, int64_t *up,
                       int64_t *down, int64_t *next) {
  lsync__wall w;
  tzset();
  int pos = week_pos(when, &w);
  if (pos < 0)
    return LSYNC_ERANGE;
  const slot *s = slot_at(t, pos);
  if (up)
    *up = s->up;
  if (down)
    *down = s->down;
  if (next)
    *next = next_change(t, when, s);
  return 0;
}
