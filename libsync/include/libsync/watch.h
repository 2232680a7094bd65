/*
 * Watches: what changed in a local tree, for a sync of only that.
 *
 * A watch follows every directory under a root with Linux inotify (one
 * watch descriptor per directory, added as directories appear) and keeps
 * a de-duplicated set of pending changes: paths relative to the root,
 * without a leading "./", made of any bytes but NUL (newlines included;
 * each change also carries its length).  When the set goes from empty to
 * non-empty, on_event(ud) runs on the loop once, so the caller can arm a
 * delay; lsync_watch_take() then hands the set over and empties it, and
 * the next change calls on_event again.  The policy (how long to wait,
 * how to sync) is the caller's; the watch is only the mechanism.
 *
 * What take() hands over describes how the destination, in step with the
 * source at the previous take (or at open), is brought up to date:
 *
 *   - first the MOVED changes, in the order they happened: rename `from`
 *     to `path` at the destination (is_dir: a directory, its subtree goes
 *     with it).  Only a rename with plain ends is reported so: nothing
 *     pending at `from`, at `path` or below it, no new directory above
 *     either, and nothing below a directory that the filter judges
 *     otherwise at its new place (the subtree is read to check when there
 *     is a filter).  Any other rename becomes REMOVED `from` + CHANGED
 *     (TREE for a directory) `path`;
 *   - then the others, in path order, each bringing one path up to date
 *     from the source: CHANGED the entry itself (a file's content, a
 *     symlink, a directory's own attributes: its entries come on their
 *     own; the root's own attributes come as "."), TREE the whole
 *     subtree (a directory created or moved in: its contents are not
 *     listed), REMOVED delete it at the destination (with what is below
 *     it).  Paths below a TREE or REMOVED one are left
 *     out, so one path is listed at most once among these.
 *
 * Symlinks are reported as entries and never followed.  Paths the filter
 * excludes are not reported, and excluded directories are not watched.
 *
 * Overflow: when the kernel dropped events (its queue was full), a
 * directory could not be watched (the max_user_watches limit, out of
 * memory or descriptors), or the root itself was deleted, moved or
 * replaced, the set cannot be trusted: it is emptied, take() reports
 * overflow (the caller should do a full pass) and the watch walks the
 * tree again, from the root's path, adding what it can.  A watch still
 * short of directories (or of its root) retries at each take() and
 * reports overflow again until it covers the tree.  Directories that
 * cannot be read for their permissions are logged and left out, as rsync
 * would leave them.
 *
 * Ownership: the watch copies root (and opens it again by that path when
 * it walks); the filter is borrowed and must live until
 * lsync_watch_close() returns.  Lifecycle: open -> take ... -> close,
 * as libuv handles are (see loop.h): close stops the watch at once
 * (on_event never runs after it) and the memory goes when the loop has
 * run.  Directory walks (at open, and when a directory appears) run on
 * the loop's thread, so a large tree moved in holds the loop meanwhile.
 */
#ifndef LIBSYNC_WATCH_H
#define LIBSYNC_WATCH_H

#include <stddef.h>

#include "context.h"
#include "filter.h"

#include "api.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lsync_watch lsync_watch;

typedef enum lsync_watch_kind {
  LSYNC_WATCH_CHANGED = 0, /* created, written or its attributes changed */
  LSYNC_WATCH_REMOVED = 1, /* deleted or moved out of the tree */
  LSYNC_WATCH_TREE = 2,    /* a directory created or moved in: its subtree */
  LSYNC_WATCH_MOVED = 3    /* renamed inside the tree, from `from` */
} lsync_watch_kind;

/* "changed", "removed", "tree", "moved" ("unknown" otherwise). */
LSYNC_API const char *lsync_watch_kind_name(lsync_watch_kind k);

typedef struct lsync_watch_change {
  lsync_watch_kind kind;
  const char *path; /* NUL-terminated, path_len bytes */
  size_t path_len;
  const char *from; /* MOVED only: the old path; else NULL */
  size_t from_len;
  int is_dir; /* a directory (always for TREE) */
} lsync_watch_change;

/* One change; the strings are valid during the call only.  It must not
 * call back into the watch. */
typedef void (*lsync_watch_cb)(void *ud, const lsync_watch_change *c);

/* Runs on the loop when changes (or an overflow) become pending after the
 * last take, once until the next take. */
typedef void (*lsync_watch_event_cb)(void *ud);

/* Watch the tree at root (a symlink as root is followed, none below).
 * filter may be NULL.  LSYNC_ENOENT, LSYNC_ENOTDIR, LSYNC_EACCES for the
 * root; LSYNC_EIO or LSYNC_ESYS when inotify cannot be had (no watches or
 * instances left); message on ctx.  Directories below the root that
 * cannot be watched are logged, or reported as overflow (see above). */
LSYNC_API int lsync_watch_open(lsync_ctx *ctx, const char *root,
                               const lsync_filter *filter,
                               lsync_watch_event_cb on_event, void *ud,
                               lsync_watch **out);

/* Hand each pending change to cb(ud, change), in the order described
 * above, and empty the set.  *overflow (may be NULL) is set to 1 when the
 * set was lost since the last take (no changes are then given), else 0.
 * Returns the number of changes given. */
LSYNC_API size_t lsync_watch_take(lsync_watch *w, lsync_watch_cb cb, void *ud,
                                  int *overflow);

/* Directories watched now (the root included). */
LSYNC_API size_t lsync_watch_dirs(const lsync_watch *w);

/* Stop watching; the memory goes when the loop has run.  NULL is a no-op. */
LSYNC_API void lsync_watch_close(lsync_watch *w);

#ifdef __cplusplus
}
#endif
#endif
