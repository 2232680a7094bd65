/*
 * treecmp -- tree-comparison oracle for syncplan tests.
 *
 *   treecmp [OPTIONS] A B     compare two trees; exit 0 same, 1 different,
 *                             2 usage or I/O error
 *   treecmp [OPTIONS] --list A
 *                             print the canonical listing of one tree
 *
 * Options:
 *   --ignore-dir-mtime        do not compare directory mtimes
 *   --ignore-symlink-mtime    do not compare symlink mtimes
 *   --ignore-owner            do not compare uid/gid
 *   --ignore-root             do not compare the root directory itself
 *   -x RELPATH                skip this entry (and its subtree) on both sides
 *
 * Each tree is walked once, with lstat semantics and *at() calls relative to
 * directory fds (so paths longer than PATH_MAX work), into a flat list in
 * canonical order: depth first, directory entries sorted bytewise.  Regular
 * files are hashed during the walk.  The two lists are then merged.
 * Standalone (libc only).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "escape.h"

struct entry {
  char *path;   /* relative to the root; "" is the root itself */
  char *target; /* symlink target, else NULL */
  struct stat st;
  uint64_t hash; /* content hash of regular files */
};

struct tree {
  const char *root; /* as given on the command line, for messages */
  struct entry *v;
  size_t n, cap;
};

struct options {
  int ignore_dir_mtime;
  int ignore_symlink_mtime;
  int ignore_owner;
  int ignore_root;
  char **excludes;
  size_t nexcludes;
};

static struct options opt;
static int io_error; /* any I/O error makes the exit status 2 */
static int differ;   /* any reported difference makes it at least 1 */

/* ------------------------------------------------------------- helpers */

static void put_path(FILE *f, const char *rel) {
  put_escaped(f, *rel ? rel : ".");
}

static void oom(void) {
  fputs("treecmp: out of memory\n", stderr);
  exit(2);
}

static void *xrealloc(void *p, size_t n) {
  p = realloc(p, n ? n : 1);
  if (!p)
    oom();
  return p;
}

static char *xstrdup(const char *s) {
  char *d = strdup(s);
  if (!d)
    oom();
  return d;
}

/* Report an I/O error on ROOT/REL and remember it for the exit status. */
static void io_fail(const char *what, const struct tree *t, const char *rel) {
  int err = errno;
  fprintf(stderr, "treecmp: %s ", what);
  put_escaped(stderr, t->root);
  if (*rel) {
    putc('/', stderr);
    put_escaped(stderr, rel);
  }
  fprintf(stderr, ": %s\n", strerror(err));
  io_error = 1;
}

/* "dir" + "/" + "name", or just "name" under the root. */
static char *join(const char *dir, const char *name) {
  size_t a = strlen(dir), b = strlen(name);
  char *p = xrealloc(NULL, a + b + 2);
  if (a) {
    memcpy(p, dir, a);
    p[a++] = '/';
  }
  memcpy(p + a, name, b + 1);
  return p;
}

static int excluded(const char *rel) {
  for (size_t i = 0; i < opt.nexcludes; i++)
    if (strcmp(opt.excludes[i], rel) == 0)
      return 1;
  return 0;
}

/* ---------------------------------------------------------------- hash */

/* 64-bit hash over 8-byte words.  Each step is a bijection in both the state
 * and the word, so changing any single word of a file (same size) always
 * changes the hash; other changes collide with probability ~2^-64. */
static uint64_t mix_word(uint64_t h, uint64_t w) {
  h ^= w * 0x9e3779b97f4a7c15ULL;
  h = (h << 31) | (h >> 33);
  return h * 0xbf58476d1ce4e5b9ULL;
}

static uint64_t hash_final(uint64_t h, uint64_t len) {
  h ^= len;
  h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
  h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
  return h ^ (h >> 31);
}

/* Hash the file NAME in DIRFD; the buffer size is a multiple of 8 so words
 * never straddle reads except at the very end. */
