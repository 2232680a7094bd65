/*
 * Workers: one child process (rsync, rclone, or any command) run on the
 * context's loop, with its input written to stdin, its progress parsed
 * from its output, its stderr kept in a log file, a watchdog for hangs,
 * and a stop that escalates from SIGTERM to SIGKILL.
 *
 * The child gets LC_ALL=C (so rsync's numbers and messages are the same
 * everywhere) plus the extra environment of the options, in its own
 * process group, with stdin a pipe, and stdout and stderr pipes read by
 * libsync.  Progress:
 *   RSYNC   rsync's --info=progress2 records on stdout ("\r"-separated,
 *           with or without --no-h, "xfr#N" and "to-chk"/"ir-chk");
 *   RCLONE  rclone's JSON log lines on stderr that carry a "stats" object
 *           (--use-json-log --stats 1s --stats-log-level NOTICE);
 *   NONE    output is only logged.
 * Lines that are not progress go to the log file (stdout and stderr
 * both); the last non-empty stderr line is kept for error reports (for
 * RCLONE: the "msg" of the last JSON line of level error or worse, or
 * the last stderr line that is not JSON).  on_progress runs at most
 * about 10 times a second per worker; the final state is always
 * delivered before on_exit.
 *
 * Lifecycle: lsync_worker_start() -> on_progress* -> on_exit (exactly
 * once, unless start failed) -> lsync_worker_free(), which may be called
 * from inside on_exit or on_progress.  Freeing a worker before on_exit
 * kills the child (SIGKILL to its process group) and on_exit never runs.
 *
 * on_exit comes when the child has exited and its stdout and stderr have
 * ended, so the last progress record and error line are seen.  Output
 * still open 1 s after the exit (a grandchild holding the pipes) is
 * closed, and what is left of the process group gets SIGKILL; so does
 * the group of a stopped worker when it ends.
 *
 * SIGPIPE: the first lsync_worker_start() sets SIGPIPE to SIG_IGN if its
 * disposition is SIG_DFL, so that writing to a child that exited without
 * reading its input is an EPIPE and not the death of the program (a
 * program's own handler is left alone).  Children start with the default
 * disposition.
 */
#ifndef LIBSYNC_WORKER_H
#define LIBSYNC_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include "context.h"
#include "ssh.h"

#include "api.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lsync_progress_kind {
  LSYNC_PROGRESS_NONE = 0,
  LSYNC_PROGRESS_RSYNC = 1,
  LSYNC_PROGRESS_RCLONE = 2
} lsync_progress_kind;

typedef struct lsync_progress {
  uint64_t bytes;       /* bytes done, as the tool counts them */
  uint64_t files;       /* files transferred (rsync xfr#, rclone transfers) */
  uint64_t checked;     /* entries the tool has finished looking at */
  uint64_t total;       /* entries the tool knows of; 0 if unknown */
  uint64_t total_bytes; /* rclone's totalBytes; 0 if unknown (rsync) */
  double rate;          /* bytes per second as reported; 0 if unknown */
} lsync_progress;

typedef struct lsync_worker lsync_worker;

typedef struct lsync_worker_result {
  int exit_status;         /* exit status, or -1 when killed by a signal */
  int term_signal;         /* the signal that killed it, else 0 */
  int timed_out;           /* the watchdog stopped it */
  int stopped;             /* lsync_worker_stop() stopped it */
  const char *last_error;  /* last non-empty stderr line or "" (at most
                              511 bytes); valid during the callback only */
  lsync_progress progress; /* the last progress seen */
  double elapsed;          /* seconds from start to exit */
} lsync_worker_result;

typedef void (*lsync_worker_progress_cb)(void *ud, lsync_worker *w,
                                         const lsync_progress *p);
typedef void (*lsync_worker_exit_cb)(void *ud, lsync_worker *w,
                                     const lsync_worker_result *r);

typedef struct lsync_worker_opts {
  const char *const *argv; /* NULL-terminated; argv[0] searched in the
                              child's PATH */
  const char *const *env;  /* extra "NAME=VALUE" strings, NULL-terminated;
                              may be NULL; each replaces an inherited
                              variable of that name (LC_ALL=C too) */
  const char *cwd;         /* NULL: the caller's */
  const void *input;       /* written to stdin (copied), then stdin is */
  size_t input_len;        /* closed; NULL/0: stdin closed at once */
  const char *log_path;    /* output appended here (created 0600); NULL:
                              output is not kept */
  uint64_t log_limit;      /* the log file stops growing at this size
                              (one line then says so); 0: no cap */
  lsync_progress_kind progress;
  uint64_t watchdog_ms; /* stop the child (as lsync_worker_stop) after
                           this long without a byte of output; 0: no
                           watchdog */
  uint64_t grace_ms;    /* SIGTERM to SIGKILL delay; 0: 5000 */
  lsync_worker_progress_cb on_progress; /* may be NULL */
  lsync_worker_exit_cb on_exit;         /* may be NULL */
  void *ud;
  lsync_ssh *ssh; /* NULL: a child here.  Else the command runs on this
                     connected session's host, on an exec channel: the
                     remote user's shell runs `cd CWD && LC_ALL=C
                     NAME='VALUE'... exec 'ARGV0' 'ARGV1'...` (a POSIX
                     shell is assumed), input is its stdin, output and
                     progress as for a child.  There is no pid (0).  Stop
                     closes the channel: the command's pipes close and it
                     ends on its next read or write; without the server's
                     confirmation within the grace period the channel is
                     given up.  A channel or connection that fails ends
                     the worker with exit status 255 (as ssh) and the
                     connection's message as last_error.  The session
                     must outlive the worker, or the worker ends so. */
} lsync_worker_opts;

LSYNC_API void lsync_worker_opts_init(lsync_worker_opts *o);

/* Spawn the child.  LSYNC_ENOENT when argv[0] is not found, LSYNC_EACCES
 * when it cannot be run, LSYNC_EIO when the log file cannot be opened,
 * LSYNC_EINVAL for an empty argv or an env entry without "="; message on
 * ctx, no callback, and nothing left behind once the loop has run. */
LSYNC_API int lsync_worker_start(lsync_ctx *ctx, const lsync_worker_opts *o,
                                 lsync_worker **out);

LSYNC_API int lsync_worker_pid(const lsync_worker *w);

/* SIGTERM to the child's process group now, SIGKILL after the grace
 * period if it has not exited.  Idempotent, and nothing once the child
 * has exited; on_exit still runs. */
LSYNC_API void lsync_worker_stop(lsync_worker *w);

LSYNC_API void lsync_worker_free(lsync_worker *w);

/* Parse one rsync --info=progress2 record (without its "\r"); 1 and *p
 * updated if it was one, 0 if not.  Exposed for tests and embedders that
 * run rsync themselves. */
LSYNC_API int lsync_progress_parse_rsync(const char *line, size_t len,
                                         lsync_progress *p);

/* Same for one rclone JSON log line carrying a "stats" object. */
LSYNC_API int lsync_progress_parse_rclone(const char *line, size_t len,
                                          lsync_progress *p);

#ifdef __cplusplus
}
#endif
#endif
