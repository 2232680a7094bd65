/*
 * Watches (see watch.h): inotify on every directory of a tree, driven by
 * a poll handle on the context's loop, feeding the pending set of
 * watch_set.c.
 *
 * Not uv_fs_event: it watches one directory, not a tree, and hides what
 * this needs, the queue overflow and the cookies that pair the two halves
 * of a rename.
 *
 * The directories watched are a tree of nodes kept by watch_tree.c.
 *
 * Each poll callback reads everything queued (a batch), pairs the
 * IN_MOVED_FROM and IN_MOVED_TO of a rename by cookie over the batch,
 * then applies the events in order.  The caller hears of changes from a
 * zero-delay timer (kick), so on_event always runs from the loop, never
 * from inside lsync_watch_open or lsync_watch_take.
 *
 * Memory: the watch goes in the close callback of its last handle (the
 * poll and the kick timer); close only stops them.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>
#include <uv.h>

#include "internal.h"
#include "watch_internal.h"

/* Room for the largest event: read() refuses a smaller buffer. */
#define READ_MIN (sizeof(struct inotify_event) + NAME_MAX + 1)
#define READ_FIRST (64 * 1024)
#define BATCH_MAX (1024 * 1024)

const char *lsync_watch_kind_name(lsync_watch_kind k) {
  switch (k) {
  case LSYNC_WATCH_CHANGED:
    return "changed";
  case LSYNC_WATCH_REMOVED:
    return "removed";
  case LSYNC_WATCH_TREE:
    return "tree";
  case LSYNC_WATCH_MOVED:
    return "moved";
  }
  return "unknown";
}

/* ---- trouble ------------------------------------------------------------ */

/* The set can no longer be trusted: the caller gets an overflow and does
 * a full pass, so nothing more is recorded until it takes. */
void lsync__watch_lost(lsync_watch *w) {
  w->overflow = 1;
  lsync__wset_clear(&w->set);
}

void lsync__watch_oom(lsync_watch *w) {
  if (!w->incomplete)
    lsync__log(w->ctx, LSYNC_LOG_WARN, "watch: out of memory");
  w->incomplete = 1;
  lsync__watch_lost(w);
}

static void note(lsync_watch *w, const char *path, size_t len,
                 lsync_watch_kind kind, int is_dir) {
  if (!w->overflow && lsync__wset_note(&w->set, path, len, kind, is_dir) < 0)
    lsync__watch_oom(w);
}

int lsync__watch_excluded(const lsync_watch *w, const char *path, size_t len,
                          int is_dir) {
  return w->filter && lsync_filter_excludes(w->filter, path, len, is_dir);
}

/* ---- events ------------------------------------------------------------- */

/* Something appeared at parent/name: created, or moved in from outside. */
static void on_came(lsync_watch *w, struct wnode *parent, const char *name,
                    size_t nlen, int is_dir) {
  size_t len;
  const char *path = lsync__wnode_path(&w->ev1, parent, name, nlen, &len);
  if (!path) {
    lsync__watch_oom(w);
    return;
  }
  if (lsync__watch_excluded(w, path, len, is_dir))
    return;
  if (is_dir) /* walks use other path buffers: path stays */
    lsync__watch_add_dir(w, parent, name, nlen, path, len);
  note(w, path, len, is_dir ? LSYNC_WATCH_TREE : LSYNC_WATCH_CHANGED, is_dir);
}

/* parent/name went: deleted, or moved out of the tree. */
static void on_gone(lsync_watch *w, struct wnode *parent, const char *name,
                    size_t nlen, int is_dir) {
  struct wnode *k = is_dir ? lsync__wnode_kid(w, parent, name, nlen) : NULL;
  if (k)
    lsync__wnode_drop(w, k, 1);
  size_t len;
  const char *path = lsync__wnode_path(&w->ev1, parent, name, nlen, &len);
  if (!path)
    lsync__watch_oom(w);
  else if (!lsync__watch_excluded(w, path, len, is_dir))
    note(w, path, len, LSYNC_WATCH_REMOVED, is_dir);
}

