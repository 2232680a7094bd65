/*
 * Parallel tree crawl.
 *
 * Threads share a LIFO stack of directories still to read (LIFO keeps the
 * walk depth-first, so the stack grows with depth times fan-out, not with
 * the tree).  A thread pops a directory, reads it with getdents64 + fstatat
 * relative to the directory's fd, drops what the filter excludes, pushes
 * subdirectories and appends entries to a batch it owns.  Full batches go
 * to a FIFO that the consumer drains in lsync_scan_next().
 *
 * Batches are recycled through a free list and their number is capped, so
 * a consumer that stops reading stops the crawl (back-pressure) and memory
 * stays bounded whatever the tree size.  Only the consumer touches the
 * context and runs callbacks: errors found by threads travel in the batch
 * as records and are reported when the consumer reaches them.
 *
 * Termination: `busy` counts threads reading a directory; when the stack is
 * empty and nobody is busy, no more directories can appear and the threads
 * exit; the last one marks the scan done.
 *
 * Collecting consumers (COUNT and TOPLEVEL chunking keep every entry
 * anyway) lift the batch cap, and the consumer reads directories itself
 * whenever it has nothing to consume (consumer_help).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

#define BATCH_RECS 128
#define BATCH_STR (8 * 1024)
#define DIR_PUSH_BATCH 16
#define MAX_THREADS 64

struct rec {
  size_t off; /* path offset in the batch's string area */
  int err;    /* non-zero: an error record (errno), not an entry */
  lsync_entry e;
};

struct batch {
  struct batch *next;
  size_t n;
  char *str;
  size_t str_len, str_cap;
  struct rec recs[BATCH_RECS];
};

struct dir_item {
  struct dir_item *next;
  size_t len;
  char path[];
};

struct lsync_scan {
  lsync_ctx *ctx;
  int rootfd;
  dev_t root_dev;
  lsync_scan_opts opts;

  /* Two locks, so walkers trading directories do not contend with the
   * consumer taking batches.  Never held together. */
  pthread_mutex_t work_mu; /* stack, busy */
  pthread_cond_t work_cv;  /* stack non-empty, or the crawl is over */
  struct dir_item *stack;
  unsigned busy;

  pthread_mutex_t out_mu; /* the fields below, up to nbatches */
  pthread_cond_t out_cv;  /* a batch is ready, or all threads are gone */
  pthread_cond_t free_cv; /* a batch can be had */
  unsigned live;          /* threads still running */
  struct batch *out_head, *out_tail;
  unsigned out_len;
  int consumer_waiting;
  struct batch *free_list;
  unsigned nbatches, max_batches;
  pthread_t *threads;
  struct walker *walkers;
  unsigned nthreads;

  atomic_int cancel;
  atomic_int fatal; /* LSYNC_ENOMEM from a thread */

  /* Collecting scans only: the consumer's own walker state. */
  struct walker *helper;

  /* consumer side only */
  struct batch *cur;
  size_t cur_i;
  lsync_scan_stats stats;
  atomic_uint_least64_t dirs, excluded;
};

/* Per-thread state. */
struct walker {
  lsync_scan *s;
  struct batch *b;
  char *path;
  size_t path_cap;
  struct dir_item *pending; /* subdirectories not yet pushed */
  unsigned npending;
  _Alignas(8) char dents[16 * 1024];
};

void lsync_scan_opts_init(lsync_scan_opts *opts) {
  memset(opts, 0, sizeof *opts);
}

const char *lsync_type_name(lsync_type t) {
  switch (t) {
  case LSYNC_T_FILE:
    return "file";
  case LSYNC_T_DIR:
    return "dir";
  case LSYNC_T_SYMLINK:
    return "symlink";
  case LSYNC_T_FIFO:
    return "fifo";
  case LSYNC_T_SOCKET:
    return "socket";
  case LSYNC_T_CHAR:
    return "char";
  case LSYNC_T_BLOCK:
    return "block";
  default:
    return "unknown";
  }
}

static lsync_type type_of(mode_t m) {
  switch (m & S_IFMT) {
  case S_IFREG:
    return LSYNC_T_FILE;
  case S_IFDIR:
    return LSYNC_T_DIR;
  case S_IFLNK:
    return LSYNC_T_SYMLINK;
  case S_IFIFO:
    return LSYNC_T_FIFO;
  case S_IFSOCK:
    return LSYNC_T_SOCKET;
  case S_IFCHR:
    return LSYNC_T_CHAR;
  case S_IFBLK:
    return LSYNC_T_BLOCK;
  default:
    return LSYNC_T_UNKNOWN;
  }
}

