/*
 * mktree -- deterministic test-tree generator for syncplan tests.
 *
 *   mktree hostile DIR [--unreadable]
 *   mktree sample DIR [-n FILES] [-s SEED] [--max-size BYTES] [--per-dir N]
 *
 * Standalone (libc only).  Everything is created relative to a directory fd
 * for DIR, with umask 0 and explicit modes, and every entry gets a distinct
 * mtime (with a nanosecond part) derived from a counter, so two runs with the
 * same arguments produce trees that treecmp considers identical (apart from
 * inode numbers, which only matter through the hard-link partition).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "escape.h"

static int root_fd = -1;
static const char *root_name = "";

/* Directories in creation order; their mtimes are fixed up at the end in
 * reverse order (children before parents), because adding an entry to a
 * directory bumps its mtime. */
static char **dirs;
static size_t ndirs, dirs_cap;

/* Counter behind the distinct timestamps. */
static uint64_t time_seq;

/* ---------------------------------------------------------------- errors */

static void die(const char *fmt, ...) {
  va_list ap;
  fputs("mktree: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  exit(1);
}

/* Report a failed system call on REL (relative to the root) and exit. */
static void die_at(const char *what, const char *rel) {
  int err = errno;
  fprintf(stderr, "mktree: %s ", what);
  put_escaped(stderr, root_name);
  fputc('/', stderr);
  put_escaped(stderr, rel);
  fprintf(stderr, ": %s\n", strerror(err));
  exit(1);
}

static void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p)
    die("out of memory");
  return p;
}

/* ------------------------------------------------------------------ PRNG */

/* splitmix64: tiny, fast, and good enough for test data. */
static uint64_t rng_next(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/* Uniform value in [0, n) (n > 0); rejection avoids modulo bias. */
static uint64_t rng_below(uint64_t *state, uint64_t n) {
  uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t v;
  do
    v = rng_next(state);
  while (v >= limit);
  return v % n;
}

static void rng_fill(uint64_t *state, unsigned char *buf, size_t len) {
  size_t i = 0;
  for (; i + 8 <= len; i += 8) {
    uint64_t v = rng_next(state);
    memcpy(buf + i, &v, 8);
  }
  if (i < len) {
    uint64_t v = rng_next(state);
    memcpy(buf + i, &v, len - i);
  }
}

/* ------------------------------------------------------------ timestamps */

/* Next distinct past timestamp: seconds step by 61 from 2017 (a million
 * entries still end in 2019), and
 * the nanosecond part is never zero so truncation to seconds or microseconds
 * is detectable. */
static void next_times(struct timespec ts[2]) {
  uint64_t n = time_seq++;
  ts[1].tv_sec = (time_t)(1500000000 + n * 61);
  ts[1].tv_nsec = (long)((n * 987654323ULL + 123456789ULL) % 999999999ULL) + 1;
  ts[0] = ts[1];
}

static void stamp_at(const char *rel) {
  struct timespec ts[2];
  next_times(ts);
  if (utimensat(root_fd, rel, ts, AT_SYMLINK_NOFOLLOW) < 0)
    die_at("cannot set times on", rel);
}

static void stamp_fd(int fd, const char *rel) {
  struct timespec ts[2];
  next_times(ts);
  if (futimens(fd, ts) < 0)
    die_at("cannot set times on", rel);
}

/* ------------------------------------------------------------- creation */

static void remember_dir(const char *rel) {
  if (ndirs == dirs_cap) {
    dirs_cap = dirs_cap ? dirs_cap * 2 : 256;
    dirs = realloc(dirs, dirs_cap * sizeof *dirs);
    if (!dirs)
      die("out of memory");
  }
  dirs[ndirs] = strdup(rel);
  if (!dirs[ndirs])
    die("out of memory");
  ndirs++;
}

static void mk_dir(const char *rel, mode_t mode) {
  if (mkdirat(root_fd, rel, 0755) < 0)
    die_at("cannot create directory", rel);
  /* mkdir ignores setgid/sticky bits on some systems; chmod is exact. */
  if (fchmodat(root_fd, rel, mode, 0) < 0)
    die_at("cannot chmod", rel);
  remember_dir(rel);
}

static void write_all(int fd, const void *data, size_t len, const char *rel) {
  const char *p = data;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      die_at("cannot write", rel);
    }
    p += n;
    len -= (size_t)n;
  }
}

/* Create an open file at DIRFD/NAME; REL is only used in messages. */
static int create_at(int dirfd, const char *name, const char *rel) {
  int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0)
    die_at("cannot create", rel);
  return fd;
}

