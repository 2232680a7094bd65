/*
 * Workers: one child process on the context's loop (see worker.h).
 *
 * A worker owns eight libuv handles: the process, the three stdio pipes
 * and four timers (watchdog, SIGTERM->SIGKILL grace, the linger that
 * bounds how long the pipes may outlive the child, and the progress
 * rate limiter).  Each is freed in its close callback; the worker's
 * memory goes when the last close callback has run and the owner has
 * called lsync_worker_free(), whichever comes last, so no libuv callback
 * ever sees freed memory.  The process handle is closed only once the
 * child has been reaped, otherwise libuv would stop waiting for it and
 * leave a zombie.
 *
 * This file is POSIX only: process groups, kill(), and a read buffer
 * shared by both output pipes, which is safe because libuv on Unix hands
 * the buffer to the read callback before it allocates the next one.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <uv.h>

#include "internal.h"
#include "progress_internal.h"

#define LINE_MAX_BYTES (64 * 1024) /* longer lines are cut in pieces */
#define LAST_ERROR_MAX 512
#define LINGER_MS 1000      /* pipes may outlive the child this long */
#define PROGRESS_GAP_MS 100 /* at most 10 progress callbacks a second */
#define DEFAULT_GRACE_MS 5000
#define WRITE_CHUNK (1u << 30) /* uv_buf_t lengths are unsigned int */

enum { OUT = 0, ERR = 1 };

struct line_buf {
  char *buf;
  size_t len, cap;
};

struct lsync_worker {
  lsync_ctx *ctx;
  uv_loop_t *loop;
  lsync_ssh *ssh;       /* remote: the session the command runs on */
  lsync_ssh_chan *chan; /* remote: its channel while it runs */
  uv_process_t proc;
  uv_pipe_t in;
  uv_pipe_t pipe[2]; /* stdout, stderr */
  uv_timer_t watchdog, grace, linger, tick;
  uv_write_t wreq;
  int open_handles; /* initialised and not yet through their close cb */

  lsync_progress_kind kind;
  uint64_t watchdog_ms, grace_ms;
  lsync_worker_progress_cb on_progress;
  lsync_worker_exit_cb on_exit;
  void *ud;

  char *input;
  size_t input_len;
  int log_fd;
  int log_failed; /* warned once about a failed log write */
  uint64_t log_size, log_limit; /* the file's size as written; its cap */
  int log_full;                 /* the cap was met: lines are dropped */
  struct line_buf line[2];

  int pid;
  int spawned, exited, finished, freed, stopping;
  int eof[2];
  int exit_status, term_signal, timed_out, stopped;
  uint64_t start_ns;
  double elapsed;
  lsync_progress prog;
  int prog_dirty, prog_sent;
  uint64_t prog_last_ms;
  char last_error[LAST_ERROR_MAX];
  char rbuf[16384];
};

static void finish(lsync_worker *w);

/* ---- handle ownership ------------------------------------------------- */

static void release(lsync_worker *w) {
  if (w->log_fd >= 0)
    close(w->log_fd);
  free(w->line[OUT].buf);
  free(w->line[ERR].buf);
  free(w->input);
  free(w);
}

static void on_closed(uv_handle_t *h) {
  lsync_worker *w = h->data;
  if (--w->open_handles == 0 && w->freed)
    release(w);
}

/* Close h once; a handle never initialised has no data. */
static void close_handle(lsync_worker *w, void *handle) {
  uv_handle_t *h = handle;
  if (h->data == w && !uv_is_closing(h))
    uv_close(h, on_closed);
}

static void close_all(lsync_worker *w) {
  close_handle(w, &w->in);
  close_handle(w, &w->pipe[OUT]);
  close_handle(w, &w->pipe[ERR]);
  close_handle(w, &w->watchdog);
  close_handle(w, &w->grace);
  close_handle(w, &w->linger);
  close_handle(w, &w->tick);
  /* A child not yet reaped keeps its handle: on_child_exit closes it. */
  if (w->exited || !w->spawned)
    close_handle(w, &w->proc);
}