/* A rename inside the tree, fp/fname to tp/tname.  The subtree's watches
 * follow the directory (only its node moves), unless the filter judges
 * something below it otherwise at its new place: it is then watched
 * afresh there, and reported whole. */
static void on_moved(lsync_watch *w, struct wnode *fp, const char *fname,
                     size_t fnlen, struct wnode *tp, const char *tname,
                     size_t tnlen, int is_dir) {
  size_t flen, tlen;
  const char *from = lsync__wnode_path(&w->ev1, fp, fname, fnlen, &flen);
  const char *to = lsync__wnode_path(&w->ev2, tp, tname, tnlen, &tlen);
  if (!from || !to) {
    lsync__watch_oom(w);
    return;
  }
  int fex = lsync__watch_excluded(w, from, flen, is_dir),
      tex = lsync__watch_excluded(w, to, tlen, is_dir);
  if (fex || tex) {
    if (!tex)
      on_came(w, tp, tname, tnlen, is_dir);
    else if (!fex)
      on_gone(w, fp, fname, fnlen, is_dir);
    return;
  }
  struct wnode *k = is_dir ? lsync__wnode_kid(w, fp, fname, fnlen) : NULL;
  /* An empty directory the rename replaced. */
  struct wnode *old = is_dir ? lsync__wnode_kid(w, tp, tname, tnlen) : NULL;
  if ((k && lsync__wnode_within(tp, k)) ||
      (old && old != k && lsync__wnode_within(k, old))) {
    /* The kernel allows neither: the tree is out of date.  Dropping a
     * node here would free the other end. */
    w->rewalk = 1;
    lsync__watch_lost(w);
    return;
  }
  int follows = k != NULL;
  if (is_dir) {
    if (old && old != k)
      lsync__wnode_drop(w, old, 1);
    if (follows && lsync__wnode_move(w, k, tp, tname, tnlen) < 0)
      follows = 0;
    if (follows && w->filter &&
        !lsync__watch_same_verdicts(w, k, from, flen, tlen))
      follows = 0;
    if (!follows) {
      if (k)
        lsync__wnode_drop(w, k, 1);
      lsync__watch_add_dir(w, tp, tname, tnlen, to, tlen);
    }
  }
  /* Plain: the destination can rename (see watch.h). */
  const struct lsync__wset *s = &w->set;
  int plain = (!is_dir || follows) && !lsync__wset_has(s, from, flen) &&
              !lsync__wset_busy(s, to, tlen) &&
              !lsync__wset_in_tree(s, from, flen) &&
              !lsync__wset_in_tree(s, to, tlen);
  if (w->overflow)
    return;
  int rc;
  if (plain) {
    rc = lsync__wset_move(&w->set, from, flen, to, tlen, is_dir);
    if (rc == 0)
      rc = lsync__wset_rekey(&w->set, from, flen, to, tlen);
  } else {
    rc = lsync__wset_note(&w->set, to, tlen,
                          is_dir ? LSYNC_WATCH_TREE : LSYNC_WATCH_CHANGED,
                          is_dir);
    if (rc == 0)
      rc = lsync__wset_rekey(&w->set, from, flen, to, tlen);
    if (rc == 0)
      rc = lsync__wset_note(&w->set, from, flen, LSYNC_WATCH_REMOVED, is_dir);
  }
  if (rc < 0)
    lsync__watch_oom(w);
}

