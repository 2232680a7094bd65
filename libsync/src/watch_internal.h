/*
 * Internals of watches (watch.h): the intrusive hash table that indexes
 * watched directories and pending paths; the set of pending changes
 * (watch_set.c), which the inotify side (watch.c) feeds; the watch itself
 * and its tree of watched directories (watch_tree.c).
 *
 * The pending set keeps two things.  State records, one per path: the
 * path's kind (CHANGED, REMOVED, TREE) and how many records with a kind
 * lie below it, so "is anything pending at or below this directory" is
 * one lookup; a directory with records below but no kind of its own is
 * kept as a bare counter.  And the move log: plain renames in the order
 * they happened (see watch.h for what makes one plain).
 */
#ifndef LIBSYNC_WATCH_INTERNAL_H
#define LIBSYNC_WATCH_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <sys/types.h>
#include <uv.h>

#include "libsync/watch.h"

/* ---- hash table --------------------------------------------------------- */

struct lsync__hlink {
  struct lsync__hlink *next;
  uint64_t h;
};

struct lsync__htab {
  struct lsync__hlink **b; /* nb buckets, a power of two */
  size_t nb, n;
};

#define LSYNC__HASH_INIT UINT64_C(0xcbf29ce484222325)

/* FNV-1a over n bytes, continuing from h (LSYNC__HASH_INIT to start), so
 * the hashes of a path's prefixes come out of one pass over it. */
uint64_t lsync__hash(uint64_t h, const void *p, size_t n);

/* Insert l (l->h set); -1 when the first buckets cannot be allocated (a
 * table that cannot grow stays correct, only slower). */
int lsync__htab_put(struct lsync__htab *t, struct lsync__hlink *l);
void lsync__htab_del(struct lsync__htab *t, struct lsync__hlink *l);
/* The chain where entries hashing to h live (compare ->h, then the key). */
struct lsync__hlink *lsync__htab_chain(const struct lsync__htab *t, uint64_t h);
void lsync__htab_free(struct lsync__htab *t);

#define LSYNC__CONTAINER(ptr, type, member)                                    \
  ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* ---- pending changes ---------------------------------------------------- */

struct lsync__wmove;

struct lsync__wset {
  struct lsync__htab recs;
  size_t nkind; /* records with a kind */
  struct lsync__wmove *log;
  size_t nlog, caplog;
};

/* Functions that allocate return -1 when out of memory: the caller then
 * treats the set as lost (an overflow). */

/* Record kind (CHANGED, REMOVED or TREE) for path.  A later kind replaces
 * an earlier one, except that CHANGED leaves a TREE alone; nothing is
 * recorded below a pending TREE, which covers it. */
int lsync__wset_note(struct lsync__wset *s, const char *path, size_t len,
                     lsync_watch_kind kind, int is_dir);

/* 1 if path itself has a kind pending. */
int lsync__wset_has(const struct lsync__wset *s, const char *path, size_t len);

/* 1 if anything is pending at path or below it. */
int lsync__wset_busy(const struct lsync__wset *s, const char *path, size_t len);

/* 1 if a directory above path is a pending TREE. */
int lsync__wset_in_tree(const struct lsync__wset *s, const char *path,
                        size_t len);

/* Records below from/ move below to/ (a directory was renamed). */
int lsync__wset_rekey(struct lsync__wset *s, const char *from, size_t flen,
                      const char *to, size_t tlen);

/* Append a plain rename to the log (a rename of the last one's target
 * extends it; one back to its start cancels it). */
int lsync__wset_move(struct lsync__wset *s, const char *from, size_t flen,
                     const char *to, size_t tlen, int is_dir);

/* Anything pending. */
int lsync__wset_pending(const struct lsync__wset *s);

/* Hand everything to cb in watch.h's order and empty the set; returns the
 * number of changes.  On memory failure the records go out unsorted. */
size_t lsync__wset_take(struct lsync__wset *s, lsync_watch_cb cb, void *ud);

void lsync__wset_clear(struct lsync__wset *s);

/* ---- the watch (watch.c) and its directory tree (watch_tree.c) ------ */

