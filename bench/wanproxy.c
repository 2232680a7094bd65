/*
 * wanproxy -- a TCP relay on loopback that behaves like a WAN link, for the
 * transfer benchmarks (bench/transfer.sh).  netem would do this in the
 * kernel, but it needs a module and privileges this machine does not have.
 *
 *   wanproxy --listen HOST:PORT --to HOST:PORT [--delay-ms MS]
 *            [--conn-rate RATE] [--total-rate RATE] [--queue-ms MS]
 *            [--port-file FILE] [-v]
 *
 * Every byte read from one side is written to the other one delay later
 * (one-way delay, each direction, so a round trip costs 2 x MS), in order.
 * Each direction of each connection is capped at --conn-rate, and each
 * direction over all connections at --total-rate: a full-duplex link.
 * RATE is bytes/s with an optional binary k, M or G suffix; 0 (the
 * default) is no cap.  --listen with port 0 picks a free port and writes it
 * to --port-file (written to a temporary name and renamed, so a reader
 * never sees half a number).  -v logs, per connection and at exit for all
 * of them, the bytes relayed each way and their rate from first to last
 * write, for checking how close a run stays to the caps.
 *
 * Model: each direction owns a queue of chunks stamped with the time they
 * are due, a token bucket, and a timer.  A chunk leaves when it is due and
 * both its connection's bucket and the total bucket are out of debt; a
 * write may put a bucket in debt, which the following waits pay back, so
 * the long-run rate is exact whatever the write sizes.  Directions waiting
 * for the total bucket wake in the order they started waiting (libuv runs
 * timers due at the same time in start order), which shares the total
 * fairly.  A direction stops reading while its queue holds more than
 * --queue-ms worth of its rate (default 1000 ms), so memory stays bounded
 * and the sender sees TCP backpressure, as it would behind a slow link.
 * EOF on one side shuts down the write side of the other once the queue
 * has drained (half-close); an error on either side closes both.
 *
 * Handle lifecycle: a connection owns two TCP handles and two timers,
 * all closed together by conn_close(); the last close callback frees it.
 * A write or shutdown in flight completes (cancelled) before that.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define READ_SIZE (64 * 1024)
/* Largest single write: small enough that the rate caps stay smooth at the
 * millisecond scale of libuv timers. */
#define WRITE_MAX (64 * 1024)
#define NS_PER_S 1000000000.0

struct chunk {
  struct chunk *next;
  uint64_t due; /* uv_hrtime() at which it may leave */
  size_t len, off;
  char data[];
};

/* Token bucket in "debt" form: a write is allowed while tokens >= 0 and
 * subtracts its size, possibly going negative. */
struct bucket {
  double rate;  /* bytes/s; 0 = no cap */
  double burst; /* most tokens saved up while idle */
  double tokens;
  uint64_t last; /* uv_hrtime() of the last refill */
};

/* Bytes written, and when the first write started and the last ended. */
struct flow {
  uint64_t bytes, first, last;
};

/* One direction over all connections: the --total-rate cap and its count. */
struct link {
  struct bucket bucket;
  struct flow flow;
};

struct conn;

/* One direction of one connection: bytes read from `from`, written to `to`. */
struct dir {
  struct conn *conn;
  uv_tcp_t *from, *to;
  struct bucket bucket;
  struct link *total; /* shared by all connections, this direction */
  struct chunk *head, *tail;
  size_t queued; /* bytes in the queue, including any being written */
  size_t writing; /* bytes of head in flight; 0 = no write pending */
  struct flow flow;
  int reading, eof;
  int shut, shut_done; /* shutdown of `to` issued, completed */
  uv_timer_t timer;
  uv_write_t wreq;
  uv_shutdown_t sreq;
};

struct conn {
  struct conn *prev, *next; /* all live connections, for shutdown */
  unsigned long id;
  uv_tcp_t client, server;
  uv_connect_t creq;
  struct dir up, down; /* client -> server, server -> client */
  uint64_t started;
  int closing, open_handles;
};

static struct {
  struct sockaddr_storage listen_addr, to_addr;
  uint64_t delay_ns;
  double conn_rate, total_rate;
  double queue_s;
  const char *port_file;
  int verbose;
} opt = {.queue_s = 1.0};

static uv_loop_t *loop;
static uv_tcp_t listener;
static uv_signal_t sigint, sigterm;
static struct link total_up, total_down;
static struct conn *conns;
static unsigned long next_id = 1;

