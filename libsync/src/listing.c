/*
 * Listing commands: run a command that prints GNU find records
 * ("%y %m %s %T@ %D %i %n %U %G %P\0%l\0"), read its stdout, parse each
 * record into an lsync_entry and apply the filter, so a remote tree (find
 * over ssh) chunks like a local crawl.  The record of the listed directory
 * itself (empty path) is kept aside: a quick check compares roots.
 *
 * The child's stderr goes to an unlinked temporary file rather than a
 * second pipe: reading one pipe while the child blocks writing the other
 * would deadlock, and only the last line matters (the error message).
 *
 * Killing and reaping: only the consumer reaps the child, and it first
 * waits without reaping (waitid WNOWAIT) and then marks the child reaped
 * under the mutex, so cancel() on another thread can kill() an unreaped
 * pid without ever hitting a recycled one.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "listing.h"

#define BUF_START (64 * 1024)
#define RECORD_MAX (16 * 1024 * 1024)
#define FNV_INIT 14695981039346656037ULL
#define FNV_PRIME 1099511628211ULL

/* Excluded directories, so their subtrees are dropped by path prefix
 * whatever order the records come in (after the directory itself). */
struct exslot {
  uint64_t hash;
  char *path; /* NULL: empty slot */
  size_t len;
};

struct exset {
  struct exslot *slots;
  size_t cap, n; /* cap is 0 or a power of two */
};

struct lsync__listing {
  lsync_ctx *ctx;
  const lsync_filter *filter;
  int out_fd, err_fd, wake_rd, wake_wr;
  pthread_mutex_t mu; /* pid and reaped, for cancel() */
  pid_t pid;          /* 0: never started */
  int reaped;
  atomic_int cancel;
  int status; /* wait status once reaped */
  int eof;
  int ended; /* next() returned its last result, final_rc */
  int final_rc;
  char *buf;
  size_t off, len, cap; /* unread bytes are buf[off, len) */
  uint64_t recno;
  lsync_entry e;
  lsync_entry root; /* the empty-path record, if has_root */
  int has_root;
  lsync_scan_stats stats;
  struct exset excl;
};

/* ---- excluded directories ---------------------------------------------- */

static uint64_t fnv(uint64_t h, unsigned char c) {
  return (h ^ c) * FNV_PRIME;
}

static int exset_has(const struct exset *s, uint64_t h, const char *p,
                     size_t len) {
  for (size_t i = h & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
    const struct exslot *e = &s->slots[i];
    if (!e->path)
      return 0;
    if (e->hash == h && e->len == len && memcmp(e->path, p, len) == 0)
      return 1;
  }
}

static void exset_put(struct exset *s, struct exslot e) {
  size_t i = e.hash & (s->cap - 1);
  while (s->slots[i].path)
    i = (i + 1) & (s->cap - 1);
  s->slots[i] = e;
  s->n++;
}

static int exset_add(struct exset *s, const char *p, size_t len) {
  if (2 * (s->n + 1) > s->cap) {
    struct exset g = {calloc(s->cap ? s->cap * 2 : 16, sizeof *g.slots),
                      s->cap ? s->cap * 2 : 16, 0};
    if (!g.slots)
      return LSYNC_ENOMEM;
    for (size_t i = 0; i < s->cap; i++)
      if (s->slots[i].path)
        exset_put(&g, s->slots[i]);
    free(s->slots);
    *s = g;
  }
  uint64_t h = FNV_INIT;
  for (size_t i = 0; i < len; i++)
    h = fnv(h, (unsigned char)p[i]);
  struct exslot e = {h, malloc(len + 1), len};
  if (!e.path)
    return LSYNC_ENOMEM;
  memcpy(e.path, p, len + 1);
  exset_put(s, e);
  return 0;
}

/* Whether a proper ancestor of p is an excluded directory.  The hash of
 * each prefix falls out of one pass over the path. */
static int exset_covers(const struct exset *s, const char *p, size_t len) {
  if (!s->n)
    return 0;
  uint64_t h = FNV_INIT;
  for (size_t i = 0; i < len; i++) {
    if (p[i] == '/' && exset_has(s, h, p, i))
      return 1;
    h = fnv(h, (unsigned char)p[i]);
  }
  return 0;
}

static void exset_free(struct exset *s) {
  for (size_t i = 0; i < s->cap; i++)
    free(s->slots[i].path);
  free(s->slots);
}

/* ---- records ----------------------------------------------------------- */

struct cursor {
  const char *p, *end;
};

