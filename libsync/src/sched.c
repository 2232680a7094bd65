/*
 * Schedules (sched.h): intervals and cron.
 *
 * A cron search steps through calendar fields from the minute after now,
 * skipping whole months, days and hours whose field does not match, and
 * takes the first candidate whose first instant (calendar.h) is after
 * now.  So a local time skipped by DST never runs, and one repeated runs
 * once; a schedule that never matches costs at most a few thousand day
 * checks.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "calendar.h"

/* How far a cron search looks before it gives up: "about five years"
 * covers every Feb 29 and any real schedule. */
#define CRON_YEARS 5
/* Intervals longer than this are surely typos (and keep sums in range). */
#define MAX_INTERVAL ((int64_t)100 * 366 * LSYNC__DAY)

struct lsync_sched {
  int64_t interval; /* seconds; 0 for cron */
  uint64_t minutes; /* bit m: minute m matches */
  uint32_t hours;   /* bit h */
  uint32_t dom;     /* bit d, 1-31 */
  uint32_t months;  /* bit m, 1-12 */
  uint32_t dow;     /* bit d, 0-6, Sunday 0 */
  int dom_star;     /* the field began with '*': the day rule is AND */
  int dow_star;
  char desc[];
};

typedef struct field {
  const char *name;
  int lo, hi;
  const char *const *names; /* 3-letter names for lo.. in order, or NULL */
  const char *expect;       /* what a bad value should have been */
} field;

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may",
                                          "jun", "jul", "aug", "sep", "oct",
                                          "nov", "dec", NULL};
static const char *const day_names[] = {"sun", "mon", "tue", "wed",
                                        "thu", "fri", "sat", NULL};

static const field fields[5] = {
    {"minute", 0, 59, NULL, "a number"},
    {"hour", 0, 23, NULL, "a number"},
    {"day-of-month", 1, 31, NULL, "a number"},
    {"month", 1, 12, month_names, "a number or jan-dec"},
    {"day-of-week", 0, 7, day_names, "a number or sun-sat"},
};

/* Why an item is bad, for the message. */
typedef struct why {
  char text[80];
} why;

static int bad_item(why *w, const char *fmt, ...) LSYNC__PRINTF(2, 3);

static int bad_item(why *w, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(w->text, sizeof w->text, fmt, ap);
  va_end(ap);
  return -1;
}

/* A decimal number at *p, advanced past it, held at 100000 or so (more
 * is out of every range anyway); -1 when there is no digit. */
static long small_number(const char **p) {
  const char *s = *p;
  long n = 0;
  if (!isdigit((unsigned char)*s))
    return -1;
  while (isdigit((unsigned char)*s))
    n = n < 100000 ? n * 10 + (*s - '0') : n, s++;
  *p = s;
  return n;
}

/* A number or (for month and weekday) a name at *p, advanced past it. */
static int field_value(const field *f, const char **p, int *v, why *w) {
  long n = small_number(p);
  if (n >= 0) {
    if (n < f->lo || n > f->hi)
      return bad_item(w, "value out of range %d-%d", f->lo, f->hi);
    *v = (int)n;
    return 0;
  }
  int i = 0;
  while (f->names && f->names[i] && strncasecmp(*p, f->names[i], 3))
    i++;
  if (!f->names || !f->names[i] || isalpha((unsigned char)(*p)[3]))
    return bad_item(w, "expected %s", f->expect);
  *v = f->lo + i;
  *p += 3;
  return 0;
}

/* One comma-separated item: *, *\/n, a, a-b or a-b/n. */
static int field_item(const field *f, const char **p, uint64_t *mask, why *w) {
  int a = f->lo, b = f->hi, ranged = 1;
  long step = 1;
  if (**p == '*') {
    (*p)++;
  } else {
    if (field_value(f, p, &a, w) < 0)
      return -1;
    b = a, ranged = 0;
    if (**p == '-') {
      (*p)++, ranged = 1;
      if (field_value(f, p, &b, w) < 0)
        return -1;
      if (b < a)
        return bad_item(w, "range %d-%d runs backwards", a, b);
    }
  }
  if (**p == '/') {
    (*p)++;
    if (!ranged)
      return bad_item(w, "a step needs * or a range before it (%d-%d/N)", a,
                      f->hi);
    step = small_number(p);
    if (step < 0)
      return bad_item(w, "expected a number after /");
    if (step < 1 || step > f->hi)
      return bad_item(w, "step out of range 1-%d", f->hi);
  }
  for (int v = a; v <= b; v += (int)step)
    *mask |= (uint64_t)1 << v;
  return 0;
}