static void die(const char *what, int err) {
  fprintf(stderr, "wanproxy: %s%s%s\n", what, err ? ": " : "",
          err ? uv_strerror(err) : "");
  exit(1);
}

/* ------------------------------------------------------------ buckets */

static void bucket_init(struct bucket *b, double rate) {
  b->rate = rate;
  /* 10 ms worth, and at least two writes: a timer firing a millisecond
   * late must not lose the tokens of that millisecond. */
  b->burst = rate / 100 > 2.0 * WRITE_MAX ? rate / 100 : 2.0 * WRITE_MAX;
  b->tokens = 0;
  b->last = uv_hrtime();
}

/* Nanoseconds until B is out of debt (0 = now). */
static uint64_t bucket_wait(struct bucket *b, uint64_t now) {
  if (b->rate <= 0)
    return 0;
  b->tokens += b->rate * (double)(now - b->last) / NS_PER_S;
  if (b->tokens > b->burst)
    b->tokens = b->burst;
  b->last = now;
  return b->tokens >= 0 ? 0 : (uint64_t)(-b->tokens / b->rate * NS_PER_S) + 1;
}

static void bucket_take(struct bucket *b, size_t n) {
  if (b->rate > 0)
    b->tokens -= (double)n;
}

static void flow_start(struct flow *f, uint64_t now) {
  if (!f->first)
    f->first = now;
}

static void flow_add(struct flow *f, size_t n, uint64_t now) {
  f->bytes += n;
  f->last = now;
}

/* "209949281 B in 8.40 s (23.84 MiB/s)" */
static void flow_print(const char *what, const struct flow *f) {
  double s = f->last > f->first ? (double)(f->last - f->first) / NS_PER_S : 0;
  fprintf(stderr, "%s %" PRIu64 " B in %.2f s (%.2f MiB/s)", what, f->bytes, s,
          s > 0 ? (double)f->bytes / s / 1048576.0 : 0.0);
}

/* Queue limit of a direction: --queue-ms of the rate it can leave at. */
static size_t queue_limit(void) {
  double r = opt.conn_rate;
  if (opt.total_rate > 0 && (r <= 0 || opt.total_rate < r))
    r = opt.total_rate;
  if (r <= 0)
    r = 256.0 * 1024 * 1024; /* uncapped: still bound memory */
  double lim = r * opt.queue_s;
  return lim < 4.0 * READ_SIZE ? 4 * READ_SIZE : (size_t)lim;
}

/* -------------------------------------------------------- connections */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void dir_pump(struct dir *d);

/* One of C's four handles is closed; the last one frees C. */
static void conn_release(struct conn *c) {
  if (--c->open_handles > 0)
    return;
  struct dir *dirs[2] = {&c->up, &c->down};
  for (int i = 0; i < 2; i++) {
    struct chunk *ch = dirs[i]->head;
    while (ch) {
      struct chunk *next = ch->next;
      free(ch);
      ch = next;
    }
  }
  free(c);
}

static void on_tcp_closed(uv_handle_t *h) {
  conn_release(h->data);
}

static void on_timer_closed(uv_handle_t *h) {
  struct dir *d = h->data;
  conn_release(d->conn);
}

static void conn_close(struct conn *c) {
  if (c->closing)
    return;
  c->closing = 1;
  if (opt.verbose) {
    fprintf(stderr, "wanproxy: #%lu closed after %.2f s:", c->id,
            (double)(uv_hrtime() - c->started) / NS_PER_S);
    flow_print(" up", &c->up.flow);
    flow_print(", down", &c->down.flow);
    fputc('\n', stderr);
  }
  if (c->prev)
    c->prev->next = c->next;
  else
    conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  uv_close((uv_handle_t *)&c->client, on_tcp_closed);
  uv_close((uv_handle_t *)&c->server, on_tcp_closed);
  uv_close((uv_handle_t *)&c->up.timer, on_timer_closed);
  uv_close((uv_handle_t *)&c->down.timer, on_timer_closed);
}

static void dir_init(struct conn *c, struct dir *d, uv_tcp_t *from,
                     uv_tcp_t *to, struct link *total) {
  d->conn = c;
  d->from = from;
  d->to = to;
  d->total = total;
  bucket_init(&d->bucket, opt.conn_rate);
  uv_timer_init(loop, &d->timer);
  d->timer.data = d;
}

