/*
 * Local channels: a command run here as `/bin/sh -c CMD` behind the
 * interface of lsync_ssh_chan (ssh.h), same callbacks and meaning, so
 * that the tunnel can carry a local rsync's stream through the job's
 * bucket (a local copy's --bwlimit is otherwise per process and fixed).
 * on_exit's rc is always 0: a local channel does not break, its command
 * exits (status) or dies of a signal (sig).  Internal to libsync.
 */
#ifndef LIBSYNC_LCHAN_H
#define LIBSYNC_LCHAN_H

#include <stddef.h>

#include "libsync/ssh.h"

typedef struct lsync__lchan lsync__lchan;

int lsync__lchan_open(lsync_ctx *ctx, const lsync_ssh_chan_opts *o,
                      lsync__lchan **out);
int lsync__lchan_write(lsync__lchan *c, const void *buf, size_t len);
size_t lsync__lchan_queued(const lsync__lchan *c);
void lsync__lchan_end_input(lsync__lchan *c);
void lsync__lchan_pause(lsync__lchan *c, int paused);
void lsync__lchan_close(lsync__lchan *c);
void lsync__lchan_abandon(lsync__lchan *c);

#endif