/* Set mode and mtime through the fd (works even for 0400), then close. */
static void finish_file(int fd, mode_t mode, const char *rel) {
  if (fchmod(fd, mode) < 0)
    die_at("cannot chmod", rel);
  stamp_fd(fd, rel);
  if (close(fd) < 0)
    die_at("cannot close", rel);
}

static void mk_file(const char *rel, const void *data, size_t len,
                    mode_t mode) {
  int fd = create_at(root_fd, rel, rel);
  write_all(fd, data, len, rel);
  finish_file(fd, mode, rel);
}

static void mk_text(const char *rel, const char *text) {
  mk_file(rel, text, strlen(text), 0644);
}

static void mk_symlink(const char *target, const char *rel) {
  if (symlinkat(target, root_fd, rel) < 0)
    die_at("cannot create symlink", rel);
  stamp_at(rel);
}

static void mk_hardlink(const char *existing, const char *rel) {
  if (linkat(root_fd, existing, root_fd, rel, 0) < 0)
    die_at("cannot create hard link", rel);
}

static void mk_fifo(const char *rel, mode_t mode) {
  if (mkfifoat(root_fd, rel, mode) < 0)
    die_at("cannot create fifo", rel);
  if (fchmodat(root_fd, rel, mode, 0) < 0)
    die_at("cannot chmod", rel);
  stamp_at(rel);
}

/* Fix directory mtimes deepest first (reverse creation order), ending with
 * the root itself, which was remembered first as ".". */
static void stamp_dirs(void) {
  for (size_t i = ndirs; i-- > 0;)
    stamp_at(dirs[i]);
}

/* Create DIR, or accept it if it already exists and is empty. */
static void open_root(const char *path) {
  root_name = path;
  if (mkdir(path, 0755) < 0 && errno != EEXIST)
    die("cannot create directory %s: %s", path, strerror(errno));
  root_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root_fd < 0)
    die("cannot open directory %s: %s", path, strerror(errno));
  int fd = dup(root_fd);
  DIR *d = fd < 0 ? NULL : fdopendir(fd);
  if (!d)
    die("cannot read directory %s: %s", path, strerror(errno));
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
      die("%s exists and is not empty", path);
  }
  closedir(d);
  if (fchmod(root_fd, 0755) < 0)
    die("cannot chmod %s: %s", path, strerror(errno));
  remember_dir(".");
}

/* --------------------------------------------------------- hostile tree */

/* Every name here is a single file under names/.  Tests refer to these. */
static const char *const hostile_names[] = {
    "with space",
    "two  spaces",
    " leading-space",
    "trailing-space ",
    "new\nline",
    "trailing-newline\n",
    "tab\there",
    "cr\rhere",
    "-",
    "-rf",
    "--delete",
    "host:path",
    "star*",
    "*",
    "question?",
    "[a]",
    "{x,y}",
    "back\\slash",
    "single'quote",
    "double\"quote",
    "$HOME",
    "back`tick",
    "semi;colon",
    "amp&ersand",
    "pi|pe",
    ".hidden",
    "...",
    "~tilde",
    "\xff\xfe-bad",
    "\xc3\xaa\xc3\xa9\xe4\xb8\x96\xe7\x95\x8c", /* "êé世界" in UTF-8 */
};

static void hostile_names_dir(void) {
  char rel[512];
  mk_dir("names", 0755);
  for (size_t i = 0; i < sizeof hostile_names / sizeof *hostile_names; i++) {
    char body[64];
    snprintf(rel, sizeof rel, "names/%s", hostile_names[i]);
    snprintf(body, sizeof body, "hostile name #%zu\n", i);
    mk_text(rel, body);
  }
  /* Hostile names as directories too, so they appear mid-path. */
  mk_dir("names/dir with space", 0755);
  mk_text("names/dir with space/inner file", "inner\n");
  mk_dir("names/-dir", 0755);
  mk_text("names/-dir/--help", "not an option\n");
  mk_dir("names/new\nline dir", 0755);
  mk_text("names/new\nline dir/file\nwith newline", "nl\n");
  mk_dir("names/\xff-bad-dir", 0755);
  mk_text("names/\xff-bad-dir/x", "bad dir\n");
}

/* 200-byte names: "long-file-xxx..." and "long-dir-DDD...". */
static void hostile_long(void) {
  char name[201], rel[512];
  mk_dir("long", 0755);
  memset(name, 'x', 200);
  name[200] = '\0';
  memcpy(name, "long-file-", 10);
  snprintf(rel, sizeof rel, "long/%s", name);
  mk_text(rel, "long file name\n");
  memset(name, 'D', 200);
  memcpy(name, "long-dir-", 9);
  snprintf(rel, sizeof rel, "long/%s", name);
  mk_dir(rel, 0755);
  snprintf(rel, sizeof rel, "long/%s/inside", name);
  mk_text(rel, "inside long dir\n");
}