static void dir_start_reading(struct dir *d) {
  if (d->reading || d->eof || d->conn->closing)
    return;
  int r = uv_read_start((uv_stream_t *)d->from, on_alloc, on_read);
  if (r < 0) {
    conn_close(d->conn);
    return;
  }
  d->reading = 1;
}

static void dir_stop_reading(struct dir *d) {
  if (!d->reading)
    return;
  uv_read_stop((uv_stream_t *)d->from);
  d->reading = 0;
}

/* Both directions have seen EOF and passed it on: nothing left to relay. */
static void conn_maybe_done(struct conn *c) {
  if (c->up.shut_done && c->down.shut_done)
    conn_close(c);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  struct dir *d = req->data;
  if (status < 0) {
    conn_close(d->conn);
    return;
  }
  d->shut_done = 1;
  conn_maybe_done(d->conn);
}

static void on_timer(uv_timer_t *t) {
  dir_pump(t->data);
}

static void on_write(uv_write_t *req, int status) {
  struct dir *d = req->data;
  size_t n = d->writing;
  d->writing = 0;
  if (status < 0) { /* includes UV_ECANCELED from conn_close */
    conn_close(d->conn);
    return;
  }
  uint64_t now = uv_hrtime();
  flow_add(&d->flow, n, now);
  flow_add(&d->total->flow, n, now);
  d->queued -= n;
  struct chunk *ch = d->head;
  ch->off += n;
  if (ch->off == ch->len) {
    d->head = ch->next;
    if (!d->head)
      d->tail = NULL;
    free(ch);
  }
  if (d->queued < queue_limit())
    dir_start_reading(d);
  dir_pump(d);
}

/* Arm D's timer for NS from now (rounded up to libuv's milliseconds). */
static void dir_wait(struct dir *d, uint64_t ns) {
  uv_timer_start(&d->timer, on_timer, (ns + 999999) / 1000000, 0);
}

/* Write what may leave now; otherwise arm the timer for when it may. */
static void dir_pump(struct dir *d) {
  if (d->conn->closing || d->writing || d->shut)
    return;
  struct chunk *ch = d->head;
  if (!ch) {
    if (d->eof) {
      d->shut = 1;
      d->sreq.data = d;
      if (uv_shutdown(&d->sreq, (uv_stream_t *)d->to, on_shutdown) < 0)
        conn_close(d->conn);
    }
    return;
  }
  uint64_t now = uv_hrtime();
  if (ch->due > now) {
    dir_wait(d, ch->due - now);
    return;
  }
  uint64_t w1 = bucket_wait(&d->bucket, now);
  uint64_t w2 = bucket_wait(&d->total->bucket, now);
  if (w1 || w2) {
    dir_wait(d, w1 > w2 ? w1 : w2);
    return;
  }
  size_t n = ch->len - ch->off;
  if (n > WRITE_MAX && (d->bucket.rate > 0 || d->total->bucket.rate > 0))
    n = WRITE_MAX;
  bucket_take(&d->bucket, n);
  bucket_take(&d->total->bucket, n);
  flow_start(&d->flow, now);
  flow_start(&d->total->flow, now);
  uv_buf_t buf = uv_buf_init(ch->data + ch->off, (unsigned)n);
  d->writing = n;
  d->wreq.data = d;
  if (uv_write(&d->wreq, (uv_stream_t *)d->to, &buf, 1, on_write) < 0) {
    d->writing = 0;
    conn_close(d->conn);
  }
}

static struct dir *dir_of(uv_handle_t *h) {
  struct conn *c = h->data;
  return h == (uv_handle_t *)&c->client ? &c->up : &c->down;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  struct chunk *ch = malloc(sizeof *ch + READ_SIZE);
  *buf = uv_buf_init(ch ? ch->data : NULL, ch ? READ_SIZE : 0);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  struct dir *d = dir_of((uv_handle_t *)s);
  struct chunk *ch =
      buf->base ? (struct chunk *)(buf->base - offsetof(struct chunk, data))
                : NULL;
  if (nread <= 0) {
    free(ch);
    if (nread == 0)
      return;
    if (nread == UV_EOF) {
      dir_stop_reading(d);
      d->eof = 1;
      dir_pump(d);
    } else {
      conn_close(d->conn);
    }
    return;
  }
  /* Small reads are common (ssh packets): give back the unused space. */
  if (nread < READ_SIZE / 2) {
    struct chunk *small = realloc(ch, sizeof *ch + (size_t)nread);
    if (small)
      ch = small;
  }
  ch->next = NULL;
  ch->len = (size_t)nread;
  ch->off = 0;
  ch->due = uv_hrtime() + opt.delay_ns;
  if (d->tail)
    d->tail->next = ch;
  else
    d->head = ch;
  d->tail = ch;
  d->queued += (size_t)nread;
  if (d->queued >= queue_limit())
    dir_stop_reading(d);
  dir_pump(d);
}