static int hash_file(int dirfd, const char *name, uint64_t *out) {
  static unsigned char buf[1 << 18];
  int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  uint64_t h = 0x243f6a8885a308d3ULL, len = 0;
  size_t have = 0;
  for (;;) {
    ssize_t n = read(fd, buf + have, sizeof buf - have);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      int err = errno;
      close(fd);
      errno = err;
      return -1;
    }
    have += (size_t)n;
    len += (uint64_t)n;
    size_t whole = n == 0 ? have : have - have % 8;
    for (size_t i = 0; i < whole; i += 8) {
      uint64_t w = 0;
      memcpy(&w, buf + i, whole - i < 8 ? whole - i : 8);
      h = mix_word(h, w);
    }
    memmove(buf, buf + whole, have - whole);
    have -= whole;
    if (n == 0)
      break;
  }
  close(fd);
  *out = hash_final(h, len);
  return 0;
}

/* ---------------------------------------------------------------- walk */

static struct entry *add_entry(struct tree *t, char *rel,
                               const struct stat *st) {
  if (t->n == t->cap) {
    t->cap = t->cap ? t->cap * 2 : 1024;
    t->v = xrealloc(t->v, t->cap * sizeof *t->v);
  }
  struct entry *e = &t->v[t->n++];
  memset(e, 0, sizeof *e);
  e->path = rel;
  e->st = *st;
  return e;
}

static char *read_link(int dirfd, const char *name, size_t hint) {
  size_t cap = hint + 2;
  for (;;) {
    char *buf = xrealloc(NULL, cap);
    ssize_t n = readlinkat(dirfd, name, buf, cap);
    if (n < 0) {
      free(buf);
      return NULL;
    }
    if ((size_t)n < cap) {
      buf[n] = '\0';
      return buf;
    }
    free(buf); /* target grew, or st_size was 0 (procfs-like): retry */
    cap *= 2;
  }
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names in the directory open as FD (FD is not consumed) into
 * *OUT; returns -1 with errno set on failure. */
static int list_dir(int fd, char ***out, size_t *count) {
  int dfd = dup(fd);
  DIR *d = dfd < 0 ? NULL : fdopendir(dfd);
  if (!d) {
    int err = errno;
    if (dfd >= 0)
      close(dfd);
    errno = err;
    return -1;
  }
  char **names = NULL;
  size_t n = 0, cap = 0;
  struct dirent *de;
  errno = 0;
  while ((de = readdir(d)) != NULL) {
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
      continue;
    if (n == cap) {
      cap = cap ? cap * 2 : 64;
      names = xrealloc(names, cap * sizeof *names);
    }
    names[n++] = xstrdup(de->d_name);
  }
  int err = errno;
  closedir(d);
  if (err) {
    for (size_t i = 0; i < n; i++)
      free(names[i]);
    free(names);
    errno = err;
    return -1;
  }
  if (n > 1)
    qsort(names, n, sizeof *names, cmp_names);
  *out = names;
  *count = n;
  return 0;
}

static void walk_dir(struct tree *t, int fd, const char *rel);

/* Record DIRFD/NAME (path REL, owned by the list afterwards). */
static void visit(struct tree *t, int dirfd, const char *name, char *rel) {
  struct stat st;
  if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
    io_fail("cannot lstat", t, rel);
    free(rel);
    return;
  }
  struct entry *e = add_entry(t, rel, &st);
  if (S_ISLNK(st.st_mode)) {
    e->target = read_link(dirfd, name, (size_t)st.st_size);
    if (!e->target) {
      io_fail("cannot readlink", t, rel);
      e->target = xstrdup("");
    }
  } else if (S_ISREG(st.st_mode)) {
    if (hash_file(dirfd, name, &e->hash) < 0)
      io_fail("cannot read", t, rel);
  } else if (S_ISDIR(st.st_mode)) {
    int fd =
        openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      io_fail("cannot open directory", t, rel);
      return;
    }
    walk_dir(t, fd, rel); /* e may move: don't use it after this */
    close(fd);
  }
}

static void walk_dir(struct tree *t, int fd, const char *rel) {
  size_t n = 0;
  char **names = NULL;
  if (list_dir(fd, &names, &n) < 0) {
    io_fail("cannot read directory", t, rel);
    return;
  }
  for (size_t i = 0; i < n; i++) {
    char *child = join(rel, names[i]);
    if (excluded(child))
      free(child);
    else
      visit(t, fd, names[i], child);
    free(names[i]);
  }
  free(names);
}

