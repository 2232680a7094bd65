/*
 * The OpenSSH client-configuration subset of sshconf.h: ~/.ssh/config read
 * the way ssh(1) reads it for one host, so that a name typed for syncplan
 * means what it means to ssh.
 *
 * The file is read once, top to bottom, with one "does this line apply"
 * flag that Host lines set; an applying line fills its field only while
 * the field is empty (OpenSSH's first-value-wins rule), so no block is
 * ever stored.  Lines that do not apply are still checked where ssh
 * checks them when it reads the file (Port, StrictHostKeyChecking,
 * ConnectTimeout, Include), so a file ssh refuses is refused here too;
 * the values ssh only looks at when it uses them (HostName, IdentityFile,
 * UserKnownHostsFile) are checked only when they apply.  Tokens that
 * depend on values found later (%r on User, %h on HostName) are expanded
 * once the whole file has been read.
 */
#include "libsync/sshconf.h"

#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

/* Include levels below the first file, as OpenSSH's READCONF_MAX_DEPTH. */
#define MAX_DEPTH 16

struct lsync_sshconf {
  char *given; /* the host name as the caller gave it */
  char *hostname, *user, *known_hosts, *host_key_alias;
  char **ids; /* IdentityFile paths, NULL-terminated once there is one */
  size_t nids, idcap;
  unsigned port; /* 0: unset (a Port is 1..65535) */
  unsigned timeout_ms;
  int timeout_set, strict_set, accept_new;
  char *home, *local_user; /* NULL when unknown */
};

typedef struct parser {
  lsync_ctx *ctx;
  lsync_sshconf *c;
  int match_logged;
} parser;

/* One file being read.  An included file gets its own, so the block state
 * of the including file is what it was once the Include is done. */
typedef struct src {
  const char *path;
  unsigned long line;
  int depth;
  int never;  /* read for an Include that does not apply: no Host matches */
  int active; /* the current line applies */
} src;

/* How a file that cannot be opened is taken. */
enum { OPEN_MUST, OPEN_MAY_MISS, OPEN_INCLUDED };

typedef struct words {
  char **v;
  size_t n, cap;
} words;

/* A %X token and its value (NULL: none known). */
typedef struct token {
  char key;
  const char *val;
} token;

/* ---- messages --------------------------------------------------------- */

static int nomem(parser *p) {
  return lsync__fail(p->ctx, LSYNC_ENOMEM, "ssh config: out of memory");
}

/* Fail with the file and line in front, the form ssh's own messages
 * take. */
static int bad(parser *p, const src *s, const char *fmt, ...)
    LSYNC__PRINTF(3, 4);

static int bad(parser *p, const src *s, const char *fmt, ...) {
  char msg[LSYNC__ERRMSG_MAX];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return lsync__fail(p->ctx, LSYNC_EINVAL, "%s:%lu: %s", s->path, s->line, msg);
}

/* ---- words and patterns ----------------------------------------------- */

