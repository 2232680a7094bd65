/*
 * Retry policy: the classification of a worker's exit (the table is in
 * retry.h), the tools' exit-status texts, duration parsing and the
 * exponential backoff with jitter.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static lsync_outcome classify_rsync(int status) {
  switch (status) {
  case 0:
    return LSYNC_OUTCOME_OK;
  case 24:
    return LSYNC_OUTCOME_VANISHED;
  case 10:  /* socket I/O */
  case 11:  /* file I/O */
  case 12:  /* protocol data stream */
  case 30:  /* timeout in data send/receive */
  case 35:  /* timeout waiting for daemon connection */
  case 255: /* ssh failed or lost the connection */
    return LSYNC_OUTCOME_RETRY;
  case 23:
    return LSYNC_OUTCOME_PARTIAL;
  default:
    return LSYNC_OUTCOME_PERMANENT;
  }
}

static lsync_outcome classify_rclone(int status) {
  switch (status) {
  case 0:
    return LSYNC_OUTCOME_OK;
  case 1: /* not otherwise categorised: often a network error */
  case 5: /* temporary error */
    return LSYNC_OUTCOME_RETRY;
  case 8:  /* --max-transfer reached */
  case 10: /* --max-duration reached */
    return LSYNC_OUTCOME_STOPPED;
  default:
    return LSYNC_OUTCOME_PERMANENT;
  }
}

lsync_outcome lsync_classify(lsync_tool tool, int exit_status, int term_signal,
                             int stopped, int timed_out) {
  /* A stop on purpose also kills the worker by a signal: it wins. */
  if (stopped)
    return LSYNC_OUTCOME_STOPPED;
  if (timed_out || term_signal)
    return LSYNC_OUTCOME_RETRY;
  if (exit_status < 0) /* no status and no signal: it never ran */
    return LSYNC_OUTCOME_PERMANENT;
  switch (tool) {
  case LSYNC_TOOL_RSYNC:
    return classify_rsync(exit_status);
  case LSYNC_TOOL_RCLONE:
    return classify_rclone(exit_status);
  }
  return LSYNC_OUTCOME_PERMANENT;
}

const char *lsync_outcome_name(lsync_outcome o) {
  static const char *const names[] = {"ok",      "vanished",  "retry",
                                      "partial", "permanent", "stopped"};
  return (unsigned)o < sizeof names / sizeof names[0] ? names[o] : "unknown";
}

/* rsync's errcode.h / log.c texts. */
static const char *rsync_text(int status) {
  switch (status) {
  case 0:
    return "success";
  case 1:
    return "syntax or usage error";
  case 2:
    return "protocol incompatibility";
  case 3:
    return "errors selecting input/output files, dirs";
  case 4:
    return "requested action not supported";
  case 5:
    return "error starting client-server protocol";
  case 6:
    return "daemon unable to append to log-file";
  case 10:
    return "error in socket IO";
  case 11:
    return "error in file IO";
  case 12:
    return "error in rsync protocol data stream";
  case 13:
    return "errors with program diagnostics";
  case 14:
    return "error in IPC code";
  case 20:
    return "received SIGUSR1 or SIGINT";
  case 21:
    return "some error returned by waitpid()";
  case 22:
    return "error allocating core memory buffers";
  case 23:
    return "some files/attrs were not transferred (see previous errors)";
  case 24:
    return "some files vanished before they could be transferred";
  case 25:
    return "the --max-delete limit stopped deletions";
  case 30:
    return "timeout in data send/receive";
  case 35:
    return "timeout waiting for daemon connection";
  case 255:
    return "ssh or the remote shell failed (unexplained error)";
  }
  return NULL;
}

/* rclone's documented exit codes (docs/content/docs.md). */
static const char *const rclone_texts[] = {
    "success",
    "error not otherwise categorised",
    "syntax or usage error",
    "directory not found",
    "file not found",
    "temporary error (more retries might fix it)",
    "less serious error (no retry)",
    "fatal error (more retries won't fix it)",
    "transfer exceeded: the --max-transfer limit was reached",
    "operation successful, but no files transferred",
    "duration exceeded: the --max-duration limit was reached",
};