static void own_handle(lsync_worker *w, void *handle) {
  ((uv_handle_t *)handle)->data = w;
  w->open_handles++;
}

/* The whole process group: rsync's ssh and receiver, a shell's children.
 * A remote command has no process here: its channel closes instead, at
 * the first signal (the server closes the command's pipes, and it ends
 * on its next read or write), and is forgotten at SIGKILL. */
static void kill_group(lsync_worker *w, int sig) {
  if (w->ssh) {
    if (w->chan && sig == SIGKILL && w->freed) {
      lsync_ssh_chan_abandon(w->chan);
      w->chan = NULL;
    } else if (w->chan) {
      lsync_ssh_chan_close(w->chan);
    }
    return;
  }
  if (w->pid > 0 && kill(-w->pid, sig) < 0 && errno != ESRCH)
    lsync__log(w->ctx, LSYNC_LOG_WARN, "worker %d: kill: %s", w->pid,
               strerror(errno));
}

/* ---- output ----------------------------------------------------------- */

static void log_line(lsync_worker *w, const char *s, size_t n) {
  if (w->log_fd < 0 || w->log_full)
    return;
  if (w->log_limit && w->log_size + n + 1 > w->log_limit) {
    /* A verbose tool on a huge chunk must not fill the disk; the note
     * says why the log ends here. */
    char note[96];
    int k = snprintf(note, sizeof note,
                     "[syncplan: log truncated at %llu bytes]\n",
                     (unsigned long long)w->log_limit);
    if (write(w->log_fd, note, (size_t)k) < 0 && !w->log_failed)
      w->log_failed = 1;
    w->log_full = 1;
    return;
  }
  struct iovec iov[2] = {{(void *)s, n}, {"\n", 1}};
  /* One writev per line: with O_APPEND, lines of workers sharing a log
   * file do not interleave. */
  ssize_t r = writev(w->log_fd, iov, 2);
  if (r > 0)
    w->log_size += (uint64_t)r;
  if (r < 0 && !w->log_failed) {
    w->log_failed = 1;
    lsync__log(w->ctx, LSYNC_LOG_WARN, "worker %d: cannot write its log: %s",
               w->pid, strerror(errno));
  }
}

static int is_blank(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (s[i] != ' ' && s[i] != '\t')
      return 0;
  return 1;
}

/* Keep s as the last error, cut on a UTF-8 character boundary. */
static void set_last_error(lsync_worker *w, const char *s, size_t n) {
  if (n >= LAST_ERROR_MAX) {
    n = LAST_ERROR_MAX - 1;
    while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
      n--;
  }
  memcpy(w->last_error, s, n);
  w->last_error[n] = '\0';
}

static void progress_deliver(lsync_worker *w) {
  w->prog_dirty = 0;
  w->prog_sent = 1;
  w->prog_last_ms = uv_now(w->loop);
  uv_timer_stop(&w->tick);
  if (w->on_progress)
    w->on_progress(w->ud, w, &w->prog);
}

static void on_tick(uv_timer_t *t) {
  lsync_worker *w = t->data;
  if (w->prog_dirty)
    progress_deliver(w);
}

/* New progress: deliver it now, or when the rate limit allows. */
static void progress_update(lsync_worker *w) {
  uint64_t now = uv_now(w->loop);
  w->prog_dirty = 1;
  if (!w->prog_sent || now - w->prog_last_ms >= PROGRESS_GAP_MS)
    progress_deliver(w);
  else if (!uv_is_active((uv_handle_t *)&w->tick))
    uv_timer_start(&w->tick, on_tick, w->prog_last_ms + PROGRESS_GAP_MS - now,
                   0);
}