static int is_blank(char ch) {
  return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

static int lower(char ch) {
  unsigned char u = (unsigned char)ch;
  return u >= 'A' && u <= 'Z' ? u - 'A' + 'a' : u;
}

/* The keyword at *sp, ended by a blank or "=", with the blanks and the
 * one "=" that may separate it from the value skipped ("Key value",
 * "Key=value" and "Key = value" all mean the same to ssh).  NULL for a
 * blank line or a comment. */
static char *keyword(char **sp) {
  char *r = *sp, *k, *end;

  while (is_blank(*r))
    r++;
  if (*r == '\0' || *r == '#')
    return NULL;
  k = r;
  while (*r && !is_blank(*r) && *r != '=')
    r++;
  end = r;
  while (is_blank(*r))
    r++;
  if (*r == '=')
    r++;
  *end = '\0';
  *sp = r;
  return k;
}

/* The next word at *sp, unquoted in place: a double-quoted part keeps its
 * blanks, and a word that starts with "#" starts a comment (as in
 * OpenSSH 8.7 and later).  NULL at the end; *unterminated is set when a
 * quote is not closed. */
static char *next_word(char **sp, int *unterminated) {
  char *r = *sp, *w, *word;
  int quoted = 0;

  while (is_blank(*r))
    r++;
  if (*r == '\0' || *r == '#')
    return NULL;
  word = w = r;
  for (; *r && (quoted || !is_blank(*r)); r++) {
    if (*r == '"')
      quoted = !quoted;
    else
      *w++ = *r;
  }
  if (quoted) {
    *unterminated = 1;
    return NULL;
  }
  /* The word never grows, so w <= r and ending it cannot overwrite what
   * is still to be read. */
  *sp = *r ? r + 1 : r;
  *w = '\0';
  return word;
}

/* Split the rest of a line into w; 1 for an unterminated quote, 0, or
 * LSYNC_ENOMEM. */
static int split(char *sp, words *w) {
  int unterminated = 0;
  char *word;

  w->n = 0;
  while ((word = next_word(&sp, &unterminated))) {
    if (w->n == w->cap) {
      size_t cap = w->cap ? w->cap * 2 : 8;
      char **v = realloc(w->v, cap * sizeof *v);
      if (!v)
        return LSYNC_ENOMEM;
      w->v = v;
      w->cap = cap;
    }
    w->v[w->n++] = word;
  }
  return unterminated;
}

/* Whether name matches pat, * being any run and ? any one character,
 * ASCII case ignored as in OpenSSH's host patterns.  On a mismatch only
 * the last * is retried further on, which is enough with no other
 * wildcards and keeps the match linear in practice. */
static int wild_match(const char *pat, const char *name) {
  const char *star = NULL, *resume = NULL;

  while (*name) {
    if (*pat == '*') {
      star = pat++;
      resume = name;
    } else if (*pat && (*pat == '?' || lower(*pat) == lower(*name))) {
      pat++;
      name++;
    } else if (star) {
      pat = star + 1;
      name = ++resume;
    } else {
      return 0;
    }
  }
  while (*pat == '*')
    pat++;
  return *pat == '\0';
}

/* ---- values ----------------------------------------------------------- */

/* in with each %X replaced by X's value and %% by %, written to buf (NULL:
 * only measured).  The length, or (size_t)-1 with *key set to the token
 * that is unknown or has no value ('\0' for a % at the very end). */
static size_t expand_to(char *buf, const char *in, const token *t, size_t nt,
                        char *key) {
  size_t n = 0;

  for (const char *q = in; *q; q++) {
    const char *v = NULL;
    if (*q != '%') {
      if (buf)
        buf[n] = *q;
      n++;
      continue;
    }
    q++;
    if (*q == '%')
      v = "%";
    for (size_t i = 0; i < nt && !v && *q; i++)
      if (t[i].key == *q)
        v = t[i].val;
    if (!v) {
      *key = *q;
      return (size_t)-1;
    }
    if (buf)
      memcpy(buf + n, v, strlen(v));
    n += strlen(v);
  }
  if (buf)
    buf[n] = '\0';
  return n;
}

/* expand_to into a new string: 0, LSYNC_EINVAL (*key set) or
 * LSYNC_ENOMEM. */
static int expand(const char *in, const token *t, size_t nt, char **out,
                  char *key) {
  size_t n = expand_to(NULL, in, t, nt, key);

  if (n == (size_t)-1)
    return LSYNC_EINVAL;
  if (!(*out = malloc(n + 1)))
    return LSYNC_ENOMEM;
  expand_to(*out, in, t, nt, key);
  return 0;
}

static int bad_token(parser *p, const src *s, const char *what, char key) {
  if (key == '\0')
    return bad(p, s, "%s ends in a lone %%", what);
  return bad(p, s, "unknown token %%%c in %s", key, what);
}

/* The passwd entry of name (NULL: of the process's uid): copies of its
 * home directory and user name, for the pointers that are not NULL.  0,
 * 1 when there is no such entry, or LSYNC_ENOMEM.  The _r calls because
 * another thread may be using another context. */
static int passwd_entry(const char *name, char **dir, char **user) {
  long size = sysconf(_SC_GETPW_R_SIZE_MAX);
  struct passwd pw, *res = NULL;
  char *buf;
  int rc;

  if (size < 1024)
    size = 16384;
  for (;;) {
    if (!(buf = malloc((size_t)size)))
      return LSYNC_ENOMEM;
    rc = name ? getpwnam_r(name, &pw, buf, (size_t)size, &res)
              : getpwuid_r(getuid(), &pw, buf, (size_t)size, &res);
    if (rc != ERANGE || size > (1L << 20))
      break;
    free(buf);
    size *= 2;
  }
  rc = rc == 0 && res ? 0 : 1;
  if (rc == 0 && dir && !(*dir = strdup(pw.pw_dir)))
    rc = LSYNC_ENOMEM;
  if (rc == 0 && user && !(*user = strdup(pw.pw_name)))
    rc = LSYNC_ENOMEM;
  free(buf);
  return rc;
}

/* The home directory ($HOME, else the passwd entry's) and the local user
 * name; either stays NULL when there is none, and fails only what needs
 * it. */
static int who_am_i(parser *p) {
  const char *h = getenv("HOME");
  int have_home = h && *h;
  int rc =
      passwd_entry(NULL, have_home ? NULL : &p->c->home, &p->c->local_user);

  if (rc < 0)
    return nomem(p);
  if (have_home && !(p->c->home = strdup(h)))
    return nomem(p);
  return 0;
}

/* home then rest in a new string; with escape_pct the home's % signs are
 * doubled, for a value whose tokens are expanded later, so that a home
 * named "a%d" comes out as it is. */
static char *join_home(const char *home, const char *rest, int escape_pct) {
  size_t n = strlen(home) + strlen(rest) + 1, o = 0;
  char *out;

  for (const char *q = home; escape_pct && *q; q++)
    n += *q == '%';
  if (!(out = malloc(n)))
    return NULL;
  for (const char *q = home; *q; q++) {
    if (escape_pct && *q == '%')
      out[o++] = '%';
    out[o++] = *q;
  }
  memcpy(out + o, rest, strlen(rest) + 1);
  return out;
}

/* v with a leading ~ or ~user replaced by that home directory, in a new
 * string. */
static int tilde(parser *p, const src *s, const char *v, int escape_pct,
                 char **out) {
  char *owned = NULL, *name;
  const char *home = p->c->home;
  size_t ulen;
  int rc;

  if (v[0] != '~')
    return (*out = strdup(v)) ? 0 : nomem(p);
  ulen = strcspn(v + 1, "/");
  if (ulen) {
    if (!(name = strndup(v + 1, ulen)))
      return nomem(p);
    rc = passwd_entry(name, &owned, NULL);
    free(name);
    if (rc < 0)
      return nomem(p);
    home = owned;
  }
  if (!home)
    return bad(p, s, "cannot expand '%s': %s", v,
               ulen ? "no such user" : "no home directory");
  *out = join_home(home, v + 1 + ulen, escape_pct);
  free(owned);
  return *out ? 0 : nomem(p);
}

/* The tokens of IdentityFile and UserKnownHostsFile, with stand-in values
 * for checking a value before the real ones are known. */
static const token path_tokens[] = {{'d', ""}, {'u', ""}, {'r', ""}, {'h', ""}};
#define NPATH_TOKENS (sizeof path_tokens / sizeof path_tokens[0])

/* A path keyword's value: its tokens checked and ~ expanded now, while
 * the file and line are at hand for a message; the tokens are expanded
 * by finish(). */
static int path_value(parser *p, const src *s, const char *what, const char *v,
                      char **out) {
  char key;

  if (expand_to(NULL, v, path_tokens, NPATH_TOKENS, &key) == (size_t)-1)
    return bad_token(p, s, what, key);
  return tilde(p, s, v, 1, out);
}

/* ---- keywords --------------------------------------------------------- */

/* First value wins: a field keeps what an earlier applying line gave. */
static int set_first(parser *p, const src *s, char **field, const char *v) {
  if (!s->active || *field)
    return 0;
  return (*field = strdup(v)) ? 0 : nomem(p);
}

static int kw_host(parser *p, src *s, char **argv, size_t argc) {
  int hit = 0;

  for (size_t i = 0; i < argc; i++) {
    int neg = argv[i][0] == '!';
    if (!wild_match(argv[i] + neg, p->c->given))
      continue;
    if (neg) { /* a negated match keeps the name out, whatever else says */
      hit = 0;
      break;
    }
    hit = 1;
  }
  s->active = hit && !s->never;
  return 0;
}

static int kw_match(parser *p, src *s, char **argv, size_t argc) {
  if (!p->match_logged)
    lsync__log(p->ctx, LSYNC_LOG_DEBUG,
               "%s:%lu: Match is not supported, its block is skipped", s->path,
               s->line);
  p->match_logged = 1;
  s->active = 0;
  return 0;
}

static int kw_hostname(parser *p, src *s, char **argv, size_t argc) {
  const token t[] = {{'h', p->c->given}};
  char key;
  int rc;

  if (!s->active || p->c->hostname)
    return 0;
  rc = expand(argv[0], t, 1, &p->c->hostname, &key);
  if (rc == LSYNC_EINVAL)
    return bad_token(p, s, "HostName", key);
  return rc < 0 ? nomem(p) : 0;
}

static int kw_user(parser *p, src *s, char **argv, size_t argc) {
  return set_first(p, s, &p->c->user, argv[0]);
}

static int kw_alias(parser *p, src *s, char **argv, size_t argc) {
  return set_first(p, s, &p->c->host_key_alias, argv[0]);
}

static int kw_port(parser *p, src *s, char **argv, size_t argc) {
  const char *q = argv[0];
  unsigned long v = 0;

  for (; *q >= '0' && *q <= '9' && v <= 65535; q++)
    v = v * 10 + (unsigned long)(*q - '0');
  if (q == argv[0] || *q || v < 1 || v > 65535)
    return bad(p, s, "bad Port '%s'", argv[0]);
  if (s->active && !p->c->port)
    p->c->port = (unsigned)v;
  return 0;
}

/* Add one IdentityFile; one already listed is skipped, as OpenSSH does,
 * so a key is not tried twice. */
static int add_identity(parser *p, char *path) {
  lsync_sshconf *c = p->c;

  for (size_t i = 0; i < c->nids; i++)
    if (!strcmp(c->ids[i], path)) {
      free(path);
      return 0;
    }
  if (c->nids + 1 >= c->idcap) {
    size_t cap = c->idcap ? c->idcap * 2 : 4;
    char **v = realloc(c->ids, cap * sizeof *v);
    if (!v) {
      free(path);
      return nomem(p);
    }
    c->ids = v;
    c->idcap = cap;
  }
  c->ids[c->nids++] = path;
  c->ids[c->nids] = NULL;
  return 0;
}

static int kw_identity(parser *p, src *s, char **argv, size_t argc) {
  char *path;
  int rc;

  if (!s->active)
    return 0;
  rc = path_value(p, s, "IdentityFile", argv[0], &path);
  return rc < 0 ? rc : add_identity(p, path);
}

/* Only the first file of the list is used; "none" (no file) becomes
 * /dev/null, where an unknown host is never found. */
static int kw_known_hosts(parser *p, src *s, char **argv, size_t argc) {
  if (!s->active || p->c->known_hosts)
    return 0;
  if (!strcmp(argv[0], "none"))
    return set_first(p, s, &p->c->known_hosts, "/dev/null");
  return path_value(p, s, "UserKnownHostsFile", argv[0], &p->c->known_hosts);
}

static int kw_strict(parser *p, src *s, char **argv, size_t argc) {
  /* OpenSSH's spellings; the ones that are not "yes" or "ask" all let a
   * new host's key in. */
  static const struct {
    const char *name;
    int accept_new;
  } values[] = {{"yes", 0}, {"true", 0},  {"ask", 0}, {"accept-new", 1},
                {"no", 1},  {"false", 1}, {"off", 1}};

  for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
    if (strcasecmp(argv[0], values[i].name))
      continue;
    if (s->active && !p->c->strict_set) {
      p->c->strict_set = 1;
      p->c->accept_new = values[i].accept_new;
    }
    return 0;
  }
  return bad(p, s, "bad StrictHostKeyChecking '%s'", argv[0]);
}

