/*
 * What OpenSSH's client configuration says about one host: the subset of
 * ~/.ssh/config that libsync's ssh sessions honour.
 *
 * Honoured keywords (case-insensitive, "Keyword value" or
 * "Keyword=value", values optionally in double quotes, # comments):
 *   Host PATTERN...     starts a block that applies when the name given
 *                       matches one of its patterns (* and ?, a leading !
 *                       negates: a name matching a negated pattern is never
 *                       in the block); lines before the first Host or Match
 *                       apply to every host
 *   Match ...           not supported: its block is skipped (and logged at
 *                       debug level)
 *   Include FILE...     other files read in place (glob patterns; a relative
 *                       path is relative to ~/.ssh), at most 16 deep
 *   HostName NAME       the address to connect to (%h is the given name)
 *   User NAME
 *   Port N
 *   IdentityFile PATH   private keys, tried in order; every line adds one
 *                       (~ and %d are the home directory, %u the local user,
 *                       %r the remote user, %h the host name)
 *   UserKnownHostsFile PATH...  the first path is used (~ expanded)
 *   HostKeyAlias NAME   the name to look up and save in known_hosts
 *   StrictHostKeyChecking yes|accept-new|no|ask   accept-new and no let an
 *                       unknown host's key be added; a changed key is
 *                       never accepted whatever the setting
 *   ConnectTimeout SECONDS
 * As in OpenSSH, the first value obtained for a keyword wins (IdentityFile
 * accumulates).  Other keywords are ignored.
 *
 * Ownership: lsync_sshconf_load returns a config the caller frees with
 * lsync_sshconf_free; the strings lsync_sshconf_opts points the options
 * at belong to it.
 */
#ifndef LIBSYNC_SSHCONF_H
#define LIBSYNC_SSHCONF_H

#include "context.h"
#include "ssh.h"

#include "api.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lsync_sshconf lsync_sshconf;

/* Resolve host (an alias or a name, as typed) against the configuration
 * file at path (NULL: ~/.ssh/config; a missing file is an empty
 * configuration, a file given explicitly must exist: LSYNC_ENOENT).  A
 * line that cannot be parsed (a bad Port, an unterminated quote) fails
 * with LSYNC_EINVAL and "FILE:LINE: ..." on ctx. */
LSYNC_API int lsync_sshconf_load(lsync_ctx *ctx, const char *path,
                                 const char *host, lsync_sshconf **out);

/* Fill the connection options from the config: host (HostName, or the
 * given name), port (0 when unset), user (NULL when unset),
 * identity_files (NULL when none was given, for the defaults),
 * known_hosts, host_key_alias, accept_new_host, timeout_ms (0 when
 * unset).  Fields the caller set already are overwritten; set them after
 * the call to override the configuration (as a command-line flag does). */
LSYNC_API void lsync_sshconf_opts(const lsync_sshconf *c,
                                  lsync_ssh_opts *o);

LSYNC_API void lsync_sshconf_free(lsync_sshconf *c);

#ifdef __cplusplus
}
#endif
#endif
