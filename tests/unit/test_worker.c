/*
 * Workers with real children: rsync copying from a NUL-separated list,
 * shells that fail, hang, ignore SIGTERM or leave grandchildren behind,
 * rclone's JSON log, large inputs, a missing program, and frees at every
 * point of the lifecycle.  The loop is driven with lsync_run().
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libsync/libsync.h>

#include "check.h"

static char scratch[64];

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void path_in(char *buf, size_t n, const char *name) {
  snprintf(buf, n, "%s/%s", scratch, name);
}

/* The whole file, NUL-terminated; NULL if it cannot be read. */
static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  size_t cap = 4096, n = 0;
  char *b = malloc(cap);
  size_t r;
  while (b && (r = fread(b + n, 1, cap - n - 1, f)) > 0) {
    n += r;
    if (cap - n < 2) {
      char *nb = realloc(b, cap *= 2);
      if (!nb)
        free(b);
      b = nb;
    }
  }
  fclose(f);
  if (b)
    b[n] = '\0';
  if (len)
    *len = n;
  return b;
}

static int same_file(const char *a, const char *b) {
  size_t na, nb;
  char *x = slurp(a, &na), *y = slurp(b, &nb);
  int same = x && y && na == nb && memcmp(x, y, na) == 0;
  free(x);
  free(y);
  return same;
}

/* Gone, or a zombie nobody has reaped yet (PID 1 here may not reap). */
static int process_gone(int pid) {
  char path[64], buf[256];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f)
    return 1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  const char *rp = strrchr(buf, ')');
  return rp && rp[1] == ' ' && rp[2] == 'Z';
}

static int wait_gone(int pid, double secs) {
  double end = now_s() + secs;
  while (!process_gone(pid)) {
    if (now_s() > end)
      return 0;
    usleep(10000);
  }
  return 1;
}

static void log_cb(void *ud, lsync_log_level level, const char *msg) {
  (void)ud;
  fprintf(stderr, "  [log %d] %s\n", (int)level, msg);
}

/* ---- one run ---------------------------------------------------------- */

struct run {
  lsync_worker *w;
  int exits, progress_calls;
  int free_in_exit, free_in_progress;
  lsync_worker_result r;
  char last_error[600];
  lsync_progress last;
  double start, exit_at, prev_call, min_gap; /* min_gap: all but the last */
  double last_gap;
};

static void on_progress(void *ud, lsync_worker *w, const lsync_progress *p) {
  struct run *run = ud;
  double t = now_s();
  CHECK(w == run->w);
  CHECK(run->exits == 0);
  if (run->progress_calls > 0) {
    /* The gap before the final call may be short; keep the smallest of
     * the others. */
    if (run->last_gap < run->min_gap)
      run->min_gap = run->last_gap;
    run->last_gap = t - run->prev_call;
  }
  run->prev_call = t;
  run->progress_calls++;
  run->last = *p;
  if (run->free_in_progress) {
    lsync_worker_free(w);
    run->w = NULL;
  }
}

static void on_exit_cb(void *ud, lsync_worker *w,
                       const lsync_worker_result *r) {
  struct run *run = ud;
  CHECK(w == run->w);
  run->exits++;
  run->exit_at = now_s();
  run->r = *r;
  snprintf(run->last_error, sizeof run->last_error, "%s", r->last_error);
  run->r.last_error = run->last_error;
  if (run->free_in_exit) {
    lsync_worker_free(w);
    run->w = NULL;
  }
}

static void run_init(struct run *run, lsync_worker_opts *o,
                     const char *const *argv) {
  memset(run, 0, sizeof *run);
  run->min_gap = run->last_gap = 1e9;
  lsync_worker_opts_init(o);
  o->argv = argv;
  o->on_progress = on_progress;
  o->on_exit = on_exit_cb;
  o->ud = run;
}

static int run_start(lsync_ctx *ctx, struct run *run,
                     const lsync_worker_opts *o) {
  run->start = now_s();
  int rc = lsync_worker_start(ctx, o, &run->w);
  if (rc < 0)
    fprintf(stderr, "  start %s: %s: %s\n", o->argv[0], lsync_err_name(rc),
            lsync_ctx_errmsg(ctx));
  return rc;
}