/* OpenSSH's time format: seconds, or numbers each followed by a unit (s,
 * m, h, d, w) as in "1m30s".  -1 when v is not one or is too long for a
 * timeout in milliseconds. */
static long long seconds(const char *v) {
  static const char units[] = "smhdw";
  static const long long mult[] = {1, 60, 3600, 86400, 604800};
  long long total = 0;

  if (!*v)
    return -1;
  while (*v) {
    long long n = 0;
    const char *u;
    if (*v < '0' || *v > '9')
      return -1;
    for (; *v >= '0' && *v <= '9' && n <= UINT_MAX; v++)
      n = n * 10 + (*v - '0');
    if (*v && (u = strchr(units, lower(*v)))) {
      n *= mult[u - units];
      v++;
    }
    if (n > UINT_MAX / 1000 || (total += n) > UINT_MAX / 1000)
      return -1;
  }
  return total;
}

/* 0 is taken as given (ssh's "no timeout of its own") and leaves the
 * session's default in place. */
static int kw_timeout(parser *p, src *s, char **argv, size_t argc) {
  long long secs = seconds(argv[0]);

  if (secs < 0)
    return bad(p, s, "bad ConnectTimeout '%s'", argv[0]);
  if (s->active && !p->c->timeout_set) {
    p->c->timeout_set = 1;
    p->c->timeout_ms = (unsigned)secs * 1000u;
  }
  return 0;
}

