/*
 * Retry policy: what a worker's exit means, and how long to wait before
 * the next attempt.
 *
 * Classification of an exit (the table is also in README.md):
 *   OK         the chunk is done;
 *   VANISHED   done, but some source files vanished while it ran (rsync
 *              24): nothing to retry, reported as a warning;
 *   RETRY      a transient failure worth another attempt: rsync 10
 *              (socket I/O), 11 (file I/O), 12 (protocol data stream),
 *              30 (timeout), 35 (daemon connection timeout), 255 (ssh
 *              could not connect or lost the connection), any death by a
 *              signal, and a watchdog stop; rclone 1 (uncategorised) and
 *              5 (temporary);
 *   PARTIAL    some files failed (rsync 23): retried, since a file may
 *              have been busy, then reported as failed;
 *   PERMANENT  retrying cannot help: rsync 1-6 (syntax, protocol,
 *              selection, unsupported option, start-up), 13, 14, 20-22,
 *              25 and any other code; rclone 2, 3, 4, 6, 7, 9;
 *   STOPPED    stopped on purpose (lsync_worker_stop, a run being
 *              interrupted, rclone 8/10 limits reached): resumable.
 */
#ifndef LIBSYNC_RETRY_H
#define LIBSYNC_RETRY_H

#include <stdint.h>

#include "api.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lsync_tool {
  LSYNC_TOOL_RSYNC = 1,
  LSYNC_TOOL_RCLONE = 2
} lsync_tool;

typedef enum lsync_outcome {
  LSYNC_OUTCOME_OK = 0,
  LSYNC_OUTCOME_VANISHED = 1,
  LSYNC_OUTCOME_RETRY = 2,
  LSYNC_OUTCOME_PARTIAL = 3,
  LSYNC_OUTCOME_PERMANENT = 4,
  LSYNC_OUTCOME_STOPPED = 5
} lsync_outcome;

/* exit_status as in lsync_worker_result (-1 when killed), term_signal 0 or
 * the signal; stopped/timed_out as there.  stopped wins over everything
 * (a stop kills by a signal), then timed_out and a signal (RETRY); no
 * status and no signal (the tool never ran) is PERMANENT. */
LSYNC_API lsync_outcome lsync_classify(lsync_tool tool, int exit_status,
                                       int term_signal, int stopped,
                                       int timed_out);

/* "ok", "vanished", "retry", "partial", "permanent", "stopped" */
LSYNC_API const char *lsync_outcome_name(lsync_outcome o);

/* A short description of a tool's exit status ("timeout in data
 * send/receive"), or "exit status N" for unknown ones; static. */
LSYNC_API const char *lsync_exit_text(lsync_tool tool, int exit_status);

typedef struct lsync_backoff {
  unsigned attempts; /* attempts in all, first included (>= 1) */
  double base;       /* seconds before the second attempt (> 0) */
  double max;        /* ceiling of the delay in seconds (>= base) */
  double jitter;     /* 0..1: the delay is drawn uniformly from
                        [d * (1 - jitter), d] ("equal jitter" at 0.5) */
} lsync_backoff;

/* Defaults: 3 attempts, 2 s, 300 s, jitter 0.5. */
LSYNC_API void lsync_backoff_init(lsync_backoff *b);

/* Parse "2s..5m" (base..max; units ms, s, m, h; a bare number is seconds)
 * or a single duration (base = max).  0 or LSYNC_EINVAL. */
LSYNC_API int lsync_backoff_parse(lsync_backoff *b, const char *spec);

/* Parse a duration such as "90", "1.5s", "250ms", "10m", "1h", "1d2h30m"
 * into seconds.  0 or LSYNC_EINVAL. */
LSYNC_API int lsync_parse_duration(const char *s, double *seconds);

/* The delay in seconds before attempt number `attempt` (2 for the first
 * retry): base * 2^(attempt-2) capped at max, then jittered with the
 * caller's random state (*rng, any seed; updated; NULL: no jitter). */
LSYNC_API double lsync_backoff_delay(const lsync_backoff *b, unsigned attempt,
                                     uint64_t *rng);

#ifdef __cplusplus
}
#endif
#endif