static void stderr_line(lsync_worker *w, const char *s, size_t n) {
  if (w->kind == LSYNC_PROGRESS_RCLONE) {
    char msg[LAST_ERROR_MAX];
    int k = lsync__rclone_line(s, n, &w->prog, msg, sizeof msg);
    if (k == LSYNC__RCLONE_STATS) {
      progress_update(w);
      return;
    }
    log_line(w, s, n);
    /* Only error lines speak for the failure; rclone logs progress and
     * notices at other levels.  Text that is not JSON (a Go panic, a
     * fatal message printed before logging is set up) counts. */
    if (k == LSYNC__RCLONE_ERROR && msg[0])
      set_last_error(w, msg, strlen(msg));
    else if (k == LSYNC__RCLONE_NOT_JSON && !is_blank(s, n))
      set_last_error(w, s, n);
    return;
  }
  log_line(w, s, n);
  if (!is_blank(s, n))
    set_last_error(w, s, n);
}

static void handle_line(lsync_worker *w, int which, const char *s, size_t n) {
  if (n == 0)
    return; /* between a "\r" and a "\n" */
  if (which == ERR) {
    stderr_line(w, s, n);
  } else if (w->kind == LSYNC_PROGRESS_RSYNC &&
             lsync_progress_parse_rsync(s, n, &w->prog)) {
    progress_update(w);
  } else {
    log_line(w, s, n);
  }
}

static int line_append(struct line_buf *lb, const char *s, size_t n) {
  if (lb->len + n > lb->cap) {
    size_t cap = lb->cap ? lb->cap : 256;
    while (cap < lb->len + n)
      cap *= 2;
    char *b = realloc(lb->buf, cap);
    if (!b)
      return -1;
    lb->buf = b;
    lb->cap = cap;
  }
  memcpy(lb->buf + lb->len, s, n);
  lb->len += n;
  return 0;
}

/* Split output into "\n"- or "\r"-ended lines, cutting lines longer
 * than LINE_MAX_BYTES; stop as soon as a callback freed the worker. */
static void feed(lsync_worker *w, int which, const char *s, size_t n) {
  struct line_buf *lb = &w->line[which];
  while (n > 0 && !w->freed) {
    size_t i = 0;
    while (i < n && s[i] != '\n' && s[i] != '\r')
      i++;
    size_t room = LINE_MAX_BYTES - lb->len;
    int cut = i >= room;
    size_t take = cut ? room : i;
    size_t ended = !cut && i < n;
    if (!cut && !ended) {
      if (line_append(lb, s, take) < 0) {
        lsync__log(w->ctx, LSYNC_LOG_WARN,
                   "worker %d: out of memory, output dropped", w->pid);
        lb->len = 0;
      }
      return; /* the rest of the line comes with the next read */
    }
    if (lb->len == 0) {
      handle_line(w, which, s, take); /* whole in the read buffer */
    } else if (line_append(lb, s, take) == 0) {
      size_t len = lb->len;
      lb->len = 0;
      handle_line(w, which, lb->buf, len);
    } else {
      lb->len = 0;
    }
    s += take + ended;
    n -= take + ended;
  }
}

/* What is left without a line end when the stream ends is a line too:
 * rsync's last error message may lack its newline. */
static void flush_partial(lsync_worker *w, int which) {
  struct line_buf *lb = &w->line[which];
  size_t len = lb->len;
  lb->len = 0;
  if (len > 0)
    handle_line(w, which, lb->buf, len);
}

/* ---- reading, exit, timers -------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  lsync_worker *w = h->data;
  (void)hint;
  *buf = uv_buf_init(w->rbuf, sizeof w->rbuf);
}

static void on_watchdog(uv_timer_t *t);
static void remote_exit(lsync_worker *w, int rc, int status, const char *sig,
                        const char *msg);

/* The stream has ended (EOF, an error, or the linger ran out). */
static void stream_done(lsync_worker *w, int which) {
  if (w->eof[which])
    return;
  w->eof[which] = 1;
  close_handle(w, &w->pipe[which]);
  flush_partial(w, which);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  lsync_worker *w = s->data;
  int which = s == (uv_stream_t *)&w->pipe[ERR] ? ERR : OUT;
  if (nread > 0) {
    /* Any output proves the child is alive: re-arm the watchdog. */
    if (w->watchdog_ms && !w->exited && !w->stopping)
      uv_timer_start(&w->watchdog, on_watchdog, w->watchdog_ms, 0);
    feed(w, which, buf->base, (size_t)nread);
    return;
  }
  if (nread == 0)
    return;
  if (nread != UV_EOF)
    lsync__log(w->ctx, LSYNC_LOG_DEBUG, "worker %d: reading its %s: %s", w->pid,
               which == ERR ? "stderr" : "stdout", uv_strerror((int)nread));
  stream_done(w, which);
  if (!w->freed && w->exited && w->eof[OUT] && w->eof[ERR])
    finish(w);
}

