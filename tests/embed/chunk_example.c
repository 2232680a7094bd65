/*
 * Embedding libsync: chunk a tree into N balanced lists and print a
 * summary.  Built by the test suite against the *installed* library
 * (pkg-config and the CMake package), so the installed API cannot rot.
 *
 *   cc chunk_example.c $(pkg-config --cflags --libs libsync)
 *   ./a.out DIR [N]
 */
#include <stdio.h>
#include <stdlib.h>

#include <libsync/libsync.h>

struct totals {
  unsigned chunks;
  size_t entries;
};

/* The callback owns each chunk and frees it. */
static int on_chunk(void *ud, lsync_chunk *c) {
  struct totals *t = ud;
  printf("chunk %u: %zu entries, %llu bytes\n", lsync_chunk_index(c),
         lsync_chunk_len(c), (unsigned long long)lsync_chunk_bytes(c));
  t->chunks++;
  t->entries += lsync_chunk_len(c);
  lsync_chunk_free(c);
  return 0;
}

static void on_log(void *ud, lsync_log_level level, const char *msg) {
  (void)ud;
  fprintf(stderr, "libsync[%d]: %s\n", (int)level, msg);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s DIR [N]\n", argv[0]);
    return 2;
  }
  lsync_ctx *ctx;
  if (lsync_ctx_new(&ctx) != 0)
    return 1;
  lsync_ctx_set_log(ctx, on_log, NULL, LSYNC_LOG_WARN);

  lsync_filter *f;
  lsync_filter_new(&f);
  lsync_filter_add(f, LSYNC_EXCLUDE, "*.tmp");

  lsync_scan_opts sopts;
  lsync_scan_opts_init(&sopts);
  sopts.filter = f;
  lsync_chunk_opts copts = {.mode = LSYNC_CHUNK_COUNT,
                            .count = argc > 2 ? (unsigned)atoi(argv[2]) : 4};
  struct totals t = {0, 0};
  lsync_scan_stats st;
  int rc = lsync_chunk_tree(ctx, argv[1], &sopts, &copts, on_chunk, &t, &st);
  if (rc < 0)
    fprintf(stderr, "error %s: %s\n", lsync_err_name(rc),
            lsync_ctx_errmsg(ctx));
  else
    printf("libsync %s: %zu entries in %u chunks\n", lsync_version(), t.entries,
           t.chunks);
  lsync_filter_free(f);
  lsync_ctx_free(ctx);
  return rc < 0;
}
