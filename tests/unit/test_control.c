/*
 * The job control socket with real client processes: several clients
 * connected at once and answered later, in another order, with long and
 * multi-line replies; the socket's mode; a stale socket replaced, a live
 * one or a plain file left alone; over-long lines; close with requests
 * waiting; a client gone before its reply (no SIGPIPE); a client of another
 * user refused (when run as root); and the client's errors: no socket, nobody
 * listening, a listener that never accepts (timeout), bad requests.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libsync/libsync.h>

#include "check.h"
#include "scratch.h"

#define REQUIRE(cond)                                                          \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: required: %s (%s)\n", __FILE__, __LINE__, #cond, \
              lsync_ctx_errmsg(ctx));                                          \
      cleanup();                                                               \
      exit(1);                                                                 \
    }                                                                          \
  } while (0)

#define NCLIENTS 8
#define BIG (1u << 20)

static lsync_ctx *ctx;

/* What the handler saw.  With hold set it answers nothing (the test
 * does, later); else it answers "echo LINE" at once. */
static struct {
  lsync_control *c;
  uint64_t req[64];
  char line[64][80];
  size_t len[64];
  int n, hold;
} srv;

static void handler(void *ud, lsync_control *c, uint64_t req, const char *line,
                    size_t len) {
  (void)ud;
  if (srv.n < 64) {
    srv.req[srv.n] = req;
    snprintf(srv.line[srv.n], sizeof srv.line[0], "%.*s",
             (int)(len < 79 ? len : 79), line);
    srv.len[srv.n] = len;
  }
  srv.n++;
  if (srv.hold)
    return;
  char buf[128];
  int k =
      snprintf(buf, sizeof buf, "echo %.*s", (int)(len < 64 ? len : 64), line);
  CHECK(lsync_control_reply(c, req, buf, (size_t)k) == 0);
}