/* deep/d01/d02/.../d60/leaf */
static void hostile_deep(void) {
  char rel[512] = "deep";
  size_t len = strlen(rel);
  mk_dir(rel, 0755);
  for (int i = 1; i <= 60; i++) {
    len += (size_t)snprintf(rel + len, sizeof rel - len, "/d%02d", i);
    mk_dir(rel, 0755);
  }
  snprintf(rel + len, sizeof rel - len, "/leaf");
  mk_text(rel, "bottom of the chain\n");
}

static void hostile_hardlinks(void) {
  mk_dir("hardlinks", 0755);
  mk_dir("hardlinks/g1", 0755);
  mk_dir("hardlinks/g2", 0755);
  mk_dir("hardlinks/g3", 0755);
  mk_text("hardlinks/g1/three-a", "one inode, three names\n");
  mk_hardlink("hardlinks/g1/three-a", "hardlinks/g2/three-b");
  mk_hardlink("hardlinks/g1/three-a", "hardlinks/g3/three-c");
  mk_dir("hardlinks/pair", 0755);
  mk_text("hardlinks/pair/p1", "one inode, two names\n");
  mk_hardlink("hardlinks/pair/p1", "hardlinks/pair/p2");
  /* Same content as p1 but a separate inode: must not be merged. */
  mk_text("hardlinks/pair/p3-copy", "one inode, two names\n");
}

static void hostile_symlinks(void) {
  mk_dir("symlinks", 0755);
  mk_text("symlinks/target.txt", "symlink target\n");
  mk_symlink("target.txt", "symlinks/rel");
  mk_symlink("../files/no-newline", "symlinks/rel-up");
  mk_symlink("/etc/hostname", "symlinks/abs");
  mk_symlink("does/not/exist", "symlinks/dangling");
  mk_symlink("../deep/d01", "symlinks/todir");
  mk_symlink("loop-b", "symlinks/loop-a");
  mk_symlink("loop-a", "symlinks/loop-b");
  mk_symlink("self", "symlinks/self");
  mk_symlink("../names/-rf", "symlinks/to-dash");
  mk_symlink("target with\nnewline", "symlinks/newline-target");
}

static void hostile_empty(void) {
  mk_dir("empty", 0755);
  mk_dir("empty/a", 0755);
  mk_dir("empty/a/b", 0755);
}

/* Sparse: 8 MiB apparent size, one 4 KiB block of data at offset 4 MiB. */
static void mk_sparse(const char *rel) {
  unsigned char block[4096];
  uint64_t st = 42;
  rng_fill(&st, block, sizeof block);
  int fd = create_at(root_fd, rel, rel);
  if (lseek(fd, 4 << 20, SEEK_SET) < 0)
    die_at("cannot seek in", rel);
  write_all(fd, block, sizeof block, rel);
  if (ftruncate(fd, 8 << 20) < 0)
    die_at("cannot truncate", rel);
  finish_file(fd, 0644, rel);
}

static void hostile_files(void) {
  mk_dir("files", 0755);
  mk_file("files/empty", "", 0, 0644);
  mk_text("files/no-newline", "no final newline");
  unsigned char *buf = xmalloc(1 << 20);
  for (size_t i = 0; i < 65536; i++)
    buf[i] = (unsigned char)('a' + i % 26);
  mk_file("files/exact-64k", buf, 65536, 0644);
  uint64_t st = 7;
  rng_fill(&st, buf, 1 << 20);
  mk_file("files/random-1m", buf, 1 << 20, 0644);
  free(buf);
  mk_sparse("files/sparse");
}

static void hostile_modes(void) {
  mk_dir("modes", 0755);
  mk_file("modes/r-0400", "read only\n", 10, 0400);
  mk_file("modes/x-0755", "#!/bin/sh\necho hi\n", 18, 0755);
  mk_file("modes/rw-0600", "private\n", 8, 0600);
  mk_file("modes/r-0640", "group read\n", 11, 0640);
  mk_dir("modes/dir-0711", 0711);
  mk_text("modes/dir-0711/inside", "in 0711\n");
  mk_dir("modes/setgid-2755", 02755);
  mk_text("modes/setgid-2755/inside", "in setgid\n");
  mk_dir("modes/sticky-1777", 01777);
  mk_text("modes/sticky-1777/inside", "in sticky\n");
}

