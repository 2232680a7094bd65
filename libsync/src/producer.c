/*
 * Chunk producers: a background thread reads entries (a crawl, or a
 * listing command via listing.c), feeds the chunker, and hands chunks to
 * the loop through a bounded queue.  With a destination, the thread first
 * reads it into compare.c's index and only feeds the chunker what the
 * quick check does not drop; hard-linked entries it holds come last.
 *
 * Threads and ownership.  The thread owns a private context (tctx), the
 * chunker and the source; they are created on the caller's thread in
 * lsync_producer_start, so bad options and a missing root fail there, and
 * the thread only runs them.  Everything the two sides share sits under
 * `mu`: the chunk queue, the log lines the thread produced (its context's
 * log callback queues them; the loop re-logs them on the caller's
 * context), the stats snapshot and the final status.  A uv_async_t wakes
 * the loop for each of these; libuv coalesces wake-ups, so the async
 * callback always looks at the whole state instead of counting sends.
 *
 * The async handle is the first member of the producer, which is freed in
 * its close callback: lsync_producer_free may then run from inside
 * on_ready (or from a log callback) and the async callback still reads
 * valid memory when the owner's callback returns.  It keeps the loop alive
 * only until the loop has seen the thread finish.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "compare.h"
#include "dirtimes.h"
#include "listing.h"

#define DEFAULT_QUEUED 4
#define MAX_QUEUED 65536
#define MAX_LOG_LINES 1000
#define STATS_EVERY 256

struct log_line {
  struct log_line *next;
  lsync_log_level level;
  char msg[];
};

struct lsync_producer {
  uv_async_t async; /* first: the close callback frees the producer */
  lsync_ctx *ctx;   /* the caller's, loop thread only */
  lsync_producer_ready_cb on_ready;
  void *ud;

  /* The thread's; set up before it starts, torn down after it ends. */
  lsync_ctx *tctx;
  lsync_chunker *ch;
  lsync_scan *scan;     /* a crawl, or ... */
  lsync__listing *list; /* ... a listing command */
  lsync__compare *cmp;  /* the quick check, or NULL */
  lsync__dirtimes *dtimes; /* keep_dir_times: the thread's until it ends */
  lsync_scan_stats tstats;
  pthread_t thread;
  atomic_int stop;

  pthread_mutex_t mu; /* everything down to `status` */
  pthread_cond_t cv;  /* the queue has room, or stop */
  lsync_chunk **q;
  unsigned qcap, qhead, qlen;
  struct log_line *log_head, *log_tail;
  unsigned nlog, log_dropped;
  lsync_scan_stats stats;
  lsync_compare_stats cstats;
  int finished;
  int status;
  char errmsg[LSYNC__ERRMSG_MAX];

  /* Loop thread only. */
  int end_reported; /* on_ready ran once the producer was done */
  int unrefed;
  int closing;
};

/* ---- the thread -------------------------------------------------------- */

static void publish_stats(lsync_producer *p) {
  lsync_compare_stats cs = {0};
  if (p->scan)
    lsync_scan_get_stats(p->scan, &p->tstats);
  else
    lsync__listing_get_stats(p->list, &p->tstats);
  if (p->cmp)
    lsync__compare_get_stats(p->cmp, &cs);
  pthread_mutex_lock(&p->mu);
  p->stats = p->tstats;
  p->cstats = cs;
  pthread_mutex_unlock(&p->mu);
}

static void tick(void *ud) {
  publish_stats(ud);
}

/* The chunker's callback: queue the chunk, waiting for room. */
static int on_chunk(void *ud, lsync_chunk *c) {
  lsync_producer *p = ud;
  publish_stats(p);
  pthread_mutex_lock(&p->mu);
  while (p->qlen == p->qcap && !atomic_load(&p->stop))
    pthread_cond_wait(&p->cv, &p->mu);
  int stop = atomic_load(&p->stop);
  if (!stop) {
    p->q[(p->qhead + p->qlen) % p->qcap] = c;
    p->qlen++;
  }
  pthread_mutex_unlock(&p->mu);
  if (stop) {
    lsync_chunk_free(c);
    return 1;
  }
  uv_async_send(&p->async);
  return 0;
}

/* The private context's log callback, on the thread (and on the caller's
 * thread during start). */
