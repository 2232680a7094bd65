/*
 * libsync: parallel crawl, chunking and transfer orchestration for large
 * trees.  Include this header to get the whole public API.
 *
 * Conventions (all headers):
 *   - one public prefix, lsync_ (LSYNC_ for constants); internal symbols
 *     that are not static use lsync__;
 *   - calls that can fail return int: 0 on success, a negative LSYNC_E*
 *     code on failure, with a detailed message on the context;
 *   - handles are opaque; whoever creates a handle frees it, and each
 *     header states who owns what crosses the API;
 *   - a call that fails never runs its callback.
 */
#ifndef LIBSYNC_H
#define LIBSYNC_H

#include "bucket.h"
#include "chunk.h"
#include "control.h"
#include "context.h"
#include "error.h"
#include "filter.h"
#include "journal.h"
#include "loop.h"
#include "producer.h"
#include "retry.h"
#include "sched.h"
#include "scan.h"
#include "ssh.h"
#include "sshconf.h"
#include "tunnel.h"
#include "watch.h"
#include "worker.h"

#define LSYNC_VERSION_MAJOR 0
#define LSYNC_VERSION_MINOR 1
#define LSYNC_VERSION_PATCH 0

#endif