static int kw_include(parser *p, src *s, char **argv, size_t argc);

static const struct keyword {
  const char *name;
  int (*fn)(parser *p, src *s, char **argv, size_t argc);
  size_t min, max; /* argument counts; max 0: any */
} keywords[] = {
    {"Host", kw_host, 1, 0},
    {"Match", kw_match, 0, 0},
    {"Include", kw_include, 1, 0},
    {"HostName", kw_hostname, 1, 1},
    {"User", kw_user, 1, 1},
    {"Port", kw_port, 1, 1},
    {"IdentityFile", kw_identity, 1, 1},
    {"UserKnownHostsFile", kw_known_hosts, 1, 0},
    {"HostKeyAlias", kw_alias, 1, 1},
    {"StrictHostKeyChecking", kw_strict, 1, 1},
    {"ConnectTimeout", kw_timeout, 1, 1},
};

static const struct keyword *find_keyword(const char *name) {
  for (size_t i = 0; i < sizeof keywords / sizeof keywords[0]; i++)
    if (!strcasecmp(keywords[i].name, name))
      return &keywords[i];
  return NULL;
}

/* ---- files ------------------------------------------------------------ */

/* The whole line is split before the keyword is looked up, so a quote
 * left open fails even on a keyword that is otherwise ignored, as in
 * ssh. */
