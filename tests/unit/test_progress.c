/*
 * Progress parsers on verbatim output of the tools installed here
 * (rsync 3.5.0, rclone v1.60), plus records from a live rsync run so a
 * change of format on this machine shows up here first.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libsync/libsync.h>

#include "check.h"

static int near(double a, double b) {
  return fabs(a - b) <= 1e-6 * (fabs(b) + 1);
}

struct rsync_case {
  const char *line;
  uint64_t bytes;
  double rate;
  int counts; /* has "(xfr#..." */
  uint64_t files, checked, total;
};

#define KB 1024.0
#define MB (1024.0 * 1024.0)
#define GB (1024.0 * MB)
#define TB (1024.0 * GB)

/* Records from `rsync -a --info=progress2 [--no-h|-h] --bwlimit=...`,
 * split at "\r"/"\n" and copied byte for byte (trailing spaces too). */
static const struct rsync_case rsync_ok[] = {
    /* --no-h */
    {"              3   0%    0.00kB/s    0:00:00  ", 3, 0, 0, 0, 0, 0},
    {"              3   0%    0.00kB/s    0:00:00 (xfr#1, to-chk=3/5)", 3, 0, 1,
     1, 2, 5},
    {"        2097155  50%    1.99MB/s    0:00:01  ", 2097155, 1.99 * MB, 0, 0,
     0, 0},
    {"        4194307  99%    1.99MB/s    0:00:02 (xfr#2, to-chk=2/5)", 4194307,
     1.99 * MB, 1, 2, 3, 5},
    {"        4194310 100%    1.99MB/s    0:00:02 (xfr#3, to-chk=0/5)", 4194310,
     1.99 * MB, 1, 3, 5, 5},
    {"        4194307  99% 1000.00MB/s    0:00:00 (xfr#2, to-chk=2/4)", 4194307,
     1000 * MB, 1, 2, 2, 4},
    {"          32768   0%    0.00kB/s    0:00:00  ", 32768, 0, 0, 0, 0, 0},
    {"         131072   0%   68.33kB/s   ??:??:??  ", 131072, 68.33 * KB, 0, 0,
     0, 0},
    /* default (human_readable 1: thousands separators) */
    {"      2,097,155  50%    1.99MB/s    0:00:01  ", 2097155, 1.99 * MB, 0, 0,
     0, 0},
    {"      4,194,310 100%    1.99MB/s    0:00:02 (xfr#3, to-chk=0/5)", 4194310,
     1.99 * MB, 1, 3, 5, 5},
    {"        131,072   0%   68.28kB/s   ??:??:??  ", 131072, 68.28 * KB, 0, 0,
     0, 0},
    {"         32,768   0%    0.00kB/s    0:00:00  ", 32768, 0, 0, 0, 0, 0},
    /* incremental recursion: the file list is still growing */
    {"             15   0%   11.72kB/s    0:00:00 (xfr#4, ir-chk=1046/1081)",
     15, 11.72 * KB, 1, 4, 35, 1081},
    {"              3   0%    0.00kB/s    0:00:00 (xfr#1, ir-chk=1049/1081)", 3,
     0, 1, 1, 32, 1081},
    /* -h: sizes in units of 1000 */
    {"          2.10M  50%    1.99MB/s    0:00:01  ", 2100000, 1.99 * MB, 0, 0,
     0, 0},
    {"          4.19M 100%    1.99MB/s    0:00:02 (xfr#3, to-chk=0/5)", 4190000,
     1.99 * MB, 1, 3, 5, 5},
    /* a failed run's last record (source missing) */
    {"              0 100%    0.00kB/s    0:00:00 (xfr#0, to-chk=0/0)", 0, 0, 1,
     0, 0, 0},
    /* Not seen here (too fast or too slow to provoke): the other rate
     * units rsync prints, its 3.0 spelling, and large counts. */
    {"  1,234,567,890 100%    2.50GB/s    0:00:01 (xfr#1, to-chk=0/1)",
     1234567890, 2.5 * GB, 1, 1, 1, 1},
    {" 99,000,000,000,000  12%    1.25TB/s    0:00:10  ", 99000000000000ULL,
     1.25 * TB, 0, 0, 0, 0},
    {"            512 100%  512.00B/s    0:00:00", 512, 512, 0, 0, 0, 0},
    {"        1048576 100%   10.00MB/s    0:00:00 (xfer#7, to-check=3/10)",
     1048576, 10 * MB, 1, 7, 7, 10},
    {"   123456789012 100%    1.00kB/s  120:00:00 (xfr#123456, "
     "to-chk=0/123456)",
     123456789012ULL, KB, 1, 123456, 123456, 123456},
};

