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
/* lb_fail for an errno value: its code name and strerror. */
int lb_fail_errno(lua_State *L, int e);

/* Register a userdata type: metatable mt with the meta functions, and
 * the methods as its __index.  A type whose close frees it passes close
 * instead of meta (it becomes __gc and __close); meta may be NULL. */
void lb_new_class(lua_State *L, const char *mt, const luaL_Reg *meta,
                  const luaL_Reg *methods, lua_CFunction close);

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

/* The task scheduler of lloop.c (one per Lua state). */
typedef struct lb_sched lb_sched;
lb_sched *lb_sched_get(lua_State *L);
/* The state running syncplan.run (callbacks push and call on it), or
 * NULL when no run is active. */
lua_State *lb_sched_state(lb_sched *s);
/* Bumped when a run fails: a waiter recorded under another epoch belongs
 * to a dead run and must not be woken. */
unsigned lb_sched_epoch(lb_sched *s);
/* Raise unless L is a task, naming the blocking call `what`. */
void lb_task_check(lua_State *L, const char *what);
/* Resume task co with the nargs values on its stack: now (from a loop
 * callback) or from the ready queue (from inside another task). */
void lb_wake(lb_sched *s, lua_State *co, int nargs);
void lb_wake_later(lb_sched *s, lua_State *co, int nargs);

/* The list of strings at index t as a NULL-terminated array (pushed as a
 * userdata); the strings stay valid while the table does.  Raises, naming
 * the option `what`, on a non-string entry. */
const char **lb_string_array(lua_State *L, int t, const char *what);

/* Chunk userdata shared with the producer. */
void lb_chunk_opts(lua_State *L, int idx, lsync_chunk_opts *o);
/* Push a chunk userdata owning c; frees c and raises on memory errors. */
void lb_chunk_push(lua_State *L, lsync_chunk *c);

/* Each adds its functions (and metatables) to the module table on top of
 * the stack. */
void lb_loop_open(lua_State *L);     /* run, spawn, sleep, timer, signal */
void lb_worker_open(lua_State *L);   /* worker */
void lb_producer_open(lua_State *L); /* producer */
void lb_journal_open(lua_State *L);  /* journal, state_dir */
void lb_retry_open(lua_State *L);    /* classify, backoff, bucket, durations */
void lb_ssh_open(lua_State *L);      /* ssh */
void lb_tunnel_open(lua_State *L);   /* tunnel, program */
void lb_control_open(lua_State *L);  /* control, control_call */
void lb_schedule_open(lua_State *L); /* schedule, timetable */

/* syncplan.time()'s clock: the wall clock, or SYNCPLAN_FAKE_TIME's (see
 * lsched.c, which reads it when the module is first opened). */
double lb_time(void);
void lb_watch_open(lua_State *L);
void lb_process_open(lua_State *L);  /* detach, lock, getpid, kill */

/* The session of the ssh userdata at idx when it is connected, else
 * NULL (also for any other value). */
lsync_ssh *lb_ssh_session(lua_State *L, int idx);

int lb_scan_new(lua_State *L);   /* syncplan.scan(dir [, opts]) */
int lb_chunk_tree(lua_State *L); /* syncplan.chunk(dir [, opts]) */
void lb_scan_register(lua_State *L);
void lb_chunk_register(lua_State *L);

#endif