/* Start, run the loop until nothing is left, free. */
static int run_all(lsync_ctx *ctx, struct run *run,
                   const lsync_worker_opts *o) {
  int rc = run_start(ctx, run, o);
  CHECK(rc == 0);
  if (rc < 0)
    return rc;
  CHECK(lsync_run(ctx, LSYNC_RUN_DEFAULT) == 0);
  CHECK(run->exits == 1);
  lsync_worker_free(run->w);
  run->w = NULL;
  return 0;
}

/* ---- cases ------------------------------------------------------------ */

/* (1) rsync copying a list from stdin, with progress records. */
static void test_rsync(lsync_ctx *ctx) {
  char src[128], dst[128], cmd[1024], logp[160];
  path_in(src, sizeof src, "src");
  path_in(dst, sizeof dst, "dst");
  path_in(logp, sizeof logp, "rsync.log");
  snprintf(cmd, sizeof cmd,
           "mkdir -p %s/d %s && head -c 4194304 /dev/urandom > %s/big && "
           "printf 'hello\\n' > %s/d/a && printf 'x' > %s/b",
           src, dst, src, src, src);
  CHECK(system(cmd) == 0);
  char srcarg[160], dstarg[160];
  snprintf(srcarg, sizeof srcarg, "%s/", src);
  snprintf(dstarg, sizeof dstarg, "%s/", dst);
  const char *argv[] = {"rsync",
                        "-a",
                        "--files-from=-",
                        "--from0",
                        "--info=progress2",
                        "--no-h",
                        "--bwlimit=2000",
                        srcarg,
                        dstarg,
                        NULL};
  static const char list[] = "big\0d/a\0b\0";
  struct run run;
  lsync_worker_opts o;
  run_init(&run, &o, argv);
  o.input = list;
  o.input_len = sizeof list - 1;
  o.progress = LSYNC_PROGRESS_RSYNC;
  o.log_path = logp;
  o.watchdog_ms = 10000;
  if (run_all(ctx, &run, &o) < 0)
    return;
  CHECK(run.r.exit_status == 0);
  CHECK(run.r.term_signal == 0 && !run.r.timed_out && !run.r.stopped);
  CHECK(run.r.last_error[0] == '\0');
  CHECK(run.r.progress.bytes >= 4194304 + 7);
  CHECK(run.r.progress.files == 3);
  CHECK(run.r.progress.total == 4); /* big, d, d/a, b */
  CHECK(run.r.progress.checked == 4);
  CHECK(run.r.progress.rate > 0);
  CHECK(run.progress_calls >= 3);
  /* The last callback carried the final state. */
  CHECK(run.last.bytes == run.r.progress.bytes);
  CHECK(run.last.files == run.r.progress.files);
  /* At most ~10 calls a second (the loop's clock is coarse). */
  CHECK(run.progress_calls < 3 || run.min_gap >= 0.08);
  CHECK(run.r.elapsed > 1.0 && run.r.elapsed < 15);
  const char *names[] = {"big", "d/a", "b"};
  for (size_t i = 0; i < 3; i++) {
    char a[200], b[200];
    snprintf(a, sizeof a, "%s/%s", src, names[i]);
    snprintf(b, sizeof b, "%s/%s", dst, names[i]);
    CHECK(same_file(a, b));
  }
  fprintf(stderr, "  rsync: %d progress calls, bytes %llu, %.2f s\n",
          run.progress_calls, (unsigned long long)run.r.progress.bytes,
          run.r.elapsed);
}