static int parse_field(const field *f, const char *text, uint64_t *mask,
                       char *err, size_t errlen) {
  const char *p = text;
  why w;
  *mask = 0;
  for (;;) {
    if (field_item(f, &p, mask, &w) < 0)
      break;
    if (!*p)
      return 0;
    if (*p != ',') {
      bad_item(&w, "unexpected '%c'", *p);
      break;
    }
    p++;
  }
  return lsync__errbuf(err, errlen, "cron: %s field \"%.40s\": %s", f->name,
                       text, w.text);
}

static const struct {
  const char *name, *fields;
} macros[] = {
    {"@hourly", "0 * * * *"},   {"@daily", "0 0 * * *"},
    {"@midnight", "0 0 * * *"}, {"@weekly", "0 0 * * 0"},
    {"@monthly", "0 0 1 * *"},  {"@yearly", "0 0 1 1 *"},
    {"@annually", "0 0 1 1 *"},
};

/* Split text (modified in place) at blanks into at most max words;
 * returns how many there were (possibly more than max). */
static int split_words(char *text, char **word, int max) {
  int n = 0;
  for (char *p = text; *p;) {
    while (isspace((unsigned char)*p))
      *p++ = '\0';
    if (!*p)
      break;
    if (n < max)
      word[n] = p;
    n++;
    while (*p && !isspace((unsigned char)*p))
      p++;
  }
  return n;
}

/* The cron fields (or a macro) in text, which is modified. */
static int parse_cron(char *text, lsync_sched **out, char *err, size_t errlen) {
  if (*text == '@') {
    size_t i = 0, n = sizeof macros / sizeof macros[0];
    while (i < n && strcasecmp(text, macros[i].name))
      i++;
    if (i == n)
      return lsync__errbuf(err, errlen,
                           "cron: unknown \"%.40s\" (expected @hourly, @daily, "
                           "@weekly, @monthly or @yearly)",
                           text);
    char copy[16];
    snprintf(copy, sizeof copy, "%s", macros[i].fields);
    return parse_cron(copy, out, err, errlen);
  }
  char *word[5];
  int n = split_words(text, word, 5);
  if (n != 5)
    return lsync__errbuf(
        err, errlen,
        "cron: expected 5 fields (minute hour day-of-month month "
        "day-of-week), got %d",
        n);
  uint64_t mask[5];
  size_t len = 0;
  for (int i = 0; i < 5; i++) {
    if (parse_field(&fields[i], word[i], &mask[i], err, errlen) < 0)
      return LSYNC_EINVAL;
    len += strlen(word[i]) + 1;
  }
  lsync_sched *s = calloc(1, sizeof *s + len + 5);
  if (!s)
    return LSYNC_ENOMEM;
  s->minutes = mask[0];
  s->hours = (uint32_t)mask[1];
  s->dom = (uint32_t)mask[2];
  s->months = (uint32_t)mask[3];
  /* 7 is Sunday too. */
  s->dow = (uint32_t)((mask[4] | mask[4] >> 7) & 0x7f);
  s->dom_star = word[2][0] == '*';
  s->dow_star = word[4][0] == '*';
  char *d = stpcpy(s->desc, "cron");
  for (int i = 0; i < 5; i++) {
    *d++ = ' ';
    for (const char *c = word[i]; *c; c++)
      *d++ = (char)tolower((unsigned char)*c);
  }
  *d = '\0';
  *out = s;
  return 0;
}

/* "1d2h30m" and the like: digits and the units d, h, m, s only, ending in
 * a unit; lsync_parse_duration checks the order. */
static int parse_interval(const char *text, const char *spec, lsync_sched **out,
                          char *err, size_t errlen) {
  size_t n = strlen(text);
  double secs;
  int ok = n > 0 && isalpha((unsigned char)text[n - 1]) &&
           strspn(text, "0123456789dhms") == n && !strstr(text, "ms") &&
           lsync_parse_duration(text, &secs) == 0;
  if (!ok)
    return lsync__errbuf(
        err, errlen,
        "schedule \"%.60s\": expected \"every\" and a duration such "
        "as 6h, 90s, 1h30m or 1d2h30m (units d, h, m, s in that "
        "order), or \"cron M H DOM MON DOW\", or @daily",
        spec);
  if (!(secs >= 1))
    return lsync__errbuf(err, errlen,
                         "schedule \"%.60s\": the interval must be more "
                         "than 0",
                         spec);
  if (secs > (double)MAX_INTERVAL)
    return lsync__errbuf(err, errlen,
                         "schedule \"%.60s\": the interval is longer "
                         "than 100 years",
                         spec);
  lsync_sched *s = calloc(1, sizeof *s + 40);
  if (!s)
    return LSYNC_ENOMEM;
  s->interval = (int64_t)secs;
  char *d = stpcpy(s->desc, "every ");
  static const struct {
    char unit;
    int64_t secs;
  } units[] = {{'d', LSYNC__DAY}, {'h', 3600}, {'m', 60}, {'s', 1}};
  int64_t left = s->interval;
  for (size_t i = 0; i < 4; i++) {
    if (left >= units[i].secs)
      d += sprintf(d, "%lld%c", (long long)(left / units[i].secs),
                   units[i].unit);
    left %= units[i].secs;
  }
  *out = s;
  return 0;
}

