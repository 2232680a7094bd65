/*
 * The worker userdata: one rsync/rclone (or any) child process.
 *
 *   local w = assert(syncplan.worker{
 *     argv = { "rsync", "-aH", "--files-from=-", "--from0", src, dst },
 *     input = chunk:data(),          -- string written to stdin
 *     progress = "rsync",            -- or "rclone"; nil: none
 *     log = "/path/chunk-3.log",     -- output kept here (0600)
 *     log_limit = 1 << 20,           -- the log stops growing here
 *     watchdog = 600, grace = 5,     -- seconds
 *     env = { RSYNC_RSH = "ssh -F cfg" },
 *     ssh = session,                 -- run it on that host (worker.h)
 *     on_progress = function(w, p) end, -- p.bytes, files, checked, total,
 *   })                                  -- total_bytes, rate
 *   local r = w:wait()   -- in a task: { status, signal, timed_out,
 *                        --   stopped, error, elapsed, bytes, files, ... }
 *   w:stop()             -- SIGTERM, SIGKILL after the grace period
 *
 * A running worker is anchored in the registry, so dropping the last
 * reference does not kill it; it is released when it exits.  w:close()
 * on a running worker kills it at once (no result).
 */
#include <stdlib.h>
#include <string.h>

#include "luabind.h"

#define WORKER_MT "syncplan.worker"

typedef struct lworker {
  lsync_worker *w;
  lb_sched *s;
  lua_State *waiter;   /* the task in w:wait(), or NULL */
  unsigned epoch;      /* the run the waiter belongs to */
  int progress_ref;    /* on_progress function or LUA_NOREF */
  int exited;
  int status, signal, timed_out, stopped;
  double elapsed;
  lsync_progress p;
  char error[512];
} lworker;

static void push_progress(lua_State *L, const lsync_progress *p) {
  lua_createtable(L, 0, 6);
  lua_pushinteger(L, (lua_Integer)p->bytes);
  lua_setfield(L, -2, "bytes");
  lua_pushinteger(L, (lua_Integer)p->files);
  lua_setfield(L, -2, "files");
  lua_pushinteger(L, (lua_Integer)p->checked);
  lua_setfield(L, -2, "checked");
  lua_pushinteger(L, (lua_Integer)p->total);
  lua_setfield(L, -2, "total");
  lua_pushinteger(L, (lua_Integer)p->total_bytes);
  lua_setfield(L, -2, "total_bytes");
  lua_pushnumber(L, p->rate);
  lua_setfield(L, -2, "rate");
}

static void push_result(lua_State *L, const lworker *u) {
  push_progress(L, &u->p);
  lua_pushinteger(L, u->status);
  lua_setfield(L, -2, "status");
  lua_pushinteger(L, u->signal);
  lua_setfield(L, -2, "signal");
  lua_pushboolean(L, u->timed_out);
  lua_setfield(L, -2, "timed_out");
  lua_pushboolean(L, u->stopped);
  lua_setfield(L, -2, "stopped");
  lua_pushstring(L, u->error);
  lua_setfield(L, -2, "error");
  lua_pushnumber(L, u->elapsed);
  lua_setfield(L, -2, "elapsed");
}

static void on_progress(void *ud, lsync_worker *w, const lsync_progress *p) {
  (void)w;
  lworker *u = ud;
  u->p = *p;
  lua_State *L = lb_sched_state(u->s);
  if (!L || u->progress_ref == LUA_NOREF)
    return;
  lua_rawgeti(L, LUA_REGISTRYINDEX, u->progress_ref);
  lua_rawgetp(L, LUA_REGISTRYINDEX, u); /* the worker userdata */
  push_progress(L, p);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
    /* A broken progress hook must not kill the transfer: report it. */
    fprintf(stderr, "syncplan: on_progress: %s\n", lua_tostring(L, -1));
    lua_pop(L, 1);
    luaL_unref(L, LUA_REGISTRYINDEX, u->progress_ref);
    u->progress_ref = LUA_NOREF;
  }
}

static void worker_exited(void *ud, lsync_worker *w, const lsync_worker_result *r) {
  lworker *u = ud;
  u->exited = 1;
  u->status = r->exit_status;
  u->signal = r->term_signal;
  u->timed_out = r->timed_out;
  u->stopped = r->stopped;
  u->elapsed = r->elapsed;
  u->p = r->progress;
  snprintf(u->error, sizeof u->error, "%s", r->last_error);
  lsync_worker_free(w);
  u->w = NULL;
  lua_State *L = lb_sched_state(u->s);
  if (!L)
    return;
  lua_State *co = u->waiter;
  u->waiter = NULL;
  if (co && u->epoch == lb_sched_epoch(u->s)) {
    push_result(co, u);
    lb_wake(u->s, co, 1);
  }
  /* Release the anchor last: the waiter may still hold the userdata. */
  lua_pushnil(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, u);
}

/* env = { NAME = "value", ... } -> "NAME=value" strings on the stack. */
static const char **env_array(lua_State *L, int t) {
  lua_newtable(L);
  int list = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, t)) {
    if (lua_type(L, -2) != LUA_TSTRING || !lua_isstring(L, -1))
      luaL_error(L, "env keys and values must be strings");
    lua_pushfstring(L, "%s=%s", lua_tostring(L, -2), lua_tostring(L, -1));
    lua_rawseti(L, list, luaL_len(L, list) + 1);
    lua_pop(L, 1);
  }
  return lb_string_array(L, list, "env");
}