/* (2) A failing command: status, last error line, log file. */
static void test_fail(lsync_ctx *ctx) {
  char logp[160];
  path_in(logp, sizeof logp, "fail.log");
  const char *argv[] = {"sh", "-c",
                        "echo out-line; echo first >&2; "
                        "echo \"rsync error: boom\" >&2; echo >&2; exit 23",
                        NULL};
  struct run run;
  lsync_worker_opts o;
  run_init(&run, &o, argv);
  o.log_path = logp;
  o.progress = LSYNC_PROGRESS_RSYNC;
  if (run_all(ctx, &run, &o) < 0)
    return;
  CHECK(run.r.exit_status == 23);
  CHECK(run.r.term_signal == 0);
  CHECK(strcmp(run.last_error, "rsync error: boom") == 0);
  CHECK(run.progress_calls == 0);
  char *log = slurp(logp, NULL);
  CHECK(log != NULL);
  if (log) {
    CHECK(strstr(log, "first\n") != NULL);
    CHECK(strstr(log, "rsync error: boom\n") != NULL);
    CHECK(strstr(log, "out-line\n") != NULL);
  }
  free(log);
  struct stat st;
  CHECK(stat(logp, &st) == 0 && (st.st_mode & 0777) == 0600);

  /* The log is appended to, never truncated. */
  const char *argv2[] = {"sh", "-c", "echo second-run >&2", NULL};
  run_init(&run, &o, argv2);
  o.log_path = logp;
  run_all(ctx, &run, &o);
  log = slurp(logp, NULL);
  CHECK(log && strstr(log, "first\n") && strstr(log, "second-run\n"));
  free(log);
  CHECK(run.r.exit_status == 0);
  CHECK(strcmp(run.last_error, "second-run") == 0);
}

/* (3) The watchdog stops a silent child. */
static void test_watchdog(lsync_ctx *ctx) {
  const char *argv[] = {"sleep", "30", NULL};
  struct run run;
  lsync_worker_opts o;
  run_init(&run, &o, argv);
  o.watchdog_ms = 300;
  if (run_all(ctx, &run, &o) < 0)
    return;
  CHECK(run.r.timed_out == 1);
  CHECK(run.r.stopped == 0);
  CHECK(run.r.exit_status == -1);
  CHECK(run.r.term_signal == SIGTERM);
  CHECK(run.exit_at - run.start < 1.0);
  CHECK(run.r.elapsed >= 0.25 && run.r.elapsed < 1.0);
}

/* (4) stop escalates to SIGKILL for a group that ignores SIGTERM. */
struct stopper {
  lsync_worker **w;
  char pidfile[160];
  int fired;
};

static void stop_when_ready(void *ud, lsync_timer *t) {
  struct stopper *s = ud;
  struct stat st;
  if (stat(s->pidfile, &st) == 0 && st.st_size > 0) {
    lsync_worker_stop(*s->w);
    lsync_worker_stop(*s->w); /* idempotent */
    s->fired = 1;
    lsync_timer_stop(t);
  }
}

static void test_stop(lsync_ctx *ctx) {
  struct stopper s = {0};
  path_in(s.pidfile, sizeof s.pidfile, "sleep.pid");
  char script[800];
  snprintf(script, sizeof script,
           "trap '' TERM; sleep 30 & echo $! > %s.tmp; mv %s.tmp %s; wait",
           s.pidfile, s.pidfile, s.pidfile);
  const char *argv[] = {"sh", "-c", script, NULL};
  struct run run;
  lsync_worker_opts o;
  run_init(&run, &o, argv);
  o.grace_ms = 300;
  s.w = &run.w;
  lsync_timer *t;
  CHECK(lsync_timer_new(ctx, stop_when_ready, &s, &t) == 0);
  CHECK(lsync_timer_start(t, 20, 20) == 0);
  if (run_start(ctx, &run, &o) < 0) {
    lsync_timer_close(t);
    CHECK(0);
    return;
  }
  double t0 = now_s();
  while (run.exits == 0 && now_s() - t0 < 10)
    lsync_run(ctx, LSYNC_RUN_ONCE);
  lsync_timer_close(t);
  lsync_run(ctx, LSYNC_RUN_DEFAULT);
  CHECK(s.fired);
  CHECK(run.exits == 1);
  CHECK(run.r.stopped == 1 && run.r.timed_out == 0);
  CHECK(run.r.exit_status == -1);
  CHECK(run.r.term_signal == SIGKILL);
  lsync_worker_stop(run.w); /* after exit: nothing happens */
  lsync_worker_free(run.w);
  char *pid = slurp(s.pidfile, NULL);
  CHECK(pid != NULL);
  if (pid) {
    int sleep_pid = atoi(pid);
    CHECK(sleep_pid > 1);
    CHECK(wait_gone(sleep_pid, 2.0));
  }
  free(pid);
}