/* Digits in base `base` up to a space or '.', at least one, no overflow
 * past max.  Returns the number of digits, or -1. */
static int digits(struct cursor *c, unsigned base, uint64_t max,
                  uint64_t *out) {
  const char *s = c->p;
  uint64_t v = 0;
  for (; s < c->end && *s != ' ' && *s != '.'; s++) {
    unsigned d = (unsigned)(unsigned char)*s - '0';
    if (d >= base || v > (max - d) / base)
      return -1;
    v = v * base + d;
  }
  int n = (int)(s - c->p);
  c->p = s;
  *out = v;
  return n > 0 ? n : -1;
}

/* A whole number field followed by its space. */
static int field(struct cursor *c, unsigned base, uint64_t max, uint64_t *out) {
  if (digits(c, base, max, out) < 0 || c->p >= c->end || *c->p != ' ')
    return -1;
  c->p++;
  return 0;
}

/* %T@: seconds with an optional sign and fraction, then a space. */
static int field_time(struct cursor *c, int64_t *sec, int32_t *nsec) {
  int neg = c->p < c->end && *c->p == '-';
  uint64_t s, frac = 0;
  c->p += neg;
  if (digits(c, 10, INT64_MAX - 1, &s) < 0)
    return -1;
  if (c->p < c->end && *c->p == '.') {
    c->p++;
    const char *start = c->p;
    for (; c->p < c->end && *c->p >= '0' && *c->p <= '9'; c->p++)
      if (c->p - start < 9)
        frac = frac * 10 + (uint64_t)(*c->p - '0');
    if (c->p == start)
      return -1;
    for (ptrdiff_t k = c->p - start; k < 9; k++)
      frac *= 10;
  }
  if (c->p >= c->end || *c->p != ' ')
    return -1;
  c->p++;
  *sec = neg ? -(int64_t)s : (int64_t)s;
  *nsec = (int32_t)frac;
  if (neg && frac) { /* -1.25 is 2 seconds before the epoch plus 0.75 */
    *sec -= 1;
    *nsec = (int32_t)(1000000000 - frac);
  }
  return 0;
}

static int type_of(char y, lsync_type *t) {
  static const char letters[] = "fdlpscb";
  static const lsync_type types[] = {
      LSYNC_T_FILE,   LSYNC_T_DIR,  LSYNC_T_SYMLINK, LSYNC_T_FIFO,
      LSYNC_T_SOCKET, LSYNC_T_CHAR, LSYNC_T_BLOCK};
  const char *k = y ? strchr(letters, y) : NULL;
  if (k) {
    *t = types[k - letters];
    return 0;
  }
  /* Doors, unknown types and entries find could not stat. */
  *t = LSYNC_T_UNKNOWN;
  return y == 'D' || y == 'U' || y == '?' ? 0 : -1;
}

/* Relative, no empty, "." or ".." component: a listing must not name
 * anything outside its tree, whoever produced it. */
static int path_ok(const char *p, size_t n) {
  size_t start = 0;
  for (size_t i = 0; i <= n; i++) {
    if (i < n && p[i] != '/')
      continue;
    size_t len = i - start;
    if (len == 0 || (len == 1 && p[start] == '.') ||
        (len == 2 && p[start] == '.' && p[start + 1] == '.'))
      return 0;
    start = i + 1;
  }
  return 1;
}

/* Parse rec[0, n) (NUL at rec[n]) and the link target tgt[0, tn) (NUL at
 * tgt[tn]) into l->e.  "" on success, or what is wrong with the record. */