static void queue_log(void *ud, lsync_log_level level, const char *msg) {
  lsync_producer *p = ud;
  size_t len = strlen(msg);
  struct log_line *l = malloc(sizeof *l + len + 1);
  pthread_mutex_lock(&p->mu);
  if (l && p->nlog < MAX_LOG_LINES) {
    l->next = NULL;
    l->level = level;
    memcpy(l->msg, msg, len + 1);
    *(p->log_tail ? &p->log_tail->next : &p->log_head) = l;
    p->log_tail = l;
    p->nlog++;
    l = NULL;
  } else {
    p->log_dropped++;
  }
  pthread_mutex_unlock(&p->mu);
  free(l);
  uv_async_send(&p->async);
}

static int source_next(lsync_producer *p, const lsync_entry **e) {
  return p->scan ? lsync_scan_next(p->scan, e)
                 : lsync__listing_next(p->list, e);
}

static int send_entry(void *ud, const lsync_entry *e) {
  lsync_producer *p = ud;
  return lsync_chunker_add(p->ch, e);
}

/* Every source entry to the chunker, or to the quick check first. */
static int read_source(lsync_producer *p) {
  const lsync_entry *e;
  unsigned n = 0;
  int rc;
  while ((rc = source_next(p, &e)) > 0) {
    if (atomic_load(&p->stop))
      return LSYNC_ECANCELED;
    if (p->dtimes && e->type == LSYNC_T_DIR &&
        lsync__dirtimes_add(p->dtimes, e) < 0)
      return lsync__fail(p->tctx, LSYNC_ENOMEM, "out of memory");
    int v = p->cmp ? lsync__compare_entry(p->cmp, e) : LSYNC__CMP_SEND;
    if (v < 0)
      return v;
    if (v == LSYNC__CMP_SEND && (rc = lsync_chunker_add(p->ch, e)) < 0)
      return rc;
    if (++n % STATS_EVERY == 0)
      publish_stats(p);
  }
  return rc;
}

/* The quick check's end: the roots, then the held hard links. */
static int finish_compare(lsync_producer *p) {
  if (p->list) {
    lsync_entry root;
    int have = lsync__listing_root(p->list, &root);
    lsync__compare_source_root(p->cmp, have ? &root : NULL);
  }
  return lsync__compare_finish(p->cmp, send_entry, p);
}

/* The listing's root record, for the directory times. */
static int keep_root_time(lsync_producer *p) {
  lsync_entry root;
  if (!p->dtimes || !lsync__listing_root(p->list, &root))
    return 0;
  return lsync__dirtimes_add(p->dtimes, &root) < 0
             ? lsync__fail(p->tctx, LSYNC_ENOMEM, "out of memory")
             : 0;
}

static void *producer_main(void *arg) {
  lsync_producer *p = arg;
  int rc = p->cmp ? lsync__compare_load(p->cmp, &p->stop, tick, p) : 0;
  if (rc == 0)
    rc = read_source(p);
  if (rc == 0)
    rc = keep_root_time(p);
  if (rc == 0 && p->cmp)
    rc = finish_compare(p);
  if (rc == 0)
    rc = lsync_chunker_finish(p->ch);
  publish_stats(p);
  /* The crawls' threads, the index and the chunker's tables can go now;
   * the owner may keep the producer until the last chunk is
   * transferred. */
  lsync_chunker_free(p->ch);
  p->ch = NULL;
  lsync_scan_close(p->scan);
  p->scan = NULL;
  lsync__compare_end(p->cmp);
  pthread_mutex_lock(&p->mu);
  p->finished = 1;
  p->status = rc;
  if (rc < 0)
    memcpy(p->errmsg, lsync_ctx_errmsg(p->tctx), sizeof p->errmsg);
  pthread_mutex_unlock(&p->mu);
  uv_async_send(&p->async);
  return NULL;
}

/* ---- the loop side ----------------------------------------------------- */

static void forward_logs(lsync_producer *p) {
  pthread_mutex_lock(&p->mu);
  struct log_line *l = p->log_head;
  unsigned dropped = p->log_dropped;
  p->log_head = p->log_tail = NULL;
  p->nlog = p->log_dropped = 0;
  pthread_mutex_unlock(&p->mu);
  while (l) {
    struct log_line *next = l->next;
    /* A log callback that frees the producer ends the forwarding. */
    if (!p->closing)
      lsync__log(p->ctx, l->level, "%s", l->msg);
    free(l);
    l = next;
  }
  if (dropped && !p->closing)
    lsync__log(p->ctx, LSYNC_LOG_WARN,
               "chunk producer: %u log lines dropped (the loop fell behind)",
               dropped);
}