/* An event on directory n about n itself. */
static void on_self(lsync_watch *w, struct wnode *n, uint32_t mask) {
  if (mask & IN_IGNORED) {
    /* The watch is gone (its directory deleted, or unmounted). */
    if (n == w->top)
      lsync__watch_root_lost(w);
    lsync__wnode_drop(w, n, 1);
  } else if (n == w->top &&
             (mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT))) {
    lsync__watch_root_lost(w);
  } else if (mask & IN_UNMOUNT) {
    w->incomplete = 1; /* a file system below: re-walk at take */
    lsync__watch_lost(w);
  } else if (mask & IN_ATTRIB) {
    size_t len;
    const char *path = lsync__wnode_path(&w->ev1, n, NULL, 0, &len);
    if (!path)
      lsync__watch_oom(w);
    else
      note(w, len ? path : ".", len ? len : 1, LSYNC_WATCH_CHANGED, 1);
  }
}

static void on_one(lsync_watch *w, const struct inotify_event *ev,
                   const struct inotify_event *to) {
  uint32_t m = ev->mask;
  struct wnode *n = lsync__wnode_at(w, ev->wd);
  if (!n)
    return; /* a watch removed since, or of an earlier walk */
  size_t nlen = ev->len ? strnlen(ev->name, ev->len) : 0;
  if (!nlen) {
    on_self(w, n, m);
    return;
  }
  int is_dir = (m & IN_ISDIR) != 0;
  if (m & IN_MOVED_FROM) {
    struct wnode *tp = to ? lsync__wnode_at(w, to->wd) : NULL;
    if (tp)
      on_moved(w, n, ev->name, nlen, tp, to->name, strnlen(to->name, to->len),
               is_dir);
    else
      on_gone(w, n, ev->name, nlen, is_dir);
  } else if (m & (IN_MOVED_TO | IN_CREATE)) {
    on_came(w, n, ev->name, nlen, is_dir);
  } else if (m & IN_DELETE) {
    on_gone(w, n, ev->name, nlen, is_dir);
  } else if (m & (IN_MODIFY | IN_CLOSE_WRITE | IN_ATTRIB)) {
    size_t len;
    const char *path = lsync__wnode_path(&w->ev1, n, ev->name, nlen, &len);
    if (!path)
      lsync__watch_oom(w);
    else if (!lsync__watch_excluded(w, path, len, is_dir))
      note(w, path, len, LSYNC_WATCH_CHANGED, is_dir);
  }
}

/* Index of the IN_MOVED_TO after event i with i's cookie, or 0: a table
 * of the batch's IN_MOVED_TO by cookie (slots hold index + 1). */
struct pairs {
  uint32_t *cookie, *at;
  size_t mask;
};

static int pairs_make(struct pairs *p, const struct inotify_event **evs,
                      size_t n) {
  size_t want = 2, nto = 0;
  for (size_t i = 0; i < n; i++)
    nto += (evs[i]->mask & IN_MOVED_TO) != 0;
  while (want < 2 * nto)
    want *= 2;
  p->mask = want - 1;
  p->cookie = calloc(want, sizeof *p->cookie);
  p->at = calloc(want, sizeof *p->at);
  if (!p->cookie || !p->at)
    return -1;
  for (size_t i = 0; i < n; i++) {
    if (!(evs[i]->mask & IN_MOVED_TO))
      continue;
    size_t s = evs[i]->cookie & p->mask;
    while (p->at[s])
      s = (s + 1) & p->mask;
    p->cookie[s] = evs[i]->cookie;
    p->at[s] = (uint32_t)(i + 1);
  }
  return 0;
}

static size_t pairs_find(const struct pairs *p, uint32_t cookie, size_t i) {
  for (size_t s = cookie & p->mask; p->at[s]; s = (s + 1) & p->mask)
    if (p->cookie[s] == cookie && p->at[s] - 1 > i)
      return p->at[s] - 1;
  return 0;
}