/* Walk ROOT into T.  Returns -1 if the root itself is unusable. */
static int load_tree(struct tree *t, const char *root) {
  memset(t, 0, sizeof *t);
  t->root = root;
  int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0) {
    io_fail("cannot open directory", t, "");
    if (fd >= 0)
      close(fd);
    return -1;
  }
  add_entry(t, xstrdup(""), &st);
  walk_dir(t, fd, "");
  close(fd);
  return 0;
}

static void free_tree(struct tree *t) {
  for (size_t i = 0; i < t->n; i++) {
    free(t->v[i].path);
    free(t->v[i].target);
  }
  free(t->v);
}

/* ------------------------------------------------------------ ordering */

/* Order of the walk: bytewise, but '/' below every other byte, so that
 * "a/x" < "a b" just as the walk emits a's subtree before "a b". */
static int cmp_paths(const char *a, const char *b) {
  const unsigned char *p = (const unsigned char *)a;
  const unsigned char *q = (const unsigned char *)b;
  while (*p && *p == *q) {
    p++;
    q++;
  }
  int x = *p == '/' ? 1 : *p ? *p + 1 : 0;
  int y = *q == '/' ? 1 : *q ? *q + 1 : 0;
  return x - y;
}

/* Index just past entry I and, if it is a directory, its subtree. */
static size_t skip_subtree(const struct tree *t, size_t i) {
  if (!S_ISDIR(t->v[i].st.st_mode))
    return i + 1;
  const char *p = t->v[i].path;
  size_t len = strlen(p), j = i + 1;
  if (len == 0)
    return t->n;
  while (j < t->n && strncmp(t->v[j].path, p, len) == 0 &&
         t->v[j].path[len] == '/')
    j++;
  return j;
}

/* ----------------------------------------------------------- describing */

static const char *type_name(mode_t m) {
  if (S_ISREG(m))
    return "file";
  if (S_ISDIR(m))
    return "dir";
  if (S_ISLNK(m))
    return "symlink";
  if (S_ISFIFO(m))
    return "fifo";
  if (S_ISSOCK(m))
    return "socket";
  if (S_ISCHR(m))
    return "chardev";
  if (S_ISBLK(m))
    return "blockdev";
  return "unknown";
}

static char type_char(mode_t m) {
  if (S_ISREG(m))
    return 'f';
  if (S_ISDIR(m))
    return 'd';
  if (S_ISLNK(m))
    return 'l';
  if (S_ISFIFO(m))
    return 'p';
  if (S_ISSOCK(m))
    return 's';
  if (S_ISCHR(m))
    return 'c';
  if (S_ISBLK(m))
    return 'b';
  return '?';
}

static int mtime_ignored(const struct entry *e) {
  mode_t m = e->st.st_mode;
  return (S_ISDIR(m) && opt.ignore_dir_mtime) ||
         (S_ISLNK(m) && opt.ignore_symlink_mtime);
}

/* Start a difference line: "WHAT: path". */
static void diff_head(const char *what, const char *rel) {
  differ = 1;
  printf("%s: ", what);
  put_path(stdout, rel);
}

/* ----------------------------------------------------------- comparing */

static void cmp_meta(const struct entry *a, const struct entry *b) {
  const struct stat *x = &a->st, *y = &b->st;
  if ((x->st_mode & 07777) != (y->st_mode & 07777)) {
    diff_head("mode differs", a->path);
    printf(" (%04o vs %04o)\n", (unsigned)(x->st_mode & 07777),
           (unsigned)(y->st_mode & 07777));
  }
  if (!opt.ignore_owner && (x->st_uid != y->st_uid || x->st_gid != y->st_gid)) {
    diff_head("owner differs", a->path);
    printf(" (%ju:%ju vs %ju:%ju)\n", (uintmax_t)x->st_uid,
           (uintmax_t)x->st_gid, (uintmax_t)y->st_uid, (uintmax_t)y->st_gid);
  }
  if (!mtime_ignored(a) && (x->st_mtim.tv_sec != y->st_mtim.tv_sec ||
                            x->st_mtim.tv_nsec != y->st_mtim.tv_nsec)) {
    diff_head("mtime differs", a->path);
    printf(" (%jd.%09ld vs %jd.%09ld)\n", (intmax_t)x->st_mtim.tv_sec,
           x->st_mtim.tv_nsec, (intmax_t)y->st_mtim.tv_sec, y->st_mtim.tv_nsec);
  }
}

