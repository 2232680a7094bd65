/*
 * syncplan chunk: partition a tree the way fpart does, so existing fpsync
 * and dsync style scripts can swap fpart for it.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static const char chunk_help[] =
    "usage: syncplan chunk [-n N | -f FILES | -s SIZE | -t] [-L] [-x PAT]...\n"
    "                      [-i PAT]... [-0] [-o TEMPLATE] [-v] [-b] [-j N] "
    "DIR\n"
    "\n"
    "Partition the tree below DIR into chunks.  Without -o, print one line\n"
    "per entry: PART<TAB>SIZE<TAB>PATH, PATH relative to DIR (fpart's\n"
    "format).  Chunks are numbered from 1.  Directories are listed (size 0)\n"
    "so a receiver recreates empty ones; all names of a hard-linked file are\n"
    "in one chunk.\n"
    "\n"
    "modes (one of):\n"
    "  -n N          exactly N chunks, balanced by bytes then by entries\n"
    "  -f FILES      at most FILES entries per chunk (may be combined with "
    "-s)\n"
    "  -s SIZE       at most SIZE bytes per chunk; a larger file gets a chunk\n"
    "                of its own.  -f/-s chunks are streamed while the crawl\n"
    "                runs.  SIZE takes k, M, G, T, P suffixes (powers of "
    "1024)\n"
    "  -t            one chunk per top-level entry of DIR\n"
    "options:\n"
    "  -L            live mode (fpart's flag): accepted, -f/-s always stream\n"
    "  -x, --exclude PAT  exclude entries matching PAT (rsync pattern rules)\n"
    "  -i, --include PAT  include entries matching PAT; the first matching\n"
    "                -x/-i rule wins, in command-line order\n"
    "  -0            end each output line (or list entry with -o) with NUL\n"
    "  -o TEMPLATE   write chunk N's paths to the file TEMPLATE.N instead\n"
    "  -v            per-chunk summary and totals on stderr\n"
    "  -b, --one-file-system  do not descend into other filesystems\n"
    "  -j, --threads N        crawl threads (default: one per core, 2 to 8;\n"
    "                         more help on network filesystems)\n"
    "\n"
    "Exit status: 0 done, 1 some paths could not be read (listed on stderr),\n"
    "2 usage error.\n";

struct out {
  int fd;
  int failed;
  size_t used;
  char buf[64 * 1024];
};

static void out_write(struct out *o, const char *p, size_t n) {
  while (n && !o->failed) {
    ssize_t w = write(o->fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0)
      o->failed = errno;
    else
      p += w, n -= (size_t)w;
  }
}

static void out_flush(struct out *o) {
  out_write(o, o->buf, o->used);
  o->used = 0;
}

/* Decimal digits of v, right-aligned in tmp[24]; returns the start. */
static char *fmt_u64(char tmp[24], uint64_t v) {
  char *p = tmp + 24;
  do
    *--p = (char)('0' + v % 10);
  while ((v /= 10) != 0);
  return p;
}

struct chunk_run {
  struct out *out;
  lsync_ctx *ctx;
  const char *tmpl;
  char term;
  int verbose;
  int failed;
  unsigned nchunks;
  uint64_t bytes; /* as the chunks count them: a hard-linked file once */
};

/* PART<TAB>SIZE<TAB>PATH lines, built in place in the output buffer:
 * this is the whole output of `chunk`, one line per entry. */
static void print_chunk(struct chunk_run *r, const lsync_chunk *c) {
  struct out *o = r->out;
  char part[24], num[24];
  char *pp = fmt_u64(part, lsync_chunk_index(c));
  size_t plen = (size_t)(part + 24 - pp), n = lsync_chunk_len(c);
  for (size_t i = 0; i < n; i++) {
    lsync_chunk_item it;
    lsync_chunk_item_at(c, i, &it);
    char *sp = fmt_u64(num, it.size);
    size_t slen = (size_t)(num + 24 - sp);
    size_t len = plen + 1 + slen + 1 + it.path_len + 1;
    if (o->used + len > sizeof o->buf) {
      out_flush(o);
      if (len > sizeof o->buf) { /* a path longer than the buffer */
        out_write(o, pp, plen);
        out_write(o, "\t", 1);
        out_write(o, sp, slen);
        out_write(o, "\t", 1);
        out_write(o, it.path, it.path_len);
        out_write(o, &r->term, 1);
        continue;
      }
    }
    char *d = o->buf + o->used;
    memcpy(d, pp, plen);
    d += plen;
    *d++ = '\t';
    memcpy(d, sp, slen);
    d += slen;
    *d++ = '\t';
    memcpy(d, it.path, it.path_len);
    d += it.path_len;
    *d = r->term;
    o->used += len;
  }
}

