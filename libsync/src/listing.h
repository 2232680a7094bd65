/*
 * Listing commands: a child process (typically ssh running GNU find) whose
 * stdout carries one record per entry (format: producer.h), read like a
 * scan (listing.c).
 *
 * The interface mirrors lsync_scan's so the producer's thread runs one loop
 * for both sources: open on the caller's thread (so a command that cannot
 * be started fails synchronously), then next() and get_stats() on one
 * consumer thread.  cancel() may be called from any thread while next()
 * runs; close() only after the consumer is done with the listing.
 *
 * Ownership: the listing owns the child process and its pipes; the entry
 * returned by next() and its path are valid until the next call.  The
 * filter is borrowed and must outlive the listing.
 */
#ifndef LIBSYNC_LISTING_H
#define LIBSYNC_LISTING_H

#include "internal.h"

typedef struct lsync__listing lsync__listing;

/* Start argv (argv[0] looked up in PATH) with stdin from /dev/null, stdout
 * to a pipe and stderr to an unlinked temporary file.  ctx receives every
 * later message and log line too, so it must be the consumer thread's. */
int lsync__listing_open(lsync_ctx *ctx, const char *const *argv,
                        const lsync_filter *filter, lsync__listing **out);

/* 1 and *out set: one more entry that the filter keeps.  0: the command
 * exited with status 0 after its last record.  Negative: LSYNC_EIO for a
 * failed command or a malformed record, LSYNC_ECANCELED after cancel();
 * message on the context.  The child has been reaped by the time next()
 * returns anything but 1, and every later call returns the same. */
int lsync__listing_next(lsync__listing *l, const lsync_entry **out);

/* Entries yielded, directories among them, their bytes, and entries the
 * filter dropped (a directory counts once, not with its subtree). */
void lsync__listing_get_stats(const lsync__listing *l, lsync_scan_stats *out);

/* 1 and *out set (path "", no link target) if a record with an empty path
 * (the listed directory itself, find -mindepth 0) has been read, else 0.
 * The last such record wins.  Consumer thread. */
int lsync__listing_root(const lsync__listing *l, lsync_entry *out);

/* Make a running or later next() return LSYNC_ECANCELED soon, and kill
 * the child (SIGKILL).  Any thread. */
void lsync__listing_cancel(lsync__listing *l);

/* Kill and reap the child if next() has not, close everything, free. */
void lsync__listing_close(lsync__listing *l);

#endif