/* The child is gone but something (a grandchild, usually) still holds
 * its output open.  The run is over: end the stragglers of its group and
 * stop waiting for them. */
static void on_linger(uv_timer_t *t) {
  lsync_worker *w = t->data;
  lsync__log(w->ctx, LSYNC_LOG_DEBUG,
             "worker %d: output still open %d ms after exit", w->pid,
             LINGER_MS);
  kill_group(w, SIGKILL);
  for (int i = 0; i < 2 && !w->freed; i++)
    stream_done(w, i);
  if (!w->freed)
    finish(w);
}

static void on_child_exit(uv_process_t *proc, int64_t status, int sig) {
  lsync_worker *w = proc->data;
  w->exited = 1;
  w->elapsed = (double)(uv_hrtime() - w->start_ns) / 1e9;
  w->exit_status = sig ? -1 : (int)status;
  w->term_signal = sig;
  uv_timer_stop(&w->watchdog);
  uv_timer_stop(&w->grace);
  if (w->freed) {
    close_handle(w, proc);
    return;
  }
  if (w->eof[OUT] && w->eof[ERR])
    finish(w);
  else
    uv_timer_start(&w->linger, on_linger, LINGER_MS, 0);
}

static void on_grace(uv_timer_t *t) {
  lsync_worker *w = t->data;
  if (!w->exited && w->ssh) {
    /* The server did not confirm the close: a host that stopped
     * answering.  The channel is forgotten. */
    lsync_ssh_chan_abandon(w->chan);
    remote_exit(w, LSYNC_ECANCELED, 0, NULL,
                "the remote command did not end after its channel closed");
  } else if (!w->exited) {
    lsync__log(w->ctx, LSYNC_LOG_INFO,
               "worker %d: still running %llu ms after SIGTERM, killing",
               w->pid, (unsigned long long)w->grace_ms);
    kill_group(w, SIGKILL);
  }
}

static void begin_stop(lsync_worker *w) {
  w->stopping = 1;
  uv_timer_stop(&w->watchdog);
  kill_group(w, SIGTERM);
  uv_timer_start(&w->grace, on_grace, w->grace_ms, 0);
}

static void on_watchdog(uv_timer_t *t) {
  lsync_worker *w = t->data;
  if (w->exited || w->stopping)
    return;
  lsync__log(w->ctx, LSYNC_LOG_WARN,
             "worker %d: no output for %llu ms, stopping it", w->pid,
             (unsigned long long)w->watchdog_ms);
  w->timed_out = 1;
  begin_stop(w);
}

/* Child reaped and output read: the one on_exit. */
static void finish(lsync_worker *w) {
  if (w->finished)
    return;
  w->finished = 1;
  uv_timer_stop(&w->linger);
  if (w->prog_dirty) {
    progress_deliver(w); /* the final state, whatever the rate limit */
    if (w->freed)
      return;
  }
  if (w->log_fd >= 0) {
    close(w->log_fd); /* complete for whoever reads it in on_exit */
    w->log_fd = -1;
  }
  /* A stopped run must not leave children that ignored SIGTERM and
   * closed their output behind. */
  if (w->stopping)
    kill_group(w, SIGKILL);
  if (w->on_exit) {
    lsync_worker_result r;
    memset(&r, 0, sizeof r);
    r.exit_status = w->exit_status;
    r.term_signal = w->term_signal;
    r.timed_out = w->timed_out;
    r.stopped = w->stopped;
    r.last_error = w->last_error;
    r.progress = w->prog;
    r.elapsed = w->elapsed;
    w->on_exit(w->ud, w, &r);
  }
  close_all(w); /* a no-op for handles lsync_worker_free closed */
}