/* Stop everything: walkers and consumer re-check `cancel` when woken.
 * Called with no lock held. */
static void scan_cancel(lsync_scan *s, int fatal) {
  int none = 0;
  if (fatal)
    atomic_compare_exchange_strong(&s->fatal, &none, fatal);
  atomic_store(&s->cancel, 1);
  pthread_mutex_lock(&s->work_mu);
  pthread_cond_broadcast(&s->work_cv);
  pthread_mutex_unlock(&s->work_mu);
  pthread_mutex_lock(&s->out_mu);
  pthread_cond_broadcast(&s->free_cv);
  pthread_cond_broadcast(&s->out_cv);
  pthread_mutex_unlock(&s->out_mu);
}

/* ---- batches (called with out_mu held) --------------------------------- */

/* NULL when cancelled or out of memory (*nomem set). */
static struct batch *batch_get_locked(lsync_scan *s, int *nomem) {
  for (;;) {
    if (atomic_load(&s->cancel))
      return NULL;
    if (s->free_list) {
      struct batch *b = s->free_list;
      s->free_list = b->next;
      b->next = NULL;
      b->n = 0;
      b->str_len = 0;
      return b;
    }
    if (s->nbatches < s->max_batches) {
      struct batch *b = malloc(sizeof *b);
      char *str = malloc(BATCH_STR);
      if (!b || !str) {
        free(b);
        free(str);
        *nomem = 1;
        return NULL;
      }
      b->next = NULL;
      b->n = 0;
      b->str = str;
      b->str_len = 0;
      b->str_cap = BATCH_STR;
      s->nbatches++;
      return b;
    }
    /* Out of batches: the consumer must run to free one. */
    if (s->consumer_waiting)
      pthread_cond_signal(&s->out_cv);
    pthread_cond_wait(&s->free_cv, &s->out_mu);
  }
}

static void batch_release_locked(lsync_scan *s, struct batch *b) {
  b->next = s->free_list;
  s->free_list = b;
  pthread_cond_signal(&s->free_cv);
}

/* Queue a filled batch.  Waking the consumer for every batch costs a
 * context switch each (a thousand per 50,000 entries on two cores), so a
 * plain push wakes it only once two batches wait; `urgent` pushes (a
 * walker going idle or exiting) always wake it, and so does a walker that
 * runs out of batches, so nothing waits forever. */
static void batch_push_locked(lsync_scan *s, struct batch *b, int urgent) {
  b->next = NULL;
  if (s->out_tail)
    s->out_tail->next = b;
  else
    s->out_head = b;
  s->out_tail = b;
  s->out_len++;
  if (s->consumer_waiting && (urgent || s->out_len >= 2))
    pthread_cond_signal(&s->out_cv);
}

static void batch_free(struct batch *b) {
  if (b) {
    free(b->str);
    free(b);
  }
}

/* ---- walker ------------------------------------------------------------ */

/* Make room for one record with a path of len bytes; 0 or -1 (cancelled
 * or out of memory). */
static int walker_room(struct walker *w, size_t len) {
  struct batch *b = w->b;
  if (b && b->n < BATCH_RECS && b->str_len + len + 1 <= b->str_cap)
    return 0;
  if (b && b->n == 0) {
    /* A path longer than a whole batch's string area: grow this batch. */
    char *str = realloc(b->str, len + 1);
    if (!str)
      goto nomem;
    b->str = str;
    b->str_cap = len + 1;
    return 0;
  }
  int nomem = 0;
  pthread_mutex_lock(&w->s->out_mu);
  if (b)
    batch_push_locked(w->s, b, 0);
  w->b = batch_get_locked(w->s, &nomem);
  pthread_mutex_unlock(&w->s->out_mu);
  if (w->b)
    return walker_room(w, len);
  if (!nomem)
    return -1;
nomem:
  scan_cancel(w->s, LSYNC_ENOMEM);
  return -1;
}

static struct rec *walker_add(struct walker *w, const char *path, size_t len) {
  if (walker_room(w, len) < 0)
    return NULL;
  struct batch *b = w->b;
  struct rec *r = &b->recs[b->n++];
  r->off = b->str_len;
  memcpy(b->str + b->str_len, path, len);
  b->str[b->str_len + len] = '\0';
  b->str_len += len + 1;
  r->err = 0;
  r->e.path_len = len;
  return r;
}