/* Compare two entries of the same path; returns 0 if the types differ
 * (so the caller does not look inside). */
static int cmp_entry(const struct entry *a, const struct entry *b) {
  mode_t ta = a->st.st_mode & S_IFMT, tb = b->st.st_mode & S_IFMT;
  if (ta != tb) {
    diff_head("type differs", a->path);
    printf(" (%s vs %s)\n", type_name(ta), type_name(tb));
    return 0;
  }
  cmp_meta(a, b);
  if (S_ISREG(ta) && a->st.st_size != b->st.st_size) {
    diff_head("size differs", a->path);
    printf(" (%jd vs %jd)\n", (intmax_t)a->st.st_size, (intmax_t)b->st.st_size);
  } else if (S_ISREG(ta) && a->hash != b->hash) {
    diff_head("content differs", a->path);
    putchar('\n');
  }
  if (S_ISLNK(ta) && strcmp(a->target, b->target) != 0) {
    diff_head("symlink target differs", a->path);
    fputs(" (", stdout);
    put_escaped(stdout, a->target);
    fputs(" vs ", stdout);
    put_escaped(stdout, b->target);
    fputs(")\n", stdout);
  }
  if ((S_ISCHR(ta) || S_ISBLK(ta)) && a->st.st_rdev != b->st.st_rdev) {
    diff_head("device differs", a->path);
    putchar('\n');
  }
  return 1;
}

/* ---------------------------------------------------------- hard links */

/* A name present on both sides: its entry in A and in B. */
struct link_pair {
  const struct entry *a, *b;
  size_t order; /* position in the walk, for stable, readable output */
};

static int inode_cmp(const struct entry *x, const struct entry *y) {
  if (x->st.st_dev != y->st.st_dev)
    return x->st.st_dev < y->st.st_dev ? -1 : 1;
  if (x->st.st_ino != y->st.st_ino)
    return x->st.st_ino < y->st.st_ino ? -1 : 1;
  return 0;
}

static int by_a_inode(const void *p, const void *q) {
  const struct link_pair *x = p, *y = q;
  int c = inode_cmp(x->a, y->a);
  return c ? c : (x->order > y->order) - (x->order < y->order);
}

static int by_b_inode(const void *p, const void *q) {
  const struct link_pair *x = p, *y = q;
  int c = inode_cmp(x->b, y->b);
  return c ? c : (x->order > y->order) - (x->order < y->order);
}

/* With V sorted by SIDE's inode, report every name that shares an inode with
 * the group's first name on SIDE but not on the other side. */
static void check_groups(struct link_pair *v, size_t n, int side_a) {
  for (size_t i = 0; i < n;) {
    size_t j = i + 1;
    const struct entry *ri = side_a ? v[i].a : v[i].b;
    const struct entry *ro = side_a ? v[i].b : v[i].a;
    for (; j < n; j++) {
      const struct entry *mi = side_a ? v[j].a : v[j].b;
      const struct entry *mo = side_a ? v[j].b : v[j].a;
      if (inode_cmp(ri, mi) != 0)
        break;
      if (inode_cmp(ro, mo) != 0) {
        diff_head("hard links differ", v[i].a->path);
        fputs(" and ", stdout);
        put_path(stdout, v[j].a->path);
        printf(" (same inode in %s only)\n", side_a ? "A" : "B");
      }
    }
    i = j;
  }
}

/* Two names share an inode in A iff they share one in B.  Names with one
 * link on both sides are singletons on both sides, so they are left out. */
static void cmp_hardlinks(struct link_pair *v, size_t n) {
  if (n < 2)
    return;
  qsort(v, n, sizeof *v, by_a_inode);
  check_groups(v, n, 1);
  qsort(v, n, sizeof *v, by_b_inode);
  check_groups(v, n, 0);
}