static const char *parse(lsync__listing *l, const char *rec, size_t n,
                         const char *tgt, size_t tn) {
  struct cursor c = {rec, rec + n};
  lsync_entry *e = &l->e;
  uint64_t mode, size, dev, ino, nlink, uid, gid;
  if (n < 2 || rec[1] != ' ' || type_of(rec[0], &e->type) < 0)
    return "bad type";
  c.p += 2;
  if (field(&c, 8, 07777, &mode) < 0)
    return "bad mode";
  if (field(&c, 10, UINT64_MAX, &size) < 0)
    return "bad size";
  if (field_time(&c, &e->mtime, &e->mtime_nsec) < 0)
    return "bad time";
  if (field(&c, 10, UINT64_MAX, &dev) < 0)
    return "bad device";
  if (field(&c, 10, UINT64_MAX, &ino) < 0)
    return "bad inode";
  if (field(&c, 10, UINT64_MAX, &nlink) < 0)
    return "bad link count";
  if (field(&c, 10, UINT32_MAX, &uid) < 0)
    return "bad uid";
  if (field(&c, 10, UINT32_MAX, &gid) < 0)
    return "bad gid";
  /* find prints %l empty for anything but a symlink: a target elsewhere
   * means the fields are not the ones we think (another -printf). */
  if (tn && e->type != LSYNC_T_SYMLINK)
    return "link target on a non-symlink";
  e->path = c.p;
  e->path_len = (size_t)(c.end - c.p);
  if (e->path_len && !path_ok(e->path, e->path_len))
    return "bad path";
  e->mode = (uint32_t)mode;
  /* Like the crawl: find prints a directory's block size, rsync and the
   * chunker only care about file contents and link targets. */
  e->size = e->type == LSYNC_T_FILE || e->type == LSYNC_T_SYMLINK ? size : 0;
  e->dev = dev;
  e->ino = ino;
  e->nlink = nlink;
  e->uid = (uint32_t)uid;
  e->gid = (uint32_t)gid;
  e->link_target = e->type == LSYNC_T_SYMLINK ? tgt : NULL;
  e->link_target_len = e->type == LSYNC_T_SYMLINK ? tn : 0;
  return "";
}

/* One record: 1 to yield l->e, 0 to skip it, negative when malformed. */
static int take_record(lsync__listing *l, const char *rec, size_t n,
                       const char *tgt, size_t tn) {
  l->recno++;
  const char *bad = parse(l, rec, n, tgt, tn);
  if (*bad)
    return lsync__fail(l->ctx, LSYNC_EIO,
                       "listing: malformed record %" PRIu64 " (%s)", l->recno,
                       bad);
  const lsync_entry *e = &l->e;
  /* The start directory itself (-mindepth 0) is not an entry, but a
   * quick check wants its attributes; its target is not kept (the buffer
   * moves on). */
  if (!e->path_len) {
    l->root = *e;
    l->root.link_target = NULL;
    l->root.link_target_len = 0;
    l->has_root = 1;
    return 0;
  }
  if (exset_covers(&l->excl, e->path, e->path_len))
    return 0;
  int is_dir = e->type == LSYNC_T_DIR;
  if (l->filter &&
      lsync_filter_excludes(l->filter, e->path, e->path_len, is_dir)) {
    l->stats.excluded++;
    if (is_dir && exset_add(&l->excl, e->path, e->path_len) < 0)
      return lsync__fail(l->ctx, LSYNC_ENOMEM, "listing: out of memory");
    return 0;
  }
  l->stats.entries++;
  l->stats.dirs += is_dir;
  l->stats.bytes += e->size;
  l->stats.dirs_unwritable += is_dir && !(e->mode & 0200);
  return 1;
}

/* ---- the child --------------------------------------------------------- */

static int stderr_file(void) {
  const char *dir = getenv("TMPDIR");
  if (!dir || !*dir)
    dir = "/tmp";
  int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0)
    return fd;
  /* Filesystems without O_TMPFILE: a named file, unlinked at once. */
  char path[PATH_MAX];
  if (snprintf(path, sizeof path, "%s/syncplan-listing-XXXXXX", dir) >=
      (int)sizeof path) {
    errno = ENAMETOOLONG;
    return -1;
  }
  fd = mkostemp(path, O_CLOEXEC);
  if (fd >= 0)
    unlink(path);
  return fd;
}

static int spawn(lsync__listing *l, const char *const *argv, int out_wr) {
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  sigset_t none, dfl;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out_wr, 1);
  posix_spawn_file_actions_adddup2(&fa, l->err_fd, 2);
  /* Ignored signals survive exec: a host that ignores SIGPIPE or SIGCHLD
   * must not hand that to find or ssh. */
  sigemptyset(&none);
  sigemptyset(&dfl);
  int sigs[] = {SIGPIPE, SIGCHLD, SIGINT, SIGQUIT, SIGTERM, SIGHUP};
  for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++)
    sigaddset(&dfl, sigs[i]);
  posix_spawnattr_init(&at);
  posix_spawnattr_setsigmask(&at, &none);
  posix_spawnattr_setsigdefault(&at, &dfl);
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid;
  int rc = posix_spawnp(&pid, argv[0], &fa, &at, (char *const *)argv, environ);
  posix_spawnattr_destroy(&at);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    char esc[256];
    return lsync__fail_errno(
        l->ctx, rc, "cannot run listing command '%s'",
        lsync__escape(esc, sizeof esc, argv[0], strlen(argv[0])));
  }
  l->pid = pid;
  return 0;
}

