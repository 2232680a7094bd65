/*
 * Progress parsers: rsync's --info=progress2 records and rclone's JSON
 * log lines.  Both are read from a bounded byte range (no NUL needed) and
 * parse numbers by hand rather than with strtod, whose decimal point
 * follows the embedding program's locale; the tools themselves run with
 * LC_ALL=C and always print ".".
 */
#include <stdint.h>
#include <string.h>

#include "internal.h"
#include "progress_internal.h"

/* ---- rsync ------------------------------------------------------------ */

struct cur {
  const char *p, *e;
};

static int is_digit(char c) {
  return c >= '0' && c <= '9';
}

static int skip_spaces(struct cur *c) {
  const char *s = c->p;
  while (c->p < c->e && *c->p == ' ')
    c->p++;
  return c->p > s;
}

/* Consume literal word; 1 if it was there. */
static int take(struct cur *c, const char *word) {
  size_t n = strlen(word);
  if ((size_t)(c->e - c->p) < n || memcmp(c->p, word, n) != 0)
    return 0;
  c->p += n;
  return 1;
}

/* Digits, with "," between groups when commas is set; 1 and *v if at
 * least one digit and no overflow. */
static int take_uint(struct cur *c, uint64_t *v, int commas) {
  uint64_t acc = 0;
  int any = 0;
  while (c->p < c->e) {
    char ch = *c->p;
    if (commas && ch == ',' && any && c->p + 1 < c->e && is_digit(c->p[1])) {
      c->p++;
      continue;
    }
    if (!is_digit(ch))
      break;
    unsigned d = (unsigned)(ch - '0');
    if (acc > (UINT64_MAX - d) / 10)
      return 0;
    acc = acc * 10 + d;
    any = 1;
    c->p++;
  }
  *v = acc;
  return any;
}

/* An optional "." and fraction digits, as a value below 1. */
static double take_fraction(struct cur *c) {
  double f = 0, scale = 0.1;
  if (c->p >= c->e || *c->p != '.')
    return 0;
  c->p++;
  while (c->p < c->e && is_digit(*c->p)) {
    f += (*c->p++ - '0') * scale;
    scale /= 10;
  }
  return f;
}

/* 1000^k for rsync's -h size suffixes, 0 if ch is not one. */
static double size_suffix(char ch) {
  static const char units[] = "KMGTP";
  const char *u = memchr(units, ch, sizeof units - 1);
  double m = 0;
  if (u) {
    m = 1;
    for (const char *q = units; q <= u; q++)
      m *= 1000;
  }
  return m;
}

/* The byte count: "32768", "32,768", or with -h "4.19M". */
static int take_size(struct cur *c, uint64_t *bytes) {
  if (!take_uint(c, bytes, 1))
    return 0;
  if (c->p < c->e && (*c->p == '.' || size_suffix(*c->p) > 0)) {
    double v = (double)*bytes + take_fraction(c);
    double m = c->p < c->e ? size_suffix(*c->p) : 0;
    if (m == 0)
      return 0; /* a fraction without a unit is not rsync's */
    c->p++;
    v *= m;
    *bytes = v >= 18446744073709551615.0 ? UINT64_MAX : (uint64_t)(v + 0.5);
  }
  return 1;
}

/* "31.25MB/s": rsync divides by 1024 per unit step. */
static int take_rate(struct cur *c, double *rate) {
  static const char units[] = "kMGTP";
  uint64_t whole;
  if (!take_uint(c, &whole, 0))
    return 0;
  double v = (double)whole + take_fraction(c);
  if (c->p < c->e) {
    const char *u = memchr(units, *c->p, sizeof units - 1);
    if (!u && *c->p == 'K')
      u = units;
    if (u) {
      for (const char *q = units; q <= u; q++)
        v *= 1024;
      c->p++;
    }
  }
  if (!take(c, "B/s"))
    return 0;
  *rate = v;
  return 1;
}

/* "0:00:02" (hours unbounded) or "??:??:??". */
static int take_time(struct cur *c) {
  uint64_t v;
  if (take(c, "??:??:??"))
    return 1;
  if (!take_uint(c, &v, 0) || !take(c, ":"))
    return 0;
  for (int i = 0; i < 2; i++) {
    if (c->e - c->p < 2 || !is_digit(c->p[0]) || !is_digit(c->p[1]))
      return 0;
    c->p += 2;
    if (i == 0 && !take(c, ":"))
      return 0;
  }
  return 1;
}

/* "(xfr#3, to-chk=0/5)", "ir-chk=" while the file list still grows, and
 * rsync 3.0's spelling "(xfer#3, to-check=0/5)". */