static void serve(const char *path, int hold) {
  memset(&srv, 0, sizeof srv);
  srv.hold = hold;
  REQUIRE(lsync_control_listen(ctx, path, handler, NULL, &srv.c) == 0);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Client processes, and their exit statuses once reaped. */
static pid_t kids[16];
static int kid_status[16], nkids;

static int kids_done(void) {
  int left = 0;
  for (int i = 0; i < nkids; i++) {
    if (kids[i] > 0 && waitpid(kids[i], &kid_status[i], WNOHANG) == kids[i])
      kids[i] = 0;
    left += kids[i] > 0;
  }
  return left == 0;
}

static int requests_in(void) {
  return srv.n >= srv.hold;
}

/* Turn the loop until cond() holds; 0 if it does not within 10 s. */
static int spin(int (*cond)(void)) {
  double end = now_s() + 10;
  while (!cond()) {
    if (now_s() > end)
      return 0;
    lsync_run(ctx, LSYNC_RUN_NOWAIT);
    usleep(1000);
  }
  return 1;
}

/* Every client exited 0; the list is emptied. */
static int kids_ok(void) {
  int ok = spin(kids_done);
  for (int i = 0; i < nkids; i++)
    ok &= kids[i] == 0 && WIFEXITED(kid_status[i]) &&
          WEXITSTATUS(kid_status[i]) == 0;
  nkids = 0;
  return ok;
}

/* The reply to "big": BIG bytes in lines of digits. */
static char *big_reply(void) {
  char *b = malloc(BIG);
  for (size_t i = 0; b && i < BIG; i++)
    b[i] = i % 64 == 63 ? '\n' : (char)('0' + i % 10);
  return b;
}

/* A child that calls and exits 0 when the call returns want_rc and, for
 * 0, the reply want (NULL: big_reply() without its last "\n"). */
static void client(const char *path, const char *req, int timeout_ms,
                   int want_rc, const char *want) {
  pid_t pid = fork();
  if (pid != 0) {
    kids[nkids++] = pid;
    return;
  }
  alarm(20);
  char *reply = NULL;
  size_t len = 0;
  int rc = lsync_control_call(path, req, timeout_ms, &reply, &len);
  int ok = rc == want_rc;
  if (ok && rc == 0) {
    char *big = want ? NULL : big_reply();
    const char *w = want ? want : big;
    size_t wl = want ? strlen(want) : BIG - 1;
    ok = len == wl && !memcmp(reply, w, wl) && reply[len] == '\0';
    free(big);
  }
  if (!ok)
    fprintf(stderr, "client '%.20s': rc %d (want %d), reply '%.60s'\n", req, rc,
            want_rc, reply ? reply : "(none)");
  free(reply);
  _exit(ok ? 0 : 1);
}

static int mode_is_0600_socket(const char *path) {
  struct stat st;
  return lstat(path, &st) == 0 && S_ISSOCK(st.st_mode) &&
         (st.st_mode & 07777) == 0600;
}

static int gone(const char *path) {
  struct stat st;
  return lstat(path, &st) < 0 && errno == ENOENT;
}

/* Several clients at once, all held, then answered in reverse order:
 * one reply of 1 MiB, multi-line ones, some ending in "\n" already. */
static void test_concurrent(const char *path) {
  mode_t old = umask(0); /* the mode must not come from the umask */
  serve(path, NCLIENTS);
  umask(old);
  CHECK(mode_is_0600_socket(path));
  char want[NCLIENTS][64];
  for (int i = 0; i < NCLIENTS; i++) {
    char req[32];
    snprintf(req, sizeof req, i == 0 ? "big" : "req %d", i);
    snprintf(want[i], sizeof want[i], "reply %d\nsecond line", i);
    client(path, req, 10000, 0, i == 0 ? NULL : want[i]);
  }
  CHECK(spin(requests_in) && srv.n == NCLIENTS);
  char *big = big_reply();
  for (int k = srv.n - 1; k >= 0; k--) {
    int i = 0;
    if (strcmp(srv.line[k], "big") != 0)
      CHECK(sscanf(srv.line[k], "req %d", &i) == 1 && i > 0 && i < NCLIENTS);
    char r[sizeof want[0] + 2];
    snprintf(r, sizeof r, "%.60s%s", want[i], i % 2 ? "\n" : "");
    CHECK(lsync_control_reply(srv.c, srv.req[k], i ? r : big,
                              i ? strlen(r) : BIG) == 0);
    CHECK(lsync_control_reply(srv.c, srv.req[k], "x", 1) == LSYNC_ENOENT);
  }
  free(big);
  CHECK(lsync_control_reply(srv.c, 9999, "x", 1) == LSYNC_ENOENT);
  CHECK(kids_ok());
  for (int a = 0; a < srv.n; a++)
    for (int b = a + 1; b < srv.n; b++)
      CHECK(srv.req[a] != srv.req[b]);
  lsync_control_close(srv.c);
  CHECK(gone(path));
  lsync_run(ctx, LSYNC_RUN_DEFAULT);
}

/* A socket file whose process is gone is replaced; one with a listener,
 * or a file that is no socket, is left alone. */
static void test_stale(const char *path) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  REQUIRE(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
  close(fd); /* the file stays: a dead job's socket */
  serve(path, 0);
  CHECK(mode_is_0600_socket(path));
  client(path, "after stale", 5000, 0, "echo after stale");
  CHECK(kids_ok());

  lsync_control *second = NULL;
  CHECK(lsync_control_listen(ctx, path, handler, NULL, &second) ==
            LSYNC_EBUSY &&
        !second);
  CHECK(strstr(lsync_ctx_errmsg(ctx), "listens") != NULL);
  client(path, "still mine", 5000, 0, "echo still mine");
  CHECK(kids_ok());
  CHECK(srv.n == 2);
  lsync_control_close(srv.c);
  lsync_run(ctx, LSYNC_RUN_DEFAULT);

  FILE *f = fopen(path, "w");
  REQUIRE(f != NULL);
  fputs("not a socket\n", f);
  fclose(f);
  CHECK(lsync_control_listen(ctx, path, handler, NULL, &second) == LSYNC_EBUSY);
  struct stat st;
  CHECK(stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 13);
  unlink(path);
}

/* A raw client: sends n bytes of 'x' and "\n", returns what comes back
 * until the end (NUL-terminated; the caller frees). */
static char *raw_exchange(const char *path, size_t n) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
    return NULL;
  char *buf = malloc(n + 1);
  memset(buf, 'x', n);
  buf[n] = '\n';
  /* The listener stops reading at the limit and may close before all
   * is sent: send errors are expected then. */
  for (size_t off = 0; off < n + 1;) {
    ssize_t k = send(fd, buf + off, n + 1 - off, MSG_NOSIGNAL);
    if (k <= 0)
      break;
    off += (size_t)k;
  }
  size_t got = 0;
  ssize_t k;
  while (got < n && (k = recv(fd, buf + got, n - got, 0)) > 0)
    got += (size_t)k;
  buf[got] = '\0';
  close(fd);
  return buf;
}