static void walker_error(struct walker *w, const char *path, size_t len,
                         int err) {
  struct rec *r = walker_add(w, path, len);
  if (r)
    r->err = err ? err : EIO;
}

static void walker_flush_dirs(struct walker *w) {
  if (!w->pending)
    return;
  struct dir_item *last = w->pending;
  while (last->next)
    last = last->next;
  pthread_mutex_lock(&w->s->work_mu);
  last->next = w->s->stack;
  w->s->stack = w->pending;
  if (w->npending > 1)
    pthread_cond_broadcast(&w->s->work_cv);
  else
    pthread_cond_signal(&w->s->work_cv);
  pthread_mutex_unlock(&w->s->work_mu);
  w->pending = NULL;
  w->npending = 0;
}

static int walker_defer_dir(struct walker *w, const char *path, size_t len) {
  struct dir_item *d = malloc(sizeof *d + len + 1);
  if (!d) {
    scan_cancel(w->s, LSYNC_ENOMEM);
    return -1;
  }
  d->len = len;
  memcpy(d->path, path, len);
  d->path[len] = '\0';
  d->next = w->pending;
  w->pending = d;
  /* Share work early in wide directories so idle threads can start. */
  if (++w->npending >= DIR_PUSH_BATCH)
    walker_flush_dirs(w);
  return 0;
}

/* Open a directory below the root. */
static int open_dir(lsync_scan *s, const char *path, size_t len) {
  return lsync__open_below(s->rootfd, path, len, O_RDONLY | O_DIRECTORY);
}

static int walker_path(struct walker *w, const struct dir_item *dir,
                       const char *name, size_t nlen, size_t *out_len) {
  size_t len = dir->len ? dir->len + 1 + nlen : nlen;
  if (len + 1 > w->path_cap) {
    size_t cap = w->path_cap * 2 > len + 1 ? w->path_cap * 2 : len + 1;
    char *p = realloc(w->path, cap);
    if (!p)
      return -1;
    w->path = p;
    w->path_cap = cap;
  }
  char *p = w->path;
  if (dir->len) {
    memcpy(p, dir->path, dir->len);
    p[dir->len] = '/';
    p += dir->len + 1;
  }
  memcpy(p, name, nlen);
  p[nlen] = '\0';
  *out_len = len;
  return 0;
}

static void fill_entry(lsync_entry *e, const struct stat *st) {
  e->type = type_of(st->st_mode);
  e->mode = (uint32_t)(st->st_mode & 07777);
  e->size = (e->type == LSYNC_T_FILE || e->type == LSYNC_T_SYMLINK)
                ? (uint64_t)st->st_size
                : 0;
  e->mtime = (int64_t)st->st_mtim.tv_sec;
  e->mtime_nsec = (int32_t)st->st_mtim.tv_nsec;
  e->dev = (uint64_t)st->st_dev;
  e->ino = (uint64_t)st->st_ino;
  e->nlink = (uint64_t)st->st_nlink;
  e->uid = (uint32_t)st->st_uid;
  e->gid = (uint32_t)st->st_gid;
  e->link_target = NULL;
  e->link_target_len = 0;
}

/* One directory entry: stat it, filter it, record it, maybe queue it. */
static int walker_visit(struct walker *w, int dfd, const struct dir_item *dir,
                        const char *name) {
  lsync_scan *s = w->s;
  size_t len, nlen = strlen(name);
  if (walker_path(w, dir, name, nlen, &len) < 0)
    return -1;
  struct stat st;
  if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
    if (errno != ENOENT) /* vanished since readdir: not an error */
      walker_error(w, w->path, len, errno);
    return 0;
  }
  int is_dir = S_ISDIR(st.st_mode);
  if (s->opts.filter &&
      lsync_filter_excludes(s->opts.filter, w->path, len, is_dir)) {
    atomic_fetch_add_explicit(&s->excluded, 1, memory_order_relaxed);
    return 0;
  }
  struct rec *r = walker_add(w, w->path, len);
  if (!r)
    return -1;
  fill_entry(&r->e, &st);
  if (is_dir && (!s->opts.one_filesystem || st.st_dev == s->root_dev))
    return walker_defer_dir(w, w->path, len);
  return 0;
}

