/*
 * The tree of watched directories of a watch (see watch.c): nodes,
 * adding watches, and walks.
 *
 * Watched directories form a tree of nodes (name and parent, not full
 * paths), indexed by watch descriptor and by (parent, name).  inotify's
 * descriptors follow the inode, so a directory renamed inside the tree
 * keeps its descriptor and its node only changes parent and name: events
 * below it report the new path without touching the subtree.
 *
 * A directory is opened without following any symlink (openat with
 * O_NOFOLLOW, or lsync__open_below from the root) and watched through
 * /proc/self/fd/N, so a name of any length at any depth can be watched
 * and a symlink swapped in between is never followed.  That path is a
 * symlink by design, hence no IN_DONT_FOLLOW there; without /proc the
 * full path is given, with IN_DONT_FOLLOW.  Walks keep a stack of nodes
 * still to read, not a recursion, and reopen each from the root, so
 * neither depth nor width costs descriptors.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"
#include "watch_internal.h"

#define MASK                                                                   \
  (IN_CREATE | IN_DELETE | IN_CLOSE_WRITE | IN_MODIFY | IN_ATTRIB |            \
   IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR |  \
   IN_EXCL_UNLINK)

/* A directory that could not be opened or watched (errno err). */
static void dir_failed(lsync_watch *w, int err, const char *path, size_t len) {
  /* Gone or replaced by something else meanwhile: its events say so. */
  if (err == ENOENT || err == ENOTDIR || err == ELOOP || err == ESTALE)
    return;
  char esc[512];
  lsync__escape(esc, sizeof esc, len ? path : ".", len ? len : 1);
  int limit = err == ENOSPC, denied = err == EACCES || err == EPERM;
  /* Past the watch limit every directory fails: say it once. */
  if (!w->incomplete || denied)
    lsync__log(w->ctx, LSYNC_LOG_WARN, "watch: cannot watch %s: %s", esc,
               limit ? "the inotify watch limit is reached "
                       "(fs.inotify.max_user_watches)"
                     : strerror(err));
  /* rsync cannot read it either; other failures leave changes unseen. */
  if (denied)
    return;
  w->incomplete = 1;
  lsync__watch_lost(w);
}

/* ---- nodes -------------------------------------------------------------- */

static uint64_t wd_hash(int wd) {
  return lsync__hash(LSYNC__HASH_INIT, &wd, sizeof wd);
}

static uint64_t name_hash(const struct wnode *parent, const char *name,
                          size_t nlen) {
  return lsync__hash(lsync__hash(LSYNC__HASH_INIT, &parent, sizeof parent),
                     name, nlen);
}

struct wnode *lsync__wnode_at(const lsync_watch *w, int wd) {
  uint64_t h = wd_hash(wd);
  for (struct lsync__hlink *l = lsync__htab_chain(&w->wds, h); l; l = l->next) {
    struct wnode *n = LSYNC__CONTAINER(l, struct wnode, by_wd);
    if (l->h == h && n->wd == wd)
      return n;
  }
  return NULL;
}

struct wnode *lsync__wnode_kid(const lsync_watch *w, const struct wnode *parent,
                               const char *name, size_t nlen) {
  uint64_t h = name_hash(parent, name, nlen);
  for (struct lsync__hlink *l = lsync__htab_chain(&w->names, h); l;
       l = l->next) {
    struct wnode *n = LSYNC__CONTAINER(l, struct wnode, by_name);
    if (l->h == h && n->parent == parent && n->nlen == nlen &&
        memcmp(n->name, name, nlen) == 0)
      return n;
  }
  return NULL;
}

static void link_kid(lsync_watch *w, struct wnode *n, struct wnode *parent) {
  n->parent = parent;
  n->prev = NULL;
  n->next = parent ? parent->kids : NULL;
  if (n->next)
    n->next->prev = n;
  if (parent)
    parent->kids = n;
  n->by_name.h = name_hash(parent, n->name, n->nlen);
  if (lsync__htab_put(&w->names, &n->by_name) < 0)
    lsync__watch_oom(
        w); /* only lsync__wnode_kid() misses it: the set is lost anyway */
}