static void kill_child(lsync__listing *l) {
  pthread_mutex_lock(&l->mu);
  if (l->pid > 0 && !l->reaped)
    kill(l->pid, SIGKILL);
  pthread_mutex_unlock(&l->mu);
}

/* Consumer only.  See the file comment for why waitid comes first. */
static void reap(lsync__listing *l) {
  if (l->pid <= 0 || l->reaped)
    return;
  siginfo_t si;
  int rc;
  while ((rc = waitid(P_PID, (id_t)l->pid, &si, WEXITED | WNOWAIT)) < 0 &&
         errno == EINTR)
    ;
  pthread_mutex_lock(&l->mu);
  l->reaped = 1;
  pthread_mutex_unlock(&l->mu);
  l->status = 0;
  /* ECHILD: the host reaps children itself (SIGCHLD ignored); the exit
   * status is lost and the records have to speak for themselves. */
  if (rc == 0)
    while (waitpid(l->pid, &l->status, 0) < 0 && errno == EINTR)
      ;
}

static void close_fd(int *fd) {
  if (*fd >= 0)
    close(*fd);
  *fd = -1;
}

/* The last non-empty line of the child's stderr, control bytes blanked. */
static void last_line(int fd, char *out, size_t n) {
  char tail[512];
  struct stat st;
  out[0] = '\0';
  if (fd < 0 || fstat(fd, &st) < 0)
    return;
  off_t at =
      st.st_size > (off_t)sizeof tail ? st.st_size - (off_t)sizeof tail : 0;
  ssize_t got = pread(fd, tail, sizeof tail, at);
  size_t end = got > 0 ? (size_t)got : 0;
  while (end && (unsigned char)tail[end - 1] <= ' ')
    end--;
  size_t start = end;
  while (start && tail[start - 1] != '\n')
    start--;
  size_t len = end - start < n - 1 ? end - start : n - 1;
  for (size_t i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)tail[start + i];
    out[i] = ch < ' ' || ch == 0x7f ? ' ' : (char)ch;
  }
  out[len] = '\0';
}

/* The command's verdict once reaped: 0, or LSYNC_EIO with its message. */
static int verdict(lsync__listing *l) {
  char line[400], what[40];
  last_line(l->err_fd, line, sizeof line);
  int st = l->status;
  if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
    if (*line) /* e.g. an ssh warning: worth seeing, not a failure */
      lsync__log(l->ctx, LSYNC_LOG_WARN, "listing command: %s", line);
    return 0;
  }
  if (WIFEXITED(st))
    snprintf(what, sizeof what, "exit %d", WEXITSTATUS(st));
  else
    snprintf(what, sizeof what, "killed by signal %d", WTERMSIG(st));
  return lsync__fail(l->ctx, LSYNC_EIO, "listing command failed (%s)%s%s", what,
                     *line ? ": " : "", line);
}

/* Stop reading for good: rc is 0 at EOF, or why we stop early. */
static int finish(lsync__listing *l, int rc) {
  if (rc < 0)
    kill_child(l);
  close_fd(&l->out_fd); /* a surviving grandchild gets EPIPE */
  reap(l);
  if (rc == 0) {
    rc = verdict(l);
    /* A command that failed explains a cut record better than we do. */
    if (rc == 0 && l->off < l->len)
      rc = lsync__fail(l->ctx, LSYNC_EIO,
                       "listing: malformed record %" PRIu64
                       " (truncated: its path or link target lacks a NUL)",
                       l->recno + 1);
  }
  close_fd(&l->err_fd);
  l->ended = 1;
  l->final_rc = rc;
  return rc;
}

/* Read more of stdout into the buffer, or learn of EOF. */
static int fill(lsync__listing *l) {
  if (l->off > 0) {
    memmove(l->buf, l->buf + l->off, l->len - l->off);
    l->len -= l->off;
    l->off = 0;
  }
  if (l->len == l->cap) {
    if (l->cap >= RECORD_MAX)
      return lsync__fail(l->ctx, LSYNC_EIO,
                         "listing: malformed record %" PRIu64
                         " (longer than %d bytes)",
                         l->recno + 1, RECORD_MAX);
    char *b = realloc(l->buf, l->cap * 2);
    if (!b)
      return lsync__fail(l->ctx, LSYNC_ENOMEM, "listing: out of memory");
    l->buf = b;
    l->cap *= 2;
  }
  struct pollfd fds[2] = {{l->out_fd, POLLIN, 0}, {l->wake_rd, POLLIN, 0}};
  for (;;) {
    if (atomic_load(&l->cancel))
      return lsync__fail(l->ctx, LSYNC_ECANCELED, "listing canceled");
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR)
        continue;
      return lsync__fail_errno(l->ctx, errno, "listing: poll");
    }
    if (fds[1].revents)
      continue; /* cancel() woke us: the check above returns */
    ssize_t n = read(l->out_fd, l->buf + l->len, l->cap - l->len);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
      continue;
    if (n < 0)
      return lsync__fail_errno(l->ctx, errno, "listing: reading the command");
    l->len += (size_t)n;
    l->eof = n == 0;
    return 0;
  }
}