/* Does text begin with the word w (any case), followed by a blank or the
 * end?  Then *rest is what follows, blanks skipped. */
static int word_prefix(const char *text, const char *w, const char **rest) {
  size_t n = strlen(w);
  if (strncasecmp(text, w, n) || (text[n] && !isspace((unsigned char)text[n])))
    return 0;
  for (text += n; isspace((unsigned char)*text);)
    text++;
  *rest = text;
  return 1;
}

int lsync_sched_parse(const char *spec, lsync_sched **out, char *err,
                      size_t errlen) {
  if (!out)
    return LSYNC_EINVAL;
  *out = NULL;
  if (err && errlen)
    *err = '\0';
  if (!spec)
    return lsync__errbuf(err, errlen, "schedule: missing");
  while (isspace((unsigned char)*spec))
    spec++;
  size_t n = strlen(spec);
  while (n && isspace((unsigned char)spec[n - 1]))
    n--;
  char *text = malloc(n + 1);
  if (!text)
    return LSYNC_ENOMEM;
  memcpy(text, spec, n);
  text[n] = '\0';
  const char *rest;
  int rc;
  if (word_prefix(text, "cron", &rest) || *text == '@')
    rc = parse_cron(*text == '@' ? text : (char *)rest, out, err, errlen);
  else if (word_prefix(text, "every", &rest))
    rc = parse_interval(rest, text, out, err, errlen);
  else
    rc = parse_interval(text, text, out, err, errlen);
  free(text);
  return rc;
}

void lsync_sched_free(lsync_sched *s) {
  free(s);
}

const char *lsync_sched_describe(const lsync_sched *s) {
  return s->desc;
}

/* The classic rule: with both day fields restricted, either may match. */
static int day_matches(const lsync_sched *s, int y, int m, int d) {
  int dom = (int)(s->dom >> d & 1);
  int dow =
      (int)(s->dow >> lsync__weekday(lsync__days_from_civil(y, m, d)) & 1);
  return s->dom_star || s->dow_star ? dom && dow : dom || dow;
}

/* The first match in month y-m at or after wall time *from (when that
 * falls in this month) whose first instant is after now; -1 if none. */
static int64_t cron_in_month(const lsync_sched *s, int y, int m,
                             const lsync__wall *from, int64_t now) {
  int this_month = y == from->y && m == from->mon;
  for (int d = this_month ? from->d : 1; d <= lsync__days_in_month(y, m); d++) {
    if (!day_matches(s, y, m, d))
      continue;
    int today = this_month && d == from->d;
    for (int h = today ? from->h : 0; h < 24; h++) {
      if (!(s->hours >> h & 1))
        continue;
      for (int mi = today && h == from->h ? from->mi : 0; mi < 60; mi++) {
        int64_t at[3];
        /* Only a wall time's first instant counts: in a repeated hour it
         * has run already (or was due) when the first one is past. */
        if (s->minutes >> mi & 1 &&
            lsync__wall_instants(&(lsync__wall){y, m, d, h, mi}, at) > 0 &&
            at[0] > now)
          return at[0];
      }
    }
  }
  return -1;
}

static int64_t cron_next(const lsync_sched *s, int64_t now) {
  lsync__wall from;
  int sec;
  if (lsync__local_wall(now, &from, &sec) < 0)
    return -1;
  from.mi++; /* strictly after now's minute; 60 just skips that hour */
  for (int y = from.y; y <= from.y + CRON_YEARS; y++) {
    for (int m = y == from.y ? from.mon : 1; m <= 12; m++) {
      int64_t t = s->months >> m & 1 ? cron_in_month(s, y, m, &from, now) : -1;
      if (t >= 0)
        return t;
    }
  }
  return -1;
}

int64_t lsync_sched_next(const lsync_sched *s, int64_t last_start,
                         int64_t now) {
  if (s->interval) {
    int64_t next = lsync__sat_add(last_start, s->interval);
    if (next <= now)
      return now;
    int64_t cap = lsync__sat_add(now, s->interval);
    return next < cap ? next : cap;
  }
  tzset();
  return cron_next(s, now);
}
