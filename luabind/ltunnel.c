/*
 * The tunnel userdata: rsync's remote shell through the job's ssh
 * sessions (see libsync/tunnel.h).
 *
 *   local t = assert(syncplan.tunnel("/private/dir/tunnel"))
 *   syncplan.tunnel(path, { local_commands = true })
 *                          -- commands run here (/bin/sh -c), not on a
 *                          -- session: a local rsync under the job's cap
 *   t:set(slot, session)   -- the session slot's clients use (nil: none)
 *   t:bytes()              -- up, down: bytes relayed so far
 *   t:set_rate(bytes_per_s) -- one cap over all relays, both ways (0: none)
 *   t:active()             -- relays running now
 *   t:close()              -- also __gc and __close
 *   syncplan.program()     -- the syncplan binary for `-e "... tunnel"`,
 *                          -- or nil when there is none to run
 *
 * The sessions set live in the userdata's user value, a table by slot,
 * so they are not collected while set; the listener looks the slot's
 * session up there each time a client comes.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "luabind.h"

#define TUNNEL_MT "syncplan.tunnel"

typedef struct ltunnel {
  lsync_tunnel *t;
  lb_sched *sched;
  int ref; /* registry reference to the sessions table */
} ltunnel;

static lsync_ssh *lookup(void *ud, unsigned slot) {
  ltunnel *u = ud;
  lua_State *L = lb_sched_state(u->sched);
  if (!L || u->ref == LUA_NOREF)
    return NULL;
  lua_rawgeti(L, LUA_REGISTRYINDEX, u->ref);
  lua_rawgeti(L, -1, (lua_Integer)slot);
  lsync_ssh *s = lb_ssh_session(L, -1);
  lua_pop(L, 2);
  return s;
}

static int l_tunnel(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int local = 0;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    local = lua_getfield(L, 2, "local_commands") != LUA_TNIL &&
            lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  ltunnel *u = lua_newuserdatauv(L, sizeof *u, 0);
  memset(u, 0, sizeof *u);
  u->ref = LUA_NOREF;
  luaL_setmetatable(L, TUNNEL_MT);
  u->sched = lb_sched_get(L);
  int rc = lsync_tunnel_listen(lb_ctx(L), path, local ? NULL : lookup, u,
                               &u->t);
  if (rc < 0)
    return lb_fail(L, rc, lsync_ctx_errmsg(lb_ctx(L)));
  lua_newtable(L);
  u->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 1;
}

static ltunnel *check(lua_State *L) {
  ltunnel *u = luaL_checkudata(L, 1, TUNNEL_MT);
  if (!u->t)
    luaL_error(L, "tunnel: closed");
  return u;
}

static int t_set(lua_State *L) {
  ltunnel *u = check(L);
  lua_Integer slot = luaL_checkinteger(L, 2);
  if (!lua_isnil(L, 3))
    luaL_checkudata(L, 3, "syncplan.ssh");
  lua_rawgeti(L, LUA_REGISTRYINDEX, u->ref);
  lua_pushvalue(L, 3);
  lua_rawseti(L, -2, slot);
  return 0;
}

static int t_bytes(lua_State *L) {
  ltunnel *u = check(L);
  uint64_t up, down;
  lsync_tunnel_bytes(u->t, &up, &down);
  lua_pushinteger(L, (lua_Integer)up);
  lua_pushinteger(L, (lua_Integer)down);
  return 2;
}

static int t_set_rate(lua_State *L) {
  ltunnel *u = check(L);
  lua_Number rate = luaL_checknumber(L, 2);
  luaL_argcheck(L, rate >= 0, 2, "a rate in bytes per second, 0 for none");
  lsync_tunnel_set_rate(u->t, (double)rate);
  return 0;
}

static int t_active(lua_State *L) {
  ltunnel *u = check(L);
  lua_pushinteger(L, lsync_tunnel_active(u->t));
  return 1;
}

static int t_close(lua_State *L) {
  ltunnel *u = luaL_checkudata(L, 1, TUNNEL_MT);
  if (u->t) {
    lsync_tunnel_free(u->t);
    u->t = NULL;
  }
  if (u->ref != LUA_NOREF) {
    luaL_unref(L, LUA_REGISTRYINDEX, u->ref);
    u->ref = LUA_NOREF;
  }
  return 0;
}

static int runnable(const char *p) { return p && *p && access(p, X_OK) == 0; }

/* The running binary when it is syncplan; else $SYNCPLAN_PROGRAM; else
 * the installed one.  A plan run by stock lua5.4 has only the last two. */
static int l_program(lua_State *L) {
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n > 0) {
    self[n] = '\0';
    const char *base = strrchr(self, '/');
    base = base ? base + 1 : self;
    if (strncmp(base, "syncplan", 8) == 0 && runnable(self)) {
      lua_pushstring(L, self);
      return 1;
    }
  }
  const char *env = getenv("SYNCPLAN_PROGRAM");
  if (runnable(env)) {
    lua_pushstring(L, env);
    return 1;
  }
#ifdef SYNCPLAN_INSTALLED_PROGRAM
  if (runnable(SYNCPLAN_INSTALLED_PROGRAM)) {
    lua_pushstring(L, SYNCPLAN_INSTALLED_PROGRAM);
    return 1;
  }
#endif
  lua_pushnil(L);
  return 1;
}

void lb_tunnel_open(lua_State *L) {
  static const luaL_Reg methods[] = {{"set", t_set},
                                     {"bytes", t_bytes},
                                     {"active", t_active},
                                     {"set_rate", t_set_rate},
                                     {"close", t_close},
                                     {NULL, NULL}};
  lb_new_class(L, TUNNEL_MT, NULL, methods, t_close);
  lua_pushcfunction(L, l_tunnel);
  lua_setfield(L, -2, "tunnel");
  lua_pushcfunction(L, l_program);
  lua_setfield(L, -2, "program");
}