static void on_connect(uv_connect_t *req, int status) {
  struct conn *c = req->data;
  if (c->closing)
    return;
  if (status < 0) {
    fprintf(stderr, "wanproxy: #%lu: connect: %s\n", c->id, uv_strerror(status));
    conn_close(c);
    return;
  }
  /* No Nagle on top of the emulated link: the endpoints chose their own. */
  uv_tcp_nodelay(&c->server, 1);
  dir_start_reading(&c->up);
  dir_start_reading(&c->down);
}

static void on_connection(uv_stream_t *server, int status) {
  if (status < 0) {
    fprintf(stderr, "wanproxy: accept: %s\n", uv_strerror(status));
    return;
  }
  struct conn *c = calloc(1, sizeof *c);
  if (!c)
    die("out of memory", 0);
  c->id = next_id++;
  c->started = uv_hrtime();
  uv_tcp_init(loop, &c->client);
  uv_tcp_init(loop, &c->server);
  c->client.data = c->server.data = c;
  dir_init(c, &c->up, &c->client, &c->server, &total_up);
  dir_init(c, &c->down, &c->server, &c->client, &total_down);
  c->open_handles = 4;
  c->next = conns;
  if (conns)
    conns->prev = c;
  conns = c;
  int r = uv_accept(server, (uv_stream_t *)&c->client);
  if (r < 0) {
    fprintf(stderr, "wanproxy: accept: %s\n", uv_strerror(r));
    conn_close(c);
    return;
  }
  uv_tcp_nodelay(&c->client, 1);
  if (opt.verbose)
    fprintf(stderr, "wanproxy: #%lu opened\n", c->id);
  c->creq.data = c;
  r = uv_tcp_connect(&c->creq, &c->server,
                     (const struct sockaddr *)&opt.to_addr, on_connect);
  if (r < 0) {
    fprintf(stderr, "wanproxy: #%lu: connect: %s\n", c->id, uv_strerror(r));
    conn_close(c);
  }
}

/* ----------------------------------------------------------- shutdown */

static void on_signal(uv_signal_t *sig, int signum) {
  uv_close((uv_handle_t *)&listener, NULL);
  uv_close((uv_handle_t *)&sigint, NULL);
  uv_close((uv_handle_t *)&sigterm, NULL);
  while (conns)
    conn_close(conns);
  if (opt.verbose) {
    flow_print("wanproxy: all connections: up", &total_up.flow);
    flow_print(", down", &total_down.flow);
    fputc('\n', stderr);
  }
}

/* ------------------------------------------------------------ options */

static void usage(void) {
  fputs("usage: wanproxy --listen HOST:PORT --to HOST:PORT [--delay-ms MS]\n"
        "                [--conn-rate RATE] [--total-rate RATE] [--queue-ms MS]\n"
        "                [--port-file FILE] [-v]\n"
        "RATE: bytes/s, optional k/M/G (binary) suffix; 0 = no cap.\n",
        stderr);
  exit(2);
}

/* "127.0.0.1:8022" or "[::1]:8022". */
static void parse_addr(const char *s, struct sockaddr_storage *out) {
  char host[64];
  const char *colon = strrchr(s, ':');
  if (!colon || colon == s || (size_t)(colon - s) >= sizeof host)
    usage();
  char *end;
  unsigned long port = strtoul(colon + 1, &end, 10);
  if (*end || end == colon + 1 || port > 65535)
    usage();
  memcpy(host, s, (size_t)(colon - s));
  host[colon - s] = '\0';
  int r;
  if (host[0] == '[') {
    size_t n = strlen(host);
    if (n < 3 || host[n - 1] != ']')
      usage();
    host[n - 1] = '\0';
    r = uv_ip6_addr(host + 1, (int)port, (struct sockaddr_in6 *)out);
  } else {
    r = uv_ip4_addr(host, (int)port, (struct sockaddr_in *)out);
  }
  if (r < 0) {
    fprintf(stderr, "wanproxy: bad address '%s'\n", s);
    exit(2);
  }
}

