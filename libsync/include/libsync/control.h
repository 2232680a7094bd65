/*
 * Job control: a running job answers requests on a unix socket, so that
 * `syncplan bwlimit ID RATE`, `syncplan status ID` and `syncplan stop ID`
 * can talk to it.
 *
 * The protocol is one line each way.  A client connects and sends one
 * request line: at most LSYNC_CONTROL_LINE_MAX bytes, then "\n".  The
 * job answers with one reply of any length, ending in "\n" (added when
 * the reply has none), and closes the connection.  A line over the
 * limit gets the reply "error: request line too long" instead.  Several
 * clients may be connected at once, each answered on its own.
 *
 * The listener (lsync_control_listen, on the context's loop) hands each
 * request to the handler with a number, and the handler answers with
 * lsync_control_reply(c, number, ...), at once or later: a request may
 * wait for a Lua task, say, while others are answered.  A request that
 * is never answered keeps its client waiting (until its timeout) and
 * its connection open until lsync_control_close.
 *
 * The socket is made mode 0600 from the start and belongs in a private
 * directory.  A client of another user id is refused (its connection is
 * closed unanswered), except root's: root can reach the job by other
 * means anyway, and `sudo syncplan stop ID` should work.
 *
 * Ownership: the listener owns its socket file; lsync_control_close
 * removes it (unless another process has put its own in its place),
 * closes every connection and frees the listener once the loop has
 * run.  Request strings passed to the handler are valid during the
 * call only.
 */
#ifndef LIBSYNC_CONTROL_H
#define LIBSYNC_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#include "context.h"

#include "api.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The longest request line, "\n" not counted. */
#define LSYNC_CONTROL_LINE_MAX 65536

typedef struct lsync_control lsync_control;

/* A request line (without its "\n"; line[len] is NUL, and the line may
 * hold other NULs).  req numbers the request for lsync_control_reply;
 * numbers are never reused by a listener. */
typedef void (*lsync_control_cb)(void *ud, lsync_control *c, uint64_t req,
                                 const char *line, size_t len);

/* Listen on the unix socket path.  A socket file left by a process that
 * died (nobody accepts on it) is replaced; LSYNC_EBUSY when a process
 * listens there or path is something else than a socket,
 * LSYNC_ENAMETOOLONG when path is too long for a unix socket (its
 * directory must be shorter: the path is not truncated), or a code from
 * the system call that failed.  Message on ctx. */
LSYNC_API int lsync_control_listen(lsync_ctx *ctx, const char *path,
                                   lsync_control_cb cb, void *ud,
                                   lsync_control **out);

/* Answer request req with len bytes of data (copied).  The connection
 * closes once they are written.  LSYNC_ENOENT when req is not waiting
 * for an answer (answered already, or unknown). */
LSYNC_API int lsync_control_reply(lsync_control *c, uint64_t req,
                                  const char *data, size_t len);

/* Stop listening, remove the socket, close every connection (requests
 * not answered yet go unanswered); c is gone once the loop has run.
 * The handler is not called again.  NULL is ignored. */
LSYNC_API void lsync_control_close(lsync_control *c);

/* The client (blocking, no loop needed): send req (one line, no "\n" in
 * it) to the job listening at path and wait up to timeout_ms (< 0: no
 * limit) for its reply.  0 with *reply (NUL-terminated, without the
 * trailing "\n"; free it with free()) and *len; or LSYNC_ENOENT (no
 * socket: no job), LSYNC_ECONNECT (a socket nobody accepts on: the job
 * died), LSYNC_EACCES, LSYNC_ETIMEDOUT, LSYNC_EIO (the connection closed
 * before a reply: the job refused the client or went away),
 * LSYNC_EINVAL (a request with "\n" or over the limit),
 * LSYNC_ENAMETOOLONG, LSYNC_ENOMEM. */
LSYNC_API int lsync_control_call(const char *path, const char *req,
                                 int timeout_ms, char **reply, size_t *len);

#ifdef __cplusplus
}
#endif
#endif