/* The kernel's directory record, as getdents64(2) returns it. */
struct dirent64_rec {
  uint64_t d_ino;
  int64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[];
};

static int walker_read_dir(struct walker *w, const struct dir_item *dir) {
  int fd = open_dir(w->s, dir->path, dir->len);
  if (fd < 0) {
    walker_error(w, dir->path, dir->len, errno);
    return 0;
  }
  /* getdents64 straight into a per-thread buffer: readdir() would cost a
   * DIR allocation and two fcntl() calls per directory. */
  int rc = 0;
  for (;;) {
    /* Checked per buffer too: excluded or vanished entries never reach a
     * batch, where cancellation is otherwise noticed. */
    if (atomic_load_explicit(&w->s->cancel, memory_order_relaxed)) {
      rc = -1;
      break;
    }
    long n = syscall(SYS_getdents64, fd, w->dents, sizeof w->dents);
    if (n <= 0) {
      /* A failing read must not look like the end of a directory:
       * silently short listings lose data. */
      if (n < 0)
        walker_error(w, dir->path, dir->len, errno);
      break;
    }
    for (long off = 0; off < n && rc == 0;) {
      const struct dirent64_rec *de = (const void *)(w->dents + off);
      off += de->d_reclen;
      const char *nm = de->d_name;
      if (nm[0] == '.' && (nm[1] == '\0' || (nm[1] == '.' && nm[2] == '\0')))
        continue;
      rc = walker_visit(w, fd, dir, nm);
    }
    if (rc < 0)
      break;
  }
  close(fd);
  atomic_fetch_add_explicit(&w->s->dirs, 1, memory_order_relaxed);
  walker_flush_dirs(w);
  return rc;
}

/* Hand the walker's partial batch to the consumer (before idling or
 * exiting, so a streaming consumer is not kept waiting). */
static void walker_hand_over(struct walker *w) {
  lsync_scan *s = w->s;
  pthread_mutex_lock(&s->out_mu);
  if (w->b && w->b->n && !atomic_load(&s->cancel))
    batch_push_locked(s, w->b, 1);
  else if (w->b)
    batch_release_locked(s, w->b);
  w->b = NULL;
  pthread_mutex_unlock(&s->out_mu);
}

/* Take the next directory (busy + 1), or NULL; called with work_mu held. */
static struct dir_item *pop_dir_locked(lsync_scan *s) {
  struct dir_item *d = s->stack;
  if (!d || atomic_load(&s->cancel))
    return NULL;
  s->stack = d->next;
  s->busy++;
  return d;
}

/* Read a popped directory, then give back its busy count; whoever leaves
 * the stack empty and nobody busy wakes the others to see the end. */
static void walker_do_dir(struct walker *w, struct dir_item *d) {
  lsync_scan *s = w->s;
  int rc = walker_read_dir(w, d);
  free(d);
  pthread_mutex_lock(&s->work_mu);
  s->busy--;
  if (!s->stack && !s->busy)
    pthread_cond_broadcast(&s->work_cv);
  pthread_mutex_unlock(&s->work_mu);
  if (rc < 0 && !atomic_load(&s->cancel)) /* cancelled walks return -1 */
    scan_cancel(s, LSYNC_ENOMEM);
}

/* Next directory to read, or NULL when the crawl is over or cancelled. */
static struct dir_item *walker_next_dir(struct walker *w) {
  lsync_scan *s = w->s;
  pthread_mutex_lock(&s->work_mu);
  while (!s->stack && s->busy && !atomic_load(&s->cancel)) {
    if (w->b) {
      pthread_mutex_unlock(&s->work_mu);
      walker_hand_over(w);
      pthread_mutex_lock(&s->work_mu);
      continue;
    }
    pthread_cond_wait(&s->work_cv, &s->work_mu);
  }
  struct dir_item *d = pop_dir_locked(s);
  if (!d) /* over: wake the others so they see it too */
    pthread_cond_broadcast(&s->work_cv);
  pthread_mutex_unlock(&s->work_mu);
  return d;
}

static void *walker_main(void *arg) {
  struct walker *w = arg;
  lsync_scan *s = w->s;
  struct dir_item *d;
  while ((d = walker_next_dir(w)) != NULL)
    walker_do_dir(w, d);
  walker_hand_over(w);
  pthread_mutex_lock(&s->out_mu);
  if (--s->live == 0)
    pthread_cond_broadcast(&s->out_cv);
  pthread_mutex_unlock(&s->out_mu);
  while (w->pending) {
    d = w->pending;
    w->pending = d->next;
    free(d);
  }
  free(w->path);
  w->path = NULL;
  return NULL;
}

