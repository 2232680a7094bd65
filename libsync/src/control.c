/*
 * Job control (see control.h): the listener on the loop, and the
 * blocking client.
 *
 * The sockets are driven with poll handles and plain recv/send rather
 * than libuv streams, so that writes can say MSG_NOSIGNAL: a client that
 * leaves before its reply must not kill the job with SIGPIPE, and the
 * job's SIGPIPE disposition is the program's business.
 *
 * A connection reads into a buffer of its own until the first "\n",
 * then stops reading and waits for the handler's reply: bytes after the
 * line are never looked at, and a client that half-closes its end after
 * the request still gets its answer.  After the reply is sent the
 * connection closes.  A connection is freed (and its descriptor closed)
 * in its close callback; the listener when its own handle and every
 * connection are through theirs.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "internal.h"

#define TOO_LONG "error: request line longer than 65536 bytes\n"
_Static_assert(LSYNC_CONTROL_LINE_MAX == 65536, "TOO_LONG names the limit");

struct conn {
  struct conn *next;
  lsync_control *c;
  uv_poll_t poll;
  int fd;
  uint64_t req; /* 0 until the line is in, then its number */
  int answered; /* the reply is being sent */
  int closing;
  char *buf; /* the line as it comes */
  size_t len, cap;
  char *out; /* the reply */
  size_t out_len, sent;
};

struct lsync_control {
  lsync_ctx *ctx;
  uv_poll_t server;
  int fd;
  char *path;
  dev_t dev; /* the socket file we made, so close removes no other */
  ino_t ino;
  lsync_control_cb cb;
  void *ud;
  struct conn *conns;
  uint64_t last_req;
  int closing;
  int handles; /* the server's and the connections' not yet closed */
};

/* ---- connections -------------------------------------------------- */

static void maybe_free(lsync_control *c) {
  if (c->closing && c->handles == 0) {
    free(c->path);
    free(c);
  }
}

static void on_conn_closed(uv_handle_t *h) {
  struct conn *k = h->data;
  lsync_control *c = k->c;
  struct conn **pp = &c->conns;
  while (*pp != k)
    pp = &(*pp)->next;
  *pp = k->next;
  close(k->fd);
  free(k->buf);
  free(k->out);
  free(k);
  c->handles--;
  maybe_free(c);
}

static void conn_close(struct conn *k) {
  if (k->closing)
    return;
  k->closing = 1;
  uv_close((uv_handle_t *)&k->poll, on_conn_closed);
}

static void on_conn_event(uv_poll_t *p, int status, int events);

/* Send what is left of the reply, then close; wait for room when the
 * socket is full.  send with MSG_NOSIGNAL: a client that went away
 * (gave up waiting, say) is an EPIPE here, not a SIGPIPE that would
 * kill the job. */
static void conn_write(struct conn *k) {
  while (k->sent < k->out_len) {
    ssize_t n = send(k->fd, k->out + k->sent, k->out_len - k->sent,
                     MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (uv_poll_start(&k->poll, UV_WRITABLE, on_conn_event) == 0)
        return;
    }
    if (n < 0)
      break; /* the client is gone: the exchange is over all the same */
    k->sent += (size_t)n;
  }
  conn_close(k);
}

/* Send len bytes of data, and "\n" unless they end with one. */
static int conn_send(struct conn *k, const char *data, size_t len) {
  int nl = len == 0 || data[len - 1] != '\n';
  k->answered = 1;
  if (!(k->out = malloc(len + 1))) {
    conn_close(k);
    return LSYNC_ENOMEM;
  }
  if (len)
    memcpy(k->out, data, len);
  k->out[len] = '\n';
  k->out_len = len + (size_t)nl;
  conn_write(k);
  return 0;
}

/* The line is in (nl: its end), or too long: hand it over. */
static void got_line(struct conn *k, const char *nl) {
  uv_poll_stop(&k->poll);
  size_t len = nl ? (size_t)(nl - k->buf) : k->len;
  if (len > LSYNC_CONTROL_LINE_MAX) {
    conn_send(k, TOO_LONG, sizeof TOO_LONG - 1);
    return;
  }
  k->buf[len] = '\0';
  lsync_control *c = k->c;
  k->req = ++c->last_req;
  /* k stays allocated until its close callback, which cannot run
   * during this call, whatever the handler does (reply, close c). */
  c->cb(c->ud, c, k->req, k->buf, len);
}

/* Read what has come.  The buffer grows up to one byte past the limit,
 * enough to see that a line is too long; bytes after the line are left
 * unread. */