const char *lsync_exit_text(lsync_tool tool, int exit_status) {
  /* Per thread, so concurrent callers do not overwrite each other. */
  static _Thread_local char buf[32];
  const char *t = NULL;
  if (tool == LSYNC_TOOL_RSYNC)
    t = rsync_text(exit_status);
  else if (tool == LSYNC_TOOL_RCLONE && exit_status >= 0 &&
           exit_status < (int)(sizeof rclone_texts / sizeof *rclone_texts))
    t = rclone_texts[exit_status];
  if (t)
    return t;
  snprintf(buf, sizeof buf, "exit status %d", exit_status);
  return buf;
}

void lsync_backoff_init(lsync_backoff *b) {
  b->attempts = 3;
  b->base = 2;
  b->max = 300;
  b->jitter = 0.5;
}

/* A decimal number ("12", "1.5") at s; its end in *end, or NULL. */
static int parse_number(const char *s, const char **end, double *v) {
  const char *p = s;
  while (isdigit((unsigned char)*p))
    p++;
  if (p == s)
    return -1;
  if (*p == '.') {
    const char *f = ++p;
    while (isdigit((unsigned char)*p))
      p++;
    if (p == f)
      return -1;
  }
  /* The span is validated above, so strtod reads exactly it (no sign,
   * hex, "inf" or locale surprises: the separator is '.'). */
  *v = strtod(s, NULL);
  *end = p;
  return 0;
}

/* Units in the order a compound duration must use them. */
static const struct {
  const char *name;
  double seconds;
} units[] = {{"d", 86400}, {"h", 3600}, {"ms", 0.001}, {"m", 60}, {"s", 1}};

static int unit_rank(const char **p, double *mult) {
  static const int rank[] = {0, 1, 4, 2, 3}; /* d h m s ms, by size */
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
    size_t n = strlen(units[i].name);
    if (!strncmp(*p, units[i].name, n)) {
      *p += n;
      *mult = units[i].seconds;
      return rank[i];
    }
  }
  return -1;
}

/* "90" (seconds), "1.5s", "250ms", "10m", "1h", "2d", or a compound with
 * each unit at most once, largest first ("1d2h30m15s", as folder_sync
 * writes ##d##h##m##s). */
int lsync_parse_duration(const char *s, double *seconds) {
  if (!s || !*s)
    return LSYNC_EINVAL;
  double total = 0, v, mult;
  int last = -1;
  const char *p = s;
  while (*p) {
    if (parse_number(p, &p, &v) < 0)
      return LSYNC_EINVAL;
    if (!*p && last < 0) {
      total = v; /* a bare number alone is seconds */
      break;
    }
    int r = unit_rank(&p, &mult);
    if (r <= last)
      return LSYNC_EINVAL; /* unknown unit, repeated or out of order */
    last = r;
    total += v * mult;
  }
  if (!isfinite(total))
    return LSYNC_EINVAL;
  *seconds = total;
  return 0;
}

int lsync_backoff_parse(lsync_backoff *b, const char *spec) {
  if (!spec)
    return LSYNC_EINVAL;
  double base, max;
  const char *dots = strstr(spec, "..");
  if (dots) {
    char first[64];
    size_t n = (size_t)(dots - spec);
    if (n >= sizeof first)
      return LSYNC_EINVAL;
    memcpy(first, spec, n);
    first[n] = '\0';
    if (lsync_parse_duration(first, &base) < 0 ||
        lsync_parse_duration(dots + 2, &max) < 0)
      return LSYNC_EINVAL;
  } else if (lsync_parse_duration(spec, &base) < 0) {
    return LSYNC_EINVAL;
  } else {
    max = base;
  }
  if (!(base > 0) || !(max >= base))
    return LSYNC_EINVAL;
  b->base = base;
  b->max = max;
  return 0;
}

/* splitmix64: good output from any seed, zero included. */
static uint64_t splitmix64(uint64_t *state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

double lsync_backoff_delay(const lsync_backoff *b, unsigned attempt,
                           uint64_t *rng) {
  if (attempt <= 1)
    return 0;
  /* ldexp overflows to inf for huge attempts, which the cap absorbs. */
  double d =
      fmin(ldexp(b->base, (int)(attempt > 1100 ? 1100 : attempt - 2)), b->max);
  double jitter = b->jitter < 0 ? 0 : b->jitter > 1 ? 1 : b->jitter;
  if (!rng || jitter == 0)
    return d;
  double u = (double)(splitmix64(rng) >> 11) * 0x1.0p-53; /* [0, 1) */
  return d * (1 - jitter) + d * jitter * u;
}
