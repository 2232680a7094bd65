/*
 * Include/exclude rules with rsync's pattern semantics.
 *
 * Each pattern is compiled once, when it is added, into a small record of
 * flags (anchored, directory only, wildcards, "**", ...) so that the test run
 * for every crawled entry is a plain compare for literal patterns and a
 * non-allocating wildcard match otherwise.
 *
 * Two rsync details shape the matcher.  rsync matches a "**"-prefixed
 * pattern against the path with a "/" put in front of it (so "**" + "/foo"
 * also matches a top-level "foo"), and matches a pattern ending in "***"
 * against a directory's path with a "/" appended (so "dir/" + "***" matches
 * "dir" itself).  Building those strings would mean copying the path per
 * test; instead the compiler records which shorter pattern (the part after
 * the leading "**" + "/", the part before the trailing "/" + "***") matches
 * the bare path exactly when rsync's pattern matches the decorated one, and
 * the matcher tries those as well.
 */
#include "libsync/filter.h"

#include <stdlib.h>
#include <string.h>

#include "libsync/error.h"

/*
 * Results of the wildcard matcher.  Besides yes and no it reports why a
 * failure can't be cured by starting the same sub-pattern later in the
 * text, which is what keeps "**" retries from going exponential:
 * running out of text means a later start has even less text, and a "*"
 * stopped by a "/" can only be helped by a "**" further out.
 */
enum { WM_NOMATCH = 0, WM_MATCH = 1, WM_ABORT_ALL = 2, WM_ABORT_SLASH = 3 };

typedef struct rule {
  const char *pat; /* body: no anchoring "/", no trailing "/" */
  char *owned;     /* pat's heap copy in a filter, NULL when compiled alone */
  size_t len;
  size_t base_len;  /* wild3: length of the body before its "/" + "***" */
  size_t alt_off;   /* "**" + "/" prefix: offset of what follows, else 0 */
  unsigned slashes; /* "/" count in the body, as rsync counts them */
  unsigned char kind;
  unsigned char anchored, dir_only, wild, dstar, dstar_prefix, wild3;
} rule;

struct lsync_filter {
  rule *rules;
  size_t count;
  size_t cap;
};

/* ---- character classes ------------------------------------------------ */

static const char *const posix_names[] = {"alnum", "alpha", "blank", "cntrl",
                                          "digit", "graph", "lower", "print",
                                          "punct", "space", "upper", "xdigit"};

/*
 * ASCII only, instead of <ctype.h>: the answer must not depend on the
 * process locale (global state another thread may change), and bytes of
 * non-UTF-8 names above 0x7f must not fall into a class by accident.
 */
static int posix_has(int idx, unsigned c) {
  int lower = c >= 'a' && c <= 'z', upper = c >= 'A' && c <= 'Z';
  int digit = c >= '0' && c <= '9';
  int graph = c > 0x20 && c < 0x7f;

  switch (idx) {
  case 0:
    return lower || upper || digit;
  case 1:
    return lower || upper;
  case 2:
    return c == ' ' || c == '\t';
  case 3:
    return c < 0x20 || c == 0x7f;
  case 4:
    return digit;
  case 5:
    return graph;
  case 6:
    return lower;
  case 7:
    return graph || c == ' ';
  case 8:
    return graph && !lower && !upper && !digit;
  case 9:
    return c == ' ' || (c >= '\t' && c <= '\r');
  case 10:
    return upper;
  case 11:
    return digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
  default:
    return 0;
  }
}

/*
 * At p (just after "[:"), a POSIX class name followed by ":]"?  Returns the
 * class index and sets *end past the ":]"; -1 when this is not a class
 * name at all, so the "[" is an ordinary member; -2 for an unknown name.
 */
static int posix_class(const char *p, const char *pe, const char **end) {
  const char *q = p;
  size_t i;

  while (q < pe && *q >= 'a' && *q <= 'z')
    q++;
  if (q == p || pe - q < 2 || q[0] != ':' || q[1] != ']')
    return -1;
  *end = q + 2;
  for (i = 0; i < sizeof posix_names / sizeof posix_names[0]; i++)
    if (strlen(posix_names[i]) == (size_t)(q - p) &&
        memcmp(posix_names[i], p, (size_t)(q - p)) == 0)
      return (int)i;
  return -2;
}

/* One class member that may be backslash-quoted; NULL if nothing follows. */
static const char *class_char(const char *p, const char *pe, unsigned *c) {
  if (*p == '\\' && ++p == pe)
    return NULL;
  *c = (unsigned char)*p;
  return p + 1;
}