/* (5) A child killed from outside. */
static void kill_it(void *ud, lsync_timer *t) {
  lsync_worker *w = *(lsync_worker **)ud;
  kill(lsync_worker_pid(w), SIGKILL);
  lsync_timer_close(t);
}

static void test_killed(lsync_ctx *ctx) {
  const char *argv[] = {"sleep", "30", NULL};
  struct run run;
  lsync_worker_opts o;
  run_init(&run, &o, argv);
  lsync_timer *t;
  CHECK(lsync_timer_new(ctx, kill_it, &run.w, &t) == 0);
  CHECK(lsync_timer_start(t, 100, 0) == 0);
  if (run_all(ctx, &run, &o) < 0) {
    lsync_timer_close(t);
    return;
  }
  CHECK(run.r.exit_status == -1);
  CHECK(run.r.term_signal == SIGKILL);
  CHECK(!run.r.stopped && !run.r.timed_out);
}

/* (6) Two MiB of input arrive intact. */
static void test_input(lsync_ctx *ctx) {
  char out[160], script[256];
  path_in(out, sizeof out, "input.out");
  snprintf(script, sizeof script, "cat > %s", out);
  size_t n = 2u << 20;
  char *data = malloc(n);
  if (!data) {
    CHECK(0);
    return;
  }
  for (size_t i = 0; i < n; i++)
    data[i] = (char)((i * 7919u) >> 3);
  const char *argv[] = {"sh", "-c", script, NULL};
  struct run run;
  lsync_worker_opts o;
  run_init(&run, &o, argv);
  o.input = data;
  o.input_len = n;
  int rc = run_start(ctx, &run, &o);
  CHECK(rc == 0);
  /* The worker copied the input: the caller's buffer may go now. */
  memset(data, 0, n);
  if (rc == 0) {
    lsync_run(ctx, LSYNC_RUN_DEFAULT);
    lsync_worker_free(run.w);
  }
  for (size_t i = 0; i < n; i++)
    data[i] = (char)((i * 7919u) >> 3);
  size_t got;
  char *back = slurp(out, &got);
  CHECK(run.exits == 1 && run.r.exit_status == 0);
  CHECK(back && got == n && memcmp(back, data, n) == 0);
  free(back);
  free(data);
}

/* (7) A child that does not read its input: no SIGPIPE for us, and the
 * child itself gets the default SIGPIPE disposition. */
static void test_unread_input(lsync_ctx *ctx) {
  size_t n = 8u << 20;
  char *data = calloc(1, n);
  const char *argv[] = {"true", NULL};
  struct run run;
  lsync_worker_opts o;
  run_init(&run, &o, argv);
  o.input = data;
  o.input_len = n;
  run_all(ctx, &run, &o);
  free(data);
  CHECK(run.exits == 1 && run.r.exit_status == 0 && run.r.term_signal == 0);
  struct sigaction sa;
  CHECK(sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN);

  char logp[160];
  path_in(logp, sizeof logp, "sigign.log");
  const char *argv2[] = {"grep", "^SigIgn:", "/proc/self/status", NULL};
  run_init(&run, &o, argv2);
  o.log_path = logp;
  run_all(ctx, &run, &o);
  char *log = slurp(logp, NULL);
  unsigned long long mask = 1;
  CHECK(log && sscanf(log, "SigIgn: %llx", &mask) == 1);
  CHECK((mask & (1ull << (SIGPIPE - 1))) == 0);
  free(log);
}