static int write_list_file(struct chunk_run *r, lsync_chunk *c) {
  char name[4096];
  unsigned idx = lsync_chunk_index(c);
  if (snprintf(name, sizeof name, "%s.%u", r->tmpl, idx) >= (int)sizeof name) {
    cli_error("output template too long");
    return -1;
  }
  int fd = open(name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) {
    cli_error("cannot create '%s': %s", name, strerror(errno));
    return -1;
  }
  int rc = lsync_chunk_write(r->ctx, c, fd, r->term);
  if (close(fd) < 0 && rc == 0)
    rc = -1;
  if (rc < 0)
    cli_error("cannot write '%s': %s", name, lsync_ctx_errmsg(r->ctx));
  return rc;
}

static int on_chunk(void *ud, lsync_chunk *c) {
  struct chunk_run *r = ud;
  int rc = 0;
  r->nchunks++;
  r->bytes += lsync_chunk_bytes(c);
  if (r->tmpl) {
    rc = write_list_file(r, c);
  } else {
    print_chunk(r, c);
    if (r->out->failed)
      rc = -1;
  }
  if (r->verbose)
    fprintf(stderr, "Part #%u: size = %" PRIu64 ", files = %zu\n",
            lsync_chunk_index(c), lsync_chunk_bytes(c), lsync_chunk_len(c));
  lsync_chunk_free(c);
  if (rc < 0)
    r->failed = 1;
  return rc;
}

struct chunk_args {
  lsync_chunk_opts copts;
  lsync_scan_opts sopts;
  const char *dir;
  const char *tmpl;
  char term;
  int verbose;
};

static int parse_u64(const char *opt, const char *s, uint64_t *v, int sized) {
  if (sized ? lsync_parse_size(s, v) == 0
            : (lsync_parse_size(s, v) == 0 &&
               strspn(s, "0123456789") == strlen(s)))
    return 0;
  cli_error("chunk: %s expects %s, not '%s'", opt,
            sized ? "a size such as 4G or 512k" : "a whole number", s);
  return -1;
}

static int add_rule(lsync_filter *f, lsync_rule_kind kind, const char *pat) {
  if (lsync_filter_add(f, kind, pat) == 0)
    return 0;
  cli_error("chunk: invalid pattern '%s'", pat);
  return -1;
}