/*
 * Parses the class whose "[" is at p[-1] and says in *hit whether byte c
 * (or -1: parse only) belongs to it.  Returns the position after the
 * closing "]", NULL if the class is malformed.  Compiling runs this on
 * every class first, so the matcher never sees NULL.
 */
static const char *scan_class(const char *p, const char *pe, int c, int *hit) {
  const char *first;
  int neg = 0, in = 0;

  if (p < pe && (*p == '!' || *p == '^')) {
    neg = 1;
    p++;
  }
  first = p;
  for (;;) {
    unsigned lo, hi;
    const char *end;
    int k;

    if (p >= pe)
      return NULL;
    /* A "]" right after "[" or "[!" is a member, not the end. */
    if (*p == ']' && p != first)
      break;
    if (*p == '[' && pe - p > 1 && p[1] == ':') {
      k = posix_class(p + 2, pe, &end);
      if (k == -2)
        return NULL;
      if (k >= 0) {
        in |= c >= 0 && posix_has(k, (unsigned)c);
        p = end;
        continue;
      }
    }
    if (!(p = class_char(p, pe, &lo)))
      return NULL;
    hi = lo;
    if (pe - p > 1 && *p == '-' && p[1] != ']' &&
        !(p = class_char(p + 1, pe, &hi)))
      return NULL;
    in |= c >= 0 && (unsigned)c >= lo && (unsigned)c <= hi;
  }
  /* rsync's classes never match "/", negated or not. */
  *hit = c != '/' && in != neg;
  return p + 1;
}

/* ---- the wildcard matcher -------------------------------------------- */

/* Matches the one-character token at *pp against c and steps past it. */
static int token_match(const char **pp, const char *pe, unsigned char c) {
  const char *p = *pp;
  int hit = 0;

  switch (*p) {
  case '?':
    *pp = p + 1;
    return c != '/';
  case '[':
    p = scan_class(p + 1, pe, c, &hit);
    *pp = p ? p : pe;
    return p && hit;
  case '\\':
    *pp = p + 2;
    return (unsigned char)p[1] == c;
  default:
    *pp = p + 1;
    return (unsigned char)*p == c;
  }
}

static int wild_match(const char *p, const char *pe, const char *t,
                      const char *te);

/*
 * "**" at p: try the rest at every later text position.  This is the one
 * place that backtracks by recursion; the abort codes cut it short.
 */
static int dstar_match(const char *p, const char *pe, const char *t,
                       const char *te) {
  int r;

  while (p < pe && *p == '*')
    p++;
  if (p == pe)
    return WM_MATCH;
  for (;; t++) {
    r = wild_match(p, pe, t, te);
    if (r == WM_MATCH || r == WM_ABORT_ALL)
      return r;
    if (t == te)
      return WM_ABORT_ALL;
  }
}

/*
 * Matches pattern [p, pe) against all of [t, te).  A single "*" is handled
 * without recursion: remember where the last one stood and, on a mismatch,
 * let it swallow one more character.  Going back to the last "*" only is
 * enough because nothing between "*"s crosses a "/", so each pattern
 * component lines up with one path component, and within a component the
 * classic argument holds.  That bounds the work at len(p) * len(t).
 */
static int wild_match(const char *p, const char *pe, const char *t,
                      const char *te) {
  const char *sp = NULL, *st = NULL;

  for (;;) {
    if (p < pe && *p == '*') {
      if (pe - p > 1 && p[1] == '*')
        return dstar_match(p, pe, t, te);
      if (++p == pe)
        return memchr(t, '/', (size_t)(te - t)) ? WM_ABORT_SLASH : WM_MATCH;
      sp = p;
      st = t;
      continue;
    }
    if (p == pe) {
      if (t == te)
        return WM_MATCH;
    } else if (t == te) {
      /* Fixed-width tokens since the last "*": less text can't fit them. */
      return WM_ABORT_ALL;
    } else if (token_match(&p, pe, (unsigned char)*t)) {
      t++;
      continue;
    }
    if (!sp)
      return WM_NOMATCH;
    if (*st == '/')
      return WM_ABORT_SLASH;
    p = sp;
    t = ++st;
  }
}

/* ---- compiling -------------------------------------------------------- */

/*
 * Walks a wildcard body token by token: rejects what the matcher could not
 * parse and finds the "**" + "/" prefix and "/" + "***" suffix (either
 * slash may be written "\/").
 */