static void hostile_unreadable(void) {
  mk_dir("unreadable", 0755);
  mk_text("unreadable/secret-1", "secret 1\n");
  mk_text("unreadable/secret-2", "secret 2\n");
  mk_dir("unreadable/sub", 0755);
  mk_text("unreadable/sub/secret-3", "secret 3\n");
}

static void build_hostile(int unreadable) {
  mk_text("plain.txt", "plain\n");
  hostile_names_dir();
  hostile_long();
  hostile_deep();
  hostile_hardlinks();
  hostile_files();
  hostile_symlinks();
  hostile_empty();
  hostile_modes();
  mk_dir("special", 0755);
  mk_fifo("special/fifo", 0644);
  if (unreadable)
    hostile_unreadable();
  stamp_dirs();
  /* Last: after this even the owner (if unprivileged) cannot touch it. */
  if (unreadable && fchmodat(root_fd, "unreadable", 0, 0) < 0)
    die_at("cannot chmod", "unreadable");
}

/* ---------------------------------------------------------- sample tree */

struct sample_opts {
  uint64_t files;
  uint64_t seed;
  uint64_t max_size;
  uint64_t per_dir;
};

static int digits(uint64_t v) {
  int d = 1;
  while (v >= 10) {
    v /= 10;
    d++;
  }
  return d;
}

static int max_int(int a, int b) {
  return a > b ? a : b;
}

/* Name widths, so names sort in creation order (d000/e00/f0000 minimum). */
struct widths {
  int d, e, f;
  uint64_t fanout; /* leaf directories per top directory */
};

/* Append PREFIX and V zero-padded to WIDTH digits at P (NUL-terminated);
 * returns the end.  Hand-rolled so buffer sizes are obviously enough. */
static char *put_num(char *p, char prefix, int width, uint64_t v) {
  int n = max_int(width, digits(v));
  *p++ = prefix;
  for (int i = n - 1; i >= 0; i--, v /= 10)
    p[i] = (char)('0' + v % 10);
  p[n] = '\0';
  return p + n;
}

/* Leaf directory K, e.g. "d000/e00" (OUT needs 64 bytes). */
static char *leaf_path(char *out, const struct widths *w, uint64_t k) {
  char *p = put_num(out, 'd', w->d, k / w->fanout);
  *p++ = '/';
  return put_num(p, 'e', w->e, k % w->fanout);
}

/* Path of sample file I, e.g. "d000/e00/f0000" (OUT needs 96 bytes). */
static void sample_path(char *out, const struct sample_opts *o,
                        const struct widths *w, uint64_t i) {
  char *p = leaf_path(out, w, i / o->per_dir);
  *p++ = '/';
  put_num(p, 'f', w->f, i);
}

/* Write SIZE pseudo-random bytes through a reusable buffer. */
static void write_random(int fd, uint64_t *st, uint64_t size,
                         unsigned char *buf, size_t cap, const char *rel) {
  while (size > 0) {
    size_t n = size < cap ? (size_t)size : cap;
    rng_fill(st, buf, n);
    write_all(fd, buf, n, rel);
    size -= n;
  }
}

/* Fill leaf directory K (already created, open as LEAF_FD). */
static void sample_leaf(const struct sample_opts *o, const struct widths *w,
                        uint64_t k, int leaf_fd, uint64_t *size_rng,
                        unsigned char *buf, size_t cap) {
  uint64_t end = (k + 1) * o->per_dir;
  if (end > o->files)
    end = o->files;
  for (uint64_t i = k * o->per_dir; i < end; i++) {
    char rel[96], name[32];
    sample_path(rel, o, w, i);
    put_num(name, 'f', w->f, i);
    uint64_t size = rng_below(size_rng, o->max_size + 1);
    /* Per-file stream: contents differ between files and don't depend on
     * the sizes of the files before. */
    uint64_t st = o->seed ^ (i * 0xd1b54a32d192ed03ULL);
    rng_next(&st);
    int fd = create_at(leaf_fd, name, rel);
    write_random(fd, &st, size, buf, cap, rel);
    finish_file(fd, 0644, rel);
  }
}

