/*
 * Tunnels (see tunnel.h): the listener on the loop, and the client.
 *
 * The protocol, on a unix stream socket:
 *   client -> listener  "SPT1", slot (u32 big-endian), command length
 *                       (u32), the command; fds 0 and 1 ride with the
 *                       first bytes (SCM_RIGHTS).
 *   listener -> client  frames: type (1 byte), length (u32), payload:
 *                       'E' bytes of the command's stderr;
 *                       'X' the exit status (u32), the last frame.
 * The command's stdout goes straight into the client's fd 1, that is
 * rsync's pipe, and its stdin comes straight from fd 0: the listener
 * reads and writes those descriptors itself, so the bytes cross one
 * process, not two.  The client only waits, holding its fds 0 and 1
 * until it exits.
 *
 * A relay owns three pipe handles (the client's connection, in, out)
 * and maybe a channel; it is freed when all are through their close and
 * the channel has ended or been abandoned.  The listener's memory goes
 * when its own handle has closed.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include "internal.h"
#include "lchan.h"

#define MAGIC "SPT1"
#define HDR_LEN 12
#define FRAME_HDR 5
#define CMD_MAX (1u << 20)
/* Bytes queued one way before the source is paused: the remote command
 * then blocks on its window, rsync on its pipe. */
#define HIGH_MARK (4u << 20)

enum { H_CONN, H_IN, H_OUT, NH };

struct relay {
  struct relay *next;
  lsync_tunnel *t;
  uv_pipe_t h[NH];
  int open[NH];
  int handles; /* initialised and not yet through their close callback */
  char hdr[HDR_LEN];
  size_t hdr_got;
  char *cmd;
  size_t cmd_len, cmd_got;
  unsigned slot;
  int started;         /* the channel was asked for */
  lsync_ssh *sess;     /* valid while the channel runs */
  /* The command's channel: of the slot's session, or a local one (the
   * listener has no lookup), with the same interface and meaning. */
  void *chan;
  int local;
  size_t out_queued;   /* bytes in writes towards the client */
  /* Why a direction waits: the other side is full, or the job's cap
   * (the bucket) holds it; it goes on when neither does. */
  int in_full, in_held, in_reading;   /* rsync -> remote */
  int out_full, out_held, chan_paused; /* remote -> rsync */
  int exited, exit_sent, client_gone;
  int exit_status;
  pid_t peer;       /* the client, from SO_PEERCRED */
  uv_timer_t reap;  /* polls until the client has exited (see
                       close_pipes) */
  int reap_on;
  unsigned reap_ticks;
};

struct lsync_tunnel {
  lsync_ctx *ctx;
  uv_pipe_t server;
  char *path;
  lsync_tunnel_lookup_cb lookup;
  void *ud;
  struct relay *relays;
  uint64_t up, down;
  unsigned active;
  int closing;
  int handles; /* the listener's own (server, release) not yet closed */
  lsync_bucket bucket; /* the cap over all relays, both ways; rate 0: none */
  uv_timer_t release;  /* lets held relays go on */
  char rbuf[65536]; /* shared by every read: libuv hands it over first */
};

struct wreq {
  uv_write_t req;
  struct relay *r;
  int which;
  size_t len; /* payload bytes, for out_queued */
  char data[];
};

static void put32(char *p, uint32_t v) {
  p[0] = (char)(v >> 24);
  p[1] = (char)(v >> 16);
  p[2] = (char)(v >> 8);
  p[3] = (char)v;
}

static uint32_t get32(const char *p) {
  const unsigned char *u = (const unsigned char *)p;
  return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 |
         u[3];
}

/* ---- the listener: the command's channel, ssh or local ----------------- */

static void chan_pause(struct relay *r, int on) {
  if (r->local)
    lsync__lchan_pause(r->chan, on);
  else
    lsync_ssh_chan_pause(r->chan, on);
}

static void chan_close(struct relay *r) {
  if (r->local)
    lsync__lchan_close(r->chan);
  else
    lsync_ssh_chan_close(r->chan);
}

static void chan_abandon(struct relay *r) {
  if (r->local)
    lsync__lchan_abandon(r->chan);
  else
    lsync_ssh_chan_abandon(r->chan);
}