/* ---------------------------------------------------------------- merge */

static void only_in(const char *side, const char *rel) {
  char what[16];
  snprintf(what, sizeof what, "only in %s", side);
  diff_head(what, rel);
  putchar('\n');
}

static void add_pair(struct link_pair **v, size_t *n, size_t *cap,
                     const struct entry *a, const struct entry *b) {
  if (S_ISDIR(a->st.st_mode) || (a->st.st_nlink < 2 && b->st.st_nlink < 2))
    return;
  if (*n == *cap) {
    *cap = *cap ? *cap * 2 : 256;
    *v = xrealloc(*v, *cap * sizeof **v);
  }
  (*v)[*n] = (struct link_pair){a, b, *n};
  (*n)++;
}

static void compare_trees(const struct tree *ta, const struct tree *tb) {
  struct link_pair *pairs = NULL;
  size_t np = 0, cap = 0, i = 0, j = 0;
  if (opt.ignore_root) {
    i = 1;
    j = 1;
  }
  while (i < ta->n || j < tb->n) {
    int c = i >= ta->n   ? 1
            : j >= tb->n ? -1
                         : cmp_paths(ta->v[i].path, tb->v[j].path);
    if (c < 0) {
      only_in("A", ta->v[i].path);
      i = skip_subtree(ta, i);
    } else if (c > 0) {
      only_in("B", tb->v[j].path);
      j = skip_subtree(tb, j);
    } else if (!cmp_entry(&ta->v[i], &tb->v[j])) {
      i = skip_subtree(ta, i);
      j = skip_subtree(tb, j);
    } else {
      add_pair(&pairs, &np, &cap, &ta->v[i], &tb->v[j]);
      i++;
      j++;
    }
  }
  cmp_hardlinks(pairs, np);
  free(pairs);
}

/* ---------------------------------------------------------------- list */

struct link_ref {
  const struct entry *e;
  size_t idx;
};