/* A watched directory. */
struct wnode {
  struct lsync__hlink by_wd, by_name;
  int wd;
  struct wnode *parent, *kids, *next, *prev; /* siblings */
  dev_t dev;
  ino_t ino;
  char *name;
  size_t nlen;
};

struct pathbuf {
  char *p;
  size_t cap;
};

struct lsync_watch {
  lsync_ctx *ctx;
  const lsync_filter *filter;
  lsync_watch_event_cb on_event;
  void *ud;
  char *root;
  int ifd;
  int rootfd;   /* open during an operation only: see lsync__watch_rootfd */
  int use_proc; /* /proc/self/fd is there */
  uv_poll_t poll;
  uv_timer_t kick;
  int handles, closing;
  struct wnode *top; /* the root's node; NULL when its watch is gone */
  struct lsync__htab wds, names;
  struct lsync__wset set;
  int overflow;   /* the set is lost since the last take */
  int incomplete; /* a directory could not be watched: re-walk at take */
  int rewalk;     /* the queue overflowed: re-walk after the batch */
  int armed;      /* on_event ran since the last take */
  char *buf;      /* the batch being read */
  size_t cap, carry;
  /* Paths: ev1 and ev2 for the event being applied, the others for
   * walks and verdict checks, so a walk an event starts leaves the
   * event's paths alone. */
  struct pathbuf ev1, ev2, walk1, walk2, old;
  struct wnode **stack; /* directories the walk has still to read */
  size_t nstack, capstack;
  _Alignas(8) char dents[16 * 1024];
};

/* The set is lost (an overflow for the caller); nothing more is recorded
 * until the next take. */
void lsync__watch_lost(lsync_watch *w);
/* Out of memory: the set is lost and the tree is walked again at take. */
void lsync__watch_oom(lsync_watch *w);
int lsync__watch_excluded(const lsync_watch *w, const char *path, size_t len,
                          int is_dir);

/* The node of watch descriptor wd, or of parent/name; NULL if none. */
struct wnode *lsync__wnode_at(const lsync_watch *w, int wd);
struct wnode *lsync__wnode_kid(const lsync_watch *w, const struct wnode *parent,
                               const char *name, size_t nlen);
/* Forget n and everything below it; rm: remove their watches too. */
void lsync__wnode_drop(lsync_watch *w, struct wnode *n, int rm);
/* Forget every node (their watches stay). */
void lsync__watch_forget(lsync_watch *w);
/* 1 if n is top or lies below it (n may be NULL). */
int lsync__wnode_within(const struct wnode *n, const struct wnode *top);
/* Rename node n to parent/name; -1 when it cannot be (parent lies below
 * n: the tree is out of date) or memory ran out. */
int lsync__wnode_move(lsync_watch *w, struct wnode *n, struct wnode *parent,
                      const char *name, size_t nlen);
/* n's path from the root ("" for the root), followed by "/name" when
 * name is given, in pb; NULL when out of memory. */
const char *lsync__wnode_path(struct pathbuf *pb, const struct wnode *n,
                              const char *name, size_t nlen, size_t *len);

/* A directory appeared at parent/name (path): watch it and what it
 * holds. */
void lsync__watch_add_dir(lsync_watch *w, struct wnode *parent,
                          const char *name, size_t nlen, const char *path,
                          size_t len);
/* The root, opened from its path if it is not open (-1 with errno when
 * it cannot be, or is no longer the directory watched: the root is then
 * lost); closed again by lsync__watch_rootfd_close when an operation (a
 * batch, an open, a take) ends. */
int lsync__watch_rootfd(lsync_watch *w);
void lsync__watch_rootfd_close(lsync_watch *w);
/* The root was deleted, moved, replaced or unmounted: its path may name
 * another directory now, or none; a re-walk at take opens it again. */
void lsync__watch_root_lost(lsync_watch *w);
/* Open the root from its path and watch it and everything below it:
 * 0 or -errno. */
int lsync__watch_root(lsync_watch *w);
/* Start over after lost events (see watch_tree.c). */
void lsync__watch_rewalk(lsync_watch *w);
/* Under a filter: does every entry below the renamed directory k (now at
 * a path of tlen bytes, before at from) keep its verdict? */
int lsync__watch_same_verdicts(lsync_watch *w, struct wnode *k,
                               const char *from, size_t flen, size_t tlen);

#endif