static void on_async(uv_async_t *h) {
  lsync_producer *p = h->data;
  forward_logs(p);
  if (p->closing)
    return;
  pthread_mutex_lock(&p->mu);
  unsigned qlen = p->qlen;
  int finished = p->finished;
  pthread_mutex_unlock(&p->mu);
  if (finished && !p->unrefed) {
    uv_unref((uv_handle_t *)&p->async);
    p->unrefed = 1;
  }
  int end = finished && qlen == 0;
  if (qlen == 0 && (!end || p->end_reported))
    return;
  if (end)
    p->end_reported = 1;
  p->on_ready(p->ud, p);
}

static void on_close(uv_handle_t *h) {
  free(h->data);
}

/* Everything but the async handle and the struct itself; the thread must
 * have ended (or never started). */
static void release(lsync_producer *p) {
  lsync__compare_close(p->cmp);
  lsync__dirtimes_free(p->dtimes);
  lsync__listing_close(p->list);
  lsync_scan_close(p->scan);
  lsync_chunker_free(p->ch);
  for (unsigned i = 0; i < p->qlen; i++)
    lsync_chunk_free(p->q[(p->qhead + i) % p->qcap]);
  free(p->q);
  while (p->log_head) {
    struct log_line *l = p->log_head;
    p->log_head = l->next;
    free(l);
  }
  lsync_ctx_free(p->tctx);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->cv);
}

/* ---- the interface ----------------------------------------------------- */

void lsync_producer_opts_init(lsync_producer_opts *o) {
  memset(o, 0, sizeof *o);
  lsync_scan_opts_init(&o->scan);
  o->max_queued = DEFAULT_QUEUED;
}

static int check_opts(lsync_ctx *ctx, const lsync_producer_opts *o) {
  if (!o || !o->on_ready)
    return lsync__fail(ctx, LSYNC_EINVAL,
                       "chunk producer: options and on_ready needed");
  if (!o->root == !o->list_argv)
    return lsync__fail(ctx, LSYNC_EINVAL,
                       "chunk producer: give a root or a listing command, "
                       "not both or neither");
  if (o->dest_root && o->dest_list_argv)
    return lsync__fail(ctx, LSYNC_EINVAL,
                       "chunk producer: give a destination root or a "
                       "destination listing command, not both");
  if (o->max_queued > MAX_QUEUED)
    return lsync__fail(ctx, LSYNC_EINVAL,
                       "chunk producer: max_queued must be at most %d, not %u",
                       MAX_QUEUED, o->max_queued);
  return 0;
}

/* The thread's context, chunker and source, made here so that their
 * errors are the caller's.  Messages land on tctx; the caller copies. */
static int open_source(lsync_producer *p, const lsync_producer_opts *o) {
  int rc = lsync_chunker_new(p->tctx, &o->chunk, on_chunk, p, &p->ch);
  if (rc < 0)
    return rc;
  lsync_scan_opts sopts = o->scan;
  sopts.on_error = NULL; /* counted in the stats and logged by the scan */
  sopts.on_error_ud = NULL;
  if (o->list_argv)
    rc = lsync__listing_open(p->tctx, o->list_argv, sopts.filter, &p->list);
  else if (o->chunk.mode == LSYNC_CHUNK_LIMITS)
    rc = lsync_scan_open(p->tctx, o->root, &sopts, &p->scan);
  else
    rc = lsync__scan_open_collecting(p->tctx, o->root, &sopts, &p->scan);
  if (rc == 0 && o->keep_dir_times && o->list_argv &&
      !(p->dtimes = lsync__dirtimes_new()))
    rc = lsync__fail(p->tctx, LSYNC_ENOMEM, "out of memory");
  if (rc == 0 && (o->dest_root || o->dest_list_argv)) {
    rc = lsync__compare_open(p->tctx, o, &p->cmp);
    p->cstats.enabled = rc == 0; /* no thread yet: no lock */
  }
  return rc;
}

/* The thread blocks every signal, so the host's handlers run on its own
 * threads and the thread's system calls are not interrupted. */
static int start_thread(lsync_producer *p) {
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int rc = pthread_create(&p->thread, NULL, producer_main, p);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return rc;
}