/* ---- public API -------------------------------------------------------- */

/* Default crawl threads: one per core, at least 2 (a thread blocked on a
 * slow directory should not stall the crawl), at most 8.  Network
 * filesystems gain from more: the caller's `threads` option. */
static unsigned default_threads(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n < 2 ? 2 : n > 8 ? 8 : (unsigned)n;
}

static int scan_start(lsync_scan *s, unsigned n) {
  struct dir_item *root = calloc(1, sizeof *root + 1);
  s->threads = calloc(n, sizeof *s->threads);
  /* Walker state (with its getdents buffer) comes from this thread's heap,
   * not from a new malloc arena per walker thread. */
  s->walkers = calloc(n, sizeof *s->walkers);
  if (!root || !s->threads || !s->walkers) {
    free(root);
    return lsync__fail(s->ctx, LSYNC_ENOMEM, "scan: out of memory");
  }
  s->stack = root;
  /* One batch being filled per walker, one being read, one spare. */
  s->max_batches = s->helper ? UINT_MAX : n + 2;
  pthread_mutex_lock(&s->out_mu);
  for (unsigned i = 0; i < n; i++) {
    struct walker *w = &s->walkers[s->nthreads];
    w->s = s;
    if (pthread_create(&s->threads[s->nthreads], NULL, walker_main, w) == 0) {
      s->nthreads++;
      s->live++;
    }
  }
  pthread_mutex_unlock(&s->out_mu);
  if (s->nthreads == 0)
    return lsync__fail(s->ctx, LSYNC_ESYS, "scan: cannot start threads");
  return 0;
}

static int scan_open(lsync_ctx *ctx, const char *root,
                     const lsync_scan_opts *opts, int collecting,
                     lsync_scan **out) {
  *out = NULL;
  if (!root || !*root)
    return lsync__fail(ctx, LSYNC_EINVAL, "scan: empty root path");
  lsync_scan *s = calloc(1, sizeof *s);
  if (!s)
    return lsync__fail(ctx, LSYNC_ENOMEM, "scan: out of memory");
  s->ctx = ctx;
  if (opts)
    s->opts = *opts;
  s->rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  struct stat st;
  if (s->rootfd < 0 || fstat(s->rootfd, &st) < 0) {
    int err = lsync__fail_errno(ctx, errno, "cannot open directory '%s'", root);
    if (s->rootfd >= 0)
      close(s->rootfd);
    free(s);
    return err;
  }
  s->root_dev = st.st_dev;
  /* Critical sections are a few instructions: spin briefly before
   * sleeping, a futex sleep costs a context switch. */
  pthread_mutexattr_t ma;
  pthread_mutexattr_init(&ma);
  pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
  pthread_mutex_init(&s->work_mu, &ma);
  pthread_mutex_init(&s->out_mu, &ma);
  pthread_mutexattr_destroy(&ma);
  pthread_cond_init(&s->work_cv, NULL);
  pthread_cond_init(&s->out_cv, NULL);
  pthread_cond_init(&s->free_cv, NULL);
  unsigned n = s->opts.threads ? s->opts.threads : default_threads();
  if (collecting) {
    /* The consumer crawls too, when idle, on top of the n threads: it
     * fills the gaps while they wait on the disk or on each other. */
    if (!(s->helper = calloc(1, sizeof *s->helper))) {
      lsync_scan_close(s);
      return lsync__fail(ctx, LSYNC_ENOMEM, "scan: out of memory");
    }
    s->helper->s = s;
  }
  if (n > MAX_THREADS)
    n = MAX_THREADS;
  int rc = scan_start(s, n);
  if (rc < 0) {
    lsync_scan_close(s);
    return rc;
  }
  *out = s;
  return 0;
}

int lsync_scan_open(lsync_ctx *ctx, const char *root,
                    const lsync_scan_opts *opts, lsync_scan **out) {
  return scan_open(ctx, root, opts, 0, out);
}

int lsync__scan_open_collecting(lsync_ctx *ctx, const char *root,
                                const lsync_scan_opts *opts, lsync_scan **out) {
  return scan_open(ctx, root, opts, 1, out);
}

