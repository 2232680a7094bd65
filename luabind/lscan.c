/*
 * The scan userdata: a crawl that is also its own iterator.
 *
 *   for e in syncplan.scan(dir, { exclude = { "*.tmp" } }) do ... end
 *   local s = syncplan.scan(dir); for e in s do ... end; s:stats()
 *
 * The userdata is born closed (all pointers NULL) and filled in step by
 * step, so an error raised half-way leaves __gc something safe to free;
 * close is idempotent and serves __gc, __close and :close().
 */
#include <string.h>

#include "luabind.h"

typedef struct lb_scan {
  lsync_ctx *ctx;
  lsync_scan *scan;
  lsync_filter *filter;
  lua_State *L;
  int on_error;  /* registry ref of the Lua callback, or LUA_NOREF */
  int cb_failed; /* the callback raised; message on the Lua stack */
  int done;
  int in_next;       /* inside lsync_scan_next(), maybe in on_error */
  int close_pending; /* close() asked for from on_error */
} lb_scan;

static lb_scan *check_scan(lua_State *L) {
  return luaL_checkudata(L, 1, LB_SCAN_MT);
}

static void scan_close(lua_State *L, lb_scan *u) {
  if (u->in_next) {
    /* From on_error: the scan is in use below us; close on return. */
    u->close_pending = 1;
    u->done = 1;
    return;
  }
  lsync_scan_close(u->scan);
  lsync_filter_free(u->filter);
  lsync_ctx_free(u->ctx);
  luaL_unref(L, LUA_REGISTRYINDEX, u->on_error);
  u->scan = NULL;
  u->filter = NULL;
  u->ctx = NULL;
  u->on_error = LUA_NOREF;
  u->done = 1;
}

static int call_on_error(lua_State *L) {
  lb_scan *u = lua_touserdata(L, 1);
  const char *path = lua_touserdata(L, 2);
  int err = (int)lua_tointeger(L, 3);
  lua_rawgeti(L, LUA_REGISTRYINDEX, u->on_error);
  lua_pushstring(L, path);
  lua_pushstring(L, strerror(err));
  lua_call(L, 2, 0);
  return 0;
}

/* Runs inside lsync_scan_next(): nothing may unwind through libsync, so
 * everything that can raise (the callback, and pushing its string
 * arguments) runs under pcall; the error is re-raised once
 * lsync_scan_next() has returned. */
static void on_error(void *ud, const char *path, int err) {
  lb_scan *u = ud;
  lua_State *L = u->L;
  if (u->cb_failed || !lua_checkstack(L, 4))
    return;
  lua_pushcfunction(L, call_on_error);
  lua_pushlightuserdata(L, u);
  lua_pushlightuserdata(L, (void *)path);
  lua_pushinteger(L, err);
  if (lua_pcall(L, 3, 0, 0) != LUA_OK)
    u->cb_failed = 1;
}

static void set_int(lua_State *L, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}

static void push_entry(lua_State *L, const lsync_entry *e) {
  lua_createtable(L, 0, 12);
  lua_pushlstring(L, e->path, e->path_len);
  lua_setfield(L, -2, "path");
  lua_pushstring(L, lsync_type_name(e->type));
  lua_setfield(L, -2, "type");
  set_int(L, "size", (lua_Integer)e->size);
  set_int(L, "mode", (lua_Integer)e->mode);
  set_int(L, "mtime", (lua_Integer)e->mtime);
  set_int(L, "mtime_nsec", (lua_Integer)e->mtime_nsec);
  set_int(L, "dev", (lua_Integer)e->dev);
  set_int(L, "ino", (lua_Integer)e->ino);
  set_int(L, "nlink", (lua_Integer)e->nlink);
  set_int(L, "uid", (lua_Integer)e->uid);
  set_int(L, "gid", (lua_Integer)e->gid);
}