static double parse_rate(const char *s) {
  char *end;
  double v = strtod(s, &end);
  double mul = 1;
  switch (*end) {
  case 'k': case 'K': mul = 1024.0; end++; break;
  case 'm': case 'M': mul = 1024.0 * 1024; end++; break;
  case 'g': case 'G': mul = 1024.0 * 1024 * 1024; end++; break;
  default: break;
  }
  if (end == s || *end || v < 0) {
    fprintf(stderr, "wanproxy: bad rate '%s'\n", s);
    exit(2);
  }
  return v * mul;
}

static double parse_ms(const char *s) {
  char *end;
  double v = strtod(s, &end);
  if (end == s || *end || v < 0) {
    fprintf(stderr, "wanproxy: bad milliseconds '%s'\n", s);
    exit(2);
  }
  return v;
}

static void parse_args(int argc, char **argv) {
  int have_listen = 0, have_to = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-v") == 0) {
      opt.verbose = 1;
      continue;
    }
    if (i + 1 >= argc)
      usage();
    const char *v = argv[++i];
    if (strcmp(a, "--listen") == 0)
      parse_addr(v, &opt.listen_addr), have_listen = 1;
    else if (strcmp(a, "--to") == 0)
      parse_addr(v, &opt.to_addr), have_to = 1;
    else if (strcmp(a, "--delay-ms") == 0)
      opt.delay_ns = (uint64_t)(parse_ms(v) * 1e6);
    else if (strcmp(a, "--conn-rate") == 0)
      opt.conn_rate = parse_rate(v);
    else if (strcmp(a, "--total-rate") == 0)
      opt.total_rate = parse_rate(v);
    else if (strcmp(a, "--queue-ms") == 0)
      opt.queue_s = parse_ms(v) / 1000;
    else if (strcmp(a, "--port-file") == 0)
      opt.port_file = v;
    else
      usage();
  }
  if (!have_listen || !have_to)
    usage();
}

static void write_port_file(int port) {
  char tmp[4096];
  if (snprintf(tmp, sizeof tmp, "%s.tmp", opt.port_file) >= (int)sizeof tmp)
    die("--port-file name too long", 0);
  FILE *f = fopen(tmp, "w");
  if (!f || fprintf(f, "%d\n", port) < 0 || fclose(f) != 0 ||
      rename(tmp, opt.port_file) != 0) {
    fprintf(stderr, "wanproxy: cannot write %s: %s\n", opt.port_file,
            strerror(errno));
    exit(1);
  }
}

int main(int argc, char **argv) {
  parse_args(argc, argv);
  /* A peer that closes while we write must not kill the relay. */
  signal(SIGPIPE, SIG_IGN);
  loop = uv_default_loop();
  bucket_init(&total_up.bucket, opt.total_rate);
  bucket_init(&total_down.bucket, opt.total_rate);

  int r = uv_tcp_init(loop, &listener);
  if (r == 0)
    r = uv_tcp_bind(&listener, (const struct sockaddr *)&opt.listen_addr, 0);
  if (r == 0)
    r = uv_listen((uv_stream_t *)&listener, 128, on_connection);
  if (r < 0)
    die("listen", r);
  struct sockaddr_storage bound;
  int len = sizeof bound;
  r = uv_tcp_getsockname(&listener, (struct sockaddr *)&bound, &len);
  if (r < 0)
    die("getsockname", r);
  int port = ntohs(bound.ss_family == AF_INET6
                       ? ((struct sockaddr_in6 *)&bound)->sin6_port
                       : ((struct sockaddr_in *)&bound)->sin_port);
  if (opt.port_file)
    write_port_file(port);
  if (opt.verbose)
    fprintf(stderr,
            "wanproxy: port %d, delay %.1f ms, conn-rate %.0f B/s, "
            "total-rate %.0f B/s (0 = no cap), queue limit %zu B\n",
            port, (double)opt.delay_ns / 1e6, opt.conn_rate, opt.total_rate,
            queue_limit());

  uv_signal_init(loop, &sigint);
  uv_signal_init(loop, &sigterm);
  uv_signal_start(&sigint, on_signal, SIGINT);
  uv_signal_start(&sigterm, on_signal, SIGTERM);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  return 0;
}