static void unlink_kid(lsync_watch *w, struct wnode *n) {
  if (n->prev)
    n->prev->next = n->next;
  else if (n->parent)
    n->parent->kids = n->next;
  if (n->next)
    n->next->prev = n->prev;
  lsync__htab_del(&w->names, &n->by_name);
}

static void node_free(lsync_watch *w, struct wnode *n, int rm) {
  if (rm)
    inotify_rm_watch(w->ifd, n->wd); /* EINVAL if already gone: fine */
  unlink_kid(w, n);
  lsync__htab_del(&w->wds, &n->by_wd);
  if (n == w->top)
    w->top = NULL;
  free(n->name);
  free(n);
}

/* Deepest first, without recursion. */
void lsync__wnode_drop(lsync_watch *w, struct wnode *top, int rm) {
  struct wnode *n = top;
  for (;;) {
    while (n->kids)
      n = n->kids;
    struct wnode *up = n->parent;
    int last = n == top;
    node_free(w, n, rm);
    if (last)
      return;
    n = up;
  }
}

static struct wnode *node_new(lsync_watch *w, struct wnode *parent,
                              const char *name, size_t nlen, int wd,
                              const struct stat *st) {
  struct wnode *n = calloc(1, sizeof *n);
  char *nm = malloc(nlen + 1);
  if (!n || !nm) {
    free(n);
    free(nm);
    return NULL;
  }
  memcpy(nm, name, nlen);
  nm[nlen] = '\0';
  n->name = nm;
  n->nlen = nlen;
  n->wd = wd;
  n->dev = st->st_dev;
  n->ino = st->st_ino;
  n->by_wd.h = wd_hash(wd);
  if (lsync__htab_put(&w->wds, &n->by_wd) < 0) {
    free(nm);
    free(n);
    return NULL;
  }
  if (parent) {
    /* A directory replaced under the same name. */
    struct wnode *stale = lsync__wnode_kid(w, parent, name, nlen);
    if (stale)
      lsync__wnode_drop(w, stale, 1);
  }
  link_kid(w, n, parent);
  return n;
}

int lsync__wnode_within(const struct wnode *n, const struct wnode *top) {
  for (; n; n = n->parent)
    if (n == top)
      return 1;
  return 0;
}

int lsync__wnode_move(lsync_watch *w, struct wnode *n, struct wnode *parent,
                      const char *name, size_t nlen) {
  if (lsync__wnode_within(parent, n))
    return -1;
  char *nm = malloc(nlen + 1);
  if (!nm)
    return -1;
  memcpy(nm, name, nlen);
  nm[nlen] = '\0';
  unlink_kid(w, n);
  free(n->name);
  n->name = nm;
  n->nlen = nlen;
  link_kid(w, n, parent);
  return 0;
}

static int pb_reserve(struct pathbuf *pb, size_t n) {
  if (n <= pb->cap)
    return 0;
  size_t cap = pb->cap ? pb->cap : 256;
  while (cap < n)
    cap *= 2;
  char *p = realloc(pb->p, cap);
  if (!p)
    return -1;
  pb->p = p;
  pb->cap = cap;
  return 0;
}

const char *lsync__wnode_path(struct pathbuf *pb, const struct wnode *n,
                              const char *name, size_t nlen, size_t *len) {
  size_t total = 0;
  for (const struct wnode *p = n; p->parent; p = p->parent)
    total += p->nlen + (p->parent->parent ? 1 : 0);
  size_t dirlen = total;
  if (name)
    total += (dirlen ? 1 : 0) + nlen;
  if (pb_reserve(pb, total + 1) < 0)
    return NULL;
  size_t end = dirlen;
  for (const struct wnode *p = n; p->parent; p = p->parent) {
    end -= p->nlen;
    memcpy(pb->p + end, p->name, p->nlen);
    if (end)
      pb->p[--end] = '/';
  }
  if (name) {
    if (dirlen)
      pb->p[dirlen] = '/';
    memcpy(pb->p + total - nlen, name, nlen);
  }
  pb->p[total] = '\0';
  *len = total;
  return pb->p;
}