static int scan_wild(rule *r) {
  const char *p = r->pat, *pe = p + r->len, *tok;
  const char *slash_prev = NULL, *slash_cur = NULL;
  size_t ntok = 0, run = 0, first_run = 0;
  int hit;

  while (p < pe) {
    tok = p;
    run = 0;
    if (*p == '*') {
      while (p < pe && *p == '*') {
        p++;
        run++;
      }
    } else if (*p == '[') {
      if (!(p = scan_class(p + 1, pe, -1, &hit)))
        return LSYNC_EPATTERN;
    } else if (*p == '\\') {
      if (pe - p < 2)
        return LSYNC_EPATTERN; /* nothing left to quote */
      p += 2;
    } else {
      p++;
    }
    slash_prev = slash_cur;
    slash_cur = (*tok == '/' || (*tok == '\\' && tok[1] == '/')) ? tok : NULL;
    if (ntok == 0)
      first_run = run;
    else if (ntok == 1 && first_run >= 2 && slash_cur)
      r->alt_off = (size_t)(p - r->pat);
    ntok++;
  }
  if (run >= 3 && slash_prev) {
    r->wild3 = 1;
    r->base_len = (size_t)(slash_prev - r->pat);
  }
  return 0;
}

/*
 * Fills r from pattern [src, src + n).  r->pat points into src, so this
 * never allocates; lsync_filter_add() copies the body afterwards.
 */
static int compile(rule *r, const char *src, size_t n) {
  size_t i;
  int rc;

  memset(r, 0, sizeof *r);
  /* Checked before the anchor goes: real rsync gives an anchored
   * "/" + "**" + "/foo" no implied leading "/", so it skips a top-level
   * "foo". */
  r->dstar_prefix = n >= 2 && src[0] == '*' && src[1] == '*';
  if (n > 1 && src[n - 1] == '/') {
    r->dir_only = 1;
    n--;
  }
  if (n > 0 && src[0] == '/') {
    r->anchored = 1;
    src++;
    n--;
  }
  if (n == 0)
    return LSYNC_EPATTERN;
  r->pat = src;
  r->len = n;
  for (i = 0; i < n; i++) {
    if (src[i] == '/')
      r->slashes++;
    else if (src[i] == '*' || src[i] == '?' || src[i] == '[')
      r->wild = 1;
    if (src[i] == '*' && i + 1 < n && src[i + 1] == '*')
      r->dstar = 1;
  }
  if (!r->wild)
    return 0;
  rc = scan_wild(r);
  if (!r->dstar_prefix)
    r->alt_off = 0;
  return rc;
}

/* ---- matching a rule -------------------------------------------------- */

static int wm(const char *p, size_t plen, const char *t, const char *te) {
  return wild_match(p, p + plen, t, te) == WM_MATCH;
}

/*
 * The pattern against one candidate start of the path, including the
 * shorter patterns that stand in for rsync's implied "/" before the path
 * ("**" prefix) and after a directory ("/" + "***" suffix).
 */
static int match_subject(const rule *r, const char *t, const char *te,
                         int is_dir) {
  int tail = r->wild3 && is_dir;
  const char *alt = r->pat + r->alt_off;

  if (wm(r->pat, r->len, t, te))
    return 1;
  if (tail && wm(r->pat, r->base_len, t, te))
    return 1;
  if (!r->alt_off)
    return 0;
  if (wm(alt, r->len - r->alt_off, t, te))
    return 1;
  return tail && r->base_len >= r->alt_off &&
         wm(alt, r->base_len - r->alt_off, t, te);
}

/*
 * Start of the last k components of [path, end), or NULL when the path has
 * fewer.  Such a path could only match through a "/" inside a class, which
 * never matches, and real rsync indeed skips it (try "[--/]" on "-").
 */
static const char *last_components(const char *path, const char *end,
                                   unsigned k) {
  const char *s = end;

  for (; s > path; s--)
    if (s[-1] == '/' && --k == 0)
      return s;
  return k == 1 ? path : NULL;
}

static int literal_matches(const rule *r, const char *path, size_t n) {
  const char *s;

  if (r->len > n)
    return 0;
  if (r->anchored)
    return r->len == n && memcmp(path, r->pat, n) == 0;
  /* Unanchored: the pattern must be the path's last slashes+1 components,
   * i.e. a suffix that starts on a component boundary. */
  s = path + (n - r->len);
  return (s == path || s[-1] == '/') && memcmp(s, r->pat, r->len) == 0;
}