static void conn_read(struct conn *k) {
  const size_t max = LSYNC_CONTROL_LINE_MAX + 1;
  for (;;) {
    if (k->len == k->cap) {
      size_t cap = k->cap ? 2 * k->cap : 4096;
      cap = cap < max ? cap : max;
      char *p = realloc(k->buf, cap + 1); /* + the NUL after the line */
      if (!p) {
        conn_close(k);
        return;
      }
      k->buf = p;
      k->cap = cap;
    }
    ssize_t n = recv(k->fd, k->buf + k->len, k->cap - k->len, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return;
    if (n <= 0) { /* end or error before a whole line: nothing to answer */
      conn_close(k);
      return;
    }
    char *nl = memchr(k->buf + k->len, '\n', (size_t)n);
    k->len += (size_t)n;
    if (nl || k->len > LSYNC_CONTROL_LINE_MAX) {
      got_line(k, nl);
      return;
    }
  }
}

static void on_conn_event(uv_poll_t *p, int status, int events) {
  struct conn *k = p->data;
  (void)events;
  if (status < 0)
    conn_close(k);
  else if (k->answered)
    conn_write(k);
  else
    conn_read(k);
}

int lsync_control_reply(lsync_control *c, uint64_t req, const char *data,
                        size_t len) {
  for (struct conn *k = c->conns; k; k = k->next)
    if (k->req == req && req && !k->answered && !k->closing)
      return conn_send(k, data ? data : "", data ? len : 0);
  return LSYNC_ENOENT;
}

/* The directory keeps other users out; a peer of another user id is
 * refused all the same, root excepted (control.h). */
static int peer_allowed(int fd) {
  struct ucred cr;
  socklen_t len = sizeof cr;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
    return 0;
  return cr.uid == geteuid() || cr.uid == 0;
}

static void conn_new(lsync_control *c, int fd) {
  struct conn *k = calloc(1, sizeof *k);
  if (!k || uv_poll_init(c->server.loop, &k->poll, fd) < 0) {
    lsync__log(c->ctx, LSYNC_LOG_WARN, "control: cannot take a connection");
    free(k);
    close(fd);
    return;
  }
  k->c = c;
  k->fd = fd;
  k->poll.data = k;
  k->next = c->conns;
  c->conns = k;
  c->handles++;
  if (uv_poll_start(&k->poll, UV_READABLE, on_conn_event) < 0)
    conn_close(k);
}

static void on_listener_event(uv_poll_t *p, int status, int events) {
  lsync_control *c = p->data;
  (void)events;
  while (status == 0 && !c->closing) {
    int fd = accept4(c->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0 && errno == EINTR)
      continue;
    if (fd < 0)
      return; /* none left (or no descriptor free: the client waits) */
    if (peer_allowed(fd))
      conn_new(c, fd);
    else
      close(fd);
  }
}

/* ---- listening ------------------------------------------------------ */

/* Someone accepts on path: a connection gets through. */
static int someone_listens(const struct sockaddr_un *sa) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    return -1;
  int rc = connect(fd, (const struct sockaddr *)sa, sizeof *sa);
  int e = errno;
  close(fd);
  /* EAGAIN: a listener whose queue is full is still a listener. */
  return rc == 0 || e == EAGAIN ? 1 : e == ECONNREFUSED ? 0 : -1;
}

/* Bind fd to path, replacing a stale socket file (a dead job's). */
static int bind_path(lsync_ctx *ctx, int fd, const struct sockaddr_un *sa) {
  const char *path = sa->sun_path;
  if (bind(fd, (const struct sockaddr *)sa, sizeof *sa) == 0)
    return 0;
  if (errno != EADDRINUSE)
    return lsync__fail_errno(ctx, errno, "control: cannot bind %s", path);
  struct stat st;
  if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode))
    return lsync__fail(ctx, LSYNC_EBUSY,
                       "control: %s exists and is not a socket", path);
  int live = someone_listens(sa);
  if (live != 0)
    return lsync__fail(ctx, LSYNC_EBUSY,
                       live > 0 ? "control: a process listens on %s already"
                                : "control: %s is in use",
                       path);
  /* Nobody accepts: the socket of a job that died.  Another job
   * starting at this moment with the same socket path is the only
   * race, and job ids are unique. */
  lsync__log(ctx, LSYNC_LOG_DEBUG, "control: replacing stale socket %s", path);
  if (unlink(path) < 0 && errno != ENOENT)
    return lsync__fail_errno(ctx, errno, "control: cannot remove %s", path);
  if (bind(fd, (const struct sockaddr *)sa, sizeof *sa) < 0)
    return lsync__fail_errno(ctx, errno, "control: cannot bind %s", path);
  return 0;
}

