/*
 * What the worker needs from the progress parsers beyond the public
 * lsync_progress_parse_*: one pass over an rclone JSON log line that
 * tells progress from error messages, so the line is scanned once.
 */
#ifndef LIBSYNC_PROGRESS_INTERNAL_H
#define LIBSYNC_PROGRESS_INTERNAL_H

#include <stddef.h>

#include "libsync/worker.h"

enum lsync__rclone_kind {
  LSYNC__RCLONE_NOT_JSON = 0, /* not one complete JSON object */
  LSYNC__RCLONE_STATS = 1,    /* carries "stats": *p updated */
  LSYNC__RCLONE_ERROR = 2,    /* level error or worse: msg holds "msg" */
  LSYNC__RCLONE_OTHER = 3     /* any other JSON log line */
};

/* Classify one rclone --use-json-log line (without its newline).  msg
 * (size msgsz, may be NULL/0) receives the decoded "msg" field on one
 * line (control characters become spaces, truncated on a UTF-8 character
 * boundary); *p is only written for LSYNC__RCLONE_STATS. */
int lsync__rclone_line(const char *line, size_t len, lsync_progress *p,
                       char *msg, size_t msgsz);

#endif
