/*
 * Directory times kept from a listing and set on a local destination
 * (see dirtimes.h).  A sorted array, not a hash: it is filled once,
 * sorted once (directories are a few percent of a tree's entries) and
 * searched once per directory to set.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dirtimes.h"

struct dtime {
  char *path;
  size_t len;
  int64_t sec;
  int32_t nsec;
};

struct lsync__dirtimes {
  struct dtime *v;
  size_t n, cap;
  int sorted;
  int have_root;
  lsync_entry root; /* path "" */
};

lsync__dirtimes *lsync__dirtimes_new(void) {
  return calloc(1, sizeof(lsync__dirtimes));
}

int lsync__dirtimes_add(lsync__dirtimes *d, const lsync_entry *e) {
  if (e->path_len == 0) {
    d->root = *e;
    d->root.path = "";
    d->root.link_target = NULL;
    d->have_root = 1;
    return 0;
  }
  if (d->n == d->cap) {
    size_t cap = d->cap ? d->cap * 2 : 256;
    struct dtime *v = realloc(d->v, cap * sizeof *v);
    if (!v)
      return LSYNC_ENOMEM;
    d->v = v;
    d->cap = cap;
  }
  char *p = malloc(e->path_len + 1);
  if (!p)
    return LSYNC_ENOMEM;
  memcpy(p, e->path, e->path_len + 1);
  d->v[d->n++] = (struct dtime){p, e->path_len, e->mtime, e->mtime_nsec};
  d->sorted = 0;
  return 0;
}

static int dtime_cmp(const void *a, const void *b) {
  const struct dtime *x = a, *y = b;
  return lsync__path_cmp(x->path, x->len, y->path, y->len);
}

static const struct dtime *find(const lsync__dirtimes *d, const char *path,
                                size_t len) {
  size_t lo = 0, hi = d->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = lsync__path_cmp(d->v[mid].path, d->v[mid].len, path, len);
    if (c == 0)
      return &d->v[mid];
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return NULL;
}

/* utimensat on path below rootfd: its parent is opened without following
 * symlinks, and the directory itself is not followed either. */
static int set_time(int rootfd, const char *path, size_t len, int64_t sec,
                    int32_t nsec) {
  const struct timespec ts[2] = {{0, UTIME_OMIT}, {(time_t)sec, nsec}};
  const char *slash = memrchr(path, '/', len);
  if (!slash)
    return utimensat(rootfd, path, ts, AT_SYMLINK_NOFOLLOW);
  size_t plen = (size_t)(slash - path);
  char *parent = malloc(plen + 1);
  if (!parent)
    return -1; /* errno ENOMEM */
  memcpy(parent, path, plen);
  parent[plen] = '\0';
  int pfd = lsync__open_below(rootfd, parent, plen, O_PATH | O_DIRECTORY);
  free(parent);
  if (pfd < 0)
    return -1;
  int rc = utimensat(pfd, slash + 1, ts, AT_SYMLINK_NOFOLLOW);
  int saved = errno;
  close(pfd);
  errno = saved;
  return rc;
}

/* The root's time may be set only if nothing else about it differs. */
static int check_root(lsync_ctx *ctx, const lsync__dirtimes *d, int rootfd,
                      int check_uid, int check_gid) {
  struct stat st;
  if (!d->have_root)
    return lsync__fail(ctx, LSYNC_ENOENT,
                       "directory times: the listing had no root record");
  if (fstat(rootfd, &st) < 0)
    return lsync__fail_errno(ctx, errno, "directory times: root");
  if ((uint32_t)(st.st_mode & 07777) != d->root.mode ||
      (check_uid && (uint32_t)st.st_uid != d->root.uid) ||
      (check_gid && (uint32_t)st.st_gid != d->root.gid))
    return lsync__fail(ctx, LSYNC_EINVAL,
                       "directory times: the root's mode or owner differs");
  return 0;
}

int lsync__dirtimes_apply(lsync_ctx *ctx, lsync__dirtimes *d,
                          const char *dest_root, const char *list, size_t len,
                          int check_uid, int check_gid, uint64_t *nset) {
  *nset = 0;
  if (!d->sorted) {
    if (d->n)
      qsort(d->v, d->n, sizeof *d->v, dtime_cmp);
    d->sorted = 1;
  }
  int rootfd = open(dest_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0)
    return lsync__fail_errno(ctx, errno, "directory times: cannot open '%s'",
                             dest_root);
  int rc = 0;
  const char *p = list, *end = list + len;
  while (rc == 0 && p < end) {
    const char *nul = memchr(p, '\0', (size_t)(end - p));
    size_t n = nul ? (size_t)(nul - p) : (size_t)(end - p);
    char esc[256];
    if (n == 1 && p[0] == '.') {
      if ((rc = check_root(ctx, d, rootfd, check_uid, check_gid)) == 0 &&
          futimens(rootfd, (const struct timespec[2]){
                               {0, UTIME_OMIT},
                               {(time_t)d->root.mtime, d->root.mtime_nsec}}) <
              0)
        rc = lsync__fail_errno(ctx, errno, "directory times: root");
    } else if (n > 0) {
      const struct dtime *t = find(d, p, n);
      if (!t)
        rc = lsync__fail(ctx, LSYNC_ENOENT,
                         "directory times: none recorded for '%s'",
                         lsync__escape(esc, sizeof esc, p, n));
      else if (set_time(rootfd, p, n, t->sec, t->nsec) < 0)
        rc = lsync__fail_errno(ctx, errno, "directory times: '%s'",
                               lsync__escape(esc, sizeof esc, p, n));
    }
    if (rc == 0 && n > 0)
      ++*nset;
    p += n + 1;
  }
  close(rootfd);
  return rc;
}

void lsync__dirtimes_free(lsync__dirtimes *d) {
  if (!d)
    return;
  for (size_t i = 0; i < d->n; i++)
    free(d->v[i].path);
  free(d->v);
  free(d);
}
