/*
 * SSH sessions (libssh2) on the context's loop: connect, verify the host
 * key against known_hosts, authenticate with a private key, all without
 * blocking the loop (a poll handle on the socket follows libssh2's
 * block directions, and a timer bounds the whole connection).
 *
 * Host keys.  The server's key is looked up in known_hosts under
 * host_key_alias if set, else under the host name ("[host]:port" when the
 * port is not 22), as OpenSSH does.  A key that differs from the one
 * recorded (or a host recorded only with keys of other types) is refused
 * with LSYNC_EHOSTKEY and a message naming the host and the key's SHA256
 * fingerprint, whatever accept_new_host says.  An unknown host is refused
 * with LSYNC_EHOSTKEY unless accept_new_host is set; then its key is
 * appended to known_hosts (the file and its directory are created, mode
 * 0600 and 0700, when missing) and the connection goes on.
 *
 * Authentication.  Public key only: each of identity_files in order (a
 * missing file is skipped), or when none are given the keys of the
 * ssh-agent at $SSH_AUTH_SOCK (if set) and then the user's defaults
 * ~/.ssh/id_ed25519, id_ecdsa and id_rsa.  (Given files are used alone,
 * as OpenSSH's IdentitiesOnly.)  A passphrase-protected key
 * cannot be used (there is no one to ask).  Failure: LSYNC_EAUTH with the
 * keys tried.  A connection that fails or does not answer gives
 * LSYNC_ECONNECT; the whole of it taking longer than timeout_ms gives
 * LSYNC_ETIMEDOUT.
 *
 * Lifecycle: connect -> on_ready(status) once -> (exec, channels ...)
 * -> free.  on_ready runs on the loop, never from inside
 * lsync_ssh_connect; after a failure the session is only good for its
 * message and free.  A connection that breaks later fails every open
 * channel with LSYNC_ECONNECT, and the session is then no longer alive.
 * Freeing closes the connection (with a disconnect message when it was
 * authenticated); it may be called from any callback.  Channels still
 * open then end with LSYNC_ECANCELED, from the loop.  The session's
 * memory goes when the loop has run.
 *
 * Callbacks never run from inside an lsync_ssh_* call; they run from the
 * loop.
 */
#include <stdint.h>

#ifndef LIBSYNC_SSH_H
#define LIBSYNC_SSH_H

#include <stddef.h>

#include "context.h"

#include "api.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lsync_ssh lsync_ssh;

typedef struct lsync_ssh_opts {
  const char *host;  /* name or address to connect to (required) */
  unsigned port;     /* 0: 22 */
  const char *user;  /* NULL: the local user's name */
  const char *const *identity_files; /* NULL-terminated, or NULL */
  const char *known_hosts;    /* NULL: ~/.ssh/known_hosts */
  const char *host_key_alias; /* NULL: the host name */
  int accept_new_host;        /* record an unknown host's key */
  unsigned timeout_ms;        /* 0: 30000 */
} lsync_ssh_opts;

typedef void (*lsync_ssh_ready_cb)(void *ud, lsync_ssh *s, int status);

/* Start connecting.  Bad options fail here (LSYNC_EINVAL, message on
 * ctx) and on_ready never runs. */
LSYNC_API int lsync_ssh_connect(lsync_ctx *ctx, const lsync_ssh_opts *o,
                                lsync_ssh_ready_cb on_ready, void *ud,
                                lsync_ssh **out);

/* The last failure's message, of the connection or of a channel ("" if
 * none). */
LSYNC_API const char *lsync_ssh_errmsg(const lsync_ssh *s);

/* The server key's fingerprint, "SHA256:" and unpadded base64, once the
 * key exchange is done ("" before). */
LSYNC_API const char *lsync_ssh_fingerprint(const lsync_ssh *s);

