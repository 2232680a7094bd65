/*
 * The watch userdata: what changed in a local tree (libsync/watch.h).
 *
 *   local w = assert(syncplan.watch(root, { exclude = { "*.tmp" } }, fn))
 *   local changes, overflow = w:take()
 *     -- changes[i] = { path = s, kind = "changed" | "removed" | "tree" |
 *     --                "moved", from = s (moved only), dir = bool }
 *     -- overflow: the set was lost; do a full pass
 *   w:dirs()   -- directories watched
 *   w:close()  -- also __gc and __close
 *
 * opts takes `exclude`, `include` and `filter` as syncplan.scan does (and
 * may be left out: syncplan.watch(root, fn)).  fn() runs on the loop when
 * changes become pending after the last take, once until the next take;
 * it is a plain function, not a task, and is called the way
 * syncplan.timer calls its function (it is handed to a zero-delay
 * syncplan.timer), so an error in it stops syncplan.run, which raises it.
 * fn is not called after close.  An open watch stays alive until closed,
 * as a timer does until stopped.
 */
#include <stdio.h>
#include <string.h>

#include "luabind.h"

#define WATCH_MT "syncplan.watch"

typedef struct lwatch {
  lsync_watch *w;
  lsync_filter *filter;
  lb_sched *s;
  int fn_ref;    /* fn wrapped to take no arguments, or LUA_NOREF */
  int timer_ref; /* syncplan.timer, or LUA_NOREF */
} lwatch;

/* The wrapper timers call: fn(), unless the watch was closed since. */
static int call_fn(lua_State *L) {
  lwatch *u = lua_touserdata(L, lua_upvalueindex(2));
  if (!u->w)
    return 0;
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_call(L, 0, 0);
  return 0;
}

static void on_event(void *ud) {
  lwatch *u = ud;
  lua_State *L = lb_sched_state(u->s);
  if (!L || u->fn_ref == LUA_NOREF)
    return;
  lua_rawgeti(L, LUA_REGISTRYINDEX, u->timer_ref);
  lua_pushinteger(L, 0);
  lua_rawgeti(L, LUA_REGISTRYINDEX, u->fn_ref);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) { /* out of memory only */
    fprintf(stderr, "syncplan: watch: %s\n", lua_tostring(L, -1));
    lua_pop(L, 1);
  }
}

static int w_close(lua_State *L) {
  lwatch *u = luaL_checkudata(L, 1, WATCH_MT);
  lsync_watch_close(u->w);
  u->w = NULL;
  lsync_filter_free(u->filter); /* the watch uses it no more */
  u->filter = NULL;
  luaL_unref(L, LUA_REGISTRYINDEX, u->fn_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, u->timer_ref);
  u->fn_ref = u->timer_ref = LUA_NOREF;
  return 0;
}

static lwatch *check(lua_State *L) {
  lwatch *u = luaL_checkudata(L, 1, WATCH_MT);
  if (!u->w)
    luaL_error(L, "watch: closed");
  return u;
}

/* take() builds its tables under pcall, one change at a time: an error
 * (out of memory) must not unwind through lsync_watch_take. */
struct taking {
  lua_State *L;
  int t;
  lua_Integer n;
  int failed; /* the error is on the stack */
};

static int push_change(lua_State *L) {
  const lsync_watch_change *c = lua_touserdata(L, 1);
  lua_createtable(L, 0, 4);
  lua_pushlstring(L, c->path, c->path_len);
  lua_setfield(L, -2, "path");
  lua_pushstring(L, lsync_watch_kind_name(c->kind));
  lua_setfield(L, -2, "kind");
  if (c->from) {
    lua_pushlstring(L, c->from, c->from_len);
    lua_setfield(L, -2, "from");
  }
  lua_pushboolean(L, c->is_dir);
  lua_setfield(L, -2, "dir");
  lua_rawseti(L, 2, lua_tointeger(L, 3));
  return 0;
}

static void take_one(void *ud, const lsync_watch_change *c) {
  struct taking *tk = ud;
  if (tk->failed)
    return;
  lua_State *L = tk->L;
  lua_pushcfunction(L, push_change);
  lua_pushlightuserdata(L, (void *)c);
  lua_pushvalue(L, tk->t);
  lua_pushinteger(L, ++tk->n);
  if (lua_pcall(L, 3, 0, 0) != LUA_OK)
    tk->failed = 1;
}

static int w_take(lua_State *L) {
  lwatch *u = check(L);
  lua_settop(L, 1);
  lua_newtable(L);
  luaL_checkstack(L, 8, "watch:take");
  struct taking tk = {L, 2, 0, 0};
  int overflow;
  lsync_watch_take(u->w, take_one, &tk, &overflow);
  if (tk.failed)
    return lua_error(L);
  lua_pushboolean(L, overflow);
  return 2;
}

static int w_dirs(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)lsync_watch_dirs(check(L)->w));
  return 1;
}

static int w_tostring(lua_State *L) {
  lwatch *u = luaL_checkudata(L, 1, WATCH_MT);
  lua_pushfstring(L, "syncplan.watch (%s)", u->w ? "open" : "closed");
  return 1;
}

/* syncplan.watch(root [, opts], fn); upvalue 1 is syncplan.timer. */
static int l_watch(lua_State *L) {
  const char *root = luaL_checkstring(L, 1);
  if (lua_isfunction(L, 2) && lua_isnone(L, 3)) {
    lua_pushnil(L);
    lua_insert(L, 2);
  }
  luaL_checktype(L, 3, LUA_TFUNCTION);
  lua_settop(L, 3);
  lwatch *u = lua_newuserdatauv(L, sizeof *u, 0); /* index 4 */
  memset(u, 0, sizeof *u);
  u->fn_ref = u->timer_ref = LUA_NOREF;
  luaL_setmetatable(L, WATCH_MT);
  u->s = lb_sched_get(L);
  lsync_scan_opts opts;
  lb_scan_opts(L, 2, &opts, &u->filter);
  lua_pushvalue(L, 3);
  lua_pushvalue(L, 4);
  lua_pushcclosure(L, call_fn, 2);
  u->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, lua_upvalueindex(1));
  u->timer_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lsync_ctx *ctx = lb_ctx(L);
  int rc = lsync_watch_open(ctx, root, opts.filter, on_event, u, &u->w);
  if (rc < 0) {
    int n = lb_fail(L, rc, lsync_ctx_errmsg(ctx));
    lua_pushcfunction(L, w_close);
    lua_pushvalue(L, 4);
    lua_call(L, 1, 0);
    return n;
  }
  lua_settop(L, 4);
  return 1;
}

void lb_watch_open(lua_State *L) {
  static const luaL_Reg meta[] = {{"__tostring", w_tostring}, {NULL, NULL}};
  static const luaL_Reg methods[] = {
      {"take", w_take}, {"dirs", w_dirs}, {"close", w_close}, {NULL, NULL}};
  lb_new_class(L, WATCH_MT, meta, methods, w_close);
  if (lua_getfield(L, -1, "timer") != LUA_TFUNCTION)
    luaL_error(L, "syncplan.watch needs syncplan.timer (lb_loop_open first)");
  lua_pushcclosure(L, l_watch, 1);
  lua_setfield(L, -2, "watch");
}