static void sample_data(const struct sample_opts *o, const struct widths *w) {
  uint64_t nleaf = (o->files + o->per_dir - 1) / o->per_dir;
  uint64_t size_rng = o->seed;
  size_t cap = o->max_size < (1 << 20) ? (size_t)o->max_size + 1 : 1 << 20;
  unsigned char *buf = xmalloc(cap);
  for (uint64_t k = 0; k < nleaf; k++) {
    char rel[64];
    if (k % w->fanout == 0) {
      put_num(rel, 'd', w->d, k / w->fanout);
      mk_dir(rel, 0755);
    }
    leaf_path(rel, w, k);
    mk_dir(rel, 0755);
    int fd = openat(root_fd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
      die_at("cannot open", rel);
    sample_leaf(o, w, k, fd, &size_rng, buf, cap);
    close(fd);
  }
  free(buf);
}

/* extra/: empty dirs, symlinks and hard links into the data dirs. */
static void sample_extra(const struct sample_opts *o, const struct widths *w) {
  char target[128], rel[96];
  mk_dir("extra", 0755);
  mk_dir("extra/empty-0", 0755);
  mk_dir("extra/empty-1", 0755);
  mk_dir("extra/empty-nested", 0755);
  mk_dir("extra/empty-nested/sub", 0755);
  mk_symlink("../does-not-exist", "extra/link-dangling");
  mk_symlink("/etc/hostname", "extra/link-abs");
  if (o->files == 0)
    return;
  sample_path(rel, o, w, 0);
  snprintf(target, sizeof target, "../%s", rel);
  mk_symlink(target, "extra/link-file");
  memcpy(target, "../", 3);
  put_num(target + 3, 'd', w->d, 0);
  mk_symlink(target, "extra/link-dir");
  /* Hard-link pairs across directories: data file <-> extra/hardlink-N. */
  uint64_t pairs = o->files >= 2 ? 2 : 1;
  for (uint64_t p = 0; p < pairs; p++) {
    char link[64];
    sample_path(rel, o, w, p * (o->files - 1));
    snprintf(link, sizeof link, "extra/hardlink-%llu", (unsigned long long)p);
    mk_hardlink(rel, link);
  }
}

static void build_sample(const struct sample_opts *o) {
  struct widths w;
  uint64_t nleaf = (o->files + o->per_dir - 1) / o->per_dir;
  uint64_t fanout = 1;
  while (fanout * fanout < nleaf)
    fanout++;
  w.fanout = fanout;
  w.d = max_int(3, digits(nleaf ? (nleaf - 1) / fanout : 0));
  w.e = max_int(2, digits(fanout - 1));
  w.f = max_int(4, digits(o->files ? o->files - 1 : 0));
  sample_data(o, &w);
  sample_extra(o, &w);
  stamp_dirs();
}

/* ----------------------------------------------------------------- main */

static void usage(void) {
  fputs("usage: mktree hostile DIR [--unreadable]\n"
        "       mktree sample DIR [-n FILES] [-s SEED] [--max-size BYTES]"
        " [--per-dir N]\n",
        stderr);
  exit(1);
}

static uint64_t parse_u64(const char *opt, const char *s) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 0);
  if (errno || end == s || *end || s[0] == '-')
    die("invalid number for %s: %s", opt, s);
  return v;
}

static const char *opt_arg(int argc, char **argv, int *i) {
  if (*i + 1 >= argc)
    die("option %s needs an argument", argv[*i]);
  return argv[++*i];
}

static int main_hostile(int argc, char **argv) {
  const char *dir = NULL;
  int unreadable = 0;
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], "--unreadable") == 0)
      unreadable = 1;
    else if (argv[i][0] == '-' || dir)
      usage();
    else
      dir = argv[i];
  }
  if (!dir)
    usage();
  open_root(dir);
  build_hostile(unreadable);
  return 0;
}

static int main_sample(int argc, char **argv) {
  struct sample_opts o = {2000, 1, 16384, 100};
  const char *dir = NULL;
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-n") == 0)
      o.files = parse_u64(a, opt_arg(argc, argv, &i));
    else if (strcmp(a, "-s") == 0)
      o.seed = parse_u64(a, opt_arg(argc, argv, &i));
    else if (strcmp(a, "--max-size") == 0)
      o.max_size = parse_u64(a, opt_arg(argc, argv, &i));
    else if (strcmp(a, "--per-dir") == 0)
      o.per_dir = parse_u64(a, opt_arg(argc, argv, &i));
    else if (a[0] == '-' || dir)
      usage();
    else
      dir = a;
  }
  if (!dir)
    usage();
  if (o.per_dir == 0)
    die("--per-dir must be at least 1");
  if (o.per_dir > o.files && o.files > 0)
    o.per_dir = o.files; /* avoids overflow in the leaf-count arithmetic */
  if (o.max_size == UINT64_MAX)
    die("--max-size too large");
  open_root(dir);
  build_sample(&o);
  return 0;
}

int main(int argc, char **argv) {
  umask(0);
  if (argc < 3)
    usage();
  if (strcmp(argv[1], "hostile") == 0)
    return main_hostile(argc, argv);
  if (strcmp(argv[1], "sample") == 0)
    return main_sample(argc, argv);
  usage();
  return 1;
}