/* Lines on rsync's stdout or stderr that are not progress records. */
static const char *const rsync_not[] = {
    "rsync: [sender] link_stat \"/nonexistent\" failed: No such file or "
    "directory (2)",
    "rsync error: some files/attrs were not transferred (see previous errors) "
    "(code 23) at main.c(1394) [sender=3.5.0]",
    "rsync error: received SIGINT, SIGTERM, or SIGHUP (code 20) at "
    "rsync.c(874) [sender=3.5.0]",
    "sending incremental file list",
    "",
    "   ",
    "big",
    "d/a",
    "32768",
    "2021 50% done",
    "         32,768   0%    0.00kB/s    0:00:00  rsync error: received "
    "SIGINT, SIGTERM, or SIGHUP (code 20) at rsync.c(874) [sender=3.5.0]",
    "        4194310 100%    1.99MB/s    0:00:02 (xfr#3, to-chk=0/5",
    "        4194310 100%    1.99MB/s    0:00:02 (xfr#3 to-chk=0/5)",
    "        4194310 100%    1.99XB/s    0:00:02",
    "        4194310 100%    1.99MB/s    0:0:02",
    "        4194310 101%    1.99MB/s    0:00:02",
    "        4.19 100%    1.99MB/s    0:00:02",
    "        ,4194310 100%    1.99MB/s    0:00:02",
    "  99999999999999999999 100%    1.99MB/s    0:00:02",
};

static void test_rsync(void) {
  for (size_t i = 0; i < sizeof rsync_ok / sizeof rsync_ok[0]; i++) {
    const struct rsync_case *c = &rsync_ok[i];
    lsync_progress p = {111, 222, 333, 444, 555, 6.0};
    int ok = lsync_progress_parse_rsync(c->line, strlen(c->line), &p);
    CHECK(ok == 1);
    CHECK(p.bytes == c->bytes);
    CHECK(near(p.rate, c->rate));
    CHECK(p.total_bytes == 555); /* rsync never says */
    if (c->counts) {
      CHECK(p.files == c->files);
      CHECK(p.checked == c->checked);
      CHECK(p.total == c->total);
    } else {
      /* Without "(xfr#" the counts keep their earlier values. */
      CHECK(p.files == 222 && p.checked == 333 && p.total == 444);
    }
    if (!ok || p.bytes != c->bytes)
      fprintf(stderr, "  line: \"%s\" -> bytes %" PRIu64 "\n", c->line,
              p.bytes);
  }
  for (size_t i = 0; i < sizeof rsync_not / sizeof rsync_not[0]; i++) {
    lsync_progress p = {1, 2, 3, 4, 5, 6.0};
    int ok = lsync_progress_parse_rsync(rsync_not[i], strlen(rsync_not[i]), &p);
    CHECK(ok == 0);
    CHECK(p.bytes == 1 && p.files == 2 && p.rate == 6.0);
    if (ok)
      fprintf(stderr, "  taken for progress: \"%s\"\n", rsync_not[i]);
  }
  /* The length bounds the record: no NUL needed, none read past. */
  const char *rec = "      4,194,310 100%    1.99MB/s    0:00:02 (xfr#3, "
                    "to-chk=0/5)GARBAGE";
  lsync_progress p = {0};
  CHECK(lsync_progress_parse_rsync(rec, strlen(rec) - 7, &p) == 1);
  CHECK(p.files == 3 && p.total == 5);
  CHECK(lsync_progress_parse_rsync(rec, strlen(rec), &p) == 0);
  CHECK(lsync_progress_parse_rsync(rec, 10, &p) == 0);
}

/* Lines of `rclone copy src dst --use-json-log --stats 1s
 * --stats-log-level NOTICE --config /dev/null -v` (v1.60.1). */
static const char rclone_stats_mid[] =
    "{\"level\":\"warning\",\"msg\":\"\\nTransferred:   \\t    2.027 MiB / "
    "4.000 MiB, 51%, 1.027 MiB/s, ETA 1s\\nTransferred:            2 / 3, "
    "67%\\nElapsed time:         2.0s\\nTransferring:\\n *                  "
    "                         big: 50% /4Mi, 1.026Mi/s, "
    "1s\\n\\n\",\"source\":\"accounting/"
    "stats.go:482\",\"stats\":{\"bytes\":2125830,\"checks\":0,"
    "\"deletedDirs\":0,\"deletes\":0,\"elapsedTime\":2.040034299,\"errors\":"
    "0,\"eta\":1,\"fatalError\":false,\"renames\":0,\"retryError\":false,"
    "\"speed\":1076834.8786358768,\"totalBytes\":4194310,\"totalChecks\":0,"
    "\"totalTransfers\":3,\"transferTime\":0,\"transferring\":[{\"bytes\":"
    "2125824,\"eta\":1,\"group\":\"global_stats\",\"name\":\"big\","
    "\"percentage\":50,\"size\":4194304,\"speed\":1063031.9200993904,"
    "\"speedAvg\":1075956.152169941}],\"transfers\":2},\"time\":\"2026-11-"
    "21T07:06:58.12088+00:00\"}";