void lsync__watch_forget(lsync_watch *w) {
  for (size_t i = 0; i < w->wds.nb; i++)
    while (w->wds.b[i]) {
      struct wnode *n = LSYNC__CONTAINER(w->wds.b[i], struct wnode, by_wd);
      while (n->parent)
        n = n->parent;
      lsync__wnode_drop(w, n, 0);
    }
}

/* ---- adding watches and walking ---------------------------------------- */

/* Watch the directory open at fd (path for messages and for the fallback
 * without /proc).  The descriptor, or -errno. */
static int add_watch_fd(lsync_watch *w, int fd, const char *path, size_t len) {
  int wd;
  if (w->use_proc) {
    char p[64];
    snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
    wd = inotify_add_watch(w->ifd, p, MASK);
  } else {
    size_t rl = strlen(w->root);
    char *full = malloc(rl + len + 2);
    if (!full)
      return -ENOMEM;
    memcpy(full, w->root, rl);
    full[rl] = '/';
    memcpy(full + rl + 1, path, len);
    full[rl + 1 + len] = '\0';
    wd = inotify_add_watch(w->ifd, full, MASK | IN_DONT_FOLLOW);
    free(full);
  }
  return wd < 0 ? -errno : wd;
}

/* Watch the directory parent/name, open at fd.  1 with *out a new node,
 * 0 when that directory was watched already (or could not be: trouble
 * recorded). */
static int watch_dir(lsync_watch *w, struct wnode *parent, const char *name,
                     size_t nlen, int fd, const char *path, size_t len,
                     struct wnode **out) {
  int wd = add_watch_fd(w, fd, path, len);
  if (wd < 0) {
    dir_failed(w, -wd, path, len);
    return 0;
  }
  /* Known already: the same directory met again, or one directory seen
   * at two places (a bind mount), watched once. */
  if (lsync__wnode_at(w, wd))
    return 0;
  struct stat st;
  if (fstat(fd, &st) < 0)
    memset(&st, 0, sizeof st);
  *out = node_new(w, parent, name, nlen, wd, &st);
  if (!*out) {
    inotify_rm_watch(w->ifd, wd);
    lsync__watch_oom(w);
    return 0;
  }
  return 1;
}

static int push(lsync_watch *w, struct wnode *n) {
  if (w->nstack == w->capstack) {
    size_t cap = w->capstack ? w->capstack * 2 : 64;
    struct wnode **s = realloc(w->stack, cap * sizeof *s);
    if (!s) {
      lsync__watch_oom(w);
      return -1;
    }
    w->stack = s;
    w->capstack = cap;
  }
  w->stack[w->nstack++] = n;
  return 0;
}

static int is_subdir(int dfd, const struct dirent64 *de) {
  if (de->d_type != DT_UNKNOWN)
    return de->d_type == DT_DIR;
  struct stat st;
  return fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
         S_ISDIR(st.st_mode);
}

/* Called for an entry of directory n (open at dfd); 0 stops the reading. */
typedef int (*entry_fn)(lsync_watch *w, struct wnode *n, int dfd,
                        const char *name, int is_dir, void *arg);

/* Call fn for each entry of directory n but "." and "..", its path left
 * in walk1.  1 when all were read, 0 when fn stopped, -errno when the
 * directory could not be opened or read, -ESTALE when the directory now
 * there is not the one watched. */
