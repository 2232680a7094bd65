/*
 * The control userdata: a job's control socket (see libsync/control.h).
 *
 *   local c = assert(syncplan.control(path, function(request)
 *     return "reply"          -- a string (or number); nil replies ""
 *   end))
 *   c:close()                 -- also __gc and __close
 *   syncplan.control_call(path, request [, timeout_s = 10])
 *                             -- reply, or nil, message, code
 *
 * Each request runs the function as a task of its own (syncplan.spawn),
 * so it may sleep, wait or join before it returns its reply, while other
 * requests are answered.  Requests are served while syncplan.run turns
 * the loop; one that comes outside it is answered "error: ...".  An
 * error raised by the function, or a reply that is not a string, is
 * answered "error: MESSAGE" and then raised in its task, so it stops the
 * run like any task's error: a handler that should survive its own
 * errors catches them itself.  A request still running when the control
 * is closed goes unanswered (its client sees the connection end).
 *
 * control_call blocks the whole process until the reply comes: it is
 * for the cli and for other processes, never for a task of the job
 * whose control it calls.  Codes: ENOENT (no socket: the job is not
 * running), ECONNECT (a socket nobody accepts on), ETIMEDOUT, EIO (the
 * connection ended without a reply), EACCES, EINVAL, ENAMETOOLONG.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "luabind.h"

#define CONTROL_MT "syncplan.control"

typedef struct lcontrol {
  lsync_control *c;
  lb_sched *sched;
} lcontrol;

static const char LIVE_KEY = 'L';  /* registry: lcontrol* -> userdata, weak */
static const char SPAWN_KEY = 'S'; /* registry: syncplan.spawn */

static void answer(lcontrol *u, lua_Integer req, const char *data, size_t len) {
  if (u->c)
    lsync_control_reply(u->c, (uint64_t)req, data, len);
}

static int serve_k(lua_State *L, int status, lua_KContext k);

/* The task: (userdata, request number, line).  The function's call is
 * protected so its error can be answered before it is raised. */
static int serve(lua_State *L) {
  lua_settop(L, 3);
  lua_getiuservalue(L, 1, 1);
  lua_pushvalue(L, 3);
  return serve_k(L, lua_pcallk(L, 1, 1, 0, 0, serve_k), 0);
}

static int serve_k(lua_State *L, int status, lua_KContext k) {
  (void)k;
  lcontrol *u = lua_touserdata(L, 1);
  lua_Integer req = lua_tointeger(L, 2);
  int t = lua_type(L, -1);
  if ((status == LUA_OK || status == LUA_YIELD) && t != LUA_TNIL &&
      t != LUA_TSTRING && t != LUA_TNUMBER) {
    lua_pushfstring(L, "control handler returned a %s, not a string",
                    luaL_typename(L, -1));
    status = LUA_ERRRUN;
  }
  if (status != LUA_OK && status != LUA_YIELD) {
    const char *msg = lua_tostring(L, -1);
    lua_pushfstring(L, "error: %s", msg ? msg : "(error object)");
    size_t len;
    const char *r = lua_tolstring(L, -1, &len);
    answer(u, req, r, len);
    lua_pop(L, 1);
    return lua_error(L);
  }
  size_t len = 0;
  const char *r = t == LUA_TNIL ? "" : lua_tolstring(L, -1, &len);
  answer(u, req, r, len);
  return 0;
}

struct pending {
  lcontrol *u;
  uint64_t req;
  const char *line;
  size_t len;
};

/* Under pcall on the run's state: spawn(serve, userdata, req, line). */
static int start_task(lua_State *L) {
  struct pending *p = lua_touserdata(L, 1);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &SPAWN_KEY);
  lua_pushcfunction(L, serve);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &LIVE_KEY);
  if (lua_rawgetp(L, -1, p->u) != LUA_TUSERDATA)
    return luaL_error(L, "the control is being collected");
  lua_remove(L, -2);
  lua_pushinteger(L, (lua_Integer)p->req);
  lua_pushlstring(L, p->line, p->len);
  lua_call(L, 4, 0);
  return 0;
}