static const char rclone_stats_first[] =
    "{\"level\":\"warning\",\"msg\":\"\\nTransferred:   \\t    1.027 MiB / "
    "4.000 MiB, 26%, 0 B/s, ETA -\\nTransferred:            2 / 3, "
    "67%\\nElapsed time:         1.0s\\nTransferring:\\n *                  "
    "                         big: 25% /4Mi, 0/s, "
    "-\\n\\n\",\"source\":\"accounting/stats.go:482\",\"stats\":{\"bytes\":"
    "1077254,\"checks\":0,\"deletedDirs\":0,\"deletes\":0,\"elapsedTime\":1."
    "040375959,\"errors\":0,\"eta\":null,\"fatalError\":false,\"renames\":0,"
    "\"retryError\":false,\"speed\":0,\"totalBytes\":4194310,\"totalChecks\":"
    "0,\"totalTransfers\":3,\"transferTime\":0,\"transferring\":[{\"bytes\":"
    "1077248,\"eta\":null,\"group\":\"global_stats\",\"name\":\"big\","
    "\"percentage\":25,\"size\":4194304,\"speed\":1077121.230371034,"
    "\"speedAvg\":0}],\"transfers\":2},\"time\":\"2026-11-21T07:06:57."
    "121245+00:00\"}";

static const char rclone_stats_failed[] =
    "{\"level\":\"warning\",\"msg\":\"\\nTransferred:   \\t          0 B / 0 "
    "B, -, 0 B/s, ETA -\\nErrors:                 1 (retrying may "
    "help)\\nElapsed time:         0.0s\\n\\n\",\"source\":\"accounting/"
    "stats.go:482\",\"stats\":{\"bytes\":0,\"checks\":0,\"deletedDirs\":0,"
    "\"deletes\":0,\"elapsedTime\":0.037012751,\"errors\":1,\"eta\":null,"
    "\"fatalError\":false,\"lastError\":\"directory not found\",\"renames\":"
    "0,\"retryError\":true,\"speed\":0,\"totalBytes\":0,\"totalChecks\":0,"
    "\"totalTransfers\":0,\"transferTime\":0,\"transfers\":0},\"time\":"
    "\"2026-11-21T07:07:00.167806+00:00\"}";

static const char *const rclone_not[] = {
    "{\"level\":\"info\",\"msg\":\"Starting bandwidth limiter at 1Mi "
    "Byte/s\",\"source\":\"accounting/token_bucket.go:108\",\"time\":\"2026-"
    "11-21T07:06:56.119752+00:00\"}",
    "{\"level\":\"info\",\"msg\":\"Copied (new)\",\"object\":\"d/a\","
    "\"objectType\":\"*local.Object\",\"source\":\"operations/"
    "operations.go:566\",\"time\":\"2026-11-21T07:06:56.121659+00:00\"}",
    "{\"level\":\"error\",\"msg\":\"error reading source root directory: "
    "directory not found\",\"object\":\"Local file system at "
    "/nonexistent\",\"objectType\":\"*local.Fs\",\"source\":\"march/"
    "march.go:413\",\"time\":\"2026-11-21T07:07:00.167238+00:00\"}",
    "2026/11/21 07:07:00 Failed to copy: directory not found",
    "",
    "{}",
    "{\"stats\":null}",
    "{\"stats\":[1,2]}",
    /* broken: truncated, trailing text, bad numbers */
    "{\"level\":\"warning\",\"stats\":{\"bytes\":10,\"transfers\":1}",
    "{\"level\":\"warning\",\"stats\":{\"bytes\":10,\"transfers\":1}} x",
    "{\"stats\":{\"bytes\":1.}}",
    "{\"stats\":{\"bytes\":-}}",
    "{\"x\":\"12\\q\",\"stats\":{\"bytes\":1}}",
    "{\"stats\":{\"bytes\":10,}}",
    "[{\"stats\":{\"bytes\":10}}]",
};