static void chan_end_input(struct relay *r) {
  if (r->local)
    lsync__lchan_end_input(r->chan);
  else
    lsync_ssh_chan_end_input(r->chan);
}

static int chan_write(struct relay *r, const void *p, size_t n) {
  return r->local ? lsync__lchan_write(r->chan, p, n)
                  : lsync_ssh_chan_write(r->chan, p, n);
}

static size_t chan_queued(struct relay *r) {
  return r->local ? lsync__lchan_queued(r->chan)
                  : lsync_ssh_chan_queued(r->chan);
}

/* ---- the listener: relay lifetime -------------------------------------- */

static void relay_maybe_free(struct relay *r) {
  if (r->handles || r->chan)
    return;
  lsync_tunnel *t = r->t;
  struct relay **pp = &t->relays;
  while (*pp != r)
    pp = &(*pp)->next;
  *pp = r->next;
  if (r->started)
    t->active--;
  free(r->cmd);
  free(r);
  if (!t->handles && !t->relays) {
    free(t->path);
    free(t);
  }
}

static void on_h_closed(uv_handle_t *h) {
  struct relay *r = h->data;
  r->handles--;
  relay_maybe_free(r);
}

static void close_h(struct relay *r, int i) {
  if (!r->open[i])
    return;
  r->open[i] = 0;
  uv_close((uv_handle_t *)&r->h[i], on_h_closed);
}

static void init_h(struct relay *r, int i, int ipc) {
  uv_pipe_init(r->t->server.loop, &r->h[i], ipc);
  r->h[i].data = r;
  r->open[i] = 1;
  r->handles++;
}

/* Whether process pid has exited (a zombie, or gone): the state letter
 * follows the last ')' of /proc/PID/stat, as the command name may hold
 * any character. */
static int peer_exited(pid_t pid) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return 1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0)
    return 1;
  buf[n] = '\0';
  const char *p = strrchr(buf, ')');
  return !p || p[1] != ' ' || p[2] == 'Z' || p[2] == 'X';
}

#define REAP_TICK_MS 1
#define REAP_TICKS 2000 /* 2 s: a client that lingers longer is not waited */

static void on_reap(uv_timer_t *h) {
  struct relay *r = h->data;
  if (!peer_exited(r->peer) && ++r->reap_ticks < REAP_TICKS)
    return;
  uv_timer_stop(h);
  close_h(r, H_IN);
  close_h(r, H_OUT);
  r->reap_on = 0;
  uv_close((uv_handle_t *)h, on_h_closed);
}

/* Our copies of rsync's pipes, at the end of a command: they close once
 * the client has exited.  rsync, at end-of-file on its remote shell's
 * pipes, collects the shell's status without waiting and keeps it only
 * if the shell has exited by then; the client's own copies close as it
 * exits, a moment before it can be reaped, so with ours closed already
 * rsync could see end-of-file first and report a protocol error (12)
 * instead of the client's status (255 for a lost connection). */
static void close_pipes(struct relay *r) {
  if (r->reap_on)
    return;
  if (r->peer <= 0 || r->t->closing || (!r->open[H_IN] && !r->open[H_OUT])) {
    close_h(r, H_IN);
    close_h(r, H_OUT);
    return;
  }
  uv_timer_init(r->t->server.loop, &r->reap);
  r->reap.data = r;
  r->handles++;
  r->reap_on = 1;
  uv_timer_start(&r->reap, on_reap, 0, REAP_TICK_MS);
}

/* ---- the listener: writing --------------------------------------------- */

static void maybe_end(struct relay *r);
static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf);
static void on_in_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

/* Read from rsync unless something holds that direction, or the
 * command has ended (the pipe stays open a moment, see close_pipes). */
static void update_in(struct relay *r) {
  int want = r->open[H_IN] && !r->in_full && !r->in_held && !r->exit_sent;
  if (want == r->in_reading)
    return;
  r->in_reading = want;
  if (want)
    uv_read_start((uv_stream_t *)&r->h[H_IN], on_alloc, on_in_read);
  else if (r->open[H_IN])
    uv_read_stop((uv_stream_t *)&r->h[H_IN]);
}

/* Read the command's output unless something holds that direction. */
static void update_out(struct relay *r) {
  int pause = r->out_full || r->out_held;
  if (!r->chan || pause == r->chan_paused)
    return;
  r->chan_paused = pause;
  chan_pause(r, pause);
}

