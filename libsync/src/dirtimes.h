/*
 * Directory times of a listed source, set on a local destination.
 *
 * A pull's last step used to be an rsync run over the link only to put
 * back the modification times of directories that the chunks wrote into
 * (every name created in a directory bumps its time, and chunks run in
 * any order).  The listing already carried those times, so a producer
 * that keeps them can set them here with utimensat: no round trip.
 *
 * The producer's thread adds; after it has ended the table is sealed
 * (sorted) and applied on the loop thread.  Paths are copied.
 */
#ifndef LIBSYNC_DIRTIMES_H
#define LIBSYNC_DIRTIMES_H

#include "internal.h"

typedef struct lsync__dirtimes lsync__dirtimes;

lsync__dirtimes *lsync__dirtimes_new(void);

/* Record a directory entry's time (path "" is the root, whose mode and
 * owner are kept too).  0 or LSYNC_ENOMEM. */
int lsync__dirtimes_add(lsync__dirtimes *d, const lsync_entry *e);

/* Set the time of each directory named in list (len bytes of
 * NUL-terminated paths relative to dest_root; "." is the root) to the
 * recorded one.  Nothing is followed through a symlink.  Fails without
 * going further (message on ctx) when a name has no recorded time or
 * cannot be set, or when the root's permission bits (or its owner or
 * group, when asked to check them) differ from the source's: only rsync
 * then knows what to do.  *nset counts the directories set. */
int lsync__dirtimes_apply(lsync_ctx *ctx, lsync__dirtimes *d,
                          const char *dest_root, const char *list, size_t len,
                          int check_uid, int check_gid, uint64_t *nset);

void lsync__dirtimes_free(lsync__dirtimes *d);

#endif