/* (8) Start failures: no worker, a message, no callback. */
static void test_start_fails(lsync_ctx *ctx) {
  const char *argv[] = {"lsync-test-no-such-program", "x", NULL};
  struct run run;
  lsync_worker_opts o;
  run_init(&run, &o, argv);
  lsync_worker *w = (lsync_worker *)&run;
  CHECK(lsync_worker_start(ctx, &o, &w) == LSYNC_ENOENT);
  CHECK(w == NULL);
  CHECK(strstr(lsync_ctx_errmsg(ctx), "lsync-test-no-such-program") != NULL);

  const char *argv2[] = {"true", NULL};
  run_init(&run, &o, argv2);
  o.log_path = "/nonexistent-dir/x.log";
  CHECK(lsync_worker_start(ctx, &o, &w) == LSYNC_EIO);
  CHECK(w == NULL);
  CHECK(strstr(lsync_ctx_errmsg(ctx), "/nonexistent-dir/x.log") != NULL);

  char noexec[160];
  path_in(noexec, sizeof noexec, "noexec.sh");
  FILE *f = fopen(noexec, "w");
  if (f) {
    fputs("#!/bin/sh\nexit 0\n", f);
    fclose(f);
  }
  const char *argv4[] = {noexec, NULL};
  run_init(&run, &o, argv4);
  CHECK(lsync_worker_start(ctx, &o, &w) == LSYNC_EACCES);
  CHECK(w == NULL);

  const char *env[] = {"NOEQUALS", NULL};
  run_init(&run, &o, argv2);
  o.env = env;
  CHECK(lsync_worker_start(ctx, &o, &w) == LSYNC_EINVAL);
  const char *argv3[] = {NULL};
  run_init(&run, &o, argv3);
  CHECK(lsync_worker_start(ctx, &o, &w) == LSYNC_EINVAL);

  lsync_run(ctx, LSYNC_RUN_DEFAULT);
  CHECK(run.exits == 0);
}

/* (9) Free from inside on_exit; free of a running worker. */
static void test_free(lsync_ctx *ctx) {
  const char *argv[] = {"sh", "-c", "echo bye >&2; exit 3", NULL};
  struct run run;
  lsync_worker_opts o;
  run_init(&run, &o, argv);
  run.free_in_exit = 1;
  CHECK(run_start(ctx, &run, &o) == 0);
  lsync_run(ctx, LSYNC_RUN_DEFAULT);
  CHECK(run.exits == 1 && run.w == NULL);
  CHECK(run.r.exit_status == 3 && strcmp(run.last_error, "bye") == 0);

  const char *argv2[] = {"sleep", "30", NULL};
  run_init(&run, &o, argv2);
  o.watchdog_ms = 100;
  o.input = "abc";
  o.input_len = 3;
  CHECK(run_start(ctx, &run, &o) == 0);
  int pid = lsync_worker_pid(run.w);
  CHECK(pid > 0);
  lsync_worker_free(run.w);
  double t0 = now_s();
  lsync_run(ctx, LSYNC_RUN_DEFAULT);
  CHECK(now_s() - t0 < 2.0);
  CHECK(run.exits == 0 && run.progress_calls == 0);
  /* The loop ran until the child was reaped. */
  CHECK(kill(pid, 0) < 0 && errno == ESRCH);

  /* From on_progress, with more output in the same read. */
  const char *argv3[] = {"sh", "-c",
                         "printf '1 1%% 1.00kB/s 0:00:00\\r2 2%% 1.00kB/s "
                         "0:00:00\\rmore\\n'; echo err >&2; sleep 30",
                         NULL};
  run_init(&run, &o, argv3);
  o.progress = LSYNC_PROGRESS_RSYNC;
  run.free_in_progress = 1;
  CHECK(run_start(ctx, &run, &o) == 0);
  t0 = now_s();
  lsync_run(ctx, LSYNC_RUN_DEFAULT);
  CHECK(now_s() - t0 < 2.0);
  CHECK(run.progress_calls == 1 && run.last.bytes == 1);
  CHECK(run.exits == 0 && run.w == NULL);
}

/* (10) on_exit waits for output written after the child's exit (by a
 * grandchild), but a grandchild holding the output open does not hold
 * on_exit for more than about a second. */
