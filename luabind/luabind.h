/*
 * The `syncplan` Lua 5.4 module: shared helpers of its source files.
 * Expected failures return nil, message, code (the LSYNC_E* name without
 * prefix, e.g. "ENOENT"); misuse (wrong argument types) raises an error.
 */
#ifndef SYNCPLAN_LUABIND_H
#define SYNCPLAN_LUABIND_H

#include <lauxlib.h>
#include <lua.h>

#include <libsync/libsync.h>

#define LB_SCAN_MT "syncplan.scan"
#define LB_CHUNK_MT "syncplan.chunk"
#define LB_FILTER_MT "syncplan.filter"

/* Push nil, message, code-name; returns 3 for `return lb_fail(...)`. */
int lb_fail(lua_State *L, int code, const char *msg);

/* Read the scan options shared by scan() and chunk() from the table at
 * index idx (may be absent/nil) into opts; builds *filter from `exclude`,
 * `include` and `filter` keys.  Raises on wrong types. */
void lb_scan_opts(lua_State *L, int idx, lsync_scan_opts *opts,
                  lsync_filter **filter);

/* Push a userdata that frees the filter stored in it when collected, and
 * return the slot, so a filter survives no raised error unfreed. */
lsync_filter **lb_filter_holder(lua_State *L);

/* The context shared by the module's asynchronous objects (its loop runs
 * timers, workers and producers); one per Lua state, made on first use. */
lsync_ctx *lb_ctx(lua_State *L);

/* Each adds its functions (and metatables) to the module table on top of
 * the stack. */
void lb_loop_open(lua_State *L);     /* run, spawn, sleep, timer, signal */
void lb_worker_open(lua_State *L);   /* worker */
void lb_producer_open(lua_State *L); /* producer */
void lb_journal_open(lua_State *L);  /* journal, state_dir */
void lb_retry_open(lua_State *L);    /* classify, backoff, bucket, durations */

int lb_scan_new(lua_State *L);   /* syncplan.scan(dir [, opts]) */
int lb_chunk_tree(lua_State *L); /* syncplan.chunk(dir [, opts]) */
void lb_scan_register(lua_State *L);
void lb_chunk_register(lua_State *L);

#endif