static double now_s(void) { return (double)uv_hrtime() / 1e9; }

static void on_release(uv_timer_t *h) {
  lsync_tunnel *t = h->data;
  for (struct relay *r = t->relays; r; r = r->next) {
    r->in_held = r->out_held = 0;
    update_in(r);
    update_out(r);
  }
}

/* n bytes crossed one way: the bucket is charged, and when it runs into
 * debt that direction of the relay waits until it is paid. */
static void charge(struct relay *r, size_t n, int up) {
  lsync_tunnel *t = r->t;
  if (t->bucket.rate <= 0)
    return;
  double wait = lsync_bucket_take(&t->bucket, (double)n, now_s());
  if (wait <= 0)
    return;
  if (up) {
    r->in_held = 1;
    update_in(r);
  } else {
    r->out_held = 1;
    update_out(r);
  }
  if (!uv_is_active((uv_handle_t *)&t->release))
    uv_timer_start(&t->release, on_release, (uint64_t)(wait * 1000.0) + 1,
                   0);
}

static void on_written(uv_write_t *req, int status) {
  struct wreq *w = (struct wreq *)req;
  struct relay *r = w->r;
  int which = w->which;
  r->out_queued -= w->len;
  free(w);
  if (status < 0 && status != UV_ECANCELED && which == H_OUT && r->chan)
    chan_close(r); /* rsync stopped reading: it is gone */
  if (r->out_full && r->out_queued < HIGH_MARK / 2) {
    r->out_full = 0;
    update_out(r);
  }
  maybe_end(r);
}

/* Queue len bytes (after an optional frame header) to handle which. */
static int send_to(struct relay *r, int which, int type, const char *p,
                   size_t len) {
  if (!r->open[which])
    return -1;
  size_t hl = type ? FRAME_HDR : 0;
  struct wreq *w = malloc(sizeof *w + hl + len);
  if (!w)
    return -1;
  w->r = r;
  w->which = which;
  w->len = len;
  if (type) {
    w->data[0] = (char)type;
    put32(w->data + 1, (uint32_t)len);
  }
  if (len)
    memcpy(w->data + hl, p, len);
  uv_buf_t b = uv_buf_init(w->data, (unsigned)(hl + len));
  if (uv_write(&w->req, (uv_stream_t *)&r->h[which], &b, 1, on_written) < 0) {
    free(w);
    return -1;
  }
  r->out_queued += len;
  return 0;
}

static void say(struct relay *r, const char *fmt, ...) LSYNC__PRINTF(2, 3);
static void say(struct relay *r, const char *fmt, ...) {
  char msg[LSYNC__ERRMSG_MAX + 64];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(msg, sizeof msg - 1, fmt, ap);
  va_end(ap);
  if (n < 0)
    return;
  if ((size_t)n > sizeof msg - 2)
    n = (int)sizeof msg - 2;
  msg[n++] = '\n';
  send_to(r, H_CONN, 'E', msg, (size_t)n);
}

/* The command has ended: once its output is all in rsync's pipe, the
 * exit status goes to the client, which exits with it, and our copies of
 * the pipes close after that (close_pipes).  The client keeps its own
 * copies to the end, so rsync sees end-of-file when the client exits, as
 * with ssh. */
static void maybe_end(struct relay *r) {
  if (!r->exited || r->out_queued || r->exit_sent)
    return;
  r->exit_sent = 1;
  update_in(r);
  char st[4];
  put32(st, (uint32_t)r->exit_status);
  if (r->client_gone || send_to(r, H_CONN, 'X', st, 4) < 0) {
    close_h(r, H_CONN);
    close_pipes(r);
  }
  /* else they close when the client hangs up (on_conn_read) */
}

static void fail_client(struct relay *r, const char *msg) {
  say(r, "syncplan tunnel: %s", msg);
  r->exit_status = 255;
  r->exited = 1;
  maybe_end(r);
}

/* ---- the listener: the channel ----------------------------------------- */