/* A listening socket at path, mode 0600 from the moment it exists.  On
 * Linux the file takes the socket's own mode (less the umask), so a
 * fchmod before bind does it without the process-wide umask, which
 * other threads may be using. */
static int make_socket(lsync_ctx *ctx, const char *path, int *out,
                       struct stat *st) {
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  memcpy(sa.sun_path, path, strlen(path) + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    return lsync__fail_errno(ctx, errno, "control: socket");
  int rc = 0;
  if (fchmod(fd, 0600) < 0)
    rc = lsync__fail_errno(ctx, errno, "control: fchmod");
  else if ((rc = bind_path(ctx, fd, &sa)) < 0)
    ;
  else if (listen(fd, 64) < 0 || stat(path, st) < 0) {
    rc = lsync__fail_errno(ctx, errno, "control: cannot listen on %s", path);
    unlink(path);
  }
  if (rc < 0) {
    close(fd);
    return rc;
  }
  *out = fd;
  return 0;
}

int lsync_control_listen(lsync_ctx *ctx, const char *path, lsync_control_cb cb,
                         void *ud, lsync_control **out) {
  *out = NULL;
  struct sockaddr_un sa;
  if (!path || !*path || !cb)
    return lsync__fail(ctx, LSYNC_EINVAL,
                       "control: a path and a handler "
                       "needed");
  if (strlen(path) >= sizeof sa.sun_path)
    return lsync__fail(ctx, LSYNC_ENAMETOOLONG,
                       "control: socket path %s is %zu bytes; a unix socket "
                       "takes at most %zu: use a shorter directory",
                       path, strlen(path), sizeof sa.sun_path - 1);
  uv_loop_t *loop = lsync__loop(ctx);
  if (!loop)
    return LSYNC_ENOMEM;
  lsync_control *c = calloc(1, sizeof *c);
  if (!c || !(c->path = strdup(path))) {
    free(c);
    return lsync__fail(ctx, LSYNC_ENOMEM, "control: out of memory");
  }
  c->ctx = ctx;
  c->cb = cb;
  c->ud = ud;
  int fd = -1;
  struct stat st;
  int rc = make_socket(ctx, path, &fd, &st);
  if (rc < 0) {
    free(c->path);
    free(c);
    return rc;
  }
  c->dev = st.st_dev;
  c->ino = st.st_ino;
  c->fd = fd;
  if ((rc = uv_poll_init(loop, &c->server, fd)) < 0) {
    unlink(path);
    close(fd);
    free(c->path);
    free(c);
    return lsync__fail(ctx, LSYNC_EIO, "control: cannot watch %s: %s", path,
                       uv_strerror(rc));
  }
  c->server.data = c;
  c->handles = 1;
  if ((rc = uv_poll_start(&c->server, UV_READABLE, on_listener_event)) < 0) {
    lsync__fail(ctx, LSYNC_EIO, "control: cannot watch %s: %s", path,
                uv_strerror(rc));
    lsync_control_close(c); /* removes the socket file too */
    return LSYNC_EIO;
  }
  *out = c;
  return 0;
}

static void on_server_closed(uv_handle_t *h) {
  lsync_control *c = h->data;
  close(c->fd);
  c->handles--;
  maybe_free(c);
}

void lsync_control_close(lsync_control *c) {
  if (!c || c->closing)
    return;
  c->closing = 1;
  struct stat st;
  if (lstat(c->path, &st) == 0 && st.st_dev == c->dev && st.st_ino == c->ino)
    unlink(c->path);
  for (struct conn *k = c->conns; k; k = k->next)
    conn_close(k);
  uv_close((uv_handle_t *)&c->server, on_server_closed);
}

/* ---- the client ------------------------------------------------------ */

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for events on fd until deadline (< 0: none): 0 when ready,
 * LSYNC_ETIMEDOUT, or an error code. */
static int wait_fd(int fd, short events, int64_t deadline) {
  for (;;) {
    int ms = -1;
    if (deadline >= 0) {
      int64_t left = deadline - now_ms();
      if (left <= 0)
        return LSYNC_ETIMEDOUT;
      ms = left > 60000 ? 60000 : (int)left;
    }
    struct pollfd p = {fd, events, 0};
    int n = poll(&p, 1, ms);
    if (n > 0)
      return 0;
    if (n < 0 && errno != EINTR)
      return lsync_err_from_errno(errno);
  }
}

static int connect_to(const char *path, int64_t deadline, int *out) {
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  memcpy(sa.sun_path, path, strlen(path) + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return lsync_err_from_errno(errno);
  /* A unix socket's connect waits while the listener's queue is full,
   * for as long as the send timeout says: here, the call's. */
  if (deadline >= 0) {
    int64_t left = deadline - now_ms();
    left = left > 0 ? left : 1;
    struct timeval tv = {(time_t)(left / 1000),
                         (suseconds_t)(left % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  }
  int rc;
  while ((rc = connect(fd, (struct sockaddr *)&sa, sizeof sa)) < 0 &&
         errno == EINTR)
    ;
  if (rc < 0) {
    int e = errno;
    close(fd);
    switch (e) {
    case ENOENT:
      return LSYNC_ENOENT;
    case ECONNREFUSED:
      return LSYNC_ECONNECT;
    case EAGAIN:
    case EINPROGRESS:
      return LSYNC_ETIMEDOUT;
    default:
      return lsync_err_from_errno(e);
    }
  }
  *out = fd;
  return 0;
}

/* Send the request and its "\n".  A listener that refuses the line may
 * close while it is being sent: that is no error here, its reply is
 * read next. */
static int send_line(int fd, const char *req, size_t len, int64_t deadline) {
  struct iovec iov[2] = {{(void *)req, len}, {"\n", 1}};
  struct msghdr m;
  memset(&m, 0, sizeof m);
  m.msg_iov = iov;
  m.msg_iovlen = 2;
  while (m.msg_iovlen) {
    ssize_t n = sendmsg(fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      int rc = errno == EINTR ? 0 : wait_fd(fd, POLLOUT, deadline);
      if (rc < 0)
        return rc;
      continue;
    }
    if (n < 0)
      return errno == EPIPE || errno == ECONNRESET
                 ? 0
                 : lsync_err_from_errno(errno);
    while (m.msg_iovlen && (size_t)n >= m.msg_iov->iov_len) {
      n -= (ssize_t)m.msg_iov->iov_len;
      m.msg_iov++;
      m.msg_iovlen--;
    }
    if (m.msg_iovlen) {
      m.msg_iov->iov_base = (char *)m.msg_iov->iov_base + n;
      m.msg_iov->iov_len -= (size_t)n;
    }
  }
  return 0;
}

/* Everything up to end-of-file into *buf (NUL-terminated). */
static int read_all(int fd, int64_t deadline, char **buf, size_t *len) {
  size_t cap = 4096;
  char *p = malloc(cap);
  size_t n = 0;
  if (!p)
    return LSYNC_ENOMEM;
  for (;;) {
    if (cap - n < 4096) {
      char *q = cap < SIZE_MAX / 2 ? realloc(p, cap * 2) : NULL;
      if (!q) {
        free(p);
        return LSYNC_ENOMEM;
      }
      p = q;
      cap *= 2;
    }
    ssize_t k = recv(fd, p + n, cap - n - 1, MSG_DONTWAIT);
    if (k > 0) {
      n += (size_t)k;
      continue;
    }
    /* A listener that closed with our unread bytes (a refused long
     * line) resets the connection after its reply. */
    if (k == 0 || (errno == ECONNRESET && n > 0))
      break;
    int rc = errno == EAGAIN       ? wait_fd(fd, POLLIN, deadline)
             : errno == EINTR      ? 0
             : errno == ECONNRESET ? LSYNC_EIO
                                   : lsync_err_from_errno(errno);
    if (rc < 0) {
      free(p);
      return rc;
    }
  }
  p[n] = '\0';
  *buf = p;
  *len = n;
  return 0;
}

int lsync_control_call(const char *path, const char *req, int timeout_ms,
                       char **reply, size_t *len) {
  struct sockaddr_un sa;
  size_t rl = req ? strlen(req) : 0;
  *reply = NULL;
  if (len)
    *len = 0;
  if (!path || !req || rl > LSYNC_CONTROL_LINE_MAX || memchr(req, '\n', rl))
    return LSYNC_EINVAL;
  if (strlen(path) >= sizeof sa.sun_path)
    return LSYNC_ENAMETOOLONG;
  int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
  int fd = -1;
  int rc = connect_to(path, deadline, &fd);
  if (rc < 0)
    return rc;
  char *buf = NULL;
  size_t n = 0;
  if ((rc = send_line(fd, req, rl, deadline)) == 0)
    rc = read_all(fd, deadline, &buf, &n);
  close(fd);
  if (rc < 0)
    return rc;
  if (n == 0) {
    free(buf);
    return LSYNC_EIO;
  }
  if (buf[n - 1] == '\n')
    buf[--n] = '\0';
  *reply = buf;
  if (len)
    *len = n;
  return 0;
}