int lsync_producer_start(lsync_ctx *ctx, const lsync_producer_opts *o,
                         lsync_producer **out) {
  *out = NULL;
  int rc = check_opts(ctx, o);
  if (rc < 0)
    return rc;
  uv_loop_t *loop = lsync__loop(ctx);
  if (!loop)
    return LSYNC_ENOMEM;
  lsync_producer *p = calloc(1, sizeof *p);
  unsigned qcap = o->max_queued ? o->max_queued : DEFAULT_QUEUED;
  if (!p || !(p->q = calloc(qcap, sizeof *p->q)) || lsync_ctx_new(&p->tctx)) {
    if (p)
      free(p->q);
    free(p);
    return lsync__fail(ctx, LSYNC_ENOMEM, "chunk producer: out of memory");
  }
  p->ctx = ctx;
  p->on_ready = o->on_ready;
  p->ud = o->ud;
  p->qcap = qcap;
  atomic_init(&p->stop, 0);
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cv, NULL);
  if ((rc = uv_async_init(loop, &p->async, on_async)) < 0) {
    release(p);
    free(p);
    return lsync__fail(ctx, LSYNC_ESYS, "chunk producer: %s", uv_strerror(rc));
  }
  p->async.data = p;
  /* After the async handle: the log callback wakes the loop with it. */
  if (ctx->log_cb)
    lsync_ctx_set_log(p->tctx, queue_log, p, ctx->log_max);
  if ((rc = open_source(p, o)) < 0) {
    lsync__fail(ctx, rc, "%s", lsync_ctx_errmsg(p->tctx));
  } else if ((rc = start_thread(p)) != 0) {
    rc = lsync__fail_errno(ctx, rc, "chunk producer: cannot start a thread");
  }
  if (rc < 0) {
    /* Nothing ran: log lines queued by a failed open are dropped with
     * the producer, and on_ready never runs. */
    release(p);
    p->closing = 1;
    uv_close((uv_handle_t *)&p->async, on_close);
    return rc;
  }
  *out = p;
  return 0;
}

int lsync_producer_take(lsync_producer *p, lsync_chunk **out) {
  *out = NULL;
  pthread_mutex_lock(&p->mu);
  if (p->qlen == 0) {
    pthread_mutex_unlock(&p->mu);
    return 0;
  }
  *out = p->q[p->qhead];
  p->qhead = (p->qhead + 1) % p->qcap;
  p->qlen--;
  int end = p->finished && p->qlen == 0;
  pthread_cond_signal(&p->cv);
  pthread_mutex_unlock(&p->mu);
  /* The last chunk of a finished producer: one more on_ready tells the
   * owner, even if it took the chunks outside on_ready. */
  if (end && !p->end_reported)
    uv_async_send(&p->async);
  return 1;
}

int lsync_producer_done(lsync_producer *p, int *status) {
  pthread_mutex_lock(&p->mu);
  int done = p->finished && p->qlen == 0;
  if (done && status)
    *status = p->status;
  pthread_mutex_unlock(&p->mu);
  return done;
}

const char *lsync_producer_errmsg(const lsync_producer *p) {
  lsync_producer *mp = (lsync_producer *)p; /* the lock, not the data */
  pthread_mutex_lock(&mp->mu);
  const char *msg = mp->finished ? mp->errmsg : "";
  pthread_mutex_unlock(&mp->mu);
  return msg;
}

void lsync_producer_stats(lsync_producer *p, lsync_scan_stats *out) {
  pthread_mutex_lock(&p->mu);
  *out = p->stats;
  pthread_mutex_unlock(&p->mu);
}

void lsync_producer_compare_stats(lsync_producer *p, lsync_compare_stats *out) {
  pthread_mutex_lock(&p->mu);
  *out = p->cstats;
  pthread_mutex_unlock(&p->mu);
}

int lsync_producer_set_dir_times(lsync_producer *p, const char *dest_root,
                                 const char *list, size_t len, int check_uid,
                                 int check_gid, uint64_t *nset) {
  uint64_t n = 0;
  pthread_mutex_lock(&p->mu);
  int finished = p->finished, status = p->status;
  pthread_mutex_unlock(&p->mu);
  int rc;
  if (!p->dtimes)
    rc = lsync__fail(p->ctx, LSYNC_EINVAL,
                     "directory times: not kept (a listing with "
                     "keep_dir_times only)");
  else if (!finished || status != 0)
    rc = lsync__fail(p->ctx, LSYNC_EBUSY,
                     "directory times: the listing has not ended well");
  else
    rc = lsync__dirtimes_apply(p->ctx, p->dtimes, dest_root, list, len,
                               check_uid, check_gid, &n);
  if (nset)
    *nset = n;
  return rc;
}

void lsync_producer_free(lsync_producer *p) {
  if (!p || p->closing)
    return;
  atomic_store(&p->stop, 1);
  pthread_mutex_lock(&p->mu);
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
  if (p->list)
    lsync__listing_cancel(p->list);
  if (p->cmp)
    lsync__compare_cancel(p->cmp);
  pthread_join(p->thread, NULL);
  release(p);
  p->closing = 1;
  uv_close((uv_handle_t *)&p->async, on_close);
}