static void test_linger(lsync_ctx *ctx) {
  const char *late[] = {"sh", "-c", "(sleep 0.3; echo late-error >&2) & exit 0",
                        NULL};
  struct run lr;
  lsync_worker_opts lo;
  run_init(&lr, &lo, late);
  if (run_all(ctx, &lr, &lo) == 0) {
    CHECK(lr.r.exit_status == 0);
    CHECK(strcmp(lr.last_error, "late-error") == 0);
    CHECK(lr.exit_at - lr.start >= 0.25 && lr.exit_at - lr.start < 1.5);
  }

  char pidfile[160], script[300];
  path_in(pidfile, sizeof pidfile, "linger.pid");
  snprintf(script, sizeof script, "sleep 20 & echo $! > %s; echo gone >&2",
           pidfile);
  const char *argv[] = {"sh", "-c", script, NULL};
  struct run run;
  lsync_worker_opts o;
  run_init(&run, &o, argv);
  if (run_all(ctx, &run, &o) < 0)
    return;
  double took = run.exit_at - run.start;
  CHECK(took >= 0.8 && took < 2.5);
  CHECK(run.r.exit_status == 0);
  CHECK(strcmp(run.last_error, "gone") == 0);
  char *pid = slurp(pidfile, NULL);
  CHECK(pid && atoi(pid) > 1);
  if (pid)
    CHECK(wait_gone(atoi(pid), 2.0)); /* the straggler was ended */
  free(pid);
}

/* (11) rclone-style JSON on stderr: stats are progress, errors speak by
 * their msg. */
static void test_rclone_json(lsync_ctx *ctx) {
  char logp[160];
  path_in(logp, sizeof logp, "json.log");
  const char *script =
      "printf '%s\\n' "
      "'{\"level\":\"warning\",\"msg\":\"x\",\"stats\":{\"bytes\":10,"
      "\"checks\":1,\"totalBytes\":20,\"totalChecks\":2,\"totalTransfers\":3,"
      "\"transfers\":1,\"speed\":5.5},\"time\":\"t\"}' >&2;"
      "printf '%s\\n' '{\"level\":\"error\",\"msg\":\"caf\\u00e9 "
      "\\\"q\\\"\\nline2\","
      "\"time\":\"t\"}' >&2;"
      "printf '%s\\n' '{\"level\":\"info\",\"msg\":\"Copied (new)\"}' >&2;"
      "printf '%s\\n' "
      "'{\"level\":\"warning\",\"msg\":\"y\",\"stats\":{\"bytes\":20,"
      "\"checks\":2,\"totalBytes\":20,\"totalChecks\":2,\"totalTransfers\":3,"
      "\"transfers\":3,\"speed\":6}}' >&2;"
      "exit 1";
  const char *argv[] = {"sh", "-c", script, NULL};
  struct run run;
  lsync_worker_opts o;
  run_init(&run, &o, argv);
  o.progress = LSYNC_PROGRESS_RCLONE;
  o.log_path = logp;
  if (run_all(ctx, &run, &o) < 0)
    return;
  CHECK(run.r.exit_status == 1);
  CHECK(strcmp(run.last_error, "caf\xc3\xa9 \"q\" line2") == 0);
  CHECK(run.r.progress.bytes == 20 && run.r.progress.files == 3);
  CHECK(run.r.progress.checked == 5 && run.r.progress.total == 5);
  CHECK(run.r.progress.total_bytes == 20 && run.r.progress.rate == 6);
  CHECK(run.progress_calls >= 1 && run.last.bytes == 20);
  char *log = slurp(logp, NULL);
  CHECK(log && strstr(log, "\"level\":\"error\"") != NULL);
  CHECK(log && strstr(log, "Copied (new)") != NULL);
  CHECK(log && strstr(log, "\"stats\"") == NULL);
  free(log);
  if (run.last_error[0] && strcmp(run.last_error, "caf\xc3\xa9 \"q\" line2"))
    fprintf(stderr, "  last_error: %s\n", run.last_error);
}

/* (12) Progress comes at most ~10 times a second, and the final state
 * always. */
static void test_rate_limit(lsync_ctx *ctx) {
  const char *argv[] = {
      "sh", "-c",
      "i=1; while [ $i -le 60 ]; do "
      "printf '%7d  1%%    1.00kB/s    0:00:00 (xfr#%d, to-chk=0/60)\\r' "
      "$i $i; i=$((i+1)); sleep 0.01; done; echo",
      NULL};
  struct run run;
  lsync_worker_opts o;
  run_init(&run, &o, argv);
  o.progress = LSYNC_PROGRESS_RSYNC;
  if (run_all(ctx, &run, &o) < 0)
    return;
  double secs = run.exit_at - run.start;
  CHECK(run.r.exit_status == 0);
  CHECK(run.progress_calls >= 2);
  CHECK(run.progress_calls <= (int)(secs * 10) + 2);
  CHECK(run.min_gap >= 0.08);
  CHECK(run.last.bytes == 60 && run.last.files == 60);
  CHECK(run.r.progress.bytes == 60 && run.r.progress.checked == 60);
  fprintf(stderr, "  rate limit: %d calls in %.2f s\n", run.progress_calls,
          secs);
}

