/*
 * syncplan demo: the README's first command.  Generates a sample tree
 * (no servers needed) and runs the default job on it: the embedded default
 * plan syncs it to a second directory with several rsync workers.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static const char demo_help[] =
    "usage: syncplan demo [-n FILES] [DIR]\n"
    "\n"
    "Generate a sample tree of FILES files (default 5000, sizes 0-16 KiB)\n"
    "in DIR/src (default: a new directory under $TMPDIR or /tmp) and sync\n"
    "it to DIR/dst with the embedded default plan: 8 balanced chunks, 4\n"
    "rsync workers, journal in DIR/state.  Exit status as for 'run'.\n";

static uint64_t rng_next(uint64_t *s) {
  /* xorshift64*: deterministic, so every demo tree is the same. */
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * 2685821657736338717ULL;
}

static int write_file(const char *path, const char *data, size_t n) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return -1;
  ssize_t w = write(fd, data, n);
  int rc = (w == (ssize_t)n) ? 0 : -1;
  if (close(fd) < 0)
    rc = -1;
  return rc;
}

static int make_tree(const char *src, unsigned nfiles) {
  static char data[16384];
  uint64_t seed = 0x5eed;
  for (size_t i = 0; i < sizeof data; i++)
    data[i] = (char)('a' + rng_next(&seed) % 26);
  char path[4096];
  if (mkdir(src, 0755) < 0)
    return -1;
  for (unsigned i = 0; i < nfiles; i++) {
    unsigned top = i / 250, sub = (i / 25) % 10;
    snprintf(path, sizeof path, "%s/d%03u", src, top);
    if (i % 250 == 0 && mkdir(path, 0755) < 0)
      return -1;
    snprintf(path, sizeof path, "%s/d%03u/e%02u", src, top, sub);
    if (i % 25 == 0 && mkdir(path, 0755) < 0)
      return -1;
    snprintf(path, sizeof path, "%s/d%03u/e%02u/f%05u.dat", src, top, sub, i);
    if (write_file(path, data, rng_next(&seed) % (sizeof data + 1)) < 0)
      return -1;
  }
  /* A hard-link pair across directories, a symlink and an empty dir, so
   * the demo shows they are handled. */
  char a[4096], b[4096];
  snprintf(a, sizeof a, "%s/d000/e00/f00000.dat", src);
  snprintf(b, sizeof b, "%s/hardlink-to-f00000.dat", src);
  snprintf(path, sizeof path, "%s/empty-dir", src);
  if (link(a, b) < 0 || mkdir(path, 0755) < 0)
    return -1;
  snprintf(path, sizeof path, "%s/link-to-d000", src);
  return symlink("d000", path);
}

int cmd_demo(int argc, char **argv) {
  unsigned nfiles = 5000;
  int c;
  optind = 1;
  static const struct option longopts[] = {{"help", no_argument, NULL, 'h'},
                                           {NULL, 0, NULL, 0}};
  while ((c = getopt_long(argc, argv, "+hn:", longopts, NULL)) != -1) {
    if (c == 'h') {
      fputs(demo_help, stdout);
      return EXIT_OK;
    }
    if (c != 'n' || (nfiles = (unsigned)strtoul(optarg, NULL, 10)) == 0 ||
        nfiles > 10000000) {
      fputs(demo_help, stderr);
      return EXIT_USAGE;
    }
  }
  char dir[3072];
  if (optind < argc) {
    snprintf(dir, sizeof dir, "%s", argv[optind]);
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
      cli_error("demo: cannot create '%s': %s", dir, strerror(errno));
      return EXIT_USAGE;
    }
  } else {
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/syncplan-demo.XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
      cli_error("demo: cannot create a directory: %s", strerror(errno));
      return EXIT_USAGE;
    }
  }
  char src[3200], dst[3200], state[3200];
  snprintf(src, sizeof src, "%s/src", dir);
  snprintf(dst, sizeof dst, "%s/dst", dir);
  snprintf(state, sizeof state, "%s/state", dir);
  if (make_tree(src, nfiles) < 0) {
    cli_error("demo: cannot build the sample tree in '%s': %s", dir,
              strerror(errno));
    return EXIT_PARTIAL;
  }
  printf("sample tree: %s (%u files)\n", src, nfiles);
  printf("running the default plan: %s/ -> %s/ with 4 rsync workers over "
         "8 chunks\n(journal and logs in %s)\n",
         src, dst, state);
  fflush(stdout);
  int rc = cli_lua_demo(src, dst, state);
  if (rc == EXIT_OK)
    printf("done: %s is a copy of %s (check: rsync -aHn --delete "
           "--itemize-changes %s/ %s/ prints nothing)\n",
           dst, src, src, dst);
  return rc;
}