/* The consumer, out of batches, reads one directory itself.  Called and
 * returns with out_mu held; 1 if it read one.  (Never holds both locks.) */
static int consumer_help(lsync_scan *s) {
  pthread_mutex_unlock(&s->out_mu);
  pthread_mutex_lock(&s->work_mu);
  struct dir_item *d = pop_dir_locked(s);
  pthread_mutex_unlock(&s->work_mu);
  if (d) {
    walker_do_dir(s->helper, d);
    walker_hand_over(s->helper);
  }
  pthread_mutex_lock(&s->out_mu);
  return d != NULL;
}

static void report_error(lsync_scan *s, const struct rec *r, const char *path) {
  char esc[LSYNC__ERRMSG_MAX / 2];
  s->stats.errors++;
  lsync__escape(esc, sizeof esc, path, r->e.path_len);
  lsync__log(s->ctx, LSYNC_LOG_WARN, "cannot read '%s': %s",
             r->e.path_len ? esc : ".", strerror(r->err));
  if (s->opts.on_error)
    s->opts.on_error(s->opts.on_error_ud, path, r->err);
}

int lsync_scan_next(lsync_scan *s, const lsync_entry **out) {
  for (;;) {
    struct batch *b = s->cur;
    while (b && s->cur_i < b->n) {
      struct rec *r = &b->recs[s->cur_i++];
      r->e.path = b->str + r->off;
      if (r->err) {
        report_error(s, r, r->e.path);
        continue;
      }
      s->stats.entries++;
      s->stats.bytes += r->e.size;
      s->stats.dirs_unwritable +=
          r->e.type == LSYNC_T_DIR && !(r->e.mode & 0200);
      *out = &r->e;
      return 1;
    }
    pthread_mutex_lock(&s->out_mu);
    if (b)
      batch_release_locked(s, b);
    s->cur = NULL;
    while (!s->out_head && s->live) {
      /* Helping drops out_mu, so the state is re-checked after it even
       * when there was nothing to read: the last walker may have pushed
       * its batch and exited meanwhile, and its wake-up is gone. */
      if (s->helper && (consumer_help(s) || s->out_head || !s->live))
        continue;
      s->consumer_waiting = 1;
      pthread_cond_wait(&s->out_cv, &s->out_mu);
      s->consumer_waiting = 0;
    }
    b = s->out_head;
    if (b) {
      s->out_head = b->next;
      s->out_len--;
      if (!s->out_head)
        s->out_tail = NULL;
    }
    int fatal = atomic_load(&s->fatal);
    if (fatal && b) { /* not handed out: back to the pool, freed on close */
      batch_release_locked(s, b);
      b = NULL;
    }
    pthread_mutex_unlock(&s->out_mu);
    if (fatal)
      return lsync__fail(s->ctx, fatal, "scan failed: %s",
                         lsync_strerror(fatal));
    if (!b)
      return 0;
    s->cur = b;
    s->cur_i = 0;
  }
}

void lsync_scan_get_stats(const lsync_scan *s, lsync_scan_stats *out) {
  *out = s->stats;
  out->dirs = atomic_load((atomic_uint_least64_t *)&s->dirs);
  out->excluded = atomic_load((atomic_uint_least64_t *)&s->excluded);
}

static void free_batches(struct batch *b) {
  while (b) {
    struct batch *next = b->next;
    batch_free(b);
    b = next;
  }
}

void lsync_scan_close(lsync_scan *s) {
  if (!s)
    return;
  scan_cancel(s, 0);
  for (unsigned i = 0; i < s->nthreads; i++)
    pthread_join(s->threads[i], NULL);
  if (s->helper) { /* its batch goes back to the free list, freed below */
    walker_hand_over(s->helper);
    free(s->helper->path);
    free(s->helper);
  }
  while (s->stack) {
    struct dir_item *d = s->stack;
    s->stack = d->next;
    free(d);
  }
  free_batches(s->out_head);
  free_batches(s->free_list);
  batch_free(s->cur);
  free(s->threads);
  free(s->walkers);
  close(s->rootfd);
  pthread_mutex_destroy(&s->work_mu);
  pthread_mutex_destroy(&s->out_mu);
  pthread_cond_destroy(&s->work_cv);
  pthread_cond_destroy(&s->out_cv);
  pthread_cond_destroy(&s->free_cv);
  free(s);
}