/* (13) Real rclone, a good and a failing copy. */
static void test_rclone(lsync_ctx *ctx) {
  char src[128], dst[128];
  path_in(src, sizeof src, "src");
  path_in(dst, sizeof dst, "rdst");
  const char *argv[] = {
      "rclone",         "copy",     src,         dst,
      "--use-json-log", "--stats",  "1s",        "--stats-log-level",
      "NOTICE",         "--config", "/dev/null", NULL};
  struct run run;
  lsync_worker_opts o;
  run_init(&run, &o, argv);
  o.progress = LSYNC_PROGRESS_RCLONE;
  if (run_all(ctx, &run, &o) < 0)
    return;
  CHECK(run.r.exit_status == 0);
  CHECK(run.r.progress.files == 3);
  CHECK(run.r.progress.bytes == 4194304 + 7);
  CHECK(run.r.progress.total_bytes == 4194304 + 7);
  CHECK(run.last_error[0] == '\0');

  const char *argv2[] = {"rclone", "copy",           "/nonexistent-lsync-src",
                         dst,      "--use-json-log", "--retries",
                         "1",      "--config",       "/dev/null",
                         NULL};
  run_init(&run, &o, argv2);
  o.progress = LSYNC_PROGRESS_RCLONE;
  if (run_all(ctx, &run, &o) < 0)
    return;
  CHECK(run.r.exit_status != 0);
  CHECK(strstr(run.last_error, "directory not found") != NULL);
  CHECK(run.last_error[0] != '{');
  fprintf(stderr, "  rclone last_error: %s\n", run.last_error);
}

/* (14) The environment: LC_ALL=C, extra entries override. */
static void test_env(lsync_ctx *ctx) {
  char logp[160];
  path_in(logp, sizeof logp, "env.log");
  setenv("LSYNC_TEST_A", "parent", 1);
  setenv("LC_ALL", "en_US.UTF-8", 1);
  const char *env[] = {"LSYNC_TEST_A=child", "LSYNC_TEST_B=b=c", NULL};
  const char *argv[] = {
      "sh", "-c", "echo \"A=$LSYNC_TEST_A B=$LSYNC_TEST_B L=$LC_ALL\"", NULL};
  struct run run;
  lsync_worker_opts o;
  run_init(&run, &o, argv);
  o.env = env;
  o.log_path = logp;
  o.cwd = "/";
  run_all(ctx, &run, &o);
  char *log = slurp(logp, NULL);
  CHECK(log && strcmp(log, "A=child B=b=c L=C\n") == 0);
  free(log);
  unsetenv("LSYNC_TEST_A");
  unsetenv("LC_ALL");
}

int main(void) {
  const char *tmp = getenv("TMPDIR");
  snprintf(scratch, sizeof scratch, "%s/test_worker.XXXXXX",
           tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(scratch)) {
    perror("mkdtemp");
    return 1;
  }
  lsync_ctx *ctx;
  if (lsync_ctx_new(&ctx) < 0)
    return 1;
  lsync_ctx_set_log(ctx, log_cb, NULL, LSYNC_LOG_DEBUG);
  double t0 = now_s();
  test_start_fails(ctx);
  test_rsync(ctx);
  test_fail(ctx);
  test_watchdog(ctx);
  test_stop(ctx);
  test_killed(ctx);
  test_input(ctx);
  test_unread_input(ctx);
  test_free(ctx);
  test_linger(ctx);
  test_rclone_json(ctx);
  test_rate_limit(ctx);
  test_rclone(ctx);
  test_env(ctx);
  lsync_ctx_free(ctx);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", scratch);
  if (system(cmd) != 0)
    fprintf(stderr, "cannot remove %s\n", scratch);
  printf("%d passed, %d failed (%.1f s)\n", passed, failed, now_s() - t0);
  return failed ? 1 : 0;
}