/* __call: the next entry table, or nil at the end. */
static int scan_call(lua_State *L) {
  lb_scan *u = check_scan(L);
  if (u->in_next)
    return luaL_error(L, "scan called from its own on_error callback");
  if (u->done)
    return 0;
  const lsync_entry *e;
  u->L = L;
  u->in_next = 1;
  int rc = lsync_scan_next(u->scan, &e);
  u->in_next = 0;
  if (u->close_pending || u->cb_failed) {
    /* An error from on_error ends the scan (the entry fetched with it
     * cannot be delivered): close it, then raise. */
    int failed = u->cb_failed;
    u->cb_failed = 0;
    scan_close(L, u); /* pushes nothing: the error stays on top */
    return failed ? lua_error(L) : 0;
  }
  if (rc > 0) {
    push_entry(L, e);
    return 1;
  }
  if (rc < 0)
    return luaL_error(L, "scan failed: %s", lsync_ctx_errmsg(u->ctx));
  u->done = 1;
  return 0;
}

static int scan_stats(lua_State *L) {
  lb_scan *u = check_scan(L);
  lsync_scan_stats st = {0};
  if (u->scan)
    lsync_scan_get_stats(u->scan, &st);
  lua_createtable(L, 0, 6);
  set_int(L, "entries", (lua_Integer)st.entries);
  set_int(L, "dirs", (lua_Integer)st.dirs);
  set_int(L, "bytes", (lua_Integer)st.bytes);
  set_int(L, "excluded", (lua_Integer)st.excluded);
  set_int(L, "errors", (lua_Integer)st.errors);
  set_int(L, "dirs_unwritable", (lua_Integer)st.dirs_unwritable);
  return 1;
}

static int scan_gc(lua_State *L) {
  scan_close(L, check_scan(L));
  return 0;
}

static int scan_tostring(lua_State *L) {
  lb_scan *u = check_scan(L);
  lua_pushfstring(L, "syncplan.scan (%s)", u->scan ? "open" : "closed");
  return 1;
}

int lb_scan_new(lua_State *L) {
  const char *dir = luaL_checkstring(L, 1);
  lua_settop(L, 2); /* the options, or nil, stay at index 2 */
  lb_scan *u = lua_newuserdatauv(L, sizeof *u, 0);
  memset(u, 0, sizeof *u);
  u->on_error = LUA_NOREF;
  u->done = 1;
  luaL_setmetatable(L, LB_SCAN_MT);
  lsync_scan_opts opts;
  lb_scan_opts(L, 2, &opts, &u->filter);
  if (lua_istable(L, 2)) {
    if (lua_getfield(L, 2, "on_error") == LUA_TFUNCTION) {
      u->on_error = luaL_ref(L, LUA_REGISTRYINDEX);
      opts.on_error = on_error;
      opts.on_error_ud = u;
    } else {
      luaL_argcheck(L, lua_isnil(L, -1), 2, "on_error must be a function");
      lua_pop(L, 1);
    }
  }
  if (lsync_ctx_new(&u->ctx) < 0)
    return luaL_error(L, "out of memory");
  int rc = lsync_scan_open(u->ctx, dir, &opts, &u->scan);
  if (rc < 0) {
    int n = lb_fail(L, rc, lsync_ctx_errmsg(u->ctx));
    scan_close(L, u);
    return n;
  }
  u->done = 0;
  /* iterator, state, control, closing value: `for` closes it on break. */
  lua_pushvalue(L, -1);
  lua_pushnil(L);
  lua_pushnil(L);
  lua_pushvalue(L, -3);
  return 4;
}

void lb_scan_register(lua_State *L) {
  static const luaL_Reg meta[] = {{"__call", scan_call},
                                  {"__gc", scan_gc},
                                  {"__close", scan_gc},
                                  {"__tostring", scan_tostring},
                                  {NULL, NULL}};
  static const luaL_Reg methods[] = {
      {"stats", scan_stats}, {"close", scan_gc}, {NULL, NULL}};
  lb_new_class(L, LB_SCAN_MT, meta, methods, NULL);
}