static uint64_t opt_ms(lua_State *L, int t, const char *k) {
  lua_getfield(L, t, k);
  double v = luaL_optnumber(L, -1, 0);
  lua_pop(L, 1);
  if (v < 0)
    luaL_error(L, "option '%s' must not be negative", k);
  return (uint64_t)(v * 1000.0 + 0.5);
}

static int l_worker(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lsync_worker_opts o;
  lsync_worker_opts_init(&o);
  if (lua_getfield(L, 1, "argv") != LUA_TTABLE)
    return luaL_error(L, "worker: argv must be a list of strings");
  o.argv = lb_string_array(L, lua_gettop(L), "argv");
  if (!o.argv[0])
    return luaL_error(L, "worker: argv is empty");
  if (lua_getfield(L, 1, "env") == LUA_TTABLE)
    o.env = env_array(L, lua_gettop(L));
  lua_getfield(L, 1, "input");
  o.input = luaL_optlstring(L, -1, NULL, &o.input_len);
  lua_getfield(L, 1, "log");
  o.log_path = luaL_optstring(L, -1, NULL);
  lua_getfield(L, 1, "log_limit");
  o.log_limit = (uint64_t)luaL_optinteger(L, -1, 0);
  lua_getfield(L, 1, "cwd");
  o.cwd = luaL_optstring(L, -1, NULL);
  static const char *const kinds[] = {"none", "rsync", "rclone", NULL};
  lua_getfield(L, 1, "progress");
  o.progress = (lsync_progress_kind)luaL_checkoption(L, -1, "none", kinds);
  o.watchdog_ms = opt_ms(L, 1, "watchdog");
  o.grace_ms = opt_ms(L, 1, "grace");
  int ssh_idx = 0;
  if (lua_getfield(L, 1, "ssh") != LUA_TNIL) {
    ssh_idx = lua_gettop(L);
    luaL_checkudata(L, ssh_idx, "syncplan.ssh");
    if (!(o.ssh = lb_ssh_session(L, ssh_idx)))
      return lb_fail(L, LSYNC_ECONNECT, "worker: the ssh session is closed");
  }

  /* The user value holds the session: it must outlive the worker. */
  lworker *u = lua_newuserdatauv(L, sizeof *u, 1);
  memset(u, 0, sizeof *u);
  u->progress_ref = LUA_NOREF;
  u->exited = 1; /* born closed until the child exists */
  luaL_setmetatable(L, WORKER_MT);
  if (ssh_idx) {
    lua_pushvalue(L, ssh_idx);
    lua_setiuservalue(L, -2, 1);
  }
  u->s = lb_sched_get(L);
  if (lua_getfield(L, 1, "on_progress") == LUA_TFUNCTION)
    u->progress_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  else
    lua_pop(L, 1);
  o.on_progress = on_progress;
  o.on_exit = worker_exited;
  o.ud = u;
  lsync_ctx *ctx = lb_ctx(L);
  int rc = lsync_worker_start(ctx, &o, &u->w);
  if (rc < 0)
    return lb_fail(L, rc, lsync_ctx_errmsg(ctx));
  u->exited = 0;
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, u);
  return 1;
}

static lworker *check(lua_State *L) {
  return luaL_checkudata(L, 1, WORKER_MT);
}

static int w_wait(lua_State *L) {
  lworker *u = check(L);
  if (u->exited) {
    push_result(L, u);
    return 1;
  }
  lb_task_check(L, "worker:wait");
  if (u->waiter)
    return luaL_error(L, "worker:wait: another task is already waiting");
  u->waiter = L;
  u->epoch = lb_sched_epoch(u->s);
  return lua_yield(L, 0);
}

static int w_stop(lua_State *L) {
  lworker *u = check(L);
  if (u->w)
    lsync_worker_stop(u->w);
  return 0;
}

static int w_pid(lua_State *L) {
  lworker *u = check(L);
  if (!u->w)
    return 0;
  lua_pushinteger(L, lsync_worker_pid(u->w));
  return 1;
}

static int w_progress(lua_State *L) {
  push_progress(L, &check(L)->p);
  return 1;
}

static int w_running(lua_State *L) {
  lua_pushboolean(L, !check(L)->exited);
  return 1;
}

static int w_close(lua_State *L) {
  lworker *u = check(L);
  if (u->w) {
    lsync_worker_free(u->w); /* kills the child; on_exit never runs */
    u->w = NULL;
    u->exited = 1;
    u->status = -1;
    lua_pushnil(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, u);
  }
  if (u->progress_ref != LUA_NOREF) {
    luaL_unref(L, LUA_REGISTRYINDEX, u->progress_ref);
    u->progress_ref = LUA_NOREF;
  }
  return 0;
}

void lb_worker_open(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"wait", w_wait},         {"stop", w_stop},       {"pid", w_pid},
      {"progress", w_progress}, {"running", w_running}, {"close", w_close},
      {NULL, NULL}};
  lb_new_class(L, WORKER_MT, NULL, methods, w_close);
  lua_pushcfunction(L, l_worker);
  lua_setfield(L, -2, "worker");
}