/* Run cmd on the remote side (an exec channel of the session, which must
 * have connected): input (len bytes, copied; may be NULL) is its stdin,
 * followed by end-of-file; on_data gets its stdout (fd 1) and stderr
 * (fd 2) as they come; on_exit runs once when the channel has closed,
 * with rc 0 and the command's exit status (or -1 and the signal's name,
 * e.g. "KILL", when a signal ended it), or with rc a negative LSYNC_E*
 * code (the message in lsync_ssh_errmsg) when the channel failed.  Many
 * commands may run at once on one session.  Freeing the session ends
 * its running commands: their on_exit runs with LSYNC_ECANCELED.
 * Returns 0, or
 * LSYNC_EINVAL (not connected) / LSYNC_ENOMEM with a message on the
 * session's context. */
typedef void (*lsync_ssh_data_cb)(void *ud, int fd, const char *buf,
                                  size_t len);
typedef void (*lsync_ssh_exit_cb)(void *ud, int rc, int exit_status,
                                  const char *exit_signal);
LSYNC_API int lsync_ssh_exec(lsync_ssh *s, const char *cmd, const char *input,
                             size_t len, lsync_ssh_data_cb on_data,
                             lsync_ssh_exit_cb on_exit, void *ud);

/* Streaming channels: a command whose input is written as it comes, with
 * flow control both ways.
 *
 *   on_data   stdout (fd 1) and stderr (fd 2) as they arrive, unless
 *             paused;
 *   on_drain  (may be NULL) the input queue has just been sent in full;
 *   on_exit   once, as for lsync_ssh_exec; the channel is freed after it.
 *
 * write copies and queues (never blocks); queued() says how much is
 * waiting, so that a producer can stop reading its source above a mark
 * and go on at on_drain.  end_input sends end-of-file once the queue is
 * sent.  pause(1) stops reading the command's output: the server may
 * then send at most one window more, and the command blocks.  close asks
 * the server to close the channel now (the command's pipes close; it
 * ends on its next read or write) and on_exit still comes; abandon is
 * close without any further callback (for an owner that goes away).
 * After on_exit, or abandon, the channel pointer is no longer valid. */
typedef struct lsync_ssh_chan lsync_ssh_chan;
typedef void (*lsync_ssh_drain_cb)(void *ud);
typedef struct lsync_ssh_chan_opts {
  const char *cmd;
  lsync_ssh_data_cb on_data;
  lsync_ssh_exit_cb on_exit;
  lsync_ssh_drain_cb on_drain;
  void *ud;
} lsync_ssh_chan_opts;

/* LSYNC_EINVAL (not connected, no command or callback), LSYNC_ECONNECT
 * (the connection broke), LSYNC_ENOMEM; message on the context. */
LSYNC_API int lsync_ssh_chan_open(lsync_ssh *s, const lsync_ssh_chan_opts *o,
                                  lsync_ssh_chan **out);
LSYNC_API int lsync_ssh_chan_write(lsync_ssh_chan *c, const void *buf,
                                   size_t len);
LSYNC_API size_t lsync_ssh_chan_queued(const lsync_ssh_chan *c);
LSYNC_API void lsync_ssh_chan_end_input(lsync_ssh_chan *c);
LSYNC_API void lsync_ssh_chan_pause(lsync_ssh_chan *c, int paused);
LSYNC_API void lsync_ssh_chan_close(lsync_ssh_chan *c);
LSYNC_API void lsync_ssh_chan_abandon(lsync_ssh_chan *c);

/* Keep (on) one channel opened ahead, without a command, so that the
 * next lsync_ssh_chan_open or lsync_ssh_exec takes it and skips the
 * round trip of opening one; each taken is replaced.  Off closes it. */
LSYNC_API void lsync_ssh_prefetch(lsync_ssh *s, int on);

/* Connected and not broken, as far as the session knows: a server that
 * went away unnoticed fails the next channel. */
LSYNC_API int lsync_ssh_alive(const lsync_ssh *s);

/* Channel data sent to and received from the server over the session's
 * life (stdin; stdout and stderr), without the protocol's overhead. */
LSYNC_API void lsync_ssh_bytes(const lsync_ssh *s, uint64_t *sent,
                               uint64_t *received);

LSYNC_API void lsync_ssh_free(lsync_ssh *s);

#ifdef __cplusplus
}
#endif
#endif