static void on_chan_data(void *ud, int fd, const char *buf, size_t len) {
  struct relay *r = ud;
  r->t->down += len;
  if (fd == 1)
    send_to(r, H_OUT, 0, buf, len);
  else
    send_to(r, H_CONN, 'E', buf, len);
  if (r->out_queued >= HIGH_MARK) {
    r->out_full = 1;
    update_out(r);
  }
  charge(r, len, 0);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  struct relay *r = h->data;
  (void)hint;
  *buf = uv_buf_init(r->t->rbuf, sizeof r->t->rbuf);
}

static void on_chan_drain(void *ud) {
  struct relay *r = ud;
  r->in_full = 0;
  update_in(r);
}

static void on_chan_exit(void *ud, int rc, int status, const char *sig) {
  struct relay *r = ud;
  r->chan = NULL;
  if (rc < 0) {
    if (!r->client_gone)
      say(r, "syncplan tunnel: %s",
          rc == LSYNC_ECANCELED ? "the connection was closed"
                                : lsync_ssh_errmsg(r->sess));
    r->exit_status = 255;
  } else if (sig) {
    if (!r->client_gone)
      say(r, "syncplan tunnel: the remote command was killed by SIG%s", sig);
    r->exit_status = 255;
  } else {
    r->exit_status = status & 255;
  }
  r->sess = NULL;
  r->exited = 1;
  maybe_end(r);
  relay_maybe_free(r);
}

static void on_in_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  struct relay *r = s->data;
  if (n == 0)
    return;
  if (n < 0) { /* rsync closed its end: end-of-file for the command */
    r->in_reading = 0;
    close_h(r, H_IN);
    if (r->chan)
      chan_end_input(r);
    return;
  }
  r->t->up += (uint64_t)n;
  if (!r->chan)
    return; /* ended already: what rsync still sends goes nowhere */
  if (chan_write(r, buf->base, (size_t)n) < 0) {
    chan_close(r);
    return;
  }
  if (chan_queued(r) >= HIGH_MARK) {
    r->in_full = 1;
    update_in(r);
  }
  charge(r, (size_t)n, 1);
}

/* Header and descriptors in: open the channel. */
static void start(struct relay *r) {
  lsync_tunnel *t = r->t;
  r->started = 1;
  t->active++;
  uv_pipe_t *conn = &r->h[H_CONN];
  if (uv_pipe_pending_count(conn) < 2 ||
      uv_pipe_pending_type(conn) != UV_NAMED_PIPE) {
    fail_client(r, "the client did not pass its stdin and stdout");
    return;
  }
  for (int i = H_IN; i <= H_OUT; i++) {
    init_h(r, i, 0);
    if (uv_accept((uv_stream_t *)conn, (uv_stream_t *)&r->h[i]) < 0) {
      fail_client(r, "cannot take the client's stdin and stdout");
      return;
    }
  }
  lsync_ssh_chan_opts o = {r->cmd, on_chan_data, on_chan_exit, on_chan_drain,
                           r};
  if (!t->lookup) {
    r->local = 1;
    if (lsync__lchan_open(t->ctx, &o, (lsync__lchan **)&r->chan) < 0) {
      r->chan = NULL;
      fail_client(r, lsync_ctx_errmsg(t->ctx));
      return;
    }
    update_in(r);
    lsync__log(t->ctx, LSYNC_LOG_DEBUG, "tunnel: slot %u: local: %.200s",
               r->slot, r->cmd);
    return;
  }
  lsync_ssh *s = t->lookup(t->ud, r->slot);
  if (!s || !lsync_ssh_alive(s)) {
    char msg[LSYNC__ERRMSG_MAX + 64];
    snprintf(msg, sizeof msg, "slot %u has no connection%s%s", r->slot,
             s ? ": " : "", s ? lsync_ssh_errmsg(s) : "");
    fail_client(r, msg);
    return;
  }
  if (lsync_ssh_chan_open(s, &o, (lsync_ssh_chan **)&r->chan) < 0) {
    r->chan = NULL;
    fail_client(r, lsync_ctx_errmsg(t->ctx));
    return;
  }
  r->sess = s;
  /* The slot's next rsync will find its channel open already. */
  lsync_ssh_prefetch(s, 1);
  update_in(r);
  lsync__log(t->ctx, LSYNC_LOG_DEBUG, "tunnel: slot %u: %.200s", r->slot,
             r->cmd);
}