static void test_long_lines(const char *path) {
  serve(path, 0);
  /* Exactly the limit is a request; one byte more is refused. */
  pid_t pid = fork();
  if (pid == 0) {
    alarm(20);
    char *r1 = raw_exchange(path, LSYNC_CONTROL_LINE_MAX);
    char *r2 = raw_exchange(path, LSYNC_CONTROL_LINE_MAX + 1);
    char *r3 = raw_exchange(path, 3 * LSYNC_CONTROL_LINE_MAX);
    /* The handler's reply has no "\n": the listener adds it. */
    int ok = r1 && strlen(r1) == 70 && !strncmp(r1, "echo xxxx", 9) &&
             r1[69] == '\n' && r2 &&
             !strcmp(r2, "error: request line longer than 65536 bytes\n") &&
             r3 && !strcmp(r3, r2);
    if (!ok)
      fprintf(stderr, "long lines: '%.40s' '%.60s' '%.60s'\n", r1, r2, r3);
    _exit(ok ? 0 : 1);
  }
  kids[nkids++] = pid;
  CHECK(kids_ok());
  CHECK(srv.n == 1 && srv.len[0] == LSYNC_CONTROL_LINE_MAX);
  /* The client refuses them itself. */
  char *req = malloc(LSYNC_CONTROL_LINE_MAX + 2), *reply = NULL;
  memset(req, 'y', LSYNC_CONTROL_LINE_MAX + 1);
  req[LSYNC_CONTROL_LINE_MAX + 1] = '\0';
  CHECK(lsync_control_call(path, req, 1000, &reply, NULL) == LSYNC_EINVAL);
  CHECK(lsync_control_call(path, "two\nlines", 1000, &reply, NULL) ==
        LSYNC_EINVAL);
  CHECK(reply == NULL);
  free(req);
  lsync_control_close(srv.c);
  lsync_run(ctx, LSYNC_RUN_DEFAULT);
}

/* Closing with requests unanswered: their clients see the connection
 * end (EIO), and the socket goes. */
static void test_close_waiting(const char *path) {
  serve(path, 2);
  client(path, "one", 10000, LSYNC_EIO, NULL);
  client(path, "two", 10000, LSYNC_EIO, NULL);
  CHECK(spin(requests_in));
  lsync_control_close(srv.c);
  CHECK(gone(path));
  CHECK(kids_ok());
  lsync_run(ctx, LSYNC_RUN_DEFAULT);

  /* A socket file put in its place by someone else is not removed. */
  serve(path, 0);
  REQUIRE(unlink(path) == 0);
  FILE *f = fopen(path, "w");
  REQUIRE(f != NULL);
  fclose(f);
  lsync_control_close(srv.c);
  CHECK(!gone(path));
  unlink(path);
  lsync_run(ctx, LSYNC_RUN_DEFAULT);
}