/* ---- the interface ----------------------------------------------------- */

int lsync__listing_open(lsync_ctx *ctx, const char *const *argv,
                        const lsync_filter *filter, lsync__listing **out) {
  *out = NULL;
  if (!argv || !argv[0] || !*argv[0])
    return lsync__fail(ctx, LSYNC_EINVAL, "listing: empty command");
  lsync__listing *l = calloc(1, sizeof *l);
  if (!l || !(l->buf = malloc(BUF_START))) {
    free(l);
    return lsync__fail(ctx, LSYNC_ENOMEM, "listing: out of memory");
  }
  l->ctx = ctx;
  l->filter = filter;
  l->cap = BUF_START;
  l->out_fd = l->err_fd = l->wake_rd = l->wake_wr = -1;
  pthread_mutex_init(&l->mu, NULL);
  atomic_init(&l->cancel, 0);
  int outp[2], wake[2], rc;
  if (pipe2(outp, O_CLOEXEC) < 0) {
    rc = lsync__fail_errno(ctx, errno, "listing: pipe");
  } else {
    l->out_fd = outp[0];
    if (pipe2(wake, O_CLOEXEC | O_NONBLOCK) < 0) {
      rc = lsync__fail_errno(ctx, errno, "listing: pipe");
    } else {
      l->wake_rd = wake[0];
      l->wake_wr = wake[1];
      l->err_fd = stderr_file();
      rc = l->err_fd < 0
               ? lsync__fail_errno(ctx, errno, "listing: temporary file")
               : spawn(l, argv, outp[1]);
    }
    close(outp[1]); /* the child's copy is the only writer left */
  }
  if (rc < 0) {
    lsync__listing_close(l);
    return rc;
  }
  *out = l;
  return 0;
}

int lsync__listing_next(lsync__listing *l, const lsync_entry **out) {
  for (;;) {
    if (l->ended)
      return l->final_rc;
    /* A record is two NUL-terminated strings: fields and path, then the
     * link target. */
    char *rec = l->buf + l->off, *end = l->buf + l->len;
    char *nul = memchr(rec, '\0', (size_t)(end - rec));
    char *nul2 = nul ? memchr(nul + 1, '\0', (size_t)(end - nul - 1)) : NULL;
    if (nul2) {
      l->off += (size_t)(nul2 - rec) + 1;
      int rc = take_record(l, rec, (size_t)(nul - rec), nul + 1,
                           (size_t)(nul2 - nul - 1));
      if (rc < 0)
        return finish(l, rc);
      if (rc > 0) {
        *out = &l->e;
        return 1;
      }
      continue;
    }
    if (l->eof)
      return finish(l, 0);
    int rc = fill(l);
    if (rc < 0)
      return finish(l, rc);
  }
}

void lsync__listing_get_stats(const lsync__listing *l, lsync_scan_stats *out) {
  *out = l->stats;
}

int lsync__listing_root(const lsync__listing *l, lsync_entry *out) {
  if (!l->has_root)
    return 0;
  *out = l->root;
  out->path = "";
  return 1;
}

void lsync__listing_cancel(lsync__listing *l) {
  atomic_store(&l->cancel, 1);
  ssize_t w = write(l->wake_wr, "", 1);
  (void)w; /* a full wake pipe already wakes the reader */
  kill_child(l);
}

void lsync__listing_close(lsync__listing *l) {
  if (!l)
    return;
  if (!l->ended) {
    kill_child(l);
    close_fd(&l->out_fd);
    reap(l);
  }
  close_fd(&l->out_fd);
  close_fd(&l->err_fd);
  close_fd(&l->wake_rd);
  close_fd(&l->wake_wr);
  pthread_mutex_destroy(&l->mu);
  exset_free(&l->excl);
  free(l->buf);
  free(l);
}
