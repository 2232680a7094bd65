/*
 * Tunnels: a program's remote shell carried by the job's ssh sessions.
 *
 * rsync reaches a remote host by running a remote shell ("-e").  With
 * `-e "syncplan tunnel SOCKET SLOT"` that shell is a small client which
 * hands its stdin and stdout (the two pipes rsync made for it) to the
 * process that listens on SOCKET, and waits there for the exit status.
 * The listener opens an exec channel for the command on the slot's
 * session and relays between those pipes and the channel, with flow
 * control both ways; the command's stderr goes back to the client, which
 * writes it to its own stderr.  So every rsync of a worker slot reuses
 * the slot's one authenticated connection (no handshake per run, no
 * sshd MaxStartups refusals), no `ssh` program is needed, and every byte
 * that crosses is counted here.
 *
 * The client exits with the command's exit status, or 255 (as ssh does)
 * when the slot has no live session, the connection breaks, the command
 * dies of a signal, or the listener goes away.  When the client dies
 * (rsync stopped it), the channel is closed and the remote command ends
 * on its next read or write.
 *
 * The socket is made mode 0600 and should live in a private (0700)
 * directory; a peer of another user id is refused.  The listener asks
 * lookup(ud, slot) for the slot's session each time a client comes, so
 * it holds no session pointer: a session may be replaced or freed
 * between runs (its running channels then end, see ssh.h).
 */
#ifndef LIBSYNC_TUNNEL_H
#define LIBSYNC_TUNNEL_H

#include <stddef.h>
#include <stdint.h>

#include "context.h"
#include "ssh.h"

#include "api.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lsync_tunnel lsync_tunnel;

/* The slot's connected session, or NULL (the client then fails with 255
 * and "no connection"). */
typedef lsync_ssh *(*lsync_tunnel_lookup_cb)(void *ud, unsigned slot);

/* Listen on the unix socket path (which must not exist).  With lookup
 * NULL, commands run on this machine (/bin/sh -c) instead of on a
 * session: a local rsync's stream then crosses the job's bucket too (as
 * `rsync -e "syncplan tunnel ..." SRC localhost:DST`).  LSYNC_EINVAL
 * (path too long for a socket), LSYNC_EBUSY (in use), LSYNC_EIO; message on
 * ctx. */
LSYNC_API int lsync_tunnel_listen(lsync_ctx *ctx, const char *path,
                                  lsync_tunnel_lookup_cb lookup, void *ud,
                                  lsync_tunnel **out);

/* Bytes relayed so far, all slots: from the programs to the remote
 * commands, and back (stdout; stderr included). */
LSYNC_API void lsync_tunnel_bytes(const lsync_tunnel *t, uint64_t *up,
                                  uint64_t *down);

/* Cap the bytes of all relays, both ways together, at rate bytes per
 * second (0: no cap); may change at any time, running relays included.
 * A relay that runs the job's bucket into debt stops reading that way
 * until it is paid (rsync then blocks on its pipe, the remote command on
 * its window), so the total over any few seconds stays at the rate. */
LSYNC_API void lsync_tunnel_set_rate(lsync_tunnel *t, double rate);

/* Relays running now. */
LSYNC_API unsigned lsync_tunnel_active(const lsync_tunnel *t);

/* Stop listening and remove the socket; running relays end (their
 * channels closed, their clients told 255).  Memory goes when the loop
 * has run. */
LSYNC_API void lsync_tunnel_free(lsync_tunnel *t);

/* The client half (blocking; for a process of its own, such as
 * `syncplan tunnel`): hand fds 0 and 1 to the listener at path for cmd
 * on slot, then copy the command's stderr to fd 2 until its exit status
 * comes.  Returns that status (0-255), 255 with a message in err when
 * something failed. */
LSYNC_API int lsync_tunnel_client(const char *path, unsigned slot,
                                  const char *cmd, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
