/*
 * Local channels (lchan.h): a command run on this machine behind the
 * interface of an ssh channel, so the tunnel relays a local rsync's
 * stream the way it relays a remote one (through the job's bucket).
 *
 * The command runs as `/bin/sh -c CMD`, as a login shell runs what ssh
 * asks (rsync quotes its server's arguments for a shell).  Three pipes:
 * its stdin (written from the queue), stdout and stderr (read unless
 * paused).  on_exit comes once the process has exited and both output
 * pipes have reached end-of-file, so no output is lost behind it.  The
 * channel is freed when every handle is through its close callback; an
 * abandoned channel keeps its process handle until the process exits,
 * so the child is reaped and not left a zombie.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "internal.h"
#include "lchan.h"

/* The queue below which on_drain tells the writer to go on. */
#define LOW_MARK (1u << 20)

enum { P_IN, P_OUT, P_ERR, NP };

struct lsync__lchan {
  uv_process_t proc;
  uv_pipe_t p[NP];
  int open[NP];    /* pipe not yet closed */
  int reading[NP]; /* output pipe not yet at end-of-file */
  int handles;     /* initialised, close callback still to come */
  int proc_open;
  lsync_ssh_chan_opts o;
  size_t queued;
  int input_ended, paused, exited, abandoned, exit_called;
  int64_t status;
  int sig;
  char buf[65536];
};

struct lwrite {
  uv_write_t req;
  lsync__lchan *c;
  size_t len;
  char data[];
};

/* The name ssh would report (without "SIG"); the tunnel only shows it. */
static const char *sig_name(int sig) {
  switch (sig) {
  case SIGKILL: return "KILL";
  case SIGTERM: return "TERM";
  case SIGINT: return "INT";
  case SIGHUP: return "HUP";
  case SIGPIPE: return "PIPE";
  case SIGSEGV: return "SEGV";
  case SIGABRT: return "ABRT";
  default: return "UNKNOWN";
  }
}

static void maybe_free(lsync__lchan *c) {
  if (c->handles == 0)
    free(c);
}

static void on_closed(uv_handle_t *h) {
  lsync__lchan *c = h->data;
  c->handles--;
  maybe_free(c);
}

static void close_pipe(lsync__lchan *c, int i) {
  if (!c->open[i])
    return;
  c->open[i] = 0;
  c->reading[i] = 0;
  uv_close((uv_handle_t *)&c->p[i], on_closed);
}

static void close_proc(lsync__lchan *c) {
  if (!c->proc_open)
    return;
  c->proc_open = 0;
  uv_close((uv_handle_t *)&c->proc, on_closed);
}

/* Exited and its output all read: the owner hears once, then the
 * channel's handles close. */
static void maybe_exit(lsync__lchan *c) {
  if (!c->exited || c->reading[P_OUT] || c->reading[P_ERR] || c->exit_called)
    return;
  c->exit_called = 1;
  for (int i = 0; i < NP; i++)
    close_pipe(c, i);
  close_proc(c);
  if (!c->abandoned && c->o.on_exit) {
    const char *sig = c->sig ? sig_name(c->sig) : NULL;
    c->o.on_exit(c->o.ud, 0, (int)c->status, sig);
  }
}

static void on_proc_exit(uv_process_t *p, int64_t status, int sig) {
  lsync__lchan *c = p->data;
  c->exited = 1;
  c->status = status;
  c->sig = sig;
  maybe_exit(c);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  lsync__lchan *c = h->data;
  (void)hint;
  *b = uv_buf_init(c->buf, sizeof c->buf);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  lsync__lchan *c = s->data;
  int i = s == (uv_stream_t *)&c->p[P_OUT] ? P_OUT : P_ERR;
  if (n == 0)
    return;
  if (n < 0) {
    close_pipe(c, i);
    maybe_exit(c);
    return;
  }
  if (!c->abandoned)
    c->o.on_data(c->o.ud, i == P_OUT ? 1 : 2, b->base, (size_t)n);
}

static void set_reading(lsync__lchan *c) {
  for (int i = P_OUT; i <= P_ERR; i++) {
    if (!c->reading[i])
      continue;
    if (c->paused)
      uv_read_stop((uv_stream_t *)&c->p[i]);
    else
      uv_read_start((uv_stream_t *)&c->p[i], on_alloc, on_read);
  }
}