static void test_rclone(void) {
  lsync_progress p = {0};
  CHECK(lsync_progress_parse_rclone(rclone_stats_mid,
                                    sizeof rclone_stats_mid - 1, &p) == 1);
  CHECK(p.bytes == 2125830);
  CHECK(p.total_bytes == 4194310);
  CHECK(p.files == 2);
  CHECK(p.checked == 2);
  CHECK(p.total == 3);
  CHECK(near(p.rate, 1076834.8786358768));

  CHECK(lsync_progress_parse_rclone(rclone_stats_first,
                                    sizeof rclone_stats_first - 1, &p) == 1);
  CHECK(p.bytes == 1077254 && p.rate == 0 && p.files == 2);

  CHECK(lsync_progress_parse_rclone(rclone_stats_failed,
                                    sizeof rclone_stats_failed - 1, &p) == 1);
  CHECK(p.bytes == 0 && p.total == 0 && p.total_bytes == 0);

  /* checks count as looked-at entries; fields in any order, spaces,
   * exponents and escapes in keys. */
  const char *mixed = " { \"time\" : \"x\\u00e9\\ud83d\\ude00\" , \"stats\" : "
                      "{ \"totalChecks\" : 7 , \"checks\":5, \"transfers\" "
                      ": 2, \"totalTransfers\": 3, \"tot\\u0061lBytes\": "
                      "1.5e3, \"speed\": 2.5E+2, \"bytes\": 12, \"nested\": "
                      "{\"a\": [true, false, null, {\"b\": -1.25e-3}]} } } ";
  CHECK(lsync_progress_parse_rclone(mixed, strlen(mixed), &p) == 1);
  CHECK(p.files == 2 && p.checked == 7 && p.total == 10);
  CHECK(p.total_bytes == 1500 && p.bytes == 12);
  CHECK(near(p.rate, 250));

  for (size_t i = 0; i < sizeof rclone_not / sizeof rclone_not[0]; i++) {
    lsync_progress q = {1, 2, 3, 4, 5, 6.0};
    int ok =
        lsync_progress_parse_rclone(rclone_not[i], strlen(rclone_not[i]), &q);
    CHECK(ok == 0);
    CHECK(q.bytes == 1 && q.files == 2 && q.total_bytes == 5);
    if (ok)
      fprintf(stderr, "  taken for stats: %s\n", rclone_not[i]);
  }

  /* Nesting deeper than any log line is refused, not recursed into. */
  char deep[400];
  size_t n = 0;
  n += (size_t)sprintf(deep, "{\"stats\":{\"bytes\":1},\"x\":");
  for (int i = 0; i < 100; i++)
    deep[n++] = '[';
  for (int i = 0; i < 100; i++)
    deep[n++] = ']';
  deep[n++] = '}';
  CHECK(lsync_progress_parse_rclone(deep, n, &p) == 0);
}

/* Every record of a live `rsync --info=progress2` run parses, and the last
 * one counts all the files; with and without --no-h. */
static void test_live_rsync(void) {
  char dir[] = "/tmp/test_progress.XXXXXX";
  if (!mkdtemp(dir)) {
    CHECK(!"mkdtemp");
    return;
  }
  char cmd[1024];
  snprintf(cmd, sizeof cmd,
           "cd %s && mkdir -p src/d && head -c 300000 /dev/urandom > src/a && "
           "echo x > src/d/b && echo y > src/c",
           dir);
  CHECK(system(cmd) == 0);
  for (int noh = 0; noh < 2; noh++) {
    snprintf(cmd, sizeof cmd,
             "LC_ALL=C rsync -a --info=progress2 %s %s/src/ %s/dst%d/",
             noh ? "--no-h" : "", dir, dir, noh);
    FILE *f = popen(cmd, "r");
    if (!f) {
      CHECK(!"popen rsync");
      continue;
    }
    char buf[65536];
    size_t len = fread(buf, 1, sizeof buf, f);
    CHECK(pclose(f) == 0);
    lsync_progress p = {0};
    int records = 0, others = 0;
    for (size_t s = 0, i = 0; i <= len; i++) {
      if (i < len && buf[i] != '\r' && buf[i] != '\n')
        continue;
      if (i > s) {
        if (lsync_progress_parse_rsync(buf + s, i - s, &p))
          records++;
        else {
          others++;
          fprintf(stderr, "  live line not parsed: \"%.*s\"\n", (int)(i - s),
                  buf + s);
        }
      }
      s = i + 1;
    }
    CHECK(records >= 1);
    CHECK(others == 0);
    CHECK(p.bytes == 300004);
    CHECK(p.files == 3);
    CHECK(p.total == 5 && p.checked == 5); /* ".", d, a, c, d/b */
  }
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  CHECK(system(cmd) == 0);
}

int main(void) {
  test_rsync();
  test_rclone();
  test_live_rsync();
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