static void on_conn_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  struct relay *r = s->data;
  if (n == 0)
    return;
  if (n < 0) {
    /* The client is gone: after its exit status, or because rsync
     * stopped it.  Then the remote command must end too. */
    r->client_gone = 1;
    close_h(r, H_CONN);
    if (r->chan)
      chan_close(r);
    if (!r->started)
      return;
    if (r->exit_sent) {
      close_pipes(r);
    } else {
      close_h(r, H_IN);
      close_h(r, H_OUT);
    }
    return;
  }
  if (r->started)
    return; /* nothing more is expected */
  const char *p = buf->base;
  size_t len = (size_t)n;
  if (r->hdr_got < HDR_LEN) {
    size_t k = HDR_LEN - r->hdr_got < len ? HDR_LEN - r->hdr_got : len;
    memcpy(r->hdr + r->hdr_got, p, k);
    r->hdr_got += k;
    p += k;
    len -= k;
    if (r->hdr_got < HDR_LEN)
      return;
    r->slot = get32(r->hdr + 4);
    r->cmd_len = get32(r->hdr + 8);
    if (memcmp(r->hdr, MAGIC, 4) != 0 || r->cmd_len == 0 ||
        r->cmd_len > CMD_MAX || !(r->cmd = malloc(r->cmd_len + 1))) {
      r->started = 1;
      r->t->active++;
      fail_client(r, "a request syncplan does not understand");
      return;
    }
  }
  size_t k = r->cmd_len - r->cmd_got < len ? r->cmd_len - r->cmd_got : len;
  memcpy(r->cmd + r->cmd_got, p, k);
  r->cmd_got += k;
  if (r->cmd_got < r->cmd_len)
    return;
  r->cmd[r->cmd_len] = '\0';
  start(r);
}

/* The socket's directory keeps others out; a peer of another user is
 * refused all the same (root's own clients included, when the job is
 * not root's). */