static int rule_matches(const rule *r, const char *path, size_t n, int is_dir) {
  const char *end = path + n, *s;

  if (r->dir_only && !is_dir)
    return 0;
  if (!r->wild)
    return literal_matches(r, path, n);
  if (r->anchored || r->dstar_prefix)
    return match_subject(r, path, end, is_dir);
  /* Without "**" the pattern covers exactly slashes+1 components (no
   * wildcard matches "/"), so only the path's tail can match; this also
   * makes a slash-less pattern match the last component only. */
  if (!r->dstar) {
    s = last_components(path, end, r->slashes + 1);
    return s && match_subject(r, s, end, is_dir);
  }
  for (s = path;;) {
    if (match_subject(r, s, end, is_dir))
      return 1;
    if (!(s = memchr(s, '/', (size_t)(end - s))))
      return 0;
    s++;
  }
}

/* ---- public API -------------------------------------------------------- */

int lsync_filter_new(lsync_filter **out) {
  if (!out)
    return LSYNC_EINVAL;
  *out = calloc(1, sizeof **out);
  return *out ? 0 : LSYNC_ENOMEM;
}

int lsync_filter_add(lsync_filter *f, lsync_rule_kind kind,
                     const char *pattern) {
  rule r;
  char *copy;
  int rc;

  if (!f || !pattern || (kind != LSYNC_EXCLUDE && kind != LSYNC_INCLUDE))
    return LSYNC_EINVAL;
  if ((rc = compile(&r, pattern, strlen(pattern))) != 0)
    return rc;
  if (f->count == f->cap) {
    size_t cap = f->cap ? f->cap * 2 : 8;
    rule *grown;

    if (cap > (size_t)-1 / sizeof *grown)
      return LSYNC_ENOMEM;
    if (!(grown = realloc(f->rules, cap * sizeof *grown)))
      return LSYNC_ENOMEM;
    f->rules = grown;
    f->cap = cap;
  }
  if (!(copy = malloc(r.len + 1)))
    return LSYNC_ENOMEM;
  memcpy(copy, r.pat, r.len);
  copy[r.len] = '\0';
  /* base_len and alt_off are offsets into the body, so they survive. */
  r.pat = r.owned = copy;
  r.kind = (unsigned char)kind;
  f->rules[f->count++] = r;
  return 0;
}

int lsync_filter_add_rule(lsync_filter *f, const char *text) {
  static const struct {
    const char *name;
    size_t len;
    lsync_rule_kind kind;
  } names[] = {
      {"-", 1, LSYNC_EXCLUDE},
      {"+", 1, LSYNC_INCLUDE},
      {"exclude", 7, LSYNC_EXCLUDE},
      {"include", 7, LSYNC_INCLUDE},
  };
  size_t i;

  if (!f || !text)
    return LSYNC_EINVAL;
  /* rsync separates rule and pattern by one space or one "_"; whatever
   * follows, spaces included, is the pattern.  Modifiers such as "-/" or
   * "+!" are not supported and rejected rather than misread. */
  for (i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strncmp(text, names[i].name, names[i].len) == 0 &&
        (text[names[i].len] == ' ' || text[names[i].len] == '_'))
      return lsync_filter_add(f, names[i].kind, text + names[i].len + 1);
  return LSYNC_EPATTERN;
}

size_t lsync_filter_count(const lsync_filter *f) {
  return f ? f->count : 0;
}

int lsync_filter_excludes(const lsync_filter *f, const char *path, size_t len,
                          int is_dir) {
  size_t i;

  if (!f)
    return 0;
  if (!path && len)
    return LSYNC_EINVAL;
  /* Like rsync: tolerate one leading "/", and an empty name matches no
   * rule (an unanchored "**" would otherwise exclude the root). */
  if (len && path[0] == '/') {
    path++;
    len--;
  }
  if (!len)
    return 0;
  for (i = 0; i < f->count; i++)
    if (rule_matches(&f->rules[i], path, len, is_dir != 0))
      return f->rules[i].kind == LSYNC_EXCLUDE;
  return 0;
}

int lsync_pattern_match(const char *pattern, const char *path, int is_dir) {
  rule r;
  size_t n;
  int rc;

  if (!pattern || !path)
    return LSYNC_EINVAL;
  if ((rc = compile(&r, pattern, strlen(pattern))) != 0)
    return rc;
  n = strlen(path);
  if (n && path[0] == '/') {
    path++;
    n--;
  }
  return n ? rule_matches(&r, path, n, is_dir != 0) : 0;
}

void lsync_filter_free(lsync_filter *f) {
  size_t i;

  if (!f)
    return;
  for (i = 0; i < f->count; i++)
    free(f->rules[i].owned);
  free(f->rules);
  free(f);
}
