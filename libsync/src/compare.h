/*
 * The quick check (compare.c): an index of the destination tree and a
 * verdict on each source entry, so a producer drops entries whose
 * destination twin rsync -a would leave alone (rules: producer.h).
 *
 * Threads: open() runs on the caller's thread, so a destination that
 * cannot be read at all fails lsync_producer_start; cancel() runs on any
 * thread; everything else on the producer's thread, in this order:
 * load (the whole destination), entry (each source entry), source_root
 * (listing sources), finish (held hard links, roots, extraneous), end.
 *
 * Ownership: the compare owns the destination crawl or listing command,
 * the index (an arena of paths and targets, open addressing over blocks
 * of records), the held hard-linked source entries and their path
 * copies.  end() frees all of it but the listing handle, which cancel()
 * may still touch; close() frees the rest.  The counters survive end().
 */
#ifndef LIBSYNC_COMPARE_H
#define LIBSYNC_COMPARE_H

#include <stdatomic.h>

#include "internal.h"

typedef struct lsync__compare lsync__compare;

/* What lsync__compare_entry says about a source entry. */
enum {
  LSYNC__CMP_DROP = 0, /* unchanged: not for the chunker */
  LSYNC__CMP_SEND = 1, /* changed, or new: chunk it now */
  LSYNC__CMP_HELD = 2  /* hard-linked: kept until finish() decides */
};

/* Open the destination of o (dest_root or dest_list_argv) and the source
 * root (o->root, for its attributes and for reading links).  A missing
 * destination root (ENOENT, ENOTDIR) is an empty destination; other
 * errors, and a listing command that cannot be started, fail with a
 * message on ctx.  ctx is the producer thread's context: it receives
 * every later message, and the destination's log lines prefixed with
 * "destination: ". */
int lsync__compare_open(lsync_ctx *ctx, const lsync_producer_opts *o,
                        lsync__compare **out);

/* Read the whole destination into the index, calling tick(ud) now and
 * then (for stats).  0, or negative with the message on the context:
 * LSYNC_ECANCELED once *stop is set, LSYNC_EIO for a failed listing
 * command, LSYNC_ENOMEM. */
int lsync__compare_load(lsync__compare *c, const atomic_int *stop,
                        void (*tick)(void *ud), void *ud);

/* The verdict on one source entry (LSYNC__CMP_*), or negative
 * (LSYNC_ENOMEM, LSYNC_ERANGE) with the message on the context. */
int lsync__compare_entry(lsync__compare *c, const lsync_entry *e);

/* A listing source's root record (NULL: it printed none, so the roots
 * count as different).  Local sources need not call this. */
void lsync__compare_source_root(lsync__compare *c, const lsync_entry *root);

/* The source is exhausted: decide each held hard-link group and pass
 * every entry of a changed one to send(ud, e); settle root_changed and
 * extraneous.  0, LSYNC_ENOMEM, or the first negative send() result. */
int lsync__compare_finish(lsync__compare *c,
                          int (*send)(void *ud, const lsync_entry *e),
                          void *ud);

void lsync__compare_get_stats(const lsync__compare *c,
                              lsync_compare_stats *out);

/* Make a running or later load() end soon (kills a listing command).
 * Any thread; load() still needs *stop set to stop a crawl. */
void lsync__compare_cancel(lsync__compare *c);

/* Free the index and the crawl; the producer thread, when it ends. */
void lsync__compare_end(lsync__compare *c);

/* Free everything; the thread must have ended (or never started). */
void lsync__compare_close(lsync__compare *c);

#endif
