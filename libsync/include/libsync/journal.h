/*
 * The journal: a crash-safe record of runs and their chunks, so that a
 * run stopped at any moment (kill -9 included) resumes exactly where it
 * stopped.
 *
 * One SQLite database (WAL mode) per state directory.  The state
 * directory is $SYNCPLAN_STATE_DIR, else $XDG_STATE_HOME/syncplan, else
 * ~/.local/state/syncplan; it is created 0700 and refused (LSYNC_ESTATE)
 * when it is group/other accessible or owned by another user; the
 * database files are 0600.  Every change is its own transaction unless
 * wrapped in lsync_journal_begin/commit, and a committed change survives
 * the death of the process (synchronous=NORMAL in WAL mode: a power loss
 * may lose the last transactions, never consistency).
 *
 * A run has a job id ("YYYYMMDD-HHMMSS-xxxx", unique per journal), the
 * plan it ran (an opaque text the caller serialises), source, dest, a
 * state and totals.  A chunk belongs to a run and keeps its list (the
 * NUL-separated paths given to the worker), files, bytes, state,
 * attempts, last exit status, host, last error line and times.
 *
 * A file record (see lsync_journal_record_replace) keeps a tree's files
 * as a run last saw them, under a key of the caller's choosing.
 *
 * Ownership: strings and lists in records passed to callbacks or filled
 * by _get calls belong to the journal and stay valid until the next call
 * on it.  Several processes may open one journal; SQLite serialises them
 * (busy timeout 10 s).
 */
#ifndef LIBSYNC_JOURNAL_H
#define LIBSYNC_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include "context.h"
#include "scan.h"

#include "api.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LSYNC_JOB_ID_MAX 32

typedef enum lsync_chunk_state {
  LSYNC_CHUNK_PENDING = 0, /* not started, or to run again */
  LSYNC_CHUNK_RUNNING = 1, /* a worker had it (on resume: run again) */
  LSYNC_CHUNK_DONE = 2,
  LSYNC_CHUNK_FAILED = 3   /* attempts exhausted or permanent error */
} lsync_chunk_state;

/* "pending", "running", "done", "failed"; lsync_chunk_state_parse gives
 * the value or -1. */
LSYNC_API const char *lsync_chunk_state_name(lsync_chunk_state s);
LSYNC_API int lsync_chunk_state_parse(const char *name);

typedef struct lsync_journal lsync_journal;

/* Write the default state directory into buf.  0, or LSYNC_ENAMETOOLONG,
 * or LSYNC_ENOENT when neither variable nor HOME is set. */
LSYNC_API int lsync_state_dir_default(char *buf, size_t len);

/* Open (creating) the journal in dir (NULL: the default state dir). */
LSYNC_API int lsync_journal_open(lsync_ctx *ctx, const char *dir,
                                 lsync_journal **out);
LSYNC_API void lsync_journal_close(lsync_journal *j);

/* The state directory in use. */
LSYNC_API const char *lsync_journal_dir(const lsync_journal *j);

/* Group several changes into one transaction.  Nesting is refused
 * (LSYNC_EBUSY), and so is a commit without a begin (LSYNC_EINVAL).  A
 * journal closed inside a transaction rolls it back. */
LSYNC_API int lsync_journal_begin(lsync_journal *j);
LSYNC_API int lsync_journal_commit(lsync_journal *j);

typedef struct lsync_run_rec {
  const char *id;
  const char *state; /* "running", "done", "failed", "interrupted", ... */
  const char *source;
  const char *dest;
  const char *plan;   /* the caller's serialised plan */
  int scan_complete;  /* every chunk of the run is in the journal */
  int exit_code;      /* -1 while running */
  int pid;            /* process that last ran it */
  double started;     /* epoch seconds */
  double finished;    /* 0 while running */
  uint64_t chunks;    /* chunk counts, by state */
  uint64_t chunks_done;
  uint64_t chunks_failed;
  uint64_t files;     /* totals over the run's chunks */
  uint64_t bytes;
} lsync_run_rec;

/* Create a run in state "running"; id_out gets its job id. */
LSYNC_API int lsync_journal_run_new(lsync_journal *j, const char *source,
                                    const char *dest, const char *plan,
                                    char id_out[LSYNC_JOB_ID_MAX]);

/* LSYNC_ENOENT (message names the id) for an unknown job. */
LSYNC_API int lsync_journal_run_get(lsync_journal *j, const char *id,
                                    lsync_run_rec *out);

/* Set state and exit code; a state other than "running" also sets the
 * finish time, "running" clears it and records the calling pid. */
LSYNC_API int lsync_journal_run_set_state(lsync_journal *j, const char *id,
                                          const char *state, int exit_code);