static int do_line(parser *p, src *s, char *text, words *w) {
  char *sp = text, *kw = keyword(&sp);
  const struct keyword *k;
  int rc;

  if (!kw)
    return 0;
  rc = split(sp, w);
  if (rc < 0)
    return nomem(p);
  if (rc)
    return bad(p, s, "unterminated quote");
  if (!(k = find_keyword(kw)))
    return 0;
  if (w->n < k->min)
    return bad(p, s, "missing argument to %s", k->name);
  if (k->max && w->n > k->max)
    return bad(p, s, "too many arguments to %s", k->name);
  return k->fn(p, s, w->v, w->n);
}

/* NULL when the file is to be taken as empty (a return code in *rc
 * otherwise). */
static FILE *open_config(parser *p, const src *s, int how, int *rc) {
  FILE *f = fopen(s->path, "re");
  struct stat st;
  int err = errno;

  *rc = 0;
  if (f && fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
    fclose(f);
    f = NULL;
    err = EISDIR;
  }
  if (f)
    return f;
  /* ssh passes over an included file it cannot read. */
  if (how == OPEN_INCLUDED || (how == OPEN_MAY_MISS && err == ENOENT))
    lsync__log(p->ctx, LSYNC_LOG_DEBUG, "ssh config %s not read: %s", s->path,
               strerror(err));
  else
    *rc = lsync__fail_errno(p->ctx, err, "cannot read ssh config %s", s->path);
  return NULL;
}

static int read_file(parser *p, src *s, int how) {
  char *text = NULL;
  size_t cap = 0;
  words w = {0};
  int rc;
  FILE *f = open_config(p, s, how, &rc);

  if (!f)
    return rc;
  lsync__log(p->ctx, LSYNC_LOG_DEBUG, "reading ssh config %s", s->path);
  while (rc == 0 && getline(&text, &cap, f) >= 0) {
    s->line++;
    rc = do_line(p, s, text, &w);
  }
  if (rc == 0 && ferror(f))
    rc = lsync__fail_errno(p->ctx, errno, "cannot read ssh config %s", s->path);
  free(text);
  free(w.v);
  fclose(f);
  return rc;
}

/* An Include argument as a glob pattern: ~ expanded, a relative one taken
 * from ~/.ssh. */
static int include_pattern(parser *p, const src *s, const char *arg,
                           char **out) {
  char *t;
  int rc = tilde(p, s, arg, 0, &t);

  *out = NULL;
  if (rc < 0)
    return rc;
  if (t[0] == '/') {
    *out = t;
    return 0;
  }
  if (!p->c->home) {
    free(t);
    return bad(p, s, "cannot read Include %s: no home directory", arg);
  }
  if (asprintf(out, "%s/.ssh/%s", p->c->home, t) < 0)
    *out = NULL;
  free(t);
  return *out ? 0 : nomem(p);
}

/* Each file is read in place with the including line's block state: its
 * lines before a Host apply only where the Include does, and an Include
 * that does not apply is still read (never matching) so its errors show,
 * as in ssh. */