/* Apply one batch of events (len bytes at buf), renames paired. */
static void process(lsync_watch *w, const char *buf, size_t len) {
  size_t n = 0;
  for (size_t off = 0; off < len; n++)
    off += sizeof(struct inotify_event) +
           ((const struct inotify_event *)(const void *)(buf + off))->len;
  const struct inotify_event **evs = malloc((n ? n : 1) * sizeof *evs);
  if (!evs) {
    lsync__watch_oom(w);
    w->rewalk = 1; /* the events are not applied: watch what is there */
    lsync__watch_rewalk(w);
    return;
  }
  n = 0;
  for (size_t off = 0; off < len; n++) {
    evs[n] = (const void *)(buf + off);
    off += sizeof(struct inotify_event) + evs[n]->len;
  }
  /* Without the table every rename is taken as out and in: coarser,
   * still right. */
  struct pairs p = {NULL, NULL, 0};
  int paired = pairs_make(&p, evs, n) == 0;
  for (size_t i = 0; i < n; i++) {
    const struct inotify_event *ev = evs[i], *to = NULL;
    if (!ev)
      continue; /* the second half of a rename, done with the first */
    if (ev->mask & IN_Q_OVERFLOW) {
      w->rewalk = 1;
      lsync__watch_lost(w);
      continue;
    }
    if ((ev->mask & IN_MOVED_FROM) && paired) {
      size_t j = pairs_find(&p, ev->cookie, i);
      if (j) {
        to = evs[j];
        evs[j] = NULL;
      }
    }
    on_one(w, ev, to);
  }
  free(p.cookie);
  free(p.at);
  free(evs);
  if (w->rewalk)
    lsync__watch_rewalk(w);
}

/* ---- the loop ----------------------------------------------------------- */

static int pending(const lsync_watch *w) {
  return w->overflow || lsync__wset_pending(&w->set);
}

static void on_kick(uv_timer_t *h) {
  lsync_watch *w = h->data;
  if (!w->armed && pending(w)) {
    w->armed = 1;
    w->on_event(w->ud);
  }
}

static void maybe_notify(lsync_watch *w) {
  if (!w->closing && !w->armed && pending(w) &&
      !uv_is_active((uv_handle_t *)&w->kick))
    uv_timer_start(&w->kick, on_kick, 0, 0);
}

/* Offset of the batch's last event when it is an IN_MOVED_FROM (its
 * IN_MOVED_TO may be still unread), else len. */
static size_t trailing_from(const char *buf, size_t len) {
  size_t off = 0, last = len;
  while (off < len) {
    last = off;
    off += sizeof(struct inotify_event) +
           ((const struct inotify_event *)(const void *)(buf + off))->len;
  }
  const struct inotify_event *ev = (const void *)(buf + last);
  return last < len && (ev->mask & IN_MOVED_FROM) ? last : len;
}

static void on_readable(uv_poll_t *h, int status, int events) {
  (void)events;
  lsync_watch *w = h->data;
  if (status < 0) {
    lsync__log(w->ctx, LSYNC_LOG_WARN, "watch: %s", uv_strerror(status));
    w->incomplete = 1;
    lsync__watch_lost(w);
    maybe_notify(w);
    return;
  }
  size_t len = w->carry;
  int drained = 0;
  for (;;) {
    if (w->cap - len < READ_MIN) {
      char *b = w->cap < BATCH_MAX ? realloc(w->buf, w->cap * 2) : NULL;
      if (!b)
        break; /* the rest waits for the next callback */
      w->buf = b;
      w->cap *= 2;
    }
    ssize_t got = read(w->ifd, w->buf + len, w->cap - len);
    if (got > 0) {
      len += (size_t)got;
    } else if (got < 0 && errno == EINTR) {
      continue;
    } else {
      drained = got < 0 && errno == EAGAIN;
      if (!drained)
        lsync__log(w->ctx, LSYNC_LOG_WARN, "watch: read: %s",
                   got ? strerror(errno) : "end of file");
      break;
    }
  }
  /* A batch cut short keeps its last rename half for the next one. */
  size_t end = drained ? len : trailing_from(w->buf, len);
  process(w, w->buf, end);
  lsync__watch_rootfd_close(w);
  memmove(w->buf, w->buf + end, len - end);
  w->carry = len - end;
  maybe_notify(w);
}