int lsync__lchan_open(lsync_ctx *ctx, const lsync_ssh_chan_opts *o,
                      lsync__lchan **out) {
  *out = NULL;
  if (!o || !o->cmd || !o->on_data || !o->on_exit)
    return lsync__fail(ctx, LSYNC_EINVAL, "local channel: no command");
  uv_loop_t *loop = lsync__loop(ctx);
  if (!loop)
    return LSYNC_ENOMEM;
  lsync__lchan *c = calloc(1, sizeof *c);
  if (!c)
    return lsync__fail(ctx, LSYNC_ENOMEM, "local channel: out of memory");
  c->o = *o;
  lsync__ignore_sigpipe();
  uv_stdio_container_t stdio[NP];
  for (int i = 0; i < NP; i++) {
    uv_pipe_init(loop, &c->p[i], 0);
    c->p[i].data = c;
    c->open[i] = 1;
    c->handles++;
    stdio[i].flags = UV_CREATE_PIPE |
                     (i == P_IN ? UV_READABLE_PIPE : UV_WRITABLE_PIPE);
    stdio[i].data.stream = (uv_stream_t *)&c->p[i];
  }
  char *args[] = {"sh", "-c", (char *)o->cmd, NULL};
  uv_process_options_t po;
  memset(&po, 0, sizeof po);
  po.file = "/bin/sh";
  po.args = args;
  po.exit_cb = on_proc_exit;
  po.stdio_count = NP;
  po.stdio = stdio;
  c->proc.data = c;
  int rc = uv_spawn(loop, &c->proc, &po);
  c->handles++; /* uv_spawn initialises the handle even when it fails */
  c->proc_open = 1;
  if (rc < 0) {
    lsync__fail(ctx, LSYNC_EIO, "local channel: cannot run /bin/sh: %s",
                uv_strerror(rc));
    c->abandoned = 1;
    for (int i = 0; i < NP; i++)
      close_pipe(c, i);
    close_proc(c);
    return LSYNC_EIO;
  }
  c->reading[P_OUT] = c->reading[P_ERR] = 1;
  set_reading(c);
  *out = c;
  return 0;
}

static void on_written(uv_write_t *req, int status) {
  struct lwrite *w = (struct lwrite *)req;
  lsync__lchan *c = w->c;
  c->queued -= w->len;
  free(w);
  (void)status; /* a command that stopped reading shows in its exit */
  if (c->queued == 0 && c->input_ended)
    close_pipe(c, P_IN);
  if (c->queued <= LOW_MARK && !c->abandoned && !c->exit_called &&
      c->o.on_drain)
    c->o.on_drain(c->o.ud);
}

int lsync__lchan_write(lsync__lchan *c, const void *buf, size_t len) {
  if (!c->open[P_IN] || c->input_ended)
    return LSYNC_EINVAL;
  struct lwrite *w = malloc(sizeof *w + len);
  if (!w)
    return LSYNC_ENOMEM;
  w->c = c;
  w->len = len;
  memcpy(w->data, buf, len);
  uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
  if (uv_write(&w->req, (uv_stream_t *)&c->p[P_IN], &b, 1, on_written) < 0) {
    free(w);
    return LSYNC_EIO;
  }
  c->queued += len;
  return 0;
}

size_t lsync__lchan_queued(const lsync__lchan *c) { return c->queued; }

void lsync__lchan_end_input(lsync__lchan *c) {
  c->input_ended = 1;
  if (c->queued == 0)
    close_pipe(c, P_IN);
}

void lsync__lchan_pause(lsync__lchan *c, int paused) {
  c->paused = paused;
  set_reading(c);
}

/* The command's pipes close: it ends on its next read or write, as a
 * remote command does when its channel closes. */
void lsync__lchan_close(lsync__lchan *c) {
  close_pipe(c, P_IN);
  close_pipe(c, P_OUT);
  close_pipe(c, P_ERR);
  maybe_exit(c);
}

void lsync__lchan_abandon(lsync__lchan *c) {
  c->abandoned = 1;
  lsync__lchan_close(c);
}