static int ref_cmp(const void *p, const void *q) {
  const struct link_ref *x = p, *y = q;
  int c = inode_cmp(x->e, y->e);
  return c ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

/* Hard-link group ids numbered by first appearance in the walk, so identical
 * trees list identically whatever their inode numbers; 0 = not linked
 * within the tree. */
static size_t *link_groups(const struct tree *t) {
  size_t *id = calloc(t->n ? t->n : 1, sizeof *id);
  size_t *rep = calloc(t->n ? t->n : 1, sizeof *rep);
  struct link_ref *refs = xrealloc(NULL, t->n * sizeof *refs);
  size_t nr = 0, next = 1;
  if (!id || !rep)
    oom();
  for (size_t i = 0; i < t->n; i++) {
    const struct stat *st = &t->v[i].st;
    if (!S_ISDIR(st->st_mode) && st->st_nlink > 1)
      refs[nr++] = (struct link_ref){&t->v[i], i};
  }
  /* Sorted by (inode, walk position): each group's first ref is the name
   * seen first.  rep[i] = 1 + that name's index, for groups of 2+ names. */
  if (nr > 1)
    qsort(refs, nr, sizeof *refs, ref_cmp);
  for (size_t k = 0; k < nr;) {
    size_t end = k + 1;
    while (end < nr && inode_cmp(refs[k].e, refs[end].e) == 0)
      end++;
    for (size_t m = k; end - k > 1 && m < end; m++)
      rep[refs[m].idx] = refs[k].idx + 1;
    k = end;
  }
  /* A group's first name precedes its others, so its id is set first. */
  for (size_t i = 0; i < t->n; i++) {
    if (rep[i] == i + 1)
      id[i] = next++;
    else if (rep[i])
      id[i] = id[rep[i] - 1];
  }
  free(refs);
  free(rep);
  return id;
}

/* One line per entry, TAB separated:
 * path type mode uid:gid size mtime target group hash */
static void list_tree(const struct tree *t) {
  size_t *group = link_groups(t);
  for (size_t i = opt.ignore_root ? 1 : 0; i < t->n; i++) {
    const struct entry *e = &t->v[i];
    const struct stat *st = &e->st;
    put_path(stdout, e->path);
    printf("\t%c\t%04o", type_char(st->st_mode),
           (unsigned)(st->st_mode & 07777));
    if (opt.ignore_owner)
      fputs("\t-", stdout);
    else
      printf("\t%ju:%ju", (uintmax_t)st->st_uid, (uintmax_t)st->st_gid);
    if (S_ISREG(st->st_mode) || S_ISLNK(st->st_mode))
      printf("\t%jd", (intmax_t)st->st_size);
    else
      fputs("\t-", stdout);
    if (mtime_ignored(e))
      fputs("\t-", stdout);
    else
      printf("\t%jd.%09ld", (intmax_t)st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
    putchar('\t');
    put_escaped(stdout, e->target ? e->target : "-");
    if (group[i])
      printf("\t%zu", group[i]);
    else
      fputs("\t-", stdout);
    if (S_ISREG(st->st_mode))
      printf("\t%016" PRIx64 "\n", e->hash);
    else
      fputs("\t-\n", stdout);
  }
  free(group);
}

/* ----------------------------------------------------------------- main */

static void usage(void) {
  fputs("usage: treecmp [--ignore-dir-mtime] [--ignore-symlink-mtime]"
        " [--ignore-owner]\n"
        "               [--ignore-root] [-x RELPATH]... A B\n"
        "       treecmp [options] --list A\n",
        stderr);
  exit(2);
}

/* "./a/b/" -> "a/b": the form paths take in the walk. */
static char *normalize(const char *s) {
  while (s[0] == '.' && s[1] == '/')
    for (s += 2; *s == '/'; s++)
      ;
  char *p = xstrdup(s);
  size_t len = strlen(p);
  while (len > 0 && p[len - 1] == '/')
    p[--len] = '\0';
  if (len == 0 || strcmp(p, ".") == 0) {
    fputs("treecmp: -x cannot exclude the root\n", stderr);
    exit(2);
  }
  return p;
}

static void add_exclude(const char *s) {
  opt.excludes = xrealloc(opt.excludes, (opt.nexcludes + 1) * sizeof(char *));
  opt.excludes[opt.nexcludes++] = normalize(s);
}

/* Parse options; returns the index of the first operand. */
static int parse_args(int argc, char **argv, int *list) {
  int i = 1;
  for (; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--")) {
      i++;
      break;
    } else if (!strcmp(a, "--ignore-dir-mtime"))
      opt.ignore_dir_mtime = 1;
    else if (!strcmp(a, "--ignore-symlink-mtime"))
      opt.ignore_symlink_mtime = 1;
    else if (!strcmp(a, "--ignore-owner"))
      opt.ignore_owner = 1;
    else if (!strcmp(a, "--ignore-root"))
      opt.ignore_root = 1;
    else if (!strcmp(a, "--list"))
      *list = 1;
    else if (!strcmp(a, "-x") || !strcmp(a, "--exclude")) {
      if (++i >= argc)
        usage();
      add_exclude(argv[i]);
    } else if (!strncmp(a, "-x", 2))
      add_exclude(a + 2);
    else
      usage();
  }
  return i;
}

int main(int argc, char **argv) {
  int list = 0;
  int first = parse_args(argc, argv, &list);
  int nops = argc - first;
  if (nops != (list ? 1 : 2))
    usage();
  struct tree a, b;
  if (load_tree(&a, argv[first]) < 0)
    return 2;
  if (list) {
    list_tree(&a);
  } else {
    if (load_tree(&b, argv[first + 1]) < 0) {
      free_tree(&a);
      return 2;
    }
    compare_trees(&a, &b);
    free_tree(&b);
  }
  free_tree(&a);
  for (size_t i = 0; i < opt.nexcludes; i++)
    free(opt.excludes[i]);
  free(opt.excludes);
  if (fflush(stdout) != 0 || ferror(stdout)) {
    fprintf(stderr, "treecmp: write error: %s\n", strerror(errno));
    return 2;
  }
  return io_error ? 2 : differ ? 1 : 0;
}
