/*
 * Opening a path below a root directory without following a symlink
 * anywhere in it.  O_NOFOLLOW guards only the last component: a parent
 * swapped for a symlink after it was read must not lead a crawl, or a
 * write into the destination, out of the tree.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

/* openat2 with RESOLVE_NO_SYMLINKS (Linux 5.6); older kernels, and
 * seccomp filters that refuse it, get plain openat. */
static int open_no_symlinks(int dirfd, const char *path, int flags) {
#ifdef SYS_openat2
  struct {
    uint64_t flags, mode, resolve;
  } how = {(uint64_t)flags, 0, 0x04 /* RESOLVE_NO_SYMLINKS */};
  long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof how);
  if (fd >= 0 || (errno != ENOSYS && errno != EPERM))
    return (int)fd;
#endif
  return openat(dirfd, path, flags);
}

int lsync__open_below(int rootfd, const char *path, size_t len, int flags) {
  flags |= O_NOFOLLOW | O_CLOEXEC;
  if (len == 0)
    return openat(rootfd, ".", flags);
  int fd = open_no_symlinks(rootfd, path, flags);
  if (fd >= 0 || errno != ENAMETOOLONG)
    return fd;
  /* Too long for one call: a component at a time, each a directory. */
  const int dflags = O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
  fd = dup(rootfd);
  const char *p = path, *end = path + len;
  while (fd >= 0 && p < end) {
    const char *slash = memchr(p, '/', (size_t)(end - p));
    size_t n = slash ? (size_t)(slash - p) : (size_t)(end - p);
    char name[NAME_MAX + 1];
    if (n > NAME_MAX) {
      close(fd);
      errno = ENAMETOOLONG;
      return -1;
    }
    memcpy(name, p, n);
    name[n] = '\0';
    int next = openat(fd, name, slash ? dflags : flags);
    int saved = errno;
    close(fd);
    errno = saved;
    fd = next;
    p += n + 1;
  }
  return fd;
}