static void on_request(void *ud, lsync_control *c, uint64_t req,
                       const char *line, size_t len) {
  lcontrol *u = ud;
  lua_State *L = lb_sched_state(u->sched);
  static const char idle[] = "error: the job is not serving requests now";
  if (!L || !lua_checkstack(L, 8)) {
    lsync_control_reply(c, req, idle, sizeof idle - 1);
    return;
  }
  struct pending p = {u, req, line, len};
  lua_pushcfunction(L, start_task);
  lua_pushlightuserdata(L, &p);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) { /* out of memory, say */
    static const char nostart[] = "error: cannot start the request's task";
    lsync_control_reply(c, req, nostart, sizeof nostart - 1);
    lua_pop(L, 1);
  }
}

static int l_control(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lcontrol *u = lua_newuserdatauv(L, sizeof *u, 1);
  memset(u, 0, sizeof *u);
  luaL_setmetatable(L, CONTROL_MT);
  lua_pushvalue(L, 2);
  lua_setiuservalue(L, -2, 1);
  u->sched = lb_sched_get(L);
  lsync_ctx *ctx = lb_ctx(L);
  int rc = lsync_control_listen(ctx, path, on_request, u, &u->c);
  if (rc < 0)
    return lb_fail(L, rc, lsync_ctx_errmsg(ctx));
  lua_rawgetp(L, LUA_REGISTRYINDEX, &LIVE_KEY);
  lua_pushvalue(L, -2);
  lua_rawsetp(L, -2, u);
  lua_pop(L, 1);
  return 1;
}

static int c_close(lua_State *L) {
  lcontrol *u = luaL_checkudata(L, 1, CONTROL_MT);
  if (u->c) {
    lsync_control_close(u->c);
    u->c = NULL;
  }
  return 0;
}

static int c_tostring(lua_State *L) {
  lcontrol *u = luaL_checkudata(L, 1, CONTROL_MT);
  lua_pushfstring(L, "syncplan.control (%s)", u->c ? "open" : "closed");
  return 1;
}

static int push_reply(lua_State *L) {
  lua_pushlstring(L, lua_touserdata(L, 1), (size_t)lua_tointeger(L, 2));
  return 1;
}

static int l_control_call(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  size_t rl;
  const char *req = luaL_checklstring(L, 2, &rl);
  lua_Number t = luaL_optnumber(L, 3, 10);
  luaL_argcheck(L, rl == strlen(req), 2, "a request without NUL bytes");
  luaL_argcheck(L, t >= 0, 3, "a timeout in seconds, not negative");
  int ms = t * 1000 >= INT_MAX ? INT_MAX : (int)(t * 1000 + 0.5);
  char *reply = NULL;
  size_t len = 0;
  int rc = lsync_control_call(path, req, ms, &reply, &len);
  if (rc < 0) {
    lua_pushfstring(L, "control socket %s: %s", path, lsync_strerror(rc));
    return lb_fail(L, rc, lua_tostring(L, -1));
  }
  /* Pushing may raise (out of memory): protected, so reply is freed. */
  lua_pushcfunction(L, push_reply);
  lua_pushlightuserdata(L, reply);
  lua_pushinteger(L, (lua_Integer)len);
  rc = lua_pcall(L, 2, 1, 0);
  free(reply);
  return rc == LUA_OK ? 1 : lua_error(L);
}

void lb_control_open(lua_State *L) {
  static const luaL_Reg methods[] = {{"close", c_close}, {NULL, NULL}};
  static const luaL_Reg meta[] = {{"__tostring", c_tostring}, {NULL, NULL}};
  lb_new_class(L, CONTROL_MT, meta, methods, c_close);
  /* Requests run as tasks through the module's own spawn. */
  if (lua_getfield(L, -1, "spawn") != LUA_TFUNCTION)
    luaL_error(L, "lb_control_open: the loop functions must come first");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &SPAWN_KEY);
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "v");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &LIVE_KEY);
  lua_pushcfunction(L, l_control);
  lua_setfield(L, -2, "control");
  lua_pushcfunction(L, l_control_call);
  lua_setfield(L, -2, "control_call");
}