LSYNC_API int lsync_journal_run_set_scan_complete(lsync_journal *j,
                                                  const char *id,
                                                  int complete);

/* Newest first; cb returns nonzero to stop (the call then returns
 * LSYNC_ECANCELED). */
typedef int (*lsync_run_cb)(void *ud, const lsync_run_rec *r);
LSYNC_API int lsync_journal_runs(lsync_journal *j, lsync_run_cb cb, void *ud);

typedef struct lsync_chunk_rec {
  unsigned index;
  lsync_chunk_state state;
  unsigned attempts;
  int exit_code;      /* last exit status; -1 none or killed */
  int term_signal;    /* last killing signal or 0 */
  const char *host;   /* "" for local */
  const char *error;  /* last error line or "" */
  uint64_t files;
  uint64_t bytes;
  const void *list;   /* NUL-separated paths; NULL unless asked for */
  size_t list_len;
  double started;     /* last attempt's start, 0 if never */
  double finished;    /* 0 unless done or failed */
} lsync_chunk_rec;

/* Add chunk `index` (state pending) with its list.  LSYNC_EINVAL if the
 * run already has that index, LSYNC_ENOENT for an unknown job. */
LSYNC_API int lsync_journal_chunk_add(lsync_journal *j, const char *id,
                                      unsigned index, const void *list,
                                      size_t list_len, uint64_t files,
                                      uint64_t bytes);

/* Store r's state, attempts, exit_code, term_signal, host, error, started
 * and finished for chunk r->index (list, files and bytes are kept).
 * LSYNC_ENOENT if the job has no such chunk. */
LSYNC_API int lsync_journal_chunk_update(lsync_journal *j, const char *id,
                                         const lsync_chunk_rec *r);

/* Chunks of a run in index order; with_lists fills list/list_len.
 * cb returns nonzero to stop (LSYNC_ECANCELED); LSYNC_ENOENT for an
 * unknown job.  Rows are copied out in batches before cb runs, so cb may
 * call the journal (update the chunk it is shown, for instance). */
typedef int (*lsync_chunk_rec_cb)(void *ud, const lsync_chunk_rec *r);
LSYNC_API int lsync_journal_chunks(lsync_journal *j, const char *id,
                                   int with_lists, lsync_chunk_rec_cb cb,
                                   void *ud);

/* One chunk, list included; LSYNC_ENOENT if absent. */
LSYNC_API int lsync_journal_chunk_get(lsync_journal *j, const char *id,
                                      unsigned index, lsync_chunk_rec *out);

/* ---- file records ------------------------------------------------------
 * A mirror plan keeps, between runs, the files of its source as the last
 * successful run saw them, so that the next run can tell a renamed file
 * (same dev and inode, a new path, same size and mtime) from a new one.
 * Each record lives under a key (the runner uses source, dest and tool),
 * and records of different keys are independent.  A key never written
 * reads as an empty record. */

typedef struct lsync_record_entry {
  const char *path; /* bytes, NUL-terminated when read back */
  size_t path_len;
  lsync_type type;
  uint64_t size;
  int64_t mtime; /* seconds since the epoch, as lsync_entry */
  int32_t mtime_nsec;
  uint64_t dev;
  uint64_t ino;
  const void *hash; /* content hash, any bytes; NULL: none */
  size_t hash_len;  /* 0: none */
} lsync_record_entry;

/* The replacement's source: fill *e (zeroed before each call; its
 * pointers need to stay valid until the next call) and return 1, or
 * return 0 at the end, or a negative code to abandon the replacement. */
typedef int (*lsync_record_next_cb)(void *ud, lsync_record_entry *e);

/* Replace key's record with the entries next gives, all or nothing: in
 * one transaction of its own, or, inside the caller's (after
 * lsync_journal_begin), under a savepoint, so that a failure undoes the
 * replacement alone.  A path given twice keeps its last entry.  Returns
 * 0, the code next returned (the old record is then intact), LSYNC_EINVAL
 * for an entry of an unknown type, or LSYNC_EJOURNAL. */
LSYNC_API int lsync_journal_record_replace(lsync_journal *j, const char *key,
                                           lsync_record_next_cb next,
                                           void *ud);

/* key's entries in bytewise path order; cb returns nonzero to stop
 * (LSYNC_ECANCELED).  Rows are copied out in batches before cb runs, so
 * cb may call the journal. */
typedef int (*lsync_record_cb)(void *ud, const lsync_record_entry *e);
LSYNC_API int lsync_journal_record_each(lsync_journal *j, const char *key,
                                        lsync_record_cb cb, void *ud);

/* The number of entries in key's record. */
LSYNC_API int lsync_journal_record_count(lsync_journal *j, const char *key,
                                         uint64_t *n);

#ifdef __cplusplus
}
#endif
#endif