static int include_one(parser *p, src *s, const char *arg) {
  char *pat;
  glob_t g;
  int grc, rc = include_pattern(p, s, arg, &pat);

  if (rc < 0)
    return rc;
  grc = glob(pat, 0, NULL, &g);
  if (grc == GLOB_NOMATCH)
    lsync__log(p->ctx, LSYNC_LOG_DEBUG, "%s:%lu: Include %s matches nothing",
               s->path, s->line, pat);
  else if (grc == GLOB_NOSPACE)
    rc = nomem(p);
  else if (grc != 0)
    rc = bad(p, s, "Include %s failed", arg);
  for (size_t i = 0; grc == 0 && i < g.gl_pathc && rc == 0; i++) {
    src sub = {g.gl_pathv[i], 0, s->depth + 1, s->never || !s->active,
               s->active};
    rc = s->depth >= MAX_DEPTH ? bad(p, s, "Include nested too deeply")
                               : read_file(p, &sub, OPEN_INCLUDED);
  }
  globfree(&g);
  free(pat);
  return rc;
}

static int kw_include(parser *p, src *s, char **argv, size_t argc) {
  int rc = 0;

  for (size_t i = 0; i < argc && rc == 0; i++)
    rc = include_one(p, s, argv[i]);
  return rc;
}

/* ---- loading ---------------------------------------------------------- */

static int expand_value(parser *p, char **v, const char *what, const token *t,
                        size_t nt) {
  char *out, key;
  int rc = expand(*v, t, nt, &out, &key);

  if (rc == LSYNC_EINVAL)
    return lsync__fail(p->ctx, rc,
                       "ssh config: %s %s: nothing for %%%c (no home "
                       "directory or user name)",
                       what, *v, key);
  if (rc < 0)
    return nomem(p);
  free(*v);
  *v = out;
  return 0;
}

/* The tokens that need the final User and HostName. */
static int finish(parser *p) {
  lsync_sshconf *c = p->c;
  const token t[] = {{'d', c->home},
                     {'u', c->local_user},
                     {'r', c->user ? c->user : c->local_user},
                     {'h', c->hostname ? c->hostname : c->given}};
  int rc = 0;

  for (size_t i = 0; i < c->nids && rc == 0; i++)
    rc = expand_value(p, &c->ids[i], "IdentityFile", t, 4);
  if (rc == 0 && c->known_hosts)
    rc = expand_value(p, &c->known_hosts, "UserKnownHostsFile", t, 4);
  return rc;
}

int lsync_sshconf_load(lsync_ctx *ctx, const char *path, const char *host,
                       lsync_sshconf **out) {
  parser p = {ctx, NULL, 0};
  src s = {path, 0, 0, 0, 1};
  char *dflt = NULL;
  int rc;

  if (!out || !host || !*host)
    return lsync__fail(ctx, LSYNC_EINVAL, "ssh config: a host name is needed");
  *out = NULL;
  if (!(p.c = calloc(1, sizeof *p.c)) || !(p.c->given = strdup(host))) {
    lsync_sshconf_free(p.c);
    return nomem(&p);
  }
  rc = who_am_i(&p);
  if (rc == 0 && !path) {
    if (!p.c->home)
      rc = lsync__fail(ctx, LSYNC_ENOENT,
                       "ssh config: no home directory to find it in");
    else if (!(s.path = dflt = join_home(p.c->home, "/.ssh/config", 0)))
      rc = nomem(&p);
  }
  if (rc == 0)
    rc = read_file(&p, &s, path ? OPEN_MUST : OPEN_MAY_MISS);
  if (rc == 0)
    rc = finish(&p);
  free(dflt);
  if (rc < 0) {
    lsync_sshconf_free(p.c);
    return rc;
  }
  *out = p.c;
  return 0;
}

void lsync_sshconf_opts(const lsync_sshconf *c, lsync_ssh_opts *o) {
  o->host = c->hostname ? c->hostname : c->given;
  o->port = c->port;
  o->user = c->user;
  o->identity_files = c->nids ? (const char *const *)c->ids : NULL;
  o->known_hosts = c->known_hosts;
  o->host_key_alias = c->host_key_alias;
  o->accept_new_host = c->accept_new;
  o->timeout_ms = c->timeout_ms;
}

void lsync_sshconf_free(lsync_sshconf *c) {
  if (!c)
    return;
  for (size_t i = 0; i < c->nids; i++)
    free(c->ids[i]);
  free(c->ids);
  free(c->given);
  free(c->hostname);
  free(c->user);
  free(c->known_hosts);
  free(c->host_key_alias);
  free(c->home);
  free(c->local_user);
  free(c);
}