static int take_counts(struct cur *c, uint64_t *xfr, uint64_t *left,
                       uint64_t *total) {
  if (!take(c, "(") || !(take(c, "xfr#") || take(c, "xfer#")) ||
      !take_uint(c, xfr, 0) || !take(c, ","))
    return 0;
  skip_spaces(c);
  if (!take(c, "to-") && !take(c, "ir-"))
    return 0;
  if (!take(c, "chk=") && !take(c, "check="))
    return 0;
  return take_uint(c, left, 0) && take(c, "/") && take_uint(c, total, 0) &&
         take(c, ")");
}

int lsync_progress_parse_rsync(const char *line, size_t len,
                               lsync_progress *p) {
  struct cur c = {line, line + len};
  uint64_t bytes, pct, xfr = 0, left = 0, total = 0;
  double rate = 0;
  int counts = 0;

  skip_spaces(&c);
  if (!take_size(&c, &bytes) || !skip_spaces(&c))
    return 0;
  if (!take_uint(&c, &pct, 0) || pct > 100 || !take(&c, "%"))
    return 0;
  skip_spaces(&c);
  if (!take_rate(&c, &rate) || !skip_spaces(&c) || !take_time(&c))
    return 0;
  skip_spaces(&c);
  if (c.p < c.e && *c.p == '(') {
    if (!take_counts(&c, &xfr, &left, &total))
      return 0;
    counts = 1;
    skip_spaces(&c);
  }
  /* Anything after the record means this was some other line that only
   * began like one. */
  if (c.p != c.e)
    return 0;
  p->bytes = bytes;
  p->rate = rate;
  if (counts) {
    p->files = xfr;
    p->total = total;
    p->checked = left <= total ? total - left : 0;
  }
  return 1;
}

/* ---- rclone ----------------------------------------------------------- */

/* A JSON scanner for what rclone's log lines hold: it validates as it
 * goes and keeps only the few fields asked for.  It reads the same
 * cursor as the rsync parser. */

struct out {
  char *buf;
  size_t n, len; /* capacity, bytes written (buf NUL-terminated) */
  int full;      /* a character did not fit: stop appending */
};

#define JS_MAX_DEPTH 32