/* A client that leaves before its reply: the reply goes nowhere, and
 * the job (this process, SIGPIPE at its default) lives on. */
static void test_client_gone(const char *path) {
  serve(path, 1);
  pid_t pid = fork();
  if (pid == 0) {
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    _exit(fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
                  send(fd, "bye\n", 4, 0) == 4
              ? 0
              : 1);
  }
  kids[nkids++] = pid;
  CHECK(spin(requests_in) && kids_ok());
  char *big = big_reply();
  CHECK(lsync_control_reply(srv.c, srv.req[0], big, BIG) == 0);
  free(big);
  srv.hold = 0;
  client(path, "after", 5000, 0, "echo after");
  CHECK(kids_ok());
  lsync_control_close(srv.c);
  lsync_run(ctx, LSYNC_RUN_DEFAULT);
}

/* As root: a client of another uid reaches the socket (made reachable
 * for the test) and is refused unanswered. */
static void test_other_user(const char *path) {
  if (geteuid() != 0) {
    printf("not root: the other-user check is skipped\n");
    return;
  }
  serve(path, 0);
  REQUIRE(chmod(path, 0666) == 0 && chmod(scratch, 0711) == 0);
  pid_t pid = fork();
  if (pid == 0) {
    alarm(20);
    if (setgid(65534) < 0 || setuid(65534) < 0)
      _exit(2);
    char *reply = NULL;
    int rc = lsync_control_call(path, "from nobody", 5000, &reply, NULL);
    _exit(rc == LSYNC_EIO ? 0 : 1);
  }
  kids[nkids++] = pid;
  CHECK(kids_ok());
  CHECK(srv.n == 0);
  chmod(scratch, 0700);
  lsync_control_close(srv.c);
  lsync_run(ctx, LSYNC_RUN_DEFAULT);
}

static void test_client_errors(void) {
  char *reply = NULL;
  size_t len = 1;
  CHECK(lsync_control_call(at("none"), "x", 1000, &reply, &len) ==
        LSYNC_ENOENT);
  CHECK(reply == NULL && len == 0);

  /* Bound, nobody listening: a dead job's socket. */
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", at("dead"));
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  REQUIRE(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
  CHECK(lsync_control_call(sa.sun_path, "x", 1000, &reply, &len) ==
        LSYNC_ECONNECT);
  /* Listening, never accepting nor answering: the timeout. */
  REQUIRE(listen(fd, 4) == 0);
  double t0 = now_s();
  CHECK(lsync_control_call(sa.sun_path, "x", 300, &reply, &len) ==
        LSYNC_ETIMEDOUT);
  double took = now_s() - t0;
  CHECK(took >= 0.29 && took < 3);
  close(fd);

  char longp[200];
  memset(longp, 'p', sizeof longp - 1);
  longp[0] = '/';
  longp[sizeof longp - 1] = '\0';
  CHECK(lsync_control_call(longp, "x", 1000, &reply, &len) ==
        LSYNC_ENAMETOOLONG);
  lsync_control *c = NULL;
  CHECK(lsync_control_listen(ctx, longp, handler, NULL, &c) ==
            LSYNC_ENAMETOOLONG &&
        !c);
  CHECK(strstr(lsync_ctx_errmsg(ctx), "shorter") != NULL);
}

int main(void) {
  if (scratch_make("test_control") < 0 || lsync_ctx_new(&ctx) < 0)
    return 1;
  test_concurrent(at("c.sock"));
  test_stale(at("s.sock"));
  test_long_lines(at("l.sock"));
  test_close_waiting(at("w.sock"));
  test_client_gone(at("g.sock"));
  test_other_user(at("u.sock"));
  test_client_errors();
  lsync_ctx_free(ctx);
  cleanup();
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