static int each_entry(lsync_watch *w, struct wnode *n, entry_fn fn, void *arg) {
  size_t len;
  const char *path = lsync__wnode_path(&w->walk1, n, NULL, 0, &len);
  if (!path)
    return -ENOMEM;
  int rfd = lsync__watch_rootfd(w);
  int fd =
      rfd < 0 ? -1 : lsync__open_below(rfd, path, len, O_RDONLY | O_DIRECTORY);
  if (fd < 0)
    return -errno;
  struct stat st;
  int rc = 1;
  if (fstat(fd, &st) < 0 || st.st_ino != n->ino || st.st_dev != n->dev)
    rc = -ESTALE;
  while (rc == 1) {
    /* getdents64 into one buffer (glibc's struct dirent64 is the
     * kernel's record): no DIR allocation per directory. */
    long got = syscall(SYS_getdents64, fd, w->dents, sizeof w->dents);
    if (got <= 0) {
      /* A failing read must not look like the end of the directory. */
      rc = got < 0 ? -errno : 1;
      break;
    }
    for (long off = 0; rc == 1 && off < got;) {
      const struct dirent64 *de = (const void *)(w->dents + off);
      const char *nm = de->d_name;
      off += de->d_reclen;
      if (nm[0] == '.' && (!nm[1] || (nm[1] == '.' && !nm[2])))
        continue;
      rc = fn(w, n, fd, nm, is_subdir(fd, de), arg) ? 1 : 0;
    }
    if (rc != 1)
      break;
  }
  close(fd);
  return rc;
}

/* One entry met by the walk: watch and stack it if it is a directory the
 * filter keeps. */
static int visit(lsync_watch *w, struct wnode *n, int dfd, const char *nm,
                 int is_dir, void *arg) {
  (void)arg;
  if (!is_dir)
    return 1;
  size_t nlen = strlen(nm), len;
  const char *path = lsync__wnode_path(&w->walk2, n, nm, nlen, &len);
  if (!path) {
    lsync__watch_oom(w);
    return 0;
  }
  if (lsync__watch_excluded(w, path, len, 1))
    return 1;
  int fd = openat(dfd, nm, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    dir_failed(w, errno, path, len);
    return 1;
  }
  struct wnode *k;
  if (watch_dir(w, n, nm, nlen, fd, path, len, &k))
    push(w, k);
  close(fd);
  return 1;
}

/* Read directory n, watching its subdirectories (after their own watch
 * is in place, so what appears in them meanwhile is not missed).  One
 * replaced since it was watched is left to its events. */
static void read_dir(lsync_watch *w, struct wnode *n) {
  int rc = each_entry(w, n, visit, NULL);
  if (rc == -ENOMEM)
    lsync__watch_oom(w);
  else if (rc < 0 && rc != -ESTALE) /* the path is in walk1 */
    dir_failed(w, -rc, w->walk1.p, strlen(w->walk1.p));
}

/* Watch everything below the watched directory start.  A stack, not
 * recursion: depth is the tree's to choose. */
static void walk(lsync_watch *w, struct wnode *start) {
  if (push(w, start) < 0)
    return;
  while (w->nstack)
    read_dir(w, w->stack[--w->nstack]);
}

void lsync__watch_add_dir(lsync_watch *w, struct wnode *parent,
                          const char *name, size_t nlen, const char *path,
                          size_t len) {
  int rfd = lsync__watch_rootfd(w);
  int fd =
      rfd < 0 ? -1 : lsync__open_below(rfd, path, len, O_PATH | O_DIRECTORY);
  if (fd < 0) {
    dir_failed(w, errno, path, len);
    return;
  }
  struct wnode *k;
  int fresh = watch_dir(w, parent, name, nlen, fd, path, len, &k);
  close(fd);
  if (fresh)
    walk(w, k);
}

/* The root is open only while the watch works on it: an open descriptor
 * would hold back the kernel's IN_DELETE_SELF and IN_IGNORED for it. */