static void js_ws(struct cur *j) {
  while (j->p < j->e &&
         (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
    j->p++;
}

static int js_take(struct cur *j, char ch) {
  js_ws(j);
  if (j->p < j->e && *j->p == ch) {
    j->p++;
    return 1;
  }
  return 0;
}

/* Append one character's bytes whole, or stop: a truncated message never
 * ends inside a UTF-8 sequence. */
static void out_put(struct out *o, const char *s, size_t n) {
  if (!o->buf || o->full)
    return;
  if (o->len + n >= o->n) {
    o->full = 1;
    return;
  }
  memcpy(o->buf + o->len, s, n);
  o->len += n;
  o->buf[o->len] = '\0';
}

static void out_codepoint(struct out *o, uint32_t cp) {
  char b[4];
  size_t n;
  if (cp < 0x20) {
    b[0] = ' '; /* keep the message on one line */
    n = 1;
  } else if (cp < 0x80) {
    b[0] = (char)cp;
    n = 1;
  } else if (cp < 0x800) {
    b[0] = (char)(0xc0 | (cp >> 6));
    b[1] = (char)(0x80 | (cp & 0x3f));
    n = 2;
  } else if (cp < 0x10000) {
    b[0] = (char)(0xe0 | (cp >> 12));
    b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
    b[2] = (char)(0x80 | (cp & 0x3f));
    n = 3;
  } else {
    b[0] = (char)(0xf0 | (cp >> 18));
    b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    b[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    b[3] = (char)(0x80 | (cp & 0x3f));
    n = 4;
  }
  out_put(o, b, n);
}

static int js_hex4(struct cur *j, uint32_t *v) {
  *v = 0;
  if (j->e - j->p < 4)
    return 0;
  for (int i = 0; i < 4; i++) {
    char ch = *j->p++;
    int d = is_digit(ch)               ? ch - '0'
            : (ch >= 'a' && ch <= 'f') ? ch - 'a' + 10
            : (ch >= 'A' && ch <= 'F') ? ch - 'A' + 10
                                       : -1;
    if (d < 0)
      return 0;
    *v = *v << 4 | (uint32_t)d;
  }
  return 1;
}

/* "\uXXXX", after the "\u", joining a surrogate pair. */
static int js_unicode(struct cur *j, struct out *o) {
  uint32_t cp, lo;
  if (!js_hex4(j, &cp))
    return 0;
  if (cp >= 0xd800 && cp < 0xdc00 && j->e - j->p >= 6 && j->p[0] == '\\' &&
      j->p[1] == 'u') {
    j->p += 2;
    if (!js_hex4(j, &lo))
      return 0;
    if (lo >= 0xdc00 && lo < 0xe000)
      cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
    else
      cp = 0xfffd;
  } else if (cp >= 0xd800 && cp < 0xe000) {
    cp = 0xfffd; /* a lone surrogate */
  }
  out_codepoint(o, cp);
  return 1;
}

static int js_escape(struct cur *j, struct out *o) {
  static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
  if (j->p >= j->e)
    return 0;
  char ch = *j->p++;
  if (ch == 'u')
    return js_unicode(j, o);
  const char *k = memchr(from, ch, sizeof from - 1);
  if (!k)
    return 0;
  out_codepoint(o, (unsigned char)to[k - from]);
  return 1;
}

/* A string, decoded into o (which may have no buffer). */
static int js_string(struct cur *j, struct out *o) {
  if (!js_take(j, '"'))
    return 0;
  while (j->p < j->e) {
    unsigned char ch = (unsigned char)*j->p++;
    if (ch == '"')
      return 1;
    if (ch < 0x20)
      return 0;
    if (ch == '\\') {
      if (!js_escape(j, o))
        return 0;
    } else if (ch < 0x80) {
      out_codepoint(o, ch);
    } else {
      /* Raw UTF-8 passes through one whole sequence at a time. */
      const char *s = j->p - 1;
      while (j->p < j->e && ((unsigned char)*j->p & 0xc0) == 0x80)
        j->p++;
      out_put(o, s, (size_t)(j->p - s));
    }
  }
  return 0;
}

struct jnum {
  uint64_t u;  /* the value when it is a non-negative integer */
  double d;    /* the value */
  int integer; /* no sign, fraction or exponent, and u did not overflow */
};

static int js_number(struct cur *j, struct jnum *n) {
  struct cur c = {j->p, j->e};
  int neg = take(&c, "-");
  uint64_t whole;
  int overflow = 0;
  if (c.p >= c.e || !is_digit(*c.p))
    return 0;
  if (!take_uint(&c, &whole, 0)) {
    /* Too many digits for 64 bits: keep the magnitude only. */
    whole = UINT64_MAX;
    overflow = 1;
    while (c.p < c.e && is_digit(*c.p))
      c.p++;
  }
  int frac = c.p < c.e && *c.p == '.';
  if (frac && (c.p + 1 >= c.e || !is_digit(c.p[1])))
    return 0;
  n->d = (double)whole + take_fraction(&c);
  int expo = c.p < c.e && (*c.p == 'e' || *c.p == 'E');
  if (expo) {
    c.p++;
    int eneg = take(&c, "-");
    if (!eneg)
      take(&c, "+");
    uint64_t ev;
    if (!take_uint(&c, &ev, 0))
      return 0;
    for (uint64_t i = 0; i < ev && i < 400; i++)
      n->d = eneg ? n->d / 10 : n->d * 10;
  }
  if (neg)
    n->d = -n->d;
  n->u = whole;
  n->integer = !neg && !frac && !expo && !overflow;
  j->p = c.p;
  return 1;
}

static int js_skip(struct cur *j, int depth);

/* The members of an object, after its "{": fn sees each key and must
 * consume the value. */
typedef int (*js_member_fn)(struct cur *j, const char *key, void *arg,
                            int depth);

static int js_object(struct cur *j, js_member_fn fn, void *arg, int depth) {
  if (depth > JS_MAX_DEPTH)
    return 0;
  if (js_take(j, '}'))
    return 1;
  do {
    char key[32];
    struct out ko = {key, sizeof key, 0, 0};
    key[0] = '\0';
    if (!js_string(j, &ko) || !js_take(j, ':'))
      return 0;
    /* A key too long to fit is none we look for. */
    if (!fn(j, ko.full ? "" : key, arg, depth))
      return 0;
  } while (js_take(j, ','));
  return js_take(j, '}');
}

static int skip_member(struct cur *j, const char *key, void *arg, int depth) {
  (void)key;
  (void)arg;
  return js_skip(j, depth + 1);
}

static int js_skip(struct cur *j, int depth) {
  struct out none = {NULL, 0, 0, 0};
  struct jnum n;
  if (depth > JS_MAX_DEPTH)
    return 0;
  js_ws(j);
  if (j->p >= j->e)
    return 0;
  switch (*j->p) {
  case '"':
    return js_string(j, &none);
  case '{':
    j->p++;
    return js_object(j, skip_member, NULL, depth);
  case '[':
    j->p++;
    if (js_take(j, ']'))
      return 1;
    do {
      if (!js_skip(j, depth + 1))
        return 0;
    } while (js_take(j, ','));
    return js_take(j, ']');
  case 't':
    return take(j, "true");
  case 'f':
    return take(j, "false");
  case 'n':
    return take(j, "null");
  default:
    return js_number(j, &n);
  }
}

static uint64_t jnum_u64(const struct jnum *n) {
  if (n->integer)
    return n->u;
  if (!(n->d > 0))
    return 0;
  return n->d >= 18446744073709551615.0 ? UINT64_MAX : (uint64_t)n->d;
}

/* The fields of "stats" we keep, in the order of stat_keys. */
enum { S_BYTES, S_TBYTES, S_XFERS, S_TXFERS, S_CHECKS, S_TCHECKS, S_SPEED };
static const char *const stat_keys[] = {
    "bytes",  "totalBytes",  "transfers", "totalTransfers",
    "checks", "totalChecks", "speed"};
#define N_STATS (sizeof stat_keys / sizeof stat_keys[0])

struct stats {
  struct jnum v[N_STATS];
};

static int stats_member(struct cur *j, const char *key, void *arg, int depth) {
  struct stats *s = arg;
  for (size_t i = 0; i < N_STATS; i++) {
    if (strcmp(key, stat_keys[i]) != 0)
      continue;
    js_ws(j);
    /* "eta" and friends may be null; ours are numbers, but a null is
     * read as "unknown" rather than rejecting the line. */
    if (take(j, "null"))
      return 1;
    return js_number(j, &s->v[i]);
  }
  return js_skip(j, depth + 1);
}

struct line {
  struct out msg;
  char level[16];
  int level_full;
  int has_stats;
  struct stats stats;
};

static int line_member(struct cur *j, const char *key, void *arg, int depth) {
  struct line *l = arg;
  if (strcmp(key, "level") == 0) {
    struct out lo = {l->level, sizeof l->level, 0, 0};
    l->level[0] = '\0';
    int ok = js_string(j, &lo);
    l->level_full = lo.full;
    return ok;
  }
  if (strcmp(key, "msg") == 0) {
    l->msg.len = 0;
    l->msg.full = 0;
    if (l->msg.buf)
      l->msg.buf[0] = '\0';
    return js_string(j, &l->msg);
  }
  if (strcmp(key, "stats") == 0 && js_take(j, '{')) {
    memset(&l->stats, 0, sizeof l->stats);
    l->has_stats = 1;
    return js_object(j, stats_member, &l->stats, depth + 1);
  }
  return js_skip(j, depth + 1);
}

/* rclone's levels (logrus names) from error upwards. */
static int level_is_error(const char *level) {
  static const char *const bad[] = {"error",     "critical", "alert",
                                    "emergency", "fatal",    "panic"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    if (strcmp(level, bad[i]) == 0)
      return 1;
  return 0;
}

int lsync__rclone_line(const char *line, size_t len, lsync_progress *p,
                       char *msg, size_t msgsz) {
  struct cur j = {line, line + len};
  struct line l;
  memset(&l, 0, sizeof l);
  if (msg && msgsz) {
    l.msg.buf = msg;
    l.msg.n = msgsz;
    msg[0] = '\0';
  }
  if (!js_take(&j, '{') || !js_object(&j, line_member, &l, 0))
    return LSYNC__RCLONE_NOT_JSON;
  js_ws(&j);
  if (j.p != j.e)
    return LSYNC__RCLONE_NOT_JSON;
  if (l.has_stats) {
    const struct jnum *v = l.stats.v;
    p->bytes = jnum_u64(&v[S_BYTES]);
    p->total_bytes = jnum_u64(&v[S_TBYTES]);
    p->files = jnum_u64(&v[S_XFERS]);
    p->checked = p->files + jnum_u64(&v[S_CHECKS]);
    p->total = jnum_u64(&v[S_TXFERS]) + jnum_u64(&v[S_TCHECKS]);
    p->rate = v[S_SPEED].d > 0 ? v[S_SPEED].d : 0;
    return LSYNC__RCLONE_STATS;
  }
  if (!l.level_full && level_is_error(l.level))
    return LSYNC__RCLONE_ERROR;
  return LSYNC__RCLONE_OTHER;
}

int lsync_progress_parse_rclone(const char *line, size_t len,
                                lsync_progress *p) {
  return lsync__rclone_line(line, len, p, NULL, 0) == LSYNC__RCLONE_STATS;
}