/* ---- the API ------------------------------------------------------------ */

static void destroy(lsync_watch *w) {
  lsync__watch_forget(w);
  lsync__htab_free(&w->wds);
  lsync__htab_free(&w->names);
  lsync__wset_clear(&w->set);
  if (w->ifd >= 0)
    close(w->ifd); /* takes every watch with it */
  lsync__watch_rootfd_close(w);
  free(w->ev1.p);
  free(w->ev2.p);
  free(w->walk1.p);
  free(w->walk2.p);
  free(w->old.p);
  free(w->stack);
  free(w->buf);
  free(w->root);
  free(w);
}

static void on_closed(uv_handle_t *h) {
  lsync_watch *w = h->data;
  if (--w->handles == 0)
    destroy(w);
}

int lsync_watch_open(lsync_ctx *ctx, const char *root,
                     const lsync_filter *filter, lsync_watch_event_cb on_event,
                     void *ud, lsync_watch **out) {
  *out = NULL;
  uv_loop_t *loop = lsync__loop(ctx);
  if (!loop)
    return LSYNC_ENOMEM;
  lsync_watch *w = calloc(1, sizeof *w);
  if (!w)
    return lsync__fail(ctx, LSYNC_ENOMEM, "out of memory");
  w->ctx = ctx;
  w->filter = filter;
  w->on_event = on_event;
  w->ud = ud;
  w->rootfd = -1;
  w->root = strdup(root);
  w->buf = malloc(READ_FIRST);
  w->cap = READ_FIRST;
  w->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (!w->root || !w->buf) {
    destroy(w);
    return lsync__fail(ctx, LSYNC_ENOMEM, "out of memory");
  }
  if (w->ifd < 0) {
    int rc = lsync__fail_errno(ctx, errno,
                               "watch: cannot start inotify "
                               "(fs.inotify.max_user_instances?)");
    destroy(w);
    return rc;
  }
  w->use_proc = access("/proc/self/fd", X_OK) == 0;
  int rc = lsync__watch_root(w);
  lsync__watch_rootfd_close(w);
  if (rc < 0) {
    char esc[512];
    lsync__escape(esc, sizeof esc, root, strlen(root));
    rc = lsync__fail_errno(ctx, -rc, "watch: cannot watch %s", esc);
    destroy(w);
    return rc;
  }
  int urc = uv_poll_init(loop, &w->poll, w->ifd);
  if (urc < 0) {
    destroy(w);
    return lsync__fail(ctx, LSYNC_ESYS, "watch: %s", uv_strerror(urc));
  }
  uv_timer_init(loop, &w->kick);
  w->poll.data = w->kick.data = w;
  w->handles = 2;
  uv_poll_start(&w->poll, UV_READABLE, on_readable);
  maybe_notify(w); /* a directory that could not be watched */
  *out = w;
  return 0;
}

size_t lsync_watch_take(lsync_watch *w, lsync_watch_cb cb, void *ud,
                        int *overflow) {
  int lost = w->overflow;
  size_t n = 0;
  if (lost)
    lsync__wset_clear(&w->set);
  else
    n = lsync__wset_take(&w->set, cb, ud);
  w->overflow = 0;
  w->armed = 0;
  if (overflow)
    *overflow = lost;
  /* Short of directories: try again, now that the caller does a full
   * pass anyway. */
  if (w->incomplete && !w->closing) {
    lsync__watch_rewalk(w);
    lsync__watch_rootfd_close(w);
  }
  maybe_notify(w);
  return n;
}

size_t lsync_watch_dirs(const lsync_watch *w) {
  return w->wds.n;
}

void lsync_watch_close(lsync_watch *w) {
  if (!w || w->closing)
    return;
  w->closing = 1;
  uv_poll_stop(&w->poll);
  uv_close((uv_handle_t *)&w->poll, on_closed);
  uv_close((uv_handle_t *)&w->kick, on_closed);
}