int lsync__watch_rootfd(lsync_watch *w) {
  if (w->rootfd >= 0)
    return w->rootfd;
  int fd = open(w->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  struct stat st;
  if (fd >= 0 && w->top &&
      (fstat(fd, &st) < 0 || st.st_ino != w->top->ino ||
       st.st_dev != w->top->dev)) {
    close(fd);
    fd = -1;
    errno = ESTALE;
  }
  if (fd < 0)
    lsync__watch_root_lost(w); /* its events may not have come yet */
  w->rootfd = fd;
  return fd;
}

void lsync__watch_rootfd_close(lsync_watch *w) {
  if (w->rootfd >= 0)
    close(w->rootfd);
  w->rootfd = -1;
}

void lsync__watch_root_lost(lsync_watch *w) {
  if (!w->incomplete)
    lsync__log(w->ctx, LSYNC_LOG_WARN, "watch: the root %s went away", w->root);
  w->incomplete = 1;
  lsync__watch_lost(w);
}

/* Watch the root (opened anew from its path, which the caller gave) and
 * everything below it. */
int lsync__watch_root(lsync_watch *w) {
  lsync__watch_rootfd_close(w);
  int fd = open(w->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  w->rootfd = fd;
  int wd = add_watch_fd(w, fd, "", 0);
  if (wd < 0)
    return wd;
  struct stat st;
  if (fstat(fd, &st) < 0)
    return -errno;
  w->top = node_new(w, NULL, "", 0, wd, &st);
  if (!w->top)
    return -ENOMEM;
  walk(w, w->top);
  return 0;
}

/* Start over after lost events: forget every node, walk the tree again
 * (directories still watched keep their descriptors, so no event of
 * theirs is lost meanwhile), then remove the watches not met again. */
void lsync__watch_rewalk(lsync_watch *w) {
  w->rewalk = 0;
  w->incomplete = 0;
  size_t nold = 0;
  int *old = malloc((w->wds.n ? w->wds.n : 1) * sizeof *old);
  for (size_t i = 0; old && i < w->wds.nb; i++)
    for (struct lsync__hlink *l = w->wds.b[i]; l; l = l->next)
      old[nold++] = LSYNC__CONTAINER(l, struct wnode, by_wd)->wd;
  lsync__watch_forget(w);
  int rc = lsync__watch_root(w);
  if (rc < 0) {
    lsync__log(w->ctx, LSYNC_LOG_WARN, "watch: cannot watch the root %s: %s",
               w->root, strerror(-rc));
    w->incomplete = 1;
    lsync__watch_lost(w);
  }
  for (size_t i = 0; i < nold; i++)
    if (!lsync__wnode_at(w, old[i]))
      inotify_rm_watch(w->ifd, old[i]);
  if (!old)
    lsync__watch_oom(w); /* stray watches stay until close */
  free(old);
}

/* Under a filter, a directory renamed from `from` (flen) to a path of
 * tlen bytes (its node k moved there already) may have entries judged
 * otherwise at the new place: a rule with a "/" or "**" sees the
 * parents.  1 when every entry below gets the same verdict at both
 * places (read from the disk, watches untouched); 0 when one does not,
 * or something could not be read. */
struct renamed {
  const char *from;
  size_t flen, tlen;
};

static int same_verdict(lsync_watch *w, struct wnode *n, int dfd,
                        const char *nm, int is_dir, void *arg) {
  (void)dfd;
  const struct renamed *r = arg;
  size_t nlen = strlen(nm), len;
  const char *now = lsync__wnode_path(&w->walk2, n, nm, nlen, &len);
  size_t olen = r->flen + len - r->tlen;
  if (!now || pb_reserve(&w->old, olen + 1) < 0)
    return 0;
  memcpy(w->old.p, r->from, r->flen);
  memcpy(w->old.p + r->flen, now + r->tlen, len - r->tlen + 1);
  int ex = lsync__watch_excluded(w, now, len, is_dir);
  if (ex != lsync__watch_excluded(w, w->old.p, olen, is_dir))
    return 0;
  struct wnode *sub = is_dir && !ex ? lsync__wnode_kid(w, n, nm, nlen) : NULL;
  return !sub || push(w, sub) == 0;
}

int lsync__watch_same_verdicts(lsync_watch *w, struct wnode *k,
                               const char *from, size_t flen, size_t tlen) {
  struct renamed r = {from, flen, tlen};
  int same = push(w, k) == 0;
  while (same && w->nstack)
    same = each_entry(w, w->stack[--w->nstack], same_verdict, &r) == 1;
  w->nstack = 0;
  return same;
}