static int same_user(uv_pipe_t *p, pid_t *pid) {
  uv_os_fd_t fd;
  struct ucred cr;
  socklen_t len = sizeof cr;
  if (uv_fileno((uv_handle_t *)p, &fd) < 0 ||
      getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
    return 0;
  *pid = cr.pid;
  return cr.uid == geteuid();
}

static void on_connection(uv_stream_t *server, int status) {
  lsync_tunnel *t = server->data;
  if (status < 0 || t->closing)
    return;
  struct relay *r = calloc(1, sizeof *r);
  if (!r) {
    lsync__log(t->ctx, LSYNC_LOG_WARN, "tunnel: out of memory");
    return;
  }
  r->t = t;
  r->next = t->relays;
  t->relays = r;
  init_h(r, H_CONN, 1);
  if (uv_accept(server, (uv_stream_t *)&r->h[H_CONN]) < 0 ||
      !same_user(&r->h[H_CONN], &r->peer)) {
    close_h(r, H_CONN);
    return;
  }
  uv_read_start((uv_stream_t *)&r->h[H_CONN], on_alloc, on_conn_read);
}

/* ---- the listener: interface ------------------------------------------- */

int lsync_tunnel_listen(lsync_ctx *ctx, const char *path,
                        lsync_tunnel_lookup_cb lookup, void *ud,
                        lsync_tunnel **out) {
  *out = NULL;
  struct sockaddr_un sa;
  if (!path || strlen(path) >= sizeof sa.sun_path)
    return lsync__fail(ctx, LSYNC_EINVAL,
                       "tunnel: a socket path of at most %zu bytes needed",
                       sizeof sa.sun_path - 1);
  uv_loop_t *loop = lsync__loop(ctx);
  if (!loop)
    return LSYNC_ENOMEM;
  lsync_tunnel *t = calloc(1, sizeof *t);
  if (!t || !(t->path = strdup(path))) {
    free(t);
    return lsync__fail(ctx, LSYNC_ENOMEM, "tunnel: out of memory");
  }
  t->ctx = ctx;
  /* A client (or its rsync) that goes away mid-write is EPIPE here. */
  lsync__ignore_sigpipe();
  t->lookup = lookup;
  t->ud = ud;
  uv_pipe_init(loop, &t->server, 0);
  t->server.data = t;
  uv_timer_init(loop, &t->release);
  t->release.data = t;
  t->handles = 2;
  /* 0600 from the start: no moment where another user could connect. */
  mode_t old = umask(0177);
  int rc = uv_pipe_bind(&t->server, path);
  umask(old);
  if (rc == 0)
    rc = uv_listen((uv_stream_t *)&t->server, 64, on_connection);
  if (rc < 0) {
    int code = rc == UV_EADDRINUSE ? LSYNC_EBUSY : LSYNC_EIO;
    lsync__fail(ctx, code, "tunnel: cannot listen on %s: %s", path,
                uv_strerror(rc));
    t->closing = 1;
    lsync_tunnel_free(t);
    return code;
  }
  *out = t;
  return 0;
}

void lsync_tunnel_bytes(const lsync_tunnel *t, uint64_t *up, uint64_t *down) {
  if (up)
    *up = t->up;
  if (down)
    *down = t->down;
}

unsigned lsync_tunnel_active(const lsync_tunnel *t) { return t->active; }

/* The listener's memory goes with the last of its handles and relays. */
static void on_t_closed(uv_handle_t *h) {
  lsync_tunnel *t = h->data;
  if (--t->handles == 0 && !t->relays) {
    free(t->path);
    free(t);
  }
}

void lsync_tunnel_free(lsync_tunnel *t) {
  if (!t)
    return;
  int listening = !t->closing;
  t->closing = 1;
  /* Relays outlive the listener only as far as their close callbacks:
   * each forgets its channel and closes its pipes, and the clients see
   * their connection end (255). */
  for (struct relay *r = t->relays, *next; r; r = next) {
    next = r->next;
    if (r->chan) {
      chan_abandon(r);
      r->chan = NULL;
    }
    r->client_gone = 1;
    for (int i = 0; i < NH; i++)
      close_h(r, i);
    if (r->reap_on) {
      uv_timer_stop(&r->reap);
      r->reap_on = 0;
      uv_close((uv_handle_t *)&r->reap, on_h_closed);
    }
    relay_maybe_free(r);
  }
  if (listening)
    unlink(t->path);
  uv_close((uv_handle_t *)&t->server, on_t_closed);
  uv_close((uv_handle_t *)&t->release, on_t_closed);
}

void lsync_tunnel_set_rate(lsync_tunnel *t, double rate) {
  double now = now_s();
  if (t->bucket.last == 0 && t->bucket.rate == 0)
    lsync_bucket_init(&t->bucket, rate, 0, now);
  else
    lsync_bucket_set_rate(&t->bucket, rate, now);
  if (rate <= 0) {
    uv_timer_stop(&t->release);
    on_release(&t->release);
  }
}

/* ---- the client -------------------------------------------------------- */

static int read_full(int fd, char *p, size_t n) {
  while (n) {
    ssize_t k = read(fd, p, n);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      return -1;
    p += k;
    n -= (size_t)k;
  }
  return 0;
}

static int write_full(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t k = write(fd, p, n);
    if (k < 0 && errno == EINTR)
      continue;
    if (k < 0)
      return -1;
    p += k;
    n -= (size_t)k;
  }
  return 0;
}

/* 255 with "WHAT PATH[: why]" in err. */
static int client_fail(char *err, size_t errlen, int fd, const char *what,
                       const char *path, int e) {
  if (err && errlen)
    snprintf(err, errlen, "%s %s%s%s", what, path, e ? ": " : "",
             e ? strerror(e) : "");
  if (fd >= 0)
    close(fd);
  return 255;
}

/* fd is a pipe or a socket: something the listener can poll. */
static int pollable(int fd) {
  struct stat st;
  return fstat(fd, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode));
}

/* Copy what is readable on from to to; 0 at end-of-file or an error. */
static int copy_some(int from, int to, char *buf, size_t cap) {
  ssize_t n = read(from, buf, cap);
  if (n < 0 && errno == EINTR)
    return 1;
  if (n <= 0)
    return 0;
  return write_full(to, buf, (size_t)n) == 0;
}