/* ---- input ------------------------------------------------------------ */

static void on_written(uv_write_t *req, int status) {
  lsync_worker *w = req->data;
  /* A child may exit without reading all it was given (EPIPE), or be
   * done before the write was (ECANCELED when the pipe closes): neither
   * is the worker's failure, its exit status tells. */
  if (status < 0 && status != UV_ECANCELED)
    lsync__log(w->ctx,
               status == UV_EPIPE || status == UV_ECONNRESET ? LSYNC_LOG_DEBUG
                                                             : LSYNC_LOG_WARN,
               "worker %d: writing its input: %s", w->pid, uv_strerror(status));
  free(w->input);
  w->input = NULL;
  close_handle(w, &w->in); /* EOF for the child */
}

static int write_input(lsync_worker *w) {
  if (w->input_len == 0) {
    close_handle(w, &w->in);
    return 0;
  }
  size_t nbufs = (w->input_len + WRITE_CHUNK - 1) / WRITE_CHUNK;
  uv_buf_t *bufs = malloc(nbufs * sizeof *bufs);
  if (!bufs)
    return lsync__fail(w->ctx, LSYNC_ENOMEM, "out of memory");
  for (size_t i = 0; i < nbufs; i++) {
    size_t off = i * WRITE_CHUNK, left = w->input_len - off;
    bufs[i] = uv_buf_init(w->input + off,
                          (unsigned)(left < WRITE_CHUNK ? left : WRITE_CHUNK));
  }
  w->wreq.data = w;
  /* uv_write copies the array of buffers, not the bytes. */
  int rc = uv_write(&w->wreq, (uv_stream_t *)&w->in, bufs, (unsigned)nbufs,
                    on_written);
  free(bufs);
  if (rc < 0)
    return lsync__fail(w->ctx, LSYNC_EIO, "cannot write to %d's stdin: %s",
                       w->pid, uv_strerror(rc));
  return 0;
}

/* ---- start ------------------------------------------------------------ */

static size_t name_len(const char *kv) {
  const char *eq = strchr(kv, '=');
  return eq ? (size_t)(eq - kv) : strlen(kv);
}

static int same_name(const char *a, const char *b) {
  size_t n = name_len(a);
  return n == name_len(b) && memcmp(a, b, n) == 0;
}

static int named_in(const char *kv, const char *const *list) {
  for (; list && *list; list++)
    if (same_name(kv, *list))
      return 1;
  return 0;
}

/* environ + LC_ALL=C + extra, later names replacing earlier ones.  The
 * strings are borrowed; only the array is allocated. */
static char **build_env(const char *const *extra) {
  size_t n = 0, m = 0, k = 0;
  while (environ && environ[n])
    n++;
  while (extra && extra[m])
    m++;
  char **env = malloc((n + m + 2) * sizeof *env);
  if (!env)
    return NULL;
  for (size_t i = 0; i < n; i++)
    if (!same_name(environ[i], "LC_ALL=") && !named_in(environ[i], extra))
      env[k++] = environ[i];
  if (!named_in("LC_ALL=", extra))
    env[k++] = (char *)"LC_ALL=C";
  for (size_t i = 0; i < m; i++)
    if (!named_in(extra[i], extra + i + 1))
      env[k++] = (char *)extra[i];
  env[k] = NULL;
  return env;
}

static pthread_once_t sigpipe_once = PTHREAD_ONCE_INIT;

/* Writing to a child that exited must give EPIPE, not kill the program.
 * A disposition the program chose itself is left alone. */
static void ignore_sigpipe_once(void) {
  struct sigaction sa;
  if (sigaction(SIGPIPE, NULL, &sa) == 0 && !(sa.sa_flags & SA_SIGINFO) &&
      sa.sa_handler == SIG_DFL) {
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGPIPE, &sa, NULL);
  }
}