static int parse_chunk_args(int argc, char **argv, lsync_filter *f,
                            struct chunk_args *a) {
  static const struct option longopts[] = {
      {"help", no_argument, NULL, 'h'},
      {"exclude", required_argument, NULL, 'x'},
      {"include", required_argument, NULL, 'i'},
      {"one-file-system", no_argument, NULL, 'b'},
      {"threads", required_argument, NULL, 'j'},
      {NULL, 0, NULL, 0}};
  int modes = 0, c, limits = 0;
  uint64_t v;
  memset(a, 0, sizeof *a);
  lsync_scan_opts_init(&a->sopts);
  a->term = '\n';
  optind = 1;
  while ((c = getopt_long(argc, argv, "+hn:f:s:tLx:i:0o:vbj:", longopts,
                          NULL)) != -1) {
    switch (c) {
    case 'h':
      fputs(chunk_help, stdout);
      exit(EXIT_OK);
    case 'n':
      if (parse_u64("-n", optarg, &v, 0) < 0)
        return -1;
      if (v < 1 || v > 1000000) {
        cli_error("chunk: -n must be between 1 and 1000000");
        return -1;
      }
      a->copts.mode = LSYNC_CHUNK_COUNT;
      a->copts.count = (unsigned)v;
      modes++;
      break;
    case 'f':
      if (parse_u64("-f", optarg, &a->copts.max_files, 0) < 0)
        return -1;
      limits |= 1;
      break;
    case 's':
      if (parse_u64("-s", optarg, &a->copts.max_bytes, 1) < 0)
        return -1;
      limits |= 2;
      break;
    case 't':
      a->copts.mode = LSYNC_CHUNK_TOPLEVEL;
      modes++;
      break;
    case 'L':
      break;
    case 'x':
    case 'i':
      if (add_rule(f, c == 'x' ? LSYNC_EXCLUDE : LSYNC_INCLUDE, optarg) < 0)
        return -1;
      break;
    case '0':
      a->term = '\0';
      break;
    case 'o':
      a->tmpl = optarg;
      break;
    case 'v':
      a->verbose = 1;
      break;
    case 'b':
      a->sopts.one_filesystem = 1;
      break;
    case 'j':
      if (parse_u64("-j", optarg, &v, 0) < 0)
        return -1;
      if (v < 1 || v > 64) {
        cli_error("chunk: -j must be between 1 and 64");
        return -1;
      }
      a->sopts.threads = (unsigned)v;
      break;
    default:
      fputs(chunk_help, stderr);
      return -1;
    }
  }
  if (limits) {
    if ((limits & 1 && !a->copts.max_files) ||
        (limits & 2 && !a->copts.max_bytes)) {
      cli_error("chunk: -f and -s limits must be greater than 0");
      return -1;
    }
    a->copts.mode = LSYNC_CHUNK_LIMITS;
    modes++;
  }
  if (modes != 1) {
    cli_error("chunk: give exactly one of -n, -f/-s or -t");
    return -1;
  }
  if (optind != argc - 1) {
    cli_error("chunk: expected one directory (try 'syncplan chunk --help')");
    return -1;
  }
  a->dir = argv[optind];
  if (lsync_filter_count(f))
    a->sopts.filter = f;
  return 0;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int cmd_chunk(int argc, char **argv) {
  lsync_ctx *ctx = NULL;
  lsync_filter *f = NULL;
  struct chunk_args a;
  static struct out out; /* 64 KiB: not on the stack */
  if (lsync_ctx_new(&ctx) < 0 || lsync_filter_new(&f) < 0) {
    cli_error("out of memory");
    return EXIT_USAGE;
  }
  int status = EXIT_USAGE;
  if (parse_chunk_args(argc, argv, f, &a) < 0)
    goto done;
  lsync_ctx_set_log(ctx, cli_log, NULL, LSYNC_LOG_WARN);
  out.fd = STDOUT_FILENO;
  struct chunk_run run = {&out, ctx, a.tmpl, a.term, a.verbose, 0, 0, 0};
  lsync_scan_stats st;
  double t0 = now();
  int rc =
      lsync_chunk_tree(ctx, a.dir, &a.sopts, &a.copts, on_chunk, &run, &st);
  out_flush(&out);
  double dt = now() - t0;
  if (rc < 0 && !run.failed) {
    cli_error("%s", lsync_ctx_errmsg(ctx));
    status = rc == LSYNC_ENOENT || rc == LSYNC_ENOTDIR || rc == LSYNC_EACCES
                 ? EXIT_USAGE
                 : EXIT_PARTIAL;
    goto done;
  }
  if (out.failed)
    cli_error("cannot write output: %s", strerror(out.failed));
  if (a.verbose)
    fprintf(stderr,
            "%" PRIu64 " entries, %" PRIu64 " bytes in %u chunks; %" PRIu64
            " dirs read, %" PRIu64 " excluded, %" PRIu64
            " unreadable; %.3f s (%.0f entries/s)\n",
            st.entries, run.bytes, run.nchunks, st.dirs, st.excluded, st.errors,
            dt, dt > 0 ? (double)st.entries / dt : 0.0);
  status = (run.failed || out.failed || st.errors) ? EXIT_PARTIAL : EXIT_OK;
done:
  lsync_filter_free(f);
  lsync_ctx_free(ctx);
  return status;
}