int lsync_tunnel_client(const char *path, unsigned slot, const char *cmd,
                        char *err, size_t errlen) {
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  size_t cl = strlen(cmd);
  if (strlen(path) >= sizeof sa.sun_path || cl == 0 || cl > CMD_MAX)
    return client_fail(err, errlen, -1, "bad request for", path, EINVAL);
  memcpy(sa.sun_path, path, strlen(path));
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return client_fail(err, errlen, -1, "socket for", path, errno);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
    return client_fail(err, errlen, fd, "cannot reach syncplan at",
                       path, errno);
  /* A stdin or stdout the listener cannot poll (a file, /dev/null, a
   * terminal) is replaced by a pipe that this process copies through. */
  int in_pipe[2] = {-1, -1}, out_pipe[2] = {-1, -1};
  int fds[2] = {0, 1};
  if (!pollable(0)) {
    if (pipe2(in_pipe, O_CLOEXEC) < 0)
      return client_fail(err, errlen, fd, "pipe for", path, errno);
    fds[0] = in_pipe[0];
  }
  if (!pollable(1)) {
    if (pipe2(out_pipe, O_CLOEXEC) < 0)
      return client_fail(err, errlen, fd, "pipe for", path, errno);
    fds[1] = out_pipe[1];
  }
  char hdr[HDR_LEN];
  memcpy(hdr, MAGIC, 4);
  put32(hdr + 4, slot);
  put32(hdr + 8, (uint32_t)cl);
  union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof fds)];
  } ctl;
  memset(&ctl, 0, sizeof ctl);
  struct iovec iov = {hdr, HDR_LEN};
  struct msghdr m;
  memset(&m, 0, sizeof m);
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  m.msg_control = ctl.buf;
  m.msg_controllen = sizeof ctl.buf;
  struct cmsghdr *c = CMSG_FIRSTHDR(&m);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof fds);
  memcpy(CMSG_DATA(c), fds, sizeof fds);
  ssize_t k;
  do
    k = sendmsg(fd, &m, MSG_NOSIGNAL);
  while (k < 0 && errno == EINTR);
  if (k < 0)
    return client_fail(err, errlen, fd, "cannot talk to syncplan at", path,
                       errno);
  if (write_full(fd, hdr + k, HDR_LEN - (size_t)k) < 0 ||
      write_full(fd, cmd, cl) < 0)
    return client_fail(err, errlen, fd, "cannot talk to syncplan at", path,
                       errno);
  /* The listener holds the ends it was given; ours of a replacement pipe
   * go, so that end-of-file can come.  fds 0 and 1 themselves stay open,
   * unused, until the exit: see maybe_end. */
  if (in_pipe[0] >= 0)
    close(in_pipe[0]);
  if (out_pipe[1] >= 0)
    close(out_pipe[1]);
  int in_w = in_pipe[1], out_r = out_pipe[0], status = -1;
  char fh[FRAME_HDR], buf[65536];
  while (status < 0 || out_r >= 0) {
    struct pollfd p[3] = {{status < 0 ? fd : -1, POLLIN, 0},
                          {in_w >= 0 ? 0 : -1, POLLIN, 0},
                          {out_r, POLLIN, 0}};
    if (poll(p, 3, -1) < 0) {
      if (errno == EINTR)
        continue;
      return client_fail(err, errlen, fd, "poll for", path, errno);
    }
    if (p[1].revents && !copy_some(0, in_w, buf, sizeof buf)) {
      close(in_w);
      in_w = -1;
    }
    if (p[2].revents && !copy_some(out_r, 1, buf, sizeof buf)) {
      close(out_r);
      out_r = -1;
    }
    if (!p[0].revents)
      continue;
    if (read_full(fd, fh, FRAME_HDR) < 0)
      return client_fail(err, errlen, fd,
                         "lost the syncplan process at", path, 0);
    uint32_t len = get32(fh + 1);
    if (fh[0] == 'X' && len == 4) {
      if (read_full(fd, buf, 4) < 0)
        return client_fail(err, errlen, fd, "a garbled answer from", path, 0);
      status = (int)(get32(buf) & 255);
      continue; /* what is left of the output, then exit */
    }
    if (fh[0] != 'E')
      return client_fail(err, errlen, fd, "a garbled answer from", path, 0);
    while (len) {
      size_t n = len < sizeof buf ? len : sizeof buf;
      if (read_full(fd, buf, n) < 0)
        return client_fail(err, errlen, fd,
                           "lost the syncplan process at", path, 0);
      (void)write_full(2, buf, n);
      len -= (uint32_t)n;
    }
  }
  close(fd);
  return status;
}