void lsync__ignore_sigpipe(void) {
  pthread_once(&sigpipe_once, ignore_sigpipe_once);
}

static int check_opts(lsync_ctx *ctx, const lsync_worker_opts *o) {
  if (!o || !o->argv || !o->argv[0] || !o->argv[0][0])
    return lsync__fail(ctx, LSYNC_EINVAL, "worker: no program to run");
  if (o->input_len && !o->input)
    return lsync__fail(ctx, LSYNC_EINVAL, "worker: input_len without input");
  if ((unsigned)o->progress > LSYNC_PROGRESS_RCLONE)
    return lsync__fail(ctx, LSYNC_EINVAL, "worker: unknown progress kind %d",
                       (int)o->progress);
  for (const char *const *e = o->env; e && *e; e++)
    if (name_len(*e) == 0 || !strchr(*e, '='))
      return lsync__fail(ctx, LSYNC_EINVAL,
                         "worker: environment entry \"%s\" is not NAME=VALUE",
                         *e);
  return 0;
}

/* Copy the options and open the log: everything that can fail before
 * any handle exists. */
static int worker_new(lsync_ctx *ctx, const lsync_worker_opts *o,
                      lsync_worker **out) {
  lsync_worker *w = calloc(1, sizeof *w);
  if (!w)
    return lsync__fail(ctx, LSYNC_ENOMEM, "out of memory");
  w->ctx = ctx;
  w->log_fd = -1;
  w->kind = o->progress;
  w->watchdog_ms = o->watchdog_ms;
  w->grace_ms = o->grace_ms ? o->grace_ms : DEFAULT_GRACE_MS;
  w->on_progress = o->on_progress;
  w->on_exit = o->on_exit;
  w->ud = o->ud;
  if (o->input_len) {
    if (!(w->input = malloc(o->input_len))) {
      free(w);
      return lsync__fail(ctx, LSYNC_ENOMEM, "out of memory");
    }
    memcpy(w->input, o->input, o->input_len);
    w->input_len = o->input_len;
  }
  if (o->log_path) {
    w->log_fd =
        open(o->log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (w->log_fd < 0) {
      int e = errno;
      release(w);
      return lsync__fail(ctx, LSYNC_EIO, "cannot open worker log %s: %s",
                         o->log_path, strerror(e));
    }
    struct stat st;
    if (fstat(w->log_fd, &st) == 0)
      w->log_size = (uint64_t)st.st_size;
    w->log_limit = o->log_limit;
  }
  *out = w;
  return 0;
}

static void init_handles(lsync_worker *w, uv_loop_t *loop) {
  w->loop = loop;
  for (int i = 0; i < 2 && !w->ssh; i++) {
    uv_pipe_init(loop, &w->pipe[i], 0);
    own_handle(w, &w->pipe[i]);
  }
  if (!w->ssh) {
    uv_pipe_init(loop, &w->in, 0);
    own_handle(w, &w->in);
  }
  uv_timer_t *timers[] = {&w->watchdog, &w->grace, &w->linger, &w->tick};
  for (size_t i = 0; i < sizeof timers / sizeof timers[0]; i++) {
    uv_timer_init(loop, timers[i]);
    own_handle(w, timers[i]);
  }
}

static int spawn(lsync_worker *w, uv_loop_t *loop, const lsync_worker_opts *o) {
  char **env = build_env(o->env);
  if (!env)
    return lsync__fail(w->ctx, LSYNC_ENOMEM, "out of memory");
  uv_stdio_container_t stdio[3];
  stdio[0].flags = UV_CREATE_PIPE | UV_READABLE_PIPE;
  stdio[0].data.stream = (uv_stream_t *)&w->in;
  for (int i = 0; i < 2; i++) {
    stdio[i + 1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[i + 1].data.stream = (uv_stream_t *)&w->pipe[i];
  }
  uv_process_options_t po;
  memset(&po, 0, sizeof po);
  po.exit_cb = on_child_exit;
  po.file = o->argv[0];
  po.args = (char **)o->argv;
  po.env = env;
  po.cwd = o->cwd;
  /* Its own process group (setsid), so signals reach all it starts. */
  po.flags = UV_PROCESS_DETACHED;
  po.stdio_count = 3;
  po.stdio = stdio;
  w->start_ns = uv_hrtime();
  int rc = uv_spawn(loop, &w->proc, &po);
  own_handle(w, &w->proc); /* initialised even when the spawn failed */
  free(env);
  if (rc < 0)
    return lsync__fail_errno(w->ctx, -rc, "cannot run %s", o->argv[0]);
  w->spawned = 1;
  w->pid = w->proc.pid;
  return 0;
}

/* ---- a command on an ssh session -------------------------------------- */

/* 'word' for a POSIX shell. */
static int shell_word(struct line_buf *b, const char *s) {
  if (line_append(b, "'", 1) < 0)
    return -1;
  for (; *s; s++) {
    int r = *s == '\'' ? line_append(b, "'\\''", 4) : line_append(b, s, 1);
    if (r < 0)
      return -1;
  }
  return line_append(b, "'", 1);
}

/* cd 'DIR' && LC_ALL=C NAME='VALUE'... exec 'ARG0' 'ARG1'... */
static char *remote_command(const lsync_worker_opts *o) {
  struct line_buf b = {0};
  int bad = 0;
  if (o->cwd)
    bad |= line_append(&b, "cd ", 3) < 0 || shell_word(&b, o->cwd) < 0 ||
           line_append(&b, " && ", 4) < 0;
  if (!named_in("LC_ALL=", o->env))
    bad |= line_append(&b, "LC_ALL=C ", 9) < 0;
  for (const char *const *e = o->env; e && *e; e++) {
    size_t n = name_len(*e);
    bad |= line_append(&b, *e, n + 1) < 0 || shell_word(&b, *e + n + 1) < 0 ||
           line_append(&b, " ", 1) < 0;
  }
  bad |= line_append(&b, "exec", 4) < 0;
  for (const char *const *a = o->argv; *a; a++)
    bad |= line_append(&b, " ", 1) < 0 || shell_word(&b, *a) < 0;
  bad |= line_append(&b, "", 1) < 0;
  if (bad) {
    free(b.buf);
    return NULL;
  }
  return b.buf;
}

static void on_chan_data(void *ud, int fd, const char *buf, size_t len) {
  lsync_worker *w = ud;
  if (w->watchdog_ms && !w->stopping)
    uv_timer_start(&w->watchdog, on_watchdog, w->watchdog_ms, 0);
  feed(w, fd == 2 ? ERR : OUT, buf, len);
}

static int signal_number(const char *name) {
  static const struct {
    const char *name;
    int sig;
  } sigs[] = {{"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT},
              {"ILL", SIGILL},   {"ABRT", SIGABRT}, {"FPE", SIGFPE},
              {"KILL", SIGKILL}, {"SEGV", SIGSEGV}, {"PIPE", SIGPIPE},
              {"ALRM", SIGALRM}, {"TERM", SIGTERM}, {"USR1", SIGUSR1},
              {"USR2", SIGUSR2}};
  for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++)
    if (!strcmp(name, sigs[i].name))
      return sigs[i].sig;
  return SIGTERM; /* a signal ended it; its number does not travel */
}

/* The channel ended, or was given up (rc LSYNC_ECANCELED, msg set). */
static void remote_exit(lsync_worker *w, int rc, int status, const char *sig,
                        const char *msg) {
  w->chan = NULL;
  w->exited = 1;
  w->elapsed = (double)(uv_hrtime() - w->start_ns) / 1e9;
  uv_timer_stop(&w->watchdog);
  uv_timer_stop(&w->grace);
  if (rc < 0) {
    /* As ssh: 255 when the connection, not the command, failed. */
    w->exit_status = 255;
    set_last_error(w, msg, strlen(msg));
    log_line(w, msg, strlen(msg));
  } else if (sig) {
    w->exit_status = -1;
    w->term_signal = signal_number(sig);
  } else {
    w->exit_status = status;
  }
  for (int i = 0; i < 2 && !w->freed; i++)
    if (!w->eof[i]) {
      w->eof[i] = 1;
      flush_partial(w, i);
    }
  if (!w->freed)
    finish(w);
}

static void on_chan_exit(void *ud, int rc, int status, const char *sig) {
  lsync_worker *w = ud;
  remote_exit(w, rc, status, sig, rc < 0 ? lsync_ssh_errmsg(w->ssh) : "");
}

static int start_remote(lsync_worker *w, const lsync_worker_opts *o) {
  char *cmd = remote_command(o);
  if (!cmd)
    return lsync__fail(w->ctx, LSYNC_ENOMEM, "out of memory");
  lsync_ssh_chan_opts co = {cmd, on_chan_data, on_chan_exit, NULL, w};
  w->start_ns = uv_hrtime();
  int rc = lsync_ssh_chan_open(o->ssh, &co, &w->chan);
  free(cmd);
  if (rc < 0)
    return rc;
  lsync_ssh_prefetch(o->ssh, 1); /* for the host's next worker */
  w->spawned = 1;
  if (w->input_len &&
      (rc = lsync_ssh_chan_write(w->chan, w->input, w->input_len)) < 0)
    return rc;
  free(w->input);
  w->input = NULL;
  lsync_ssh_chan_end_input(w->chan);
  return 0;
}

static int begin_io(lsync_worker *w, const char *prog) {
  for (int i = 0; i < 2; i++) {
    int rc = uv_read_start((uv_stream_t *)&w->pipe[i], on_alloc, on_read);
    if (rc < 0)
      return lsync__fail(w->ctx, LSYNC_ESYS, "cannot read the output of %s: %s",
                         prog, uv_strerror(rc));
  }
  return write_input(w);
}

int lsync_worker_start(lsync_ctx *ctx, const lsync_worker_opts *o,
                       lsync_worker **out) {
  lsync_worker *w = NULL;
  *out = NULL;
  int rc = check_opts(ctx, o);
  if (rc < 0)
    return rc;
  uv_loop_t *loop = lsync__loop(ctx);
  if (!loop)
    return LSYNC_ENOMEM;
  if ((rc = worker_new(ctx, o, &w)) < 0)
    return rc;
  lsync__ignore_sigpipe();
  w->ssh = o->ssh;
  init_handles(w, loop);
  if (w->ssh)
    rc = start_remote(w, o);
  else if ((rc = spawn(w, loop, o)) == 0)
    rc = begin_io(w, o->argv[0]);
  if (rc < 0) {
    lsync_worker_free(w); /* kills a spawned child; no callback */
    return rc;
  }
  if (w->watchdog_ms)
    uv_timer_start(&w->watchdog, on_watchdog, w->watchdog_ms, 0);
  lsync__log(ctx, LSYNC_LOG_DEBUG, "worker %d: started %s", w->pid, o->argv[0]);
  *out = w;
  return 0;
}

/* ---- control ---------------------------------------------------------- */

void lsync_worker_opts_init(lsync_worker_opts *o) {
  memset(o, 0, sizeof *o);
  o->progress = LSYNC_PROGRESS_NONE;
}

int lsync_worker_pid(const lsync_worker *w) {
  return w ? w->pid : 0;
}

void lsync_worker_stop(lsync_worker *w) {
  if (!w || w->freed || w->exited || w->stopping)
    return;
  w->stopped = 1;
  begin_stop(w);
}

void lsync_worker_free(lsync_worker *w) {
  if (!w || w->freed)
    return;
  w->freed = 1;
  /* Before on_exit the owner no longer wants the run: end all of it. */
  if (w->spawned && !w->finished)
    kill_group(w, SIGKILL);
  close_all(w);
  if (w->open_handles == 0)
    release(w);
}
